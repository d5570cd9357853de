"""Audit a hub from outside: a pure auditor over a small reader protocol.

Nothing here trusts the hub's word. The auditor fetches every checkpoint and every leaf
hash, recomputes the roots itself and remembers the last checkpoint it verified, so a hub
that rewrites history or shows it a different tree than before is caught on the next run.
All checks are the ``cbmnet.ledger`` functions. It reads the hub only through
``HubReader`` (the few reads it makes), which ``cbmnet.party.client.HubClient`` satisfies
over HTTP and an in-memory log satisfies in a test.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cbmnet.acts.model import PT_REGISTRY, read_act
from cbmnet.acts.registry import Registry
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import AuthError, CbmnetError, FormatError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import Checkpoint, parse_checkpoint
from cbmnet.ledger.encoding import b64, unb64
from cbmnet.ledger.entry import decode_entry
from cbmnet.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Node,
    extend_frontier,
    frontier_root,
    inclusion_ranges,
    leaf_hash,
    verify_consistency,
)
from cbmnet.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Ed25519Verifier,
    new_verifier,
    open_note,
    parse_verifier_key,
)
from cbmnet.ledger.tlogproof import ProofBundle, format_proof, parse_proof
from cbmnet.log.evidence import (
    BACKDATE_TOLERANCE_MS,
    UnauthorisedKeyChange,
    unauthorised_key_change,
    unreadable_act,
)

LEAF_PAGE = 1000
STATE_VERSION = 1


class Caller(Protocol):
    """Who reads: the audit needs only the party's id (to name it when the hub refuses it)."""

    @property
    def party(self) -> str: ...


class HubReader(Protocol):
    """The hub's reads the audit makes (``HubClient`` makes them over HTTP); the answers are
    the hub's JSON, trusted for nothing: every one is checked here."""

    @property
    def identity(self) -> Caller | None:
        """None: an anonymous reader (no entries, cosigners not mapped to parties)."""

    def info(self) -> dict[str, Any]:
        """``/v1/hub``: origin, log, secretariat and hub keys, recovery quorums."""

    def parties(self) -> list[dict[str, Any]]:
        """``/v1/parties``: each party's id and witness key."""

    def entries(self, **params: Any) -> dict[str, Any]:
        """One page of ``/v1/entries`` (``after``, ``limit``, filters): items and next."""

    def iter_entries(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of ``/v1/entries`` with these filters, page by page."""

    def checkpoints(self) -> list[dict[str, Any]]:
        """Every checkpoint (``seq``, ``size``, signed ``note``), oldest first."""

    def leaves(self, start: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` leaves from ``start``: index, leaf hash, and the entry if readable."""

    def consistency(self, old: int, new: int) -> list[str]:
        """The consistency proof between two tree sizes (base64 hashes)."""

    def proof(self, index: int) -> str:
        """The c2sp.org/tlog-proof of entry ``index``."""


# ---- recomputing roots --------------------------------------------------------------------


class TreeRoots:
    """Feed leaf hashes in order; keeps the root at each size asked for (O(log n) memory)."""

    def __init__(self, sizes: Iterable[int] = ()) -> None:
        self._wanted = set(sizes)
        self._frontier: list[Node] = []
        self.size = 0
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}

    def add(self, leaf: bytes) -> None:
        extend_frontier(self._frontier, self.size, leaf, [])
        self.size += 1
        if self.size in self._wanted:
            self.roots[self.size] = frontier_root(self._frontier)

    def root(self) -> bytes:
        return frontier_root(self._frontier)


