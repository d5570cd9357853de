"""The mirror's read-only service: what the hub's log serves, from the mirror's own copy.

Served: ``/v1/tlog/checkpoint`` (with the mirror's cosignature) and its tiles, and the log
reads a monitor, an auditor or a witness makes (``/v1/log/checkpoint``, ``checkpoints``,
``consistency``, ``leaves``); ``/v1/mirror`` says what the mirror holds and, if it stopped
on a split view, shows both checkpoints. Nothing is written through it.

The entries the mirror holds are its party's: the hub let that party read them, nobody
else. They are served only with ``serve_entries`` (``cbmnet mirror --serve-entries``), and
then only to a client on the mirror's own machine (loopback; never put a proxy on that
machine in front of it); anyone else gets the hashes, which reveal nothing (ADR 0011).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cbmnet.errors import CbmnetError, NotFoundError, StoreError
from cbmnet.hub.limits import error_response
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.tiles import parse_tile_path
from cbmnet.log.service import TransparencyLog
from cbmnet.log.tiles import entry_bundle, hash_tile
from cbmnet.mirror.follow import HUB_INFO, describe, pin_party
from cbmnet.store.sql import Store

Size = Annotated[int, Query(ge=0, lt=2**62)]
IMMUTABLE = "public, max-age=31536000, immutable"


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_mirror_app(
    store: Store,
    *,
    serve_entries: bool = False,
    party: str | None = None,
    party_key: bytes | None = None,
) -> FastAPI:
    """The mirror's app over its ``store`` (which ``Follower`` created and fills).

    With ``party`` and ``party_key`` (the Ed25519 public key the mirror was started with),
    that party signs in here as on the hub and reads its entries, the hub's last answers
    and a dashboard page (``mirror/reads.py``)."""
    from cbmnet.hub.app import http_error, validation_error
    from cbmnet.hub.deps import NotSignedIn
    from cbmnet.hub.limits import RequestLimits
    from cbmnet.hub.web.dashboard import choose_language, static_file
    from cbmnet.hub.web.i18n import LanguageMiddleware
    from cbmnet.hub.web.render import not_signed_in
    from cbmnet.mirror.reads import READ_ONLY, PartyDesk, page_routes, router

    app = FastAPI(title="cbmnet mirror", docs_url=None, redoc_url=None)
    log = TransparencyLog(store)
    pin_party(store, party)  # never another party's store
    desk = PartyDesk(store, party, party_key)
    app.state.desk = desk

    async def cbmnet_error(_request: Request, err: Exception) -> Response:
        assert isinstance(err, CbmnetError)
        return error_response(err)

    app.add_exception_handler(CbmnetError, cbmnet_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(RequestLimits)
    app.include_router(router)
    app.include_router(page_routes())
    app.add_api_route("/dashboard/static/{name:path}", static_file, include_in_schema=False)
    app.add_api_route("/dashboard/lang", choose_language, include_in_schema=False)

    def may_read(request: Request) -> bool:
        """Entries go to the party signed in here, or to this machine with --serve-entries."""
        if serve_entries and _loopback(request):
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            desk.caller(token.strip())
        except CbmnetError:
            return False
        return True

    def signed_latest() -> str:
        return log.signed_checkpoint(log.latest_checkpoint())

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "mirror": True}

    @app.get("/v1/hub")
    def hub_info() -> dict[str, Any]:
        """The hub's keys as the mirror last saw them (an auditor pins the log key)."""
        raw = store.get_meta(HUB_INFO)
        if raw is None:
            raise NotFoundError("the mirror has not seen the hub yet")
        doc: dict[str, Any] = json.loads(raw)
        return {**doc, "mirror": True}

    @app.get("/v1/mirror")
    def mirror_state() -> dict[str, Any]:
        return describe(store)

    @app.get("/v1/tlog/checkpoint", response_class=PlainTextResponse)
    @app.get("/v1/log/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> Response:
        return PlainTextResponse(signed_latest(), headers={"Cache-Control": "no-cache"})

    @app.get("/v1/tlog/tile/{path:path}")
    async def tile(path: str, request: Request) -> Response:
        level, index, width = parse_tile_path("tile/" + path)
        size = _mirrored(store)
        if level >= 0:
            data = await run_in_threadpool(hash_tile, store, size, level, index, width)
            return Response(
                data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
            )
        local = may_read(request)
        data = await run_in_threadpool(
            entry_bundle,
            store,
            size,
            index,
            width,
            (lambda ix: set(ix)) if local else (lambda _i: set()),
        )
        headers = {"Cache-Control": "private, no-store"}
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.get("/v1/log/checkpoints")
    def checkpoints(
        after: Annotated[int, Query(ge=-1)] = -1, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        return {"checkpoints": log.listed_checkpoints(after, limit)}

    @app.get("/v1/log/consistency")
    def consistency(old: Size, new: Size) -> dict[str, Any]:
        if new > _mirrored(store):
            raise NotFoundError(f"the mirror holds {_mirrored(store)} entries; no tree of size {new}")
        return {"old": old, "new": new, "proof": [b64(h) for h in log.consistency_proof(old, new)]}

    @app.get("/v1/log/leaves")
    def leaves(
        request: Request, start: Size = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 1000
    ) -> JSONResponse:
        size = _mirrored(store)
        hi = min(size, start + limit)
        hashes = store.nodes_at_level(0, start, hi)
        held = {}
        if may_read(request):
            for r in store.iter_entries(after=start - 1, chunk=limit):
                if r.idx >= hi:
                    break
                held[r.idx] = r
                if len(held) == hi - start:
                    break
        out = []
        for i in range(start, hi):
            item: dict[str, Any] = {"index": i, "leaf_hash": b64(hashes[i])}
            if i in held:
                item["entry"] = b64(encode_entry(held[i].integrated_ms, held[i].envelope))
            out.append(item)
        return JSONResponse({"leaves": out})

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    def not_a_mirrors(rest: str, request: Request) -> None:
        """Whatever else the hub answers: named, so a party's tool says why, not just 404."""
        if request.method != "GET":
            raise StoreError(READ_ONLY)
        raise NotFoundError(
            f"a mirror does not answer /v1/{rest[:100]}: only the hub does (quotas, dry runs,"
            " reports and the live stream need the whole record); a mirror serves its party's"
            " entries, inbox and proofs, the hub's last obligations, indicators, parties and"
            " channels, and the log's tiles and proofs (docs/adr/0012)"
        )

    return app


def _mirrored(store: Store) -> int:
    """The size of the latest checkpoint the mirror kept (its nodes are all stored)."""
    latest = store.latest_checkpoint()
    return 0 if latest is None else latest.size
