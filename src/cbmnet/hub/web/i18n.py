"""The dashboard in the six UN languages: English, French, Spanish, Russian, Chinese, Arabic.

A national centre works in its own language. Each browser chooses (the ``cbmnet_lang``
cookie, set by ``/dashboard/lang``; else its ``Accept-Language``); pages are rendered
with that language's gettext catalogue (``hub/locale/LANG/LC_MESSAGES/cbmnet.po``, read
with Babel and compiled in memory at first use), laid out right to left for Arabic, with
dates in the language's own style and the time always in UTC, said so.

What is translated is what the marked strings cover (``_()`` in templates, ``N_()`` in
Python): the navigation, sign-in, the forms, the work queue and the hotline console's
controls. Treaty text (provisions, measure titles) stays in the language the agreement
file gives it. ``tests/test_i18n.py`` checks every marked string has a translation in
every catalogue.
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import io
import threading
from contextvars import ContextVar
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.types import ASGIApp, Receive, Scope, Send

from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import CbmnetError

LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("English", "ltr"),
    "fr": ("Français", "ltr"),
    "es": ("Español", "ltr"),
    "ru": ("Русский", "ltr"),
    "zh": ("中文", "ltr"),
    "ar": ("العربية", "rtl"),
}
"""Language code -> (its own name, its direction)."""
DEFAULT = "en"
COOKIE = "cbmnet_lang"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

CURRENT: ContextVar[str] = ContextVar("cbmnet_lang", default=DEFAULT)
"""The language of the page being rendered (set per request by ``LanguageMiddleware``)."""

PATH: ContextVar[str] = ContextVar("cbmnet_path", default="/dashboard")
"""The page being rendered (path and query), for the language links to come back to."""

_catalogs: dict[str, _gettext.NullTranslations] = {}
_lock = threading.Lock()


def N_(message: str) -> str:
    """Mark ``message`` for the catalogues; it is translated where it is shown."""
    return message


def catalog(lang: str) -> _gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English: the messages themselves)."""
    with _lock:
        got = _catalogs.get(lang)
        if got is not None:
            return got
        path = LOCALE_DIR / lang / "LC_MESSAGES" / "cbmnet.po"
        if lang == DEFAULT or not path.is_file():
            got = _gettext.NullTranslations()
        else:
            with path.open("rb") as f:
                po = read_po(f, locale=lang)
            buf = io.BytesIO()
            write_mo(buf, po)
            buf.seek(0)
            got = _gettext.GNUTranslations(buf)
        _catalogs[lang] = got
        return got


def gettext(message: str) -> str:
    return catalog(CURRENT.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalog(CURRENT.get()).ngettext(singular, plural, n)


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


def direction() -> str:
    return LANGUAGES[CURRENT.get()][1]


def when(value: str | int | None) -> str:
    """A time in the reader's language, with UTC said: ``4 déc. 2026, 18:19:36 UTC``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            ms = parse_time(value, "time")
        except CbmnetError:  # not a time: shown as given
            return value
    else:
        ms = value
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    try:
        locale = Locale.parse(CURRENT.get())
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse(DEFAULT)
    return f"{format_datetime(moment, format='medium', tzinfo=dt.UTC, locale=locale)} UTC"


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
