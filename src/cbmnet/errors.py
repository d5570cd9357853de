"""One exception tree for cbmnet.

Every error a user can cause or meet is a :class:`CbmnetError`. The CLI and the hub map
the tree to exit codes and HTTP statuses in one place each (``cli.main`` and, later,
``hub``), from the two class attributes below, so the mapping never drifts.
"""

from __future__ import annotations


class CbmnetError(Exception):
    """Base of every cbmnet error; its message says what was wrong and where."""

    exit_code: int = 2
    http_status: int = 400

    def diagnostics(self) -> str:
        """Human text for a CLI or an HTTP error body."""
        return str(self)


class FormatError(CbmnetError):
    """Malformed input: a key, note, checkpoint, envelope, proof or file that does not parse."""

    exit_code = 2
    http_status = 400


class VerificationError(CbmnetError):
    """A signature, proof, consistency or audit check failed: the input parsed but is not true."""

    exit_code = 1
    http_status = 422


class IntegrityError(VerificationError):
    """The store holds rows the log could not have written: altered behind its back."""


class PolicyError(VerificationError):
    """A checkpoint is validly signed but lacks the witness quorum a policy requires."""


class ConflictError(CbmnetError):
    """The request contradicts state already recorded (e.g. a witness saw a larger tree)."""

    exit_code = 1
    http_status = 409

    def __init__(self, message: str, *, current_size: int | None = None) -> None:
        super().__init__(message)
        self.current_size = current_size


class NotFoundError(CbmnetError):
    """What was asked for does not exist (an index past the tree, an unknown origin)."""

    exit_code = 2
    http_status = 404


class StoreError(CbmnetError):
    """The store cannot be opened or used (bad URL, server down, wrong schema version)."""

    exit_code = 2
    http_status = 503


class AuthError(CbmnetError):
    """No valid credentials: a missing, expired or forged token, or an unknown key."""

    exit_code = 3
    http_status = 401


class ForbiddenError(CbmnetError):
    """The caller is known but may not do or see this (not addressed to it, revoked key)."""

    exit_code = 3
    http_status = 403


class TooLargeError(FormatError):
    """An input exceeds a size or count limit."""

    http_status = 413


class RateLimitedError(CbmnetError):
    """Too many requests from one caller in a short time; retry later."""

    exit_code = 2
    http_status = 429


ERROR_CODES: dict[type[CbmnetError], str] = {
    AuthError: "unauthorized",
    ForbiddenError: "forbidden",
    TooLargeError: "too_large",
    RateLimitedError: "rate_limited",
    PolicyError: "policy",
    IntegrityError: "integrity",
    VerificationError: "verification_failed",
    FormatError: "bad_input",
    ConflictError: "conflict",
    NotFoundError: "not_found",
    StoreError: "unavailable",
    CbmnetError: "error",
}
"""The JSON ``error`` code of each class (the first match along the class's MRO)."""


def error_code(err: CbmnetError) -> str:
    for cls in type(err).__mro__:
        if cls in ERROR_CODES:
            return ERROR_CODES[cls]
    return "error"
