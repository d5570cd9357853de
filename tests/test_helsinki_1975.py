"""Helsinki Final Act 1975, Document on CBMs, I.: prior notification of major manoeuvres.

Through the pure engine. The measure is unconfirmed (the final text of section I was not
read; see the file's header), so every finding it gives is severity info, never a violation;
the voluntary measures (observers, smaller manoeuvres, movements) are recorded, never judged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cbmnet.agreements.loader import bundled, bundled_ids
from cbmnet.compliance.events import parse_events
from tests.test_bundled_agreements import DAY, act, codes, note, run, shift

HFA = "helsinki-final-act-1975"
M = "major-manoeuvres-notice"
START = "1977-09-20T06:00:00Z"
AS_OF = "1978-01-01T00:00:00Z"

# The 35 States whose High Representatives concluded the Conference on 1 August 1975 (the
# Final Act's opening), as their ISO 3166-1 alpha-3 codes stood then (Romania: ROU).
# fmt: off
HELSINKI_35 = [
    "AUT", "BEL", "BGR", "CAN", "CYP", "CSK", "DNK", "FIN", "FRA", "DDR", "DEU", "GRC", "VAT",
    "HUN", "ISL", "IRL", "ITA", "LIE", "LUX", "MLT", "MCO", "NLD", "NOR", "POL", "PRT", "ROU",
    "SMR", "ESP", "SWE", "CHE", "TUR", "SUN", "GBR", "USA", "YUG",
]
# fmt: on


def manoeuvre(i: str, party: str, troops: int, **kw: object) -> dict:
    return act(i, party, START, shift(START, 5 * DAY), size={"troops": troops}, **kw)


def notice(i: str, party: str, activity: str, days_before: int, seconds: int = 0) -> dict:
    return note(i, party, shift(START, -days_before * DAY + seconds), "prior_notification", activity)


def findings(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["measure"] == M]


# ---- loading ----------------------------------------------------------------------------


def test_file_loads_with_the_35_participating_states() -> None:
    assert HFA in bundled_ids()
    a = bundled(HFA)
    assert a.id == HFA
    assert sorted(a.parties) == sorted(HELSINKI_35)
    assert len(a.parties) == 35
    for p in a.parties:
        assert len(p) == 3 and p.isupper() and p.isalpha(), p
    assert {"SUN", "DDR", "CSK", "YUG", "DEU", "VAT"} <= set(a.parties)
    (m,) = a.measures
    assert m.id == M and m.rule == "prior_notification"
    assert m.provision.startswith("Helsinki Final Act 1975, Document on CBMs, I.")
    assert m.unconfirmed  # the final text of section I was not read


def test_events_name_the_historical_codes() -> None:
    events = [
        manoeuvre("sun-1", "SUN", 26_000),
        notice("n-sun", "SUN", "sun-1", 21),
        manoeuvre("ddr-1", "DDR", 26_000),
        manoeuvre("csk-1", "CSK", 100),
        manoeuvre("yug-1", "YUG", 100),
    ]
    parsed = parse_events(events)
    assert [e.party for e in parsed] == ["SUN", "SUN", "DDR", "CSK", "YUG"]


# ---- the commitment: > 25,000 troops, 21 days ahead ---------------------------------------


def test_notified_21_days_ahead_is_met() -> None:
    r = run(HFA, [manoeuvre("m1", "SUN", 26_000), notice("n1", "SUN", "m1", 21)], AS_OF)
    assert codes(r) == []
    (ob,) = [o for o in r["obligations"] if o["party"] == "SUN"]
    assert ob["status"] == "met" and ob["met_by"] == "n1"


def test_one_second_after_21_days_is_late_but_only_info() -> None:
    r = run(HFA, [manoeuvre("m1", "POL", 26_000), notice("n1", "POL", "m1", 21, seconds=1)], AS_OF)
    assert codes(r) == [("notification.late", "POL")]


def test_20_days_ahead_is_late_never_a_violation() -> None:
    r = run(HFA, [manoeuvre("m1", "USA", 26_000), notice("n1", "USA", "m1", 20)], AS_OF)
    assert codes(r) == [("notification.late", "USA")]
    (f,) = findings(r)
    # A manoeuvre arranged at shorter notice cannot be told from a late notice, and the
    # final text was not read: information, never an accusation.
    assert f["severity"] == "info"
    assert "unconfirmed" in f["message"]


def test_not_notified_is_missing_as_info() -> None:
    r = run(HFA, [manoeuvre("m1", "DEU", 26_000)], AS_OF)
    assert codes(r) == [("notification.missing", "DEU")]
    assert all(f["severity"] == "info" for f in findings(r))


def test_alert_manoeuvre_is_owed_its_notice_by_its_start() -> None:
    events = [manoeuvre("m1", "TUR", 30_000, alert=True), notice("n1", "TUR", "m1", 1)]
    assert codes(run(HFA, events, AS_OF)) == []
    late = [manoeuvre("m1", "TUR", 30_000, alert=True), notice("n1", "TUR", "m1", 0, seconds=1)]
    assert codes(run(HFA, late, AS_OF)) == [("notification.late", "TUR")]


def test_25000_troops_or_fewer_owe_nothing() -> None:
    for troops in (24_000, 25_000):
        r = run(HFA, [manoeuvre("m1", "SUN", troops)], AS_OF)
        assert codes(r) == [] and r["obligations"] == [], troops
    assert codes(run(HFA, [manoeuvre("m1", "SUN", 25_001)], AS_OF)) == [("notification.missing", "SUN")]


def test_amphibious_and_airborne_troops_count_air_or_naval_alone_do_not() -> None:
    amph = manoeuvre("m1", "GBR", 26_000, category="amphibious_landing")
    para = manoeuvre("m2", "FRA", 26_000, category="parachute_assault")
    assert codes(run(HFA, [amph, para], AS_OF)) == [
        ("notification.missing", "FRA"),
        ("notification.missing", "GBR"),
    ]
    naval = manoeuvre("m3", "USA", 26_000, category="naval")
    assert codes(run(HFA, [naval], AS_OF)) == []


# ---- voluntary measures: recorded, never judged ------------------------------------------


def test_observer_invitation_never_produces_a_finding() -> None:
    events = [
        manoeuvre("m1", "SUN", 26_000),
        notice("n1", "SUN", "m1", 21),
        # invited late, to a small manoeuvre, or not at all: all the same, no finding
        note("inv1", "SUN", shift(START, -1 * DAY), "observation_invitation", "m1", to=["USA"]),
        manoeuvre("m2", "DDR", 10_000),
        note("inv2", "DDR", shift(START, 3 * DAY), "observation_invitation", "m2"),
        manoeuvre("m3", "CSK", 26_000),
        notice("n3", "CSK", "m3", 30),
        {
            "id": "r1",
            "type": "response",
            "party": "USA",
            "request": "inv1",
            "time": shift(START, -DAY + 3600),
            "decision": "refuse",
        },
    ]
    r = run(HFA, events, AS_OF)
    assert codes(r) == []
    assert all(o["provision"].startswith("Helsinki Final Act 1975") for o in r["obligations"])
    assert {o["kind"] for o in r["obligations"]} == {"prior_notification"}


def test_smaller_manoeuvre_notified_voluntarily_owes_nothing() -> None:
    events = [manoeuvre("m1", "AUT", 5_000), notice("n1", "AUT", "m1", 2)]
    r = run(HFA, events, AS_OF)
    assert codes(r) == [] and r["obligations"] == []


# ---- as a user runs it -------------------------------------------------------------------


def test_cbmnet_check_runs_on_a_small_events_file(tmp_path: Path) -> None:
    events = [
        manoeuvre("m1", "SUN", 26_000),
        notice("n1", "SUN", "m1", 21),
        manoeuvre("m2", "DDR", 40_000),
        notice("n2", "DDR", "m2", 20),
    ]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    cmd = [sys.executable, "-m", "cbmnet.cli.main", "check", "--agreement", HFA]
    p = subprocess.run(
        [*cmd, "--events", str(f), "--as-of", AS_OF],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1, (p.stdout, p.stderr)
    report = json.loads(p.stdout)
    assert [(x["code"], x["party"], x["severity"]) for x in report["findings"]] == [
        ("notification.late", "DDR", "info")
    ]
