"""Evidence of a misbehaving log that anyone can re-check offline with public keys only.

A party that catches the hub lying wants more than an error message: it wants a document
a third party (another state, an arbiter) can check without trusting the party or the
hub. Each function here takes only signed material (C2SP signed notes, c2sp.org/tlog-proof
bundles) and public keys, and returns a verified evidence object, or ``None`` when the
material shows no misbehaviour. Every object serialises to JSON (``to_json``) and the
matching ``verify_*`` function re-checks that JSON from scratch. Pure: no I/O, no clock.

- ``SplitView``: two checkpoints signed by the same log key that cannot both be true of
  one append-only log: the same size with two roots, or two inclusion proofs of different
  leaves at the same index. Only the log's verifier key is needed.
- ``RewrittenEntry``: a receipt (an inclusion proof under a checkpoint the witness policy
  agreed) of the entry at an index, and other bytes claimed for that index. The receipt
  shows what the log's entry is; the other bytes cannot be in the agreed tree.
- ``BackdatedEntry``: an entry proven in the log whose integration time is earlier than
  a witness's cosignature on a checkpoint that does not contain it (minus clock skew):
  the witness saw the tree without the entry after the time the entry claims.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cbmnet.errors import CbmnetError, FormatError, VerificationError
from cbmnet.ledger.checkpoint import Checkpoint, parse_checkpoint
from cbmnet.ledger.encoding import b64, unb64
from cbmnet.ledger.merkle import leaf_hash, verify_inclusion
from cbmnet.ledger.note import ALG_ED25519, new_verifier, open_note
from cbmnet.ledger.policy import Policy, verify_checkpoint
from cbmnet.ledger.tlogproof import (
    MAX_CLOCK_SKEW_MS,
    VerifiedEntry,
    parse_proof,
    verify_entry_proof,
)

SPLIT_VIEW = "cbmnet/split-view/v1"
REWRITTEN_ENTRY = "cbmnet/rewritten-entry/v1"
BACKDATED_ENTRY = "cbmnet/backdated-entry/v1"

BACKDATE_TOLERANCE_MS = 2 * MAX_CLOCK_SKEW_MS
"""How much earlier than a witness's cosignature an entry may be dated before it counts
as backdated: the witness's clock may be 5 minutes fast (as the soak skews it) and the
checkpoint may wait a while for its cosignature; twice the tolerated clock skew."""


def _log_checkpoint(note: str, log_vkey: str, what: str) -> Checkpoint:
    """The checkpoint of a note signed by the log key (other signature lines ignored)."""
    verifier = new_verifier(log_vkey)
    if verifier.alg != ALG_ED25519:
        raise FormatError(f"log key {log_vkey}: must be an Ed25519 (type 0x01) key")
    try:
        opened = open_note(note, [verifier])
    except CbmnetError as e:
        raise VerificationError(f"{what}: not signed by the log {verifier.name}: {e}") from e
    cp = parse_checkpoint(opened.text)
    if cp.origin != verifier.name:
        raise VerificationError(f"{what}: origin {cp.origin!r} is not the log's {verifier.name!r}")
    return cp


def _doc(doc: str | Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    if isinstance(doc, str):
        try:
            parsed = json.loads(doc)
        except ValueError as e:
            raise FormatError(f"{kind}: not JSON: {e}") from e
    else:
        parsed = doc
    if not isinstance(parsed, Mapping) or parsed.get("type") != kind:
        raise FormatError(f"not a {kind} document")
    return parsed


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise FormatError(f"{doc.get('type')}: {key!r} must be a string")
    return value


# ---- split view -------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitView:
    """Two signed statements of one log that no single append-only tree can satisfy."""

    origin: str
    log_vkey: str
    reason: str
    """``same-size`` (one size, two roots) or ``divergent-leaf`` (one index, two leaves)."""
    first: str
    """A signed checkpoint note (``same-size``) or a tlog-proof bundle (``divergent-leaf``)."""
    second: str
    size: int
    """The common size (``same-size``) or the index whose leaves differ (``divergent-leaf``)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": SPLIT_VIEW,
                "origin": self.origin,
                "log_vkey": self.log_vkey,
                "reason": self.reason,
                "at": self.size,
                "first": self.first,
                "second": self.second,
            },
            sort_keys=True,
            indent=2,
        )


