"""Pushes: the caller's entries over a WebSocket, live; and an echo for latency baselines.

A WebSocket route reaches the hub with ``deps.hub_from(ws)`` and checks the token itself:
a refused one closes the socket with code 4401.
"""

import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from cbmnet.errors import CbmnetError
from cbmnet.hub.api.acts import item_json
from cbmnet.hub.deps import credentials, hub_from
from cbmnet.hub.wakeup import woken_by_appends

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket, token: str = "", after: int = -1) -> None:
    """Entries the caller may read, from ``after``, then live: store and forward.

    The token is re-checked at every wake: a revoked key or an expired token ends
    the stream (close code 4401); the client reconnects with a new token and its cursor.
    """
    hub = hub_from(ws)
    raw = token or ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        party, key, exp = await run_in_threadpool(credentials, hub, raw)
    except CbmnetError as e:
        await ws.close(code=4401, reason=str(e)[:120])
        return
    await ws.accept()
    cursor = max(-1, min(after, 2**62))
    try:
        async with woken_by_appends(ws, hub, party) as w:
            while not w.closed.is_set():
                w.wake.clear()
                if time.time() > exp or not hub.views.key_active(party, key):
                    await ws.close(code=4401, reason="token expired or key no longer active")
                    return
                items = hub.views.entries_for(party, after=cursor, limit=200)
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


@router.websocket("/v1/echo")
async def echo(ws: WebSocket, token: str = "") -> None:
    """Echo each text message (authenticated): the baseline of push latency benchmarks."""
    raw = token or ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        await run_in_threadpool(credentials, hub_from(ws), raw)
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
