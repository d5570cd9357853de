"""Issue 13's rule vocabulary, each word from a text that needs it: working days (TBT
Committee), shorter exchange periods (half-years, quarters, months), an exemption given by
advance notice (IN-PK Airspace 1991 Art. 3), and a lead that holds "unless otherwise
agreed" (Open Skies Art. VI §II ¶4(E)). Pure engine, bundled files where one uses the word.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from cbmnet.agreements.loader import bundled, parse_agreement
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import evaluate, next_change
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError
from tests.test_bundled_agreements import codes, note, req, resp, run, shift

DAY = 86_400


# ---- working days -----------------------------------------------------------------------


def _documents(asked: str, answered: str | None) -> list[dict[str, Any]]:
    ev = [req("d1", "JPN", "CHN", asked, "document")]
    if answered is not None:
        ev.append(resp("d1-r", "CHN", "d1", answered))
    return ev


@pytest.mark.parametrize(
    ("asked", "last_on_time"),
    [
        ("2028-05-05T12:00:00Z", "2028-05-12T12:00:00Z"),  # Friday: Sat and Sun are not counted
        ("2028-05-06T09:00:00Z", "2028-05-15T00:00:00Z"),  # Saturday: counted from Monday 00:00
        ("2028-05-08T08:00:00Z", "2028-05-15T08:00:00Z"),  # Monday: five days, one weekend
    ],
)
def test_wto_documents_are_due_within_five_working_days(asked: str, last_on_time: str) -> None:
    m, as_of = "document-requests", "2028-06-30T00:00:00Z"
    assert codes(run("wto-tbt", _documents(asked, last_on_time), as_of), m) == []
    late = shift(last_on_time, 1)
    assert codes(run("wto-tbt", _documents(asked, late), as_of), m) == [("reply.late", "CHN")]


def test_working_days_take_whole_days_only() -> None:
    text = _agreement(
        """
  - id: docs
    kind: communication
    provision: "Test ¶1"
    rule: reply_deadline
    request_kind: document
    within: PT36H
    working_days: true
"""
    )
    with pytest.raises(FormatError, match="whole days"):
        parse_agreement(text, "test.yaml")


# ---- shorter periods ----------------------------------------------------------------------


def _agreement(measures: str) -> str:
    return f"""
id: vocabulary-test
title: Vocabulary test
version: "1"
source: test
parties: [IND, PAK]
measures:{measures}
"""


HALF_YEARS = _agreement(
    """
  - id: lists
    kind: transparency
    provision: "Test ¶1 (lists on 1 January and 1 July)"
    rule: periodic_exchange
    form: prisoners_list
    period: half_year
    due_from: period_start
    due_after: P1D
    first_period: 2028
