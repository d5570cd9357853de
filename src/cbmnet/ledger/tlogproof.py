"""Offline proofs (c2sp.org/tlog-proof@v1) and witness requests (c2sp.org/tlog-witness).

cbmnet puts the whole log entry (time and envelope, see ``entry``) in the proof's
``extra`` line. The spec calls extra data unauthenticated; here it is authenticated by
the proof itself, because its leaf hash is what the inclusion proof must lead from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger.encoding import b64, parse_uint, unb64
from cbmnet.ledger.entry import LogEntry, decode_entry
from cbmnet.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from cbmnet.ledger.policy import AgreedCheckpoint, Policy, verify_checkpoint

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 63


def _hashes(lines: Sequence[str], what: str) -> list[bytes]:
    if len(lines) > MAX_PROOF_HASHES:
        raise FormatError(f"{what}: more than {MAX_PROOF_HASHES} proof hashes")
    out = []
    for i, line in enumerate(lines):
        h = unb64(line, f"{what}: proof hash {i}")
        if len(h) != HASH_SIZE:
            raise FormatError(f"{what}: proof hash {i} is not 32 bytes")
        out.append(h)
    return out


@dataclass(frozen=True)
class ProofBundle:
    index: int
    proof: list[bytes]
    checkpoint: str
    """The signed checkpoint note, verbatim, with any cosignatures."""
    extra: bytes | None = None


def format_proof(bundle: ProofBundle) -> str:
    lines = [PROOF_HEADER]
    if bundle.extra is not None:
        lines.append("extra " + b64(bundle.extra))
    lines.append(f"index {bundle.index}")
    lines.extend(b64(h) for h in bundle.proof)
    return "\n".join(lines) + "\n\n" + bundle.checkpoint


def parse_proof(text: str) -> ProofBundle:
    head, sep, checkpoint = text.partition("\n\n")
    if not sep or not checkpoint:
        raise FormatError("tlog-proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != PROOF_HEADER:
        raise FormatError(f"tlog-proof: first line must be {PROOF_HEADER}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = unb64(rest[0][6:], "tlog-proof: extra")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index "):
        raise FormatError("tlog-proof: missing index line")
    index = parse_uint(rest[0][6:], "tlog-proof: index")
    return ProofBundle(index, _hashes(rest[1:], "tlog-proof"), checkpoint, extra)


@dataclass(frozen=True)
class VerifiedEntry:
    index: int
    entry: LogEntry
    agreed: AgreedCheckpoint


MAX_CLOCK_SKEW_MS = 300_000
"""How far a log's integration time may run ahead of a witness's clock (5 minutes)."""


def verify_entry_proof(
    text: str, policy: Policy, *, max_skew_ms: int = MAX_CLOCK_SKEW_MS
) -> VerifiedEntry:
    """Verify a cbmnet proof bundle offline: checkpoint under the policy, then inclusion.

    The entry's integration time must not be later than the earliest cosignature of a
    policy witness (plus ``max_skew_ms``): a witness that cosigned at T saw the entry by
    T, so a log cannot date an entry after that. Returns the logged entry; checking the
    envelope's signature against its author's key is the caller's step.
    """
    bundle = parse_proof(text)
    if bundle.extra is None:
        raise FormatError("tlog-proof: no extra line; a cbmnet proof carries its entry there")
    entry = decode_entry(bundle.extra)
    agreed = verify_checkpoint(bundle.checkpoint, policy)
    cp = agreed.checkpoint
    verify_inclusion(leaf_hash(bundle.extra), bundle.index, cp.size, bundle.proof, cp.root_hash)
    times = [
        (s.timestamp, s.name)
        for s in agreed.note.signatures
        if s.timestamp is not None and (s.name, s.key_id) in agreed.witness_ids
    ]
    if times:
        first, name = min(times)
        if entry.integrated_ms > first * 1000 + max_skew_ms:
            raise VerificationError(
                f"entry {bundle.index} claims integration at {entry.integrated_at}, after "
                f"witness {name} cosigned a tree containing it (unix time {first})"
            )
    return VerifiedEntry(bundle.index, entry, agreed)


@dataclass(frozen=True)
class AddCheckpoint:
    """A tlog-witness add-checkpoint request body."""

    old_size: int
    proof: list[bytes]
    checkpoint: str


def format_add_checkpoint(req: AddCheckpoint) -> str:
    lines = [f"old {req.old_size}", *(b64(h) for h in req.proof)]
    return "\n".join(lines) + "\n\n" + req.checkpoint


def parse_add_checkpoint(text: str) -> AddCheckpoint:
    head, sep, checkpoint = text.partition("\n\n")
    if not sep or not checkpoint:
        raise FormatError("add-checkpoint: no blank line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise FormatError("add-checkpoint: first line must be 'old <size>'")
    old = parse_uint(lines[0][4:], "add-checkpoint: old size")
    return AddCheckpoint(old, _hashes(lines[1:], "add-checkpoint"), checkpoint)
