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
- ``UnauthorisedKeyChange``: a registry entry that changes a party's keys and the party's
  earlier registry entries, all proven under one log-signed checkpoint; re-folded with
  ``cbmnet.acts.registry``, the change was not signed by a key allowed to sign it (or
  breaks another registry rule): the hub logged a key change its holder did not make.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cbmnet.acts.model import PT_REGISTRY, SECRETARIAT, Act, read_act
from cbmnet.acts.registry import KEY_CHANGES, Registry, act_party
from cbmnet.errors import CbmnetError, FormatError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import Checkpoint, parse_checkpoint
from cbmnet.ledger.encoding import b64, unb64
from cbmnet.ledger.entry import decode_entry
from cbmnet.ledger.merkle import leaf_hash, verify_inclusion
from cbmnet.ledger.note import ALG_ED25519, new_verifier, open_note, parse_verifier_key
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
UNAUTHORISED_KEY_CHANGE = "cbmnet/unauthorised-key-change/v1"

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


# ---- an unauthorised key change ---------------------------------------------------------


def unreadable_act(index: int, payload_type: str, payload: bytes, err: CbmnetError) -> str:
    """Why a logged entry that ``read_act`` refuses fails an audit: a key change the rules
    no longer admit (``"by": "secretariat"``, written before docs/adr/0007) is named as one."""
    doc = _registry_doc(payload_type, payload)
    if doc is not None:
        what = f"entry {index}: {doc['act']} of {doc['party']!r}"
        if doc.get("by") == SECRETARIAT:
            return (
                f'{what} is signed "by": "secretariat": the secretariat registers parties but '
                "never changes their keys: a unilateral key change"
            )
        return f"{what} is not a key change the registry admits: {err}"
    return f"entry {index}: not an act this hub could have logged: {err}"


def _registry_doc(payload_type: str, payload: bytes) -> dict[str, Any] | None:
    """The JSON of a key change ``read_act`` may refuse (act, party as strings), or None."""
    if payload_type != PT_REGISTRY:
        return None
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("act") not in KEY_CHANGES:
        return None
    return doc if isinstance(doc.get("party"), str) else None


@dataclass(frozen=True)
class _Logged:
    index: int
    proof: str
    envelope: bytes
    env: dsse.Envelope
    act: Act | None
    """None: ``read_act`` refuses it (only the offending entry may be so)."""
    error: CbmnetError | None = None

    @property
    def party(self) -> str | None:
        if self.act is not None:
            return act_party(self.act)
        doc = _registry_doc(self.env.payload_type, self.env.payload)
        return str(doc["party"]) if doc is not None else None

    def keys(self) -> set[bytes]:
        """The Ed25519 and witness public keys the act installs (to find an earlier user)."""
        doc = self.act.doc if self.act is not None else {}
        out: set[bytes] = set()
        for fld in ("signing_key", "recovery_key", "witness_key"):
            if isinstance(doc.get(fld), str):  # read_act checked it is a key
                out.add(parse_verifier_key(doc[fld]).public_key)
        return out


def _logged(proofs: Sequence[str], log_vkey: str) -> tuple[Checkpoint, list[_Logged]]:
    """Each proof verified under the log key, all under one checkpoint, in index order."""
    if not proofs:
        raise FormatError(f"{UNAUTHORISED_KEY_CHANGE}: no entries")
    cp: Checkpoint | None = None
    out: list[_Logged] = []
    for n, text in enumerate(proofs):
        if not isinstance(text, str):
            raise FormatError(f"{UNAUTHORISED_KEY_CHANGE}: entry {n} is not a tlog-proof text")
        bundle = parse_proof(text)
        what = f"proof of entry {bundle.index}"
        if bundle.extra is None:
            raise FormatError(f"{what}: no extra line; a cbmnet proof carries its entry there")
        got = _log_checkpoint(bundle.checkpoint, log_vkey, what)
        if cp is not None and (got.size, got.root_hash) != (cp.size, cp.root_hash):
            raise FormatError(
                f"{what}: under a checkpoint of size {got.size}, not the document's one "
                f"(size {cp.size}): every entry is proven under one checkpoint"
            )
        cp = got
        try:
            verify_inclusion(leaf_hash(bundle.extra), bundle.index, cp.size, bundle.proof, cp.root_hash)
        except VerificationError as e:
            raise VerificationError(f"{what}: {e}") from e
        if out and bundle.index <= out[-1].index:
            raise FormatError(f"{what}: entries must be in increasing index order")
        envelope = decode_entry(bundle.extra).envelope
        env = dsse.parse(envelope)
        try:
            act: Act | None = read_act(env.payload_type, env.payload)
            err = None
        except CbmnetError as e:
            act, err = None, e
        if act is not None and act.payload_type != PT_REGISTRY:
            raise FormatError(f"entry {bundle.index} is not a registry act")
        out.append(_Logged(bundle.index, text, envelope, env, act, err))
    assert cp is not None
    return cp, out


