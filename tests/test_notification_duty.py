"""Who owes a prior notification, for which activities, and from when its lead runs.

Issue 13, items 1 and 2, through the pure engine on the bundled agreements:
- VD11 ¶39: the State on whose territory the activity takes place (`host`) notifies it,
  even when only visiting forces act; ¶40.1: forces of several States under one command
  count together against the thresholds (`forces`).
- US-USSR 1989 Art. I: one major strategic forces exercise with heavy bombers a calendar
  year is notified, the Party choosing which; Art. II.2: the 14 days run to 00:00 UTC of
  the date the exercise commences.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cbmnet.agreements.loader import bundled
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError

VD = "vienna-document-2011"
SE = "us-ussr-strategic-exercises-1989"
VD_LAND = "notification-land"
NOTICES = {"notification-land", "notification-amphibious-airborne"}


def activity(i: str, party: str, start: str, end: str | None = None, **kw: Any) -> dict:
    return {
        "id": i,
        "type": "activity",
        "party": party,
        "start": start,
        "end": end or start,
        "category": kw.pop("category", "land"),
        **kw,
    }


def notice(i: str, party: str, time: str, act: str) -> dict:
    return {
        "id": i,
        "type": "notification",
        "party": party,
        "time": time,
        "form": "prior_notification",
        "activity": act,
    }


def run(agreement_id: str, events: list[dict], as_of: str) -> dict:
    return evaluate(bundled(agreement_id), parse_events(events), parse_time(as_of, "as_of")).to_json()


def found(report: dict, measures: set[str] | str) -> list[tuple[str, str]]:
    wanted = {measures} if isinstance(measures, str) else measures
    return sorted((f["code"], f["party"]) for f in report["findings"] if f["measure"] in wanted)


def owed(report: dict, measure: str) -> dict[str, tuple[str, str | None]]:
    return {
        o["id"]: (o["status"], o["met_by"])
        for o in report["obligations"]
        if o["id"].startswith(f"{measure}:")
    }


# ---- VD11 ¶39: the host notifies ----------------------------------------------------------

START = "2028-06-01T00:00:00Z"
ON_TIME = "2028-04-20T00:00:00Z"  # 42 days before
AS_OF = "2028-12-01T00:00:00Z"


def hosted(**kw: Any) -> dict:
    """Russian forces exercising in Belarus, above the 9,000-troop threshold."""
    return activity("zapad", "RUS", START, "2028-06-10T00:00:00Z", host="BLR", **kw)


def test_vd_hosted_activity_notified_by_the_host_is_met() -> None:
    r = run(VD, [hosted(size={"troops": 9500}), notice("n", "BLR", ON_TIME, "zapad")], AS_OF)
    assert found(r, NOTICES) == []
    assert owed(r, VD_LAND) == {"notification-land:BLR:zapad": ("met", "n")}


def test_vd_hosted_activity_not_notified_is_held_against_the_host_only() -> None:
    r = run(VD, [hosted(size={"troops": 9500})], AS_OF)
    assert found(r, NOTICES) == [("notification.missing", "BLR")]
    assert not [f for f in r["findings"] if f["measure"] in NOTICES and f["party"] == "RUS"]


def test_vd_visiting_state_notice_does_not_meet_the_host_duty() -> None:
    # ¶39: the notice is the host's to give; the visiting State's own notice is not it.
    r = run(VD, [hosted(size={"troops": 9500}), notice("n", "RUS", ON_TIME, "zapad")], AS_OF)
    assert found(r, VD_LAND) == [("notification.missing", "BLR")]


def test_vd_host_late_notice_is_late_against_the_host() -> None:
    late = notice("n", "BLR", "2028-04-20T00:00:01Z", "zapad")
    r = run(VD, [hosted(size={"troops": 9500}), late], AS_OF)
    assert found(r, VD_LAND) == [("notification.late", "BLR")]


def test_vd_without_host_the_party_notifies() -> None:
    home = activity("a", "RUS", START, size={"troops": 9500})
    assert found(run(VD, [home], AS_OF), VD_LAND) == [("notification.missing", "RUS")]
    assert found(run(VD, [home, notice("n", "RUS", ON_TIME, "a")], AS_OF), VD_LAND) == []


def test_vd_host_duty_for_landings_too() -> None:
    drop = activity("d", "USA", START, category="parachute_assault", host="POL", size={"troops": 3000})
    r = run(VD, [drop], AS_OF)
    assert found(r, "notification-amphibious-airborne") == [("notification.missing", "POL")]


# ---- VD11 ¶40.1: forces under one command count together ----------------------------------


def multinational(*forces: tuple[str, int | None], **kw: Any) -> dict:
    return activity(
        "m",
        "DEU",
        START,
        forces=[{"party": p} if n is None else {"party": p, "size": {"troops": n}} for p, n in forces],
        **kw,
    )


def test_vd_forces_summed_over_the_threshold_owe_a_notification() -> None:
    # 5,000 + 4,500 troops: neither alone reaches 9,000, together they do.
    both = multinational(("DEU", 5000), ("NLD", 4500))
    assert found(run(VD, [both], AS_OF), VD_LAND) == [("notification.missing", "DEU")]
    assert found(run(VD, [both, notice("n", "DEU", ON_TIME, "m")], AS_OF), VD_LAND) == []
    # Hosted by Poland, the sum is owed by Poland.
    in_pol = multinational(("DEU", 5000), ("NLD", 4500), host="POL")
    assert found(run(VD, [in_pol], AS_OF), VD_LAND) == [("notification.missing", "POL")]


def test_vd_forces_summed_under_the_threshold_owe_nothing() -> None:
    assert found(run(VD, [multinational(("DEU", 5000), ("NLD", 3999))], AS_OF), VD_LAND) == []


def test_vd_activity_size_of_its_own_wins_over_its_forces() -> None:
    own = multinational(("DEU", 5000), ("NLD", 4500), size={"troops": 8000})
    assert found(run(VD, [own], AS_OF), VD_LAND) == []


def test_vd_force_without_size_is_unassessable_not_silent() -> None:
    r = run(VD, [multinational(("DEU", 5000), ("NLD", None))], AS_OF)
    assert found(r, VD_LAND) == [("data.unassessable", "DEU")]
    (f,) = [f for f in r["findings"] if f["measure"] == VD_LAND]
    assert "forces[1].size" in f["message"] and f["severity"] == "info"
    # What is known already reaches the threshold: owed, judged as usual.
    over = multinational(("DEU", 9000), ("NLD", None))
    assert found(run(VD, [over], AS_OF), VD_LAND) == [("notification.missing", "DEU")]


@pytest.mark.parametrize(
    "forces,field",
    [
        ([], "forces"),
        ([{"size": {"troops": 1}}], "forces[0].party"),
        ([{"party": "DEU", "size": {"troops": -1}}], "forces[0].size.troops"),
        ([{"party": "DEU", "size": {"horses": 1}}], "forces[0].size.horses"),
    ],
)
def test_forces_are_validated(forces: list[dict], field: str) -> None:
    with pytest.raises(FormatError, match=re.escape(f"field '{field}'")):
        parse_events([activity("a", "DEU", START, forces=forces)])


# ---- US-USSR 1989: one exercise a year, 14 days before the UTC date ------------------------


def exercise(i: str, party: str, start: str, bombers: int = 10) -> dict:
    return activity(i, party, start, category="strategic_exercise", size={"heavy_bombers": bombers})


AFTER_2028 = "2029-01-01T00:00:00Z"


def test_se_14_days_run_to_the_utc_date_of_commencement() -> None:
    x = exercise("x", "USA", "2028-06-20T23:00:00Z")
    # 14 days before the start instant (6 June 23:00) but not before 00:00 UTC of 20 June
    # less 14 days (6 June 00:00): late.
    late = notice("n", "USA", "2028-06-06T20:00:00Z", "x")
    assert found(run(SE, [x, late], AFTER_2028), "exercise-notice") == [("notification.late", "USA")]
    on_time = notice("n", "USA", "2028-06-06T00:00:00Z", "x")
    assert found(run(SE, [x, on_time], AFTER_2028), "exercise-notice") == []
    just_late = notice("n", "USA", "2028-06-06T00:00:00.001Z", "x")
    r = run(SE, [x, just_late], AFTER_2028)
    assert found(r, "exercise-notice") == [("notification.late", "USA")]


def test_se_second_exercise_of_the_year_is_no_violation() -> None:
    a, b = exercise("a", "RUS", "2028-03-01T00:00:00Z"), exercise("b", "RUS", "2028-09-01T00:00:00Z")
    r = run(SE, [a, b, notice("n", "RUS", "2028-02-01T00:00:00Z", "a")], AFTER_2028)
    assert r["findings"] == []
    assert owed(r, "exercise-notice") == {"exercise-notice:RUS:2028": ("met", "n")}


def test_se_the_party_chooses_which_exercise_to_notify() -> None:
    a, b = exercise("a", "RUS", "2028-03-01T00:00:00Z"), exercise("b", "RUS", "2028-09-01T00:00:00Z")
    r = run(SE, [a, b, notice("n", "RUS", "2028-08-01T00:00:00Z", "b")], AFTER_2028)
    assert r["findings"] == []


def test_se_missed_only_if_no_exercise_of_the_year_was_notified() -> None:
    a, b = exercise("a", "RUS", "2028-03-01T00:00:00Z"), exercise("b", "RUS", "2028-09-01T00:00:00Z")
    # During the year another exercise may still be notified: pending, no finding.
    during = run(SE, [a, b], "2028-10-01T00:00:00Z")
    assert during["findings"] == []
    assert owed(during, "exercise-notice") == {"exercise-notice:RUS:2028": ("pending", None)}
    # Once the year is over: one duty missed, not one per exercise.
    after = run(SE, [a, b], AFTER_2028)
    assert found(after, "exercise-notice") == [("notification.missing", "RUS")]
    (f,) = after["findings"]
    assert f["period"] == "2028" and set(f["subjects"]) == {"a", "b"}


def test_se_late_notice_does_not_hide_an_on_time_one() -> None:
    a, b = exercise("a", "USA", "2028-03-01T00:00:00Z"), exercise("b", "USA", "2028-09-01T00:00:00Z")
    events = [a, b, notice("na", "USA", "2028-02-28T00:00:00Z", "a")]
    assert found(run(SE, events, AFTER_2028), "exercise-notice") == [("notification.late", "USA")]
    events.append(notice("nb", "USA", "2028-08-01T00:00:00Z", "b"))
    assert found(run(SE, events, AFTER_2028), "exercise-notice") == []


def test_se_each_year_and_each_party_owe_their_own() -> None:
    events = [
        exercise("a", "RUS", "2028-03-01T00:00:00Z"),
        notice("na", "RUS", "2028-02-01T00:00:00Z", "a"),
        exercise("b", "RUS", "2029-03-01T00:00:00Z"),
        exercise("c", "USA", "2029-03-01T00:00:00Z"),
        notice("nc", "USA", "2029-02-01T00:00:00Z", "c"),
        exercise("d", "USA", "2029-05-01T00:00:00Z", bombers=0),  # no heavy bombers: not one
    ]
    r = run(SE, events, "2030-01-01T00:00:00Z")
    assert found(r, "exercise-notice") == [("notification.missing", "RUS")]
    assert owed(r, "exercise-notice") == {
        "exercise-notice:RUS:2028": ("met", "na"),
        "exercise-notice:RUS:2029": ("missed", None),
        "exercise-notice:USA:2029": ("met", "nc"),
    }


def test_se_has_no_limit_on_the_number_of_exercises() -> None:
    assert [m.rule for m in bundled(SE).measures] == ["prior_notification"]
    provisions = {m.provision for m in bundled(SE).measures}
    assert all(p.startswith("US-USSR 1989 Art.") for p in provisions)
