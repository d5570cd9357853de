"""Run the hub's ASGI app with uvicorn: in the foreground (``cbmnet serve``) or in a thread.

The thread form serves the demo, the tests and the benchmarks: a real server on a real
loopback socket, stopped cleanly (no process left behind).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

WS_MAX_BYTES = 256 * 1024
"""Clients send nothing but pings and echo probes on a WebSocket: no big frames accepted."""


class ServerThread:
    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level=log_level,
            ws_max_size=WS_MAX_BYTES,
            # Hotline bodies are HPKE ciphertext in base64: deflate costs CPU and saves little.
            ws_per_message_deflate=False,
            lifespan="on",
        )
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
