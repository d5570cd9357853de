"""Scenarios with known truth for reconciliation tests: forces, sensors, noise and errors.

A force is a number of troops (in units of about 100) and tanks at a place for some days.
Sensors see it the way real ones would, imperfectly: a satellite twice a day and an
aircraft once a day photograph the units (each unit missed now and then, confidence
0.85-1.0), ground sensors track tanks, a seismic array hears vehicles. On top: scattered
low-confidence noise, a ghost report, a sensor that reports some units twice, and a few
detections placed 30 km off. Everything comes from one seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.verification.observations import COLUMNS

HOUR = 3_600_000
DAY = 24 * HOUR
KM_PER_DEG = 111.195


@dataclass
class Scenario:
    agreement: str
    as_of: str
    events: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    """Each: code, party, measure and (for size) the activity id."""
    source_of: dict[str, str] = field(default_factory=dict)
    """Observation id -> the force it shows (its name), or ``noise``."""


def _move(lon: float, lat: float, dx_km: float, dy_km: float) -> tuple[float, float]:
    return (
        lon + dx_km / (KM_PER_DEG * math.cos(math.radians(lat))),
        lat + dy_km / KM_PER_DEG,
    )


def box(lon: float, lat: float, half_km: float) -> dict[str, Any]:
    """A square GeoJSON polygon ``2 x half_km`` across, centred on (lon, lat)."""
    w, s = _move(lon, lat, -half_km, -half_km)
    e, n = _move(lon, lat, half_km, half_km)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rows: list[dict[str, Any]] = []
        self.n = 0
        self.label = "noise"
        self.source_of: dict[str, str] = {}

    def obs(
        self,
        t: int,
        lon: float,
        lat: float,
        sensor: str,
        kind: str,
        cls: str,
        count: int,
        conf: float,
        track: str | None = None,
    ) -> None:
        self.n += 1
        row: dict[str, Any] = {
            "id": f"o{self.n:06d}",
            "time": format_time(t),
            "lon": round(lon, 6),
            "lat": round(lat, 6),
            "sensor_id": sensor,
            "sensor_kind": kind,
            "object_class": cls,
            "count": count,
            "confidence": round(conf, 3),
        }
        if track is not None:
            row["track_id"] = track
        self.rows.append(row)
        self.source_of[row["id"]] = self.label

    def force(
        self,
        name: str,
        centre: tuple[float, float],
        radius_km: float,
        troops: int,
        tanks: int,
        start: int,
        days: int,
        duplicate_units: int = 0,
        misplaced: int = 0,
    ) -> None:
        """Detections of a force of ``troops`` and ``tanks`` standing at ``centre`` for ``days``."""
        rng = self.rng
        self.label = name
        units: list[tuple[int, float, float]] = []
        left = troops
        while left > 0:
            c = min(left, rng.randint(80, 120))
            left -= c
            r = radius_km * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            units.append((c, r * math.cos(a), r * math.sin(a)))
        looks = [("SAT-1", "satellite", h * HOUR) for h in range(6, days * 24, 12)]
        looks += [("AER-1", "aerial", h * HOUR) for h in range(10, days * 24, 24)]
        for sensor, kind, dt in looks:
            for k, (c, dx, dy) in enumerate(units):
                if rng.random() < 0.05:
                    continue  # missed this time
                lon, lat = _move(*centre, dx + rng.gauss(0, 0.2), dy + rng.gauss(0, 0.2))
                t = start + dt + rng.randrange(0, 20 * 60_000)
                self.obs(t, lon, lat, sensor, kind, "troops", c, rng.uniform(0.9, 1.0))
                if sensor == "SAT-1" and k < duplicate_units and dt == looks[0][2]:
                    self.obs(t, lon, lat, sensor, kind, "troops", c, rng.uniform(0.9, 1.0))
        for k in range(tanks):
            dx, dy = (rng.uniform(-radius_km, radius_km) for _ in range(2))
            for h in range(2, days * 24, 8):
                lon, lat = _move(*centre, dx + rng.gauss(0, 0.5), dy + rng.gauss(0, 0.5))
                self.obs(
                    start + h * HOUR,
                    lon,
                    lat,
                    "GRD-1",
                    "ground",
                    "battle_tank",
                    1,
                    rng.uniform(0.85, 1.0),
                    track=f"{name}-tank-{k}",
                )
        for h in range(1, days * 24, 6):
            lon, lat = _move(*centre, rng.uniform(-3, 3), rng.uniform(-3, 3))
            self.obs(start + h * HOUR, lon, lat, "SEI-1", "seismic", "acv", rng.randint(1, 4), 0.5)
        for _ in range(misplaced):
            c, dx, dy = rng.choice(units)
            lon, lat = _move(*centre, dx + 30.0, dy + 30.0)
            self.obs(start + 30 * HOUR, lon, lat, "AER-1", "aerial", "troops", c, 0.6)
        self.label = "noise"

    def noise(
        self, n: int, west: float, south: float, east: float, north: float, t0: int, t1: int
    ) -> None:
        rng = self.rng
        for _ in range(n):
            sensor, kind = rng.choice(
                [("OSI-1", "open_source"), ("AER-1", "aerial"), ("SAT-2", "satellite")]
            )
            self.obs(
                rng.randrange(t0, t1),
                rng.uniform(west, east),
                rng.uniform(south, north),
                sensor,
                kind,
                rng.choice(["troops", "troops", "acv", "artillery"]),
                rng.randint(1, 10),
                rng.uniform(0.1, 0.7),
            )


def _activity(
    aid: str,
    party: str,
    start: int,
    days: int,
    troops: int,
    location: dict[str, Any],
    tanks: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": aid,
        "type": "activity",
        "party": party,
        "category": "land",
        "start": format_time(start),
        "end": format_time(start + days * DAY),
        "size": {"troops": troops, "battle_tanks": tanks},
        "location": location,
        **extra,
    }


def _notice(
    nid: str, party: str, aid: str, time: int, form: str = "prior_notification"
) -> dict[str, Any]:
    return {
        "id": nid,
        "type": "notification",
        "party": party,
        "form": form,
        "activity": aid,
        "time": format_time(time),
    }


# Places checked against Natural Earth in tests/test_reconcile.py.
HUN_NEAR_ROU = (21.2, 47.0)  # Hungary, about 31 km from the Romanian border
ROU_NEAR_HUN = (21.6, 46.3)  # Romania, about 28 km from the Hungarian border
HUN_WEST = (19.6, 47.3)  # Hungary, inland
ROU_EAST = (24.0, 46.5)  # Romania, inland
PAK_NEAR_IND = (74.52, 31.50)  # Pakistan, about 6.4 km from the IB
IND_INLAND = (75.2, 31.2)  # India, about 50 km from the IB


def vienna(seed: int = 11) -> Scenario:
    """Vienna Document, Hungary and Romania: the 11,000 / 9,500-is-14,000 scenario.

    - U: 11,000 troops and 40 tanks in Hungary 31 km from Romania, never declared: over
      VD's 9,000-troop threshold -> ``discrepancy.undeclared_activity``, party HUN.
    - D: Romania declares and notifies 9,500 troops; 14,000 are there -> ``discrepancy.size``.
    - C: Hungary declares 12,000 and 12,000 come (some units reported twice): clean.
    - E: Romania declares 3,000 (below every threshold, no notice): clean.
    - S: 3,000 undeclared troops in Romania: under the threshold, clean.
    - noise, a ghost report of 2,500 troops at confidence 0.3, units placed 30 km off.
    """
    g = _Gen(seed)
    t = parse_time("2027-09-06T00:00:00Z", "t")
    sc = Scenario("vienna-document-2011", "2027-12-31T00:00:00Z")
    g.force("U", HUN_NEAR_ROU, 8.0, 11_000, 40, t + 2 * DAY, 3)
    g.force("D", ROU_NEAR_HUN, 8.0, 14_000, 60, t, 4, misplaced=4)
    sc.events += [
        _activity("ROU-ex-1", "ROU", t, 4, 9_500, box(*ROU_NEAR_HUN, 12.0), tanks=60),
        _notice("ROU-n-1", "ROU", "ROU-ex-1", t - 45 * DAY),
    ]
    g.force("C", HUN_WEST, 8.0, 12_000, 30, t + DAY, 3, duplicate_units=6)
    sc.events += [
        _activity("HUN-ex-1", "HUN", t + DAY, 3, 12_000, box(*HUN_WEST, 12.0), tanks=30),
        _notice("HUN-n-1", "HUN", "HUN-ex-1", t - 50 * DAY),
    ]
    g.force("E", ROU_EAST, 4.0, 3_000, 0, t + 3 * DAY, 2)
    sc.events.append(
        _activity(
            "ROU-ex-2", "ROU", t + 3 * DAY, 2, 3_000, {"type": "Point", "coordinates": list(ROU_EAST)}
        )
    )
    g.force("S", (23.0, 46.9), 4.0, 3_000, 0, t + 2 * DAY, 2)
    g.noise(2_000, 19.0, 45.8, 24.5, 48.0, t - 2 * DAY, t + 8 * DAY)
    g.obs(t + 5 * DAY, 22.3, 47.4, "OSI-1", "open_source", "troops", 2_500, 0.3)
    sc.observations = g.rows
    sc.source_of = g.source_of
    sc.expected = [
        {
            "code": "discrepancy.size",
            "party": "ROU",
            "measure": "notification-land",
            "activity": "ROU-ex-1",
        },
        {"code": "discrepancy.undeclared_activity", "party": "HUN", "measure": "notification-land"},
    ]
    return sc


def india_pakistan(seed: int = 5) -> Scenario:
    """IN-PK 1991: an 11,000-troop (division-strength) force 2-10 km from the IB in
    Pakistan -> ``discrepancy.zone`` under exclusion-5km; too small for the corps-level
    notice, so nothing undeclared. India's notified division exercise inland is clean."""
    g = _Gen(seed)
    t = parse_time("2027-11-02T00:00:00Z", "t")
    sc = Scenario("india-pakistan-military-exercises-1991", "2027-12-31T00:00:00Z")
    g.force("Z", PAK_NEAR_IND, 4.0, 11_000, 20, t, 2)
    g.force("I", IND_INLAND, 6.0, 12_000, 20, t + DAY, 3)
    sc.events += [
        _activity(
            "IND-ex-1", "IND", t + DAY, 3, 12_000, box(*IND_INLAND, 10.0), tanks=20, formation="division"
        ),
        _notice("IND-n-1", "IND", "IND-ex-1", t - 70 * DAY, form="exercise_notice"),
    ]
    g.noise(1_000, 73.5, 30.5, 76.0, 32.5, t - DAY, t + 5 * DAY)
    sc.observations = g.rows
    sc.source_of = g.source_of
    sc.expected = [{"code": "discrepancy.zone", "party": "PAK", "measure": "exclusion-5km"}]
    return sc


