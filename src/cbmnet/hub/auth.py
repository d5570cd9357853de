"""Read access by key: a party signs a fresh server challenge and gets a short-lived token.

No passwords: challenges, tokens, dashboard sign-in codes and sessions are MAC'd with a
secret all hub processes of one database share, so any process accepts any process's.
Each kind is MAC'd under its own name, so one is never accepted as another (a dashboard
cookie is not an API token). A challenge and a sign-in code carry a nonce the caller
spends once in the store (``redeem``), so neither can be redeemed twice, on any process;
a session carries one that sign-out spends, which revokes it. A token or session names the
key that earned it; it stops working the moment that key is retired or revoked in the
log, whatever its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cbmnet.acts.signin import signed_message
from cbmnet.errors import AuthError

CHALLENGE_TTL_S = 120
SIGNIN_TTL_S = 60
"""A dashboard sign-in link is used at once, by the operator who asked for it."""


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


def issue_token(
    secret: bytes,
    origin: str,
    challenge_text: str,
    signature: bytes,
    keys: list[bytes],
    now_s: int,
    ttl_s: int,
    redeem: Callable[[str, int], bool],
) -> tuple[str, str, int]:
    """Check the signed challenge against the party's active keys; returns (token, party, exp).

    ``redeem(nonce, exp)`` spends the challenge's nonce (False: spent already), after the
    signature is checked, so nobody but its signer can use up a challenge.
    """
    doc = _open(secret, "challenge", challenge_text, now_s)
    party = str(doc["p"])
    msg = signed_message(origin, challenge_text)
    for k in keys:
        try:
            Ed25519PublicKey.from_public_bytes(k).verify(signature, msg)
        except (InvalidSignature, ValueError):
            continue
        _redeem(doc, "challenge", redeem)
        exp = now_s + ttl_s
        return _seal(secret, "token", {"p": party, "k": _b64u(k), "exp": exp}), party, exp
    raise AuthError(f"the challenge is not signed by an active key of {party!r}")


def _redeem(doc: dict[str, object], kind: str, redeem: Callable[[str, int], bool]) -> None:
    nonce, exp = doc.get("n"), doc["exp"]
    if not isinstance(nonce, str) or not isinstance(exp, int) or not redeem(nonce, exp):
        raise AuthError(f"{kind}: already used; ask for a new one")


def read_token(secret: bytes, token: str, now_s: int) -> tuple[str, bytes, int]:
    """The (party, key, expiry) of a token; the caller checks the key is still active."""
    doc = _open(secret, "token", token, now_s)
    exp = doc["exp"]
    assert isinstance(exp, int)  # _open checked it
    return str(doc["p"]), _unb64u(str(doc["k"])), exp


def _party_key(doc: dict[str, object], kind: str) -> tuple[str, bytes, str, int]:
    try:
        party, key, nonce, exp = str(doc["p"]), _unb64u(str(doc["k"])), str(doc["n"]), doc["exp"]
    except (KeyError, ValueError):
        raise AuthError(f"{kind}: unreadable") from None
    assert isinstance(exp, int)  # _open checked it
    return party, key, nonce, exp


def signin_code(secret: bytes, party: str, key: bytes, now_s: int) -> tuple[str, int]:
    """A one-time dashboard sign-in code for a signed-in party: (code, exp)."""
    exp = now_s + SIGNIN_TTL_S
    doc = {"p": party, "k": _b64u(key), "n": secrets.token_hex(16), "exp": exp}
    return _seal(secret, "signin", doc), exp


def read_signin(secret: bytes, code: str, now_s: int) -> tuple[str, bytes, str, int]:
    """(party, key, nonce, exp) of a sign-in code; the caller spends the nonce to use it."""
    return _party_key(_open(secret, "signin", code, now_s), "sign-in code")


def redeem_signin(
    secret: bytes, code: str, now_s: int, redeem: Callable[[str, int], bool]
) -> tuple[str, bytes]:
    """Use a sign-in code once: (party, key); a second use is refused."""
    doc = _open(secret, "signin", code, now_s)
    party, key, _nonce, _exp = _party_key(doc, "sign-in code")
    _redeem(doc, "sign-in code", redeem)
    return party, key


def issue_session(secret: bytes, party: str, key: bytes, now_s: int, ttl_s: int) -> tuple[str, int]:
    """A dashboard session (the cookie's value, never an API token): (session, exp)."""
    exp = now_s + ttl_s
    doc = {"p": party, "k": _b64u(key), "n": secrets.token_hex(16), "exp": exp}
    return _seal(secret, "session", doc), exp


def read_session(secret: bytes, session: str, now_s: int) -> tuple[str, bytes, str, int]:
    """(party, key, nonce, exp) of a session; the caller checks the nonce is not revoked."""
    return _party_key(_open(secret, "session", session, now_s), "session")
