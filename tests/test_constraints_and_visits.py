"""Issue 13, items 4, 5 and 10: limits as the text bounds them, stays as the text anchors
them, and no silence where the engine cannot judge.

- VD11 ¶67.2 counts activities of more than 13,000 troops or 300 battle tanks "but not
  more than 40,000 troops or 900 battle tanks": a 45,000-troop activity is ¶67.1's alone.
- VD11 Ch. IX: the inspection lasts 48 h from the team's arrival in the specified area,
  not from its entry into the receiving State.
- A zone rule meeting an activity without the geometry (or role, class) it reads says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from cbmnet.agreements.loader import bundled, parse_agreement
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.report import Finding
from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import FormatError

VD = "vienna-document-2011"
HOUR = 3_600_000


def t(s: str, plus_ms: int = 0) -> str:
    return format_time(parse_time(s, "t") + plus_ms)


def run(
    agreement: Agreement, events: list[dict], as_of: str, zones: dict[str, Any] | None = None
) -> tuple[Finding, ...]:
    return evaluate(agreement, parse_events(events), parse_time(as_of, "as_of"), zones or {}).findings


def codes(findings: tuple[Finding, ...], measure: str) -> list[tuple[str, str]]:
    return [(f.code, f.party) for f in findings if f.measure == measure]


def act(i: str, start: str, troops: int = 0, tanks: int = 0, party: str = "RUS", **kw: Any) -> dict:
    size = {k: v for k, v in (("troops", troops), ("battle_tanks", tanks)) if v}
    return {
        "id": i,
        "type": "activity",
        "party": party,
        "start": start,
        "end": start,
        "category": kw.pop("category", "land"),
        "size": size,
        **kw,
    }


def monthly(n: int, troops: int = 0, tanks: int = 0, year: int = 2028) -> list[dict]:
    """``n`` one-day activities on the 1st of successive months (never simultaneous)."""
    return [act(f"m{k}", f"{year}-{k + 1:02d}-01T00:00:00Z", troops, tanks) for k in range(n)]


# ---- item 4: bands and "of these" (VD11 ¶67) ----------------------------------------------

SIX, THREE, ONE = (
    "constraint-over-13000-per-year",
    "constraint-over-25000-per-year",
    "constraint-over-40000",
)
YEAR_END = "2028-12-31T00:00:00Z"


def test_an_activity_over_40000_is_not_one_of_the_six() -> None:
    vd = bundled(VD)
    six_and_big = [*monthly(6, troops=20000), act("big", "2028-12-01T00:00:00Z", troops=45000)]
    found = run(vd, six_and_big, YEAR_END)
    assert codes(found, SIX) == []
    assert codes(found, ONE) == []  # one in three years: allowed
    seven = monthly(7, troops=20000)
    assert codes(run(vd, seven, YEAR_END), SIX) == [("constraint.count_exceeded", "RUS")]


def test_band_bounds_are_the_texts_figures() -> None:
    vd = bundled(VD)
    top = [*monthly(6, troops=20000), act("x", "2028-12-01T00:00:00Z", troops=40000)]
    assert codes(run(vd, top, YEAR_END), SIX) == [("constraint.count_exceeded", "RUS")]
    over = [*monthly(6, troops=20000), act("x", "2028-12-01T00:00:00Z", troops=40001)]
    assert codes(run(vd, over, YEAR_END), SIX) == []
    tanks_900 = [*monthly(6, troops=20000), act("x", "2028-12-01T00:00:00Z", tanks=900)]
    assert codes(run(vd, tanks_900, YEAR_END), SIX) == [("constraint.count_exceeded", "RUS")]
    tanks_901 = [*monthly(6, troops=20000), act("x", "2028-12-01T00:00:00Z", tanks=901)]
    assert codes(run(vd, tanks_901, YEAR_END), SIX) == []
    # "or": 20,000 troops with 901 tanks is over the band, whatever the troops.
    mixed = [*monthly(6, troops=20000), act("x", "2028-12-01T00:00:00Z", troops=20000, tanks=901)]
    assert codes(run(vd, mixed, YEAR_END), SIX) == []


def test_the_over_40000_rule_still_counts_on_its_own() -> None:
    vd = bundled(VD)
    two_big = [
        *monthly(6, troops=20000),
        act("big1", "2027-06-01T00:00:00Z", troops=45000),
        act("big2", "2028-12-01T00:00:00Z", troops=45000),
    ]
    found = run(vd, two_big, YEAR_END)
    assert codes(found, ONE) == [("constraint.count_exceeded", "RUS")]
    assert codes(found, SIX) == [] and codes(found, THREE) == []


def test_of_these_six_at_most_three_over_25000() -> None:
    vd = bundled(VD)
    low = [act(f"low{k}", f"2028-{k + 7:02d}-01T00:00:00Z", troops=20000) for k in range(3)]
    three = [*monthly(3, troops=30000), *low]  # six in the band, three over 25,000
    assert codes(run(vd, three, YEAR_END), THREE) == [] and codes(run(vd, three, YEAR_END), SIX) == []
    four = monthly(4, troops=30000)
    assert codes(run(vd, four, YEAR_END), THREE) == [("constraint.count_exceeded", "RUS")]
    # Activities over 40,000 are not "of these six": three in the sub-band and two big
    # ones (a ¶67.1 matter) make no fourth.
    big = [
        *monthly(3, troops=30000),
        act("b1", "2028-11-01T00:00:00Z", troops=45000),
        act("b2", "2028-12-01T00:00:00Z", tanks=950),
    ]
    assert codes(run(vd, big, YEAR_END), THREE) == []


OF_REGIME = """
id: of-test
title: of
version: "1"
parties: [AAA, BBB]
measures:
  - {id: band, kind: constraint, provision: "T ¶1", rule: activity_cap,
     scope: {threshold: {troops: 101}}, not_more_than: {troops: 400}, max_count: 6}
  - {id: sub, kind: constraint, provision: "T ¶1.1", rule: activity_cap,
     scope: {threshold: {troops: 201}}, of: band, max_count: 1}
  - {id: loop, kind: constraint, provision: "T ¶2", rule: activity_cap,
     scope: {threshold: {troops: 1}}, of: loop, max_count: 1}
  - {id: stray, kind: constraint, provision: "T ¶3", rule: activity_cap,
     scope: {threshold: {troops: 1}}, of: nowhere, max_count: 1}