def write_csv(rows: list[dict[str, Any]], path: Any) -> None:
    """The rows as CSV with a header row (columns in the spec's order)."""
    import csv

    cols = list(COLUMNS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})


def write_geojson(rows: list[dict[str, Any]], path: Any) -> None:
    """The rows as a FeatureCollection of Points."""
    import json

    feats = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {k: v for k, v in r.items() if k not in ("lon", "lat")},
        }
        for r in rows
    ]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"type": "FeatureCollection", "features": feats}, f)


def write_parquet(rows: list[dict[str, Any]], path: Any, timestamps: bool = True) -> None:
    """The rows as Parquet; ``time`` a UTC timestamp column (or RFC 3339 strings)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cbmnet.compliance.timeutil import parse_time

    cols: dict[str, Any] = {
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "time": pa.array([parse_time(r["time"], "t") for r in rows], pa.timestamp("ms", "UTC"))
        if timestamps
        else pa.array([r["time"] for r in rows], pa.string()),
        "lon": pa.array([r["lon"] for r in rows], pa.float64()),
        "lat": pa.array([r["lat"] for r in rows], pa.float64()),
        "sensor_id": pa.array([r["sensor_id"] for r in rows], pa.string()),
        "sensor_kind": pa.array([r["sensor_kind"] for r in rows], pa.string()),
        "object_class": pa.array([r["object_class"] for r in rows], pa.string()),
        "count": pa.array([r["count"] for r in rows], pa.int32()),
        "confidence": pa.array([r["confidence"] for r in rows], pa.float64()),
        "track_id": pa.array([r.get("track_id") for r in rows], pa.string()),
    }
    pq.write_table(pa.table(cols), path)
