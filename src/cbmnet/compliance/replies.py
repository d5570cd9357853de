"""Answers owed to requests: explanations, consultations, communication checks.

Which requests bind (a party asking another) and which answer counts (the addressee's
first) are read here once; the quota and visit rules reuse that reading, so a request
means the same thing to every measure.
"""

from __future__ import annotations

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context, Result, owed
from cbmnet.compliance.events import Event
from cbmnet.compliance.timeutil import MS_PER_DAY, add_working_days, parse_duration


def between_parties(ctx: Context, req: Event, anyone: bool = False) -> bool:
    """A request binds when a party (or, if ``anyone``, a non-party such as a secretariat)
    asks another party; never a party asking itself."""
    if not req.to or not ctx.member(req.to[0], req.time) or req.party == req.to[0]:
        return False
    return anyone or ctx.member(req.party, req.time)


def answer_of(ctx: Context, req: Event) -> Event | None:
    """The addressee's first answer to ``req`` (others' remarks do not count)."""
    return ctx.answers.get(req.id)


def replies_owed(
    m: am.Measure,
    ctx: Context,
    kind: str,
    within: int,
    codes: tuple[str, str],
    anyone: bool = False,
    working_days: bool = False,
) -> Result:
    """An answer owed by the addressee ``within`` of each binding request of ``kind``
    (``working_days``: ``within`` is whole days counted Monday to Friday)."""
    obs, finds = [], []
    for req in ctx.by_type["request"]:
        if req.raw.get("kind") != kind or not between_parties(ctx, req, anyone):
            continue
        host = req.to[0]
        due = add_working_days(req.time, within // MS_PER_DAY) if working_days else req.time + within
        ob, found = owed(
            ctx,
            m,
            host,
            req,
            due,
            answer_of(ctx, req),
            codes,
            f"the answer to {kind} request {req.id} from {req.party}",
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def reply_deadline(m: am.ReplyDeadline, ctx: Context) -> Result:
    """Replies owed within a time; a communication check (``code: check``) missed or late
    is one finding, ``check.missed``, since a late answer to a check is a failed check."""
    codes = ("reply.missing", "reply.late") if m.code == "reply" else ("check.missed", "check.missed")
    within = parse_duration(m.within, "within")
    return replies_owed(
        m, ctx, m.request_kind, within, codes, m.requesters == "anyone", working_days=m.working_days
    )