def _relevant(items: Sequence[_Logged]) -> list[_Logged]:
    """Of the registry entries before the last, those a re-fold of its party needs: every
    registration (who shares an agreement, the secretariat's key), the party's own acts,
    approvals naming it, and any entry that installed a key the last one installs again."""
    last = items[-1]
    party, reused = last.party, last.keys()
    keep = []
    for it in items[:-1]:
        a = it.act
        if a is None:
            continue
        if (
            a.kind == "party.register"
            or act_party(a) == party
            or (a.kind == "key.approve" and a.doc.get("for") == party)
            or it.keys() & reused
        ):
            keep.append(it)
    return [*keep, last]


_NO_KEY = bytes(32)
"""The hub key for a re-fold: a document names none, so reusing the hub's key, which only
the hub's word would show, is not claimed."""


def _offence(items: Sequence[_Logged], secretariat_key: bytes, quorums: Mapping[str, int]) -> str:
    """Re-fold the entries with ``cbmnet.acts.registry``; why the last one is not allowed.

    Registrations and the party's own acts are checked (signature, then rule) before they
    are folded, so the key history the last act is judged against is itself sound; other
    parties' entries (approvals, the entry that first used a key) are folded on the log's
    word: each is proven in it.
    """
    *before, last = items
    party = last.party
    if party is None:
        raise FormatError(f"entry {last.index} is not a registry act naming a party")
    reg = Registry(secretariat_key, _NO_KEY, dict(quorums))
    for it in before:
        a = it.act
        assert a is not None
        if a.kind == "party.register" or act_party(a) == party:
            why = reg.fault(it.index, a, it.envelope)
            if why is not None:
                raise FormatError(
                    f"{why} (before entry {last.index}): the document must start from a sound "
                    "key history (or accuse that entry)"
                )
        reg.apply(a, it.index)
    a = last.act
    if a is None:
        assert last.error is not None
        return unreadable_act(last.index, last.env.payload_type, last.env.payload, last.error)
    why = reg.fault(last.index, a, last.envelope)
    if why is not None:
        return why
    raise VerificationError(
        f"entry {last.index}: {a.kind} of {party!r} is signed by a key allowed to sign it and "
        "keeps the registry's rules: no unauthorised key change"
    )


