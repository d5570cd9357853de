"""The officer's forms (issue 15): forms derived from the agreement, the hub's dry run of a
draft, and in Debian's chromium the whole path: fill, check, sign in the page, send, the
receipt, and the act in the addressee's inbox.

What an officer relies on: a form shows the agreement's own figures with their
provisions; the dry run says which deadline the act meets or misses, judged as the engine
will judge it once logged; a wrong value is refused with the words the hub uses on sending;
a refused send keeps the draft; the key never leaves the page.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.acts.model import PT_EVENT, read_act
from cbmnet.acts.state import act_json
from cbmnet.agreements.forms import forms_of
from cbmnet.agreements.loader import bundled, bundled_ids
from cbmnet.compliance.dryrun import AMENDMENTS_UNJUDGED, dry_run, neighbourhood
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time, parse_time
from cbmnet.errors import FormatError
from cbmnet.hub.deps import COOKIE
from tests.browserkit import screenshot, session_cookie, sign_in
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"
NOW = parse_time("2027-03-01T00:00:00Z", "now")


def _activity(party: str, aid: str, start_ms: int, troops: int = 11_000) -> dict[str, Any]:
    return {
        "agreement": VD,
        "id": aid,
        "type": "activity",
        "party": party,
        "category": "land",
        "start": format_time(start_ms),
        "end": format_time(start_ms + 5 * MS_PER_DAY),
        "size": {"troops": troops},
        "location": {"type": "Point", "coordinates": [13.4, 52.5]},
    }


def _notice(party: str, nid: str, aid: str) -> dict[str, Any]:
    return {
        "agreement": VD,
        "id": nid,
        "type": "notification",
        "party": party,
        "form": "prior_notification",
        "activity": aid,
    }


# ---- the forms, from the agreement file ------------------------------------------------------


def test_vienna_document_forms_carry_its_thresholds_and_provisions() -> None:
    forms = {f.id: f for f in forms_of(bundled(VD))}
    assert {
        "activity",
        "notification.prior_notification",
        "notification.observation_invitation",
        "notification.annual_calendar",
        "exchange.annual_military_information",
        "request.inspection",
        "request.evaluation",
        "response",
    } <= set(forms)
    troops = next(f for f in forms["activity"].fields if f.name == "size.troops")
    # VD11 ¶38-40.1: 9,000 troops; Ch. VI: observers from 13,000 (the agreement file's figures).
    assert any("notifiable from 9,000 troops" in h and "¶38" in h for h in troops.hints)
    assert any("observers invited from 13,000 troops" in h for h in troops.hints)
    notice = forms["notification.prior_notification"]
    assert notice.fixed == {"type": "notification", "form": "prior_notification"}
    assert any("42 days ahead" in h for h in notice.fields[0].hints)
    assert {s["provision"] for s in notice.serves} >= {"VD11 ¶38, ¶39, ¶40.1"}
    inspection = next(f for f in forms["request.inspection"].fields if f.name == "to")
    assert any("quota: 3 a year" in h for h in inspection.hints)


@pytest.mark.parametrize("aid", bundled_ids())
def test_every_form_of_every_agreement_names_fields_the_format_reads(aid: str) -> None:
    """A form's fixed part and field names are events-v1's: an event built from them with
    plausible values is read by the hub's own reader (or refused naming a field)."""
    for f in forms_of(bundled(aid)):
        assert f.fixed["type"] in (
            "activity",
            "notification",
            "exchange",
            "request",
            "response",
            "incident",
        )
        assert f.serves or f.id == "activity", f.id
        names = [x.name for x in f.fields]
        assert len(names) == len(set(names)), (aid, f.id)
        for x in f.fields:
            assert x.kind in (
                "text", "choice", "time", "count", "place", "party", "parties", "own_activity",
                "own_activities", "own_incident", "request_to_us", "request", "year", "flag", "parts",
            ), (aid, f.id, x.name)  # fmt: skip
            if x.kind in ("choice", "parts"):
                assert x.choices, (aid, f.id, x.name)


# ---- the dry run, pure -----------------------------------------------------------------------


def test_a_notice_sent_in_time_meets_its_deadline() -> None:
    ag = bundled(VD)
    start = NOW + 60 * MS_PER_DAY
    docs = [{**_activity("DEU", "deu-ex", start), "time": format_time(NOW - MS_PER_DAY)}]
    out = dry_run(ag, parse_events(docs), _notice("DEU", "deu-ex-n", "deu-ex"), NOW, {})
    meets = [o for o in out.meets if o.kind == "prior_notification"]
    assert meets and all(o.status == "met" for o in meets)
    assert meets[0].due == start - 42 * MS_PER_DAY
    assert not [f for f in out.adds if f.code.startswith("notification.")]