def tree_roots(leaves: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The roots of the trees over the first ``size`` leaf hashes, for each size reached."""
    wanted = set(sizes)
    t = TreeRoots(wanted)
    for leaf in leaves:
        t.add(leaf)
    return {s: t.roots[s] for s in wanted if s in t.roots}


# ---- the auditor's memory -----------------------------------------------------------------


@dataclass(frozen=True)
class AuditState:
    """The last checkpoint an audit verified: every later tree must extend it."""

    origin: str
    log_vkey: str
    size: int
    root_hash: bytes
    checkpoint: str
    """The signed note as it was verified (log signature and cosignatures)."""


def load_state(path: Path, verifier: Ed25519Verifier) -> AuditState | None:
    """Read the state file (None if absent); its note must still verify under the log key."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"audit state {path}: {e}") from e
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} audit state")
        origin, vkey, size = doc["origin"], doc["log_vkey"], doc["size"]
        note, root_text = doc["checkpoint"], doc["root_hash"]
        if not all(isinstance(v, str) for v in (origin, vkey, note, root_text)):
            raise ValueError("origin, log_vkey, root_hash and checkpoint must be strings")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("size must be a non-negative integer")
        root = unb64(root_text, "root_hash")
    except (ValueError, KeyError, FormatError) as e:
        raise FormatError(f"audit state {path}: {e}") from e
    if vkey != verifier.verifier_key or origin != verifier.name:
        raise FormatError(f"audit state {path} is for log {vkey}, not {verifier.verifier_key}")
    try:
        body = parse_checkpoint(open_note(note, [verifier]).text)
    except CbmnetError as e:
        raise FormatError(f"audit state {path}: its checkpoint does not verify: {e}") from e
    if (body.origin, body.size, body.root_hash) != (origin, size, root):
        raise FormatError(f"audit state {path}: size or root differ from its signed checkpoint")
    return AuditState(origin, vkey, size, root, note)


def save_state(path: Path, state: AuditState) -> None:
    """Write atomically (temporary file, fsync, rename): a crash leaves the old state or the new."""
    doc = {
        "version": STATE_VERSION,
        "origin": state.origin,
        "log_vkey": state.log_vkey,
        "size": state.size,
        "root_hash": b64(state.root_hash),
        "checkpoint": state.checkpoint,
    }
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- auditing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteAuditReport:
    origin: str
    size: int
    """Leaves the hub serves."""
    checkpoints: int
    cosignatures: int
    entries_checked: int
    """Entries the caller could read: leaf hash and author signature checked."""
    checkpoint_size: int
    root_hash: bytes
    """Root of the latest checkpoint (recomputed and signed), the empty root if none."""
    previous_size: int | None
    """The size remembered from the last run, now shown to be extended consistently."""
    cosigners_mapped: bool
    """False without an identity: cosignature lines parsed, but not matched to parties."""
    key_ends: tuple[tuple[str, int], ...] = ()
    """(party, index): a key rotated out or revoked by the registry act at that index;
    acts it signed after that are refused (a stolen key's boundary), earlier ones stand."""

    @property
    def uncovered(self) -> int:
        """Leaves after the latest checkpoint: not yet signed for by the log."""
        return self.size - self.checkpoint_size


def _fail(msg: str) -> VerificationError:
    return VerificationError(f"remote audit: {msg}")


def _bytes(value: Any, what: str) -> bytes:
    """Base64 from the hub's answer; anything else is the hub failing the audit."""
    if not isinstance(value, str):
        raise _fail(f"{what}: not a base64 string")
    try:
        return unb64(value, what)
    except FormatError as e:
        raise _fail(str(e)) from e


def _hash(value: Any, what: str) -> bytes:
    h = _bytes(value, what)
    if len(h) != HASH_SIZE:
        raise _fail(f"{what}: not a {HASH_SIZE}-byte hash")
    return h


