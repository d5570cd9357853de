"""Benchmark reconciliation: 10,000 declared activities, 10,000,000 observations, one core.

Generated with a fixed seed over Europe and one year: 10,000 declared exercises (boxes 10-30
km across, 2-7 days), 90 % of the observations inside them (seen by three sensors each, in
passes twice a day), 5 % in 300 undeclared concentrations, 5 % scattered noise; 200
sensors of every kind, a tenth of the rows tracked; rows in random order. Timed:

- ``obs_per_s``: match + cluster (the first pass over every chunk, then clustering and the
  decisions), observations per second;
- ``reconcile_obs_per_s``: the whole ``reconcile`` call including the evidence pass;
- ``baseline_obs_per_s``: a straightforward per-observation loop (shapely ``Point``,
  ``STRtree.query``, ``contains`` and the window test per candidate) over a 100,000-row
  sample, matching only, in the same run;
- ``peak_rss_mib``: the process's peak resident memory (generated data included).

Last line, one JSON object. Usage: python bench/reconcile.py [--observations N] [--activities N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import shapely  # noqa: E402

from cbmnet.agreements.loader import bundled, resolve_zones  # noqa: E402
from cbmnet.compliance.events import parse_events  # noqa: E402
from cbmnet.compliance.timeutil import format_time, parse_time  # noqa: E402
from cbmnet.geo import territory  # noqa: E402
from cbmnet.verification.matching import ActivityIndex, declared_activities  # noqa: E402
from cbmnet.verification.observations import arrays_source  # noqa: E402
from cbmnet.verification.reconcile import Reconciler, reconcile  # noqa: E402
from cbmnet.verification.settings import ReconcileSettings  # noqa: E402

DAY = 86_400_000
YEAR0 = parse_time("2027-01-01T00:00:00Z", "t")
KM = 111.195
PARTIES = ["DEU", "POL", "FRA", "ITA", "ESP", "ROU", "HUN", "CZE", "AUT", "SWE", "FIN", "GBR"]


def activities(n: int, rng: np.random.Generator) -> list[dict[str, object]]:
    lon = rng.uniform(-5.0, 30.0, n)
    lat = rng.uniform(40.0, 60.0, n)
    half = rng.uniform(5.0, 15.0, n)
    start = YEAR0 + rng.integers(0, 355, n) * DAY
    days = rng.integers(2, 8, n)
    out: list[dict[str, object]] = []
    for k in range(n):
        dx = half[k] / (KM * np.cos(np.radians(lat[k])))
        dy = half[k] / KM
        w, e, s, nn = lon[k] - dx, lon[k] + dx, lat[k] - dy, lat[k] + dy
        out.append(
            {
                "id": f"act-{k:05d}",
                "type": "activity",
                "party": PARTIES[k % len(PARTIES)],
                "category": "land",
                "start": format_time(int(start[k])),
                "end": format_time(int(start[k] + days[k] * DAY)),
                "size": {
                    "troops": 100_000,
                    "battle_tanks": 5_000,
                    "acvs": 5_000,
                    "artillery": 5_000,
                    "aircraft": 5_000,
                    "ships": 5_000,
                },
                "location": {
                    "type": "Polygon",
                    "coordinates": [[[w, s], [e, s], [e, nn], [w, nn], [w, s]]],
                },
            }
        )
    return out


def observations(
    n: int, acts: list[dict[str, object]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Columns for ``arrays_source``; positions and times drawn per group, vectorised."""
    n_in = int(n * 0.90)
    n_cl = int(n * 0.05)
    n_noise = n - n_in - n_cl
    box = np.array(
        [a["location"]["coordinates"][0][0] + a["location"]["coordinates"][0][2] for a in acts]
    )  # type: ignore[index]
    start = np.array([parse_time(str(a["start"]), "t") for a in acts], dtype=np.int64)
    end = np.array([parse_time(str(a["end"]), "t") for a in acts], dtype=np.int64)
    which = rng.integers(0, len(acts), n_in)
    u = rng.random((n_in, 3))
    lon_in = box[which, 0] + u[:, 0] * (box[which, 2] - box[which, 0])
    lat_in = box[which, 1] + u[:, 1] * (box[which, 3] - box[which, 1])
    # Sensors look in passes: twice a day, each pass a few minutes long.
    passes = ((end[which] - start[which]) // (DAY // 2)).astype(np.int64)
    t_in = start[which] + (u[:, 2] * passes).astype(np.int64) * (DAY // 2)
    t_in += rng.integers(0, 600_000, n_in)
    n_conc = 300
    c_lon = rng.uniform(-5.0, 30.0, n_conc)
    c_lat = rng.uniform(40.0, 60.0, n_conc)
    c_t = YEAR0 + rng.integers(0, 360, n_conc) * DAY
    cw = rng.integers(0, n_conc, n_cl)
    lon_cl = c_lon[cw] + rng.normal(0, 0.05, n_cl)
    lat_cl = c_lat[cw] + rng.normal(0, 0.03, n_cl)
    t_cl = c_t[cw] + rng.integers(0, 3 * DAY, n_cl)
    lon_no = rng.uniform(-5.0, 30.0, n_noise)
    lat_no = rng.uniform(40.0, 60.0, n_noise)
    t_no = YEAR0 + rng.integers(0, 365 * DAY, n_noise)
    lon = np.concatenate([lon_in, lon_cl, lon_no])
    lat = np.concatenate([lat_in, lat_cl, lat_no])
    t = np.concatenate([t_in, t_cl, t_no]).astype(np.int64)
    order = rng.permutation(n)  # sensors report in no particular order
    sensor = rng.integers(0, 200, n).astype(np.int32)
    sensor[:n_in] = (which * 7 + rng.integers(0, 3, n_in)) % 200  # three sensors per exercise
    sensor[n_in : n_in + n_cl] = cw % 200  # each concentration watched by one sensor
    tracked = rng.random(n) < 0.1
    track = np.where(tracked, rng.integers(1, 2**62, n, dtype=np.int64), 0).astype(np.uint64)
    count = rng.integers(1, 150, n).astype(np.int64)
    conf = rng.uniform(0.5, 1.0, n)
    count[n_in + n_cl :] = rng.integers(1, 4, n_noise)  # noise: small, unsure
    conf[n_in + n_cl :] = rng.uniform(0.1, 0.6, n_noise)
    return {
        "time": t[order],
        "lon": lon[order],
        "lat": lat[order],
        "sensor": sensor[order],
        "kind": (sensor[order] % 5).astype(np.uint8),
        "object_class": rng.choice(6, n, p=[0.7, 0.1, 0.1, 0.05, 0.03, 0.02]).astype(np.uint8),
        "count": count[order],
        "confidence": conf[order],
        "track": track,
    }


def baseline(index: ActivityIndex, cols: dict[str, np.ndarray], sample: int) -> float:
    """Observations per second of the obvious loop: one shapely query per observation."""
    tree = shapely.STRtree(index.areas)
    areas = index.areas
    t, lon, lat = cols["time"][:sample], cols["lon"][:sample], cols["lat"][:sample]
    t0 = time.perf_counter()
    matched = 0
    for k in range(sample):
        p = shapely.Point(float(lon[k]), float(lat[k]))
        tk = int(t[k])
        best = None
        for a in tree.query(p):
            if index.ws[a] <= tk <= index.we[a] and areas[a].intersects(p):
                gap = max(0, int(index.start[a]) - tk, tk - int(index.end[a]))
                if best is None or (gap, a) < best:
                    best = (gap, a)
        matched += best is not None
    return sample / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--observations", type=int, default=10_000_000)
    ap.add_argument("--activities", type=int, default=10_000)
    ap.add_argument("--baseline-sample", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    agreement = bundled("vienna-document-2011")
    zones = resolve_zones(agreement)
    acts = activities(args.activities, rng)
    events = parse_events(acts, "bench")
    cols = observations(args.observations, acts, rng)
    source = arrays_source(sensor_names=[f"S-{k}" for k in range(200)], **cols)
    as_of = YEAR0 + 400 * DAY
    s = ReconcileSettings()
    territory(10.0, 50.0)  # load the borders before timing

    t0 = time.perf_counter()
    rec = Reconciler(agreement, events, as_of, zones, territory, s)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in source.batches():
        rec.add(b)
    t_match = time.perf_counter() - t0
    t0 = time.perf_counter()
    pending = rec.decide()
    t_decide = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = reconcile(agreement, events, source, as_of, zones, territory, s)
    t_full = time.perf_counter() - t0

    base_index = ActivityIndex(declared_activities(events, as_of), s.buffer_km, s.margin_ms)
    base = baseline(base_index, cols, min(args.baseline_sample, args.observations))
    n = args.observations
    rate = n / (t_match + t_decide)
    codes: dict[str, int] = {}
    for f in report.findings:
        codes[f.code] = codes.get(f.code, 0) + 1
    print(
        f"index {t_index:.2f} s, match {t_match:.2f} s, cluster+decide {t_decide:.2f} s "
        f"({len(pending)} findings), full reconcile {t_full:.2f} s; summary {dict(report.summary)}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "benchmark": "reconcile",
                "observations": n,
                "activities": args.activities,
                "obs_per_s": round(rate),
                "reconcile_obs_per_s": round(n / t_full),
                "baseline_obs_per_s": round(base),
                "ratio": round(rate / base, 1),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "seconds_match": round(t_match, 3),
                "seconds_cluster_decide": round(t_decide, 3),
                "seconds_reconcile": round(t_full, 3),
                "findings": codes,
                "matched": report.summary["matched"],
                "clusters": report.summary["clusters"],
            }
        )
    )


if __name__ == "__main__":
    main()