def test_a_late_notice_says_by_how_much_and_turns_missing_into_late() -> None:
    ag = bundled(VD)
    start = NOW + 20 * MS_PER_DAY  # 42 days were owed (VD11 ¶38): 22 days late
    docs = [{**_activity("DEU", "deu-ex", start), "time": format_time(NOW - MS_PER_DAY)}]
    out = dry_run(ag, parse_events(docs), _notice("DEU", "deu-ex-n", "deu-ex"), NOW, {}).to_json()
    late = [o for o in out["meets"] if o["kind"] == "prior_notification"]
    assert late and late[0]["status"] == "late"
    assert late[0]["late_by_ms"] == 22 * MS_PER_DAY
    assert {f["code"] for f in out["adds"]} >= {"notification.late"}
    assert {f["code"] for f in out["clears"]} >= {"notification.missing"}
    # A finding the draft only joins (its id added to the subjects) is neither added nor
    # cleared: the lists never both hold the same finding.
    added = {(f["code"], f["party"], f["provision"]) for f in out["adds"]}
    cleared = {(f["code"], f["party"], f["provision"]) for f in out["clears"]}
    assert not added & cleared, (added, cleared)


def test_a_correction_or_withdrawal_is_not_judged_in_a_dry_run() -> None:
    draft = {**_notice("DEU", "deu-ex-n2", "deu-ex"), "amends": {"id": "deu-ex-n", "action": "correct"}}
    out = dry_run(bundled(VD), [], draft, NOW, {})
    assert out.note == AMENDMENTS_UNJUDGED and not (out.meets or out.adds or out.clears)


def test_a_draft_cannot_mark_its_own_references_withdrawn() -> None:
    """``withdrawn_refs`` is the hub's to state (acts/state.py): a draft's own is ignored."""
    ag = bundled(VD)
    docs = [{**_activity("DEU", "deu-ex", NOW + 20 * MS_PER_DAY), "time": format_time(NOW)}]
    draft = {**_notice("DEU", "deu-ex-n", "deu-ex"), "withdrawn_refs": ["deu-ex"]}
    out = dry_run(ag, parse_events(docs), draft, NOW, {})
    assert [o.status for o in out.meets if o.kind == "prior_notification"] == ["late"]


def test_an_activity_drafted_starts_its_notice_obligation() -> None:
    ag = bundled(VD)
    start = NOW + 90 * MS_PER_DAY
    out = dry_run(ag, [], _activity("DEU", "deu-ex", start), NOW, {})
    starts = {o.kind: o for o in out.starts}
    assert "prior_notification" in starts
    assert starts["prior_notification"].party == "DEU"
    assert starts["prior_notification"].status == "pending"
    assert starts["prior_notification"].due == start - 42 * MS_PER_DAY


def test_a_draft_the_engine_cannot_read_is_refused_naming_it() -> None:
    ag = bundled(VD)
    with pytest.raises(FormatError, match="deu-ex-n"):
        dry_run(ag, [], _notice("DEU", "deu-ex-n", "no-such-activity"), NOW, {})


# ---- the hub's routes ------------------------------------------------------------------------


@dataclass
class World:
    th: TestHub
    tokens: dict[str, str]
    sessions: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("filing")
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp) as th:
        th.register("DEU", "FRA", "POL")
        th.register("ITA", agreements=("osce-ict-cbm-2016",))
        tokens = {}
        for p in ("DEU", "FRA", "POL", "ITA"):
            with th.client(p) as c:
                tokens[p] = c.token()
        sessions = {p: session_cookie(th.url, t) for p, t in tokens.items()}
        yield World(th, tokens, sessions)


def _dry(w: World, party: str, draft: Any, **kw: Any) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={w.sessions[party]}", "Content-Type": "application/json"}
    headers.update(kw.pop("headers", {}))
    return httpx.post(
        f"{w.th.url}/dashboard/file/dry-run",
        params={"agreement": kw.pop("agreement", VD)},
        content=draft if isinstance(draft, bytes) else json.dumps(draft).encode(),
        headers=headers,
    )


def test_the_dry_run_refuses_with_the_words_the_hub_uses_on_sending(world: World) -> None:
    th = world.th
    now = th.hub.clock()
    bad = _activity("DEU", "deu-bad", now + 50 * MS_PER_DAY)
    bad["end"] = format_time(now)  # before its start
    r = _dry(world, "DEU", bad)
    assert r.status_code == 400, r.text
    with th.client("DEU") as deu:
        sent = httpx.post(
            f"{th.url}/v1/acts",
            content=deu.sign(PT_EVENT, bad),
            headers={"Content-Type": "application/json"},
        )
    assert sent.status_code == 400
    assert r.json()["message"] == sent.json()["message"]
    assert "end" in r.json()["message"]
    # The same reader the hub uses refuses it (the dry run is not a second rulebook).
    with pytest.raises(FormatError) as e:
        read_act(PT_EVENT, act_json(bad))
    assert str(e.value) == r.json()["message"]


