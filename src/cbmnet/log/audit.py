"""Audit a stored log from its rows alone: any party or the operator can run it.

Recomputes every leaf from its entry (time and envelope) and every stored subtree hash
from the leaves, checks times never go backwards, that no row exists outside the tree,
that every checkpoint is signed by the log, matches the recomputed root at its size and
is consistent with the one before, and that every cosignature verifies. It reads the
entries in chunks, so memory stays bounded however long the log is.
"""

from __future__ import annotations

from dataclasses import dataclass

from cbmnet.errors import CbmnetError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import parse_checkpoint
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.merkle import (
    EMPTY_ROOT,
    Node,
    consistency_ranges,
    extend_frontier,
    frontier_root,
    leaf_hash,
    proof_from_subtrees,
)
from cbmnet.ledger.merkle import verify_consistency as _verify_consistency
from cbmnet.ledger.note import new_verifier, open_note
from cbmnet.store.sql import Store

CHUNK = 4096


@dataclass(frozen=True)
class AuditReport:
    size: int
    checkpoints: int
    cosignatures: int
    root_hash: bytes
    uncovered: int = 0
    """Entries after the latest signed checkpoint: the audit can vouch for their hashes but
    not that the log did not add them behind its own back; a checkpoint will."""


def _fail(msg: str) -> VerificationError:
    return VerificationError(f"audit: {msg}")


def _check_nodes(store: Store, computed: list[Node], bad_statement: int | None) -> None:
    by_level: dict[int, list[Node]] = {}
    for n in computed:
        by_level.setdefault(n[0], []).append(n)
    for level in sorted(by_level):
        nodes = by_level[level]
        stored = store.nodes_at_level(level, nodes[0][1], nodes[-1][1] + 1)
        for _, idx, h in nodes:
            got = stored.get(idx)
            if level == 0 and got != h:
                what = "is missing" if got is None else "does not match its entry"
                raise _fail(f"entry {idx}: the stored leaf hash {what} (entry or leaf altered)")
            if got is None:
                raise _fail(f"tree node level {level} index {idx} is missing")
            if got != h:
                raise _fail(
                    f"tree node level {level} index {idx}: stored hash differs from the "
                    "hash recomputed from the entries"
                )
    if bad_statement is not None:
        raise _fail(
            f"entry {bad_statement}: its stored statement digest is not its envelope's "
            "(it would make the log refuse another act as a duplicate)"
        )


def audit_log(store: Store, log_vkey: str | None = None) -> AuditReport:
    """Raise ``VerificationError`` naming the first entry, node or checkpoint that fails."""
    try:
        return _audit(store, log_vkey)
    except VerificationError as e:
        if str(e).startswith("audit: "):
            raise
        raise _fail(str(e)) from e


