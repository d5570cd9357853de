"""The annual implementation report (issue 15, item 6): per party and year, obligations
owed, met, late, missed, and findings, each with the events it counts; the same figures
from the hub (API, dashboard, PDF) and from ``cbmnet report`` over the events, so any
party can check the hub's table; cut to what the caller may read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.acts.model import PT_EVENT
from cbmnet.agreements.loader import bundled
from cbmnet.compliance.annual import annual
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time, parse_time, year_of
from cbmnet.reports import annual_pdf
from tests.browserkit import session_cookie
from tests.hubcli_helpers import ok
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"


def _ev(**kw: Any) -> dict[str, Any]:
    return {"agreement": VD, **kw}


def test_a_year_counted_per_party_with_the_events_behind_each_figure() -> None:
    t = parse_time
    events = parse_events(
        [
            # DEU: an exercise of 2027 notified 20 days ahead (42 owed: VD11 ¶38): late.
            _ev(id="deu-ex", type="activity", party="DEU", time="2027-03-01T00:00:00Z",
                start="2027-06-01T00:00:00Z", end="2027-06-05T00:00:00Z", category="land",
                size={"troops": 12000}),
            _ev(id="deu-ex-n", type="notification", party="DEU", time="2027-05-12T00:00:00Z",
                form="prior_notification", activity="deu-ex"),
            # FRA asks POL to explain; POL never answers (VD11 Ch. III: 48 hours): missed.
            _ev(id="fra-why", type="request", party="FRA", time="2027-07-01T00:00:00Z",
                kind="explanation", to="POL"),
            # POL asks FRA; FRA answers the next day: met.
            _ev(id="pol-why", type="request", party="POL", time="2027-08-01T00:00:00Z",
                kind="explanation", to="FRA"),
            _ev(id="fra-ans", type="response", party="FRA", time="2027-08-02T00:00:00Z",
                request="pol-why", decision="answer"),
        ]
    )  # fmt: skip
    rep = evaluate(bundled(VD), events, t("2028-03-01T00:00:00Z", "as_of"))
    doc = annual(rep, 2027, ["DEU", "FRA", "POL"])
    rows = {r["party"]: r for r in doc["parties"]}
    assert rows["DEU"]["late"] >= 1 and "deu-ex-n" in rows["DEU"]["events"]["late"]
    # Each also owed the annual exchange for 2028 by 15 December 2027 (VD11 ¶10): missed.
    assert "fra-why" in rows["POL"]["events"]["missed"]
    assert rows["POL"]["missed"] == rows["DEU"]["missed"] + 1 == rows["FRA"]["missed"] + 1
    assert rows["FRA"]["met"] == 1 and rows["FRA"]["events"]["met"] == ["fra-ans"]
    assert rows["POL"]["on_time_share"] == 0.0 and 0 < rows["FRA"]["on_time_share"] < 1
    assert {f["code"] for f in rows["DEU"]["findings"]} >= {"notification.late"}
    assert {f["code"] for f in rows["POL"]["findings"]} == {"reply.missing", "exchange.missing"}
    assert doc["totals"]["missed"] == sum(r["missed"] for r in rows.values())
    # An obligation belongs to the year it fell due in: the calendar listing the 2027
    # exercise was due by 15 November 2026 (VD11 Ch. VII), so 2026 holds it, and no more.
    before = {r["party"]: r for r in annual(rep, 2026, ["DEU", "FRA", "POL"])["parties"]}
    assert before["DEU"]["events"] == {"missed": ["deu-ex"]}
    assert before["DEU"]["findings"][0]["code"] == "calendar.missing"
    assert before["FRA"]["owed"] == before["POL"]["owed"] == 0
    pdf = annual_pdf(doc, checkpoint="hub.cbmnet.test/log\n7\nabc=\n", compress=False)
    assert pdf.startswith(b"%PDF") and b"POL" in pdf and b"reply.missing" in pdf


@pytest.fixture
def th(tmp_path: Path) -> Any:
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        yield th


def _ask(th: TestHub, asker: str, rid: str, to: str) -> None:
    with th.client(asker) as c:
        c.submit(c.sign(PT_EVENT, _ev(id=rid, type="request", party=asker, kind="explanation", to=to)))


def _report(th: TestHub, party: str | None, year: int) -> dict[str, Any]:
    with th.client(party) as c:
        r = httpx.get(
            f"{th.url}/v1/report",
            params={"agreement": VD, "year": year},
            headers={"Authorization": f"Bearer {c.token()}"},
        )
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_any_party_recomputes_the_hubs_table_from_the_events(th: TestHub, tmp_path: Path) -> None:
    _ask(th, "FRA", "FRA-why-1", "DEU")
    _ask(th, "DEU", "DEU-why-1", "POL")
    with th.client("POL") as pol:
        pol.submit(pol.sign(PT_EVENT, _ev(id="POL-ans-1", type="response", party="POL",
                                          request="DEU-why-1", decision="answer")))  # fmt: skip
    year = year_of(th.hub.clock() + 2 * MS_PER_DAY)  # the year the answers fall due in
    hub_doc = _report(th, None, year)
    assert hub_doc["checkpoint"].startswith("hub.cbmnet.test/log")
    events = tmp_path / "events.json"
    events.write_text(json.dumps(th.hub.views.agreement_events(VD)))
    mine = json.loads(
        ok("report", "--agreement", VD, "--year", str(year), "--events", str(events),
           "--as-of", hub_doc["as_of"], "--parties", "DEU,FRA,POL").stdout
    )  # fmt: skip
    hub_doc.pop("checkpoint")
    assert mine == hub_doc
    rows = {r["party"]: r for r in mine["parties"]}
    assert rows["POL"]["met"] == 1 and "FRA-why-1" in rows["DEU"]["events"]["pending"]


def test_the_api_and_the_page_name_the_latest_signed_checkpoint(th: TestHub) -> None:
    """One answer for both (``Hub.annual_report``): the checkpoint signed last, null
    while the log has signed none."""
    _ask(th, "FRA", "FRA-cp-1", "DEU")
    year = year_of(th.hub.clock() + 2 * MS_PER_DAY)
    with th.client("DEU") as c:
        cookie = {"cbmnet_session": session_cookie(th.url, c.token())}
    page = f"{th.url}/dashboard/report"
    _ask(th, "DEU", "DEU-cp-2", "FRA")  # the tree grows past the last checkpoint
    th.hub.checkpoint_if_grown()
    signed = th.hub.rlog.signed_checkpoint(th.hub.rlog.latest_checkpoint())
    assert _report(th, "DEU", year)["checkpoint"] == signed
    html = httpx.get(page, params={"agreement": VD, "year": year}, cookies=cookie).text
    assert signed.splitlines()[2] in html  # the root hash line of the signed note


def test_a_party_sees_the_year_as_far_as_it_may_read(th: TestHub) -> None:
    _ask(th, "FRA", "FRA-private", "POL")  # DEU may not read it
    year = year_of(th.hub.clock() + 2 * MS_PER_DAY)
    everyone = {r["party"]: r for r in _report(th, None, year)["parties"]}
    deu = {r["party"]: r for r in _report(th, "DEU", year)["parties"]}
    assert "FRA-private" in everyone["POL"]["events"]["pending"]
    assert deu["POL"]["pending"] == everyone["POL"]["pending"] - 1
    assert "FRA-private" not in json.dumps(deu)


def test_the_dashboard_shows_it_and_offers_the_pdf(th: TestHub) -> None:
    _ask(th, "FRA", "FRA-why-2", "DEU")
    year = year_of(th.hub.clock() + 2 * MS_PER_DAY)
    with th.client("DEU") as c:
        cookie = {"Cookie": f"cbmnet_session={session_cookie(th.url, c.token())}"}
    page = httpx.get(
        f"{th.url}/dashboard/report", params={"agreement": VD, "year": year}, headers=cookie
    )
    assert page.status_code == 200 and 'data-party="DEU"' in page.text and "FRA-why-2" in page.text
    pdf = httpx.get(
        f"{th.url}/dashboard/report.pdf", params={"agreement": VD, "year": year}, headers=cookie
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and f"{VD}-{year}.pdf" in pdf.headers["content-disposition"]
    assert httpx.get(f"{th.url}/dashboard/report.pdf", params={"agreement": VD}).status_code in (
        401,
        303,
    )
    bad = httpx.get(f"{th.url}/v1/report", params={"agreement": VD, "year": 1800})
    assert bad.status_code in (400, 401, 422)
    assert format_time(0)  # the module's time helpers stay importable together
