"""Read access by key: a party signs a fresh server challenge and gets a short-lived token.

No passwords and no server-side sessions: challenges and tokens are MAC'd with a secret
all hub processes of one database share, so any process accepts any process's token.
A token names the key that earned it; it stops working the moment that key is retired or
revoked in the log, whatever its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cbmnet.errors import AuthError

CHALLENGE_TTL_S = 120
AUTH_CONTEXT = "cbmnet/auth/v1"


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, kind: str, body: str) -> str:
    return _b64u(hmac.new(secret, f"{kind}\n{body}".encode(), hashlib.sha256).digest())


def _seal(secret: bytes, kind: str, doc: dict[str, object]) -> str:
    body = _b64u(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, kind, body)}"


def _open(secret: bytes, kind: str, text: str, now_s: int) -> dict[str, object]:
    body, _, mac = text.partition(".")
    if not mac or not mac.isascii() or not hmac.compare_digest(mac, _mac(secret, kind, body)):
        raise AuthError(f"{kind}: not issued by this hub")
    try:
        doc = json.loads(_unb64u(body))
    except (ValueError, RecursionError):
        raise AuthError(f"{kind}: unreadable") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exp"), int) or doc["exp"] < now_s:
        raise AuthError(f"{kind}: expired; ask for a new one")
    return doc


def challenge(secret: bytes, party: str, now_s: int) -> str:
    return _seal(
        secret, "challenge", {"p": party, "n": secrets.token_hex(16), "exp": now_s + CHALLENGE_TTL_S}
    )


def signed_message(origin: str, challenge_text: str) -> bytes:
    """What the party signs with its Ed25519 key: bound to this hub's log and the challenge."""
    return f"{AUTH_CONTEXT}\n{origin}\n{challenge_text}\n".encode()


def issue_token(
    secret: bytes,
    origin: str,
    challenge_text: str,
    signature: bytes,
    keys: list[bytes],
    now_s: int,
    ttl_s: int,
) -> tuple[str, str, int]:
    """Check the signed challenge against the party's active keys; returns (token, party, exp)."""
    doc = _open(secret, "challenge", challenge_text, now_s)
    party = str(doc["p"])
    msg = signed_message(origin, challenge_text)
    for k in keys:
        try:
            Ed25519PublicKey.from_public_bytes(k).verify(signature, msg)
        except (InvalidSignature, ValueError):
            continue
        exp = now_s + ttl_s
        return _seal(secret, "token", {"p": party, "k": _b64u(k), "exp": exp}), party, exp
    raise AuthError(f"the challenge is not signed by an active key of {party!r}")


def read_token(secret: bytes, token: str, now_s: int) -> tuple[str, bytes, int]:
    """The (party, key, expiry) of a token; the caller checks the key is still active."""
    doc = _open(secret, "token", token, now_s)
    exp = doc["exp"]
    assert isinstance(exp, int)  # _open checked it
    return str(doc["p"]), _unb64u(str(doc["k"])), exp