def split_view_from_checkpoints(first: str, second: str, log_vkey: str) -> SplitView | None:
    """Two checkpoint notes gossiped between parties: a split view if one size has two roots.

    Both must be signed by the log key (cosignatures are ignored). Checkpoints of
    different sizes say nothing by themselves: a consistency proof the hub refuses or
    fails is not evidence a third party can check (the accuser could have made it up);
    ask the log for an inclusion proof of the same index under each and use
    ``split_view_from_proofs``. Returns ``None`` for an honest pair.
    """
    a = _log_checkpoint(first, log_vkey, "first checkpoint")
    b = _log_checkpoint(second, log_vkey, "second checkpoint")
    if a.size != b.size or a.root_hash == b.root_hash:
        return None
    return SplitView(a.origin, log_vkey, "same-size", first, second, a.size)


def split_view_from_proofs(first: str, second: str, log_vkey: str) -> SplitView | None:
    """Two tlog-proof bundles for the same index: a split view if their leaves differ.

    Each inclusion proof must verify under its own checkpoint, signed by the log key; the
    two checkpoints may have any sizes. An RFC 9162 tree has one leaf per index, so two
    valid proofs of different leaves at one index mean two trees under one key. Returns
    ``None`` when both prove the same leaf.
    """
    pa, pb = parse_proof(first), parse_proof(second)
    if pa.index != pb.index:
        raise FormatError(f"proofs of indexes {pa.index} and {pb.index}: compare one index")
    if pa.extra is None or pb.extra is None:
        raise FormatError("tlog-proof: no extra line; a cbmnet proof carries its entry there")
    for bundle, what in ((pa, "first proof"), (pb, "second proof")):
        cp = _log_checkpoint(bundle.checkpoint, log_vkey, what)
        try:
            verify_inclusion(
                leaf_hash(bundle.extra or b""), bundle.index, cp.size, bundle.proof, cp.root_hash
            )
        except VerificationError as e:
            raise VerificationError(f"{what}: {e}") from e
    if leaf_hash(pa.extra) == leaf_hash(pb.extra):
        return None
    origin = new_verifier(log_vkey).name
    return SplitView(origin, log_vkey, "divergent-leaf", first, second, pa.index)


def verify_split_view(doc: str | Mapping[str, Any], log_vkey: str) -> SplitView:
    """Re-check a ``SplitView`` document with only the log's key; raise unless it proves one."""
    d = _doc(doc, SPLIT_VIEW)
    reason, first, second = _str(d, "reason"), _str(d, "first"), _str(d, "second")
    if reason == "same-size":
        found = split_view_from_checkpoints(first, second, log_vkey)
    elif reason == "divergent-leaf":
        found = split_view_from_proofs(first, second, log_vkey)
    else:
        raise FormatError(f"{SPLIT_VIEW}: unknown reason {reason!r}")
    if found is None:
        raise VerificationError(f"{SPLIT_VIEW}: the two statements are consistent: no split view")
    return found


# ---- a rewritten entry ------------------------------------------------------------------


