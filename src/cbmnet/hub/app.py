"""The hub over HTTP and WebSocket (FastAPI). Routes only: the rules live in the service.

Errors are JSON ``{"error": code, "message": text}``; the status comes from the error
tree (``cbmnet.errors``), mapped here and only here.
"""

import asyncio
import base64
import collections
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cbmnet.acts.model import MAX_BATCH_BYTES, SECRETARIAT
from cbmnet.acts.state import Entry
from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import (
    AuthError,
    CbmnetError,
    ConflictError,
    FormatError,
    RateLimitedError,
    TooLargeError,
    error_code,
)
from cbmnet.hub import auth
from cbmnet.hub.dashboard import add_dashboard
from cbmnet.hub.service import Hub
from cbmnet.hub.wakeup import woken_by_appends
from cbmnet.ledger import dsse
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.merkle import leaf_hash
from cbmnet.ledger.tlogproof import format_add_checkpoint, format_proof

log = logging.getLogger("cbmnet.hub")

MAX_REQUEST_BYTES = dsse.MAX_ENVELOPE_BYTES + 4096
MAX_PAGE = 1000
AS_OF_HORIZON_DAYS = 400
"""How far after now ``as_of`` may look. Every yearly duty of the agreements (annual
exchanges and calendars, quota years) falls due again within 366 days, so 400 days
ahead shows the next due date of each with a month to spare. Further out the engine
only multiplies obligations nobody can act on yet, at up to seconds of work each."""

T = TypeVar("T")


