"""The transparency log: appends signed acts, signs checkpoints, serves proofs.

This is an edge (it reads the clock and the store); every rule it applies comes from the
pure core in ``cbmnet.ledger``. An append is acknowledged (returns) only after its
transaction committed durably; the in-memory right edge of the tree is updated after the
commit, so a failed transaction leaves nothing half-applied.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cbmnet.errors import (
    CbmnetError,
    ConflictError,
    FormatError,
    NotFoundError,
    VerificationError,
)
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import format_checkpoint
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.merkle import (
    EMPTY_ROOT,
    Node,
    consistency_ranges,
    extend_frontier,
    frontier_root,
    inclusion_ranges,
    leaf_hash,
    proof_from_subtrees,
    split_range,
    verify_consistency,
)
from cbmnet.ledger.note import (
    Ed25519NoteSigner,
    new_signer,
    new_verifier,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from cbmnet.ledger.tlogproof import AddCheckpoint, ProofBundle
from cbmnet.store.sql import Store, StoredCheckpoint, StoredCosignature

MAX_BATCH = 10_000

Admit = Callable[[int, int, Sequence[dsse.Envelope]], Sequence[CbmnetError | None]]
"""``admit(size, integrated_ms, envelopes)``: see :meth:`TransparencyLog.append_admitted`."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def verify_all(
    envelopes: Sequence[bytes | str], authors: Sequence[bytes], threshold: int = 1
) -> list[dsse.Envelope]:
    """Verify each envelope, naming the first that fails by its position."""
    out = []
    for i, e in enumerate(envelopes):
        try:
            # parse() refuses what logged_form() could not write (lone surrogates), so
            # after this nothing about the envelope can fail inside a group commit.
            env = dsse.verify_threshold(e, authors, threshold)
        except CbmnetError as err:
            raise type(err)(f"envelope {i}: {err}") from err
        out.append(env)
    return out


@dataclass(frozen=True)
class Receipt:
    """What the log answers for an accepted act."""

    index: int
    integrated_ms: int
    duplicate: bool = False
    """True when the same statement was already logged: ``index`` is the original's."""