"""
)


def _run(text: str, events: list[dict[str, Any]], as_of: str) -> dict[str, Any]:
    a: Agreement = parse_agreement(text, "test.yaml")
    return evaluate(a, parse_events(events), parse_time(as_of, "as_of")).to_json()


def _list(i: str, party: str, time: str, period: str) -> dict[str, Any]:
    return {
        "id": i,
        "type": "exchange",
        "party": party,
        "time": time,
        "form": "prisoners_list",
        "period": period,
    }


def test_half_yearly_lists_are_owed_on_the_first_day_of_each_half() -> None:
    on_time = [
        _list("i1", "IND", "2028-01-01T10:00:00Z", "2028-H1"),
        _list("p1", "PAK", "2028-01-01T23:59:59Z", "2028-H1"),
        _list("i2", "IND", "2028-07-01T08:00:00Z", "2028-H2"),
    ]
    rep = _run(HALF_YEARS, on_time, "2028-07-10T00:00:00Z")
    assert codes(rep) == [("exchange.missing", "PAK")]
    owed = {o["id"]: o["status"] for o in rep["obligations"] if o["party"] == "PAK"}
    # Periods past, and the next one due (pending), no further.
    assert owed == {
        "lists:PAK:2028-H1": "met",
        "lists:PAK:2028-H2": "missed",
        "lists:PAK:2029-H1": "pending",
    }
    late = [*on_time, _list("p2", "PAK", "2028-07-02T00:00:01Z", "2028-H2")]
    assert codes(_run(HALF_YEARS, late, "2028-07-10T00:00:00Z")) == [("exchange.late", "PAK")]
    # Before the day is over nothing is missing yet.
    assert codes(_run(HALF_YEARS, on_time, "2028-07-01T12:00:00Z")) == []


def test_a_label_of_another_period_does_not_meet_the_duty() -> None:
    wrong = [
        _list("i1", "IND", "2028-01-01T10:00:00Z", "2028"),
        _list("p1", "PAK", "2028-01-01T10:00:00Z", "2028-H1"),
    ]
    assert codes(_run(HALF_YEARS, wrong, "2028-03-01T00:00:00Z")) == [("exchange.missing", "IND")]


@pytest.mark.parametrize(
    ("period", "due_after", "label", "due"),
    [
        ("quarter", "P15D", "2028-Q3", "2028-10-16T00:00:00Z"),
        ("month", "P10D", "2028-02", "2028-03-11T00:00:00Z"),
        ("half_year", "P0D", "2028-H2", "2029-01-01T00:00:00Z"),
    ],
)
def test_periods_end_where_the_calendar_says(period: str, due_after: str, label: str, due: str) -> None:
    text = _agreement(
        f"""
  - id: returns
    kind: transparency
    provision: "Test ¶2"
    rule: periodic_exchange
    form: prisoners_list
    period: {period}
    due_after: {due_after}
    first_period: 2028