@dataclass
class _Registry:
    """Who may sign what at each index: ``cbmnet.acts.registry.Registry``, the one fold the
    hub admits with, replayed here over the registry acts in log order.

    The secretariat's and the hub's keys and the agreements' recovery quorums come from
    ``/v1/hub``. A registry act is checked before it is folded: its signature under
    ``Registry.signers_for`` (the party's current key, its recovery key, or the new key of
    a quorum rotation; the secretariat for a registration) and its rule under
    ``Registry.check``; any other act under its author's keys as the registry stands at
    its index, so an act signed after its key was rotated out or revoked is caught.
    """

    registry: Registry
    seeded: dict[str, str] = field(default_factory=dict)
    """Witness key text -> party, from ``/v1/parties`` and the registry listing (the hub's
    word): cosignatures are matched before the leaves are read, so each key is checked
    against the fold afterwards."""
    mapped: bool = False

    def verifiers(self) -> list[Ed25519Verifier]:
        return [new_verifier(v) for v in sorted(set(self.seeded) | set(self.registry.witnesses))]

    @classmethod
    def from_hub(cls, client: HubReader, info: Mapping[str, Any]) -> _Registry:
        keys: dict[str, bytes] = {}
        for name in ("secretariat_vkey", "hub_vkey"):
            text = info.get(name)
            if not isinstance(text, str):
                raise _fail(f"/v1/hub names no {name}")
            try:
                keys[name] = parse_verifier_key(text).public_key
            except FormatError as e:
                raise _fail(f"/v1/hub {name}: {e}") from e
        reg = cls(Registry(keys["secretariat_vkey"], keys["hub_vkey"], _quorums(info)))
        if client.identity is None:
            return reg
        reg.mapped = True
        for p in client.parties():
            pid = p.get("id")
            if not isinstance(pid, str):
                raise _fail("/v1/parties lists a party without an id")
            reg.seed(pid, p.get("witness_key"))
        # Keys a party held before (a cosignature by its old witness stays valid), read
        # from the listing now and checked against the verified fold after the walk.
        for kind in ("party.register", "key.rotate"):
            for item in client.iter_entries(kind=kind, limit=1000):
                try:
                    doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
                    pid, vkey = doc["party"], doc.get("witness_key")
                except (KeyError, TypeError, ValueError):
                    continue  # the walk names a malformed entry
                if isinstance(pid, str):
                    reg.seed(pid, vkey)
        return reg

    def seed(self, pid: str, vkey: Any) -> None:
        if not isinstance(vkey, str) or not vkey:
            return
        try:
            v = parse_verifier_key(vkey)
        except FormatError as e:
            raise _fail(f"party {pid}: witness key {vkey!r}: {e}") from e
        if v.alg != ALG_COSIGNATURE_V1:
            raise _fail(f"party {pid}: witness key {vkey} is not a cosigner (0x04) key")
        self.seeded.setdefault(v.text, pid)

    def check_seeded(self) -> None:
        """Every witness key ``/v1/parties`` named must be one the registry acts gave that party."""
        for text, pid in sorted(self.seeded.items()):
            if self.registry.witnesses.get(text) != pid:
                raise _fail(
                    f"/v1/parties names witness key {text} for {pid!r}, but no registry act in "
                    "the log gave it that key: cosignatures were matched on the hub's word"
                )

    def check_entry(self, index: int, envelope: bytes) -> None:
        """The envelope verifies under a key that may sign it at ``index``; a registry act
        must also keep the registry's rules, and is folded in."""
        try:
            env = dsse.parse(envelope)
        except CbmnetError as e:
            raise _fail(f"entry {index}: not an act this hub could have logged: {e}") from e
        try:
            act = read_act(env.payload_type, env.payload)
        except CbmnetError as e:
            raise _fail(unreadable_act(index, env.payload_type, env.payload, e)) from e
        reg = self.registry
        if act.payload_type != PT_REGISTRY:
            keys = reg.signing_keys(act.author)
            if not keys:
                raise _fail(
                    f"entry {index}: its author {act.author!r} has no signing key in the registry"
                )
            try:
                dsse.verify(envelope, keys)
            except CbmnetError as e:
                raise _fail(
                    f"entry {index}: its envelope does not verify under any signing key the "
                    f"registry lists for {act.author!r} (altered or forged)"
                ) from e
            return
        why = reg.fault(index, act, envelope)
        if why is not None:
            raise _fail(why)
        reg.apply(act, index)

    def key_ends(self) -> tuple[tuple[str, int], ...]:
        return tuple(
            sorted(
                (p.id, k.until)
                for p in self.registry.parties.values()
                for k in p.keys
                if k.until is not None
            )
        )


