"""Confidence indicators per party and calendar month (UTC), with every part shown.

Formulas, edge cases and a worked example: docs/indicators.md. Pure and deterministic:
the same ``Record`` gives the same JSON, and no indicator is a bare number; each carries
the counts it was computed from, so a reader can check it and a party can dispute it.
A share with nothing to count is ``null``, never 0: "no data" is not "bad".
"""

from __future__ import annotations

import calendar
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from cbmnet.compliance.report import SEVERITY, Finding, Obligation, Severity
from cbmnet.compliance.timeutil import format_time
from cbmnet.confidence.record import Fact, Record

SETTLED = ("met", "late", "missed")
SEVERITIES: tuple[Severity, ...] = ("violation", "lapse", "info")
VISITS = frozenset({"inspection", "evaluation", "observation_flight"})
"""Request kinds whose acceptance gives access: on-site inspections, evaluation visits, flights."""
EXCHANGE = "periodic_exchange"


_MONTH_OF_DAY: dict[int, str] = {}


def month_of(ms: int) -> str:
    """The UTC calendar month of an instant, as ``YYYY-MM`` (looked up by day: this runs
    for every fact)."""
    day = ms // 86_400_000
    got = _MONTH_OF_DAY.get(day)
    if got is None:
        t = time.gmtime(day * 86_400)
        got = f"{t.tm_year:04d}-{t.tm_mon:02d}"
        if len(_MONTH_OF_DAY) < 1_000_000:
            _MONTH_OF_DAY[day] = got
    return got


def month_end(month: str) -> int:
    """The first millisecond after ``month`` (``YYYY-MM``)."""
    year, mon = (int(x) for x in month.split("-"))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return calendar.timegm((year, mon, 1, 0, 0, 0)) * 1000


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty months included)."""
    out = []
    year, mon = (int(x) for x in first.split("-"))
    while f"{year:04d}-{mon:02d}" <= last:
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return out


def share(numerator: int, denominator: int) -> dict[str, Any]:
    """A share with its parts; ``null`` when there is nothing to count."""
    return {
        "share": round(numerator / denominator, 4) if denominator else None,
        "numerator": numerator,
        "denominator": denominator,
        "sample": denominator,
    }


def nearest_rank(sorted_values: Sequence[int], percent: int) -> int | None:
    """The nearest-rank percentile: the ⌈p·n/100⌉-th smallest value (an observed one)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, (percent * n + 99) // 100)
    return sorted_values[rank - 1]