def test_a_party_drafts_only_as_itself_and_only_where_it_is_bound(world: World) -> None:
    now = world.th.hub.clock()
    r = _dry(world, "FRA", _activity("DEU", "deu-as-fra", now + 50 * MS_PER_DAY))
    assert r.status_code == 403, r.text
    assert "you file as 'FRA'" in r.json()["message"]
    r = _dry(world, "ITA", _activity("ITA", "ita-1", now + 50 * MS_PER_DAY))
    assert r.status_code == 403, r.text
    r = _dry(
        world, "DEU", _activity("DEU", "deu-1", now + 50 * MS_PER_DAY), agreement="osce-ict-cbm-2016"
    )
    assert r.status_code in (400, 403), r.text


def test_the_dry_run_reads_only_json_of_bounded_size(world: World) -> None:
    now = world.th.hub.clock()
    good = _activity("DEU", "deu-ok", now + 50 * MS_PER_DAY)
    r = _dry(world, "DEU", good, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "application/json" in r.json()["message"]
    r = _dry(world, "DEU", b"[1, 2]")
    assert r.status_code == 400 and "object" in r.json()["message"]
    # What the hub's reader refuses is refused here too, never a server error.
    r = _dry(world, "DEU", b"[" * 50_000)
    assert r.status_code == 400, r.text
    r = _dry(world, "DEU", json.dumps({**good, "id": "deu-\ud800"}).encode())
    assert r.status_code == 400, r.text
    r = _dry(world, "DEU", b"{" + b" " * (300 * 1024) + b"}")
    assert r.status_code == 413, r.text
    r = httpx.post(
        f"{world.th.url}/dashboard/file/dry-run",
        params={"agreement": VD},
        content=json.dumps(good).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (401, 303, 307), r.status_code  # not signed in: nothing judged
    assert "deu-ok" not in _logged_ids(world, "DEU", "/v1/entries")  # a dry run logs nothing


def test_the_pickers_offer_only_what_the_caller_may_read(world: World) -> None:
    th = world.th
    now = th.hub.clock()
    with th.client("DEU") as deu:
        deu.submit(deu.sign(PT_EVENT, _activity("DEU", "deu-pick", now + 60 * MS_PER_DAY)))
    with th.client("FRA") as fra:
        req = {
            "agreement": VD,
            "id": "fra-asks-deu",
            "type": "request",
            "party": "FRA",
            "kind": "explanation",
            "to": "DEU",
            "activity": "deu-pick",
        }
        fra.submit(fra.sign(PT_EVENT, req))
    with th.client("DEU") as deu:  # DEU invites FRA to observe its activity
        invite = {
            "agreement": VD,
            "id": "deu-invites-fra",
            "type": "notification",
            "party": "DEU",
            "form": "observation_invitation",
            "activity": "deu-pick",
            "to": ["FRA"],
        }
        deu.submit(deu.sign(PT_EVENT, invite))

    def choices(party: str) -> dict[str, Any]:
        r = httpx.get(
            f"{th.url}/dashboard/file.json",
            params={"agreement": VD},
            headers={"Cookie": f"{COOKIE}={world.sessions[party]}"},
        )
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc["choices"]

    deu_c, fra_c, pol_c = choices("DEU"), choices("FRA"), choices("POL")
    assert "deu-pick" in [c["id"] for c in deu_c["own_activity"]]
    assert "deu-pick" not in [c["id"] for c in fra_c["own_activity"]]
    assert [c["id"] for c in deu_c["request_to_us"]] == ["fra-asks-deu"]
    assert [c["id"] for c in fra_c["request_to_us"]] == ["deu-invites-fra"]
    assert pol_c["request_to_us"] == []
    # An observer's report names the invitation: offered to the invited, not the inviting.
    assert "deu-invites-fra" in [c["id"] for c in fra_c["request"]]
    assert "deu-invites-fra" not in [c["id"] for c in deu_c["request"] + pol_c["request"]]
    # A request between two others is not POL's to see (events-v1 requests are addressed).
    assert "fra-asks-deu" not in [c["id"] for c in pol_c["request"]]
    # Only parties registered on this hub for the agreement (the hub refuses any other).
    assert set(deu_c["party"]) == {"FRA", "POL"}


def test_a_report_naming_a_private_request_does_not_stop_a_third_partys_dry_runs(
    world: World,
) -> None:
    """FRA asks DEU privately for an inspection, then reports on it to everyone: POL reads
    the report, not the request. POL's drafts are still judged (the review's finding #1)."""
    th = world.th
    now = th.hub.clock()
    with th.client("FRA") as fra:
        ask = {"agreement": VD, "id": "FRA-insp-1", "type": "request", "party": "FRA"}
        fra.submit(fra.sign(PT_EVENT, {**ask, "kind": "inspection", "to": "DEU"}))
        report = {
            "agreement": VD,
            "id": "FRA-insp-1-report",
            "type": "notification",
            "party": "FRA",
            "form": "inspection_report",
            "request": "FRA-insp-1",
        }
        fra.submit(fra.sign(PT_EVENT, report))
    r = _dry(world, "POL", _activity("POL", "POL-ex-1", now + 60 * MS_PER_DAY))
    assert r.status_code == 200, r.text
    assert "FRA-insp-1" not in r.text.replace("FRA-insp-1-report", "")


def test_a_dry_run_does_not_say_whether_an_unreadable_id_is_taken(world: World) -> None:
    """A free-form id taken by a private event: the dry run answers as for a free id (the
    send still refuses it, as it always did: the probe is no longer free)."""
    th = world.th
    now = th.hub.clock()
    with th.client("FRA") as fra:
        private = {"agreement": VD, "id": "x-private-7", "type": "request", "party": "FRA"}
        fra.submit(fra.sign(PT_EVENT, {**private, "kind": "explanation", "to": "DEU"}))
    taken = _dry(world, "POL", _activity("POL", "x-private-7", now + 60 * MS_PER_DAY))
    free = _dry(world, "POL", _activity("POL", "x-free-7", now + 60 * MS_PER_DAY))
    assert taken.status_code == free.status_code == 200, (taken.text, free.text)
    # DEU reads the request: its dry run says the id is taken, as its send would.
    mine = _dry(world, "DEU", _activity("DEU", "x-private-7", now + 60 * MS_PER_DAY))
    assert mine.status_code == 409, mine.text


def _ask(w: World, asker: str, rid: str, to: str, kind: str = "explanation") -> None:
    with w.th.client(asker) as c:
        doc = {"agreement": VD, "id": rid, "type": "request", "party": asker, "kind": kind, "to": to}
        c.submit(c.sign(PT_EVENT, doc))


def _page(w: World, party: str, path: str) -> str:
    r = httpx.get(f"{w.th.url}{path}", headers={"Cookie": f"{COOKIE}={w.sessions[party]}"})
    assert r.status_code == 200, r.text
    return r.text


def test_the_work_queue_lists_what_the_party_owes_with_the_form_that_meets_it(world: World) -> None:
    _ask(world, "POL", "POL-why-1", "DEU")
    deu, pol, fra = (_page(world, p, "/dashboard/inbox") for p in ("DEU", "POL", "FRA"))
    row = 'data-obligation="'
    # DEU owes the answer (VD11 Ch. III, 48 hours) and is offered the three decisions.
    assert f"{row}" in deu and "POL-why-1" in deu
    assert "form=response&amp;request=POL-why-1&amp;decision=answer" in deu
    assert "form=response&amp;request=POL-why-1&amp;decision=refuse" in deu
    # POL, who asked, owes nothing on it but follows the thread; FRA sees neither.
    assert 'data-request="POL-why-1"' in pol and "decision=answer" not in pol.split("h-threads")[0]
    assert "POL-why-1" not in fra


def test_an_inspection_request_shows_the_quota_a_refusal_is_judged_against(world: World) -> None:
    _ask(world, "POL", "POL-insp-9", "FRA", kind="inspection")
    fra = _page(world, "FRA", "/dashboard/inbox")
    line = next(x for x in fra.split("<tr") if "POL-insp-9" in x)
    # VD11 Ch. IX: three inspections a year per receiving State, none used yet.
    assert "obliged to accept: a refusal would be a finding" in line, line
    assert "left in" in line


# ---- in the browser --------------------------------------------------------------------------


def test_an_officer_files_an_activity_and_its_notice_from_the_browser(
    world: World, browser: Any, tmp_path: Path
) -> None:
    th = world.th
    key_file = tmp_path / "deu.key"
    key_file.write_text(th.keys["DEU"].signer + "\n")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, th.url, world.tokens["DEU"])
        page.goto(f"{th.url}/dashboard/file?agreement={VD}")
        page.click("button[data-form='activity']")
        page.wait_for_selector("#fl-form select")
        fields = {el.get_attribute("data-name"): el for el in page.query_selector_all("#fl-form .field")}
        # 20 days ahead: the page must say the notice it starts is already overdue.
        start = th.hub.clock() + 20 * MS_PER_DAY
        day = format_time(start)[:16]
        end = format_time(start + 3 * MS_PER_DAY)[:16]
        page.fill("#fl-f-id", "deu-browser-ex")
        fields["category"].query_selector("select").select_option("land")
        fields["start"].query_selector("input").fill(day)
        fields["end"].query_selector("input").fill(end)
        fields["size.troops"].query_selector("input").fill("12000")
        # The map picker: a click is a point, three corners and "Close the area" a polygon.
        picker = "#fl-form .field[data-name='location'] .picker-map"
        page.wait_for_selector(picker)
        page.click(picker, position={"x": 200, "y": 120})
        where = fields["location"].query_selector("input")
        assert re.fullmatch(r"-?\d+(\.\d+)?, -?\d+(\.\d+)?", where.input_value()), where.input_value()
        page.click("#fl-form .field[data-name='location'] .picker button:nth-of-type(2)")
        for x, y in ((150, 100), (250, 100), (200, 180)):
            page.click(picker, position={"x": x, "y": y})
        page.click("#fl-form .field[data-name='location'] .picker button:nth-of-type(3)")
        area = json.loads(where.input_value())
        assert area["type"] == "Polygon" and len(area["coordinates"][0]) == 4
        assert area["coordinates"][0][0] == area["coordinates"][0][-1]
        where.fill("13.4, 52.5")
        assert "notifiable from 9,000 troops" in fields["size.troops"].inner_text()
        page.wait_for_function(
            "() => /prior notification/.test(document.getElementById('fl-effect').textContent)"
        )
        effect = page.text_content("#fl-effect") or ""
        assert "Starts" in effect and "overdue" in effect, effect
        assert page.is_disabled("#fl-send")  # no key yet
        # A wrong value: refused in the page with the hub's words, nothing sent.
        fields["end"].query_selector("input").fill(format_time(start - MS_PER_DAY)[:16])
        page.wait_for_function("() => !document.getElementById('fl-error').hidden")
        assert "'end'" in (page.text_content("#fl-error") or "")
        assert page.is_disabled("#fl-send")
        fields["end"].query_selector("input").fill(end)
        page.wait_for_function("() => document.getElementById('fl-error').hidden")
        page.set_input_files("#fl-key", str(key_file))
        page.wait_for_function(
            "() => /loaded:/.test(document.getElementById('fl-key-status').textContent)"
        )
        page.wait_for_function("() => !document.getElementById('fl-send').disabled")
        screenshot(page, "file-activity-before-send")
        page.click("#fl-send")
        page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
        assert "deu-browser-ex" in (page.text_content("#fl-receipt-text") or "")
        assert page.get_attribute("#fl-receipt-save", "download") == "deu-browser-ex.tlog-proof"
        # The notice, picking the activity just logged: the page says it is late, and by how much.
        page.click("button[data-form='notification.prior_notification']")
        page.wait_for_selector("#fl-form select")
        page.fill("#fl-f-id", "deu-browser-ex-n")
        page.select_option("#fl-form .field[data-name='activity'] select", "deu-browser-ex")
        page.wait_for_function("() => /Meets/.test(document.getElementById('fl-effect').textContent)")
        effect = page.text_content("#fl-effect") or ""
        assert "late" in effect and "VD11 ¶38" in effect, effect
        page.wait_for_function("() => !document.getElementById('fl-send').disabled")
        screenshot(page, "file-notice-before-send")
        page.click("#fl-send")
        page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
        screenshot(page, "file-notice-receipt")
    finally:
        page.close()
    assert errors == []  # no script error in the page
    # The addressee finds both in its inbox.
    assert {"deu-browser-ex", "deu-browser-ex-n"} <= _logged_ids(world, "FRA", "/v1/inbox")


def _logged_ids(w: World, party: str, path: str) -> set[str]:
    """Event ids among the entries ``path`` lists for ``party``."""
    r = httpx.get(
        f"{w.th.url}{path}",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {w.tokens[party]}"},
    )
    assert r.status_code == 200, r.text
    out = set()
    for item in r.json()["items"]:
        doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
        if isinstance(doc.get("id"), str):
            out.add(doc["id"])
    return out


def test_an_officer_answers_from_the_work_queue(world: World, browser: Any, tmp_path: Path) -> None:
    """The work queue's Answer button opens the response form filled in; the dry run says
    the deadline is met; once sent, the row leaves the queue and the thread shows it."""
    th = world.th
    _ask(world, "FRA", "FRA-why-2", "DEU")
    key_file = tmp_path / "deu.key"
    key_file.write_text(th.keys["DEU"].signer + "\n")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, th.url, world.tokens["DEU"])
        page.goto(f"{th.url}/dashboard/inbox")
        row = page.locator("tr", has_text="FRA-why-2")
        with page.expect_navigation():
            row.locator("a", has_text="Answer").click()
        page.wait_for_function("() => /Meets/.test(document.getElementById('fl-effect').textContent)")
        assert page.input_value("#fl-form .field[data-name='request'] select") == "FRA-why-2"
        assert page.input_value("#fl-form .field[data-name='decision'] select") == "answer"
        assert "met on time" in (page.text_content("#fl-effect") or "")
        page.fill(
            "#fl-form .field[data-name='reason'] input, #fl-form .field[data-name='reason'] textarea",
            "Routine rotation.",
        )
        page.set_input_files("#fl-key", str(key_file))
        page.wait_for_function("() => !document.getElementById('fl-send').disabled")
        page.click("#fl-send")
        page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
        screenshot(page, "inbox-answered")
        page.goto(f"{th.url}/dashboard/inbox")
        assert page.locator("tr[data-obligation]", has_text="FRA-why-2").count() == 0
        thread = page.locator('details[data-request="FRA-why-2"]')
        assert "DEU, answer (Routine rotation.)" in (thread.text_content() or "")
    finally:
        page.close()
    assert errors == []