def _quorums(info: Mapping[str, Any]) -> dict[str, int]:
    """The agreements' recovery quorums from ``/v1/hub`` (absent: a majority, never < 2)."""
    got = info.get("key_recovery_quorums", {})
    if not isinstance(got, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in got.items()
    ):
        raise _fail("/v1/hub: key_recovery_quorums must map agreement ids to whole numbers")
    return dict(got)


@dataclass(frozen=True)
class _SignedCheckpoint:
    seq: int
    checkpoint: Checkpoint
    note: str


def _fetch_checkpoints(client: HubReader, verifier: Ed25519Verifier) -> list[_SignedCheckpoint]:
    """Every checkpoint, log signature verified, numbered 0.. and never shrinking."""
    out: list[_SignedCheckpoint] = []
    for n, item in enumerate(client.checkpoints()):
        seq, size, note = item.get("seq"), item.get("size"), item.get("note")
        if seq != n:
            raise _fail(f"checkpoint #{n} is missing from the hub's list (got #{seq})")
        what = f"checkpoint #{n}"
        if not isinstance(note, str) or not isinstance(size, int):
            raise _fail(f"{what}: malformed in the hub's answer")
        try:
            opened = open_note(note, [verifier])
            cp = parse_checkpoint(opened.text)
        except CbmnetError as e:
            raise _fail(f"{what} (size {size}): not signed by the log {verifier.name}: {e}") from e
        if cp.origin != verifier.name:
            raise _fail(f"{what}: origin {cp.origin!r} is not the log's {verifier.name!r}")
        if cp.size != size:
            raise _fail(f"{what}: listed as size {size}, its signed text says {cp.size}")
        if out and cp.size < out[-1].checkpoint.size:
            prev = out[-1]
            raise _fail(
                f"{what} (size {cp.size}) is smaller than checkpoint #{prev.seq} "
                f"(size {prev.checkpoint.size}): the log shrank"
            )
        out.append(_SignedCheckpoint(n, cp, note))
    return out


def _check_cosignatures(
    cps: Sequence[_SignedCheckpoint], log: Ed25519Verifier, reg: _Registry
) -> tuple[int, list[tuple[int, int]]]:
    """Every line after the log's signature must be a valid cosignature by a party's witness.

    Also returns, per cosigned checkpoint, (size, the earliest witness cosignature time in
    ms): a witness that cosigned a tree of that size at that time attests that no entry at
    or beyond that size had been integrated before it.
    """
    witnesses = reg.verifiers() if reg.mapped else []
    count = 0
    seen: list[tuple[int, int]] = []
    for c in cps:
        what = f"checkpoint #{c.seq} (size {c.checkpoint.size})"
        try:
            note = open_note(c.note, [log, *witnesses])
        except CbmnetError as e:
            raise _fail(f"{what}: {e}") from e
        ours = [s for s in note.signatures if (s.name, s.key_id) != (log.name, log.key_id)]
        count += len(ours) + len(note.unverified)
        if reg.mapped and note.unverified:
            s = note.unverified[0]
            raise _fail(
                f"{what}: cosignature by {s.name}+{s.key_id:08x} matches no witness key any "
                "registered party holds"
            )
        times = [sig.timestamp for sig in ours if sig.timestamp is not None]
        if reg.mapped and times:
            seen.append((c.checkpoint.size, min(times) * 1000))
    return count, seen


def _check_listing(client: HubReader, readable: Sequence[int]) -> None:
    """Every entry the leaves serve this party must be in its listing (``/v1/entries``):
    a hub that keeps an entry in the tree but drops it from the addressee's view is caught."""
    listed: set[int] = set()
    after = -1
    while True:
        page = client.entries(after=after, limit=1000)
        items = page.get("items") or []
        if not items:
            break
        listed.update(int(i["index"]) for i in items)
        after = int(page["next"])
    missing = [i for i in readable if i not in listed]
    if missing:
        raise _fail(
            f"entry {missing[0]} is readable by this party in the log but missing from its "
            f"listing (/v1/entries): hidden from its view ({len(missing)} entries in all)"
        )