@dataclass(frozen=True)
class RewrittenEntry:
    """A receipt for the entry at ``index`` and other bytes the hub served for that index."""

    index: int
    receipt: str
    """The party's tlog-proof bundle, its checkpoint agreed by the witness policy."""
    served: bytes
    """The leaf data (``cbmnet/log-entry/v1``) served for ``index`` afterwards."""
    logged: VerifiedEntry
    """What the receipt proves entry ``index`` is."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": REWRITTEN_ENTRY,
                "index": self.index,
                "receipt": self.receipt,
                "served": b64(self.served),
            },
            sort_keys=True,
            indent=2,
        )


def rewritten_entry(receipt: str, served: bytes, policy: Policy) -> RewrittenEntry | None:
    """Compare a receipt with the leaf data served later for its index.

    The receipt must verify under ``policy`` (the log's key and the witnesses' quorum).
    Returns ``None`` when the bytes served are the ones logged. Otherwise the served bytes
    are checked not to hash to the proven leaf, so they cannot be entry ``index`` of the
    agreed tree: whoever served them rewrote the entry. (The HTTP answer itself is not
    signed: a third party confirms that the hub serves these bytes by asking it.)
    """
    logged = verify_entry_proof(receipt, policy)
    bundle = parse_proof(receipt)
    assert bundle.extra is not None  # verify_entry_proof refused a bundle without one
    if served == bundle.extra:
        return None
    cp = logged.agreed.checkpoint
    try:
        verify_inclusion(leaf_hash(served), logged.index, cp.size, bundle.proof, cp.root_hash)
    except VerificationError:
        return RewrittenEntry(logged.index, receipt, served, logged)
    raise VerificationError("two leaves verify at one index: SHA-256 is broken")  # pragma: no cover


def verify_rewritten_entry(doc: str | Mapping[str, Any], policy: Policy) -> RewrittenEntry:
    """Re-check a ``RewrittenEntry`` document; raise unless it shows a rewrite."""
    d = _doc(doc, REWRITTEN_ENTRY)
    found = rewritten_entry(_str(d, "receipt"), unb64(_str(d, "served"), "served"), policy)
    if found is None:
        raise VerificationError(f"{REWRITTEN_ENTRY}: the bytes served are the bytes logged")
    if found.index != d.get("index"):
        raise FormatError(f"{REWRITTEN_ENTRY}: index {d.get('index')} is not the receipt's")
    return found


# ---- a backdated entry ------------------------------------------------------------------


@dataclass(frozen=True)
class BackdatedEntry:
    """An entry proven after a cosigned checkpoint, dated before the cosignature."""

    index: int
    integrated_ms: int
    checkpoint: str
    """A checkpoint whose tree does not contain ``index``, cosigned under the policy."""
    cosigned_ms: int
    """The earliest policy witness's cosignature time on it (Unix milliseconds)."""
    proof: str
    """The entry's tlog-proof bundle (any checkpoint covering it)."""

    @property
    def backdated_by_ms(self) -> int:
        return self.cosigned_ms - self.integrated_ms

    def to_json(self) -> str:
        return json.dumps(
            {"type": BACKDATED_ENTRY, "checkpoint": self.checkpoint, "proof": self.proof},
            sort_keys=True,
            indent=2,
        )


def backdated_entry(
    proof: str, earlier: str, policy: Policy, *, max_skew_ms: int = BACKDATE_TOLERANCE_MS
) -> BackdatedEntry | None:
    """Is the entry of ``proof`` dated before a witness saw a tree without it?

    ``earlier`` is a checkpoint note agreed under ``policy`` whose size is at most the
    entry's index (the tree it commits to does not hold the entry). A policy witness that
    cosigned it at time C attests the log had not integrated the entry by C; an
    integration time earlier than C by more than ``max_skew_ms`` is a backdate. ``proof``
    need only verify under the log's key (any checkpoint covering the entry). Returns
    ``None`` if the entry's time is not earlier than that bound.
    """
    agreed = verify_checkpoint(earlier, policy)
    cp = agreed.checkpoint
    logs = Policy(logs=list(policy.logs))
    entry = verify_entry_proof(proof, logs)
    if entry.agreed.checkpoint.origin != cp.origin:
        raise VerificationError("the proof and the checkpoint are of different logs")
    if entry.index < cp.size:
        raise FormatError(
            f"entry {entry.index} is inside the checkpoint's tree (size {cp.size}): "
            "it cannot show a backdate"
        )
    times = [
        s.timestamp
        for s in agreed.note.signatures
        if s.timestamp is not None and (s.name, s.key_id) in agreed.witness_ids
    ]
    if not times:
        raise VerificationError(f"checkpoint size {cp.size}: no timed cosignature by a policy witness")
    cosigned_ms = min(times) * 1000
    if entry.entry.integrated_ms >= cosigned_ms - max_skew_ms:
        return None
    return BackdatedEntry(entry.index, entry.entry.integrated_ms, earlier, cosigned_ms, proof)


def verify_backdated_entry(
    doc: str | Mapping[str, Any], policy: Policy, *, max_skew_ms: int = BACKDATE_TOLERANCE_MS
) -> BackdatedEntry:
    """Re-check a ``BackdatedEntry`` document; raise unless it shows a backdate."""
    d = _doc(doc, BACKDATED_ENTRY)
    found = backdated_entry(_str(d, "proof"), _str(d, "checkpoint"), policy, max_skew_ms=max_skew_ms)
    if found is None:
        raise VerificationError(f"{BACKDATED_ENTRY}: the entry is not dated before the cosignature")
    return found


__all__ = [
    "BackdatedEntry",
    "RewrittenEntry",
    "SplitView",
    "backdated_entry",
    "rewritten_entry",
    "split_view_from_checkpoints",
    "split_view_from_proofs",
    "verify_backdated_entry",
    "verify_rewritten_entry",
    "verify_split_view",
]