EFFECT_SAYS = "w => (document.getElementById('fl-effect').textContent || '').includes(w)"


def test_the_india_pakistan_walkthrough_from_the_browser(browser: Any, tmp_path: Path) -> None:
    """PAK declares a corps exercise 70 days ahead within 75 km of the border and sends its
    notice (IN-PK 1991 ¶3(b): 60 days, unconfirmed in the file): the page says the notice
    is on time; IND finds it in its inbox."""
    ipx = "india-pakistan-military-exercises-1991"
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, agreements=(ipx,)) as th:
        th.register("IND", "PAK", agreements=(ipx,))
        key_file = tmp_path / "pak.key"
        key_file.write_text(th.keys["PAK"].signer + "\n")
        with th.client("PAK") as c:
            token = c.token()
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            sign_in(page, th.url, token)
            page.goto(f"{th.url}/dashboard/file?agreement={ipx}")
            page.set_input_files("#fl-key", str(key_file))
            page.click("button[data-form='activity']")
            page.wait_for_selector("#fl-form select")
            start = th.hub.clock() + 70 * MS_PER_DAY
            page.fill("#fl-f-id", "PAK-ex-1")
            field = "#fl-form .field[data-name='{}'] {}"
            page.select_option(field.format("category", "select"), "land")
            page.fill(field.format("start", "input"), format_time(start)[:16])
            page.fill(field.format("end", "input"), format_time(start + 5 * MS_PER_DAY)[:16])
            page.select_option(field.format("formation", "select"), "corps")
            page.fill(field.format("location", "input"), "74.45, 31.55")  # near the border, Lahore
            page.wait_for_function(EFFECT_SAYS, arg="¶3(b)")  # the notice it starts
            page.wait_for_function("() => !document.getElementById('fl-send').disabled")
            page.click("#fl-send")
            page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
            page.click("button[data-form='notification.exercise_notice']")
            page.wait_for_selector("#fl-form select")
            hints = page.text_content("#fl-form .field[data-name='activity']") or ""
            assert "within 75 km of ib-loc" in hints and "¶3(b) (unconfirmed)" in hints, hints
            page.fill("#fl-f-id", "PAK-ex-1-n")
            page.select_option(field.format("activity", "select"), "PAK-ex-1")
            page.wait_for_function(
                "() => /Meets/.test(document.getElementById('fl-effect').textContent)"
            )
            effect = page.text_content("#fl-effect") or ""
            assert "met on time" in effect and "¶3(b)" in effect, effect
            page.wait_for_function("() => !document.getElementById('fl-send').disabled")
            screenshot(page, "file-india-pakistan-notice")
            page.click("#fl-send")
            page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
        finally:
            page.close()
        assert errors == []
        with th.client("IND") as ind:
            got = httpx.get(
                f"{th.url}/v1/inbox",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {ind.token()}"},
            ).json()
        ids = {json.loads(base64.b64decode(i["envelope"]["payload"])).get("id") for i in got["items"]}
        assert {"PAK-ex-1", "PAK-ex-1-n"} <= ids