def audit_hub(client: HubReader, log_vkey: str, state_path: Path | None = None) -> RemoteAuditReport:
    """Audit a hub from outside; raise ``VerificationError`` naming the index or size at fault.

    Checks: every checkpoint is signed by the pinned log key, numbered without gaps and
    never shrinks; its root equals the root recomputed from the leaf hashes served; every
    cosignature verifies under a witness key a registered party holds (without an
    identity the lines must still parse); every entry the caller may read hashes to its
    leaf and verifies under a key of its author, is in the caller's own listing (a hub
    that hides an entry from its addressee's view is caught), and is not dated before a
    registered witness cosigned a tree without it (beyond 10 minutes: a witness's
    clock may be 5 minutes off, and a checkpoint waits for its cosignature: a backdate).
    With ``state_path``, the root at the size remembered from the last run must be the
    remembered one, and the hub's consistency proof from it to the latest checkpoint must
    verify; the state is rewritten (atomically) only after all of this passed.

    Identity is re-checked with the hub's own rule (``cbmnet.acts.registry``): each
    registry act's signature under ``signers_for`` and its rule under ``check`` before it
    is folded, so a key change the party did not sign (or one breaking another rule) fails
    naming the entry, the party and the rule (``key_change_evidence`` makes the document);
    any other act counts only under its author's keys as the registry stands at its
    index, so an act signed after its key was rotated out or revoked is caught. A caller
    whose own key the hub refuses (401) is told so: a hub that folded a change of its keys
    locks it out, and another party's audit names the entry. Weaker than ideal: joint
    acts are checked for one author signature, not their threshold; the secretariat's and
    the hub's keys and the recovery quorums come from the hub's own ``/v1/hub`` rather
    than being pinned; and a caller sees only the entries it may read (the secretariat
    sees all, a registered party every registry act, an anonymous caller none).
    """
    verifier = new_verifier(log_vkey)
    if verifier.alg != ALG_ED25519:
        raise FormatError(f"log key {log_vkey}: must be an Ed25519 (type 0x01) key")
    try:
        return _audit(client, verifier, state_path)
    except VerificationError as e:
        if str(e).startswith("remote audit: "):
            raise
        raise _fail(str(e)) from e
    except AuthError as e:
        if client.identity is None:
            raise
        who = client.identity.party
        raise _fail(
            f"the hub refuses {who}'s key ({e}): if {who} did not change its keys, the hub "
            f"holds a change of {who}'s keys it did not make; another party's audit names the entry"
        ) from e


