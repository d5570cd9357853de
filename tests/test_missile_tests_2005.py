"""India-Pakistan pre-notification of ballistic missile flight tests (2005), as its text says.

Art. 1: "any land or sea launched, surface-to-surface ballistic missiles", whatever the
label (an ``icbm`` or ``slbm`` is one). Art. 2: notice 3 days before a 5-day window. Art. 5:
launch site not within 40 km, PLANNED impact area (the notice's) not within 70 km of the
IB/LoC. Art. 6: the trajectory never crosses it and keeps at least 40 km from it. A notice
without the planned impact area is ``notification.incomplete``; what cannot be judged is
``data.unassessable``, never silence. Distances are measured against the Natural Earth
IND-PAK line, mostly along the parallel 27° N; ``test_reference_points`` re-measures them.
"""

from __future__ import annotations

from typing import Any

import pytest

from cbmnet.agreements.loader import bundled, resolve_zones
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.report import SEVERITY
from cbmnet.errors import FormatError

MT = "india-pakistan-missile-tests-2005"
LAT = 27.0
# Longitudes on 27° N at a distance (km) from the IND-PAK line, inside India.
IND_AT = {10: 69.6008, 30: 69.8071, 41: 69.9563, 50: 70.2787, 100: 71.8354}
PAK_DEEP = 68.5  # ~98 km inside Pakistan
SEA_10 = (68.14, 23.76)  # Arabian Sea, ~10 km from the line's end at Sir Creek
AS_OF = "2028-12-31T00:00:00Z"
AT = "2028-03-12T04:00:00Z"


def point(lon: float, lat: float = LAT) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def line(*coords: tuple[float, float]) -> dict:
    return {"type": "LineString", "coordinates": [list(c) for c in coords]}


CLEAN_PATH = line((IND_AT[41], LAT), (IND_AT[100], LAT))  # 41 km at its nearest
# Out from 100 km, nearest the line at a turning point, back to 100 km.
PATH_30 = line((IND_AT[100], 27.2), (IND_AT[30], LAT), (IND_AT[100], 26.8))
PATH_50 = line((IND_AT[100], 27.2), (IND_AT[50], LAT), (IND_AT[100], 26.8))
CROSSING = line((IND_AT[100], LAT), (PAK_DEEP, LAT))


def launch(cls: str = "ballistic", **kw: Any) -> dict:
    return {
        "id": "l",
        "type": "activity",
        "party": "IND",
        "start": AT,
        "end": AT,
        "category": "missile_launch",
        "missile_class": cls,
        "launch": kw.pop("launch", point(IND_AT[41])),
        "impact": kw.pop("impact", point(IND_AT[100])),
        **kw,
    }


def notice(**kw: Any) -> dict:
    return {
        "id": "n",
        "type": "notification",
        "party": "IND",
        "time": "2028-03-07T00:00:00Z",
        "form": "launch_notification",
        "activity": "l",
        "window_start": "2028-03-10T00:00:00Z",
        "window_end": "2028-03-15T00:00:00Z",
        "impact": kw.pop("impact", point(IND_AT[100])),
        **kw,
    }


def run(*events: dict) -> list[dict]:
    a = bundled(MT)
    report = evaluate(a, parse_events(list(events)), _ms(AS_OF), resolve_zones(a))
    return report.to_json()["findings"]


def _ms(t: str) -> int:
    from cbmnet.compliance.timeutil import parse_time

    return parse_time(t, "t")


def found(findings: list[dict]) -> list[tuple[str, str]]:
    return sorted((f["code"], f["provision"]) for f in findings)


def test_reference_points() -> None:
    from shapely.geometry import shape

    from cbmnet.geo import border, distance_km

    ib = border("IND", "PAK")
    for km, lon in IND_AT.items():
        assert abs(distance_km(shape(point(lon)), ib) - km) < 0.1, (km, lon)
    assert abs(distance_km(shape(point(*SEA_10)), ib) - 10) < 0.2
    assert abs(distance_km(shape(PATH_30), ib) - 30) < 0.1
    assert abs(distance_km(shape(PATH_50), ib) - 50) < 0.1
    assert abs(distance_km(shape(CLEAN_PATH), ib) - 41) < 0.1
    assert distance_km(shape(CROSSING), ib) == 0.0


def test_full_record_is_clean() -> None:
    assert run(launch(trajectory=CLEAN_PATH), notice()) == []


def test_provisions_are_the_agreements_own_articles() -> None:
    for m in bundled(MT).measures:
        parts = (*getattr(m, "distances", ()), *getattr(m, "content", ()))
        cited = [m.provision, *(p.provision for p in parts)]
        for p in cited:
            assert p.startswith("Article"), (m.id, p)
            assert "S3" not in p and "brief" not in p, (m.id, p)


@pytest.mark.parametrize("cls", ["icbm", "srbm", "mrbm", "irbm", "ballistic"])
def test_unnotified_land_launch_10_km_from_border_is_found_whatever_the_label(cls: str) -> None:
    got = found(run(launch(cls, launch=point(IND_AT[10]), trajectory=CLEAN_PATH)))
    assert ("notification.missing", "Articles 1, 2 and 4") in got
    assert ("constraint.zone_violation", "Article 5 (launch site)") in got


