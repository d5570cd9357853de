"""The bundled agreements: each loads, each rule at its boundary, one clean record each.

Every bundled agreement gets (a) a compliant scenario whose full report has no findings and
(b) for each measure, scenarios on either side of its boundary: on the deadline vs one
second late, one troop (tank, ship …) under vs at the threshold, about 1 km inside vs
outside a distance. Distances are measured against the Natural Earth IND-PAK line along the
parallel 27° N (Rajasthan/Sindh), where the points below were found with
``cbmnet.geo.distance_km``; ``test_reference_points`` re-measures them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from cbmnet.agreements.loader import bundled, bundled_ids, load_agreement, resolve_zones
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import format_time, parse_time

CONTRACT_IDS = {
    "vienna-document-2011",
    "india-pakistan-missile-tests-2005",
    "india-pakistan-nuclear-installations-1988",
    "india-pakistan-military-exercises-1991",
    "india-pakistan-airspace-1991",
    "us-ussr-launch-notification-1988",
    "us-ussr-strategic-exercises-1989",
    "open-skies-1992",
    "hague-code-of-conduct-2002",
    "bwc-cbm",
    "osce-ict-cbm-2016",
    "wto-tbt",
    "helsinki-final-act-1975",
}
# The 57 OSCE participating States (standard OSCE list).
# fmt: off
OSCE_57 = [
    "ALB", "AND", "ARM", "AUT", "AZE", "BLR", "BEL", "BIH", "BGR", "CAN", "HRV", "CYP", "CZE", "DNK",
    "EST", "FIN", "FRA", "GEO", "DEU", "GRC", "VAT", "HUN", "ISL", "IRL", "ITA", "KAZ", "KGZ", "LVA",
    "LIE", "LTU", "LUX", "MLT", "MDA", "MCO", "MNG", "MNE", "NLD", "MKD", "NOR", "POL", "PRT", "ROU",
    "RUS", "SMR", "SRB", "SVK", "SVN", "ESP", "SWE", "CHE", "TJK", "TUR", "TKM", "UKR", "GBR", "USA",
    "UZB",
]
# fmt: on

# Points on the parallel 27° N at a given distance (km) from the IND-PAK border line.
LAT = 27.0
IND_AT = {
    0.5: 69.5039,
    1.5: 69.5141,
    4: 69.5396,
    6: 69.56,
    9: 69.5906,
    11: 69.611,
    39: 69.9211,
    41: 69.9563,
    69: 70.6234,
    71: 70.6513,
    74: 70.6919,
    76: 70.7182,
}
PAK_AT = {9: 69.407, 11: 69.3866}
IND_DEEP = 71.5  # ~96 km inside India
PAK_DEEP = 68.5  # ~98 km inside Pakistan


# ---- helpers ----------------------------------------------------------------------------


def point(lon: float, lat: float = LAT) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def path(*lons: float, lat: float = LAT) -> dict:
    return {"type": "LineString", "coordinates": [[x, lat] for x in lons]}


def shift(t: str, seconds: int) -> str:
    """``t`` (RFC 3339, Z) moved by ``seconds``."""
    return format_time(parse_time(t, "t") + seconds * 1000)


DAY = 86_400
HOUR = 3_600


def act(i: str, party: str, start: str, end: str | None = None, **kw: Any) -> dict:
    return {
        "id": i,
        "type": "activity",
        "party": party,
        "start": start,
        "end": end or start,
        "category": kw.pop("category", "land"),
        "size": kw.pop("size", {}),
        **kw,
    }


def note(i: str, party: str, time: str, form: str, activity: str | None = None, **kw: Any) -> dict:
    ev = {"id": i, "type": "notification", "party": party, "time": time, "form": form, **kw}
    if activity is not None:
        ev["activity"] = activity
    return ev


def exch(i: str, party: str, time: str, form: str, period: str, **kw: Any) -> dict:
    return {
        "id": i,
        "type": "exchange",
        "party": party,
        "time": time,
        "form": form,
        "period": period,
        **kw,
    }


def req(i: str, frm: str, to: str, time: str, kind: str, **kw: Any) -> dict:
    return {"id": i, "type": "request", "party": frm, "to": to, "time": time, "kind": kind, **kw}


def resp(i: str, party: str, request: str, time: str, decision: str = "answer") -> dict:
    return {
        "id": i,
        "type": "response",
        "party": party,
        "request": request,
        "time": time,
        "decision": decision,
    }


def incident(i: str, party: str, time: str, kind: str) -> dict:
    return {"id": i, "type": "incident", "party": party, "time": time, "kind": kind}


@cache
def zones_of(agreement_id: str) -> dict[str, Any]:
    return resolve_zones(bundled(agreement_id))


def run(agreement_id: str, events: list[dict], as_of: str) -> dict:
    a = bundled(agreement_id)
    zones = zones_of(agreement_id) if a.zones else None
    return evaluate(a, parse_events(events), parse_time(as_of, "as_of"), zones).to_json()


def codes(report: dict, measure: str | None = None, party: str | None = None) -> list[tuple[str, str]]:
    return sorted(
        (f["code"], f["party"])
        for f in report["findings"]
        if (measure is None or f["measure"] == measure) and (party is None or f["party"] == party)
    )


def assert_clean(report: dict) -> None:
    assert report["findings"] == [], [(f["code"], f["party"], f["message"]) for f in report["findings"]]


# ---- loading ----------------------------------------------------------------------------


def test_all_contract_ids_are_bundled_and_load() -> None:
    ids = bundled_ids()
    assert set(ids) >= CONTRACT_IDS, CONTRACT_IDS - set(ids)
    for aid in ids:
        a = load_agreement(aid)  # as `cbmnet agreements list` / `show` load them
        assert isinstance(a, Agreement)
        assert a.id == aid
        assert a.title and a.version and a.source.strip()
        assert a.measures
        for m in a.measures:
            assert m.provision.strip(), f"{aid}: measure {m.id} has no provision"
            assert m.unconfirmed is None or m.unconfirmed.strip()
        for p in a.parties:
            assert len(p) == 3 and p.isupper(), (aid, p)


def test_cli_agreements_list_and_show() -> None:
    from typer.testing import CliRunner

    from cbmnet.cli.main import app

    r = CliRunner().invoke(app, ["agreements", "list"])
    assert r.exit_code == 0, r.output
    for aid in CONTRACT_IDS:
        assert aid in r.output
    r = CliRunner().invoke(app, ["agreements", "show", "vienna-document-2011"])
    assert r.exit_code == 0, r.output
    assert "UNCONFIRMED" in r.output


def test_osce_agreements_have_the_57_participating_states() -> None:
    for aid in ("vienna-document-2011", "osce-ict-cbm-2016"):
        parties = bundled(aid).parties
        assert len(parties) == 57
        assert sorted(parties) == sorted(OSCE_57)


def test_zones_resolve() -> None:
    for aid in bundled_ids():
        a = bundled(aid)
        if a.zones:
            z = zones_of(aid)
            assert set(z) == set(a.zones)
            assert all(not g.is_empty for g in z.values())


def test_reference_points() -> None:
    from shapely.geometry import shape

    from cbmnet.geo import border, distance_km, territory

    line = border("IND", "PAK")
    for km, lon in IND_AT.items():
        assert abs(distance_km(shape(point(lon)), line) - km) < 0.05, (km, lon)
        assert territory(lon, LAT) == "IND"
    for km, lon in PAK_AT.items():
        assert abs(distance_km(shape(point(lon)), line) - km) < 0.05, (km, lon)
        assert territory(lon, LAT) == "PAK"


# ---- Vienna Document 2011 ---------------------------------------------------------------

VD = "vienna-document-2011"


def aemi_all(period: int, time: str) -> list[dict]:
    return [
        exch(f"aemi-{p}-{period}", p, time, "annual_military_information", str(period))
        for p in bundled(VD).parties
    ]


def test_vd_full_record_is_clean() -> None:
    big, obs, small, amph = "vd-big", "vd-obs", "vd-small", "vd-amph"
    events = [
        # A >40,000 activity in 2028: announced by 15 Nov 2026, calendar, notice, invitation.
        act(big, "RUS", "2028-09-01T00:00:00Z", "2028-09-10T00:00:00Z", size={"troops": 40001}),
        note("ann", "RUS", "2026-11-01T00:00:00Z", "advance_announcement", activities=[big], year=2028),
        act(obs, "RUS", "2028-06-01T00:00:00Z", "2028-06-05T00:00:00Z", size={"troops": 13001}),
        act(small, "RUS", "2028-07-01T00:00:00Z", "2028-07-02T00:00:00Z", size={"battle_tanks": 250}),
        act(
            amph,
            "GBR",
            "2028-05-01T00:00:00Z",
            "2028-05-03T00:00:00Z",
            category="amphibious_landing",
            size={"troops": 3500},
        ),
        note(
            "cal-rus",
            "RUS",
            "2027-11-15T12:00:00Z",
            "annual_calendar",
            activities=[big, obs, small],
            year=2028,
        ),
        note("cal-gbr", "GBR", "2027-11-01T00:00:00Z", "annual_calendar", activities=[amph], year=2028),
        note("n-big", "RUS", "2028-07-21T00:00:00Z", "prior_notification", big),
        note("i-big", "RUS", "2028-07-21T00:00:00Z", "observation_invitation", big),
        note("n-obs", "RUS", "2028-04-20T00:00:00Z", "prior_notification", obs),
        note("i-obs", "RUS", "2028-04-20T00:00:00Z", "observation_invitation", obs),
        note("n-small", "RUS", "2028-05-01T00:00:00Z", "prior_notification", small),
        note("n-amph", "GBR", "2028-03-01T00:00:00Z", "prior_notification", amph),
        note("i-amph", "GBR", "2028-03-01T00:00:00Z", "observation_invitation", amph),
        req("expl", "UKR", "RUS", "2028-02-11T00:00:00Z", "explanation"),
        resp("expl-a", "RUS", "expl", "2028-02-12T00:00:00Z"),
        req("meet", "UKR", "RUS", "2028-02-13T00:00:00Z", "meeting"),
        resp("meet-a", "RUS", "meet", "2028-02-14T00:00:00Z", "accept"),
        req("insp", "UKR", "RUS", "2028-03-10T00:00:00Z", "inspection"),
        resp("insp-a", "RUS", "insp", "2028-03-10T20:00:00Z", "accept"),
        req("eval", "POL", "BLR", "2028-04-10T00:00:00Z", "evaluation"),
        resp("eval-a", "BLR", "eval", "2028-04-12T00:00:00Z", "accept"),
        *aemi_all(2027, "2026-12-01T00:00:00Z"),
        *aemi_all(2028, "2027-12-01T00:00:00Z"),
    ]
    r = run(VD, events, "2028-12-01T00:00:00Z")
    assert_clean(r)
    statuses = {o["status"] for o in r["obligations"]}
    assert statuses <= {"met", "pending"}
    # The 2029 exchange, due 15 Dec 2028, is still pending.
    assert any(o["status"] == "pending" and o["id"].startswith("aemi:") for o in r["obligations"])


def test_vd_annual_exchange_due_15_december() -> None:
    # An earlier event opens the record, so that the 2028 exchange is judged.
    opener = note("open", "UKR", "2027-12-01T00:00:00Z", "other")
    on_time = [opener, exch("e", "RUS", "2027-12-15T23:59:59Z", "annual_military_information", "2028")]
    assert codes(run(VD, on_time, "2028-06-01T00:00:00Z"), "aemi", "RUS") == []
    late = [opener, exch("e", "RUS", "2027-12-16T00:00:00Z", "annual_military_information", "2028")]
    assert codes(run(VD, late, "2028-06-01T00:00:00Z"), "aemi", "RUS") == [("exchange.late", "RUS")]
    # Nothing from UKR in a record that starts before the due date: missing.
    r = run(VD, on_time, "2028-06-01T00:00:00Z")
    assert codes(r, "aemi", "UKR") == [("exchange.missing", "UKR")]
    assert len(codes(r, "aemi")) == 56


@pytest.mark.parametrize(
    "measure,kind",
    [("unusual-activities-explanation", "explanation"), ("unusual-activities-meeting", "meeting")],
)
def test_vd_chapter_iii_48_hours(measure: str, kind: str) -> None:
    r0 = req("r", "UKR", "RUS", "2028-02-11T10:00:00Z", kind)
    as_of = "2028-03-01T00:00:00Z"
    assert codes(run(VD, [r0, resp("a", "RUS", "r", "2028-02-13T10:00:00Z")], as_of), measure) == []
    late = run(VD, [r0, resp("a", "RUS", "r", "2028-02-13T10:00:01Z")], as_of)
    assert codes(late, measure) == [("reply.late", "RUS")]
    assert codes(run(VD, [r0], as_of), measure) == [("reply.missing", "RUS")]
    # Pending, not a finding, before 48 h have passed.
    assert codes(run(VD, [r0], "2028-02-13T10:00:00Z"), measure) == []


VD_START = "2028-06-01T00:00:00Z"
VD_42D_BEFORE = "2028-04-20T00:00:00Z"


@pytest.mark.parametrize(
    "category,key,at",
    [
        ("land", "troops", 9000),
        ("land", "battle_tanks", 250),
        ("land", "acvs", 500),
        ("land", "artillery", 250),
        ("transfer", "troops", 9000),
        ("concentration", "battle_tanks", 250),
    ],
)
def test_vd_prior_notification_thresholds(category: str, key: str, at: int) -> None:
    m = "notification-land"
    below = act("a", "RUS", VD_START, category=category, size={key: at - 1})
    assert codes(run(VD, [below], "2028-12-01T00:00:00Z"), m) == []
    at_threshold = act("a", "RUS", VD_START, category=category, size={key: at})
    assert codes(run(VD, [at_threshold], "2028-12-01T00:00:00Z"), m) == [("notification.missing", "RUS")]


def test_vd_prior_notification_42_days_and_alert() -> None:
    m = "notification-land"
    a = act("a", "RUS", VD_START, size={"troops": 9000})
    as_of = "2028-12-01T00:00:00Z"
    assert (
        codes(run(VD, [a, note("n", "RUS", VD_42D_BEFORE, "prior_notification", "a")], as_of), m) == []
    )
    late = note("n", "RUS", shift(VD_42D_BEFORE, 1), "prior_notification", "a")
    assert codes(run(VD, [a, late], as_of), m) == [("notification.late", "RUS")]
    # Alert activities: notified when the troops start.
    alert = act("a", "RUS", VD_START, size={"troops": 9000}, alert=True)
    assert codes(run(VD, [alert, note("n", "RUS", VD_START, "prior_notification", "a")], as_of), m) == []
    after = note("n", "RUS", shift(VD_START, 1), "prior_notification", "a")
    assert codes(run(VD, [alert, after], as_of), m) == [("notification.late", "RUS")]
    # Sorties alone do not make an activity notifiable.
    air = act("a", "RUS", VD_START, size={"sorties": 5000})
    assert codes(run(VD, [air], as_of)) == []


@pytest.mark.parametrize("category", ["amphibious_landing", "heliborne_landing", "parachute_assault"])
def test_vd_amphibious_airborne_notification_and_observation(category: str) -> None:
    as_of = "2028-12-01T00:00:00Z"
    n, o = "notification-amphibious-airborne", "observation-amphibious-airborne"

    def a(troops: int) -> dict:
        return act("a", "GBR", VD_START, category=category, size={"troops": troops})

    assert codes(run(VD, [a(2999)], as_of), n) == []
    assert codes(run(VD, [a(3000)], as_of), n) == [("notification.missing", "GBR")]
    assert codes(run(VD, [a(3000)], as_of), o) == []
    assert codes(run(VD, [a(3499)], as_of), o) == []
    assert codes(run(VD, [a(3500)], as_of), o) == [("observation.invitation_missing", "GBR")]
    invited = note("i", "GBR", VD_42D_BEFORE, "observation_invitation", "a")
    assert codes(run(VD, [a(3500), invited], as_of), o) == []
    late = note("i", "GBR", shift(VD_42D_BEFORE, 1), "observation_invitation", "a")
    assert codes(run(VD, [a(3500), late], as_of), o) == [("observation.invitation_late", "GBR")]
    # A land activity of 3,000 troops is not notifiable.
    assert codes(run(VD, [act("a", "GBR", VD_START, size={"troops": 3000})], as_of)) == []


@pytest.mark.parametrize(
    "key,at", [("troops", 13000), ("battle_tanks", 300), ("acvs", 500), ("artillery", 250)]
)
def test_vd_observation_thresholds(key: str, at: int) -> None:
    m = "observation-land"
    as_of = "2028-12-01T00:00:00Z"
    assert codes(run(VD, [act("a", "RUS", VD_START, size={key: at - 1})], as_of), m) == []
    a = act("a", "RUS", VD_START, size={key: at})
    assert codes(run(VD, [a], as_of), m) == [("observation.invitation_missing", "RUS")]
    on_time = note("i", "RUS", VD_42D_BEFORE, "observation_invitation", "a")
    assert codes(run(VD, [a, on_time], as_of), m) == []
    late = note("i", "RUS", shift(VD_42D_BEFORE, 1), "observation_invitation", "a")
    assert codes(run(VD, [a, late], as_of), m) == [("observation.invitation_late", "RUS")]


def test_vd_alert_activity_over_72_hours_needs_observation() -> None:
    a = act("a", "RUS", VD_START, shift(VD_START, 72 * HOUR + 1), size={"troops": 13000}, alert=True)
    n = note("n", "RUS", VD_START, "prior_notification", "a")
    r = run(VD, [a, n], "2028-12-01T00:00:00Z")
    assert codes(r, "observation-land") == [("observation.invitation_missing", "RUS")]
    i = note("i", "RUS", VD_START, "observation_invitation", "a")
    assert codes(run(VD, [a, n, i], "2028-12-01T00:00:00Z"), "observation-land") == []


def test_vd_alert_activity_of_72_hours_needs_no_observation() -> None:
    a = act("a", "RUS", VD_START, shift(VD_START, 72 * HOUR), size={"troops": 13000}, alert=True)
    n = note("n", "RUS", VD_START, "prior_notification", "a")
    assert codes(run(VD, [a, n], "2028-12-01T00:00:00Z"), "observation-land") == []


def calendar(i: str, party: str, time: str, year: int, *acts: str) -> dict:
    return note(i, party, time, "annual_calendar", activities=list(acts), year=year)


def test_vd_annual_calendar_15_november() -> None:
    as_of = "2028-12-01T00:00:00Z"
    for m, a in [
        ("calendar-land", act("a", "RUS", VD_START, size={"troops": 9000})),
        (
            "calendar-amphibious-airborne",
            act("a", "RUS", VD_START, category="parachute_assault", size={"troops": 3000}),
        ),
    ]:
        on_time = calendar("c", "RUS", "2027-11-15T23:59:59Z", 2028, "a")
        assert codes(run(VD, [a, on_time], as_of), m) == []
        late = calendar("c", "RUS", "2027-11-16T00:00:00Z", 2028, "a")
        assert codes(run(VD, [a, late], as_of), m) == [("calendar.missing", "RUS")]
        assert codes(run(VD, [a], as_of), m) == [("calendar.missing", "RUS")]
        other_year = calendar("c", "RUS", "2027-11-01T00:00:00Z", 2029, "a")
        assert codes(run(VD, [a, other_year], as_of), m) == [("calendar.missing", "RUS")]
    below = act("a", "RUS", VD_START, size={"troops": 8999})
    assert codes(run(VD, [below], as_of), "calendar-land") == []


def test_vd_alert_activity_is_not_owed_in_the_calendar() -> None:
    a = act("a", "RUS", VD_START, size={"troops": 9000}, alert=True)
    n = note("n", "RUS", VD_START, "prior_notification", "a")
    assert codes(run(VD, [a, n], "2028-12-01T00:00:00Z"), "calendar-land") == []


def test_vd_advance_announcement_two_years_ahead() -> None:
    m = "announcement-over-40000"
    as_of = "2028-12-01T00:00:00Z"
    big = act("a", "RUS", VD_START, size={"troops": 40001})
    on_time = note(
        "n", "RUS", "2026-11-15T23:59:59Z", "advance_announcement", activities=["a"], year=2028
    )
    assert codes(run(VD, [big, on_time], as_of), m) == []
    late = note("n", "RUS", "2026-11-16T00:00:00Z", "advance_announcement", activities=["a"], year=2028)
    assert codes(run(VD, [big, late], as_of), m) == [("announcement.missing", "RUS")]
    assert codes(run(VD, [big], as_of), m) == [("announcement.missing", "RUS")]
    # An annual calendar sent two years ahead also announces it.
    cal = calendar("c", "RUS", "2026-11-15T00:00:00Z", 2028, "a")
    assert codes(run(VD, [big, cal], as_of), m) == []
    # "More than 40,000 troops or 900 tanks".
    assert codes(run(VD, [act("a", "RUS", VD_START, size={"troops": 40000})], as_of), m) == []
    assert codes(run(VD, [act("a", "RUS", VD_START, size={"battle_tanks": 900})], as_of), m) == []
    tanks = act("a", "RUS", VD_START, size={"battle_tanks": 901})
    assert codes(run(VD, [tanks], as_of), m) == [("announcement.missing", "RUS")]


def test_vd_one_over_40000_in_three_calendar_years() -> None:
    m = "constraint-over-40000"
    as_of = "2028-12-31T00:00:00Z"

    def big(i: str, start: str, size: dict | None = None) -> dict:
        return act(i, "RUS", start, size=size or {"troops": 40001})

    two = [big("a", "2026-01-01T00:00:00Z"), big("b", "2028-12-01T00:00:00Z")]
    assert codes(run(VD, two, as_of), m) == [("constraint.count_exceeded", "RUS")]
    apart = [big("a", "2025-12-31T23:59:59Z"), big("b", "2028-12-01T00:00:00Z")]
    assert codes(run(VD, apart, as_of), m) == []
    not_above = [big("a", "2026-06-01T00:00:00Z", {"troops": 40000}), big("b", "2028-06-01T00:00:00Z")]
    assert codes(run(VD, not_above, as_of), m) == []
    tanks_900 = [
        big("a", "2026-06-01T00:00:00Z", {"battle_tanks": 900}),
        big("b", "2028-06-01T00:00:00Z"),
    ]
    assert codes(run(VD, tanks_900, as_of), m) == []
    tanks = [big("a", "2026-06-01T00:00:00Z", {"battle_tanks": 901}), big("b", "2028-06-01T00:00:00Z")]
    assert codes(run(VD, tanks, as_of), m) == [("constraint.count_exceeded", "RUS")]
    # Counted per State.
    other = [
        big("a", "2027-06-01T00:00:00Z"),
        act("b", "BLR", "2027-09-01T00:00:00Z", size={"troops": 40001}),
    ]
    assert codes(run(VD, other, as_of), m) == []


def spread(n: int, size: dict, year: int = 2028) -> list[dict]:
    """``n`` one-day activities in ``year``, on the 1st of successive months (never simultaneous)."""
    return [act(f"s{k}", "RUS", f"{year}-{k + 1:02d}-01T00:00:00Z", size=size) for k in range(n)]


def test_vd_six_over_13000_per_year() -> None:
    m = "constraint-over-13000-per-year"
    as_of = "2028-12-31T00:00:00Z"
    assert codes(run(VD, spread(6, {"troops": 13001}), as_of), m) == []
    assert codes(run(VD, spread(7, {"troops": 13001}), as_of), m) == [
        ("constraint.count_exceeded", "RUS")
    ]
    assert codes(run(VD, spread(7, {"battle_tanks": 301}), as_of), m) == [
        ("constraint.count_exceeded", "RUS")
    ]
    seven = [
        *spread(6, {"troops": 13001}),
        act("x", "RUS", "2028-12-01T00:00:00Z", size={"troops": 13000}),
    ]
    assert codes(run(VD, seven, as_of), m) == []
    seven = [
        *spread(6, {"troops": 13001}),
        act("x", "RUS", "2028-12-01T00:00:00Z", size={"battle_tanks": 300}),
    ]
    assert codes(run(VD, seven, as_of), m) == []
    across = [
        *spread(6, {"troops": 13001}),
        act("x", "RUS", "2029-01-01T00:00:00Z", size={"troops": 13001}),
    ]
    assert codes(run(VD, across, "2029-12-31T00:00:00Z"), m) == []


def test_vd_three_over_25000_per_year() -> None:
    m = "constraint-over-25000-per-year"
    as_of = "2028-12-31T00:00:00Z"
    assert codes(run(VD, spread(3, {"troops": 25001}), as_of), m) == []
    assert codes(run(VD, spread(4, {"troops": 25001}), as_of), m) == [
        ("constraint.count_exceeded", "RUS")
    ]
    assert codes(run(VD, spread(4, {"battle_tanks": 401}), as_of), m) == [
        ("constraint.count_exceeded", "RUS")
    ]
    four = [
        *spread(3, {"troops": 25001}),
        act("x", "RUS", "2028-12-01T00:00:00Z", size={"troops": 25000}),
    ]
    assert codes(run(VD, four, as_of), m) == []
    four = [
        *spread(3, {"troops": 25001}),
        act("x", "RUS", "2028-12-01T00:00:00Z", size={"battle_tanks": 400}),
    ]
    assert codes(run(VD, four, as_of), m) == []


def test_vd_three_simultaneous() -> None:
    m = "constraint-simultaneous"
    as_of = "2028-12-31T00:00:00Z"
    size = {"troops": 13001}
    three = [
        act("s1", "RUS", "2028-05-01T00:00:00Z", "2028-05-10T00:00:00Z", size=size),
        act("s2", "RUS", "2028-05-02T00:00:00Z", "2028-05-12T00:00:00Z", size=size),
        act("s3", "RUS", "2028-05-03T00:00:00Z", "2028-05-12T00:00:00Z", size=size),
    ]
    assert codes(run(VD, three, as_of), m) == []
    touching = [*three, act("s4", "RUS", "2028-05-10T00:00:00Z", "2028-05-11T00:00:00Z", size=size)]
    assert codes(run(VD, touching, as_of), m) == [("constraint.simultaneous_exceeded", "RUS")]
    after = [*three, act("s4", "RUS", "2028-05-10T00:00:01Z", "2028-05-11T00:00:00Z", size=size)]
    assert codes(run(VD, after, as_of), m) == []
    small = [
        *three,
        act("s4", "RUS", "2028-05-04T00:00:00Z", size={"troops": 13000, "battle_tanks": 300}),
    ]
    assert codes(run(VD, small, as_of), m) == []


def test_vd_inspection_reply_24_hours() -> None:
    m = "inspection-quota"
    as_of = "2028-12-01T00:00:00Z"
    r0 = req("q", "UKR", "RUS", "2028-03-01T06:00:00Z", "inspection")
    assert codes(run(VD, [r0, resp("p", "RUS", "q", "2028-03-02T06:00:00Z", "accept")], as_of), m) == []
    late = resp("p", "RUS", "q", "2028-03-02T06:00:01Z", "accept")
    assert codes(run(VD, [r0, late], as_of), m) == [("reply.late", "RUS")]
    assert codes(run(VD, [r0], as_of), m) == [("reply.missing", "RUS")]


def inspections(host: str, rows: list[tuple[str, str, str]], kind: str = "inspection") -> list[dict]:
    """``rows`` of (requester, time, decision); each answered one hour later."""
    out: list[dict] = []
    for k, (frm, t, decision) in enumerate(rows):
        out += [req(f"q{k}", frm, host, t, kind), resp(f"p{k}", host, f"q{k}", shift(t, HOUR), decision)]
    return out


def test_vd_inspection_quota_three_a_year_one_per_state() -> None:
    m = "inspection-quota"
    as_of = "2029-12-01T00:00:00Z"
    accepted3 = [
        ("UKR", "2028-02-01T00:00:00Z", "accept"),
        ("POL", "2028-03-01T00:00:00Z", "accept"),
        ("EST", "2028-04-01T00:00:00Z", "accept"),
    ]
    fourth = run(VD, inspections("RUS", [*accepted3, ("LVA", "2028-05-01T00:00:00Z", "refuse")]), as_of)
    assert codes(fourth, m) == []
    third = run(
        VD, inspections("RUS", [*accepted3[:2], ("LVA", "2028-05-01T00:00:00Z", "refuse")]), as_of
    )
    assert codes(third, m) == [("quota.refusal_within_quota", "RUS")]
    same_state = run(
        VD, inspections("RUS", [accepted3[0], ("UKR", "2028-05-01T00:00:00Z", "refuse")]), as_of
    )
    assert codes(same_state, m) == []
    next_year = run(
        VD, inspections("RUS", [*accepted3, ("LVA", "2029-01-01T00:00:00Z", "refuse")]), as_of
    )
    assert codes(next_year, m) == [("quota.refusal_within_quota", "RUS")]


def test_vd_evaluation_visit_lower_bound() -> None:
    m = "evaluation-quota"
    as_of = "2028-12-01T00:00:00Z"
    first = run(VD, inspections("BLR", [("POL", "2028-02-01T00:00:00Z", "refuse")], "evaluation"), as_of)
    assert codes(first, m) == [("quota.refusal_within_quota", "BLR")]
    rows = [("POL", "2028-02-01T00:00:00Z", "accept"), ("LTU", "2028-03-01T00:00:00Z", "refuse")]
    assert codes(run(VD, inspections("BLR", rows, "evaluation"), as_of), m) == []
    assert "60 units" in (bundled(VD).measures[-1].unconfirmed or "")


# ---- India-Pakistan: nuclear installations (1988) ---------------------------------------

NI = "india-pakistan-nuclear-installations-1988"


def nuclear_list(party: str, year: int, time: str | None = None) -> dict:
    return exch(
        f"nl-{party}-{year}",
        party,
        time or f"{year}-01-01T05:30:00Z",
        "nuclear_installations_list",
        str(year),
    )


def test_nuclear_lists_full_record_is_clean() -> None:
    events = [nuclear_list(p, y) for p in ("IND", "PAK") for y in (2026, 2027, 2028)]
    r = run(NI, events, "2028-06-01T00:00:00Z")
    assert_clean(r)
    assert len([o for o in r["obligations"] if o["status"] == "met"]) == 6


def test_nuclear_lists_on_1_january() -> None:
    as_of = "2028-06-01T00:00:00Z"
    india = nuclear_list("IND", 2028)
    on_day = nuclear_list("PAK", 2028, "2028-01-01T23:59:59Z")
    assert codes(run(NI, [india, on_day], as_of)) == []
    late = nuclear_list("PAK", 2028, "2028-01-02T00:00:00Z")
    assert codes(run(NI, [india, late], as_of)) == [("exchange.late", "PAK")]
    assert codes(run(NI, [india], as_of)) == [("exchange.missing", "PAK")]
    gap = [nuclear_list(p, y) for p in ("IND", "PAK") for y in (2026, 2028)] + [
        nuclear_list("IND", 2027)
    ]
    r = run(NI, gap, as_of)
    assert codes(r) == [("exchange.missing", "PAK")]
    assert r["findings"][0]["period"] == "2027"


def test_nuclear_list_late_when_it_opens_the_record() -> None:
    r = run(NI, [nuclear_list("PAK", 2028, "2028-01-02T00:00:00Z")], "2028-06-01T00:00:00Z")
    assert ("exchange.late", "PAK") in codes(r)


# ---- India-Pakistan: military exercises (1991) -----------------------------------------

MX = "india-pakistan-military-exercises-1991"


def exercise(i: str, km: float, formation: str, start: str = "2028-11-01T00:00:00Z", **kw: Any) -> dict:
    return act(
        i,
        "IND",
        start,
        shift(start, 10 * DAY),
        formation=formation,
        location=point(IND_AT[km]),
        size={"troops": 20000},
        **kw,
    )


def test_exercises_full_record_is_clean() -> None:
    events = [
        exercise("corps", 74, "corps"),
        note("n", "IND", "2028-09-02T00:00:00Z", "exercise_notice", "corps"),  # 60 days
        exercise("div", 6, "division"),
        exercise("big", 76, "above_corps", start="2028-12-01T00:00:00Z"),
        note("n-big", "IND", "2028-09-02T00:00:00Z", "exercise_notice", "big"),  # 90 days
    ]
    assert_clean(run(MX, events, "2028-12-31T00:00:00Z"))


def test_exercises_5_km_exclusion() -> None:
    m = "exclusion-5km"
    as_of = "2028-12-31T00:00:00Z"
    assert codes(run(MX, [exercise("a", 4, "division")], as_of), m) == [
        ("constraint.zone_violation", "IND")
    ]
    assert codes(run(MX, [exercise("a", 6, "division")], as_of), m) == []
    assert codes(run(MX, [exercise("a", 4, "corps")], as_of), m) == [
        ("constraint.zone_violation", "IND")
    ]
    assert codes(run(MX, [exercise("a", 4, "brigade")], as_of), m) == []
    assert codes(run(MX, [exercise("a", 4, "division", category="air")], as_of), m) == []
    across = act(
        "a", "PAK", "2028-11-01T00:00:00Z", formation="division", location=path(PAK_AT[9], IND_AT[0.5])
    )
    assert codes(run(MX, [across], as_of), m) == [("constraint.zone_violation", "PAK")]


def test_exercises_corps_notice_within_75_km() -> None:
    m = "notice-corps-75km"
    as_of = "2028-12-31T00:00:00Z"
    start = "2028-11-01T00:00:00Z"
    sixty = shift(start, -60 * DAY)
    a = exercise("a", 74, "corps", start)
    assert codes(run(MX, [a, note("n", "IND", sixty, "exercise_notice", "a")], as_of), m) == []
    late = note("n", "IND", shift(sixty, 1), "exercise_notice", "a")
    assert codes(run(MX, [a, late], as_of), m) == [("notification.late", "IND")]
    assert codes(run(MX, [a], as_of), m) == [("notification.missing", "IND")]
    assert codes(run(MX, [exercise("a", 76, "corps", start)], as_of)) == []
    assert codes(run(MX, [exercise("a", 74, "division", start)], as_of)) == []


def test_exercises_above_corps_notice_90_days() -> None:
    m = "notice-above-corps"
    as_of = "2028-12-31T00:00:00Z"
    start = "2028-11-01T00:00:00Z"
    ninety = shift(start, -90 * DAY)
    far = exercise("a", 76, "above_corps", start)
    assert codes(run(MX, [far, note("n", "IND", ninety, "exercise_notice", "a")], as_of)) == []
    late = note("n", "IND", shift(ninety, 1), "exercise_notice", "a")
    assert codes(run(MX, [far, late], as_of)) == [("notification.late", "IND")]
    assert codes(run(MX, [far, late], as_of), m) == [("notification.late", "IND")]
    # Within 75 km both tiers apply: 70 days satisfies the corps tier, not this one.
    near = exercise("a", 74, "above_corps", start)
    seventy = note("n", "IND", shift(start, -70 * DAY), "exercise_notice", "a")
    assert codes(run(MX, [near, seventy], as_of)) == [("notification.late", "IND")]
    assert codes(run(MX, [near, seventy], as_of), m) == [("notification.late", "IND")]


# ---- India-Pakistan: airspace (1991) ----------------------------------------------------

AS = "india-pakistan-airspace-1991"


def flight(i: str, party: str, role: str, *lons: float) -> dict:
    return act(
        i,
        party,
        "2028-03-01T08:00:00Z",
        "2028-03-01T09:00:00Z",
        category="flight",
        aircraft_role=role,
        location=path(*lons),
    )


def test_airspace_full_record_is_clean() -> None:
    events = [
        flight("f1", "IND", "combat", IND_DEEP, IND_AT[11]),
        flight("f2", "PAK", "fighter", PAK_DEEP, PAK_AT[11]),
        flight("f3", "IND", "transport", IND_DEEP, IND_AT[1.5]),
        flight("f4", "PAK", "unarmed_helicopter", PAK_DEEP, PAK_AT[9]),
    ]
    assert_clean(run(AS, events, "2028-12-31T00:00:00Z"))


@pytest.mark.parametrize(
    "role", ["combat", "fighter", "bomber", "reconnaissance", "jet_trainer", "armed_helicopter"]
)
def test_airspace_combat_aircraft_10_km(role: str) -> None:
    m = "combat-aircraft-10km"
    as_of = "2028-12-31T00:00:00Z"
    assert codes(run(AS, [flight("f", "IND", role, IND_DEEP, IND_AT[9])], as_of), m) == [
        ("constraint.zone_violation", "IND")
    ]
    assert codes(run(AS, [flight("f", "IND", role, IND_DEEP, IND_AT[11])], as_of), m) == []
    assert codes(run(AS, [flight("f", "PAK", role, PAK_DEEP, PAK_AT[9])], as_of), m) == [
        ("constraint.zone_violation", "PAK")
    ]
    assert codes(run(AS, [flight("f", "PAK", role, PAK_DEEP, PAK_AT[11])], as_of), m) == []


def test_airspace_unarmed_aircraft_1_km() -> None:
    m = "unarmed-aircraft-1km"
    as_of = "2028-12-31T00:00:00Z"
    for role in ("transport", "unarmed_helicopter"):
        assert codes(run(AS, [flight("f", "IND", role, IND_DEEP, IND_AT[0.5])], as_of), m) == [
            ("constraint.zone_violation", "IND")
        ]
        assert codes(run(AS, [flight("f", "IND", role, IND_DEEP, IND_AT[1.5])], as_of)) == []
    # Crossing into the other's airspace is distance 0.
    assert codes(run(AS, [flight("f", "IND", "transport", IND_DEEP, PAK_AT[9])], as_of), m) == [
        ("constraint.zone_violation", "IND")
    ]
    # The 10 km rule is for combat aircraft only.
    assert codes(run(AS, [flight("f", "IND", "transport", IND_DEEP, IND_AT[9])], as_of)) == []


# ---- India-Pakistan: missile tests (2005) -----------------------------------------------

MT = "india-pakistan-missile-tests-2005"
W_START = "2028-03-10T00:00:00Z"
W_END = "2028-03-15T00:00:00Z"  # 5 days


def launch(
    i: str = "l",
    at: str = "2028-03-12T04:00:00Z",
    launch_km: float = 41,
    impact_km: float = 71,
    **kw: Any,
) -> dict:
    return act(
        i,
        kw.pop("party", "IND"),
        at,
        category="missile_launch",
        missile_class=kw.pop("missile_class", "ballistic"),
        launch=point(IND_AT[launch_km]),
        impact=point(IND_AT[impact_km]),
        trajectory=path(IND_AT[launch_km], IND_AT[impact_km]),  # Art. 6: from the launch site on
        **kw,
    )


def launch_note(
    time: str = "2028-03-07T00:00:00Z",
    start: str = W_START,
    end: str = W_END,
    party: str = "IND",
    impact_km: float = 71,
) -> dict:
    """The notice gives the window (Art. 2) and the planned impact area (Art. 5)."""
    planned = point(IND_AT[impact_km])
    return note(
        "n", party, time, "launch_notification", "l", window_start=start, window_end=end, impact=planned
    )


def test_missile_tests_full_record_is_clean() -> None:
    r = run(MT, [launch(), launch_note()], "2028-12-31T00:00:00Z")
    assert_clean(r)
    assert [o["status"] for o in r["obligations"]] == ["met"]


def test_missile_tests_notice_3_days_and_window_5_days() -> None:
    m = "launch-notice"
    as_of = "2028-12-31T00:00:00Z"
    late = launch_note(time="2028-03-07T00:00:01Z")
    assert codes(run(MT, [launch(), late], as_of), m) == [("notification.late", "IND")]
    # No notice: missing, and its planned impact area (Art. 5) cannot be judged.
    assert codes(run(MT, [launch()], as_of), m) == [
        ("data.unassessable", "IND"),
        ("notification.missing", "IND"),
    ]
    at_end = launch(at=W_END)
    assert codes(run(MT, [at_end, launch_note()], as_of), m) == []
    after = launch(at=shift(W_END, 1))
    assert codes(run(MT, [after, launch_note()], as_of), m) == [("launch.outside_window", "IND")]
    long = launch_note(end=shift(W_END, 1))
    assert codes(run(MT, [launch(), long], as_of), m) == [("launch.window_too_long", "IND")]
    # Cruise missiles are outside the agreement.
    cruise = launch(missile_class="cruise", launch_km=0.5, impact_km=0.5)
    assert codes(run(MT, [cruise], as_of)) == []


def provisions(report: dict) -> list[str]:
    return sorted(f["provision"] for f in report["findings"])


def test_missile_tests_launch_40_km_impact_70_km() -> None:
    as_of = "2028-12-31T00:00:00Z"
    # A launch site at 39 km (Art. 5); the trajectory starts there, so it is within 40 km too
    # (Art. 6).
    assert provisions(run(MT, [launch(launch_km=39), launch_note()], as_of)) == [
        "Article 5 (launch site)",
        "Article 6",
    ]
    assert codes(run(MT, [launch(launch_km=41), launch_note()], as_of)) == []
    # Art. 5 speaks of the PLANNED impact area, which the notice gives: planned 69 km is a
    # finding; a missile planned for 71 km that came down at 69 km is not.
    assert provisions(run(MT, [launch(), launch_note(impact_km=69)], as_of)) == [
        "Article 5 (planned impact area)"
    ]
    assert codes(run(MT, [launch(impact_km=69), launch_note()], as_of)) == []


# ---- US-USSR: ICBM/SLBM launch notification (1988) --------------------------------------

LN = "us-ussr-launch-notification-1988"


def missile(i: str, party: str, at: str, cls: str) -> dict:
    return act(i, party, at, category="missile_launch", missile_class=cls)


AREA = {"type": "Polygon", "coordinates": [[[170, 50], [172, 50], [172, 52], [170, 52], [170, 50]]]}
"""A planned impact area (or an SLBM's launch area) as a notice gives it."""


def told(i: str, party: str, time: str, launch: str, cls: str = "icbm", **kw: Any) -> dict:
    """A launch notice with the content the agreement asks of it (an SLBM's launch area)."""
    extra = {"launch": AREA} if cls == "slbm" else {}
    return note(i, party, time, "launch_notification", launch, impact=AREA, **extra, **kw)


def test_launch_notification_full_record_is_clean() -> None:
    events = [
        missile("m1", "USA", "2028-05-01T12:00:00Z", "icbm"),
        told("n1", "USA", "2028-04-30T12:00:00Z", "m1"),
        missile("m2", "RUS", "2028-06-01T12:00:00Z", "slbm"),
        told("n2", "RUS", "2028-05-30T12:00:00Z", "m2", "slbm"),
        missile("m3", "RUS", "2028-07-01T12:00:00Z", "cruise"),
    ]
    assert_clean(run(LN, events, "2028-12-31T00:00:00Z"))


@pytest.mark.parametrize("cls", ["icbm", "slbm"])
def test_launch_notification_24_hours(cls: str) -> None:
    as_of = "2028-12-31T00:00:00Z"
    m = missile("m", "RUS", "2028-05-01T12:00:00Z", cls)
    assert codes(run(LN, [m, told("n", "RUS", "2028-04-30T12:00:00Z", "m", cls)], as_of)) == []
    late = told("n", "RUS", "2028-04-30T12:00:01Z", "m", cls)
    assert codes(run(LN, [m, late], as_of)) == [("notification.late", "RUS")]
    assert codes(run(LN, [m], as_of)) == [("notification.missing", "RUS")]
    # With a declared window, 24 h before the window opens.
    windowed = told(
        "n",
        "RUS",
        "2028-04-29T00:00:00Z",
        "m",
        cls,
        window_start="2028-04-30T00:00:00Z",
        window_end="2028-05-02T00:00:00Z",
    )
    assert codes(run(LN, [m, windowed], as_of)) == []
    assert codes(run(LN, [m, dict(windowed, time="2028-04-29T00:00:01Z")], as_of)) == [
        ("notification.late", "RUS")
    ]


def test_launch_notice_gives_the_impact_area_and_an_slbms_launch_area() -> None:
    """¶3: every notice gives the planned impact area; ¶2: an SLBM's gives its launch area.
    A notice in time that lacks either is notification.incomplete under its paragraph."""
    as_of = "2028-12-31T00:00:00Z"
    for cls, lacking in (("icbm", ("impact",)), ("slbm", ("impact", "launch"))):
        m = missile("m", "RUS", "2028-05-01T12:00:00Z", cls)
        full = told("n", "RUS", "2028-04-30T00:00:00Z", "m", cls)
        assert codes(run(LN, [m, full], as_of)) == []
        for field in lacking:
            bare = {k: v for k, v in full.items() if k != field}
            got = run(LN, [m, bare], as_of)["findings"]
            assert [(f["code"], f["party"]) for f in got] == [("notification.incomplete", "RUS")]
            para = "¶3" if field == "impact" else "¶2"
            assert got[0]["provision"].startswith(f"US-USSR Launch Notification 1988, {para} ")
            # The paragraph was read: the measure's unconfirmed 24 h do not make it info.
            assert got[0]["severity"] != "info" and "unconfirmed" not in got[0]["message"], got
    # An ICBM's notice owes no launch area.
    icbm = missile("m", "USA", "2028-05-01T12:00:00Z", "icbm")
    assert codes(run(LN, [icbm, told("n", "USA", "2028-04-30T00:00:00Z", "m")], as_of)) == []


# ---- US-USSR: major strategic exercises (1989) ------------------------------------------

SE = "us-ussr-strategic-exercises-1989"


def strategic(i: str, party: str, start: str, bombers: int = 10) -> dict:
    return act(
        i,
        party,
        start,
        shift(start, 3 * DAY),
        category="strategic_exercise",
        size={"heavy_bombers": bombers},
    )


def test_strategic_exercises_full_record_is_clean() -> None:
    events = [
        strategic("x1", "USA", "2028-06-15T00:00:00Z"),
        note("n1", "USA", "2028-06-01T00:00:00Z", "prior_notification", "x1"),
        strategic("x2", "RUS", "2028-09-15T00:00:00Z"),
        note("n2", "RUS", "2028-08-01T00:00:00Z", "prior_notification", "x2"),
        strategic("x3", "RUS", "2028-10-15T00:00:00Z", bombers=0),
    ]
    assert_clean(run(SE, events, "2028-12-31T00:00:00Z"))


def test_strategic_exercises_14_days() -> None:
    # Art. I: one exercise of the calendar year is owed a notice, so the duty is judged
    # once the year is over (until then another exercise may still be notified).
    m = "exercise-notice"
    as_of = "2029-01-01T00:00:00Z"
    x = strategic("x", "USA", "2028-06-15T00:00:00Z")
    assert (
        codes(
            run(SE, [x, note("n", "USA", "2028-06-01T00:00:00Z", "prior_notification", "x")], as_of), m
        )
        == []
    )
    late = note("n", "USA", "2028-06-01T00:00:01Z", "prior_notification", "x")
    assert codes(run(SE, [x, late], as_of), m) == [("notification.late", "USA")]
    assert codes(run(SE, [x], as_of), m) == [("notification.missing", "USA")]
    assert codes(run(SE, [x], "2028-12-31T00:00:00Z"), m) == []  # pending
    assert codes(run(SE, [strategic("x", "USA", "2028-06-15T00:00:00Z", bombers=0)], as_of)) == []


def test_strategic_exercises_one_notified_a_year_not_one_held() -> None:
    # Art. I asks for notice of one exercise a calendar year; it limits neither how many are
    # held nor requires notice of the others (the earlier reading, "at most one a year",
    # found a violation the text does not contain).
    as_of = "2030-01-01T00:00:00Z"
    two = [
        strategic("a", "RUS", "2028-01-10T00:00:00Z"),
        note("n", "RUS", "2027-12-20T00:00:00Z", "prior_notification", "a"),
        strategic("b", "RUS", "2028-12-20T00:00:00Z"),
    ]
    assert codes(run(SE, two, as_of)) == []
    apart = [
        strategic("a", "RUS", "2028-12-20T00:00:00Z"),
        strategic("b", "RUS", "2029-01-01T00:00:00Z"),
    ]
    assert codes(run(SE, apart, as_of)) == [
        ("notification.missing", "RUS"),
        ("notification.missing", "RUS"),
    ]


# ---- Open Skies (1992) ------------------------------------------------------------------

OS = "open-skies-1992"
ETA = "2028-05-10T12:00:00Z"


def os_flight(i: str = "f", observer: str = "DEU", eta: str = ETA) -> dict:
    return act(i, observer, eta, shift(eta, 90 * HOUR), category="flight")


def os_request(i: str, observer: str, observed: str, time: str, eta: str = ETA) -> dict:
    return req(i, observer, observed, time, "observation_flight", eta=eta)


def test_open_skies_full_record_is_clean() -> None:
    notice_at = shift(ETA, -72 * HOUR)
    events = [
        os_flight(),
        note("fn", "DEU", notice_at, "flight_notice", "f"),
        os_request("rq", "DEU", "POL", notice_at),
        resp("ack", "POL", "rq", shift(notice_at, 23 * HOUR), "accept"),
        os_request("rq2", "CAN", "HUN", "2028-06-01T00:00:00Z"),
        resp("ack2", "HUN", "rq2", "2028-06-01T02:00:00Z", "accept"),
        incident("pr", "HUN", "2028-06-05T00:00:00Z", "flight_prohibition"),
        note("ex", "HUN", "2028-06-12T00:00:00Z", "prohibition_explanation", "pr"),
    ]
    assert_clean(run(OS, events, "2028-12-31T00:00:00Z"))


def test_open_skies_notice_72_hours() -> None:
    m = "flight-notice"
    as_of = "2028-12-31T00:00:00Z"
    on_time = note("fn", "DEU", shift(ETA, -72 * HOUR), "flight_notice", "f")
    assert codes(run(OS, [os_flight(), on_time], as_of), m) == []
    late = note("fn", "DEU", shift(ETA, -72 * HOUR + 1), "flight_notice", "f")
    assert codes(run(OS, [os_flight(), late], as_of), m) == [("notification.late", "DEU")]
    assert codes(run(OS, [os_flight()], as_of), m) == [("notification.missing", "DEU")]


def test_open_skies_acknowledgement_24_hours() -> None:
    m = "flight-acknowledgement"
    as_of = "2028-12-31T00:00:00Z"
    rq = os_request("rq", "DEU", "POL", "2028-05-01T09:00:00Z")
    assert codes(run(OS, [rq, resp("a", "POL", "rq", "2028-05-02T09:00:00Z", "accept")], as_of)) == []
    late = resp("a", "POL", "rq", "2028-05-02T09:00:01Z", "accept")
    assert codes(run(OS, [rq, late], as_of), m) == [("reply.late", "POL")]
    assert codes(run(OS, [rq], as_of), m) == [("reply.missing", "POL")]


def test_open_skies_quota_lower_bound() -> None:
    m = "flight-quota"
    as_of = "2028-12-31T00:00:00Z"

    def rows(decisions: list[tuple[str, str]]) -> list[dict]:
        out: list[dict] = []
        for k, (frm, d) in enumerate(decisions):
            t = f"2028-{k + 2:02d}-01T00:00:00Z"
            # Each flight its own mission period (one flight at a time over a party).
            eta = shift(t, 96 * HOUR)
            out += [
                os_request(f"q{k}", frm, "PRT", t, eta),
                resp(f"p{k}", "PRT", f"q{k}", shift(t, HOUR), d),
            ]
        return out

    assert codes(run(OS, rows([("DEU", "refuse")]), as_of)) == [("quota.refusal_within_quota", "PRT")]
    second = rows([("DEU", "accept"), ("FRA", "refuse")])
    assert codes(run(OS, second, as_of), m) == [("quota.refusal_within_quota", "PRT")]
    third = rows([("DEU", "accept"), ("FRA", "accept"), ("GBR", "refuse")])
    assert codes(run(OS, third, as_of)) == []


def test_open_skies_one_flight_at_a_time() -> None:
    as_of = "2028-12-31T00:00:00Z"
    t = "2028-03-01T00:00:00Z"
    first = [
        os_request("q0", "DEU", "POL", t, shift(t, 96 * HOUR)),
        resp("p0", "POL", "q0", shift(t, HOUR), "accept"),
    ]
    # A second flight whose mission period overlaps the first may be refused ...
    overlapping = os_request("q1", "FRA", "POL", shift(t, 2 * HOUR), shift(t, 100 * HOUR))
    refused = resp("p1", "POL", "q1", shift(t, 3 * HOUR), "refuse")
    assert codes(run(OS, [*first, overlapping, refused], as_of), "flight-quota") == []
    # ... one that starts after the first has ended may not.
    later = os_request("q1", "FRA", "POL", shift(t, 2 * HOUR), shift(t, 200 * HOUR))
    assert codes(run(OS, [*first, later, refused], as_of), "flight-quota") == [
        ("quota.refusal_within_quota", "POL")
    ]


def test_open_skies_prohibition_explained_within_7_days() -> None:
    m = "prohibition-explanation"
    as_of = "2028-12-31T00:00:00Z"
    pr = incident("pr", "HUN", "2028-06-05T10:00:00Z", "flight_prohibition")
    ok = note("ex", "HUN", "2028-06-12T10:00:00Z", "prohibition_explanation", "pr")
    assert codes(run(OS, [pr, ok], as_of)) == []
    late = note("ex", "HUN", "2028-06-12T10:00:01Z", "prohibition_explanation", "pr")
    assert codes(run(OS, [pr, late], as_of), m) == [("notification.late", "HUN")]
    assert codes(run(OS, [pr], as_of), m) == [("notification.missing", "HUN")]


# ---- Hague Code of Conduct (2002) -------------------------------------------------------

HC = "hague-code-of-conduct-2002"


def declarations(period: int, time: str, skip: str | None = None) -> list[dict]:
    return [
        exch(f"d-{p}-{period}", p, time, "hcoc_annual_declaration", str(period))
        for p in bundled(HC).parties
        if p != skip
    ]


def test_hcoc_full_record_is_clean() -> None:
    events = [
        *declarations(2027, "2028-07-01T00:00:00Z"),
        act("l", "IND", "2028-05-20T03:00:00Z", category="missile_launch", missile_class="ballistic"),
        note("n", "IND", "2028-05-19T00:00:00Z", "launch_notification", "l"),
        act("s", "JPN", "2028-06-20T03:00:00Z", category="missile_launch", missile_class="space_launch"),
        note(
            "ns",
            "JPN",
            "2028-06-01T00:00:00Z",
            "launch_notification",
            "s",
            window_start="2028-06-19T00:00:00Z",
            window_end="2028-06-25T00:00:00Z",
        ),
    ]
    assert_clean(run(HC, events, "2028-09-01T00:00:00Z"))


def test_hcoc_annual_declaration_31_july() -> None:
    m = "annual-declaration"
    as_of = "2028-09-01T00:00:00Z"
    rest = declarations(2027, "2028-07-01T00:00:00Z", skip="RUS")
    on_day = exch("d", "RUS", "2028-07-31T23:59:59Z", "hcoc_annual_declaration", "2027")
    assert codes(run(HC, [*rest, on_day], as_of), m) == []
    late = dict(on_day, time="2028-08-01T00:00:00Z")
    assert codes(run(HC, [*rest, late], as_of), m) == [("exchange.late", "RUS")]
    assert codes(run(HC, rest, as_of), m) == [("exchange.missing", "RUS")]


@pytest.mark.parametrize("cls", ["ballistic", "icbm", "slbm", "space_launch"])
def test_hcoc_pre_launch_notification(cls: str) -> None:
    as_of = "2028-12-31T00:00:00Z"
    t = "2028-05-20T03:00:00Z"
    m = "pre-launch-notification"
    launch_ev = act("l", "USA", t, category="missile_launch", missile_class=cls)
    assert codes(run(HC, [launch_ev, note("n", "USA", t, "launch_notification", "l")], as_of), m) == []
    after = note("n", "USA", shift(t, 1), "launch_notification", "l")
    assert codes(run(HC, [launch_ev, after], as_of), m) == [("notification.late", "USA")]
    assert codes(run(HC, [launch_ev], as_of), m) == [("notification.missing", "USA")]
    cruise = act("l", "USA", t, category="missile_launch", missile_class="cruise")
    assert codes(run(HC, [cruise], as_of), m) == []


# ---- BWC CBMs ---------------------------------------------------------------------------

BW = "bwc-cbm"
FORMS = ["A1", "A2", "B", "C", "E", "F", "G"]


def bwc_returns(time: str, skip: str | None = None) -> list[dict]:
    return [
        exch(f"b-{p}", p, time, "bwc_cbm", "2027", parts=FORMS) for p in bundled(BW).parties if p != skip
    ]


def test_bwc_full_record_is_clean() -> None:
    assert_clean(run(BW, bwc_returns("2028-04-10T00:00:00Z"), "2028-05-01T00:00:00Z"))


def test_bwc_due_15_april_of_the_following_year() -> None:
    m = "annual-cbm"
    as_of = "2028-05-01T00:00:00Z"
    rest = bwc_returns("2028-04-10T00:00:00Z", skip="PAK")
    on_day = exch("b", "PAK", "2028-04-15T23:59:59Z", "bwc_cbm", "2027", parts=FORMS)
    assert codes(run(BW, [*rest, on_day], as_of), m) == []
    late = dict(on_day, time="2028-04-16T00:00:00Z")
    assert codes(run(BW, [*rest, late], as_of), m) == [("exchange.late", "PAK")]
    assert codes(run(BW, rest, as_of), m) == [("exchange.missing", "PAK")]


def test_bwc_all_forms_present() -> None:
    as_of = "2028-05-01T00:00:00Z"
    rest = bwc_returns("2028-04-10T00:00:00Z", skip="PAK")
    for missing in FORMS:
        parts = [f for f in FORMS if f != missing]
        r = run(
            BW, [*rest, exch("b", "PAK", "2028-04-10T00:00:00Z", "bwc_cbm", "2027", parts=parts)], as_of
        )
        assert codes(r) == [("exchange.incomplete", "PAK")]
        assert missing in r["findings"][0]["message"]
    # Form D was deleted in 2011: not required, harmless if sent.
    with_d = exch("b", "PAK", "2028-04-10T00:00:00Z", "bwc_cbm", "2027", parts=[*FORMS, "D"])
    assert codes(run(BW, [*rest, with_d], as_of)) == []


# ---- OSCE ICT CBMs (2016) ---------------------------------------------------------------

ICT = "osce-ict-cbm-2016"


def test_ict_full_record_is_clean() -> None:
    events = [
        req("c1", "OSCE", "AUT", "2028-03-01T09:00:00Z", "communication_check"),
        resp("a1", "AUT", "c1", "2028-03-01T11:00:00Z"),
        req("c2", "OSCE", "KAZ", "2028-03-01T09:00:00Z", "communication_check"),
        resp("a2", "KAZ", "c2", "2028-03-02T09:00:00Z"),
    ]
    assert_clean(run(ICT, events, "2028-12-31T00:00:00Z"))


def test_ict_communication_check_window() -> None:
    as_of = "2028-12-31T00:00:00Z"
    c = req("c", "OSCE", "AUT", "2028-03-01T09:00:00Z", "communication_check")
    assert codes(run(ICT, [c, resp("a", "AUT", "c", "2028-03-02T09:00:00Z")], as_of)) == []
    # No Decision sets the window: cbmnet's 24 h convention gives info findings only.
    late = resp("a", "AUT", "c", "2028-03-02T09:00:01Z")
    assert codes(run(ICT, [c, late], as_of), "communication-check") == [("check.missed", "AUT")]
    assert codes(run(ICT, [c], as_of), "communication-check") == [("check.missed", "AUT")]
    other = resp("a", "DEU", "c", "2028-03-01T10:00:00Z")
    assert codes(run(ICT, [c, other], as_of), "communication-check") == [("check.missed", "AUT")]
    found = run(ICT, [c], as_of)["findings"]
    assert {f["severity"] for f in found} == {"info"} and "convention" in found[0]["message"]
    assert bundled(ICT).measures[0].unconfirmed


# ---- WTO TBT ----------------------------------------------------------------------------

WTO = "wto-tbt"
COMMENT_DEADLINE = "2028-06-30T00:00:00Z"
CIRCULATED_60D = "2028-05-01T00:00:00Z"


def draft(i: str = "d", alert: bool = False) -> dict:
    # The event format has no regulatory category; `land` stands in (see wto-tbt.yaml).
    return act(i, "CHN", COMMENT_DEADLINE, alert=alert)


def test_wto_full_record_is_clean() -> None:
    events = [
        draft(),
        note("n", "CHN", CIRCULATED_60D, "regulation_notice", "d"),
        req("doc", "USA", "CHN", "2028-05-03T00:00:00Z", "document"),
        resp("doc-a", "CHN", "doc", "2028-05-08T00:00:00Z"),
    ]
    assert_clean(run(WTO, events, "2028-12-31T00:00:00Z"))


def test_wto_comment_period_60_days() -> None:
    m = "comment-period"
    as_of = "2028-12-31T00:00:00Z"
    assert (
        codes(run(WTO, [draft(), note("n", "CHN", CIRCULATED_60D, "regulation_notice", "d")], as_of))
        == []
    )
    short = note("n", "CHN", shift(CIRCULATED_60D, 1), "regulation_notice", "d")
    assert codes(run(WTO, [draft(), short], as_of), m) == [("notification.late", "CHN")]
    assert codes(run(WTO, [draft()], as_of), m) == [("notification.missing", "CHN")]
    # Emergency regulations (Art. 2.10.1, "immediately" upon adoption) are incidents, not
    # drafts: see tests/test_quotas_and_exchanges.py. The old reading here (a notice one
    # second after adoption is notification.late) was a false accusation.


def test_wto_document_requests() -> None:
    m = "document-requests"
    as_of = "2028-12-31T00:00:00Z"
    r0 = req("doc", "USA", "CHN", "2028-05-03T00:00:00Z", "document")
    assert codes(run(WTO, [r0, resp("a", "CHN", "doc", "2028-05-10T00:00:00Z")], as_of)) == []
    late = resp("a", "CHN", "doc", "2028-05-10T00:00:01Z")
    assert codes(run(WTO, [r0, late], as_of), m) == [("reply.late", "CHN")]
    assert codes(run(WTO, [r0], as_of), m) == [("reply.missing", "CHN")]


# ---- citations: the instrument's own reference, never the project's brief ---------------

# Every bundled file, a new one included as soon as it lands: its provisions, sources and
# comments cite the instrument's text (issue 13), never the project's brief.
CITES_INSTRUMENT = bundled_ids()
# The brief's source tags ("S23"), the word "brief", its path ("shared/brief/…"), its rule
# numbers ("§9 rule 14") and its confidence tags ("C-old", "tag T", "(U)"): none of them
# means anything to a reader of the dashboard.
BRIEF_CITATION = (
    r"\bS\d+\b|(?i:\bbrief\b)|shared/|§\s*9\b|(?i:\brules? \d+\b)"
    r"|\bC-old\b|\btags? [CTU]\b|(?<![\w)])\([CTU]\)|, U\)"
)


@pytest.mark.parametrize("aid", CITES_INSTRUMENT)
def test_bundled_file_cites_the_instrument_not_the_brief(aid: str) -> None:
    import re
    from importlib import resources

    text = (resources.files("cbmnet.agreements") / "bundled" / f"{aid}.yaml").read_text(encoding="utf-8")
    hits = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if re.search(BRIEF_CITATION, line)
    ]
    assert hits == [], hits
    a = bundled(aid)
    for s in [a.source, *(m.provision for m in a.measures), *(m.unconfirmed or "" for m in a.measures)]:
        assert not re.search(BRIEF_CITATION, s), (aid, s)

    # Nested citations too (a measure's content items, distances, not-counted outcomes).
    def cited(x: Any) -> list[str]:
        if isinstance(x, dict):
            own = [v for k, v in x.items() if k in ("provision", "unconfirmed") and isinstance(v, str)]
            return own + [s for v in x.values() for s in cited(v)]
        if isinstance(x, list):
            return [s for v in x for s in cited(v)]
        return []

    for s in cited(a.model_dump()):
        assert not re.search(BRIEF_CITATION, s), (aid, s)