def indicators(
    record: Record,
    months: Iterable[str] | None = None,
    *,
    book: FactBook | None = None,
    last: int | None = None,
    rows_of: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Every indicator for every party of ``record`` and every month, JSON-ready.

    ``months`` defaults to each month from the earliest dated item of the record to the
    month of ``as_of``, empty months included, so series line up for charts; ``last``:
    only the last that many of those (a page that shows recent trends). Rows are ordered
    by party, then month. ``book``: the record's facts read already (a hub grows one per
    reader as its log grows); ``record.facts`` is then not read again. ``rows_of``: only
    these parties' rows (a party's own page), each the same as in the whole.
    """
    if book is None:
        book = FactBook(record.parties)
        book.add(sorted((f for f in record.facts if f.ms <= record.as_of), key=lambda f: f.index))
    elif book.parties != frozenset(record.parties) or book.last_ms > record.as_of:
        raise ValueError("the fact book was read for other parties or past the record's as_of")
    span = sorted(set(months)) if months is not None else _default_months(record, book)
    if last is not None:
        span = span[-last:] if last > 0 else []
    ledger = _Book(record, book)
    only = None if rows_of is None else set(rows_of)
    who = record.parties if only is None else [p for p in record.parties if p in only]
    rows = [ledger.row(party, month) for party in who for month in span]
    return {
        "agreement": record.agreement,
        "as_of": format_time(record.as_of),
        "parties": list(record.parties),
        "months": span,
        "rows": rows,
    }


def _default_months(record: Record, book: FactBook) -> list[str]:
    times = [book.first_ms] if book.first_ms is not None else []
    times += [o.due for o in record.obligations if o.due <= record.as_of]
    times += [f.due for f in record.findings if f.due is not None and f.due <= record.as_of]
    last = month_of(record.as_of)
    return months_between(month_of(min(times)) if times else last, last)


class FactBook:
    """The facts' side of the indicators, read fact by fact in log order: each party's
    first reaction to each entry addressed to it, communication check results, and what
    each party gives each other (notifications, answers, visits accepted).

    Grown with ``add`` as the log grows, so a long log is read once, not at every look.
    A fact can only answer an earlier entry (a log has no forward references): a ``ref``
    to a fact not added before is one the reader cannot see, and counts nothing.
    """

    def __init__(self, parties: Iterable[str]) -> None:
        self.parties = frozenset(parties)
        self.upto = -1
        """The index of the last fact added."""
        self.last_ms = -(2**62)
        self.first_ms: int | None = None
        self._by_index: dict[int, Fact] = {}
        self._first: dict[tuple[int, str], Fact] = {}
        self._answered: set[tuple[int, str]] = set()
        self.reactions: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        """(party, month) -> (delay, kind) of its first reactions in that month."""
        self.checks: dict[tuple[str, str], list[Fact]] = defaultdict(list)
        self.given: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        """(giver, receiver, month) -> counts by category."""

    def add(self, facts: Iterable[Fact]) -> None:
        """Read ``facts``, in log order, all after those read already."""
        parties = self.parties
        by_index, first, reactions = self._by_index, self._first, self.reactions
        upto, last, earliest = self.upto, self.last_ms, self.first_ms
        try:
            for f in facts:
                index, ms, kind = f.index, f.ms, f.kind
                if index <= upto:
                    raise ValueError(f"fact {index} is not after fact {upto}")
                upto = index
                if ms > last:
                    last = ms
                if earliest is None or ms < earliest:
                    earliest = ms
                by_index[index] = f
                target = by_index.get(f.ref) if f.ref is not None else None
                if (
                    target is not None
                    and ms >= target.ms
                    and (kind == "ack" or (kind == "response" and target.kind == "request"))
                    and target.addressed_to(f.author)
                ):
                    # Its author's first reaction to the entry (the earliest) counts.
                    key = (target.index, f.author)
                    had = first.get(key)
                    if had is None or (ms, index) < (had.ms, had.index):
                        if had is not None:
                            old = reactions[(f.author, month_of(had.ms))]
                            old.remove((had.ms - target.ms, had.kind))
                        first[key] = f
                        reactions[(f.author, month_of(ms))].append((ms - target.ms, kind))
                if kind == "check.result" and f.concerns is not None:
                    self.checks[(f.concerns, month_of(ms))].append(f)
                elif kind == "notification" and f.author in parties:
                    month = month_of(ms)
                    for other in sorted(parties - {f.author}):
                        if f.addressed_to(other):
                            self.given[(f.author, other, month)]["notifications"] += 1
                elif kind == "response" and target is not None:
                    self._answer(f, target)
        finally:
            self.upto, self.last_ms, self.first_ms = upto, last, earliest

    def _answer(self, f: Fact, req: Fact) -> None:
        """A response gives its requester an answer (or a visit accepted), once per request."""
        if req.kind != "request" or not req.addressed_to(f.author):
            return
        if (req.index, f.author) in self._answered or req.author not in self.parties or f.ms < req.ms:
            return
        self._answered.add((req.index, f.author))
        what = "visits_accepted" if f.outcome == "accept" and req.form in VISITS else "answers"
        self.given[(f.author, req.author, month_of(f.ms))][what] += 1


class _Book:
    """The record indexed once by party and month, so each row is a few look-ups."""

    def __init__(self, record: Record, facts: FactBook) -> None:
        self.record = record
        # Obligations by (party, month of due).
        self.obligations: dict[tuple[str, str], list[Obligation]] = defaultdict(list)
        for o in record.obligations:
            self.obligations[(o.party, month_of(o.due))].append(o)
        # Exchanges lacking parts, by the obligation they concern.
        # (The engine names an exchange obligation ``measure:party:period``.)
        self.incomplete = {
            f"{g.measure}:{g.party}:{g.period}"
            for g in record.findings
            if g.code == "exchange.incomplete" and g.period is not None
        }
        self.findings: dict[str, list[Finding]] = defaultdict(list)
        for g in record.findings:
            self.findings[g.party].append(g)
        self.reactions = facts.reactions
        self.checks = facts.checks
        self.given = facts.given

    def row(self, party: str, month: str) -> dict[str, Any]:
        return {
            "party": party,
            "month": month,
            "timeliness": self.timeliness(party, month),
            "completeness": self.completeness(party, month),
            "responsiveness": self.responsiveness(party, month),
            "compliance": self.compliance(party, month),
            "reciprocity": self.reciprocity(party, month),
        }

    def timeliness(self, party: str, month: str) -> dict[str, Any]:
        status: Counter[str] = Counter(o.status for o in self.obligations.get((party, month), ()))
        settled = sum(status[s] for s in SETTLED)
        return share(status["met"], settled) | {
            "met": status["met"],
            "late": status["late"],
            "missed": status["missed"],
            "waived": status["waived"],
            "pending": status["pending"],
        }

    def completeness(self, party: str, month: str) -> dict[str, Any]:
        owed = [
            o
            for o in self.obligations.get((party, month), ())
            if o.kind == EXCHANGE and o.status in SETTLED
        ]
        delivered = [o for o in owed if o.status != "missed"]
        whole = [o for o in delivered if o.id not in self.incomplete]
        return {
            "exchanges": share(len(delivered), len(owed)),
            "parts": share(len(whole), len(delivered)),
        }

    def responsiveness(self, party: str, month: str) -> dict[str, Any]:
        got = self.reactions.get((party, month), [])
        delays = sorted(d for d, _ in got)
        checks = self.checks.get((party, month), [])
        return {
            "reaction": {
                "median_ms": nearest_rank(delays, 50),
                "p90_ms": nearest_rank(delays, 90),
                "sample": len(delays),
                "acknowledgements": sum(1 for _, k in got if k == "ack"),
                "answers": sum(1 for _, k in got if k == "response"),
            },
            "checks": share(sum(1 for c in checks if c.outcome == "passed"), len(checks)),
        }

    def compliance(self, party: str, month: str) -> dict[str, Any]:
        end = month_end(month)
        opened: Counter[str] = Counter()
        new: Counter[str] = Counter()
        for f in self.findings.get(party, ()):
            if f.due is not None and f.due >= end:
                continue
            sev = SEVERITY.get(f.code, "info")
            opened[sev] += 1
            if f.due is not None and month_of(f.due) == month:
                new[sev] += 1
        return {
            "open": {s: opened[s] for s in SEVERITIES} | {"total": sum(opened.values())},
            "new": {s: new[s] for s in SEVERITIES} | {"total": sum(new.values())},
        }

    def reciprocity(self, party: str, month: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for other in self.record.parties:
            if other == party:
                continue
            gives = self.given.get((party, other, month))
            receives = self.given.get((other, party, month))
            if gives is None and receives is None:
                continue
            gives, receives = gives or Counter(), receives or Counter()
            given, received = sum(gives.values()), sum(receives.values())
            if not given and not received:
                continue
            out[other] = {
                "gives": _tally(gives),
                "receives": _tally(receives),
            } | share(given, given + received)
        return out


def _tally(c: Counter[str]) -> dict[str, int]:
    parts = {k: c[k] for k in ("notifications", "visits_accepted", "answers")}
    return parts | {"total": sum(parts.values())}