# ---- the dry run's neighbourhood is exact -----------------------------------------------------


def _generated_log(agreement: str, parties: list[str], seed: int, n: int) -> list[dict[str, Any]]:
    """A year of mixed traffic among ``parties``: activities (some hosted by another State,
    some of several States' forces), their notices early, late or never, calendars,
    exchanges, requests of every kind the agreement knows and answers to some."""
    import random

    rng = random.Random(seed)
    t0 = parse_time("2027-01-10T00:00:00Z", "t0")
    kinds = sorted({k for f in forms_of(bundled(agreement)) if f.fixed.get("type") == "request"
                    for k in [f.fixed["kind"]]})  # fmt: skip
    docs: list[dict[str, Any]] = []
    acts: list[dict[str, Any]] = []
    reqs: list[dict[str, Any]] = []
    for i in range(n):
        p = rng.choice(parties)
        when = t0 + i * 6 * 3_600_000
        roll = rng.random()
        base = {"agreement": agreement, "party": p, "time": format_time(when)}
        if roll < 0.3:
            start = when + rng.choice((10, 30, 50, 70)) * MS_PER_DAY
            doc = {**base, "id": f"{p}-act-{i}", "type": "activity", "category": "land",
                   "start": format_time(start), "end": format_time(start + 3 * MS_PER_DAY),
                   "size": {"troops": rng.choice((4000, 9500, 14000, 45000))}}  # fmt: skip
            if rng.random() < 0.2:
                doc["host"] = rng.choice([q for q in parties if q != p])
            acts.append(doc)
        elif roll < 0.5 and acts:
            a = rng.choice(acts)
            owner = a.get("host", a["party"])
            form = rng.choice(("prior_notification", "observation_invitation"))
            doc = {**base, "party": owner, "id": f"{owner}-n-{i}", "type": "notification",
                   "form": form, "activity": a["id"]}  # fmt: skip
            if a["party"] != owner:
                continue
        elif roll < 0.6:
            doc = {**base, "id": f"{p}-x-{i}", "type": "exchange", "form": "annual_military_information",
                   "period": "2028", "units": rng.randrange(10, 100)}  # fmt: skip
        elif roll < 0.85 and kinds:
            to = rng.choice([q for q in parties if q != p])
            doc = {**base, "id": f"{p}-r-{i}", "type": "request", "kind": rng.choice(kinds), "to": to}
            reqs.append(doc)
        elif reqs:
            r = rng.choice(reqs)
            decision = rng.choice(("accept", "refuse", "answer"))
            doc = {**base, "party": r["to"], "id": f"{r['to']}-a-{i}", "type": "response",
                   "request": r["id"], "decision": decision}  # fmt: skip
            if any(d.get("request") == r["id"] and d["type"] == "response" for d in docs):
                continue
        else:
            continue
        docs.append(doc)
    return docs


