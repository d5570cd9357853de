"""The dashboard in the six UN languages (issue 15, item 7): gettext catalogues read with
Babel, chosen per browser, Arabic laid out right to left, dates in the reader's style with
UTC said; in Debian's chromium, an act filed in Arabic and in Russian.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from cbmnet.hub.web import i18n
from tests.browserkit import screenshot, session_cookie, sign_in
from tests.hubkit import TestHub, running_hub

SRC = Path(__file__).resolve().parents[1] / "src" / "cbmnet"
VD = "vienna-document-2011"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def marked(*under: str) -> set[str]:
    """Every msgid marked in the source (as babel.cfg extracts), or only in files under
    the given folders of ``src/cbmnet``."""
    return {msgid for path, msgid in _extracted() if not under or path.startswith(under)}


@functools.cache
def _extracted() -> tuple[tuple[str, str], ...]:
    found = extract_from_dir(
        str(SRC),
        method_map=[("**.py", "python"), ("hub/templates/**.html", "jinja2")],
        options_map={"hub/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
    )
    return tuple((f, m[0] if isinstance(m, tuple) else m) for f, _l, m, _c, _x in found)


@pytest.mark.parametrize("lang", [code for code in i18n.LANGUAGES if code != "en"])
def test_every_marked_string_is_translated_with_its_placeholders(lang: str) -> None:
    path = i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "cbmnet.po"
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    msgids = marked()
    assert len(msgids) > 100
    for msgid in sorted(msgids):
        msg = cat.get(msgid)
        assert msg is not None and msg.string and not msg.fuzzy, f"{lang}: no translation of {msgid!r}"
        assert set(PLACEHOLDER.findall(msgid)) == set(PLACEHOLDER.findall(str(msg.string))), (
            lang,
            msgid,
        )


def test_the_language_is_the_cookies_else_the_browsers_best_else_english() -> None:
    assert i18n.choose("ar", "fr") == "ar"
    assert i18n.choose("xx", "de-DE,ru;q=0.9,fr;q=0.8") == "ru"
    assert i18n.choose(None, "fr-CA;q=0.5, zh-Hans;q=0.7") == "zh"
    assert i18n.choose(None, "de, it") == "en"
    assert i18n.choose(None, ";q=zz, ,fr;q=2") == "en"  # nonsense is ignored
    assert i18n.choose(None, None) == "en"


@pytest.fixture(scope="module")
def th(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHub]:
    tmp = tmp_path_factory.mktemp("i18n")
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp) as th:
        th.register("DEU", "FRA", "POL")
        yield th


def _get(th: TestHub, path: str, cookie: str = "", accept: str | None = None) -> httpx.Response:
    """A dashboard page as DEU, with ``cookie`` beside the session and an Accept-Language."""
    with th.client("DEU") as c:
        session = f"cbmnet_session={session_cookie(th.url, c.token())}"
    headers = {"Cookie": f"{session}; {cookie}".strip("; ")}
    if accept is not None:
        headers["Accept-Language"] = accept
    return httpx.get(f"{th.url}{path}", headers=headers)


def test_pages_speak_the_chosen_language_and_arabic_reads_right_to_left(th: TestHub) -> None:
    ar = _get(th, "/dashboard/inbox", cookie="cbmnet_lang=ar").text
    assert '<html lang="ar" dir="rtl">' in ar and "بانتظار الرد" in ar and "تسجيل الخروج" in ar
    ru = _get(th, "/dashboard/file", accept="ru-RU,ru;q=0.9").text
    assert '<html lang="ru" dir="ltr">' in ru and "Подать акт" in ru
    fr = _get(th, "/dashboard/file.json?agreement=" + VD, cookie="cbmnet_lang=fr").json()
    titles = {f["id"]: f["title"] for f in fr["forms"]}
    assert titles["notification.prior_notification"] == "Notification : prior notification"
    assert fr["ui"]["meets"] == "Respecte"
    # The treaty's own words (provisions, figures) are not translated.
    hints = [h for f in fr["forms"] for x in f["fields"] for h in x["hints"]]
    assert any("VD11 ¶38" in h for h in hints)
    en = _get(th, "/dashboard/inbox").text
    assert '<html lang="en" dir="ltr">' in en and "To answer" in en


def test_the_language_switch_sets_a_cookie_and_returns_only_to_the_dashboard() -> None:
    from cbmnet.hub.web.dashboard import choose_language

    r = choose_language("ar", "/dashboard/inbox?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/inbox?x=1"
    assert "cbmnet_lang=ar" in r.headers["set-cookie"] and "SameSite=strict" in r.headers["set-cookie"]
    for away in (
        "https://elsewhere.example/",
        "//elsewhere.example/dashboard",
        "/dashboard\\..\\x",
        "/v1/acts",
    ):
        assert choose_language("fr", away).headers["location"] == "/dashboard"
    assert "cbmnet_lang=en" in choose_language("klingon", "/dashboard").headers["set-cookie"]


def test_dates_are_in_the_readers_style_with_utc_said() -> None:
    t = i18n.CURRENT.set("fr")
    try:
        assert i18n.when("2026-12-04T18:19:36Z") == "4 déc. 2026, 18:19:36 UTC"
    finally:
        i18n.CURRENT.reset(t)
    t = i18n.CURRENT.set("zh")
    try:
        assert i18n.when("2026-12-04T18:19:36Z").endswith("18:19:36 UTC")
    finally:
        i18n.CURRENT.reset(t)
    assert i18n.when("not a time") == "not a time"


FILED = {
    "ar": ("التوقيع والإرسال", "موجّه إلى", "نرجو التوضيح."),
    "ru": ("Подписать и отправить", "Кому адресован", "Просим разъяснить."),
}


@pytest.mark.parametrize("lang", sorted(FILED))
def test_an_officer_files_a_request_in_arabic_and_in_russian(
    th: TestHub, browser: Any, tmp_path: Path, lang: str
) -> None:
    send, asked_of, text = FILED[lang]
    key_file = tmp_path / "deu.key"
    key_file.write_text(th.keys["DEU"].signer + "\n")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    rid = f"DEU-{lang}-why-1"
    try:
        sign_in(page, th.url, _token(th, "DEU"))
        page.goto(f"{th.url}/dashboard/file?agreement={VD}")
        with page.expect_navigation():
            page.click(f"nav.languages a[hreflang='{lang}']")
        assert page.evaluate("document.documentElement.lang") == lang
        direction = page.evaluate("getComputedStyle(document.body).direction")
        assert direction == ("rtl" if lang == "ar" else "ltr")
        page.click("button[data-form='request.explanation']")
        page.wait_for_selector("#fl-form select")
        page.fill("#fl-f-id", rid)
        page.select_option("#fl-form .field[data-name='to'] select", "FRA")
        page.fill("#fl-form .field[data-name='body'] textarea", text)
        label = page.text_content("#fl-form .field[data-name='to'] label") or ""
        assert label.startswith(asked_of), label
        page.set_input_files("#fl-key", str(key_file))
        page.wait_for_function("() => !document.getElementById('fl-send').disabled")
        assert page.text_content("#fl-send") == send
        screenshot(page, f"file-request-{lang}")
        page.click("#fl-send")
        page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
        assert rid in (page.text_content("#fl-receipt-text") or "")
    finally:
        page.close()
    assert errors == []
    # FRA finds it in its inbox, the text as the officer wrote it.
    r = httpx.get(
        f"{th.url}/v1/inbox",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {_token(th, 'FRA')}"},
    )
    docs = [json.loads(base64.b64decode(i["envelope"]["payload"])) for i in r.json()["items"]]
    assert [d["body"] for d in docs if d.get("id") == rid] == [text]


def _token(th: TestHub, party: str) -> str:
    with th.client(party) as c:
        return c.token()


def test_a_measure_title_is_shown_in_the_readers_language_where_the_file_gives_one() -> None:
    from cbmnet.agreements.forms import forms_of
    from cbmnet.agreements.loader import bundled, parse_agreement
    from cbmnet.errors import FormatError

    doc = bundled("india-pakistan-missile-tests-2005").model_dump(mode="json", exclude_defaults=True)
    doc["measures"][0]["titles"] = {
        "fr": "Préavis d'au moins 3 jours",
        "ar": "إخطار قبل 3 أيام على الأقل",
    }
    ag = parse_agreement(json.dumps(doc), "test agreement")
    form = next(f for f in forms_of(ag) if f.id == "notification.launch_notification")
    assert form.to_json(lang="fr")["serves"][0]["title"] == "Préavis d'au moins 3 jours"
    assert form.to_json(lang="ar")["serves"][0]["title"] == "إخطار قبل 3 أيام على الأقل"
    english = form.to_json(lang="ru")["serves"][0]
    assert english["title"] == ag.measures[0].title and english["provision"] == ag.measures[0].provision
    doc["measures"][0]["titles"] = {"de": "Vorankündigung"}  # not a UN language
    with pytest.raises(FormatError, match="titles"):
        parse_agreement(json.dumps(doc), "test agreement")