def _audit(store: Store, log_vkey: str | None) -> AuditReport:
    stored_vkey = store.get_meta("log_vkey")
    origin = store.get_meta("origin")
    if stored_vkey is None or origin is None:
        raise _fail("the store holds no log")
    if log_vkey is not None and log_vkey.strip() != stored_vkey:
        raise _fail(f"the store names log key {stored_vkey}, not the pinned {log_vkey.strip()}")
    vkey = log_vkey.strip() if log_vkey else stored_vkey
    try:
        verifier = new_verifier(vkey)
    except CbmnetError as err:
        raise _fail(f"the log's key: {err}") from err
    if verifier.name != origin:
        raise _fail(f"the log's key is named {verifier.name!r}, its origin is {origin!r}")
    size, last_ms = store.log_state()
    count, lowest, _ = store.entry_counts()
    if count and lowest < 0:
        raise _fail(f"entry {lowest} lies outside the tree (a negative index)")
    checkpoints = store.all_checkpoints()
    roots_wanted = {cp.size for cp in checkpoints}
    roots: dict[int, bytes] = {0: EMPTY_ROOT}

    frontier: list[Node] = []
    computed: list[Node] = []
    expected = 0
    prev_ms = 0
    bad_statement: int | None = None
    for e in store.iter_entries(chunk=CHUNK):
        if e.idx != expected or expected >= size:
            if e.idx >= size:
                raise _fail(f"entry {e.idx} lies beyond the tree size {size} (added behind the log)")
            raise _fail(f"entry {expected} is missing")
        try:
            data = encode_entry(e.integrated_ms, e.envelope)
            statement = dsse.parse(e.envelope).statement_digest()
        except CbmnetError as err:
            raise _fail(f"entry {e.idx}: {err}") from err
        if e.idx and e.integrated_ms < prev_ms:
            raise _fail(
                f"entry {e.idx}: integration time {e.integrated_ms} is earlier than entry "
                f"{e.idx - 1}'s {prev_ms} (backdated or reordered)"
            )
        if statement != e.statement and bad_statement is None:
            bad_statement = e.idx  # reported after the leaf check, which says more
        prev_ms = e.integrated_ms
        extend_frontier(frontier, e.idx, leaf_hash(data), computed)
        expected += 1
        if expected in roots_wanted:
            roots[expected] = frontier_root(frontier)
        if len(computed) >= CHUNK:
            _check_nodes(store, computed, bad_statement)
            computed = []
    if computed:
        _check_nodes(store, computed, bad_statement)
    if expected < size:
        raise _fail(f"entry {expected} is missing (tree size {size})")
    if last_ms != prev_ms:
        raise _fail(
            f"the log's last integration time {last_ms} is not entry {size - 1}'s {prev_ms}"
            if size
            else f"the empty log's last integration time is {last_ms}, not 0"
        )
    for level, n, lo, hi in store.node_counts():
        if not 0 <= level < 64:
            raise _fail(f"tree nodes at level {level} lie outside any tree")
        want = size >> level
        if n != want or (n and (lo != 0 or hi != want - 1)):
            raise _fail(f"tree nodes at level {level}: {n} stored, the tree of size {size} has {want}")

    cosigs = store.cosignatures()
    prev = None
    for n_cp, cp in enumerate(checkpoints):
        name = f"checkpoint #{cp.seq} (size {cp.size})"
        if cp.seq != n_cp:
            raise _fail(f"checkpoint #{n_cp} is missing")
        try:
            note = open_note(cp.note, [verifier])
            body = parse_checkpoint(note.text)
        except CbmnetError as err:
            raise _fail(f"{name}: {err}") from err
        if body.origin != origin or body.size != cp.size or body.root_hash != cp.root_hash:
            raise _fail(f"{name}: signed text differs from its stored size or root")
        if cp.size > size:
            raise _fail(f"{name}: beyond the tree size {size}")
        if roots[cp.size] != cp.root_hash:
            raise _fail(f"{name}: root differs from the root recomputed from the entries")
        if prev is not None:
            if cp.size < prev.size:
                raise _fail(f"{name}: smaller than checkpoint #{prev.seq} (size {prev.size})")
            proof = proof_from_subtrees(consistency_ranges(prev.size, cp.size), store.get_nodes)
            try:
                _verify_consistency(prev.size, cp.size, proof, prev.root_hash, cp.root_hash)
            except VerificationError as err:
                raise _fail(f"{name}: not consistent with checkpoint #{prev.seq}: {err}") from err
        prev = cp
    by_seq = {c.seq: c for c in checkpoints}
    for cs in cosigs:
        signed = by_seq.get(cs.checkpoint_seq)
        if signed is None:
            raise _fail(f"a cosignature names missing checkpoint #{cs.checkpoint_seq}")
        text = signed.note[: signed.note.index("\n\n") + 1]
        try:
            note = open_note(text + "\n" + cs.line, [new_verifier(cs.witness_vkey)])
        except CbmnetError as err:
            raise _fail(f"cosignature on checkpoint #{signed.seq}: {err}") from err
        if note.signatures[0].timestamp != cs.timestamp:
            raise _fail(f"cosignature on checkpoint #{signed.seq}: stored time is not the signed one")
    root = frontier_root(frontier)
    covered = prev.size if prev is not None else 0
    return AuditReport(size, len(checkpoints), len(cosigs), root, size - covered)