@pytest.mark.parametrize(
    ("agreement", "parties"),
    [
        (VD, ["DEU", "FRA", "POL", "AUT", "BEL", "CZE"]),
        ("open-skies-1992", ["USA", "RUS", "BLR", "DEU", "BEL", "NLD", "LUX", "POL"]),
    ],
)
def test_the_dry_run_on_the_neighbourhood_equals_the_dry_run_on_the_whole(
    agreement: str, parties: list[str]
) -> None:
    """On generated logs, drafts of every form: the draft's neighbourhood gives byte for
    byte the answer the whole log gives (the rules judge a State on what concerns it)."""
    import random

    ag = bundled(agreement)
    compared = said = smaller = 0
    for seed in range(3):
        docs = _generated_log(agreement, parties, seed, 400)
        events = parse_events(docs)
        now = parse_time("2027-05-01T00:00:00Z", "now")
        rng = random.Random(100 + seed)
        past = [d for d in docs if parse_time(d["time"], "t") <= now]
        acts = [d for d in past if d["type"] == "activity"]
        reqs = [d for d in past if d["type"] == "request"]
        for j in range(25):
            p = rng.choice(parties)
            pick = rng.random()
            if pick < 0.3:
                start = now + rng.choice((5, 20, 60)) * MS_PER_DAY
                draft = {"agreement": agreement, "id": f"draft-{j}", "type": "activity", "party": p,
                         "category": "land", "start": format_time(start),
                         "end": format_time(start + MS_PER_DAY), "size": {"troops": 20000}}  # fmt: skip
            elif pick < 0.55 and acts:
                a = rng.choice(acts)
                draft = {"agreement": agreement, "id": f"draft-{j}", "type": "notification",
                         "party": a["party"], "form": "prior_notification",
                         "activity": a["id"]}  # fmt: skip
            elif pick < 0.8 and reqs:
                r = rng.choice(reqs)
                draft = {"agreement": agreement, "id": f"draft-{j}", "type": "response",
                         "party": r["to"], "request": r["id"],
                         "decision": rng.choice(("accept", "refuse"))}  # fmt: skip
            else:
                kind = next(
                    (f.fixed["kind"] for f in forms_of(ag) if f.fixed["type"] == "request"), None
                )
                if kind is None:
                    continue
                draft = {"agreement": agreement, "id": f"draft-{j}", "type": "request", "party": p,
                         "kind": kind, "to": rng.choice([q for q in parties if q != p])}  # fmt: skip
            try:
                whole = dry_run(ag, events, draft, now, {}, whole=True).to_json()
            except FormatError:
                continue  # a draft the format refuses (e.g. a second answer): both refuse
            near = dry_run(ag, events, draft, now, {}).to_json()
            assert near == whole, (agreement, seed, draft)
            compared += 1
            said += any(whole[k] for k in ("meets", "starts", "concerns", "adds", "clears"))
            stamped = parse_events([{**draft, "time": format_time(now)}], "d", after=events)[-1]
            smaller += len(neighbourhood(ag, events, stamped)) < len(events) // 2
    # Most drafts were judged, a good part of them changed something, and the neighbourhood
    # was a small part of the log: the equality above is not between two empty answers.
    assert compared >= 45 and said >= 12 and smaller >= 30, (compared, said, smaller)


