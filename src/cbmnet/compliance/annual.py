"""The annual implementation report of an agreement: per party, what was owed in a year,
met, late and missed, and the findings, every figure with the events it counts.

In the style of the OSCE's Annual Implementation Assessment Meeting: a table any party
can put beside its own records. It is a reading of the engine's report, nothing more:
an obligation belongs to the year its due time falls in; a finding to the year of its due
time (or, with none, of its period); both are counted as the report states them as of
its ``as_of`` (the time the report is made: an answer that came late after the year ended
counts as late, not missed). Each count carries the ids of
the events concerned, so every figure can be traced to the log (and from there to the
checkpoint the report names).

Pure: the caller gives the report and the events' log positions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from cbmnet.compliance.report import Report
from cbmnet.compliance.timeutil import format_time, year_of

STATUSES = ("met", "late", "missed", "pending", "waived")


def year_bounds(year: int) -> tuple[int, int]:
    """[1 January 00:00 UTC, next 1 January) of ``year``, in epoch ms."""
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _in_year(due: int | None, period: str | None, year: int) -> bool:
    if due is not None:
        return year_of(due) == year
    return period is not None and period[:4] == str(year)


def annual(
    report: Report,
    year: int,
    parties: Iterable[str],
    entries: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Per party (each of ``parties``, in order, whether or not anything fell due): the
    obligations of ``year`` by status, the share met on time, and the findings by code,
    each with the ids of the events it rests on (and their log entries, where ``entries``
    maps event ids to them)."""
    entries = entries or {}
    rows: dict[str, dict[str, Any]] = {}
    for p in parties:
        rows[p] = {
            "party": p,
            "owed": 0,
            **dict.fromkeys(STATUSES, 0),
            "on_time_share": None,
            "findings": {},
            "events": {s: [] for s in STATUSES},
        }
    for o in report.obligations:
        if not _in_year(o.due, None, year) or o.party not in rows:
            continue
        r = rows[o.party]
        r["owed"] += 1
        r[o.status] += 1
        r["events"][o.status].append(o.met_by or (o.subjects[0] if o.subjects else o.id))
    for f in report.findings:
        if not _in_year(f.due, f.period, year) or f.party not in rows:
            continue
        got = rows[f.party]["findings"].setdefault(
            f.code, {"code": f.code, "severity": f.severity, "count": 0, "events": []}
        )
        got["count"] += 1
        got["events"] += list(f.subjects[:1])
    for r in rows.values():
        judged = r["met"] + r["late"] + r["missed"]
        r["on_time_share"] = round(r["met"] / judged, 4) if judged else None
        r["events"] = {s: sorted(set(v)) for s, v in r["events"].items() if v}
        r["findings"] = [r["findings"][c] for c in sorted(r["findings"])]
        for f in r["findings"]:
            f["events"] = sorted(set(f["events"]))
        r["entries"] = sorted(
            {entries[e] for evs in r["events"].values() for e in evs if e in entries}
            | {entries[e] for f in r["findings"] for e in f["events"] if e in entries}
        )
    return {
        "agreement": report.agreement,
        "year": year,
        "as_of": format_time(report.as_of),
        "parties": list(rows.values()),
        "totals": {
            "owed": sum(r["owed"] for r in rows.values()),
            **{s: sum(r[s] for r in rows.values()) for s in STATUSES},
            "findings": sum(f["count"] for r in rows.values() for f in r["findings"]),
        },
    }