"""
    )
    on_time = [_list("i", "IND", due, label), _list("p", "PAK", due, label)]
    rep = _run(text, on_time, shift(due, 1))
    assert [o["status"] for o in rep["obligations"] if o["id"].endswith(f":{label}")] == ["met", "met"]
    late = [_list("i", "IND", shift(due, 1), label), _list("p", "PAK", due, label)]
    assert ("exchange.late", "IND") in codes(_run(text, late, shift(due, 2)))


@pytest.mark.parametrize(
    "bad",
    [
        '    period: half_year\n    due: "07-01"\n',
        "    period: year\n    due_after: P1D\n",
        "    period: month\n",
    ],
)
def test_a_period_takes_the_due_date_its_kind_needs(bad: str) -> None:
    text = _agreement(
        f"""
  - id: lists
    kind: transparency
    provision: "Test ¶1"
    rule: periodic_exchange
    form: prisoners_list
{bad}"""
    )
    with pytest.raises(FormatError, match="lists"):
        parse_agreement(text, "test.yaml")


# ---- exemption by advance notice ----------------------------------------------------------

AIR = "india-pakistan-airspace-1991"


def _survey_flight(start: str) -> dict[str, Any]:
    """An unarmed transport aircraft flying a survey path 160-490 m from the border near
    Kasur (Natural Earth's line meets 31° N at 74.5586° E)."""
    return {
        "id": "f1",
        "type": "activity",
        "party": "PAK",
        "category": "flight",
        "aircraft_role": "transport",
        "start": start,
        "end": shift(start, 3600),
        "location": {"type": "LineString", "coordinates": [[74.5536, 30.99], [74.5611, 31.0]]},
    }


def test_a_flight_within_1000_m_is_exempt_once_the_other_side_was_informed_in_advance() -> None:
    m, start, as_of = "unarmed-aircraft-1km", "2028-03-01T06:00:00Z", "2028-03-10T00:00:00Z"
    flight = _survey_flight(start)
    assert codes(run(AIR, [flight], as_of), m) == [("constraint.zone_violation", "PAK")]
    told = note("i1", "PAK", shift(start, -DAY), "flight_information", "f1")
    assert codes(run(AIR, [flight, told], as_of), m) == []
    after = note("i1", "PAK", shift(start, 60), "flight_information", "f1")
    assert codes(run(AIR, [flight, after], as_of), m) == [("constraint.zone_violation", "PAK")]
    # The other side's notice is not the flying side's information.
    theirs = note("i1", "IND", shift(start, -DAY), "flight_information", "f1")
    assert codes(run(AIR, [flight, theirs], as_of), m) == [("constraint.zone_violation", "PAK")]
    # Combat aircraft (Art. 2(a), 10 km) are not exempt by Art. 3.
    fighter = dict(flight, aircraft_role="combat")
    got = codes(run(AIR, [fighter, told], as_of))
    assert ("constraint.zone_violation", "PAK") in got
    assert bundled(AIR).measures[1].id == m


# ---- "unless otherwise agreed" -----------------------------------------------------------

OS = "open-skies-1992"


def _flight_and_plan(plan_lead_h: float, answer: str | None) -> list[dict[str, Any]]:
    eta = "2028-05-10T12:00:00Z"
    submitted = shift(eta, 30 * 3600)
    start = shift(submitted, int(plan_lead_h * 3600))
    ev: list[dict[str, Any]] = [
        {"id": "fl", "type": "activity", "party": "GBR", "category": "flight", "start": eta,
         "end": shift(eta, 80 * 3600)},
        req("rq", "GBR", "PRT", shift(eta, -100 * 3600), "observation_flight", eta=eta, activity="fl"),
        resp("rq-a", "PRT", "rq", shift(eta, -99 * 3600), "accept"),
        note("mp", "GBR", submitted, "mission_plan", request="rq", window_start=start),
    ]  # fmt: skip
    if answer is not None:
        ev.append(
            note(
                "mpa",
                "PRT",
                shift(submitted, 2 * 3600),
                "mission_plan_answer",
                request="rq",
                decision=answer,
            )
        )
    return ev


def test_a_mission_plan_the_observed_party_accepted_is_agreed_whatever_its_lead() -> None:
    m, as_of = "mission-plan", "2028-06-30T00:00:00Z"
    assert codes(run(OS, _flight_and_plan(24, "accept"), as_of), m) == []
    assert codes(run(OS, _flight_and_plan(10, "accept"), as_of), m) == []
    short = [f for f in run(OS, _flight_and_plan(10, "changes"), as_of)["findings"] if f["measure"] == m]
    assert [(f["code"], f["party"], f["severity"]) for f in short] == [
        ("notification.late", "GBR", "lapse")
    ]
    unanswered = codes(run(OS, _flight_and_plan(10, None), as_of), m)
    assert unanswered == [("notification.late", "GBR"), ("reply.missing", "PRT")]


@pytest.mark.parametrize("seed", range(3))
def test_next_change_holds_for_shorter_periods(seed: int) -> None:
    """Between ``as_of`` and ``next_change`` the engine answers the same report: a hub may
    keep it that long (the next period coming into view included)."""
    rng = random.Random(seed)
    for period, after in (("half_year", "P1D"), ("quarter", "P15D"), ("month", "P10D")):
        text = HALF_YEARS.replace("period: half_year", f"period: {period}").replace("P1D", after)
        a = parse_agreement(text, "test.yaml")
        events = parse_events(
            [_list(f"x{k}", "IND", "2028-01-01T10:00:00Z", "2028-H1") for k in range(2)]
        )
        start = parse_time("2028-01-01T00:00:00Z", "t")
        for _ in range(10):
            as_of = start + rng.randrange(400) * 86_400_000 + rng.randrange(86_400_000)
            rep = evaluate(a, events, as_of)
            horizon = next_change(a, events, rep)
            assert horizon > as_of
            for t in {as_of + 1, horizon - 1, rng.randrange(as_of, horizon)}:
                assert evaluate(a, events, t) == replace(rep, as_of=t), (period, as_of, t, horizon)