def test_an_officer_corrects_an_act_and_is_told_why_a_withdrawal_waits(
    world: World, browser: Any, tmp_path: Path
) -> None:
    """The form offers the party's own acts of its kind: a correction is filled from the act
    as it stands; a withdrawal of an activity its notice still names is refused in the
    page, in the hub's words, before anything is signed."""
    th = world.th
    now = th.hub.clock()
    with th.client("DEU") as deu:
        deu.submit(deu.sign(PT_EVENT, _activity("DEU", "DEU-fix-1", now + 80 * MS_PER_DAY)))
        deu.submit(deu.sign(PT_EVENT, _notice("DEU", "DEU-fix-1-n", "DEU-fix-1")))
    key_file = tmp_path / "deu.key"
    key_file.write_text(th.keys["DEU"].signer + "\n")
    page = browser.new_page()
    try:
        sign_in(page, th.url, world.tokens["DEU"])
        page.goto(f"{th.url}/dashboard/file?agreement={VD}")
        page.click("button[data-form='activity']")
        page.wait_for_selector("#fl-amend")
        page.select_option("#fl-amend", "withdraw:DEU-fix-1")
        page.wait_for_function(
            "() => /still refer/.test(document.getElementById('fl-error').textContent)"
        )
        assert "DEU-fix-1-n still refer" in (page.text_content("#fl-error") or "")
        assert page.is_disabled("#fl-form .field[data-name='size.troops'] input")
        page.select_option("#fl-amend", "correct:DEU-fix-1")
        troops = page.locator("#fl-form .field[data-name='size.troops'] input")
        assert troops.input_value() == "11000" and troops.is_enabled()
        troops.fill("15000")
        page.fill("#fl-f-id", "DEU-fix-1-c")
        page.wait_for_function(EFFECT_SAYS, arg="judged once it is logged")
        page.set_input_files("#fl-key", str(key_file))
        page.wait_for_function("() => !document.getElementById('fl-send').disabled")
        page.click("#fl-send")
        page.wait_for_function("() => !document.getElementById('fl-receipt').hidden")
    finally:
        page.close()
    # The log now reads the activity with the corrected size, under its own id.
    docs = {d["id"]: d for d in th.hub.views.readable_events("FRA", VD)}
    assert docs["DEU-fix-1"]["size"] == {"troops": 15000}
    assert docs["DEU-fix-1"]["corrected_by"] == "DEU-fix-1-c"


