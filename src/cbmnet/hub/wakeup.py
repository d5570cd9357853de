"""What a WebSocket handler waits on: something new for its party, or its peer gone.

Shared by the API's ``/v1/stream`` and the dashboard's hotline stream, so that both
register with the hub the same way and always unregister, whatever ends the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.websockets import WebSocket

from cbmnet.hub.service import Hub


@dataclass(frozen=True)
class Wakeup:
    wake: asyncio.Event
    """Set when the hub has durable entries the party may read, or the peer left."""
    closed: asyncio.Event
    """Set when the peer closed the socket (or it broke)."""


@asynccontextmanager
async def woken_by_appends(ws: WebSocket, hub: Hub, party: str) -> AsyncIterator[Wakeup]:
    """Listen for ``party``'s new entries and read the socket past whatever the client
    sends (it sends nothing acted on); the listener is removed on the way out."""
    loop = asyncio.get_running_loop()
    w = Wakeup(asyncio.Event(), asyncio.Event())

    def poke() -> None:
        loop.call_soon_threadsafe(w.wake.set)

    async def reader() -> None:
        try:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
        except Exception:  # noqa: S110 - a broken socket is a closed socket
            pass
        finally:
            w.closed.set()
            w.wake.set()

    hub.add_listener(party, poke)
    task = asyncio.create_task(reader())
    try:
        yield w
    finally:
        hub.remove_listener(party, poke)
        task.cancel()
