"""C2SP checkpoint bodies (c2sp.org/tlog-checkpoint): origin, size, root, extensions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cbmnet.errors import FormatError
from cbmnet.ledger.encoding import b64, parse_uint, unb64
from cbmnet.ledger.merkle import HASH_SIZE

MAX_EXTENSIONS = 16


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement of a log: "my tree of ``size`` leaves has root ``root_hash``"."""

    origin: str
    size: int
    root_hash: bytes
    extensions: list[str] = field(default_factory=list)

    def body(self) -> str:
        return format_checkpoint(self.origin, self.size, self.root_hash, self.extensions)


def _valid_line(line: str) -> bool:
    return bool(line) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in line)


def format_checkpoint(origin: str, size: int, root_hash: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint body text, ending in a newline."""
    if not _valid_line(origin) or origin != origin.strip():
        raise FormatError(f"checkpoint: invalid origin {origin!r}")
    if size < 0:
        raise FormatError(f"checkpoint: negative tree size {size}")
    if len(root_hash) != HASH_SIZE:
        raise FormatError("checkpoint: root hash must be 32 bytes")
    for e in extensions:
        if not _valid_line(e):
            raise FormatError(f"checkpoint: invalid extension line {e!r}")
    lines = [origin, str(size), b64(root_hash), *extensions]
    return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text, without signatures)."""
    if not text.endswith("\n"):
        raise FormatError("checkpoint: body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint: needs origin, size and root hash lines")
    origin, size_s, root_s, *ext = lines
    if not _valid_line(origin):
        raise FormatError("checkpoint: empty or invalid origin line")
    size = parse_uint(size_s, "checkpoint: tree size")
    root = unb64(root_s, "checkpoint: root hash")
    if len(root) != HASH_SIZE:
        raise FormatError("checkpoint: root hash must be 32 bytes")
    if len(ext) > MAX_EXTENSIONS:
        raise FormatError(f"checkpoint: more than {MAX_EXTENSIONS} extension lines")
    for line in ext:
        if not _valid_line(line):
            raise FormatError("checkpoint: empty or invalid extension line")
    return Checkpoint(origin, size, root, list(ext))
