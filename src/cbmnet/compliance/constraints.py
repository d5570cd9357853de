"""Constraints: limits on what a party may do, not duties to tell anyone.

How many activities of a class in a period, how many at once, and how close to a zone.
They are judged on the activities alone, so they give findings and no obligations.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context, Result, finding, unassessable
from cbmnet.compliance.events import Event
from cbmnet.compliance.report import Finding
from cbmnet.compliance.timeutil import parse_duration, year_of
from cbmnet.errors import FormatError


def _capped(m: am.ActivityCap, ctx: Context, seen: tuple[str, ...] = ()) -> list[Event]:
    """The activities an activity_cap counts: in its scope, within its band (a limit "but
    not more than 40,000 troops" must not count what the >40,000 limit governs), and, for
    an "of these" sub-limit, counted by the measure it names."""
    acts = ctx.scoped(m.scope)
    if m.not_more_than:
        top = m.not_more_than
        acts = [a for a in acts if all(a.size.get(k, 0) <= v for k, v in top.items())]
    if m.of is not None:
        parent = next((x for x in ctx.agreement.measures if x.id == m.of), None)
        if not isinstance(parent, am.ActivityCap):
            raise FormatError(f"measure {m.id!r}: 'of' names {m.of!r}, not an activity_cap measure")
        if parent.id in (*seen, m.id):
            raise FormatError(f"measure {m.id!r}: 'of' goes round in a circle through {m.of!r}")
        counted = {a.id for a in _capped(parent, ctx, (*seen, m.id))}
        acts = [a for a in acts if a.id in counted]
    return acts


def activity_cap(m: am.ActivityCap, ctx: Context) -> Result:
    """How many of a class within ``period_years`` calendar years, and how many at once:
    each activity beyond the limit is a finding naming those that used it up."""
    finds: list[Finding] = []
    per_party: dict[str, list[Event]] = defaultdict(list)
    for act in _capped(m, ctx):
        per_party[act.party].append(act)
    for party, acts in sorted(per_party.items()):
        acts.sort(key=lambda a: (a.start or 0, a.id))
        if m.max_count is not None:
            years = [year_of(a.start or 0) for a in acts]
            for i, a in enumerate(acts):
                # Activities in the window of period_years calendar years ending with a's year.
                lo = bisect.bisect_left(years, years[i] - m.period_years + 1)
                count = i - lo + 1
                if count > m.max_count:
                    finds.append(
                        finding(
                            m,
                            "constraint.count_exceeded",
                            party,
                            # the activity, then those that used up the allowance
                            [a.id, *(x.id for x in acts[lo : lo + m.max_count])],
                            a.start,
                            f"{a.id} is activity {count} of its class within "
                            f"{m.period_years} calendar year(s); at most {m.max_count} allowed",
                            str(years[i]),
                        )
                    )
        if m.max_simultaneous is not None:
            k = m.max_simultaneous
            running: list[tuple[int, int, str]] = []  # heap of (end, order, id)
            for n, a in enumerate(acts):
                start, end = a.start or 0, a.end or 0
                while running and running[0][0] < start:
                    heapq.heappop(running)
                heapq.heappush(running, (end, n, a.id))
                if len(running) > k:
                    others = [r[2] for r in running[: k + 1] if r[2] != a.id][:k]
                    finds.append(
                        finding(
                            m,
                            "constraint.simultaneous_exceeded",
                            party,
                            [a.id, *others],
                            a.start,
                            f"{a.id} makes {len(running)} simultaneous activities of its class; "
                            f"at most {k} allowed",
                        )
                    )
    return [], finds


def exempt(m: am.ZoneRule, ctx: Context, act: Event) -> bool:
    """Did the activity's own party give the notice ``exempt_if_notified`` asks for, in time
    (at least its ``lead``, else any time, before the activity starts)?"""
    ex = m.exempt_if_notified
    if ex is None or act.start is None:
        return False
    by = act.start - (parse_duration(ex.lead, "lead") if ex.lead else 1)
    return any(n.time <= by for n in ctx.notices.get((act.party, ex.form, act.id), ()))


def zone_rule(m: am.ZoneRule, ctx: Context) -> Result:
    """Each scoped activity judged on its geometry; one that lacks the field the rule reads
    (the geometry, or the role or class that says whether the rule applies) is reported as
    unassessable, never passed over in silence."""
    finds = []
    key = "location" if m.subject in ("location", "flight") else m.subject
    filters = (("aircraft_role", m.aircraft_roles), ("missile_class", m.missile_classes))
    for act in ctx.scoped(m.scope):
        missing: list[str] = []
        governed = True
        for fld, wanted in filters:
            if wanted:
                got = act.raw.get(fld)
                if got is None:
                    missing.append(fld)
                elif got not in wanted:
                    governed = False  # of a role or class the rule does not govern
        if not governed:
            continue
        d = ctx.distance_km(act, key, m.zone)
        if d is None:
            missing.append(key)
        if missing:
            msg = f"{act.id} cannot be judged under {m.id}: no {', no '.join(missing)}"
            finds.append(unassessable(m, act.party, (act.id,), act.start, msg))
            continue
        assert d is not None
        bad = d == 0.0 if m.min_distance_km == 0 else d < m.min_distance_km
        if bad and exempt(m, ctx, act):
            continue
        if bad:
            where = (
                f"{d:.1f} km from {m.zone}, closer than {m.min_distance_km:g} km"
                if m.min_distance_km
                else f"inside {m.zone}"
            )
            finds.append(
                finding(
                    m,
                    "constraint.zone_violation",
                    act.party,
                    [act.id],
                    act.start,
                    f"{act.id}: {m.subject} {where}",
                )
            )
    return [], finds