def test_an_officer_uploads_an_observation_batch_from_the_browser(
    world: World, browser: Any, tmp_path: Path
) -> None:
    """The batch's SHA-256 is signed in the page and logged; the page then signs the hub's
    sign-in challenge with the same key for the token that stores the rows: the key never
    leaves the page, and what is stored is what was signed."""
    th = world.th
    rows = (
        b"id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence\n"
        b"o1,2027-09-01T06:00:00Z,16.37,48.21,sat-1,satellite,acv,4,0.8\n"
    )
    batch = tmp_path / "sat-pass-9.csv"
    batch.write_bytes(rows)
    key_file = tmp_path / "deu.key"
    key_file.write_text(th.keys["DEU"].signer + "\n")
    page = browser.new_page()
    try:
        sign_in(page, th.url, world.tokens["DEU"])
        page.goto(f"{th.url}/dashboard/file?agreement={VD}")
        page.wait_for_function("() => !document.querySelector('button[data-form]').disabled")
        page.fill("#fl-obs-batch", "sat-pass-9")
        page.set_input_files("#fl-obs-file", str(batch))
        assert page.is_disabled("#fl-obs-send")  # no key yet
        page.set_input_files("#fl-key", str(key_file))
        page.wait_for_function("() => !document.getElementById('fl-obs-send').disabled")
        page.click("#fl-obs-send")
        page.wait_for_function(
            "() => /Logged at entry/.test(document.getElementById('fl-obs-status').textContent)"
        )
        index = int(re.search(r"entry (\d+)", page.text_content("#fl-obs-status") or "").group(1))  # type: ignore[union-attr]
    finally:
        page.close()
    with th.client("FRA") as fra:
        meta, data = fra.fetch_observations(index)
    assert data == rows and meta["batch"] == "sat-pass-9" and meta["party"] == "DEU"
