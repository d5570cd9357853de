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
