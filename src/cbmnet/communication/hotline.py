"""Hotline bodies, end-to-end encrypted to each channel member with HPKE (RFC 9180).

The hub stores and logs only ciphertext. Each member (the sender included, so it can
read its own traffic back) gets its own single-shot HPKE ciphertext of the body. The
``info`` string binds a ciphertext to the log, channel, message id and sender: a
ciphertext lifted into another message, or re-sent under another party's signature,
does not open.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from cbmnet.errors import FormatError, VerificationError

SUITE_NAME = "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-128-GCM"
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
MAX_BODY_BYTES = 16 * 1024
"""A hotline message is brief (FLASH traffic is): 16 KiB of text per message."""

PRECEDENCES = ("flash", "immediate", "priority", "routine")


def info(origin: str, channel: str, message_id: str, sender: str) -> bytes:
    return f"cbmnet/hotline/v1\n{origin}\n{channel}\n{message_id}\n{sender}\n".encode()


def body_info(origin: str, agreement: str, event_id: str, sender: str) -> bytes:
    """The binding of a restricted event's sealed body: lifted into another event, it does
    not open."""
    return f"cbmnet/event-body/v1\n{origin}\n{agreement}\n{event_id}\n{sender}\n".encode()


def generate_encryption_key() -> tuple[str, str]:
    """A new X25519 key pair as (private, public), each standard base64 of 32 bytes."""
    k = x25519.X25519PrivateKey.generate()
    return (
        base64.b64encode(k.private_bytes_raw()).decode(),
        base64.b64encode(k.public_key().public_bytes_raw()).decode(),
    )


def public_key(raw: bytes, what: str) -> x25519.X25519PublicKey:
    if len(raw) != 32:
        raise FormatError(f"{what}: an X25519 public key is 32 bytes, not {len(raw)}")
    try:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise FormatError(f"{what}: not an X25519 public key ({e})") from None


def private_key(text: str, what: str) -> x25519.X25519PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise FormatError(f"{what}: not base64") from None
    if len(raw) != 32:
        raise FormatError(f"{what}: an X25519 private key is 32 bytes, not {len(raw)}")
    return x25519.X25519PrivateKey.from_private_bytes(raw)


def seal(body: bytes, recipients: Mapping[str, bytes], bind: bytes) -> dict[str, str]:
    """Encrypt ``body`` to each recipient's X25519 public key: {party: base64 ciphertext}."""
    if len(body) > MAX_BODY_BYTES:
        raise FormatError(f"hotline body: {len(body)} bytes; at most {MAX_BODY_BYTES}")
    return {
        party: base64.b64encode(
            _SUITE.encrypt(body, public_key(pub, f"key of {party}"), info=bind)
        ).decode()
        for party, pub in sorted(recipients.items())
    }


def open_sealed(ciphertext_b64: str, key: x25519.X25519PrivateKey, bind: bytes) -> bytes:
    """Decrypt one member's ciphertext; a wrong key, binding or tampered text fails."""
    try:
        ct = base64.b64decode(ciphertext_b64, validate=True)
        return _SUITE.decrypt(ct, key, info=bind)
    except (ValueError, InvalidTag) as e:
        raise VerificationError(
            f"hotline body does not open with this key and binding ({e!r})"
        ) from None
