"""Every dashboard page read in French says nothing in English that is marked for
translation: each marked sentence whose French differs is found only in French, and the
hotline console's own words (``data-ui``, read by hotline.js) are the catalogue's.

Needs the catalogues filled for the strings marked in the templates and pages.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from cbmnet.hub.web import i18n
from cbmnet.hub.web.hotline import UI
from tests.browserkit import session_cookie
from tests.hubkit import TestHub, running_hub
from tests.test_i18n import marked

HUB = Path(__file__).resolve().parents[1] / "src" / "cbmnet" / "hub"
PLACEHOLDER = re.compile(r"%\(\w+\)s")
LONG = 24
"""A marked sentence's fixed text this long is not also a party's data by chance."""
PAGES = (
    "/dashboard",
    "/dashboard/deadlines",
    "/dashboard/map",
    "/dashboard/archive",
    "/dashboard/inbox",
    "/dashboard/file",
    "/dashboard/hotline",
    "/dashboard/alerts",
    "/dashboard/quotas",
    "/dashboard/report",
    "/dashboard/log",
    "/dashboard/verify/0",
)


@pytest.fixture(scope="module")
def th(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHub]:
    tmp = tmp_path_factory.mktemp("i18n-pages")
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp) as th:
        th.register("DEU", "FRA", "POL")
        yield th


@pytest.fixture(scope="module")
def fr() -> Catalog:
    with (i18n.LOCALE_DIR / "fr" / "LC_MESSAGES" / "cbmnet.po").open("rb") as f:
        return read_po(f, locale="fr")


def _text(page: str) -> str:
    """What a reader sees or hears: text, titles, labels and placeholders; not code."""
    page = re.sub(r"<(pre|code|script)\b.*?</\1>", " ", page, flags=re.S)
    attrs = " ".join(re.findall(r'(?:aria-label|title|placeholder)="([^"]*)"', page))
    text = re.sub(r"<[^>]+>", " ", page) + " " + attrs
    return re.sub(r"\s+", " ", html.unescape(text))


def _get(th: TestHub, path: str, lang: str, signed_in: bool = True) -> httpx.Response:
    cookie = f"cbmnet_lang={lang}"
    if signed_in:
        with th.client("DEU") as c:
            cookie += f"; cbmnet_session={session_cookie(th.url, c.token())}"
    return httpx.get(f"{th.url}{path}", headers={"Cookie": cookie})


def _english_left(page: str, fr: Catalog) -> list[str]:
    text = _text(page)
    left = []
    for msgid in sorted(marked("hub/web/", "hub/templates/")):
        msg = fr.get(msgid)
        if msg is None or not msg.string or msg.string == msgid:
            continue  # untranslated (another test says so) or the same in French
        chunks = [c.strip() for c in PLACEHOLDER.split(msgid)]
        if any(len(c) >= LONG and c in text for c in chunks):
            left.append(msgid)
    return left


@pytest.mark.parametrize("path", PAGES)
def test_a_page_in_french_says_no_marked_sentence_in_english(
    th: TestHub, fr: Catalog, path: str
) -> None:
    r = _get(th, path, "fr")
    assert r.status_code == 200, (path, r.status_code)
    assert '<html lang="fr"' in r.text
    assert _english_left(r.text, fr) == [], path


def test_the_sign_in_page_in_french_says_no_marked_sentence_in_english(fr: Catalog, th: TestHub) -> None:
    r = _get(th, "/dashboard", "fr", signed_in=False)
    assert "cbmnet dashboard login" in r.text  # the command is never translated
    assert _english_left(r.text, fr) == []


def test_the_hotline_console_gets_its_words_in_french(th: TestHub, fr: Catalog) -> None:
    page = _get(th, "/dashboard/hotline", "fr").text
    got = re.search(r'data-ui="([^"]*)"', page)
    assert got is not None
    ui = json.loads(html.unescape(got.group(1)))
    assert set(ui) == set(UI)
    for key, english in UI.items():
        msg = fr.get(english)
        assert msg is not None and msg.string, f"no French for {english!r}"
        assert ui[key] == msg.string
        assert set(PLACEHOLDER.findall(ui[key])) == set(PLACEHOLDER.findall(english)), key


def test_the_hotline_console_in_english_keeps_its_english_words(th: TestHub) -> None:
    page = _get(th, "/dashboard/hotline", "en").text
    got = re.search(r'data-ui="([^"]*)"', page)
    assert got is not None
    assert json.loads(html.unescape(got.group(1))) == UI
