"""The compliance engine: each rule at its boundary, determinism, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cbmnet.agreements.loader import parse_agreement
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import load_events_text, parse_events
from cbmnet.compliance.report import Report
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError

AGREEMENT = """
id: test-regime
title: A test regime
version: "1"
parties: [AAA, BBB]
measures:
  - {id: notice, kind: transparency, provision: "T ¶1", rule: prior_notification,
     scope: {categories: [land], threshold: {troops: 9000, battle_tanks: 250}}, lead: P42D}
  - {id: invite, kind: transparency, provision: "T ¶2", rule: observation_invitation,
     scope: {categories: [land], threshold: {troops: 13000}}, lead: P42D}
  - {id: calendar, kind: transparency, provision: "T ¶3", rule: annual_calendar,
     scope: {categories: [land], threshold: {troops: 9000}}, due: "11-15"}
  - {id: cap, kind: constraint, provision: "T ¶4", rule: activity_cap,
     scope: {threshold: {troops: 40001}}, max_count: 1, period_years: 3}
  - {id: simul, kind: constraint, provision: "T ¶5", rule: activity_cap,
     scope: {threshold: {troops: 13000}}, max_simultaneous: 1}
  - {id: aemi, kind: transparency, provision: "T ¶6", rule: periodic_exchange,
     form: annual_military_information, due: "12-15", due_year_offset: -1, first_period: 2028}
  - {id: explain, kind: communication, provision: "T ¶7", rule: reply_deadline,
     request_kind: explanation, within: PT48H}
  - {id: inspections, kind: verification, provision: "T ¶8", rule: quota,
     request_kind: inspection, per_year: 2, per_requester: 1, reply_within: PT24H}
  - {id: bwc, kind: transparency, provision: "T ¶9", rule: periodic_exchange,
     form: bwc_cbm, due: "04-15", due_year_offset: 1, parts: [A1, B], first_period: 2027}
