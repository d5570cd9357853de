"""A party's reads, answered by its own mirror while the hub is down (ADR 0012).

The mirror signs its party in as the hub does, with the party's key and no password: a
challenge the party signs, a short-lived token, a one-time dashboard sign-in code. Only
the key the mirror was started with (``cbmnet mirror --key``) is accepted, and what the
party signs names the mirror (``signin.mirror_origin``), so a signature given to a
mirror never signs anyone in to the hub, nor the reverse.

What it answers, and on whose word:

* ``/v1/entries``, ``/v1/inbox``, ``/v1/entries/N``: the entries the party may read,
  each verified against the signed tree; their description (author, kind, agreement,
  form) is the hub's, checked against the envelope where the envelope says it;
* ``/v1/entries/N/proof``: an inclusion proof from the mirror's own tree;
* ``/v1/parties``, ``/v1/channels``, ``/v1/obligations``, ``/v1/indicators``: the hub's
  last answer, as fetched (``mirror.fetched_at``); the mirror does not recompute them (it
  holds only its party's entries, and the engine judges on all of them);
* anything that acts (submit, acknowledge, send) is refused: acts are logged by the hub.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from cbmnet.acts.signin import mirror_origin
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import AuthError, FormatError, NotFoundError, StoreError
from cbmnet.hub import auth
from cbmnet.hub.api.identity import ChallengeIn, TokenIn, challenge_party
from cbmnet.hub.deps import (
    COOKIE,
    After,
    EntryFilters,
    EntryIndex,
    EntryQuery,
    NotSignedIn,
    Page,
    Text,
)
from cbmnet.hub.limits import Bucket
from cbmnet.hub.web.render import add_signin_routes, render
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.tlogproof import format_proof
from cbmnet.log.service import TransparencyLog
from cbmnet.mirror.follow import Registration, describe, registration
from cbmnet.store.sql import Store

TOKEN_SECRET = "mirror_token_secret"  # noqa: S105 - the meta key it is kept under
TOKEN_TTL_S = 900
SIGNIN_PER_S = 20.0
"""Sign-in steps per second per client address (bursts of twice that): 429 beyond."""
READ_ONLY = "a mirror is read-only: acts are logged by the hub, not by a party's mirror"


class PartyDesk:
    """What the mirror's party routes share: its store, its party and key, its secret."""

    def __init__(self, store: Store, party: str | None, key: bytes | None) -> None:
        self.store = store
        self.party = party
        self.key = key
        self.log = TransparencyLog(store)
        self.signins = Bucket(SIGNIN_PER_S)
        self._registration: tuple[int | None, Registration] = (None, Registration())
        secret = store.get_meta(TOKEN_SECRET)
        if secret is None:
            store.set_meta(TOKEN_SECRET, secrets.token_hex(32))
            secret = store.get_meta(TOKEN_SECRET)
        assert secret is not None
        self.secret = bytes.fromhex(secret)

    def origin(self) -> str:
        """What the party signs to sign in here: the log's origin, marked as this mirror's."""
        return mirror_origin(str(self.store.get_meta("origin")))

    def keys_of(self, party: str) -> list[bytes]:
        """The key the mirror was started with, for its party; none once the registry the
        hub last showed no longer lists it as active (revoked, or rotated away)."""
        if self.key is None or party != self.party:
            return []
        keys = self.registration().signing_keys
        return [self.key] if keys is None or b64(self.key) in keys else []

    def registration(self) -> Registration:
        """The party's registration as the hub last listed it, read again only when the
        follower kept a new answer (every request checks its key against it)."""
        at = self.store.mirror_answer_time("/v1/parties")
        if at != self._registration[0]:
            self._registration = (at, registration(self.store, self.party))
        return self._registration[1]

    def caller(self, token: str) -> str:
        party, key, _exp = auth.read_token(self.secret, token[:4096], int(time.time()))
        if key not in self.keys_of(party):
            raise AuthError(f"the token's key is not the key this mirror keeps {party!r}'s entries for")
        return party

    def spend(self, nonce: str, until: int) -> bool:
        return self.store.spend_nonce(nonce, until, int(time.time()))

    def open_session(self, code: str) -> tuple[str, str, int]:
        """(party, session, expiry) for a dashboard sign-in code, spent once."""
        now = int(time.time())
        party, key = auth.redeem_signin(self.secret, code, now, self.spend)
        if key not in self.keys_of(party):
            raise AuthError(f"this mirror keeps no entries for {party!r}")
        session, exp = auth.issue_session(self.secret, party, key, now, TOKEN_TTL_S)
        return party, session, exp

    def revoke(self, nonce: str, exp: int) -> None:
        self.spend(nonce, exp)


