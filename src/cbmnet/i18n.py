"""The six UN languages (English, French, Spanish, Russian, Chinese, Arabic), shared by
the dashboard and the CLI.

A national centre works in its own language. The catalogues are gettext ``.po`` files
(``cbmnet/locale/LANG/LC_MESSAGES/cbmnet.po``), read with Babel and compiled in memory at
first use. Who chooses the language is the edge's business: the dashboard per browser
(``hub/web/i18n.py``), the CLI per process (``cli/lang.py``); both set ``CURRENT``.

What is translated is what the marked strings cover (``_()`` in templates, ``N_()`` and
``gettext()`` in Python). Treaty text (provisions, measure titles) stays in the language
the agreement file gives it, and so do the diagnostics of the shared core, which are the
same words the hub answers with. ``tests/test_i18n.py`` checks every marked string has a
translation in every catalogue.
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

from cbmnet.compliance.timeutil import MAX_TIME_MS, MIN_TIME_MS, parse_time
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
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

CURRENT: ContextVar[str] = ContextVar("cbmnet_lang", default=DEFAULT)
"""The language being written in (a page's, set per request; the CLI's, set at start)."""

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


def direction() -> str:
    return LANGUAGES[CURRENT.get()][1]


def when(value: object) -> str:
    """A time in the reader's language, with UTC said: ``4 déc. 2026, 18:19:36 UTC``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            ms = parse_time(value, "time")
        except CbmnetError:  # not a time: shown as given
            return value
    elif isinstance(value, int) and not isinstance(value, bool) and MIN_TIME_MS <= value < MAX_TIME_MS:
        ms = value
    else:  # not a time either (an answer of a hub a mirror shows as it came)
        return str(value)[:64]
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    try:
        locale = Locale.parse(CURRENT.get())
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse(DEFAULT)
    return f"{format_datetime(moment, format='medium', tzinfo=dt.UTC, locale=locale)} UTC"
