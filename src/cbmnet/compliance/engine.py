"""``evaluate(agreement, events, as_of)``: who owed what to whom by when, and what went wrong.

Pure and deterministic: no clock, no I/O; the same inputs give the same report byte for
byte. Events dated after ``as_of`` have not happened yet and are ignored. An obligation
whose due time is after ``as_of`` and is unmet is ``pending``, not a finding.

Each rule of the vocabulary is one function ``(measure, context) -> (obligations,
findings)`` in ``RULES``; measures combine by concatenation, with no special cases.
Zone geometry (shapely, WGS84) comes in ready-made in ``zones``, so the engine never
reads border files itself.

The rules live by family, as a diplomat would look for them: ``notification`` (notices
owed), ``constraints`` (limits on activities), ``exchanges`` (periodic information),
``replies`` (answers to requests) and ``visits`` (quotas, visits, observers), all on
``context`` (the indexed events and the shared way of stating a duty and a finding).
This module only dispatches; ``Context`` and ``QuotaBook`` are re-exported from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cbmnet.agreements import model as am
from cbmnet.compliance.constraints import activity_cap, zone_rule
from cbmnet.compliance.context import Context, Geometry, Result
from cbmnet.compliance.events import Event
from cbmnet.compliance.exchanges import periodic_exchange, periods
from cbmnet.compliance.notification import (
    advance_announcement,
    annual_calendar,
    event_notification,
    launch_notification,
    observation_invitation,
    prior_notification,
)
from cbmnet.compliance.replies import reply_deadline
from cbmnet.compliance.report import Finding, Obligation, Report, sort_findings, sort_obligations
from cbmnet.compliance.timeutil import MS_PER_DAY, date_in_year, year_of
from cbmnet.compliance.visits import (
    QuotaBook,
    observer_terms,
    quota,
    visit_conduct,
    visit_plan,
    visit_report,
)

__all__ = ["RULES", "Context", "Geometry", "QuotaBook", "Result", "evaluate", "next_change"]


RULES: dict[str, Callable[[Any, Context], Result]] = {
    "prior_notification": prior_notification,
    "observation_invitation": observation_invitation,
    "annual_calendar": annual_calendar,
    "advance_announcement": advance_announcement,
    "activity_cap": activity_cap,
    "zone_rule": zone_rule,
    "periodic_exchange": periodic_exchange,
    "reply_deadline": reply_deadline,
    "quota": quota,
    "visit_conduct": visit_conduct,
    "visit_plan": visit_plan,
    "visit_report": visit_report,
    "observer_terms": observer_terms,
    "event_notification": event_notification,
    "launch_notification": launch_notification,
}
"""The vocabulary: each measure type and the function that judges it."""


def evaluate(
    agreement: am.Agreement,
    events: Sequence[Event],
    as_of: int,
    zones: Mapping[str, Geometry] | None = None,
) -> Report:
    """Obligations and findings of ``agreement`` over ``events`` as of ``as_of`` (epoch ms)."""
    ctx = Context(agreement, as_of, list(events), zones or {})
    obligations: list[Obligation] = []
    findings: list[Finding] = []
    for measure in agreement.measures:
        obs, finds = RULES[measure.rule](measure, ctx)
        obligations.extend(obs)
        findings.extend(finds)
    return Report(agreement.id, as_of, sort_obligations(obligations), sort_findings(findings))


def next_change(agreement: am.Agreement, events: Sequence[Event], report: Report) -> int:
    """An instant after ``report.as_of`` before which ``evaluate`` over the same events
    answers the same report but for ``as_of`` (a cache may re-stamp it until then).

    Conservative: the earliest of every instant the engine compares ``as_of`` with that
    lies ahead of it: event times and declared starts and ends (an event or a visit
    record coming into view), obligations' due times (pending turns missed), the next
    UTC year (periodic exchanges' periods), and each periodic exchange's due time less
    366 days (its obligation coming into view).
    """
    as_of = report.as_of
    year = year_of(as_of)
    horizon = date_in_year(year + 1, "01-01", "next year")
    for e in events:
        for t in (e.time, e.start, e.end):
            if t is not None and as_of < t < horizon:
                horizon = t
    for o in report.obligations:
        if as_of < o.due + 1 < horizon:
            horizon = o.due + 1
    for m in agreement.measures:
        if not isinstance(m, am.PeriodicExchange):
            continue
        first = year - m.due_year_offset - 2
        for _, due in periods(m, first, first + 4):
            for t in (due - 366 * MS_PER_DAY, due + 1):
                if as_of < t < horizon:
                    horizon = t
    return horizon