def _desk(request: Request) -> PartyDesk:
    desk: PartyDesk = request.app.state.desk
    return desk


def _signing_in(request: Request) -> PartyDesk:
    """The desk, once the client's address has spent one sign-in step (before any work)."""
    desk = _desk(request)
    desk.signins.take(request.client.host if request.client else "?")
    return desk


def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("give a bearer token (POST /v1/auth/challenge, then /v1/auth/token)")
    return _desk(request).caller(token.strip())


Caller = Annotated[str, Depends(_caller)]
router = APIRouter()


# ---- sign-in ------------------------------------------------------------------------------


@router.post("/v1/auth/challenge")
def challenge(body: ChallengeIn, request: Request) -> dict[str, Any]:
    desk = _signing_in(request)
    return {
        "challenge": auth.challenge(desk.secret, body.party, int(time.time())),
        "origin": desk.origin(),
    }


@router.post("/v1/auth/token")
async def token(body: TokenIn, request: Request) -> dict[str, Any]:
    import base64

    try:
        sig = base64.b64decode(body.signature, validate=True)
    except ValueError:
        raise FormatError("field 'signature': not standard base64") from None
    desk = _signing_in(request)
    now = int(time.time())
    tok, party, exp = await run_in_threadpool(
        auth.issue_token,
        desk.secret,
        desk.origin(),
        body.challenge,
        sig,
        desk.keys_of(challenge_party(body.challenge)),
        now,
        TOKEN_TTL_S,
        desk.spend,
    )
    return {"token": tok, "party": party, "expires": format_time(exp * 1000)}


@router.post("/v1/auth/signin-code")
def signin_code(party: Caller, request: Request) -> dict[str, Any]:
    desk = _signing_in(request)
    assert desk.key is not None  # a caller was let in with it
    code, exp = auth.signin_code(desk.secret, party, desk.key, int(time.time()))
    return {"code": code, "party": party, "expires": format_time(exp * 1000)}


# ---- entries --------------------------------------------------------------------------------


def _items(
    desk: PartyDesk, party: str, inbox: bool, after: int, limit: int, q: EntryQuery
) -> dict[str, Any]:
    match = dataclasses.asdict(q)
    rows = desk.store.mirror_items(after, limit, not_author=party if inbox else None, match=match)
    out = []
    for idx, text in rows:
        item: dict[str, Any] = json.loads(text)
        held = desk.store.get_entry(idx)
        if held is not None:
            item["envelope"] = json.loads(held.envelope)
        out.append(item)
    return {"items": out, "next": rows[-1][0] if rows else after, "mirror": _stamp(desk)}


@router.get("/v1/entries")
def entries(
    party: Caller, filters: EntryFilters, request: Request, after: After = -1, limit: Page = 100
) -> dict[str, Any]:
    """Every entry the party may read that the mirror holds, its own included."""
    return _items(_desk(request), party, False, after, limit, filters)


@router.get("/v1/inbox")
def inbox(
    party: Caller, filters: EntryFilters, request: Request, after: After = -1, limit: Page = 100
) -> dict[str, Any]:
    """What others addressed to the party; nothing is marked delivered (the hub's word)."""
    return _items(_desk(request), party, True, after, limit, filters)


def _readable(desk: PartyDesk, index: int) -> dict[str, Any]:
    text = desk.store.mirror_item(index)
    held = desk.store.get_entry(index)
    if text is None or held is None:
        raise NotFoundError(f"no entry {index} among those this mirror holds for its party")
    item: dict[str, Any] = json.loads(text)
    item["envelope"] = json.loads(held.envelope)
    return item


@router.get("/v1/entries/{index}")
def entry(party: Caller, index: EntryIndex, request: Request) -> dict[str, Any]:
    del party
    return _readable(_desk(request), index)


@router.get("/v1/entries/{index}/proof", response_class=PlainTextResponse)
def entry_proof(party: Caller, index: EntryIndex, request: Request) -> str:
    """An inclusion proof from the mirror's own tree, under the latest checkpoint it kept."""
    del party
    desk = _desk(request)
    _readable(desk, index)
    return format_proof(desk.log.proof_bundle(index))


# ---- the hub's last answers -------------------------------------------------------------------


