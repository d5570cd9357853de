"""What every dashboard page shares: the templates, the response headers, the static
folder, this site's origin check and the page a caller who is not signed in gets.

Templates and static files stay in ``hub/templates`` and ``hub/static`` (package data).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from cbmnet.errors import CbmnetError
from cbmnet.hub import auth
from cbmnet.hub.deps import COOKIE, NotSignedIn
from cbmnet.hub.web import i18n

HERE = Path(__file__).parent.parent
"""The hub's folder, which holds ``templates/`` and ``static/``."""

ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
# The page's language is the request's (``i18n.CURRENT``): _() and the date filter read it.
ENV.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
ENV.globals.update(
    lang=lambda: i18n.CURRENT.get(),
    direction=i18n.direction,
    languages=i18n.LANGUAGES,
    request_path=lambda: i18n.PATH.get(),
)
ENV.filters["when"] = i18n.when


def render(name: str, status: int = 200, *, scripts: bool = False, **ctx: Any) -> HTMLResponse:
    """One template, escaped; pages are private, so never cached or framed.

    ``scripts``: the page may run this site's own script files (never inline script).
    """
    html = ENV.get_template(name).render(**ctx)
    csp = "default-src 'none'; style-src 'self'; form-action 'self'"
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": csp
            + ("; script-src 'self'; connect-src 'self'; img-src 'self' data:" if scripts else ""),
            # Same-origin, not no-referrer: with no-referrer a browser sends ``Origin: null``
            # on this site's own form posts, and sign-in and sign-out check the Origin.
            "Referrer-Policy": "same-origin",
        },
    )


def from_this_site(request: Request) -> bool:
    """A state-changing dashboard POST came from this site's own page: its Origin (or,
    without one, its Referer) is this hub's. A page of another site cannot sign a browser
    in or out; a request with neither header is refused too."""
    here = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == here
    referer = request.headers.get("referer")
    return referer is not None and (referer == here or referer.startswith(here + "/"))


STATIC = HERE / "static"
STATIC_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


STATIC_NAME = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}/){0,3}[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
"""What a static file may be called: ASCII letters, digits, ``._-`` and at most three
folders, no part starting with a dot. The client's text reaches the filesystem only if it
matches, so no NUL, backslash, ``..``, Unicode or overlong name can make a path call fail."""


def static_path(name: str) -> tuple[Path, str] | None:
    """The file under ``static/`` that ``name`` names, with its type; None if there is none.

    Only known suffixes, no hidden files, and nothing outside the folder (``..`` or links).
    """
    if not STATIC_NAME.fullmatch(name):
        return None
    media_type = STATIC_TYPES.get(Path(name).suffix)
    if media_type is None:
        return None
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        return None
    return path, media_type


async def not_signed_in(_request: Request, err: Exception) -> Response:
    """The exception handler of ``NotSignedIn`` (``create_app`` installs it)."""
    reason = err.reason if isinstance(err, NotSignedIn) else "not signed in"
    resp = render("signin.html", 401, reason=reason, party=None)
    resp.delete_cookie(COOKIE, path="/dashboard")
    return resp


# ---- sign-in with a one-time code: the hub's dashboard and a party's mirror ------------

CROSS_SITE = "sign-in and sign-out are accepted only from this site's own pages"


class SignInDesk(Protocol):
    """What a site that signs parties in with one-time codes (``cbmnet dashboard login``)
    gives the sign-in pages: the hub, or a party's national mirror."""

    @property
    def secret(self) -> bytes: ...

    def open_session(self, code: str) -> tuple[str, str, int]:
        """(party, session, expiry) for a sign-in code, spent once."""
        ...

    def revoke(self, nonce: str, exp: int) -> None:
        """Spend a session's nonce: it is signed out, on every process."""
        ...


def add_signin_routes(router: APIRouter, desk_of: Callable[[Request], SignInDesk]) -> None:
    """The sign-in page, sign-in and sign-out on ``router``, for the desk of each request."""

    @router.get("/dashboard/login", include_in_schema=False)
    def login_page(request: Request, code: str | None = None) -> Response:
        """A sign-in link carries a one-time code: this page shows whose it is and a button
        that posts it (a link alone, opened by another site, signs nobody in)."""
        if not code:
            return render("signin.html", reason=None, party=None, code=None, signing_in=None)
        try:
            party = auth.read_signin(desk_of(request).secret, code[:1024], int(time.time()))[0]
        except CbmnetError as e:
            raise NotSignedIn(str(e)[:300]) from None
        return render("signin.html", reason=None, party=None, code=code, signing_in=party)

    @router.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Use the code once, from this site's own page; it becomes a session in an
        HttpOnly, SameSite=Strict cookie."""
        if not from_this_site(request):
            return render("signin.html", 403, reason=CROSS_SITE, party=None, code=None, signing_in=None)
        try:
            form = parse_qs((await request.body())[:4096].decode("latin-1"), max_num_fields=4)
        except ValueError:
            raise NotSignedIn("the sign-in form has more fields than its code") from None
        code = (form.get("code") or [""])[0][:1024]
        if not code:
            raise NotSignedIn("the sign-in form carried no code")
        try:
            _party, session, exp = await run_in_threadpool(desk_of(request).open_session, code)
        except CbmnetError as e:
            raise NotSignedIn(str(e)[:300]) from None
        resp = RedirectResponse("/dashboard", status_code=303)
        resp.set_cookie(
            COOKIE,
            session,
            max_age=max(1, exp - int(time.time())),
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @router.post("/dashboard/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """Sign out: the session is revoked where it was issued (a copied cookie stops
        working too)."""
        if not from_this_site(request):
            return render("signin.html", 403, reason=CROSS_SITE, party=None, code=None, signing_in=None)
        desk = desk_of(request)
        session = request.cookies.get(COOKIE)
        if session:
            try:
                _party, _key, nonce, exp = auth.read_session(
                    desk.secret, session[:4096], int(time.time())
                )
            except CbmnetError:
                pass  # expired or forged: nothing to revoke
            else:
                desk.revoke(nonce, exp)
        resp = RedirectResponse("/dashboard/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
        return resp
