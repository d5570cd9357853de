"""Run the hub's ASGI app with uvicorn: in the foreground (``cbmnet serve``) or in a thread.

The thread form serves the demo, the tests and the benchmarks: a real server on a real
loopback socket, stopped cleanly (no process left behind). Both are built by
``uvicorn_config`` from one ``ServerLimits``, so tests, demo and production share them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from cbmnet.errors import FormatError

WS_MAX_BYTES = 256 * 1024
"""Clients send nothing but pings and echo probes on a WebSocket: no big frames accepted."""


@dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server before its request is even read by the app."""

    head_bytes: int = 16 * 1024
    """Request line and headers together (tokens and cookies are well under 2 KiB)."""
    headers: int = 100
    """Header fields in one request."""
    head_timeout_s: float = 10.0
    """From connecting (or the last response) to the end of the request's headers."""
    body_timeout_s: float = 120.0
    """From the end of the headers to the end of the body: a 64 MiB observations batch
    needs about 0.5 MiB/s."""
    keep_alive_s: int = 5
    """An idle keep-alive connection is closed after this."""
    gil_switch_s: float = 0.001
    """The interpreter's switch interval in a serving process (CPython's default: 5 ms).
    A request crosses threads several times (event loop, worker, SQLite calls, the
    sequencer), and under load each crossing waited for a busy thread's turn to end:
    measured, the calm parties' read p99 in the evaluation flood fell from 36 to 15 ms."""


LIMITS = ServerLimits()


class _Refusal(Exception):
    """Why h11 or our header cap refused a request head (said in the 400 answer)."""


class _CappedConnection(h11.Connection):
    """h11 that also refuses a request with more than ``max_headers`` header fields."""

    def __init__(self, max_headers: int, max_incomplete_event_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
        self.max_headers = max_headers
        self.max_head = max_incomplete_event_size
        self.refusal = ""

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as e:
            too_long = "buffer too long" in str(e)
            self.refusal = f"request head over {self.max_head} bytes" if too_long else str(e)
            raise
        if isinstance(event, h11.Request) and len(event.headers) > self.max_headers:
            self.refusal = f"{len(event.headers)} header fields, at most {self.max_headers}"
            raise h11.RemoteProtocolError(self.refusal, error_status_hint=431)
        return event

    def send(self, event: Any) -> bytes | None:  # type: ignore[override]  # h11's overloads
        """An answer given before the request's body was read (a refusal) says
        ``Connection: close``: the connection ends after it, and a client must not send its
        next request on it."""
        if isinstance(event, h11.Response) and self.their_state is h11.SEND_BODY:
            headers = [(k, v) for k, v in event.headers if k.lower() != b"connection"]
            event = h11.Response(
                status_code=event.status_code,
                headers=[*headers, (b"connection", b"close")],
                http_version=event.http_version,
                reason=event.reason,
            )
        out: bytes | None = super().send(event)
        return out


LINGER_S = 2.0
"""How long a refused request's connection drops what its client still sends before it
closes (what web servers call a lingering close)."""


def _protocol(limits: ServerLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the header cap and read deadlines.

    Why h11 and not httptools (uvicorn's choice when httptools is installed): uvicorn's
    httptools protocol bounds neither the size nor the number of request headers (64 MB
    and 5,000 headers were accepted), while h11 refuses a request head larger than its
    ``max_incomplete_event_size`` before buffering more. And uvicorn times out neither a
    slow head nor a slow body: its keep-alive timer runs only between requests and any
    byte cancels it; so a deadline runs here whenever the server waits on the client.
    """

    class BoundedH11(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.conn = _CappedConnection(limits.headers, limits.head_bytes)
            self._deadline: asyncio.TimerHandle | None = None
            self._waiting_for: object = None
            self._lingering = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # the rest of a refused body: read and dropped, never held
            super().data_received(data)
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                # The app answered without reading the whole body (a refusal). Closing at
                # once, with the body still arriving, makes the kernel reset the connection,
                # which can destroy the answer before the client reads it; so the hub stops
                # sending (FIN), drops what still arrives, and closes after LINGER_S.
                self._cancel()
                self._lingering = True
                if self.transport.can_write_eof():
                    self.transport.write_eof()
                self.loop.call_later(LINGER_S, self.transport.close)
                return
            super().on_response_complete()
            self._watch()

        def send_400_response(self, msg: str) -> None:
            why = getattr(self.conn, "refusal", "")
            super().send_400_response(f"{msg.rstrip('.')}: {why}" if why and why.isascii() else msg)

        def _watch(self) -> None:
            """Arm the deadline of what the server now waits for: a head, or a body."""
            state = self.conn.their_state
            waiting = state if state in (h11.IDLE, h11.SEND_BODY) else None
            if waiting is self._waiting_for:
                return
            self._cancel()
            self._waiting_for = waiting
            if waiting is not None and not self.transport.is_closing():
                limit = limits.head_timeout_s if waiting is h11.IDLE else limits.body_timeout_s
                self._deadline = self.loop.call_later(limit, self._too_slow)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.logger.info("closing a connection whose client sent its request too slowly")
                self.transport.close()

    return BoundedH11


def trusted_proxy(proxy: str | None) -> str | None:
    """The proxy address (or network) whose X-Forwarded-For is believed; checked here."""
    if proxy is None:
        return None
    try:
        return str(ipaddress.ip_network(proxy.strip(), strict=False))
    except ValueError:
        raise FormatError(f"--proxy {proxy!r}: not an IP address or network") from None


def uvicorn_config(
    app: Any, *, proxy: str | None = None, limits: ServerLimits | None = None, **kw: Any
) -> uvicorn.Config:
    """The one uvicorn configuration of the hub.

    ``proxy``: the reverse proxy whose X-Forwarded-For/-Proto headers are believed; none by
    default, so a client cannot choose the address its per-address budget is charged to
    (uvicorn would otherwise trust them from 127.0.0.1).
    """
    limits = limits or LIMITS
    trusted = trusted_proxy(proxy)
    sys.setswitchinterval(limits.gil_switch_s)  # process-wide: this process serves the hub
    return uvicorn.Config(
        app,
        http=_protocol(limits),
        h11_max_incomplete_event_size=limits.head_bytes,
        timeout_keep_alive=limits.keep_alive_s,
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted or "",
        ws_max_size=WS_MAX_BYTES,
        # Hotline bodies are HPKE ciphertext in base64: deflate costs CPU and saves little.
        ws_per_message_deflate=False,
        lifespan="on",
        **kw,
    )


class ServerThread:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        proxy: str | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn_config(app, proxy=proxy, limits=limits, log_level=log_level)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the hub server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
