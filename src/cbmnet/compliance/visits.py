"""Visits on request and observers by invitation: quotas, conduct, plans and reports.

``QuotaBook`` accrues each host's accepted visits in time order, so that a refusal is
judged against what the host had given when it refused; ``quota_status`` (quota.py)
replays the same book, so the hub's advice and the engine's findings cannot disagree.
The other rules judge a visit on its own records (the visiting party's, the host's).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from operator import attrgetter

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context, Result, finding, owed_on, unassessable, withdrawn
from cbmnet.compliance.events import Event
from cbmnet.compliance.replies import answer_of, between_parties, replies_owed
from cbmnet.compliance.report import Finding, Obligation, Status
from cbmnet.compliance.timeutil import format_time, parse_duration, parse_time, year_of
from cbmnet.errors import FormatError


def _int_field(e: Event, key: str) -> int | None:
    """A count events-v1 leaves to the rules (``team_size``, an exchange's ``units``): a
    non-negative integer, anything else is taken as absent."""
    v = e.raw.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def time_field(e: Event, key: str) -> int | None:
    """An optional time field (``eta``, ``until``); one that does not parse is absent."""
    v = e.raw.get(key)
    if v is None:
        return None
    try:
        return parse_time(v, key)
    except FormatError:
        return None


def _share(x: float) -> Fraction:
    """The fraction a lawyer wrote (0.2 is 1/5 exactly, not the nearest binary float)."""
    return Fraction(repr(x))


@dataclass
class QuotaBook:
    """One quota measure's use, accrued request by request in time order.

    The engine's ``quota`` rule replays it to judge each refusal; ``quota_status`` replays it
    up to a moment and asks what a new request would meet. One book, so the two never
    disagree about what the host owes.
    """

    m: am.Quota
    ctx: Context
    accepted: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    accepted_from: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    spans: dict[str, list[tuple[int, int, str]]] = field(default_factory=lambda: defaultdict(list))
    """Host (or group) -> accepted visits as [start, end) and request id."""
    counted: dict[str, tuple[Event, tuple[int, int]]] = field(default_factory=dict)
    """Accepted visits that count against the quota now: request id -> (request, span)."""
    claims: dict[tuple[str, int], dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    """(host, year) -> counted visits the other side says do not count: id -> outcome."""

    def __post_init__(self) -> None:
        self.group_of = {p: g for g, members in self.m.groups.items() for p in members}
        vl = self.m.visit_length
        self.visit_ms = parse_duration(vl, "visit_length") if vl else None
        self.adjust = {a.form: a for a in self.m.not_counted}

    def key(self, party: str) -> str:
        return self.group_of.get(party, party)

    def passive(self, party: str) -> int:
        k = self.key(party)
        return self.m.per_party.get(k, self.m.per_party.get(party, self.m.per_year))

    def quota(self, host: str, year: int, at: int) -> int:
        """What ``host`` owes in ``year``: from the units it last reported by ``at`` for that
        year where the measure says so, else its figure."""
        u = self.m.per_units
        if u is not None:
            units = None
            for e in self.ctx.exchanges.get((host, u.form, str(year)), ()):
                n = _int_field(e, "units")
                if e.time <= at and n is not None:
                    units = n  # the latest delivered before the request counts
            if units is not None:
                q = -(-units // u.units_per_request)
                return q if u.max_per_year is None else min(q, u.max_per_year)
        return self.passive(host)

    def concentration_cap(self, host: str, requester: str, year: int, at: int) -> int | None:
        if self.m.concentration is None:
            return None
        k = self.key(requester)
        active = self.m.active.get(k, self.m.active.get(requester))
        if active is None:
            active = self.passive(requester)
        return min(math.ceil(_share(self.m.concentration) * active), self.quota(host, year, at))

    def requester_cap(self, host: str, requester: str, year: int, at: int) -> tuple[int, str] | None:
        """The most one requester may expect from ``host`` in ``year``, and why."""
        caps: list[tuple[int, str]] = []
        if self.m.per_requester is not None:
            caps.append((self.m.per_requester, "per requesting party"))
        if self.m.per_requester_share is not None:
            n = max(1, math.floor(_share(self.m.per_requester_share) * self.quota(host, year, at)))
            caps.append((n, f"per requesting party ({self.m.per_requester_share:g} of the quota)"))
        conc = self.concentration_cap(host, requester, year, at)
        if conc is not None:
            caps.append((conc, f"over one party ({self.m.concentration:g} of the active quota)"))
        return min(caps) if caps else None

    def span(self, req: Event) -> tuple[int, int]:
        """A visit occupies [eta (or the request's time), until (or + visit_length)); with
        neither, it is an instant: it meets the visits under way then, but occupies no time
        itself, so once accepted it never excuses refusing another."""
        start = time_field(req, "eta")
        start = req.time if start is None else start
        return self.span_of(start, time_field(req, "until"))

    def span_of(self, start: int, until: int | None) -> tuple[int, int]:
        if until is not None and until >= start:
            return start, until
        return start, start + self.visit_ms if self.visit_ms is not None else start

    def overlapping(self, host: str, start: int, end: int) -> list[str]:
        """Accepted visits of ``host`` under way during [start, end) (at ``start``, if empty)."""
        end = max(end, start + 1)
        return [rid for s, e, rid in self.spans.get(self.key(host), ()) if s < end and start < e]

    def used(self, host: str, year: int) -> int:
        return self.accepted.get((self.key(host), year), 0)

    def used_from(self, host: str, requester: str, year: int) -> int:
        return self.accepted_from.get((self.key(host), self.key(requester), year), 0)

    def limit(self, host: str, requester: str, year: int, at: int, start: int, end: int) -> str | None:
        """Why ``host`` may refuse such a request now without a finding, or None."""
        kind = self.m.request_kind
        q, used = self.quota(host, year, at), self.used(host, year)
        if used >= q:
            return f"{host} has accepted {used} of its {q} {kind} request(s) for {year}"
        cap = self.requester_cap(host, requester, year, at)
        mine = self.used_from(host, requester, year)
        if cap is not None and mine >= cap[0]:
            return f"{host} has accepted {mine} from {requester} in {year}; at most {cap[0]} {cap[1]}"
        if self.m.max_concurrent is not None:
            busy = self.overlapping(host, start, end)
            if len(busy) >= self.m.max_concurrent:
                return (
                    f"{host} has {len(busy)} accepted {kind} visit(s) at that time "
                    f"({', '.join(busy)}); at most {self.m.max_concurrent} at a time"
                )
        return None

    def _count(self, req: Event, span: tuple[int, int], sign: int) -> None:
        """Add (1) or take back (-1) an accepted visit: the host's quota, the requester's
        share, and the time it occupies."""
        host, year = self.key(req.to[0]), year_of(req.time)
        self.accepted[(host, year)] += sign
        self.accepted_from[(host, self.key(req.party), year)] += sign
        if sign > 0:
            self.counted[req.id] = (req, span)
            self.spans[host].append((span[0], span[1], req.id))
        else:
            del self.counted[req.id]
            self.spans[host] = [s for s in self.spans[host] if s[2] != req.id]

    def _outcomes(self, asked: list[Event]) -> list[tuple[int, int, Event, Event]]:
        """Records of an outcome the measure does not count (``not_counted``), each with
        the moment it takes effect (never before its visit is counted): (time, position
        of the visit request in ``asked``, record, request), in that order."""
        if not self.adjust:
            return []
        pos = {r.id: i for i, r in enumerate(asked)}
        out = []
        for n in self.ctx.by_type["notification"]:
            ref = n.raw.get("request")
            if n.raw["form"] in self.adjust and isinstance(ref, str) and ref in pos:
                req = asked[pos[ref]]
                out.append((max(n.time, req.time), pos[ref], n, req))
        out.sort(key=lambda x: (x[0], x[1], x[2].id))
        return out

    def _settle(self, rec: Event, req: Event) -> None:
        """An outcome on record: the visit stops counting if the side the measure names
        recorded it; the other side's record is a claim (see ``limit_if_claimed``)."""
        if req.id not in self.counted:
            return  # never accepted, or already taken out
        adj = self.adjust[rec.raw["form"]]
        side = "host" if rec.party == req.to[0] else "requester" if rec.party == req.party else None
        at = (self.key(req.to[0]), year_of(req.time))
        if side is None:
            return
        if side in adj.recorded_by:
            self._count(req, self.counted[req.id][1], -1)
            self.claims[at].pop(req.id, None)
        else:
            self.claims[at][req.id] = adj.outcome

    def claimed(self, host: str, year: int) -> dict[str, str]:
        """Visits of ``host`` in ``year`` still counted though the other side records an
        outcome that would take them out."""
        got = self.claims.get((self.key(host), year), {})
        return {r: o for r, o in got.items() if r in self.counted}

    def limit_if_claimed(
        self, host: str, requester: str, year: int, at: int, start: int, end: int
    ) -> str | None:
        """``limit`` as it would be if every claim of ``host`` in ``year`` held."""
        held = [self.counted[r] for r in self.claimed(host, year)]
        for req, span in held:
            self._count(req, span, -1)
        try:
            return self.limit(host, requester, year, at, start, end)
        finally:
            for req, span in held:
                self._count(req, span, 1)

    def replay(self) -> list[Finding]:
        """Accrue every answered request between parties; findings on the way. An outcome
        the measure does not count (``not_counted``) takes its visit out from the moment it
        is recorded: refusals after it are judged without that visit."""
        m, ctx = self.m, self.ctx
        finds: list[Finding] = []
        asked = [r for r in ctx.by_type["request"] if r.raw.get("kind") == m.request_kind]
        asked.sort(key=attrgetter("time", "id"))
        outcomes = self._outcomes(asked)
        o = 0
        # A host's acceptance of a request its requester withdrew since: the visit may
        # have used the host's quota, in that year or one before (the request's time went
        # with it). A refusal the host made in such a year cannot be judged within quota.
        blind: dict[str, int] = {}
        for r in ctx.by_type["response"]:
            if r.raw.get("decision") == "accept" and withdrawn(r, r.raw.get("request")):
                k = self.key(r.party)
                blind[k] = max(blind.get(k, -1), year_of(r.time))
        for i, req in enumerate(asked):
            while o < len(outcomes) and (outcomes[o][0], outcomes[o][1]) < (req.time, i):
                self._settle(outcomes[o][2], outcomes[o][3])
                o += 1
            if not between_parties(ctx, req):
                continue
            ans = answer_of(ctx, req)
            if ans is None:
                continue
            host, year = req.to[0], year_of(req.time)
            start, end = self.span(req)
            decision = ans.raw.get("decision")
            if decision == "accept":
                conc = self.concentration_cap(host, req.party, year, req.time)
                mine = self.used_from(host, req.party, year)
                if conc is not None and mine >= conc:
                    finds.append(
                        finding(
                            m,
                            "constraint.count_exceeded",
                            req.party,
                            [req.id, ans.id],
                            req.time,
                            f"{req.party} has {mine + 1} {m.request_kind} request(s) accepted by "
                            f"{host} in {year}; at most {conc} over one party",
                            str(year),
                        )
                    )
                self._count(req, (start, end), 1)
            elif decision == "refuse" and self.limit(host, req.party, year, req.time, start, end):
                claims = self.claimed(host, year)
                if claims and not self.limit_if_claimed(host, req.party, year, req.time, start, end):
                    said = ", ".join(f"{r} ({why})" for r, why in sorted(claims.items()))
                    msg = (
                        f"{host}'s refusal of {m.request_kind} request {req.id} cannot be judged: "
                        f"it is lawful only if {said} still count, which one side of that "
                        "visit records as not counting and the side the measure names has not"
                    )
                    finds.append(unassessable(m, host, [req.id, ans.id, *claims], ans.time, msg))
            elif decision == "refuse":
                if year <= blind.get(self.key(host), -1):
                    msg = (
                        f"{host}'s refusal of {m.request_kind} request {req.id} cannot be judged "
                        f"against its {year} quota: it accepted a request withdrawn since"
                    )
                    finds.append(unassessable(m, host, [req.id, ans.id], ans.time, msg))
                    continue
                q = self.quota(host, year, req.time)
                finds.append(
                    finding(
                        m,
                        "quota.refusal_within_quota",
                        host,
                        [req.id, ans.id],
                        ans.time,
                        f"{host} refused {m.request_kind} request {req.id} from {req.party} with "
                        f"{self.used(host, year)} of {q} accepted in {year}",
                        str(year),
                    )
                )
        for _, _, rec, req in outcomes[o:]:
            self._settle(rec, req)  # recorded after the last request: for ``quota_status``
        return finds


def quota(m: am.Quota, ctx: Context) -> Result:
    """Refusals judged against the quota as used when refused, and answers owed in time."""
    obs: list[Obligation] = []
    finds: list[Finding] = []
    if m.reply_within is not None:
        obs, finds = replies_owed(
            m,
            ctx,
            m.request_kind,
            parse_duration(m.reply_within, "reply_within"),
            ("reply.missing", "reply.late"),
        )
    return obs, finds + QuotaBook(m, ctx).replay()


def _visits(ctx: Context, kind: str) -> list[Event]:
    """Requests of ``kind`` that bind: a party asking another."""
    return [r for r in ctx.by_type["request"] if r.raw.get("kind") == kind and between_parties(ctx, r)]


def _judge(
    m: am.Measure, party: str, key: str, due: int, at: int, by: Event, subjects: tuple[str, ...]
) -> tuple[Obligation, Status]:
    """An obligation met at ``at`` as ``by`` records it (which may be later than ``at``)."""
    status: Status = "met" if at <= due else "late"
    kind = m.rule  # type: ignore[attr-defined]
    ob = Obligation(f"{m.id}:{party}:{key}", party, m.provision, kind, due, status, by.id, subjects)
    return ob, status


def visit_conduct(m: am.VisitConduct, ctx: Context) -> Result:
    """Entry, stay and team size, judged on the visiting party's own record of the visit:
    accepting a request creates no duty to record it (the visit may lawfully not happen)."""
    obs: list[Obligation] = []
    finds: list[Finding] = []
    entry = parse_duration(m.entry_within, "entry_within") if m.entry_within else None
    stay = parse_duration(m.max_stay, "max_stay") if m.max_stay else None
    for req in _visits(ctx, m.request_kind):
        host, kind = req.to[0], m.request_kind
        records = [r for r in ctx.attached.get((req.id, m.form), ()) if r.party == req.party]
        if m.max_team is not None:
            sizes = [(e, _int_field(e, "team_size")) for e in (req, *records)]
            over = [(e, n) for e, n in sizes if n is not None and n > m.max_team]
            if over:
                finds.append(
                    finding(
                        m,
                        "visit.team_too_large",
                        req.party,
                        [req.id, *(e.id for e, _ in over if e is not req)],
                        req.time,
                        f"{kind} {req.id}: a team of {max(n for _, n in over)}; at most {m.max_team}",
                    )
                )
        rec = next((r for r in records if r.start is not None and r.start <= ctx.as_of), None)
        if rec is None or rec.start is None:
            continue
        ids = (req.id, rec.id)
        if entry is not None:
            eta = time_field(req, "eta")
            due = req.time + entry if eta is None else max(req.time + entry, eta)
            ob, status = _judge(m, host, f"{req.id}:entry", due, rec.start, rec, ids)
            obs.append(ob)
            if status == "late":
                msg = (
                    f"{host} admitted the {kind} team of {req.id} at {format_time(rec.start)}, "
                    f"due by {format_time(due)}"
                )
                finds.append(finding(m, "visit.entry_late", host, ids, due, msg))
        if stay is not None and rec.end is not None and rec.end <= ctx.as_of:
            # The stay runs from the time the text names: entry, or another event the
            # record carries (VD11: the arrival in the specified area, `arrived_area`).
            anchor, since = rec.start, "entry"
            if m.stay_from is not None:
                got, since = time_field(rec, m.stay_from), m.stay_from
                if got is None or not rec.start <= got <= rec.end:
                    why = "no" if got is None else "an out-of-window"
                    msg = (
                        f"the stay of the {kind} team of {req.id} cannot be judged under "
                        f"{m.id}: {rec.id} has {why} {m.stay_from}"
                    )
                    finds.append(unassessable(m, req.party, ids, None, msg))
                    continue
                anchor = got
            due = anchor + stay
            ob, status = _judge(m, req.party, f"{req.id}:stay", due, rec.end, rec, ids)
            obs.append(ob)
            if status == "late":
                msg = (
                    f"the {kind} team of {req.id} stayed until {format_time(rec.end)}, "
                    f"{m.max_stay} after {since} is {format_time(due)}"
                )
                finds.append(finding(m, "visit.stay_exceeded", req.party, ids, due, msg))
    return obs, finds


def agreed(m: am.VisitPlan, ctx: Context, host: str, req: Event, plan: Event) -> bool:
    """Did the host accept ``plan`` as it stands: an answer of the host's, with ``decision``
    ``accept``, made after the plan (a later revision needs its own acceptance)?"""
    return any(
        a.party == host and a.raw.get("decision") == "accept" and a.time >= plan.time
        for a in ctx.attached.get((req.id, m.answer_form), ())
    )


def visit_plan(m: am.VisitPlan, ctx: Context) -> Result:
    """The plan, once submitted: far enough ahead of the start it plans, and answered."""
    obs: list[Obligation] = []
    finds: list[Finding] = []
    lead = parse_duration(m.lead, "lead") if m.lead else None
    answer = parse_duration(m.answer_within, "answer_within") if m.answer_within else None
    for req in _visits(ctx, m.request_kind):
        host = req.to[0]
        plans = [p for p in ctx.attached.get((req.id, m.form), ()) if p.party == req.party]
        if not plans:
            continue
        first = plans[0]
        # The start as last planned, against the first submission (revising does not restart).
        last = next((p for p in reversed(plans) if p.start is not None), None)
        if lead is not None and last is not None and last.start is not None:
            due = last.start - lead
            if m.lead_unless_agreed and agreed(m, ctx, host, req, last):
                due = max(due, first.time)  # "unless otherwise agreed": the plan as accepted
            ob, found = owed_on(
                ctx,
                m,
                req.party,
                f"{req.id}:plan",
                (req.id,),
                due,
                first,
                ("notification.missing", "notification.late"),
                f"the {m.form} for {req.id} (start {format_time(last.start)})",
            )
            obs.append(ob)
            finds.extend(found)
        if answer is not None:
            answers = [
                a
                for a in ctx.attached.get((req.id, m.answer_form), ())
                if a.party == host and a.time >= first.time
            ]
            ob, found = owed_on(
                ctx,
                m,
                host,
                f"{req.id}:answer",
                (req.id, first.id),
                first.time + answer,
                answers[0] if answers else None,
                ("reply.missing", "reply.late"),
                f"{host}'s answer to the {m.form} {first.id}",
            )
            obs.append(ob)
            finds.extend(found)
    return obs, finds


def visit_report(m: am.VisitReport, ctx: Context) -> Result:
    """A report owed once the visit is known to have ended: the visiting party's activity
    that the request names (its flight) has an end."""
    obs: list[Obligation] = []
    finds: list[Finding] = []
    within = parse_duration(m.within, "within")
    for req in _visits(ctx, m.request_kind):
        ref = req.raw.get("activity")
        act = ctx.activity_by_id.get(ref) if isinstance(ref, str) else None
        if act is None and withdrawn(req, ref):
            # Whose it was, and when it ended, went with it: no report can be judged owed.
            msg = f"{req.party}'s {m.form} on {req.id} cannot be judged: {ref} was withdrawn"
            finds.append(unassessable(m, req.party, (req.id, str(ref)), None, msg))
            continue
        if act is None or act.party != req.party or act.end is None:
            continue
        reports = [
            r
            for r in ctx.attached.get((req.id, m.form), ())
            if r.party == req.party and (not m.to_all or ctx.to_all(r))
        ]
        ob, found = owed_on(
            ctx,
            m,
            req.party,
            req.id,
            (req.id, act.id),
            act.end + within,
            reports[0] if reports else None,
            ("notification.missing", "notification.late"),
            f"{req.party}'s {m.form} on {req.id}",
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def observer_terms(m: am.ObserverTerms, ctx: Context) -> Result:
    """Invited parties answer; those who accepted report after the activity ends."""
    obs: list[Obligation] = []
    finds: list[Finding] = []
    reply = parse_duration(m.reply_within, "reply_within") if m.reply_within else None
    report = parse_duration(m.report_within, "report_within") if m.report_within else None
    if reply is None and report is None:
        return obs, finds
    for inv in ctx.by_type["notification"]:
        if inv.raw["form"] != m.form or not ctx.member(inv.party, inv.time):
            continue
        members = ctx.members_on(inv.time)
        if not inv.to or "*" in inv.to:
            invited = sorted(members - {inv.party})
        else:
            invited = sorted((set(inv.to) & members) - {inv.party})
        ref = inv.raw.get("activity")
        act = ctx.activity_by_id.get(ref) if isinstance(ref, str) else None
        if act is not None and act.party != inv.party:
            act = None
        gone = act is None and withdrawn(inv, ref)
        for p in invited:
            ans = ctx.replies.get((inv.id, p))
            if reply is not None:
                ob, found = owed_on(
                    ctx,
                    m,
                    p,
                    inv.id,
                    (inv.id,),
                    inv.time + reply,
                    ans,
                    ("reply.missing", "reply.late"),
                    f"{p}'s answer to the invitation {inv.id}",
                )
                obs.append(ob)
                finds.extend(found)
            accepted = ans is not None and ans.raw.get("decision") == "accept"
            if report is not None and accepted and gone:
                msg = f"{p}'s {m.report_form} on {inv.id} cannot be judged: {ref} was withdrawn"
                finds.append(unassessable(m, p, (inv.id, str(ref)), None, msg))
            if report is not None and accepted and act is not None and act.end is not None:
                reports = [r for r in ctx.attached.get((inv.id, m.report_form), ()) if r.party == p]
                ob, found = owed_on(
                    ctx,
                    m,
                    p,
                    f"{inv.id}:report",
                    (act.id, inv.id),
                    act.end + report,
                    reports[0] if reports else None,
                    ("notification.missing", "notification.late"),
                    f"{p}'s {m.report_form} on {act.id}",
                )
                obs.append(ob)
                finds.extend(found)
    return obs, finds
