"""Identity and sign-in: a challenge signed with a party's key becomes a bearer token; a
token becomes the one-time code of a dashboard sign-in link; the registry of parties."""

import base64
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import AuthError, FormatError
from cbmnet.hub import auth
from cbmnet.hub.deps import Caller, HubDep, bearer, credentials, limited
from cbmnet.ledger.encoding import b64

router = APIRouter(tags=["identity"])


class ChallengeIn(BaseModel):
    party: str = Field(min_length=1, max_length=64)


class TokenIn(BaseModel):
    challenge: str = Field(min_length=1, max_length=1024)
    signature: str = Field(min_length=1, max_length=256, description="base64 Ed25519 signature")


def challenge_party(challenge_text: str) -> str:
    """The party a challenge claims (unauthenticated: ``auth.issue_token`` checks it all)."""
    body = challenge_text.partition(".")[0]
    try:
        doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(doc["p"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise AuthError("challenge: unreadable") from None


@router.post("/v1/auth/challenge")
def auth_challenge(body: ChallengeIn, request: Request, hub: HubDep) -> dict[str, Any]:
    limited(request, "")
    return {
        "challenge": auth.challenge(hub.token_secret, body.party, int(time.time())),
        "origin": hub.log.origin,
    }


@router.post("/v1/auth/token")
def auth_token(body: TokenIn, request: Request, hub: HubDep) -> dict[str, Any]:
    limited(request, "")
    try:
        sig = base64.b64decode(body.signature, validate=True)
    except ValueError:
        raise FormatError("field 'signature': not standard base64") from None
    hub.sync()
    party_claim = challenge_party(body.challenge)
    keys = hub.views.signing_keys(party_claim)
    now = int(time.time())
    token, party, exp = auth.issue_token(
        hub.token_secret,
        hub.log.origin,
        body.challenge,
        sig,
        keys,
        now,
        hub.settings.token_ttl_s,
        lambda nonce, until: hub.rstore.spend_nonce(nonce, until, now),
    )
    return {"token": token, "party": party, "expires": format_time(exp * 1000)}


@router.post("/v1/auth/signin-code")
def auth_signin_code(
    request: Request, hub: HubDep, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """A one-time code for the dashboard's sign-in link (``cbmnet dashboard login``).

    The link never carries the bearer token: a leaked link is one short-lived sign-in,
    used up by the first to open it, and never a key to the API.
    """
    limited(request, "")
    party, key, _exp = credentials(hub, bearer(authorization))
    code, exp = auth.signin_code(hub.token_secret, party, key, int(time.time()))
    return {"code": code, "party": party, "expires": format_time(exp * 1000)}


@router.get("/v1/parties")
def parties(_party: Caller, hub: HubDep) -> dict[str, Any]:
    return {
        "parties": [
            {
                "id": p.id,
                "name": p.name,
                "agreements": list(p.agreements),
                "contact": p.contact,
                "signing_keys": [b64(k) for k in p.active_keys()],
                "key_history": [
                    {
                        "key": b64(k.public),
                        "since": k.since,
                        "until": k.until,
                        "revoked": k.revoked,
                    }
                    for k in p.keys
                ],
                "encryption_key": b64(p.encryption_key),
                "witness_key": p.witness_key,
                "registered_at": p.registered_at,
            }
            for p in hub.views.parties()
        ]
    }
