"""Regressions from the adversarial test of a demo hub: what a client without a key could
make the server hold (headers, bodies, connections), whose address it could pretend to be,
and a path that answered 500. Each test failed on the code before its fix."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from cbmnet.hub import server
from cbmnet.hub.app import create_app
from cbmnet.hub.server import ServerLimits, ServerThread
from cbmnet.hub.service import HubSettings
from tests.hubkit import running_hub


@contextmanager
def raw(th_url: str, timeout: float = 10.0) -> Iterator[socket.socket]:
    """A bare TCP connection to the hub: a hostile client sends what it likes."""
    host, port = th_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the socket's timeout)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send, ignoring a server that has already hung up (that is what we test)."""
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes the connection within ``seconds`` (nothing more sent)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_huge_and_numerous_request_headers_are_refused_before_they_are_held(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        head = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n"
        # 1 MiB of one header value (the attack sent 64 MB): refused after the first 16 KiB.
        with raw(th.url) as sock:
            send_quietly(sock, head + b"X-Big: ")
            for _ in range(16):
                send_quietly(sock, b"a" * 65536)
            got = answer(sock)
            assert got.startswith(b"HTTP/1.1 400"), got[:200]
            assert b"request head over 16384 bytes" in got
        # 5,000 small headers: more bytes than a head may hold.
        with raw(th.url) as sock:
            send_quietly(sock, head + b"".join(b"X-%d: 1\r\n" % i for i in range(5000)) + b"\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 400")
        # Many headers that fit in the bytes: refused by count, saying so.
        with raw(th.url) as sock:
            sock.sendall(head + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n")
            got = answer(sock)
            assert got.startswith(b"HTTP/1.1 400") and b"151 header fields, at most 100" in got
        # An ordinary request on the same server still works.
        assert httpx.get(th.url + "/healthz").status_code == 200


def test_an_unauthenticated_chunked_upload_is_refused_before_its_body_is_read(
    tmp_path: Path,
) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        for auth in (b"", b"Authorization: Bearer forged.token\r\n"):
            with raw(th.url) as sock:
                sock.sendall(
                    b"PUT /v1/observations/0 HTTP/1.1\r\nHost: hub\r\n"
                    + auth
                    + b"Transfer-Encoding: chunked\r\n\r\n"
                    + b"400\r\n"
                    + b"x" * 1024
                    + b"\r\n"
                )
                # The body is far from complete (no last chunk): the answer comes anyway, and
                # the server hangs up rather than read the rest.
                got = answer(sock)
                assert got.startswith(b"HTTP/1.1 401"), got[:300]
                assert b'"unauthorized"' in got
        # With a valid token a chunked upload is read, and cut at the batch limit as it streams.
        with th.client("DEU") as deu:
            token = deu.token()

        def chunks() -> Iterator[bytes]:
            yield b"x" * 1024  # not a logged batch: refused after it is read

        r = httpx.put(
            th.url + "/v1/observations/0",
            content=chunks(),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code in (400, 403, 404, 409), r.text  # read, then refused on its merits
        assert httpx.get(th.url + "/healthz").status_code == 200


@pytest.fixture
def quick_limits(monkeypatch: pytest.MonkeyPatch) -> ServerLimits:
    """Short deadlines for the servers this test starts (the values live in server.LIMITS)."""
    limits = ServerLimits(head_timeout_s=1.0, body_timeout_s=1.5, keep_alive_s=1)
    monkeypatch.setattr(server, "LIMITS", limits)
    return limits


def test_slow_or_idle_clients_are_cut_off(tmp_path: Path, quick_limits: ServerLimits) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token().encode()
        started = time.monotonic()
        # Connects and sends nothing.
        with raw(th.url) as idle:
            assert closed_within(idle, 5)
        # Sends its headers a byte at a time (slowloris): each byte used to reset nothing.
        with raw(th.url) as slow:
            send_quietly(slow, b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
            cut = False
            for _ in range(30):
                send_quietly(slow, b"X")
                slow.settimeout(0.2)
                try:
                    if slow.recv(1024) == b"":
                        cut = True
                        break
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    cut = True
                    break
            assert cut, "a slow request head was never cut off"
        # Sends a valid upload's body slowly.
        with raw(th.url) as slow_body:
            slow_body.sendall(
                b"PUT /v1/observations/0 HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer "
                + token
                + b"\r\nContent-Length: 100000\r\n\r\n"
            )
            cut = False
            for _ in range(30):
                send_quietly(slow_body, b"x" * 10)
                slow_body.settimeout(0.2)
                try:
                    if slow_body.recv(1024) == b"":
                        cut = True
                        break
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    cut = True
                    break
            assert cut, "a slow request body was never cut off"
        # An idle keep-alive connection after a response.
        with raw(th.url) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
            kept.settimeout(5)
            assert kept.recv(65536).startswith(b"HTTP/1.1 200")
            assert closed_within(kept, 5)
        assert time.monotonic() - started < 20
        assert httpx.get(th.url + "/healthz").status_code == 200


def _challenge(url: str, forwarded_for: str) -> int:
    r = httpx.post(
        url + "/v1/auth/challenge", json={"party": "DEU"}, headers={"X-Forwarded-For": forwarded_for}
    )
    return r.status_code


def test_a_client_cannot_choose_the_address_its_budget_is_charged_to(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=0.1)  # a burst of one
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=settings) as th:
        assert _challenge(th.url, "203.0.113.1") == 200
        assert _challenge(th.url, "203.0.113.2") == 429  # same loopback client, same budget
        # Behind a configured proxy, its X-Forwarded-For names the client.
        with ServerThread(create_app(th.hub, run_duties=False), proxy="127.0.0.1") as proxied:
            assert _challenge(proxied.url, "198.51.100.1") == 200
            assert _challenge(proxied.url, "198.51.100.2") == 200
            assert _challenge(proxied.url, "198.51.100.2") == 429


def test_serve_refuses_a_proxy_that_is_not_an_address(tmp_path: Path) -> None:
    from tests.hubcli_helpers import cli

    r = cli("serve", "--data", str(tmp_path), "--proxy", "proxy.example")
    assert r.exit_code != 0
    assert "--proxy 'proxy.example': not an IP address or network" in r.output


def test_hostile_static_paths_never_answer_500(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        hostile = [
            "%00",
            "dashboard.css%00",
            "dashboard.css%00.js",
            "a%00%2f..%2fdashboard.css",
            "x" * 5000 + ".css",
            "/".join(["a"] * 500) + ".css",
            "..%2f..%2fpyproject.toml",
            "%2e%2e/%2e%2e/app.py",
            "..\\..\\app.py",
            "%5c..%5capp.py",
            "vendor\\..\\dashboard.css",
            "\u00e9t\u00e9.css",
            "%ff%fe.css",
            "d\u0430shboard.css",  # Cyrillic a
            "dashboard.css\u202e",
            "%ef%bf%bf.js",
            "C:%5cwindows%5cwin.ini.css",
            "//etc/passwd.css",
        ]
        with raw(th.url) as sock:
            # A literal NUL in the request line: refused by the parser, never a 500.
            sock.sendall(b"GET /dashboard/static/a\x00.css HTTP/1.1\r\nHost: hub\r\n\r\n")
            got = answer(sock)
            assert got.startswith(b"HTTP/1.1 4"), got[:200]
        with httpx.Client(base_url=th.url) as http:
            for name in hostile:
                r = http.get("/dashboard/static/" + name)
                assert r.status_code == 404, (name, r.status_code, r.text[:200])
            assert http.get("/dashboard/static/dashboard.css").status_code == 200


def test_a_refusal_before_the_body_ends_its_connection_cleanly(tmp_path: Path) -> None:
    """A refusal sent before the body was read says ``Connection: close`` and the hub drops
    the rest of the body instead of resetting: the client reads the refusal, and a client
    with a keep-alive pool (httpx) never sends its next request on the dead connection.
    Found when a 413 followed by GET /healthz on one httpx client got 'connection reset'."""
    from cbmnet.hub.app import MAX_REQUEST_BYTES

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        body = b"{" + b" " * MAX_REQUEST_BYTES + b"}"
        with raw(th.url) as sock:
            head = (
                "POST /v1/acts HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            send_quietly(sock, head + body)
            got = answer(sock)
        status, _, rest = got.partition(b"\r\n")
        assert b" 413 " in status, got[:200]
        assert b"connection: close" in rest.lower().split(b"\r\n\r\n")[0], got[:400]
        with httpx.Client(base_url=th.url, timeout=10) as http:
            for _ in range(20):
                r = http.post("/v1/acts", content=body, headers={"Content-Type": "application/json"})
                assert r.status_code == 413 and r.headers["connection"] == "close"
                assert http.get("/healthz").status_code == 200