def _audit(client: HubReader, verifier: Ed25519Verifier, state_path: Path | None) -> RemoteAuditReport:
    origin = verifier.name
    info = client.info()
    if info.get("log_vkey") != verifier.verifier_key:
        raise _fail(
            f"the hub serves log key {info.get('log_vkey')}, not the pinned {verifier.verifier_key}"
        )
    if info.get("origin") != origin:
        raise _fail(f"the hub names origin {info.get('origin')!r}, the log key {origin!r}")
    state = load_state(state_path, verifier) if state_path is not None else None
    reg = _Registry.from_hub(client, info)
    cps = _fetch_checkpoints(client, verifier)

    cosigs, witnessed = _check_cosignatures(cps, verifier, reg)
    witnessed.sort()
    wanted = {c.checkpoint.size for c in cps}
    if state is not None:
        wanted.add(state.size)
    tree = TreeRoots(wanted)
    entries = 0
    last_ms = (-1, 0)
    readable: list[int] = []
    # Not before: the latest witness time on a tree that did not yet hold the entry.
    floor = (-1, 0)  # (size of that tree, its earliest cosignature time)
    w = 0
    while True:
        page = client.leaves(tree.size, LEAF_PAGE)
        if not page:
            break
        for item in page:
            idx = tree.size
            if item.get("index") != idx:
                raise _fail(f"leaf {idx} is missing from the hub's answer (got {item.get('index')})")
            lh = _hash(item.get("leaf_hash"), f"leaf {idx}")
            tree.add(lh)
            if "entry" not in item:
                continue
            data = _bytes(item["entry"], f"entry {idx}")
            if leaf_hash(data) != lh:
                raise _fail(f"entry {idx}: the leaf hash served is not the hash of the entry served")
            try:
                entry = decode_entry(data)
            except FormatError as e:
                raise _fail(f"entry {idx}: {e}") from e
            if entry.integrated_ms < last_ms[1]:
                raise _fail(
                    f"entry {idx}: integrated at {entry.integrated_at}, before entry {last_ms[0]} "
                    "(backdated or reordered)"
                )
            last_ms = (idx, entry.integrated_ms)
            while w < len(witnessed) and witnessed[w][0] <= idx:
                floor = max(floor, witnessed[w], key=lambda t: t[1])
                w += 1
            if entry.integrated_ms < floor[1] - BACKDATE_TOLERANCE_MS:
                raise _fail(
                    f"entry {idx}: integrated at {entry.integrated_at}, but a witness cosigned "
                    f"the tree of size {floor[0]} (without it) at {format_time(floor[1])}: "
                    "backdated (evidence: cbmnet.log.evidence.backdated_entry)"
                )
            reg.check_entry(idx, entry.envelope)
            readable.append(idx)
            entries += 1
    size = tree.size
    if client.identity is not None:
        _check_listing(client, readable)
        reg.check_seeded()

    if state is not None:
        m = state.size
        if m > size:
            raise _fail(
                f"rollback: the hub serves {size} leaves, but this auditor verified a checkpoint "
                f"of size {m} on its last run"
            )
        if tree.roots[m] != state.root_hash:
            raise _fail(
                f"split view or rewritten history: the checkpoint verified on the last run has "
                f"size {m} and root {b64(state.root_hash)}; the leaves the hub serves now give "
                f"root {b64(tree.roots[m])} at size {m}"
            )

    prev: _SignedCheckpoint | None = None
    for c in cps:
        cp = c.checkpoint
        what = f"checkpoint #{c.seq} (size {cp.size})"
        if cp.size > size:
            raise _fail(f"{what}: beyond the {size} leaves the hub serves")
        if tree.roots[cp.size] != cp.root_hash:
            lo = prev.checkpoint.size if prev is not None else 0
            raise _fail(
                f"{what}: signed root {b64(cp.root_hash)} differs from the root "
                f"{b64(tree.roots[cp.size])} recomputed from the leaves served; a leaf in "
                f"[{lo}, {cp.size}) was altered after it was signed for"
            )
        prev = c

    latest = cps[-1] if cps else None
    if state is not None:
        if latest is None or latest.checkpoint.size < state.size:
            now = f"size {latest.checkpoint.size}" if latest else "none"
            raise _fail(
                f"rollback: the hub's latest checkpoint is {now}, but this auditor verified "
                f"size {state.size} on its last run"
            )
        new = latest.checkpoint
        try:
            proof = [
                _hash(h, "consistency proof hash") for h in client.consistency(state.size, new.size)
            ]
            verify_consistency(state.size, new.size, proof, state.root_hash, new.root_hash)
        except VerificationError as e:
            raise _fail(
                f"the hub's consistency proof from size {state.size} (remembered) to size "
                f"{new.size} (latest) does not verify: {e}"
            ) from e
    if state_path is not None and latest is not None:
        cp = latest.checkpoint
        save_state(
            state_path, AuditState(origin, verifier.verifier_key, cp.size, cp.root_hash, latest.note)
        )
    return RemoteAuditReport(
        origin=origin,
        size=size,
        checkpoints=len(cps),
        cosignatures=cosigs,
        entries_checked=entries,
        checkpoint_size=latest.checkpoint.size if latest else 0,
        root_hash=latest.checkpoint.root_hash if latest else EMPTY_ROOT,
        previous_size=state.size if state is not None else None,
        cosigners_mapped=reg.mapped,
        key_ends=reg.key_ends(),
    )


