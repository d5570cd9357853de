"""Reading the files a user names on the command line: bounded, and named in every error."""

from __future__ import annotations

import sys

from cbmnet.errors import FormatError

MAX_INPUT_BYTES = 16 << 20
"""Keys, envelopes, notes, proofs and agreement files: far below this."""
MAX_EVENTS_BYTES = 512 << 20
"""An events file for ``cbmnet check``: a year of a large regime's traffic is a million
events, about 170 MB of JSON (the engine takes up to ``MAX_EVENTS``); 16 MiB stopped at
about 100,000. Reading and parsing this much takes a few GB of memory, no more."""


def read_bytes(path: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """A file (or - for stdin), at most ``limit`` bytes; a missing file is one line naming it."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as e:
        raise FormatError(f"{path}: {e.strerror}") from e
    if len(data) > limit:
        raise FormatError(f"{path}: larger than {limit} bytes")
    return data


def read_text(path: str, limit: int = MAX_INPUT_BYTES) -> str:
    """``read_bytes`` as UTF-8 text; bad UTF-8 is one line naming the file and byte."""
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