class TransparencyLog:
    """One log over one store."""

    def __init__(
        self,
        store: Store,
        *,
        signer_key: str | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        origin = store.get_meta("origin")
        vkey = store.get_meta("log_vkey")
        if origin is None or vkey is None:
            raise NotFoundError(f"store {store.url} holds no log yet: run 'cbmnet log init'")
        self.store = store
        self.origin = origin
        self.vkey = vkey
        self._clock = clock
        self._signer: Ed25519NoteSigner | None = None
        if signer_key is not None:
            signer = new_signer(signer_key)
            ours = parse_verifier_key(vkey)
            if (signer.name, signer.key_id) != (ours.name, ours.key_id):
                raise FormatError(f"the signing key is not this log's key ({vkey})")
            self._signer = signer
        self._frontier: list[Node] = []
        self._frontier_size = -1
        # Appends and checkpoint signing touch the in-memory right edge: one at a time.
        self._write_lock = threading.Lock()

    @classmethod
    def create(
        cls, store: Store, signer_key: str, *, clock: Callable[[], int] = now_ms
    ) -> TransparencyLog:
        """Initialise a log in an empty store; its origin is the key's name (tlog-policy)."""
        signer = new_signer(signer_key)
        vkey = parse_signer_key(signer_key).verifier_key
        with store.transaction():
            have = store.get_meta("log_vkey")
            if have is not None and have != vkey:
                raise ConflictError(f"store {store.url} already holds the log {have}")
            if have is None:
                store.set_meta("origin", signer.name)
                store.set_meta("log_vkey", vkey)
        return cls(store, signer_key=signer_key, clock=clock)

    # ---- appending ----------------------------------------------------------------------

    def _sync_frontier(self, size: int) -> None:
        if size == self._frontier_size:
            return
        keys = split_range(0, size) if size else []
        got = self.store.get_nodes(keys)
        missing = [k for k in keys if k not in got]
        if missing:
            raise VerificationError(
                f"tree node level {missing[0][0]} index {missing[0][1]} is missing from the store"
            )
        self._frontier = [(lvl, i, got[(lvl, i)]) for lvl, i in keys]
        self._frontier_size = size

    def append(self, envelope: bytes | str, authors: Sequence[bytes], *, threshold: int = 1) -> Receipt:
        """Verify an envelope under its author's keys and log it."""
        return self.append_batch([envelope], authors, threshold=threshold)[0]

    def append_batch(
        self, envelopes: Sequence[bytes | str], authors: Sequence[bytes], *, threshold: int = 1
    ) -> list[Receipt]:
        """Verify every envelope first; log all of them in one durable commit, or none.

        ``threshold`` is how many distinct ``authors`` must have signed each act: a joint
        act is logged only once complete, so nobody can log a partial copy first.
        """
        if len(envelopes) > MAX_BATCH:
            raise FormatError(f"a batch holds at most {MAX_BATCH} envelopes")
        return self.append_verified(verify_all(envelopes, authors, threshold))

    def append_verified(self, envelopes: Sequence[dsse.Envelope]) -> list[Receipt]:
        """Log envelopes whose signatures the caller has checked."""
        out = []
        for r in self.append_admitted(envelopes, None):
            if isinstance(r, CbmnetError):  # pragma: no cover - only an admit refuses
                raise r
            out.append(r)
        return out

    def append_admitted(
        self, envelopes: Sequence[dsse.Envelope], admit: Admit | None
    ) -> list[Receipt | CbmnetError]:
        """Log verified envelopes that ``admit`` accepts, in one durable commit.

        ``admit(size, ms, new)`` runs inside the write transaction, after the writer's
        lock is taken: it sees the log exactly as the new entries will follow it, and no
        other writer (thread or process) can append in between. It returns, for each new
        (not already logged) envelope in order, None to log it at the next index or the
        error that refuses it. A refused envelope takes no index.
        """
        store = self.store
        with self._write_lock:
            with store.transaction():
                size, last_ms = store.lock_log()
                self._sync_frontier(size)
                digests = [e.statement_digest() for e in envelopes]
                known = store.find_statements(list(dict.fromkeys(digests)))
                ms = max(self._clock(), last_ms)
                fresh: list[dsse.Envelope] = []
                seen: set[bytes] = set()
                for env, d in zip(envelopes, digests, strict=True):
                    if d not in known and d not in seen:
                        seen.add(d)
                        fresh.append(env)
                verdicts: Sequence[CbmnetError | None] = (
                    admit(size, ms, fresh) if admit is not None and fresh else [None] * len(fresh)
                )
                refused = {
                    fresh[i].statement_digest(): v for i, v in enumerate(verdicts) if v is not None
                }
                frontier = list(self._frontier)
                rows: list[tuple[int, int, bytes, bytes]] = []
                created: list[Node] = []
                placed: dict[bytes, int] = {}
                out: list[Receipt | CbmnetError] = []
                for env, d in zip(envelopes, digests, strict=True):
                    if d in known:
                        old = store.get_entry(known[d])
                        out.append(Receipt(known[d], old.integrated_ms if old else ms, True))
                    elif d in refused:
                        out.append(refused[d])
                    elif d in placed:
                        out.append(Receipt(placed[d], ms, True))
                    else:
                        idx = size + len(rows)
                        canon = env.logged_form()
                        rows.append((idx, ms, d, canon))
                        placed[d] = idx
                        leaf = leaf_hash(encode_entry(ms, canon))
                        extend_frontier(frontier, idx, leaf, created)
                        out.append(Receipt(idx, ms))
                if rows:
                    store.insert_entries(rows)
                    store.insert_nodes(created)
                    store.set_log_state(size + len(rows), ms)
                    store.announce(size + len(rows))
            # Committed: only now does the in-memory right edge move.
            self._frontier, self._frontier_size = frontier, size + len(rows)
        return out

    # ---- reading ------------------------------------------------------------------------

    def size(self) -> int:
        return self.store.log_state()[0]

    def _check_size(self, size: int) -> None:
        have = self.size()
        if not 0 <= size <= have:
            raise NotFoundError(f"the log has {have} entries; no tree of size {size}")

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return proof_from_subtrees([(0, size)], self.store.get_nodes)[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise NotFoundError(f"entry {index} is not in a tree of size {size}")
        return proof_from_subtrees(inclusion_ranges(index, size), self.store.get_nodes)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise FormatError(f"no consistency proof from size {old_size} to {new_size}")
        return proof_from_subtrees(consistency_ranges(old_size, new_size), self.store.get_nodes)

    def entry_bytes(self, index: int) -> bytes:
        """The leaf's data: ``encode_entry(time, envelope)``."""
        e = self.store.get_entry(index)
        if e is None:
            raise NotFoundError(f"the log has no entry {index}")
        return encode_entry(e.integrated_ms, e.envelope)

    # ---- checkpoints --------------------------------------------------------------------

    def listed_checkpoints(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Checkpoints numbered after ``after``, each as its signed note with every
        cosignature collected (``/v1/log/checkpoints``, served by the hub and a mirror)."""
        cps = self.store.checkpoints_after(after, limit)
        lines: dict[int, str] = {}
        if cps:
            for cs in self.store.cosignatures_between(cps[0].seq, cps[-1].seq):
                lines[cs.checkpoint_seq] = lines.get(cs.checkpoint_seq, "") + cs.line
        return [{"seq": cp.seq, "size": cp.size, "note": cp.note + lines.get(cp.seq, "")} for cp in cps]

    def signed_checkpoint(self, cp: StoredCheckpoint) -> str:
        """The log-signed note with every cosignature collected for it."""
        return cp.note + "".join(c.line for c in self.store.cosignatures(cp.seq))

    def latest_checkpoint(self) -> StoredCheckpoint:
        cp = self.store.latest_checkpoint()
        if cp is None:
            raise NotFoundError("the log has signed no checkpoint yet: run 'cbmnet log checkpoint'")
        return cp

    def checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree, unless the latest one already covers it.

        Before signing, the new root is checked to extend the latest signed one by a
        consistency proof from the stored tree: the log never signs two checkpoints that
        cannot be linked.
        """
        if self._signer is None:
            raise FormatError("signing a checkpoint needs the log's signer key")
        store = self.store
        with self._write_lock, store.transaction():
            size, _ = store.lock_log()
            self._sync_frontier(size)
            root = frontier_root(self._frontier)
            latest = store.latest_checkpoint()
            if latest is not None:
                if latest.size == size:
                    if latest.root_hash != root:
                        raise VerificationError(
                            f"stored checkpoint of size {size} has another root than the tree"
                        )
                    return latest
                if latest.size > size:
                    raise VerificationError(
                        f"stored checkpoint of size {latest.size} is beyond the tree ({size})"
                    )
                proof = proof_from_subtrees(consistency_ranges(latest.size, size), store.get_nodes)
                verify_consistency(latest.size, size, proof, latest.root_hash, root)
            note = sign_note(format_checkpoint(self.origin, size, root), self._signer)
            cp = StoredCheckpoint(latest.seq + 1 if latest else 0, size, root, note, self._clock())
            store.insert_checkpoint(cp)
        return cp

    def add_cosignatures(self, size: int, lines: str, witness_vkeys: Sequence[str]) -> int:
        """Attach witness cosignature lines to the checkpoint of ``size``; returns how many.

        Each line must verify as a cosignature (type 0x04) by one of ``witness_vkeys`` over
        that checkpoint; a line no given key verifies is refused.
        """
        cp = self.store.checkpoint_by_size(size)
        if cp is None:
            raise NotFoundError(f"no checkpoint of size {size}")
        body = open_note(cp.note, [new_verifier(self.vkey)]).text
        verifiers = {}
        for v in witness_vkeys:
            w = new_verifier(v)
            if w.alg != 0x04:
                raise FormatError(f"witness key {v}: must be a cosignature (type 0x04) key")
            verifiers[(w.name, w.key_id)] = (v, w)
        checked: list[StoredCosignature] = []
        for raw in lines.splitlines():
            if not raw.strip():
                continue
            line = raw + "\n"
            note = open_note(body + "\n" + line, [w for _, w in verifiers.values()])
            sig = note.signatures[0]
            vkey, _ = verifiers[(sig.name, sig.key_id)]
            checked.append(StoredCosignature(cp.seq, vkey, line, sig.timestamp or 0))
        if not checked:
            raise FormatError("no cosignature line given")
        with self.store.transaction():  # every line verified first; all stored, or none
            for cs in checked:
                self.store.put_cosignature(cs)
        return len(checked)

    # ---- proofs for others --------------------------------------------------------------

    def proof_bundle(self, index: int) -> ProofBundle:
        """A tlog-proof@v1 for entry ``index`` against the latest checkpoint covering it."""
        if not 0 <= index < self.size():
            raise NotFoundError(f"the log has no entry {index}")
        cp = self.store.checkpoint_covering(index)
        if cp is None:
            raise NotFoundError(f"no checkpoint covers entry {index} yet: run 'cbmnet log checkpoint'")
        return ProofBundle(
            index=index,
            proof=self.inclusion_proof(index, cp.size),
            checkpoint=self.signed_checkpoint(cp),
            extra=self.entry_bytes(index),
        )

    def witness_request(self, old_size: int) -> AddCheckpoint:
        """The tlog-witness add-checkpoint body for the latest checkpoint, from ``old_size``."""
        cp = self.latest_checkpoint()
        if old_size > cp.size:
            raise FormatError(f"old size {old_size} is beyond the latest checkpoint ({cp.size})")
        return AddCheckpoint(old_size, self.consistency_proof(old_size, cp.size), cp.note)
