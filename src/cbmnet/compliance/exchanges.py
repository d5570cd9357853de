"""Periodic exchanges of information: each member owes each period's form by its date.

Owed whether or not anything happened, unlike a notice, so the periods judged are bounded
by the record: from its first event (or the measure's first period) to a year past ``as_of``.
"""

from __future__ import annotations

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context, Result, end_of_day, finding, settle
from cbmnet.compliance.timeutil import (
    MS_PER_DAY,
    PERIODS_IN_YEAR,
    date_in_year,
    format_time,
    parse_duration,
    period_bounds,
    period_label,
    year_of,
)


def yearly_due(m: am.PeriodicExchange, year: int) -> int:
    """The end of the due day of a yearly exchange's period ``year``."""
    assert m.due is not None  # the model requires it of a yearly exchange
    return end_of_day(date_in_year(year + m.due_year_offset, m.due, m.id))


def periods(m: am.PeriodicExchange, first: int, last: int) -> list[tuple[str, int]]:
    """(label, due) of every period of the years ``first`` to ``last``, in order."""
    if m.period == "year":
        return [(str(y), yearly_due(m, y)) for y in range(first, last + 1)]
    assert m.due_after is not None  # the model requires it of a shorter period
    after = parse_duration(m.due_after, m.id)
    out = []
    for y in range(first, last + 1):
        for i in range(1, PERIODS_IN_YEAR[m.period] + 1):
            start, end = period_bounds(m.period, y, i)
            out.append(
                (period_label(m.period, y, i), (start if m.due_from == "period_start" else end) + after)
            )
    return out


def periodic_exchange(m: am.PeriodicExchange, ctx: Context) -> Result:
    """Each member's form for each period: missing, late, or lacking a part it must have.

    Yearly periods are listed up to a year ahead; shorter ones up to the next one due."""
    obs, finds = [], []
    times = [e.time for e in ctx.events if e.time <= ctx.as_of and ctx.member(e.party, e.time)]
    window_start = min(times) if times else ctx.as_of
    first = year_of(window_start) - m.due_year_offset - 1
    if m.first_period is not None:
        first = max(first, m.first_period)
    last = year_of(ctx.as_of) - m.due_year_offset + 1
    delivered = {p for (_, form, p) in ctx.exchanges if form == m.form}
    ahead = False
    for period, due in periods(m, first, last):
        if due < window_start and m.first_period is None and period not in delivered:
            continue  # before the record begins, and nobody delivered it: nothing to judge
        if due > ctx.as_of + 366 * MS_PER_DAY:
            continue
        if m.period != "year" and due >= ctx.as_of:  # still pending (as ``settle`` says)
            if ahead:
                continue
            ahead = True  # the next period due, pending
        for party in sorted(ctx.parties):
            if not ctx.member(party, due):
                continue  # owed only by a State that is a member when it falls due
            got = ctx.exchanges.get((party, m.form, period), [])
            first_ex = got[0] if got else None
            ob, status = settle(ctx, m, party, period, due, first_ex, ())
            obs.append(ob)
            ids = [e.id for e in got]
            if status == "missed":
                finds.append(
                    finding(
                        m,
                        "exchange.missing",
                        party,
                        [],
                        due,
                        f"{m.form} for {period} never came",
                        period,
                    )
                )
            elif status == "late" and first_ex is not None:
                finds.append(
                    finding(
                        m,
                        "exchange.late",
                        party,
                        ids,
                        due,
                        f"{m.form} for {period} came {format_time(first_ex.time)}",
                        period,
                    )
                )
            if got and m.parts:
                have = {p for e in got for p in e.raw.get("parts") or ()}
                lacking = [p for p in m.parts if p not in have]
                if lacking:
                    finds.append(
                        finding(
                            m,
                            "exchange.incomplete",
                            party,
                            ids,
                            due,
                            f"{m.form} for {period} lacks part(s) {', '.join(lacking)}",
                            period,
                        )
                    )
    return obs, finds
