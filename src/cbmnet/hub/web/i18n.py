"""The dashboard's language: each browser chooses (the ``cbmnet_lang`` cookie, set by
``/dashboard/lang``; else its ``Accept-Language``), and its pages are rendered in that
language (``cbmnet.i18n``: the catalogues, Arabic right to left, dates with UTC said).
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

from cbmnet.i18n import (
    CURRENT,
    DEFAULT,
    LANGUAGES,
    LOCALE_DIR,
    N_,
    catalog,
    direction,
    gettext,
    ngettext,
    when,
)

__all__ = [
    "COOKIE",
    "CURRENT",
    "DEFAULT",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "PATH",
    "LanguageMiddleware",
    "catalog",
    "choose",
    "direction",
    "gettext",
    "ngettext",
    "when",
]

COOKIE = "cbmnet_lang"

PATH: ContextVar[str] = ContextVar("cbmnet_path", default="/dashboard")
"""The page being rendered (path and query), for the language links to come back to."""


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it is one of ours, else the best of ``Accept-Language``
    (by its q-values), else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    best: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:1000].split(",")[:32]):
        tag, _, q = part.strip().partition(";q=")
        lang = tag.strip().split("-")[0].lower()
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if lang in LANGUAGES and 0 < weight <= 1:
            best.append((-weight, i, lang))
    return min(best)[2] if best else DEFAULT


class LanguageMiddleware:
    """Sets ``CURRENT`` (and ``PATH``) for each dashboard request from its cookie or
    Accept-Language."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/dashboard"):
            await self.app(scope, receive, send)
            return
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        back = PATH.set(f"{path}?{query}"[:512] if query else path[:512])
        token = CURRENT.set(choose(_cookie(headers.get("cookie")), headers.get("accept-language")))
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT.reset(token)
            PATH.reset(back)


def _cookie(header: str | None) -> str | None:
    for part in (header or "")[:4096].split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