def test_unnotified_slbm_sea_launch_10_km_from_border_is_found() -> None:
    sea = launch("slbm", launch=point(*SEA_10), impact=point(69.0, 22.5))
    got = found(run(sea))
    assert ("notification.missing", "Articles 1, 2 and 4") in got
    assert ("constraint.zone_violation", "Article 5 (launch site)") in got


def test_cruise_and_space_launches_are_outside_and_unknown_labels_unassessable() -> None:
    for cls in ("cruise", "space_launch"):
        assert run(launch(cls, launch=point(IND_AT[10]))) == []
    odd = run(launch("hypersonic_glide", launch=point(IND_AT[10])))
    assert [(f["code"], f["severity"]) for f in odd] == [("data.unassessable", "info")]
    assert "missile_class 'hypersonic_glide'" in odd[0]["message"]
    bare = launch()
    del bare["missile_class"]
    assert [f["code"] for f in run(bare)] == ["data.unassessable"]


def test_trajectory_crossing_the_border_is_found() -> None:
    got = run(launch(trajectory=CROSSING), notice())
    assert found(got) == [("constraint.zone_violation", "Article 6")]
    assert "crosses ib-loc" in got[0]["message"]


def test_trajectory_30_km_from_the_border_is_found_50_km_is_not() -> None:
    got = run(launch(trajectory=PATH_30), notice())
    assert found(got) == [("constraint.zone_violation", "Article 6")]
    assert "30.0 km from ib-loc, closer than 40 km" in got[0]["message"]
    assert run(launch(trajectory=PATH_50), notice()) == []


def test_launch_without_trajectory_is_unassessable_naming_the_field() -> None:
    got = run(launch(), notice())
    assert found(got) == [("data.unassessable", "Article 6")]
    assert "(trajectory)" in got[0]["message"] and got[0]["severity"] == "info"


def test_notice_without_planned_impact_area_is_incomplete() -> None:
    bare = notice()
    del bare["impact"]
    got = run(launch(trajectory=CLEAN_PATH), bare)
    assert found(got) == [
        ("data.unassessable", "Article 5 (planned impact area)"),
        ("notification.incomplete", "Article 4 (annexed format)"),
    ]
    incomplete = next(f for f in got if f["code"] == "notification.incomplete")
    assert "planned impact area" in incomplete["message"]
    assert incomplete["subjects"] == ["l", "n"]
    # The annex that would list it was not read: cbmnet's reading, so not an accusation.
    assert incomplete["severity"] == "info" and "annexed under Article 4" in incomplete["message"]


def test_notice_without_window_is_incomplete() -> None:
    bare = notice()
    del bare["window_start"], bare["window_end"]
    got = run(launch(trajectory=CLEAN_PATH), bare)
    assert found(got) == [("notification.incomplete", "Article 2")]
    assert "launch window" in got[0]["message"]
    # Art. 2's own words: the notice came but not in full, a lapse (less than no notice).
    assert got[0]["severity"] == SEVERITY["notification.incomplete"] == "lapse"


def test_confirmed_articles_stay_accusations() -> None:
    got = run(launch(launch=point(IND_AT[10]), trajectory=PATH_30), notice(impact=point(IND_AT[50])))
    assert {f["severity"] for f in got} == {"violation"}
    assert found(got) == [
        ("constraint.zone_violation", "Article 5 (launch site)"),
        ("constraint.zone_violation", "Article 5 (planned impact area)"),
        ("constraint.zone_violation", "Article 6"),
    ]


def test_planned_impact_is_judged_not_the_actual_one() -> None:
    # Planned 50 km from the line (Art. 5: not within 70 km) while it came down 100 km away.
    planned_near = run(launch(trajectory=CLEAN_PATH), notice(impact=point(IND_AT[50])))
    assert found(planned_near) == [("constraint.zone_violation", "Article 5 (planned impact area)")]
    assert planned_near[0]["subjects"] == ["l", "n"]
    # Planned 100 km away, came down 50 km away: Art. 5 speaks of the planned impact area.
    came_down_near = launch(trajectory=CLEAN_PATH, impact=point(IND_AT[50]))
    assert run(came_down_near, notice()) == []


def test_unnotified_launch_cannot_be_judged_on_a_planned_impact() -> None:
    got = found(run(launch(trajectory=CLEAN_PATH)))
    assert got == [
        ("data.unassessable", "Article 5 (planned impact area)"),
        ("notification.missing", "Articles 1, 2 and 4"),
    ]


def test_trajectory_must_be_a_line() -> None:
    with pytest.raises(FormatError, match=r"'trajectory'.*LineString"):
        parse_events([launch(trajectory=point(IND_AT[50]))])
    with pytest.raises(FormatError, match="'impact'"):
        parse_events([launch(), notice(impact={"type": "Point", "coordinates": [500, 0]})])