@dataclass(frozen=True)
class UnauthorisedKeyChange:
    """A registry entry the party's own logged key history does not allow."""

    origin: str
    party: str
    index: int
    finding: str
    """Why, as the re-fold says it (recomputed by ``verify_unauthorised_key_change``)."""
    checkpoint: Checkpoint
    """The one log-signed checkpoint every entry is proven under."""
    secretariat_vkey: str
    key_recovery_quorums: Mapping[str, int] = field(default_factory=dict)
    proofs: tuple[str, ...] = ()
    """tlog-proof bundles, in index order, the offending entry last."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": UNAUTHORISED_KEY_CHANGE,
                "origin": self.origin,
                "party": self.party,
                "index": self.index,
                "finding": self.finding,
                "secretariat_vkey": self.secretariat_vkey,
                "key_recovery_quorums": dict(self.key_recovery_quorums),
                "entries": list(self.proofs),
            },
            sort_keys=True,
            indent=2,
        )


def unauthorised_key_change(
    proofs: Sequence[str],
    log_vkey: str,
    secretariat_vkey: str,
    key_recovery_quorums: Mapping[str, int] | None = None,
) -> UnauthorisedKeyChange | None:
    """Build the document from the tlog-proofs of the log's registry entries up to and
    including a suspect one (last), all under one log-signed checkpoint (cosigned where
    available). Keeps only the entries a re-fold of the suspect's party needs; returns
    ``None`` when the suspect is a key change its holder was allowed to make.

    What it proves, to anyone holding the log's key: the log holds, at ``index``, a change
    of the party's keys that the party's own logged key history (its registration,
    rotations, revocations, the approvals naming it) does not allow: not signed by its
    current key, its recovery key or the new key after a quorum, or breaking another rule
    of ``cbmnet.acts.registry`` (a reused key, a witness key another party holds, a
    recovery key changed by the signing key, too few approvals). An honest hub never
    logs it: admission runs the same fold. ``secretariat_vkey`` is bound by the
    registrations it must have signed; the agreements' recovery quorums are the hub's own
    (``/v1/hub``), and matter only for a quorum rotation.

    Its limit: it shows the entries it holds, so the accused could answer that one was
    left out (an approval, a rotation). To say so it must produce that entry with an
    inclusion proof under a checkpoint of the same log, which is itself checked, and the
    re-fold is run again with it.
    """
    cp, items = _logged(proofs, log_vkey)
    chosen = _relevant(items)
    party = chosen[-1].party
    if party is None:
        return None
    doc = UnauthorisedKeyChange(
        cp.origin,
        party,
        chosen[-1].index,
        "",
        cp,
        secretariat_vkey,
        dict(key_recovery_quorums or {}),
        tuple(it.proof for it in chosen),
    )
    try:
        return verify_unauthorised_key_change(doc.to_json(), log_vkey)
    except VerificationError as e:
        if "no unauthorised key change" in str(e):
            return None
        raise


def verify_unauthorised_key_change(doc: str | Mapping[str, Any], log_vkey: str) -> UnauthorisedKeyChange:
    """Re-check an ``UnauthorisedKeyChange`` document with the log's key only; raise unless
    its entries, proven under one log-signed checkpoint and re-folded with
    ``cbmnet.acts.registry``, show its last entry is a key change not allowed to its signer."""
    d = _doc(doc, UNAUTHORISED_KEY_CHANGE)
    entries, quorums = d.get("entries"), d.get("key_recovery_quorums", {})
    if not isinstance(entries, list):
        raise FormatError(f"{UNAUTHORISED_KEY_CHANGE}: 'entries' must be a list of tlog-proofs")
    if not isinstance(quorums, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in quorums.items()
    ):
        raise FormatError(f"{UNAUTHORISED_KEY_CHANGE}: 'key_recovery_quorums' must map ids to numbers")
    sec_text = _str(d, "secretariat_vkey")
    sec = parse_verifier_key(sec_text).public_key
    cp, items = _logged(entries, log_vkey)
    last = items[-1]
    if last.index != d.get("index") or last.party != d.get("party"):
        raise FormatError(
            f"{UNAUTHORISED_KEY_CHANGE}: 'index' and 'party' must name the last entry "
            f"({last.index}, {last.party!r})"
        )
    registers = last.act is not None and last.act.kind == "party.register"
    if not registers and not any(
        it.act is not None and it.act.kind == "party.register" and it.party == last.party
        for it in items[:-1]
    ):
        raise FormatError(f"{UNAUTHORISED_KEY_CHANGE}: the registration of {last.party!r} is missing")
    finding = _offence(items, sec, quorums)
    return UnauthorisedKeyChange(
        cp.origin,
        str(last.party),
        last.index,
        finding,
        cp,
        sec_text,
        dict(quorums),
        tuple(it.proof for it in items),
    )


__all__ = [
    "BackdatedEntry",
    "RewrittenEntry",
    "SplitView",
    "UnauthorisedKeyChange",
    "backdated_entry",
    "rewritten_entry",
    "split_view_from_checkpoints",
    "split_view_from_proofs",
    "unauthorised_key_change",
    "verify_backdated_entry",
    "verify_rewritten_entry",
    "verify_split_view",
    "verify_unauthorised_key_change",
]
