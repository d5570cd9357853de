"""Periodic exchanges of information: each member owes each period's form by its date.

Owed whether or not anything happened, unlike a notice, so the periods judged are bounded
by the record: from its first event (or the measure's first period) to a year past ``as_of``.
"""

from __future__ import annotations

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context, Result, end_of_day, finding, settle
from cbmnet.compliance.timeutil import MS_PER_DAY, date_in_year, format_time, year_of


def periodic_exchange(m: am.PeriodicExchange, ctx: Context) -> Result:
    """Each member's form for each period: missing, late, or lacking a part it must have."""
    obs, finds = [], []
    times = [e.time for e in ctx.events if e.time <= ctx.as_of and ctx.member(e.party, e.time)]
    window_start = min(times) if times else ctx.as_of
    first = year_of(window_start) - m.due_year_offset - 1
    if m.first_period is not None:
        first = max(first, m.first_period)
    last = year_of(ctx.as_of) - m.due_year_offset + 1
    delivered = {p for (_, form, p) in ctx.exchanges if form == m.form}
    for period in range(first, last + 1):
        due = end_of_day(date_in_year(period + m.due_year_offset, m.due, m.id))
        if due < window_start and m.first_period is None and str(period) not in delivered:
            continue  # before the record begins, and nobody delivered it: nothing to judge
        if due > ctx.as_of + 366 * MS_PER_DAY:
            continue
        for party in sorted(ctx.parties):
            if not ctx.member(party, due):
                continue  # owed only by a State that is a member when it falls due
            got = ctx.exchanges.get((party, m.form, str(period)), [])
            first_ex = got[0] if got else None
            ob, status = settle(ctx, m, party, str(period), due, first_ex, ())
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
                        str(period),
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
                        str(period),
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
                            str(period),
                        )
                    )
    return obs, finds
