"""Benchmark the compliance engine: one year of Vienna Document traffic among 57 States.

Generates (seeded) a year of mixed events — activities of every size, their
notifications (some late, some missing), calendars, observation invitations, annual
exchanges, explanation requests and inspection requests with answers — and times
``evaluate`` over 100,000 events and over 1,000,000 (the scale test). Parsing the events
from JSON is timed separately.

Last line, one JSON object: ``seconds_100k``, ``seconds_1m``, ``scale_ratio`` (=
seconds_1m / seconds_100k; linear scaling would be 10; target <= 12) and the parse times;
``seconds_100k_end_to_end`` / ``seconds_1m_end_to_end``: ``cbmnet check`` as a user runs it
(a fresh process reading the file, parsing, evaluating, writing the JSON report) and
``scale_ratio_end_to_end`` (targets of issue 17: <= 2 s at 100k, <= 11x for 10x the input).

Usage: python bench/compliance.py [--small N] [--large N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cbmnet import collector
from cbmnet.agreements.loader import bundled, resolve_zones
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import format_time, parse_time

DAY = 86_400_000
YEAR_START = parse_time("2027-01-01T00:00:00Z", "start")


def generate(n: int, parties: list[str], seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    calendars: dict[str, dict[str, Any]] = {}
    k = 0

    def t(ms: int) -> str:
        return format_time(ms)

    for p in parties:  # the annual exchanges and calendars every State owes
        out.append(
            {
                "id": f"aemi-{p}",
                "type": "exchange",
                "party": p,
                "form": "annual_military_information",
                "period": "2027",
                "time": t(YEAR_START - 20 * DAY),
            }
        )
    while len(out) < n:
        k += 1
        p = rng.choice(parties)
        roll = rng.random()
        start = YEAR_START + rng.randrange(60 * DAY, 360 * DAY)
        if roll < 0.5:
            size = {"troops": rng.choice([2000, 2000, 5000, 5000, 9500, 9500, 14000, 30000])}
            aid = f"act-{k}"
            out.append(
                {
                    "id": aid,
                    "type": "activity",
                    "party": p,
                    "category": rng.choice(["land", "land", "air", "amphibious_landing"]),
                    "start": t(start),
                    "end": t(start + rng.randrange(1, 10) * DAY),
                    "size": size,
                }
            )
            if size["troops"] >= 9000 and rng.random() < 0.9:  # in the year's calendar
                cal_id = f"cal-{p}"
                if cal_id not in calendars:
                    calendars[cal_id] = {
                        "id": cal_id,
                        "type": "notification",
                        "party": p,
                        "form": "annual_calendar",
                        "year": 2027,
                        "activities": [],
                        "time": t(YEAR_START - 50 * DAY),
                    }
                    out.append(calendars[cal_id])
                calendars[cal_id]["activities"].append(aid)
            r = rng.random()
            if r < 0.9:
                lead = 45 if r < 0.85 else 30  # some late
                out.append(
                    {
                        "id": f"n-{k}",
                        "type": "notification",
                        "party": p,
                        "form": "prior_notification",
                        "activity": aid,
                        "time": t(start - lead * DAY),
                    }
                )
            if size["troops"] >= 13000 and rng.random() < 0.9:
                out.append(
                    {
                        "id": f"o-{k}",
                        "type": "notification",
                        "party": p,
                        "form": "observation_invitation",
                        "activity": aid,
                        "time": t(start - 43 * DAY),
                    }
                )
        else:
            to = rng.choice([q for q in parties if q != p])
            kind = "explanation" if roll < 0.8 else "inspection"
            rid = f"r-{k}"
            sent = start - 100 * DAY
            out.append(
                {
                    "id": rid,
                    "type": "request",
                    "party": p,
                    "kind": kind,
                    "to": to,
                    "time": t(sent),
                }
            )
            if rng.random() < 0.95:
                out.append(
                    {
                        "id": f"a-{k}",
                        "type": "response",
                        "party": to,
                        "request": rid,
                        "decision": rng.choice(["answer", "accept", "refuse"]),
                        "time": t(sent + rng.randrange(1, 60) * 3_600_000),
                    }
                )
    return out[:n] if _refs_ok(out[:n]) else _trim(out, n)


def _refs_ok(events: list[dict[str, Any]]) -> bool:
    ids = {e["id"] for e in events} | {""}
    return all(e.get("activity", "") in ids and e.get("request", "") in ids for e in events)


def _trim(events: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    kept = events[:n]
    ids = {e["id"] for e in kept} | {""}
    return [e for e in kept if e.get("activity", "") in ids and e.get("request", "") in ids]


def end_to_end(text: str, tmp: Path) -> float:
    """Wall seconds of ``cbmnet check`` as a user runs it: a fresh process reading the
    file, parsing, evaluating and writing its JSON report (to a file)."""
    events = tmp / "events.json"
    events.write_text(text)
    cmd = [sys.executable, "-m", "cbmnet.cli.main", "check", "--agreement", "vienna-document-2011"]
    cmd += ["--events", str(events), "--as-of", format_time(YEAR_START + 370 * DAY)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with (tmp / "report.json").open("wb") as out:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=env, check=False)
        seconds = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: findings, as the generated traffic has
        raise RuntimeError(f"cbmnet check failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return seconds


def measure(n: int, agreement: Any, zones: Any) -> tuple[float, float, int, int, float]:
    records = generate(n, list(agreement.parties))
    text = json.dumps(records)
    with tempfile.TemporaryDirectory(prefix="cbmnet-bench-") as tmp:
        e2e = end_to_end(text, Path(tmp))
    with collector.paused():  # as `cbmnet check` and the hub run them
        t0 = time.perf_counter()
        events = parse_events(json.loads(text), "bench")
        parse_s = time.perf_counter() - t0
        as_of = YEAR_START + 370 * DAY
        t0 = time.perf_counter()
        report = evaluate(agreement, events, as_of, zones)
        eval_s = time.perf_counter() - t0
    return eval_s, parse_s, len(events), len(report.findings), e2e


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    args = ap.parse_args()
    agreement = bundled("vienna-document-2011")
    zones = resolve_zones(agreement)
    s_eval, s_parse, s_n, s_f, s_e2e = measure(args.small, agreement, zones)
    l_eval, l_parse, l_n, l_f, l_e2e = measure(args.large, agreement, zones)
    print(
        json.dumps(
            {
                "benchmark": "compliance",
                "seconds_100k": round(s_eval, 3),
                "seconds_1m": round(l_eval, 3),
                "scale_ratio": round(l_eval / s_eval, 2),
                "events_small": s_n,
                "events_large": l_n,
                "findings_small": s_f,
                "findings_large": l_f,
                "parse_seconds_100k": round(s_parse, 3),
                "parse_seconds_1m": round(l_parse, 3),
                "seconds_100k_end_to_end": round(s_e2e, 3),
                "seconds_1m_end_to_end": round(l_e2e, 3),
                "scale_ratio_end_to_end": round(l_e2e / s_e2e, 2),
                "parties": len(agreement.parties),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