def _stamp(desk: PartyDesk, fetched: tuple[int, int] | None = None) -> dict[str, Any]:
    state = describe(desk.store, private=True)
    out: dict[str, Any] = {
        "size": state["size"],
        "following": state["following"],
        "last_round_at": format_time(int(str(state["last_round_ms"])))
        if state["last_round_ms"]
        else None,
        "last_error": state["last_error"],
        "set_aside": state["set_aside"],
    }
    if fetched is not None:
        out["answered_by"] = "hub"
        out["fetched_at"] = format_time(fetched[0])
        out["log_size_then"] = fetched[1]
    return out


def answer(desk: PartyDesk, path: str) -> dict[str, Any]:
    """The hub's last answer to ``path`` for the party, with when it was fetched."""
    got = desk.store.mirror_answer(path)
    if got is None:
        raise NotFoundError(f"the mirror has kept no answer of the hub to {path}")
    ms, size, body = got
    doc: dict[str, Any] = json.loads(body)
    doc["mirror"] = _stamp(desk, (ms, size))
    return doc


@router.get("/v1/parties")
def parties(party: Caller, request: Request) -> dict[str, Any]:
    del party
    return answer(_desk(request), "/v1/parties")


@router.get("/v1/channels")
def channels(party: Caller, request: Request) -> dict[str, Any]:
    del party
    return answer(_desk(request), "/v1/channels")


@router.get("/v1/obligations")
@router.get("/v1/indicators")
def per_agreement(
    party: Caller, request: Request, agreement: Annotated[str, Query(max_length=128)], as_of: Text = None
) -> dict[str, Any]:
    """The hub's last obligations or indicators of one agreement (the route's own path)."""
    del party
    if as_of:
        raise FormatError(
            "as_of: a mirror keeps the hub's latest answer only; ask the hub for another time"
        )
    return answer(_desk(request), f"{request.url.path}?agreement={quote(agreement, safe='')}")


@router.api_route("/v1/acts", methods=["POST", "PUT"])
@router.api_route("/v1/observations/{rest:path}", methods=["POST", "PUT"])
@router.api_route("/v1/alerts", methods=["POST", "PUT", "DELETE"])
@router.api_route("/v1/entries/{index}/status", methods=["GET"])
def read_only() -> None:
    """What only the hub can do or say (log an act, the hub's own word on delivery)."""
    raise StoreError(READ_ONLY)


# ---- the dashboard: one read-only page ------------------------------------------------------


def _session(desk: PartyDesk, request: Request) -> str:
    session = request.cookies.get(COOKIE)
    if not session:
        raise NotSignedIn("you are not signed in")
    try:
        party, key, nonce, exp = auth.read_session(desk.secret, session[:4096], int(time.time()))
    except AuthError as e:
        raise NotSignedIn(str(e)[:300]) from None
    if key not in desk.keys_of(party):
        raise NotSignedIn(f"the key of this session is not the one this mirror keeps {party!r}'s for")
    del exp
    if desk.store.nonce_spent(nonce):
        raise NotSignedIn("this session was signed out")
    return party


def page_routes() -> APIRouter:
    """The mirror's page and its sign-in, rendered with the dashboard's templates."""
    pages = APIRouter()

    @pages.get("/dashboard", include_in_schema=False)
    def overview(request: Request) -> Response:
        desk = _desk(request)
        party = _session(desk, request)
        state = describe(desk.store, private=True)
        latest = desk.store.mirror_items(-1, 50, not_author=party, newest=True)
        inbox = [json.loads(t) for _i, t in latest]
        agreements = []
        for path in _agreement_paths(desk):
            # What the page shows of the hub's answer, made when it was fetched
            # (follow.page_summary): a few hundred rows, never the whole answer.
            got = desk.store.mirror_answer("page:" + path)
            if got is not None:
                doc = json.loads(got[2])
                doc["mirror"] = {"fetched_at": format_time(got[0])}
                agreements.append(doc)
        return render(
            "mirror.html",
            party=party,
            mirror=True,
            state=state,
            inbox=inbox,
            agreements=agreements,
            now_ms=int(time.time() * 1000),
        )

    add_signin_routes(pages, _signing_in)
    return pages


def _agreement_paths(desk: PartyDesk) -> list[str]:
    return [f"/v1/obligations?agreement={quote(a, safe='')}" for a in desk.registration().agreements]


__all__ = ["PartyDesk", "answer", "page_routes", "router"]