class _SlowDown(RateLimitedError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _error(err: CbmnetError) -> JSONResponse:
    headers = {}
    if isinstance(err, RateLimitedError):
        headers["Retry-After"] = str(err.retry_after if isinstance(err, _SlowDown) else 1)
    return JSONResponse(
        {"error": error_code(err), "message": err.diagnostics()},
        status_code=err.http_status,
        headers=headers,
    )


class _Admission:
    """A few requests in flight per caller; the caller's others wait, parked, in order.

    A party flooding over many connections then competes with another party's request
    for the event loop and the GIL with only ``per_party`` of its own at a time, and each
    parked one costs a future, not work. The caller is what it cannot choose: the party
    of a bearer token whose MAC and expiry hold (never a claimed author: anyone may
    claim any author, and queueing behind forgeries would let them slow that party),
    else the client address (the trusted proxy's X-Forwarded-For, if any). Nothing is
    refused or spent here: a caller only ever waits for its own requests.
    """

    def __init__(self, secret: bytes, per_party: int = 4, per_address: int = 32) -> None:
        self.secret = secret
        self.per_party = per_party
        self.per_address = per_address  # one address may be a NAT or a proxy: more places
        self._in: dict[str, int] = {}
        self._parked: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def caller(self, scope: Any, headers: dict[bytes, bytes]) -> tuple[str, int]:
        """(key, places) of the request's caller: an HMAC and a parse, no database."""
        bearer = headers.get(b"authorization", b"")
        if bearer.startswith(b"Bearer ") and len(bearer) < 4096:
            try:
                token = bearer[7:].decode("ascii").strip()
                party = auth.read_token(self.secret, token, int(time.time()))[0]
                return f"party {party}", self.per_party
            except (CbmnetError, UnicodeDecodeError):
                pass  # the route refuses it; until then it counts against its address
        client = scope.get("client")
        return f"address {client[0] if client else '?'}", self.per_address

    async def enter(self, key: str, places: int) -> None:
        """Take one of ``key``'s places, or wait for one its earlier request hands over."""
        n = self._in.get(key, 0)
        if n < places and key not in self._parked:
            self._in[key] = n + 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parked.setdefault(key, collections.deque()).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.leave(key)  # handed a place as the client went away: pass it on
            else:
                queue = self._parked.get(key)
                if queue is not None and fut in queue:
                    queue.remove(fut)
                    if not queue:
                        del self._parked[key]
            raise

    def leave(self, key: str) -> None:
        """Hand the place to ``key``'s next parked request, else give it up."""
        queue = self._parked.get(key)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                if not queue:
                    del self._parked[key]
                fut.set_result(None)
                return
        self._parked.pop(key, None)
        n = self._in.get(key, 1) - 1
        if n > 0:
            self._in[key] = n
        else:
            self._in.pop(key, None)


class _Limits:
    """Body size limit, fair admission and one JSON log line per request, as plain ASGI.

    The body is never read here: a route reads it after checking the caller (an upload is
    refused on its token before a byte of it is read), and ``receive`` is wrapped to count
    what it hands over, so a body without a length is cut at the limit as it streams.
    (Starlette's ``BaseHTTPMiddleware`` would add a task group and memory streams to
    every request; this sits on the hot path of every submit.)
    """

    def __init__(self, app: Any, admission: _Admission | None = None) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit = MAX_REQUEST_BYTES
        if scope["method"] == "PUT" and scope["path"].startswith("/v1/observations/"):
            limit = MAX_BATCH_BYTES  # a batch of sensor rows, checked against its logged hash
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _error(TooLargeError(f"request body larger than {limit} bytes"))(scope, receive, send)
            return
        got = 0

        async def counted(receive: Any = receive) -> Any:
            nonlocal got
            msg = await receive()
            got += len(msg.get("body", b""))
            if got > limit:
                # Raised in the route that reads. An HTTPException because FastAPI turns any
                # other error of a body read into a 400; ``_http_error`` answers it 413.
                raise StarletteHTTPException(413, f"request body larger than {limit} bytes")
            return msg

        started = time.perf_counter()
        status = 0

        async def send_status(msg: Any) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        if self.admission is None:
            await self.app(scope, counted, send_status)
        else:
            key, places = self.admission.caller(scope, headers)
            await self.admission.enter(key, places)
            try:
                await self.app(scope, counted, send_status)
            finally:
                self.admission.leave(key)
        if log.isEnabledFor(logging.INFO):
            log.info(
                json.dumps(
                    {
                        "event": "request",
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                )
            )


class _Bucket:
    """Token buckets per caller: ``rate`` per second, bursts of twice that (at least one)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._state[who] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate) if self.rate > 0 else 60
                raise _SlowDown(f"too many requests from {who}; slow down", max(1, wait))
            self._state[who] = (tokens - 1, now)
            if len(self._state) > 100_000:
                self._state.clear()

    def spent(self, who: str) -> None:
        """Refuse at once if ``who`` has no token left, without taking one.

        For a key that only proven acts spend: looking costs nothing, so an act whose
        author is already over budget is refused before its signature is checked.
        """
        now = time.monotonic()
        with self._lock:
            got = self._state.get(who)
            if got is None:
                return
            tokens = min(self.burst, got[0] + (now - got[1]) * self.rate)
            if tokens < 1:
                wait = math.ceil((1 - tokens) / self.rate) if self.rate > 0 else 60
                raise _SlowDown(f"too many requests from {who}; slow down", max(1, wait))

    def give_back(self, who: str) -> None:
        """Return the token a proven act took when it turned out to be logged already:
        only acts newly logged spend an author's budget, so a replay of its acts cannot."""
        with self._lock:
            got = self._state.get(who)
            if got is not None:
                self._state[who] = (min(self.burst, got[0] + 1), got[1])


class _Evaluations:
    """Where compliance views run: the caller's budget, then a few threads of their own.

    An evaluation may run the engine over a whole agreement. Queued on Starlette's shared
    thread pool, a flood of them waited ahead of every sync route (/healthz, reads, writes)
    before any budget was looked at. Here the budget is taken on the event loop, the work
    waits only for other evaluations, and a full queue is answered 429 at once rather than
    with a wait. One party holds fewer places than there are workers, so another party's
    evaluation always finds one free.
    """

    def __init__(self, rate: float) -> None:
        self.budget = _Bucket(rate)
        self.workers = min(8, (os.cpu_count() or 1) + 1)  # CPU-bound: the cores, one spare
        self.places = 3 * self.workers  # running and queued
        self.per_party = max(1, self.workers - 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cbmnet-eval")
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, party: str) -> None:
        """Spend one of ``party``'s evaluations (429 with Retry-After when none is left)."""
        self.budget.take(party)

    def submit(self, party: str, work: Callable[[], T]) -> Future[T]:
        """Queue ``work`` for ``party``, or refuse at once (429) when the queue is full."""
        with self._lock:
            held = self._held.get(party, 0)
            if held >= self.per_party:
                raise _SlowDown(
                    f"{party} already has {held} evaluation(s) under way; send the next when answered", 1
                )
            if sum(self._held.values()) >= self.places:
                raise _SlowDown("the hub is busy with other evaluations; retry shortly", 1)
            self._held[party] = held + 1
        try:
            fut = self._pool.submit(work)
        except RuntimeError:  # shut down: the server is stopping
            self._release(party)
            raise _SlowDown("the hub is shutting down", 1) from None
        fut.add_done_callback(lambda _f: self._release(party))
        return fut

    def _release(self, party: str) -> None:
        with self._lock:
            left = self._held.get(party, 1) - 1
            if left > 0:
                self._held[party] = left
            else:
                self._held.pop(party, None)

    async def run(self, party: str, work: Callable[[], T]) -> T:
        """``work`` in the evaluation threads, awaited on the event loop."""
        return await asyncio.wrap_future(self.submit(party, work))

    def call(self, party: str, work: Callable[[], T]) -> T:
        """``work`` in the evaluation threads, from a sync route's thread (dashboard pages)."""
        return self.submit(party, work).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _token_party(hub: Hub, authorization: str | None) -> tuple[str, str]:
    """(party, token) from the token's MAC and expiry alone: cheap enough for the event loop.

    The budget is keyed by it before anything queues; whether the token's key is still
    active is checked (``_credentials``) in the evaluation thread, before any work.
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError(
            "send 'Authorization: Bearer <token>' (POST /v1/auth/challenge, then /v1/auth/token)"
        )
    token = authorization.removeprefix("Bearer ").strip()
    return auth.read_token(hub.token_secret, token, int(time.time()))[0], token


def _as_of(text: str | None, now: int) -> int:
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


class SignatureIn(BaseModel):
    keyid: str = Field(default="", max_length=256)
    sig: str = Field(max_length=256)


class EnvelopeIn(BaseModel):
    """A DSSE envelope (secure-systems-lab/dsse envelope.md)."""

    payload: str = Field(max_length=dsse.MAX_ENVELOPE_BYTES)
    payloadType: str = Field(max_length=dsse.MAX_PAYLOAD_TYPE)
    signatures: list[SignatureIn] = Field(min_length=1, max_length=dsse.MAX_SIGNATURES)


class ChallengeIn(BaseModel):
    party: str = Field(min_length=1, max_length=64)


class TokenIn(BaseModel):
    challenge: str = Field(min_length=1, max_length=1024)
    signature: str = Field(min_length=1, max_length=256, description="base64 Ed25519 signature")


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError(
            "send 'Authorization: Bearer <token>' (POST /v1/auth/challenge, then /v1/auth/token)"
        )
    return authorization.removeprefix("Bearer ").strip()


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The party a bearer token speaks for (its key must still be active)."""
    return _party_of(request.app.state.hub, _bearer(authorization))


def maybe_caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str | None:
    return caller(request, authorization) if authorization else None


Caller = Annotated[str, Depends(caller)]
MaybeCaller = Annotated[str | None, Depends(maybe_caller)]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
After = Annotated[int, Query(ge=-1, lt=2**62)]
Text = Annotated[str | None, Query(max_length=128)]
Size = Annotated[int, Query(ge=0, lt=2**62)]
EntryIndex = Annotated[int, Path(ge=0, lt=2**62)]


def item_json(e: Entry, envelope: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": e.index,
        "integrated_ms": e.ms,
        "integrated_at": format_time(e.ms),
        "author": e.author,
        "payload_type": e.payload_type,
        "kind": e.kind,
        "agreement": e.agreement,
        "form": e.form,
        "ref": e.ref,
        "event_id": e.event_id,
    }
    if envelope is not None:
        out["envelope"] = json.loads(envelope)
    return out


def entry_filter(
    agreement: Text = None,
    form: Text = None,
    author: Text = None,
    kind: Text = None,
    since: Text = None,
    until: Text = None,
) -> Callable[[Entry], bool]:
    """The filters of the inbox and entry lists (agreement, form, author, kind, time)."""
    lo = parse_time(since, "since") if since else None
    hi = parse_time(until, "until") if until else None

    def match(e: Entry) -> bool:
        return (
            (agreement is None or e.agreement == agreement)
            and (form is None or e.form == form)
            and (author is None or e.author == author)
            and (kind is None or e.kind == kind)
            and (lo is None or e.ms >= lo)
            and (hi is None or e.ms < hi)
        )

    return match


Filter = Annotated[Callable[[Entry], bool], Depends(entry_filter)]


def create_app(hub: Hub, *, run_duties: bool = True) -> FastAPI:
    """The ASGI app over ``hub``; ``run_duties`` starts the sweeps and the log tailer."""
    writes = _Bucket(hub.settings.writes_per_s)
    party_writes = _Bucket(hub.settings.party_writes_per_s)
    evaluations = _Evaluations(hub.settings.evaluations_per_s)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threads = [threading.Thread(target=_tail, args=(hub, stop), name="cbmnet-tail", daemon=True)]
        if run_duties:
            threads.append(
                threading.Thread(target=hub.run_duties, args=(stop,), name="cbmnet-duties", daemon=True)
            )
        for t in threads:
            t.start()
        state["loop"] = asyncio.get_running_loop()
        try:
            yield
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
            evaluations.close()

    app = FastAPI(
        title="cbmnet hub",
        version="1",
        summary="Confidence-building measures between parties who trust neither each other nor the hub.",
        lifespan=lifespan,
    )
    app.state.hub = hub

    @app.exception_handler(CbmnetError)
    async def _cbmnet_error(_request: Request, err: CbmnetError) -> JSONResponse:
        return _error(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (unknown route, wrong method, unparsable body): our shape.
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        code = codes.get(err.status_code, "bad_input" if err.status_code < 500 else "error")
        return JSONResponse(
            {"error": code, "message": str(err.detail)[:500]},
            status_code=err.status_code,
            headers=getattr(err, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(FormatError("; ".join(parts) or "invalid request"))

    app.add_middleware(_Limits, admission=_Admission(hub.token_secret))

    def limited(request: Request, who: str) -> None:
        writes.take(who or (request.client.host if request.client else "?"))

    # ---- service -----------------------------------------------------------------------

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "log_size": hub.sync()}

    @app.get("/v1/hub", tags=["service"])
    def hub_info() -> dict[str, Any]:
        """Who this hub is: the keys a client must pin before trusting anything else."""
        return {
            "origin": hub.log.origin,
            "log_vkey": hub.log.vkey,
            "hub_vkey": hub.hub_vkey,
            "secretariat_vkey": hub.secretariat_vkey,
            "agreements": sorted(hub.agreements),
            # Approvals that recover a party's identity, per agreement that sets more than
            # a majority: every party's audit re-checks quorum rotations with these.
            "key_recovery_quorums": {
                aid: ag.key_recovery_quorum
                for aid, ag in sorted(hub.agreements.items())
                if ag.key_recovery_quorum
            },
        }

    # ---- identity ----------------------------------------------------------------------

    @app.post("/v1/auth/challenge", tags=["identity"])
    def auth_challenge(body: ChallengeIn, request: Request) -> dict[str, Any]:
        limited(request, "")
        return {
            "challenge": auth.challenge(hub.token_secret, body.party, int(time.time())),
            "origin": hub.log.origin,
        }

    @app.post("/v1/auth/token", tags=["identity"])
    def auth_token(body: TokenIn, request: Request) -> dict[str, Any]:
        limited(request, "")
        try:
            sig = base64.b64decode(body.signature, validate=True)
        except ValueError:
            raise FormatError("field 'signature': not standard base64") from None
        hub.sync()
        party_claim = _challenge_party(body.challenge)
        with hub._state_lock:
            keys = hub.state.signing_keys(party_claim)
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

    @app.post("/v1/auth/signin-code", tags=["identity"])
    def auth_signin_code(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        """A one-time code for the dashboard's sign-in link (``cbmnet dashboard login``).

        The link never carries the bearer token: a leaked link is one short-lived sign-in,
        used up by the first to open it, and never a key to the API.
        """
        limited(request, "")
        party, key, _exp = _credentials(hub, _bearer(authorization))
        code, exp = auth.signin_code(hub.token_secret, party, key, int(time.time()))
        return {"code": code, "party": party, "expires": format_time(exp * 1000)}

    @app.get("/v1/parties", tags=["identity"])
    def parties(_party: Caller) -> dict[str, Any]:
        with hub._state_lock:
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
                    for p in sorted(hub.state.parties.values(), key=lambda p: p.id)
                ]
            }

    # ---- acts --------------------------------------------------------------------------

    @app.post("/v1/acts", status_code=201, tags=["acts"])
    async def submit(body: EnvelopeIn, request: Request, proof: bool = True) -> JSONResponse:
        """Log a signed act; the answer is a receipt with an offline-verifiable proof."""
        limited(request, "")  # the submitter's address pays for every request, replays too
        # The author's budget is spent only by its proven, newly logged acts (Hub.submit):
        # a statement logged already is answered with its receipt before the budget or the
        # signature is looked at, so replaying a party's logged acts cannot drain its budget.
        raw = json.dumps(body.model_dump(), separators=(",", ":")).encode()
        receipt = await run_in_threadpool(hub.submit, raw, party_writes)
        out: dict[str, Any] = {
            "index": receipt.index,
            "integrated_ms": receipt.integrated_ms,
            "integrated_at": format_time(receipt.integrated_ms),
            "duplicate": receipt.duplicate,
        }
        if proof:
            bundle = await run_in_threadpool(hub.receipt_bundle, receipt.index)
            assert bundle.extra is not None
            out["leaf_hash"] = b64(leaf_hash(bundle.extra))
            out["inclusion_proof"] = [b64(h) for h in bundle.proof]
            out["checkpoint"] = bundle.checkpoint
            out["tlog_proof"] = format_proof(bundle)
        return JSONResponse(out, status_code=200 if receipt.duplicate else 201)

    def _page(
        party: str, inbox: bool, after: int, limit: int, match: Callable[[Entry], bool]
    ) -> dict[str, Any]:
        items = hub.entries_for(party, after=after, limit=limit, inbox=inbox, match=match)
        if inbox:
            hub.record_delivery(party, items)
        return {
            "items": [item_json(e, hub.envelope(e.index)) for e in items],
            "next": items[-1].index if items else after,
        }

    @app.get("/v1/inbox", tags=["acts"])
    def inbox(party: Caller, match: Filter, after: After = -1, limit: Page = 100) -> dict[str, Any]:
        """What others addressed to the caller, oldest first; fetching marks it delivered."""
        return _page(party, True, after, limit, match)

    @app.get("/v1/entries", tags=["acts"])
    def entries(party: Caller, match: Filter, after: After = -1, limit: Page = 100) -> dict[str, Any]:
        """Every entry the caller may read, its own included."""
        return _page(party, False, after, limit, match)

    @app.get("/v1/entries/{index}", tags=["acts"])
    def entry(party: Caller, index: EntryIndex) -> dict[str, Any]:
        e = hub.readable(party, index)
        return item_json(e, hub.envelope(index))

    @app.get("/v1/entries/{index}/status", tags=["acts"])
    def entry_status(party: Caller, index: EntryIndex) -> dict[str, Any]:
        """Per addressee: delivered (the hub's statement) and acknowledged (a signed act)."""
        return {"index": index, "addressees": hub.status(party, index)}

    @app.get("/v1/entries/{index}/proof", tags=["acts"], response_class=PlainTextResponse)
    def entry_proof(party: Caller, index: EntryIndex) -> str:
        """A c2sp.org/tlog-proof@v1 with the latest checkpoint covering the entry."""
        hub.readable(party, index)
        return format_proof(hub.receipt_bundle(index))

    @app.put("/v1/observations/{index}", tags=["verification"])
    async def put_observations(party: Caller, index: EntryIndex, request: Request) -> dict[str, Any]:
        """Upload the rows of a logged observations batch (the bytes its provider signed)."""
        limited(request, party)
        data = await request.body()
        if len(data) > MAX_BATCH_BYTES:
            raise TooLargeError(f"a batch is at most {MAX_BATCH_BYTES} bytes")
        return await run_in_threadpool(hub.put_batch, party, index, data)

    @app.get("/v1/observations/{index}", tags=["verification"], response_class=Response)
    def get_observations(party: Caller, index: EntryIndex) -> Response:
        """The rows of a batch, byte for byte: check their SHA-256 against the logged act."""
        data = hub.get_batch(party, index)
        return Response(data, media_type="application/octet-stream")

    @app.get("/v1/channels", tags=["communication"])
    def channels(party: Caller) -> dict[str, Any]:
        with hub._state_lock:
            return {
                "channels": [
                    {
                        "id": c.id,
                        "agreement": c.agreement,
                        "members": list(c.members),
                        "opened_at": c.opened_at,
                    }
                    for c in hub.state.channels.values()
                    if party == SECRETARIAT or party in c.members
                ]
            }

    # The three below run the engine: async, so that the token, the input and the budget are
    # checked on the event loop before anything queues; the work runs in ``evaluations``.
    Authorization = Annotated[str | None, Header()]

    @app.get("/v1/obligations", tags=["compliance"])
    async def obligations(
        agreement: Annotated[str, Query(max_length=128)],
        as_of: Text = None,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """The compliance engine over the log: obligations and findings the caller may read."""
        party, token = _token_party(hub, authorization)
        at = _as_of(as_of, hub.clock())
        evaluations.take(party)  # each new as_of runs the engine over the whole agreement

        def work() -> dict[str, Any]:
            return hub.report_for(_party_of(hub, token), agreement, at)

        return await evaluations.run(party, work)

    @app.get("/v1/indicators", tags=["compliance"])
    async def confidence(
        agreement: Annotated[str, Query(max_length=128)],
        as_of: Text = None,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Timeliness, completeness, responsiveness, compliance and reciprocity, per party and
        month, with their parts, from what the caller may read (docs/indicators.md)."""
        party, token = _token_party(hub, authorization)
        at = _as_of(as_of, hub.clock())
        evaluations.take(party)

        def work() -> dict[str, Any]:
            return hub.indicators_for(_party_of(hub, token), agreement, at)

        return await evaluations.run(party, work)

    @app.get("/v1/quota", tags=["verification"])
    async def quota(
        agreement: Annotated[str, Query(max_length=128)],
        host: Annotated[str | None, Query(max_length=64)] = None,
        kind: Annotated[str | None, Query(max_length=64)] = None,
        eta: Text = None,
        until: Text = None,
        request: Text = None,
        authorization: Authorization = None,
    ) -> dict[str, Any]:
        """Before asking ``host`` for an inspection, evaluation or flight: is its quota spent?
        Or, with ``request`` (the host only): would refusing that request be a finding?"""
        party, token = _token_party(hub, authorization)
        if request is not None:
            if host is not None or kind is not None or eta is not None or until is not None:
                raise FormatError("quota: give either request, or host and kind (with eta, until)")
        elif host is None or kind is None:
            raise FormatError("quota: host and kind are required (or request, for the host)")
        eta_ms = parse_time(eta, "eta") if eta else None
        until_ms = parse_time(until, "until") if until else None
        evaluations.take(party)

        def work() -> dict[str, Any]:
            who = _party_of(hub, token)
            if request is not None:
                return hub.quota_of_request(who, agreement, request)
            assert host is not None and kind is not None
            return hub.quota_for(who, agreement, host, kind, eta_ms=eta_ms, until_ms=until_ms)

        return await evaluations.run(party, work)

    # ---- the log, for witnesses and auditors --------------------------------------------

    @app.get("/v1/log/checkpoint", tags=["log"], response_class=PlainTextResponse)
    def checkpoint() -> str:
        """The latest checkpoint with every cosignature collected (c2sp.org/tlog-checkpoint)."""
        return hub.rlog.signed_checkpoint(hub.rlog.latest_checkpoint())

    @app.get("/v1/log/checkpoints", tags=["log"])
    def checkpoints(after: After = -1, limit: Page = 100) -> dict[str, Any]:
        cps = hub.rstore.checkpoints_after(after, limit)
        lines: dict[int, str] = {}
        if cps:
            for cs in hub.rstore.cosignatures_between(cps[0].seq, cps[-1].seq):
                lines[cs.checkpoint_seq] = lines.get(cs.checkpoint_seq, "") + cs.line
        return {
            "checkpoints": [
                {"seq": cp.seq, "size": cp.size, "note": cp.note + lines.get(cp.seq, "")} for cp in cps
            ]
        }

    @app.get("/v1/log/consistency", tags=["log"])
    def consistency(old: Size, new: Size) -> dict[str, Any]:
        return {"old": old, "new": new, "proof": [b64(h) for h in hub.rlog.consistency_proof(old, new)]}

    @app.get("/v1/log/leaves", tags=["log"])
    def leaves(
        party: MaybeCaller,
        start: Size = 0,
        limit: Page = 1000,
    ) -> dict[str, Any]:
        """Leaf hashes for anyone; the entry itself only where the caller may read it."""
        hub.sync()
        out: list[dict[str, Any]] = []
        for row in hub.rstore.iter_entries(after=start - 1, chunk=limit):
            if len(out) >= limit:
                break
            data = encode_entry(row.integrated_ms, row.envelope)
            item: dict[str, Any] = {"index": row.idx, "leaf_hash": b64(leaf_hash(data))}
            if party is not None:
                try:
                    hub.readable(party, row.idx)
                    item["entry"] = b64(data)
                except CbmnetError:
                    pass
            out.append(item)
        return {"leaves": out}

    @app.get("/v1/log/witness", tags=["log"], response_class=PlainTextResponse)
    def witness_request(old: Size = 0) -> Response:
        """The tlog-witness add-checkpoint body from the witness's last cosigned size."""
        latest = hub.rlog.latest_checkpoint()
        if old > latest.size:
            return Response(str(latest.size) + "\n", status_code=409, media_type="text/x.tlog.size")
        return PlainTextResponse(format_add_checkpoint(hub.rlog.witness_request(old)))

    @app.post("/v1/log/cosignatures", tags=["log"])
    async def cosign(request: Request, size: Size) -> dict[str, Any]:
        """Store a party witness's cosignature lines for the checkpoint of ``size``."""
        limited(request, "")
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise TooLargeError("cosignature lines: at most 64 KiB")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise FormatError("cosignature lines: not UTF-8") from None
        with hub._state_lock:
            vkeys = [p.witness_key for p in hub.state.parties.values() if p.witness_key]
        if not vkeys:
            raise ConflictError("no party has registered a witness key")
        lines = list(dict.fromkeys(ln for ln in text.splitlines() if ln.strip()))
        if len(lines) > len(vkeys):
            raise FormatError(f"at most one cosignature line per registered witness ({len(vkeys)})")
        text = "\n".join(lines) + "\n"
        stored = await run_in_threadpool(hub.rlog.add_cosignatures, size, text, vkeys)
        return {"size": size, "stored": stored}

    # ---- pushes ---------------------------------------------------------------------------

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket, token: str = "", after: int = -1) -> None:
        """Entries the caller may read, from ``after``, then live: store and forward.

        The token is re-checked at every wake: a revoked key or an expired token ends
        the stream (close code 4401); the client reconnects with a new token and its cursor.
        """
        raw = token or ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
        try:
            party, key, exp = await run_in_threadpool(_credentials, hub, raw)
        except CbmnetError as e:
            await ws.close(code=4401, reason=str(e)[:120])
            return
        await ws.accept()
        cursor = max(-1, min(after, 2**62))
        try:
            async with woken_by_appends(ws, hub, party) as w:
                while not w.closed.is_set():
                    w.wake.clear()
                    if time.time() > exp or not hub.key_active(party, key):
                        await ws.close(code=4401, reason="token expired or key no longer active")
                        return
                    items = hub.entries_for(party, after=cursor, limit=200)
                    for ent in items:
                        text = hub.pushed_text(ent.index)
                        if text is None:
                            env = hub.cached_envelope(ent.index)
                            if env is None:
                                env = await run_in_threadpool(hub.envelope, ent.index)
                            text = json.dumps(item_json(ent, env))
                            hub.keep_pushed(ent.index, text)
                        await ws.send_text(text)
                        cursor = ent.index
                    if items:
                        hub.queue_delivery(party, items)
                        if len(items) == 200:
                            continue
                    await w.wake.wait()
        except (WebSocketDisconnect, RuntimeError):
            pass

    @app.websocket("/v1/echo")
    async def echo(ws: WebSocket, token: str = "") -> None:
        """Echo each text message (authenticated): the baseline of push latency benchmarks."""
        raw = token or ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
        try:
            await run_in_threadpool(_credentials, hub, raw)
        except CbmnetError as e:
            await ws.close(code=4401, reason=str(e)[:120])
            return
        await ws.accept()
        try:
            while True:
                msg = await ws.receive_text()
                if len(msg) > 64 * 1024:
                    await ws.close(code=1009)
                    return
                await ws.send_text(msg)
        except (WebSocketDisconnect, RuntimeError):
            return

    app.state.evaluations = evaluations  # the dashboard's pages run their engine work there too
    add_dashboard(app, hub, evaluations.take)
    return app


def _challenge_party(challenge_text: str) -> str:
    body = challenge_text.partition(".")[0]
    try:
        doc = json.loads(auth._unb64u(body))
        return str(doc["p"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise AuthError("challenge: unreadable") from None


def _credentials(hub: Hub, token: str) -> tuple[str, bytes, int]:
    """(party, key, expiry) of a token whose key is still active in the log.

    It catches the state up with the log first (a revocation another process logged
    counts at once), so a route behind ``Caller`` reads a current state without syncing
    again.
    """
    party, key, exp = auth.read_token(hub.token_secret, token, int(time.time()))
    hub.sync()
    if not hub.key_active(party, key):
        raise AuthError(f"the key this token was issued to is no longer active for {party!r}")
    return party, key, exp


def _party_of(hub: Hub, token: str) -> str:
    return _credentials(hub, token)[0]


def _tail(hub: Hub, stop: threading.Event) -> None:
    """Follow appends by other processes: PostgreSQL LISTEN/NOTIFY, else polling.

    A dropped LISTEN connection (a database restart) is reopened, polling meanwhile: the
    thread must outlive the database's restarts, or this process would stop waking its
    streams for what the other processes append.
    """
    listen: Any = None
    pg = hub.url.startswith(("postgresql://", "postgres://"))
    retry_at = 0.0

    def connect() -> Any:
        import psycopg

        from cbmnet.store.postgres import NOTIFY_CHANNEL

        conn = psycopg.connect(hub.url, autocommit=True, connect_timeout=5)
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return conn

    try:
        while not stop.is_set():
            if pg and listen is None and time.monotonic() >= retry_at:
                try:
                    listen = connect()
                except Exception as e:  # the database is down: poll, and try again soon
                    log.warning("LISTEN unavailable, polling meanwhile: %s", e)
                    retry_at = time.monotonic() + 2.0
            if listen is not None:
                try:
                    for _ in listen.notifies(timeout=0.5, stop_after=1):
                        pass
                except Exception as e:  # the connection dropped: reopen it
                    log.warning("LISTEN connection lost, reconnecting: %s", e)
                    with contextlib.suppress(Exception):
                        listen.close()
                    listen = None
                    retry_at = time.monotonic() + 0.5
                    stop.wait(0.25)
            else:
                stop.wait(0.25)
            try:
                hub.sync()  # wakes the streams that may read what other processes appended
            except CbmnetError as e:
                log.warning("tail: %s", e)
    finally:
        if listen is not None:
            listen.close()
