"""The two textual encodings every C2SP format here uses, parsed strictly in one place."""

from __future__ import annotations

import base64
import binascii

from cbmnet.errors import FormatError

MAX_UINT = (1 << 63) - 1


def b64(data: bytes) -> str:
    """Standard, padded base64 (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    """Strict standard base64; anything else is a ``FormatError`` naming ``what``."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise FormatError(f"{what}: not standard base64") from e


def parse_uint(text: str, what: str, limit: int = MAX_UINT) -> int:
    """An ASCII decimal without leading zeros (``0`` itself allowed), at most ``limit``."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 20:
        raise FormatError(f"{what} {text[:24]!r} is not a decimal without leading zeros")
    value = int(text)
    if value > limit:
        raise FormatError(f"{what} {value} is out of range")
    return value
