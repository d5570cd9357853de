"""How much the hub takes from one caller: body size, fair admission, write budgets and
the compliance engine's own threads.

Shared by every router (``cbmnet.hub.deps`` hands them out per app) and by the ASGI
middleware ``create_app`` installs; nothing here knows a route.
"""

import asyncio
import collections
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cbmnet.acts.model import MAX_BATCH_BYTES
from cbmnet.errors import CbmnetError, RateLimitedError, TooLargeError, error_code
from cbmnet.hub import auth
from cbmnet.ledger import dsse

log = logging.getLogger("cbmnet.hub")

MAX_REQUEST_BYTES = dsse.MAX_ENVELOPE_BYTES + 4096

T = TypeVar("T")


class SlowDown(RateLimitedError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_response(err: CbmnetError) -> JSONResponse:
    headers = {}
    if isinstance(err, RateLimitedError):
        headers["Retry-After"] = str(err.retry_after if isinstance(err, SlowDown) else 1)
    return JSONResponse(
        {"error": error_code(err), "message": err.diagnostics()},
        status_code=err.http_status,
        headers=headers,
    )


class Admission:
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


class RequestLimits:
    """Body size limit, fair admission and one JSON log line per request, as plain ASGI.

    The body is never read here: a route reads it after checking the caller (an upload is
    refused on its token before a byte of it is read), and ``receive`` is wrapped to count
    what it hands over, so a body without a length is cut at the limit as it streams.
    (Starlette's ``BaseHTTPMiddleware`` would add a task group and memory streams to
    every request; this sits on the hot path of every submit.)
    """

    def __init__(self, app: Any, admission: Admission | None = None) -> None:
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
            await error_response(TooLargeError(f"request body larger than {limit} bytes"))(
                scope, receive, send
            )
            return
        got = 0

        async def counted(receive: Any = receive) -> Any:
            nonlocal got
            msg = await receive()
            got += len(msg.get("body", b""))
            if got > limit:
                # Raised in the route that reads. An HTTPException because FastAPI turns any
                # other error of a body read into a 400; ``create_app`` answers it 413.
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


class Bucket:
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
                raise SlowDown(f"too many requests from {who}; slow down", max(1, wait))
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
                raise SlowDown(f"too many requests from {who}; slow down", max(1, wait))

    def give_back(self, who: str) -> None:
        """Return the token a proven act took when it turned out to be logged already:
        only acts newly logged spend an author's budget, so a replay of its acts cannot."""
        with self._lock:
            got = self._state.get(who)
            if got is not None:
                self._state[who] = (min(self.burst, got[0] + 1), got[1])


class Evaluations:
    """Where compliance views run: the caller's budget, then a few threads of their own.

    An evaluation may run the engine over a whole agreement. Queued on Starlette's shared
    thread pool, a flood of them waited ahead of every sync route (/healthz, reads, writes)
    before any budget was looked at. Here the budget is taken on the event loop, the work
    waits only for other evaluations, and a full queue is answered 429 at once rather than
    with a wait. One party holds fewer places than there are workers, so another party's
    evaluation always finds one free.
    """

    def __init__(self, rate: float) -> None:
        self.budget = Bucket(rate)
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
                raise SlowDown(
                    f"{party} already has {held} evaluation(s) under way; send the next when answered", 1
                )
            if sum(self._held.values()) >= self.places:
                raise SlowDown("the hub is busy with other evaluations; retry shortly", 1)
            self._held[party] = held + 1
        try:
            fut = self._pool.submit(work)
        except RuntimeError:  # shut down: the server is stopping
            self._release(party)
            raise SlowDown("the hub is shutting down", 1) from None
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
