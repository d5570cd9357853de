"""The witness's decision (c2sp.org/tlog-witness), as a pure function.

A witness keeps, per origin, the latest checkpoint it cosigned. It cosigns a new one only
if a known log signed it and a consistency proof links it to that latest one; so no two
parties can be shown two histories both carrying its cosignature. Keeping the state and
making check-and-persist atomic is the edge's job (``cbmnet.party.witness``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cbmnet.errors import ConflictError, FormatError, NotFoundError, VerificationError
from cbmnet.ledger.checkpoint import Checkpoint, parse_checkpoint
from cbmnet.ledger.merkle import EMPTY_ROOT, verify_consistency
from cbmnet.ledger.note import Ed25519Verifier, Signer, open_note, sign_note, split_note
from cbmnet.ledger.tlogproof import AddCheckpoint


class UnknownLogError(NotFoundError):
    """The checkpoint's origin is not a log this witness follows (HTTP 404)."""


class BadLogSignatureError(VerificationError):
    """No valid signature by the origin's log key (HTTP 403 in tlog-witness)."""

    http_status = 403


class OldSizeError(FormatError):
    """``old`` is larger than the checkpoint's size (HTTP 400)."""


@dataclass(frozen=True)
class Latest:
    """What a witness remembers of one origin."""

    size: int
    root_hash: bytes


def check_add_checkpoint(
    req: AddCheckpoint,
    logs: Mapping[str, Ed25519Verifier],
    latest: Latest | None,
) -> Checkpoint:
    """Decide whether to cosign; returns the checkpoint to cosign or raises.

    ``logs`` maps an origin to its log's verifier. Errors follow tlog-witness: unknown
    origin (404), bad log signature (403), old > new (400), ``old`` not the size this
    witness holds (409, carrying the size it holds), bad proof or a different root for the
    same size (422).
    """
    text, _ = split_note(req.checkpoint)
    cp = parse_checkpoint(text)
    verifier = logs.get(cp.origin)
    if verifier is None:
        raise UnknownLogError(f"witness: unknown log origin {cp.origin!r}")
    try:
        open_note(req.checkpoint, [verifier])
    except VerificationError as e:
        raise BadLogSignatureError(f"witness: checkpoint not signed by its log: {e}") from e
    if req.old_size > cp.size:
        raise OldSizeError(f"witness: old size {req.old_size} exceeds checkpoint size {cp.size}")
    held = latest.size if latest else 0
    if req.old_size != held:
        raise ConflictError(
            f"witness: holds size {held} for {cp.origin}, request says {req.old_size}",
            current_size=held,
        )
    if latest is not None and cp.size == latest.size and cp.root_hash != latest.root_hash:
        raise ConflictError(
            f"witness: already cosigned another root for size {cp.size} of {cp.origin}",
            current_size=held,
        )
    if latest is None:
        verify_consistency(0, cp.size, req.proof, EMPTY_ROOT, cp.root_hash)
    else:
        verify_consistency(latest.size, cp.size, req.proof, latest.root_hash, cp.root_hash)
    return cp


def cosignature_lines(checkpoint_body: str, cosigner: Signer) -> str:
    """The cosignature line(s) a witness answers with (signature lines only)."""
    signed = sign_note(checkpoint_body, cosigner)
    return signed[len(checkpoint_body) + 1 :]
