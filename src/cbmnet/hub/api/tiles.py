"""The log as C2SP tlog-tiles (``/v1/tlog/``): the checkpoint, hash tiles and entry bundles.

What outside monitors, witnesses and national mirrors read (Go's sumdb tools, Sunlight's
and Tessera's clients). Hash tiles are the tree's hashes: anyone may read them, and they
reveal nothing of an entry. An entry bundle carries only the entries its caller may read;
the others are zero-length (``ledger/tiles.py``, docs/adr/0011-tiles.md).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from cbmnet.hub.deps import HubDep, MaybeCaller
from cbmnet.hub.service import Hub
from cbmnet.ledger.tiles import parse_tile_path
from cbmnet.log.tiles import entry_bundle, hash_tile

router = APIRouter(tags=["tiles"])

PREFIX = "/v1/tlog"
IMMUTABLE = "public, max-age=31536000, immutable"
"""A hash tile never changes: a partial tile of width W is the same W hashes forever."""


@router.get(f"{PREFIX}/checkpoint", response_class=PlainTextResponse)
def tiles_checkpoint(hub: HubDep) -> Response:
    """The latest checkpoint with its cosignatures (c2sp.org/tlog-checkpoint)."""
    text = hub.rlog.signed_checkpoint(hub.rlog.latest_checkpoint())
    return PlainTextResponse(text, headers={"Cache-Control": "no-cache"})


@router.get(PREFIX + "/tile/{path:path}")
async def tile(path: str, hub: HubDep, party: MaybeCaller) -> Response:
    """A hash tile ``tile/L/N[.p/W]`` or an entry bundle ``tile/entries/N[.p/W]``."""
    level, index, width = parse_tile_path("tile/" + path)
    if level >= 0:
        data = await run_in_threadpool(_hash_tile, hub, level, index, width)
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
        )
    data = await run_in_threadpool(_bundle, hub, party, index, width)
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": "private, no-store"}
    )


def _hash_tile(hub: Hub, level: int, index: int, width: int) -> bytes:
    return hash_tile(hub.rstore, hub.rlog.size(), level, index, width)


def _bundle(hub: Hub, party: str | None, index: int, width: int) -> bytes:
    """Cut to ``party`` (the caller's token was checked, and the hub synced, by ``deps``)."""
    if party is None:
        return entry_bundle(hub.rstore, hub.rlog.size(), index, width, lambda _i: set())
    return entry_bundle(
        hub.rstore, hub.rlog.size(), index, width, lambda ix: hub.views.readable_indices(party, list(ix))
    )
