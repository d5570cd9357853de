"""The hub over HTTP and WebSocket (FastAPI): ``create_app`` builds the app from routers.

The routes live in ``cbmnet.hub.api`` (one router per concern) and ``cbmnet.hub.web`` (the
dashboard); what they share is in ``cbmnet.hub.deps``, and the rules in the service. Here
the app gets its hub and limits (``app.state``), its middleware, its background threads
and its error handlers.

Errors are JSON ``{"error": code, "message": text}``; the status comes from the error
tree (``cbmnet.errors``), mapped here and only here.
"""

import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from cbmnet.errors import CbmnetError, FormatError
from cbmnet.hub.api import acts, alerts, compliance, identity, log, service, stream, tiles, verification
from cbmnet.hub.deps import Limits, NotSignedIn
from cbmnet.hub.limits import (
    MAX_REQUEST_BYTES,
    Admission,
    Bucket,
    Evaluations,
    RequestLimits,
    error_response,
)
from cbmnet.hub.service import Hub
from cbmnet.hub.tail import tail
from cbmnet.hub.web import dashboard, filing, hotline, inbox, maps, report
from cbmnet.hub.web.i18n import LanguageMiddleware
from cbmnet.hub.web.render import not_signed_in

__all__ = ["LANDING", "MAX_REQUEST_BYTES", "create_app"]

LANDING = "/dashboard"
"""Where ``GET /`` leads: the dashboard's overview (its sign-in page until signed in)."""


def create_app(hub: Hub, *, run_duties: bool = True) -> FastAPI:
    """The ASGI app over ``hub``; ``run_duties`` starts the sweeps and the log tailer."""
    limits = Limits(
        writes=Bucket(hub.settings.writes_per_s),
        party_writes=Bucket(hub.settings.party_writes_per_s),
        evaluations=Evaluations(hub.settings.evaluations_per_s),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threads = [threading.Thread(target=tail, args=(hub, stop), name="cbmnet-tail", daemon=True)]
        if run_duties:
            threads.append(
                threading.Thread(target=hub.run_duties, args=(stop,), name="cbmnet-duties", daemon=True)
            )
            threads.append(
                threading.Thread(target=hub.run_alerts, args=(stop,), name="cbmnet-alerts", daemon=True)
            )
        for t in threads:
            t.start()
        try:
            yield
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
            limits.evaluations.close()

    app = FastAPI(
        title="cbmnet hub",
        version="1",
        summary="Confidence-building measures between parties who trust neither each other nor the hub.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.limits = limits
    app.state.evaluations = limits.evaluations  # the dashboard's pages run their engine work there too

    app.add_exception_handler(CbmnetError, cbmnet_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotSignedIn, not_signed_in)  # a dashboard page: the sign-in page
    app.add_middleware(LanguageMiddleware)  # the dashboard's language, per request
    app.add_middleware(RequestLimits, admission=Admission(hub.token_secret))

    for module in (service, identity, acts, verification, compliance, log, tiles, stream, alerts):
        add_routes(app, module.router)
    for page in (dashboard, hotline, maps, filing, inbox, report):
        add_routes(app, page.router)
    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Each of ``router``'s routes, added to the app itself as if declared on it.

    Not ``include_router``: FastAPI keeps an included router as one opaque entry of
    ``app.routes``, and the route table must list every (method, path) it serves (the
    authorisation matrix test walks it, and a route missing from it would escape the check).
    """
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(
                route.path,
                route.endpoint,
                methods=sorted(route.methods or ()),
                tags=route.tags,
                status_code=route.status_code,
                response_class=route.response_class,
                include_in_schema=route.include_in_schema,
                name=route.name,
            )
        elif isinstance(route, APIWebSocketRoute):
            app.add_api_websocket_route(route.path, route.endpoint, name=route.name)
        else:  # pragma: no cover - the routers declare only the two kinds above
            raise TypeError(f"cannot add route {route!r}")


async def cbmnet_error(_request: Request, err: Exception) -> Response:
    assert isinstance(err, CbmnetError)
    return error_response(err)


async def http_error(request: Request, err: Exception) -> Response:
    """Starlette's own refusals (unknown route, wrong method, unparsable body): our shape.

    ``GET /`` leads to the dashboard. Not a route: the route table (which the authorisation
    matrix checks row by row) holds only what answers with the hub's data.
    """
    assert isinstance(err, StarletteHTTPException)
    if err.status_code == 404 and request.url.path == "/" and request.method in ("GET", "HEAD"):
        return RedirectResponse(LANDING)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    code = codes.get(err.status_code, "bad_input" if err.status_code < 500 else "error")
    return JSONResponse(
        {"error": code, "message": str(err.detail)[:500]},
        status_code=err.status_code,
        headers=getattr(err, "headers", None),
    )


async def validation_error(_request: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return error_response(FormatError("; ".join(parts) or "invalid request"))
