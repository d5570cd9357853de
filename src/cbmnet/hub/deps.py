"""What the routers share: the hub instance, the caller and its credentials, the limits.

Every route reaches the app's ``Hub`` and its limits through ``request.app.state`` (set
by ``create_app``), never through a closure: ``HubDep`` for the API's routes, ``hub_from``
where a route already holds the request or the WebSocket. The API's caller is a bearer
token (``Caller``); the dashboard's is a session cookie (``who``). Both are bound to a key
still active in the log, checked after catching the state up with the log.
"""

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from starlette.requests import HTTPConnection

from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import AuthError, CbmnetError, FormatError
from cbmnet.hub import auth
from cbmnet.hub.limits import Bucket, Evaluations
from cbmnet.hub.service import Hub

COOKIE = "cbmnet_session"
"""The dashboard's session cookie (path ``/dashboard``, HttpOnly, SameSite=Strict)."""
MAX_PAGE = 1000
AS_OF_HORIZON_DAYS = 400
"""How far after now ``as_of`` may look. Every yearly duty of the agreements (annual
exchanges and calendars, quota years) falls due again within 366 days, so 400 days
ahead shows the next due date of each with a month to spare. Further out the engine
only multiplies obligations nobody can act on yet, at up to seconds of work each."""


@dataclass(frozen=True)
class Limits:
    """One app's budgets: writes per address, proven acts per author, evaluations per party."""

    writes: Bucket
    party_writes: Bucket
    evaluations: Evaluations


# ---- the hub and its limits ------------------------------------------------------------


def hub_from(conn: HTTPConnection) -> Hub:
    """The app's hub, from a request or a WebSocket."""
    hub: Hub = conn.app.state.hub
    return hub


async def the_hub(request: Request) -> Hub:
    """``hub_from`` as a dependency (async: resolved on the event loop, no thread hop)."""
    return hub_from(request)


HubDep = Annotated[Hub, Depends(the_hub)]


def limits_of(conn: HTTPConnection) -> Limits:
    limits: Limits = conn.app.state.limits
    return limits


def limited(request: Request, who: str) -> None:
    """Spend one write of ``who`` (else of the client's address): 429 beyond the budget."""
    limits_of(request).writes.take(who or (request.client.host if request.client else "?"))


# ---- the API's caller: a bearer token ----------------------------------------------------


def bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError(
            "send 'Authorization: Bearer <token>' (POST /v1/auth/challenge, then /v1/auth/token)"
        )
    return authorization.removeprefix("Bearer ").strip()


def token_party(hub: Hub, authorization: str | None) -> tuple[str, str]:
    """(party, token) from the token's MAC and expiry alone: cheap enough for the event loop.

    The budget is keyed by it before anything queues; whether the token's key is still
    active is checked (``credentials``) in the evaluation thread, before any work.
    """
    token = bearer(authorization)
    return auth.read_token(hub.token_secret, token, int(time.time()))[0], token


def credentials(hub: Hub, token: str) -> tuple[str, bytes, int]:
    """(party, key, expiry) of a token whose key is still active in the log.

    It catches the state up with the log first (a revocation another process logged
    counts at once), so a route behind ``Caller`` reads a current state without syncing
    again.
    """
    party, key, exp = auth.read_token(hub.token_secret, token, int(time.time()))
    hub.sync()
    if not hub.views.key_active(party, key):
        raise AuthError(f"the key this token was issued to is no longer active for {party!r}")
    return party, key, exp


def party_of(hub: Hub, token: str) -> str:
    return credentials(hub, token)[0]


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The party a bearer token speaks for (its key must still be active)."""
    return party_of(hub_from(request), bearer(authorization))


def maybe_caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str | None:
    return caller(request, authorization) if authorization else None


Caller = Annotated[str, Depends(caller)]
MaybeCaller = Annotated[str | None, Depends(maybe_caller)]
Authorization = Annotated[str | None, Header()]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
After = Annotated[int, Query(ge=-1, lt=2**62)]
Text = Annotated[str | None, Query(max_length=128)]
Size = Annotated[int, Query(ge=0, lt=2**62)]
EntryIndex = Annotated[int, Path(ge=0, lt=2**62)]


@dataclass(frozen=True)
class EntryQuery:
    """The filters of an entry list (the inbox, the entries), as the caller gave them, the
    times in milliseconds: the hub matches its entries, a mirror its rows, against them."""

    agreement: str | None
    form: str | None
    author: str | None
    kind: str | None
    since: int | None
    until: int | None


def entry_query(
    agreement: Text = None,
    form: Text = None,
    author: Text = None,
    kind: Text = None,
    since: Text = None,
    until: Text = None,
) -> EntryQuery:
    lo = parse_time(since, "since") if since else None
    hi = parse_time(until, "until") if until else None
    return EntryQuery(agreement, form, author, kind, lo, hi)


EntryFilters = Annotated[EntryQuery, Depends(entry_query)]


def as_of_ms(text: str | None, now: int) -> int:
    """``as_of`` in milliseconds (default: now), refused outside 1970 .. now + the horizon."""
    if not text:
        return now
    at = parse_time(text, "as_of")
    latest = now + AS_OF_HORIZON_DAYS * 86_400_000
    if not 0 <= at <= latest:
        raise FormatError(
            f"as_of: {text!r} is out of range: from 1970-01-01T00:00:00Z to {format_time(latest)} "
            f"({AS_OF_HORIZON_DAYS} days after now)"
        )
    return at


# ---- the dashboard's caller: a session cookie --------------------------------------------


class NotSignedIn(Exception):
    """No usable session: the page answers 401 with the sign-in explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def session_of(hub: Hub, session: str) -> tuple[str, bytes, int]:
    """(party, key, expiry) of a dashboard session cookie that is neither signed out nor
    bound to a key retired or revoked in the log (caught up first, like ``credentials``)."""
    party, key, nonce, exp = auth.read_session(hub.token_secret, session[:4096], int(time.time()))
    if hub.rstore.nonce_spent(nonce):
        raise AuthError("session: signed out; sign in again")
    hub.sync()
    if not hub.views.key_active(party, key):
        raise AuthError(f"the key this session was opened with is no longer active for {party!r}")
    return party, key, exp


def who(request: Request) -> str:
    """The signed-in party; the session check also catches the state up with the log."""
    session = request.cookies.get(COOKIE)
    if not session:
        raise NotSignedIn("you are not signed in")
    try:
        return session_of(hub_from(request), session)[0]
    except CbmnetError as e:
        raise NotSignedIn(str(e)[:300]) from None


def evaluating(request: Request) -> str:
    """The signed-in party, for a page that runs the compliance engine: it spends from
    the same per-party budget as the API's evaluations (429 with Retry-After beyond)."""
    party = who(request)
    limits_of(request).evaluations.take(party)
    return party