# ---- evidence of an unauthorised key change -----------------------------------------------


def key_change_evidence(client: HubReader, log_vkey: str) -> UnauthorisedKeyChange | None:
    """The ``cbmnet/unauthorised-key-change/v1`` document for the first registry entry this
    caller reads that breaks the registry's rules (None if none does).

    Built from what the caller checks itself, not from the hub's goodwill: the leaves
    served (each entry against its leaf hash), folded as ``audit_hub`` folds them; the
    hub is asked only for a log-signed checkpoint covering the entry (a proof of it), and
    that checkpoint's root must be the root of the leaves served; every inclusion proof is
    then computed here. Keeps every leaf hash in memory: run it when the audit failed.
    """
    verifier = new_verifier(log_vkey)
    info = client.info()
    if info.get("log_vkey") != verifier.verifier_key:
        raise _fail(f"the hub serves log key {info.get('log_vkey')}, not the pinned {log_vkey}")
    reg = _Registry.from_hub(client, info)
    hashes: list[bytes] = []
    registry: list[tuple[int, bytes]] = []
    fault: int | None = None
    while fault is None and (page := _hash_page(client, hashes)):
        for idx, item in page:
            if fault is not None or "entry" not in item:
                continue
            data = _bytes(item["entry"], f"entry {idx}")
            if leaf_hash(data) != hashes[idx]:
                raise _fail(f"entry {idx}: the leaf hash served is not the hash of the entry served")
            envelope = decode_entry(data).envelope
            if dsse.parse(envelope).payload_type != PT_REGISTRY:
                continue
            registry.append((idx, data))
            try:
                reg.check_entry(idx, envelope)
            except VerificationError:
                fault = idx
    if fault is None:
        return None
    bundle = parse_proof(client.proof(fault))
    try:
        cp = parse_checkpoint(open_note(bundle.checkpoint, [verifier]).text)
    except CbmnetError as e:
        raise _fail(f"the hub's checkpoint covering entry {fault}: {e}") from e
    if cp.origin != verifier.name or cp.size <= fault:
        raise _fail(f"the hub's checkpoint covering entry {fault} is of size {cp.size}, or another log")
    while len(hashes) < cp.size and _hash_page(client, hashes):
        pass
    tree = hashes[: cp.size]
    if len(tree) < cp.size or tree_roots(tree, [cp.size]).get(cp.size) != cp.root_hash:
        raise _fail(f"checkpoint of size {cp.size}: its root is not the root of the leaves served")
    proofs = [
        format_proof(ProofBundle(i, _inclusion(tree, i), bundle.checkpoint, data))
        for i, data in registry
    ]
    sec = info.get("secretariat_vkey")
    assert isinstance(sec, str)  # from_hub checked it
    return unauthorised_key_change(proofs, log_vkey, sec, _quorums(info))


def _hash_page(client: HubReader, hashes: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """The next page of leaves: their hashes appended to ``hashes``, (index, item) returned."""
    out = []
    for item in client.leaves(len(hashes), LEAF_PAGE):
        idx = len(hashes)
        if item.get("index") != idx:
            raise _fail(f"leaf {idx} is missing from the hub's answer (got {item.get('index')})")
        hashes.append(_hash(item.get("leaf_hash"), f"leaf {idx}"))
        out.append((idx, item))
    return out


def _inclusion(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 PATH(index) over leaf hashes: each range's root, the leaf's sibling first."""
    ranges = inclusion_ranges(index, len(leaves))
    return [tree_roots(leaves[lo:hi], [hi - lo])[hi - lo] for lo, hi in ranges]