"""


def test_of_names_an_activity_cap_of_the_agreement() -> None:
    base = parse_agreement(OF_REGIME, "of")
    evs = [act("a", "2028-01-01T00:00:00Z", 300, party="AAA")]
    for bad, words in (("loop", "circle"), ("stray", "not an activity_cap")):
        only = base.model_copy(update={"measures": tuple(m for m in base.measures if m.id == bad)})
        with pytest.raises(FormatError, match=words):
            run(only, evs, YEAR_END)
    good = base.model_copy(update={"measures": base.measures[:2]})
    two = [*evs, act("b", "2028-02-01T00:00:00Z", 300, party="AAA")]
    assert codes(run(good, two, YEAR_END), "sub") == [("constraint.count_exceeded", "AAA")]
    above = [*evs, act("b", "2028-02-01T00:00:00Z", 500, party="AAA")]
    assert codes(run(good, above, YEAR_END), "sub") == []


# ---- item 5: the stay runs from the arrival in the specified area -------------------------

ASKED = "2028-03-01T00:00:00Z"
CONDUCT = "inspection-conduct"


def inspection(arrive_h: float | None, leave_h: float, **extra: Any) -> list[dict]:
    entry = t(ASKED, 10 * HOUR)
    report: dict[str, Any] = {
        "id": "r",
        "type": "notification",
        "party": "UKR",
        "time": t(entry, 5 * 24 * HOUR),
        "form": "inspection_report",
        "request": "q",
        "window_start": entry,
        "window_end": t(entry, int(leave_h * HOUR)),
        "team_size": 4,
        **extra,
    }
    if arrive_h is not None:
        report["arrived_area"] = t(entry, int(arrive_h * HOUR))
    return [
        {"id": "q", "type": "request", "party": "UKR", "to": "RUS", "time": ASKED, "kind": "inspection"},
        {
            "id": "p",
            "type": "response",
            "party": "RUS",
            "request": "q",
            "time": t(ASKED, HOUR),
            "decision": "accept",
        },
        report,
    ]


def test_stay_counted_from_arrival_in_the_specified_area() -> None:
    vd = bundled(VD)
    as_of = "2028-06-01T00:00:00Z"
    # Entry at T, arrival in the area at T+20 h, departure at T+60 h: 40 h in the area.
    assert codes(run(vd, inspection(20, 60), as_of), CONDUCT) == []
    assert codes(run(vd, inspection(20, 68), as_of), CONDUCT) == []
    assert codes(run(vd, inspection(20, 70), as_of), CONDUCT) == [("visit.stay_exceeded", "UKR")]
    found = [f for f in run(vd, inspection(20, 70), as_of) if f.measure == CONDUCT]
    assert "after arrived_area" in found[0].message


def test_stay_without_the_arrival_time_is_unassessable() -> None:
    vd = bundled(VD)
    as_of = "2028-06-01T00:00:00Z"
    for report in (inspection(None, 70), inspection(None, 30), inspection(80, 70), inspection(-1, 70)):
        found = [f for f in run(vd, report, as_of) if f.measure == CONDUCT]
        assert [(f.code, f.severity) for f in found] == [("data.unassessable", "info")]
        assert "arrived_area" in found[0].message and CONDUCT in found[0].message
    garbled = inspection(None, 70, arrived_area="yesterday")
    assert codes(run(vd, garbled, as_of), CONDUCT) == [("data.unassessable", "UKR")]


# ---- item 10: a zone rule never passes over what it cannot judge --------------------------

ZONE_REGIME = """
id: zone-test
title: zones
version: "1"
parties: [AAA, BBB]
zones:
  box: {geometry: {type: Polygon, coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}
measures:
  - {id: keep-out, kind: constraint, provision: "Z ¶1", rule: zone_rule,
     scope: {categories: [land]}, subject: location, zone: box}
  - {id: launch-site, kind: constraint, provision: "Z ¶2", rule: zone_rule,
     scope: {categories: [missile_launch]}, missile_classes: [ballistic], subject: launch,
     zone: box, min_distance_km: 40}
"""


def test_zone_rule_reports_what_it_cannot_judge() -> None:
    shapely = pytest.importorskip("shapely.geometry")
    a = parse_agreement(ZONE_REGIME, "zones")
    zones = {"box": shapely.shape(a.zones["box"].geometry)}
    as_of = "2028-06-01T00:00:00Z"
    inside = {"type": "Point", "coordinates": [0.5, 0.5]}
    far = {"type": "Point", "coordinates": [10.0, 10.0]}
    start = "2028-05-01T00:00:00Z"
    assert codes(
        run(a, [act("in", start, 100, party="AAA", location=inside)], as_of, zones), "keep-out"
    ) == [("constraint.zone_violation", "AAA")]
    assert (
        codes(run(a, [act("out", start, 100, party="AAA", location=far)], as_of, zones), "keep-out")
        == []
    )
    blind = run(a, [act("blind", start, 100, party="AAA")], as_of, zones)
    assert [(f.code, f.severity, f.subjects) for f in blind if f.measure == "keep-out"] == [
        ("data.unassessable", "info", ("blind",))
    ]
    msg = next(f.message for f in blind if f.measure == "keep-out")
    assert "keep-out" in msg and "location" in msg

    def launch(i: str, **kw: Any) -> dict:
        return act(i, start, party="BBB", category="missile_launch", **kw)

    no_site = run(a, [launch("l1", missile_class="ballistic")], as_of, zones)
    assert codes(no_site, "launch-site") == [("data.unassessable", "BBB")]
    assert "launch" in next(f.message for f in no_site if f.measure == "launch-site")
    no_class = run(a, [launch("l2", launch=inside)], as_of, zones)
    assert codes(no_class, "launch-site") == [("data.unassessable", "BBB")]
    assert "missile_class" in next(f.message for f in no_class if f.measure == "launch-site")
    # A class the rule does not govern is outside it, geometry or not.
    assert codes(run(a, [launch("l3", missile_class="cruise")], as_of, zones), "launch-site") == []
    assert (
        codes(run(a, [launch("l4", missile_class="ballistic", launch=far)], as_of, zones), "launch-site")
        == []
    )
