"""What a party signs to sign in to a hub: the exact bytes, shared by the hub and the party.

The hub issues a challenge; the party signs ``signed_message`` with its Ed25519 key and
trades the signature for a short-lived token (``cbmnet.hub.auth`` checks it). Pure.
"""

from __future__ import annotations

AUTH_CONTEXT = "cbmnet/auth/v1"


def signed_message(origin: str, challenge_text: str) -> bytes:
    """What the party signs with its Ed25519 key: bound to this hub's log and the challenge."""
    return f"{AUTH_CONTEXT}\n{origin}\n{challenge_text}\n".encode()


def mirror_origin(origin: str) -> str:
    """What a party signs in to its national mirror under (issue 16): never a log's origin
    (a note key name has no space), so a mirror's sign-in never signs anyone in to the hub,
    and a hub's challenge relayed by a mirror is never signed for the mirror."""
    return f"{origin} mirror"