"""


def T(s: str) -> str:
    return s


def act(i: str, start: str, end: str | None = None, party: str = "AAA", **kw: Any) -> dict:
    return {
        "id": i,
        "type": "activity",
        "party": party,
        "start": start,
        "end": end or start,
        "category": kw.pop("category", "land"),
        "size": kw.pop("size", {"troops": 10000}),
        **kw,
    }


def note(i: str, time: str, activity: str, form: str = "prior_notification", party: str = "AAA") -> dict:
    return {
        "id": i,
        "type": "notification",
        "party": party,
        "time": time,
        "form": form,
        "activity": activity,
    }


def run(events: list[dict], as_of: str = "2028-12-31T00:00:00Z") -> dict:
    a = parse_agreement(AGREEMENT, "test")
    return evaluate(a, parse_events(events), parse_time(as_of, "as_of")).to_json()


def codes(report: dict, measure: str | None = None) -> list[tuple[str, str]]:
    return [
        (f["code"], f["party"]) for f in report["findings"] if measure is None or f["measure"] == measure
    ]


def test_prior_notification_boundaries() -> None:
    start = "2028-06-01T00:00:00Z"
    on_time = run([act("a1", start), note("n1", "2028-04-20T00:00:00Z", "a1")])  # exactly 42 d
    assert codes(on_time, "notice") == []
    late = run([act("a1", start), note("n1", "2028-04-20T00:00:01Z", "a1")])  # one second late
    assert codes(late, "notice") == [("notification.late", "AAA")]
    missing = run([act("a1", start)])
    assert codes(missing, "notice") == [("notification.missing", "AAA")]
    below = run([act("a1", start, size={"troops": 8999, "battle_tanks": 249})])
    assert codes(below, "notice") == []
    tanks = run([act("a1", start, size={"troops": 100, "battle_tanks": 250})])
    assert codes(tanks, "notice") == [("notification.missing", "AAA")]
    alert = run([act("a1", start, alert=True), note("n1", start, "a1")])
    assert codes(alert, "notice") == []


def test_pending_is_not_a_finding() -> None:
    r = run([act("a1", "2028-06-01T00:00:00Z")], as_of="2028-06-01T00:00:00Z")
    obs = [o for o in r["obligations"] if o["id"] == "notice:AAA:a1"]
    assert obs and obs[0]["status"] == "missed"
    r2 = run(
        [act("a1", "2028-06-01T00:00:00Z"), note("n0", "2028-01-01T00:00:00Z", "a1", "other")],
        as_of="2028-01-02T00:00:00Z",
    )
    # The activity has not started by as_of: it is not yet an event, so nothing is owed.
    assert codes(r2, "notice") == []


def test_observation_invitation_threshold() -> None:
    r = run([act("a1", "2028-06-01T00:00:00Z", size={"troops": 13000})])
    assert ("observation.invitation_missing", "AAA") in codes(r, "invite")
    r = run([act("a1", "2028-06-01T00:00:00Z", size={"troops": 12999})])
    assert codes(r, "invite") == []


def test_annual_calendar_due_date() -> None:
    cal = {
        "id": "c",
        "type": "notification",
        "party": "AAA",
        "form": "annual_calendar",
        "year": 2028,
        "activities": ["a1"],
        "time": "2027-11-15T23:59:59Z",
    }
    r = run([act("a1", "2028-06-01T00:00:00Z"), cal])
    assert codes(r, "calendar") == []
    late = dict(cal, time="2027-11-16T00:00:00Z")
    assert codes(run([act("a1", "2028-06-01T00:00:00Z"), late]), "calendar") == [
        ("calendar.missing", "AAA")
    ]


def test_count_cap_over_three_calendar_years() -> None:
    big = {"troops": 40001}
    events = [act("x1", "2026-03-01T00:00:00Z", size=big), act("x2", "2028-12-01T00:00:00Z", size=big)]
    assert codes(run(events), "cap") == [("constraint.count_exceeded", "AAA")]
    events[0] = act("x1", "2025-12-31T00:00:00Z", size=big)  # outside 2026-2028
    assert codes(run(events), "cap") == []
    events[0] = act("x1", "2026-03-01T00:00:00Z", size={"troops": 40000})  # not above
    assert codes(run(events), "cap") == []


def test_simultaneity() -> None:
    size = {"troops": 13000}
    events = [
        act("s1", "2028-05-01T00:00:00Z", "2028-05-10T00:00:00Z", size=size),
        act("s2", "2028-05-10T00:00:00Z", "2028-05-12T00:00:00Z", size=size),
    ]
    assert codes(run(events), "simul") == [("constraint.simultaneous_exceeded", "AAA")]
    events[1] = act("s2", "2028-05-10T00:00:01Z", "2028-05-12T00:00:00Z", size=size)
    assert codes(run(events), "simul") == []


def test_periodic_exchange_missing_late_incomplete() -> None:
    ex = {
        "id": "e",
        "type": "exchange",
        "party": "AAA",
        "form": "annual_military_information",
        "period": "2028",
        "time": "2027-12-15T12:00:00Z",
    }
    ex_b = dict(ex, id="eb", party="BBB", time="2027-12-16T00:00:00Z")
    r = run([ex, ex_b])
    assert sorted(codes(r, "aemi")) == [
        ("exchange.late", "BBB"),
        ("exchange.missing", "AAA"),  # 2029's, due 2028-12-15
        ("exchange.missing", "BBB"),
    ]
    bwc = {
        "id": "b",
        "type": "exchange",
        "party": "AAA",
        "form": "bwc_cbm",
        "period": "2027",
        "parts": ["A1"],
        "time": "2028-04-15T10:00:00Z",
    }
    r = run([bwc])
    assert ("exchange.incomplete", "AAA") in codes(r, "bwc")
    assert ("exchange.missing", "BBB") in codes(r, "bwc")


def test_reply_deadline_48h() -> None:
    req = {
        "id": "r1",
        "type": "request",
        "party": "BBB",
        "kind": "explanation",
        "to": "AAA",
        "time": "2028-03-01T00:00:00Z",
    }
    ans = {
        "id": "a1",
        "type": "response",
        "party": "AAA",
        "request": "r1",
        "decision": "answer",
        "time": "2028-03-03T00:00:00Z",
    }
    assert codes(run([req, ans]), "explain") == []
    assert codes(run([req, dict(ans, time="2028-03-03T00:00:01Z")]), "explain") == [
        ("reply.late", "AAA")
    ]
    assert codes(run([req]), "explain") == [("reply.missing", "AAA")]
    # Only the addressee's answer counts.
    assert codes(run([req, dict(ans, party="BBB")]), "explain") == [("reply.missing", "AAA")]


def test_quota_refusal() -> None:
    def req(i: str, frm: str, t: str) -> dict:
        return {"id": i, "type": "request", "party": frm, "kind": "inspection", "to": "AAA", "time": t}

    def ans(i: str, r: str, d: str, t: str) -> dict:
        return {"id": i, "type": "response", "party": "AAA", "request": r, "decision": d, "time": t}

    events = [
        req("q1", "BBB", "2028-02-01T00:00:00Z"),
        ans("p1", "q1", "refuse", "2028-02-01T10:00:00Z"),
    ]
    assert codes(run(events), "inspections") == [("quota.refusal_within_quota", "AAA")]
    events = [
        req("q1", "BBB", "2028-02-01T00:00:00Z"),
        ans("p1", "q1", "accept", "2028-02-01T10:00:00Z"),
        req("q2", "BBB", "2028-03-01T00:00:00Z"),
        ans("p2", "q2", "refuse", "2028-03-01T10:00:00Z"),
    ]
    assert codes(run(events), "inspections") == []  # BBB used its one per requester


def test_deterministic_bytes() -> None:
    events = [
        act(f"a{i}", f"2028-0{1 + i % 9}-01T00:00:00Z", party="AAA" if i % 2 else "BBB")
        for i in range(9)
    ]
    a = parse_agreement(AGREEMENT, "test")
    r1 = evaluate(a, parse_events(events), parse_time("2028-12-31T00:00:00Z", "t")).dumps()
    r2 = evaluate(
        a, parse_events(list(reversed(events))), parse_time("2028-12-31T00:00:00Z", "t")
    ).dumps()
    assert r1 == r2
    # The written report is the report: the same JSON as to_json, one record a line.
    rep = evaluate(a, parse_events(events), parse_time("2028-12-31T00:00:00Z", "t"))
    assert json.loads(r1) == rep.to_json()
    records = len(rep.obligations) + len(rep.findings)
    lines = [ln.rstrip(",") for ln in r1.splitlines() if ln.startswith("  {")]
    assert records > 2 and len(lines) == records
    assert [json.loads(ln) for ln in lines] == rep.to_json()["obligations"] + rep.to_json()["findings"]
    nothing = Report("x", 0, (), ())
    assert nothing.dumps() == '{\n "agreement": "x",\n "as_of": "1970-01-01T00:00:00Z",\n' + (
        ' "obligations": [],\n "findings": []\n}\n'
    )


@pytest.mark.parametrize(
    ("records", "words"),
    [
        (
            [
                {
                    "id": "x",
                    "type": "activity",
                    "party": "AAA",
                    "start": "2028-01-02T00:00:00Z",
                    "end": "2028-01-01T00:00:00Z",
                    "category": "land",
                }
            ],
            ["record 0", "'x'", "'end'", "precedes"],
        ),
        ([{"id": "x", "type": "parade", "party": "AAA", "time": "2028-01-01T00:00:00Z"}], ["'type'"]),
        (
            [
                {
                    "id": "x",
                    "type": "response",
                    "party": "AAA",
                    "time": "2028-01-01T00:00:00Z",
                    "request": "nope",
                    "decision": "answer",
                }
            ],
            ["'request'", "'nope'"],
        ),
        (
            [{"id": "x", "type": "notification", "party": "AAA", "time": "2028-01-01", "form": "f"}],
            ["'time'", "RFC 3339"],
        ),
        (
            [
                {
                    "id": "x",
                    "type": "activity",
                    "party": "AAA",
                    "start": "2028-01-01T00:00:00Z",
                    "end": "2028-01-01T00:00:00Z",
                    "category": "land",
                    "size": {"troops": "many"},
                }
            ],
            ["size.troops"],
        ),
        (
            [
                {
                    "id": "x",
                    "type": "request",
                    "party": "A",
                    "time": "2028-01-01T00:00:00Z",
                    "kind": "inspection",
                    "to": "B",
                },
                {
                    "id": "x",
                    "type": "request",
                    "party": "A",
                    "time": "2028-01-01T00:00:00Z",
                    "kind": "inspection",
                    "to": "B",
                },
            ],
            ["record 1", "duplicates record 0"],
        ),
    ],
)
def test_bad_events_name_record_and_field(records: list[dict], words: list[str]) -> None:
    with pytest.raises(FormatError) as info:
        load_events_text(json.dumps(records), "ev.json")
    for w in words:
        assert w in str(info.value), str(info.value)
    assert str(info.value).startswith("ev.json")


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        (("lead: P42D", "lead: 42 days"), ["measures[0] (id 'notice').lead"]),
        (("rule: quota", "rule: quotas"), ["measures[7] (id 'inspections')"]),
        (('due: "11-15"', 'due: "13-15"'), ["measures[2] (id 'calendar').due"]),
    ],
)
def test_bad_agreement_names_the_field(patch: tuple[str, str], words: list[str]) -> None:
    with pytest.raises(FormatError) as info:
        parse_agreement(AGREEMENT.replace(*patch), "my.yaml")
    for w in words:
        assert w in str(info.value), str(info.value)


def test_missile_agreement_window_and_distances() -> None:
    pytest.importorskip("shapely")
    from cbmnet.agreements.loader import bundled, resolve_zones

    a = bundled("india-pakistan-missile-tests-2005")
    zones = resolve_zones(a)
    far = {"type": "Point", "coordinates": [78.5, 17.4]}  # Hyderabad, far from the border
    launch = {
        "id": "m1",
        "type": "activity",
        "party": "IND",
        "category": "missile_launch",
        "missile_class": "ballistic",
        "start": "2028-05-03T06:00:00Z",
        "end": "2028-05-03T06:20:00Z",
        "launch": far,
        "impact": {"type": "Point", "coordinates": [86.0, 15.0]},
        "trajectory": {"type": "LineString", "coordinates": [[78.5, 17.4], [86.0, 15.0]]},
    }
    notice = {  # the window (Art. 2) and the planned impact area (Art. 5)
        "id": "n1",
        "type": "notification",
        "party": "IND",
        "form": "launch_notification",
        "activity": "m1",
        "time": "2028-04-28T00:00:00Z",
        "window_start": "2028-05-01T00:00:00Z",
        "window_end": "2028-05-06T00:00:00Z",
        "impact": {"type": "Point", "coordinates": [86.0, 15.0]},
    }
    as_of = parse_time("2028-06-01T00:00:00Z", "t")
    ok = evaluate(a, parse_events([launch, notice]), as_of, zones)
    assert ok.findings == ()
    late = dict(notice, time="2028-04-28T00:00:01Z")
    r = evaluate(a, parse_events([launch, late]), as_of, zones)
    assert [f.code for f in r.findings] == ["notification.late"]
    near = dict(launch, launch={"type": "Point", "coordinates": [74.6, 31.63]})  # near Amritsar
    r = evaluate(a, parse_events([near, notice]), as_of, zones)
    assert [f.code for f in r.findings] == ["constraint.zone_violation"]
    assert r.findings[0].measure == "launch-notice"
    assert r.findings[0].provision == "Article 5 (launch site)"
    wide = dict(notice, window_end="2028-05-06T00:00:01Z")
    r = evaluate(a, parse_events([launch, wide]), as_of, zones)
    assert [f.code for f in r.findings] == ["launch.window_too_long"]


def test_published_schema_is_current() -> None:
    """docs/agreement.schema.json is what the model says (regenerate with
    `cbmnet agreements schema > docs/agreement.schema.json`)."""
    from pathlib import Path

    from cbmnet.agreements.loader import json_schema

    published = Path(__file__).resolve().parents[1] / "docs" / "agreement.schema.json"
    assert published.read_text() == json_schema()


# ---- regressions from the engine review --------------------------------------------------


def test_a_notice_after_the_launch_is_late_whatever_window_it_declares() -> None:
    from cbmnet.agreements.loader import bundled

    a = bundled("india-pakistan-missile-tests-2005")
    launch = act(
        "m1",
        "2027-06-01T00:00:00Z",
        party="IND",
        category="missile_launch",
        missile_class="ballistic",
        size={},
    )
    notice = {
        "id": "n1",
        "type": "notification",
        "party": "IND",
        "form": "launch_notification",
        "activity": "m1",
        "time": "2027-06-05T00:00:00Z",
        "window_start": "2027-06-10T00:00:00Z",
        "window_end": "2027-06-12T00:00:00Z",
    }
    r = evaluate(a, parse_events([launch, notice]), parse_time("2027-07-01T00:00:00Z", "t"), {})
    assert "notification.late" in [f.code for f in r.findings]


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": [1]},
        {"type": "Point", "coordinates": ["a", "b"]},
        {"type": "Point", "coordinates": [[1, 2]]},
        {"type": "Point", "coordinates": [200, 100]},
        {"type": "LineString", "coordinates": [[74, 32]]},
        {"type": "Polygon", "coordinates": [[[1, 2], [3, 4], [5, 6]]]},
        {"type": "Polygon", "coordinates": [[[1, 2], [3, 4], [5, 6], [7, 8]]]},
    ],
)
def test_bad_geometry_is_refused_at_load(geometry: dict) -> None:
    with pytest.raises(FormatError, match="field 'location'"):
        parse_events([act("a1", "2028-01-01T00:00:00Z", location=geometry)])


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(FormatError, match="Unicode"):
        load_events_text(
            '[{"id": "r\\ud800", "type": "incident", "party": "AAA", '
            '"time": "2028-01-01T00:00:00Z", "kind": "x"}]',
            "ev",
        )


def test_a_notice_to_some_parties_only_does_not_discharge_a_duty_to_all() -> None:
    n = dict(note("n1", "2028-04-01T00:00:00Z", "a1"), to=["ZZZ"])
    r = run([act("a1", "2028-06-01T00:00:00Z"), n])
    assert codes(r, "notice") == [("notification.missing", "AAA")]
    n["to"] = ["BBB"]
    assert codes(run([act("a1", "2028-06-01T00:00:00Z"), n]), "notice") == []


def test_requests_bind_only_between_parties_and_answers_follow_questions() -> None:
    def req(i: str, frm: str, to: str) -> dict:
        return {
            "id": i,
            "type": "request",
            "party": frm,
            "kind": "explanation",
            "to": to,
            "time": "2028-03-10T00:00:00Z",
        }

    assert codes(run([req("r1", "ZZZ", "AAA"), req("r2", "AAA", "AAA")]), "explain") == []
    early = {
        "id": "a1",
        "type": "response",
        "party": "AAA",
        "request": "r3",
        "decision": "answer",
        "time": "2028-03-01T00:00:00Z",
    }
    assert codes(run([req("r3", "BBB", "AAA"), early]), "explain") == [("reply.missing", "AAA")]


def test_a_non_party_event_does_not_widen_the_exchange_window() -> None:
    old = {"id": "i", "type": "incident", "party": "ZZZ", "kind": "x", "time": "1950-06-01T00:00:00Z"}
    assert len(codes(run([old]), "bwc")) == len(codes(run([]), "bwc"))


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        (('due: "11-15"', 'due: "02-29"'), "not a day of every year"),
        (("within: PT48H", "within: P99999999999999999999D"), "100 years"),
    ],
)
def test_agreement_figures_out_of_range(patch: tuple[str, str], words: str) -> None:
    with pytest.raises(FormatError, match=words):
        parse_agreement(AGREEMENT.replace(*patch), "my.yaml")


def test_deep_yaml_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        parse_agreement("measures: " + "[" * 5000 + "]" * 5000, "deep.yaml")


def test_times_are_exact_milliseconds() -> None:
    from cbmnet.compliance.timeutil import format_time

    for t in ("2038-02-20T16:14:46.187Z", "1935-04-28T08:15:56.982Z", "2027-01-01T00:00:00Z"):
        assert format_time(parse_time(t, "t")) == t
    with pytest.raises(FormatError, match="1900-2199"):
        parse_time("0001-01-01T00:00:00Z", "t")


def test_report_does_not_depend_on_event_order() -> None:
    import random

    events: list[dict] = []
    for i in range(30):
        t = f"2028-{1 + i % 12:02d}-{1 + i % 27:02d}T00:00:00Z"
        events.append(act(f"a{i}", t, party="AAA" if i % 2 else "BBB", size={"troops": 9000 + i * 1500}))
        if i % 3:
            events.append(note(f"n{i}", t, f"a{i}", party="AAA" if i % 2 else "BBB"))
        events.append(
            {
                "id": f"q{i}",
                "type": "request",
                "party": "BBB",
                "kind": "inspection",
                "to": "AAA",
                "time": t,
            }
        )
        events.append(
            {
                "id": f"p{i}",
                "type": "response",
                "party": "AAA",
                "request": f"q{i}",
                "decision": "refuse" if i % 4 == 0 else "accept",
                "time": t,
            }
        )
        events.append(
            {
                "id": f"e{i}",
                "type": "exchange",
                "party": "AAA",
                "form": "bwc_cbm",
                "period": "2027",
                "parts": ["A1"] if i % 2 else ["B"],
                "time": t,
            }
        )
    a = parse_agreement(AGREEMENT, "test")
    as_of = parse_time("2028-12-31T00:00:00Z", "t")
    want = evaluate(a, parse_events(events), as_of).dumps()
    assert "quota.refusal_within_quota" in want
    rng = random.Random(3)
    for _ in range(4):
        rng.shuffle(events)
        assert evaluate(a, parse_events(events), as_of).dumps() == want


def test_every_rule_of_the_vocabulary_has_an_evaluator() -> None:
    from cbmnet.agreements.model import RULE_NAMES
    from cbmnet.compliance.engine import RULES

    assert set(RULES) == RULE_NAMES
