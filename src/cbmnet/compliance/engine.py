"""``evaluate(agreement, events, as_of)``: who owed what to whom by when, and what went wrong.

Pure and deterministic: no clock, no I/O; the same inputs give the same report byte for
byte. Events dated after ``as_of`` have not happened yet and are ignored. An obligation
whose due time is after ``as_of`` and is unmet is ``pending``, not a finding.

Each rule of the vocabulary is one function ``(measure, context) -> (obligations,
findings)`` in ``RULES``; measures combine by concatenation, with no special cases.
Zone geometry (shapely, WGS84) comes in ready-made in ``zones``, so the engine never
reads border files itself.
"""

from __future__ import annotations

import bisect
import gc
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from cbmnet.agreements import model as am
from cbmnet.compliance.events import FORMATIONS, Event
from cbmnet.compliance.report import (
    Finding,
    Obligation,
    Report,
    Status,
    sort_findings,
    sort_obligations,
)
from cbmnet.compliance.timeutil import (
    MS_PER_DAY,
    date_in_year,
    format_time,
    parse_duration,
    year_of,
)
from cbmnet.errors import FormatError

Geometry = Any  # shapely geometry in WGS84 lon/lat
Result = tuple[list[Obligation], list[Finding]]


@dataclass
class Context:
    agreement: am.Agreement
    as_of: int
    events: list[Event]
    zones: Mapping[str, Geometry]
    parties: frozenset[str] = field(init=False)
    by_type: dict[str, list[Event]] = field(init=False)
    notices: dict[tuple[str, str, str], list[Event]] = field(init=False)
    """(party, form, subject event id) -> notifications, earliest first."""
    calendars: dict[tuple[str, str, int], list[Event]] = field(init=False)
    """(party, form, year) -> notifications listing activities, earliest first."""
    exchanges: dict[tuple[str, str, str], list[Event]] = field(init=False)

    def __post_init__(self) -> None:
        self.parties = frozenset(self.agreement.parties)
        self.by_type = defaultdict(list)
        self.notices = defaultdict(list)
        self.calendars = defaultdict(list)
        self.exchanges = defaultdict(list)
        # Events keep their input order here; only where "the first" matters (buckets of
        # notices, calendars, exchanges, answers) is (time, id) order established, below.
        # Output order never depends on input order: the report is sorted at the end.
        for e in self.events:
            if e.time > self.as_of:
                continue
            self.by_type[e.type].append(e)
            if e.type == "notification":
                if not self._to_all(e):
                    continue  # addressed to some only: it does not discharge a duty to all
                form = e.raw["form"]
                if e.raw.get("activity"):
                    self.notices[(e.party, form, e.raw["activity"])].append(e)
                for a in e.raw.get("activities") or ():
                    self.notices[(e.party, form, a)].append(e)
                if e.raw.get("year") is not None:
                    self.calendars[(e.party, form, e.raw["year"])].append(e)
            elif e.type == "exchange":
                self.exchanges[(e.party, e.raw["form"], e.raw["period"])].append(e)
        order = attrgetter("time", "id")
        for buckets in (self.notices, self.calendars, self.exchanges):
            for bucket in buckets.values():
                if len(bucket) > 1:
                    bucket.sort(key=order)
        # The addressee's first answer to each request (others' remarks do not count).
        self.answers: dict[str, Event] = {}
        requests = {e.id: e for e in self.by_type["request"]}
        for e in self.by_type["response"]:
            req = requests.get(e.raw["request"])
            if (
                req is not None
                and req.to
                and e.party == req.to[0]
                and e.time >= req.time  # an answer cannot precede its question
            ):
                best = self.answers.get(req.id)
                if best is None or order(e) < order(best):
                    self.answers[req.id] = e
        self._zone_cache: dict[tuple[str, str, str], float] = {}
        self._listed: dict[str, frozenset[str]] = {}
        self._scoped: dict[str, list[Event]] = {}

    def scoped(self, scope: am.Scope) -> list[Event]:
        """The parties' activities in ``scope``, in time order (computed once per scope)."""
        key = scope.model_dump_json()
        got = self._scoped.get(key)
        if got is None:
            got = self._scoped[key] = [a for a in self.activities(scope) if _in_scope(self, a, scope)]
        return got

    def listed(self, notice: Event) -> frozenset[str]:
        """The activities a calendar or announcement names (computed once per notice)."""
        got = self._listed.get(notice.id)
        if got is None:
            acts = set(notice.raw.get("activities") or ())
            if notice.raw.get("activity"):
                acts.add(notice.raw["activity"])
            got = self._listed[notice.id] = frozenset(acts)
        return got

    def _to_all(self, notice: Event) -> bool:
        """``to`` absent, ``["*"]``, or naming every other party of the agreement."""
        if not notice.to or "*" in notice.to:
            return True
        return self.parties - {notice.party} <= set(notice.to)

    def zone(self, name: str) -> Geometry:
        if name not in self.zones:
            raise FormatError(f"zone {name!r}: no geometry supplied to the engine")
        return self.zones[name]

    def distance_km(self, event: Event, key: str, zone: str) -> float | None:
        geom = event.raw.get(key)
        if not isinstance(geom, dict):
            return None
        memo = (event.id, key, zone)
        if memo not in self._zone_cache:
            from shapely.geometry import shape

            from cbmnet.geo.distance import distance_km

            try:
                self._zone_cache[memo] = distance_km(shape(geom), self.zone(zone))
            except FormatError:
                raise
            except Exception as e:  # shapely/pyproj on a geometry the parser let through
                raise FormatError(f"event {event.id!r}, field {key!r}: {e}") from e
        return self._zone_cache[memo]

    def activities(self, scope: am.Scope | None = None) -> list[Event]:
        """The parties' activities, only those of the scope's categories if it names any."""
        if not hasattr(self, "_acts"):
            self._acts: dict[str | None, list[Event]] = defaultdict(list)
            for e in self.by_type["activity"]:
                if e.party in self.parties:
                    self._acts[None].append(e)
                    self._acts[e.raw.get("category")].append(e)
        if scope is None or not scope.categories:
            return self._acts[None]
        if len(scope.categories) == 1:
            return self._acts[scope.categories[0]]
        key = ",".join(sorted(scope.categories))
        if key not in self._acts:
            cats = set(scope.categories)
            self._acts[key] = [e for e in self._acts[None] if e.raw.get("category") in cats]
        return self._acts[key]


def _in_scope(ctx: Context, act: Event, scope: am.Scope) -> bool:
    if scope.categories and act.raw.get("category") not in scope.categories:
        return False
    if scope.threshold:
        size = act.size
        for k, v in scope.threshold.items():
            if size.get(k, 0) >= v:
                break
        else:
            return False
    if scope.formation_at_least is not None:
        f = act.raw.get("formation")
        if f is None or FORMATIONS.index(f) < FORMATIONS.index(scope.formation_at_least):
            return False
    if scope.near_zone is not None and scope.within_km is not None:
        d = ctx.distance_km(act, "location", scope.near_zone)
        if d is None or d > scope.within_km:
            return False
    return True


def _settle(
    ctx: Context,
    m: am._Measure,
    party: str,
    subject: str,
    due: int,
    fulfilment: Event | None,
    subjects: tuple[str, ...],
) -> tuple[Obligation, Status]:
    if fulfilment is not None:
        status: Status = "met" if fulfilment.time <= due else "late"
    else:
        status = "missed" if due < ctx.as_of else "pending"
    ob = Obligation(
        id=f"{m.id}:{party}:{subject}",
        party=party,
        provision=m.provision,
        kind=m.rule,  # type: ignore[attr-defined]
        due=due,
        status=status,
        met_by=fulfilment.id if fulfilment is not None else None,
        subjects=subjects,
    )
    return ob, status


def _finding(
    m: am._Measure,
    code: str,
    party: str,
    subjects: Iterable[str],
    due: int | None,
    message: str,
    period: str | None = None,
) -> Finding:
    return Finding(code, party, m.provision, tuple(subjects), due, message, period, m.id)


def _owed(
    ctx: Context,
    m: am._Measure,
    party: str,
    subject: Event,
    due: int,
    fulfilment: Event | None,
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """An obligation to act on ``subject`` by ``due``, and its missing/late finding if any."""
    ob, status = _settle(ctx, m, party, subject.id, due, fulfilment, (subject.id,))
    if status == "missed":
        return ob, [_finding(m, codes[0], party, [subject.id], due, f"{what} never came")]
    if status == "late" and fulfilment is not None:
        msg = f"{what} came {format_time(fulfilment.time)}, due {format_time(due)}"
        return ob, [_finding(m, codes[1], party, [subject.id, fulfilment.id], due, msg)]
    return ob, []


def _notice_rule(missing: str, late: str, what: str) -> Callable[[Any, Context], Result]:
    """Prior notification and observation invitation: same shape, different codes."""

    def rule(m: am.PriorNotification | am.ObservationInvitation, ctx: Context) -> Result:
        lead = parse_duration(m.lead, "lead")
        obs, finds = [], []
        longer = getattr(m, "alert_longer_than", None)
        min_alert_ms = parse_duration(longer, "alert_longer_than") if longer else None
        for act in ctx.scoped(m.scope):
            assert act.start is not None and act.end is not None
            if min_alert_ms is not None and act.raw.get("alert") and act.end - act.start <= min_alert_ms:
                continue  # a short alert activity: nothing owed under this measure
            alert = bool(act.raw.get("alert")) and m.alert_exempt
            due = act.start if alert else act.start - lead
            sent = ctx.notices.get((act.party, m.form, act.id))
            first = sent[0] if sent else None
            ob, found = _owed(
                ctx, m, act.party, act, due, first, (missing, late), f"{what} for {act.id}"
            )
            obs.append(ob)
            finds.extend(found)
        return obs, finds

    return rule


def _end_of_day(ms: int) -> int:
    return ms + MS_PER_DAY - 1


def annual_calendar(m: am.AnnualCalendar, ctx: Context) -> Result:
    obs, finds = [], []
    for act in ctx.scoped(m.scope):
        if m.alert_exempt and act.raw.get("alert"):
            continue
        assert act.start is not None
        year = year_of(act.start)
        due = _end_of_day(date_in_year(year + m.due_year_offset, m.due, m.id))
        listed = [c for c in ctx.calendars.get((act.party, m.form, year), []) if act.id in ctx.listed(c)]
        first = listed[0] if listed else None
        ob, status = _settle(ctx, m, act.party, f"{act.id}:{year}", due, first, (act.id,))
        obs.append(ob)
        if status in ("missed", "late"):
            when = f" (it appeared only {format_time(first.time)})" if first else ""
            finds.append(
                _finding(
                    m,
                    "calendar.missing",
                    act.party,
                    [act.id] + ([first.id] if first else []),
                    due,
                    f"{act.id} is not in the {year} calendar due {format_time(due)}{when}",
                    str(year),
                )
            )
    return obs, finds


def advance_announcement(m: am.AdvanceAnnouncement, ctx: Context) -> Result:
    obs, finds = [], []
    for act in ctx.scoped(m.scope):
        assert act.start is not None
        year = year_of(act.start)
        due = _end_of_day(date_in_year(year - m.years_ahead, m.due, m.id))
        announced = [
            n
            for form in (m.form, "annual_calendar")
            for n in ctx.notices.get((act.party, form, act.id), [])
        ]
        announced.sort(key=lambda n: (n.time, n.id))
        first = announced[0] if announced else None
        ob, status = _settle(ctx, m, act.party, act.id, due, first, (act.id,))
        obs.append(ob)
        if status in ("missed", "late"):
            finds.append(
                _finding(
                    m,
                    "announcement.missing",
                    act.party,
                    [act.id],
                    due,
                    f"{act.id} ({year}) needed an announcement by {format_time(due)}, "
                    f"{m.years_ahead} year(s) ahead",
                )
            )
    return obs, finds


def activity_cap(m: am.ActivityCap, ctx: Context) -> Result:
    finds: list[Finding] = []
    per_party: dict[str, list[Event]] = defaultdict(list)
    for act in ctx.scoped(m.scope):
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
                        _finding(
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
                        _finding(
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


def zone_rule(m: am.ZoneRule, ctx: Context) -> Result:
    finds = []
    key = "location" if m.subject in ("location", "flight") else m.subject
    for act in ctx.scoped(m.scope):
        if m.aircraft_roles and act.raw.get("aircraft_role") not in m.aircraft_roles:
            continue
        if m.missile_classes and act.raw.get("missile_class") not in m.missile_classes:
            continue
        d = ctx.distance_km(act, key, m.zone)
        if d is None:
            continue
        bad = d == 0.0 if m.min_distance_km == 0 else d < m.min_distance_km
        if bad:
            where = (
                f"{d:.1f} km from {m.zone}, closer than {m.min_distance_km:g} km"
                if m.min_distance_km
                else f"inside {m.zone}"
            )
            finds.append(
                _finding(
                    m,
                    "constraint.zone_violation",
                    act.party,
                    [act.id],
                    act.start,
                    f"{act.id}: {m.subject} {where}",
                )
            )
    return [], finds


def periodic_exchange(m: am.PeriodicExchange, ctx: Context) -> Result:
    obs, finds = [], []
    times = [e.time for e in ctx.events if e.time <= ctx.as_of and e.party in ctx.parties]
    window_start = min(times) if times else ctx.as_of
    first = year_of(window_start) - m.due_year_offset - 1
    if m.first_period is not None:
        first = max(first, m.first_period)
    last = year_of(ctx.as_of) - m.due_year_offset + 1
    delivered = {p for (_, form, p) in ctx.exchanges if form == m.form}
    for period in range(first, last + 1):
        due = _end_of_day(date_in_year(period + m.due_year_offset, m.due, m.id))
        if due < window_start and m.first_period is None and str(period) not in delivered:
            continue  # before the record begins, and nobody delivered it: nothing to judge
        if due > ctx.as_of + 366 * MS_PER_DAY:
            continue
        for party in sorted(ctx.parties):
            got = ctx.exchanges.get((party, m.form, str(period)), [])
            first_ex = got[0] if got else None
            ob, status = _settle(ctx, m, party, str(period), due, first_ex, ())
            obs.append(ob)
            ids = [e.id for e in got]
            if status == "missed":
                finds.append(
                    _finding(
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
                    _finding(
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
                        _finding(
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


def _between_parties(ctx: Context, req: Event, anyone: bool = False) -> bool:
    """A request binds when a party (or, if ``anyone``, a non-party such as a secretariat)
    asks another party; never a party asking itself."""
    if not req.to or req.to[0] not in ctx.parties or req.party == req.to[0]:
        return False
    return anyone or req.party in ctx.parties


def _answer(ctx: Context, req: Event) -> Event | None:
    return ctx.answers.get(req.id)


def _reply(
    m: am._Measure,
    ctx: Context,
    kind: str,
    within: int,
    codes: tuple[str, str],
    anyone: bool = False,
) -> Result:
    obs, finds = [], []
    for req in ctx.by_type["request"]:
        if req.raw.get("kind") != kind or not _between_parties(ctx, req, anyone):
            continue
        host = req.to[0]
        due = req.time + within
        ob, found = _owed(
            ctx,
            m,
            host,
            req,
            due,
            _answer(ctx, req),
            codes,
            f"the answer to {kind} request {req.id} from {req.party}",
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def reply_deadline(m: am.ReplyDeadline, ctx: Context) -> Result:
    codes = ("reply.missing", "reply.late") if m.code == "reply" else ("check.missed", "check.missed")
    within = parse_duration(m.within, "within")
    return _reply(m, ctx, m.request_kind, within, codes, m.requesters == "anyone")


def quota(m: am.Quota, ctx: Context) -> Result:
    obs: list[Obligation] = []
    finds: list[Finding] = []
    if m.reply_within is not None:
        obs, finds = _reply(
            m,
            ctx,
            m.request_kind,
            parse_duration(m.reply_within, "reply_within"),
            ("reply.missing", "reply.late"),
        )
    accepted: dict[tuple[str, int], int] = defaultdict(int)
    accepted_from: dict[tuple[str, str, int], int] = defaultdict(int)
    # Quota use accrues in time order, whatever order the events came in.
    asked = [r for r in ctx.by_type["request"] if r.raw.get("kind") == m.request_kind]
    asked.sort(key=attrgetter("time", "id"))
    for req in asked:
        if req.raw.get("kind") != m.request_kind or not _between_parties(ctx, req):
            continue
        host, year = req.to[0], year_of(req.time)
        ans = _answer(ctx, req)
        if ans is None:
            continue
        if ans.raw.get("decision") == "accept":
            accepted[(host, year)] += 1
            accepted_from[(host, req.party, year)] += 1
        elif ans.raw.get("decision") == "refuse":
            total_ok = accepted[(host, year)] < m.per_year
            mine_ok = m.per_requester is None or accepted_from[(host, req.party, year)] < m.per_requester
            if total_ok and mine_ok:
                finds.append(
                    _finding(
                        m,
                        "quota.refusal_within_quota",
                        host,
                        [req.id, ans.id],
                        ans.time,
                        f"{host} refused {m.request_kind} request {req.id} from {req.party} with "
                        f"{accepted[(host, year)]} of {m.per_year} accepted in {year}",
                        str(year),
                    )
                )
    return obs, finds


def event_notification(m: am.EventNotification, ctx: Context) -> Result:
    obs, finds = [], []
    within = parse_duration(m.within, "within")
    for inc in ctx.by_type["incident"]:
        if inc.raw.get("kind") not in m.incident_kinds or inc.party not in ctx.parties:
            continue
        due = inc.time + within
        sent = ctx.notices.get((inc.party, m.form, inc.id))
        ob, found = _owed(
            ctx,
            m,
            inc.party,
            inc,
            due,
            sent[0] if sent else None,
            ("notification.missing", "notification.late"),
            f"{m.form} for {inc.id}",
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def launch_notification(m: am.LaunchNotification, ctx: Context) -> Result:
    obs, finds = [], []
    lead = parse_duration(m.lead, "lead")
    max_window = parse_duration(m.max_window, "max_window") if m.max_window else None
    for act in ctx.activities():
        if act.raw.get("category") != "missile_launch":
            continue
        if m.missile_classes and act.raw.get("missile_class") not in m.missile_classes:
            continue
        assert act.start is not None
        sent = ctx.notices.get((act.party, m.form, act.id))
        first = sent[0] if sent else None
        w_start = first.start if first is not None and first.start is not None else None
        # A notice cannot move its own deadline past the launch by declaring a later window.
        due = (min(w_start, act.start) if w_start is not None else act.start) - lead
        ob, found = _owed(
            ctx,
            m,
            act.party,
            act,
            due,
            first,
            ("notification.missing", "notification.late"),
            f"notice of launch {act.id}",
        )
        obs.append(ob)
        finds.extend(found)
        if first is not None and first.start is not None and first.end is not None:
            if not first.start <= act.start <= first.end:
                finds.append(
                    _finding(
                        m,
                        "launch.outside_window",
                        act.party,
                        [act.id, first.id],
                        first.start,
                        f"launch {act.id} at {format_time(act.start)} is outside its declared window",
                    )
                )
            if max_window is not None and first.end - first.start > max_window:
                finds.append(
                    _finding(
                        m,
                        "launch.window_too_long",
                        act.party,
                        [act.id, first.id],
                        first.start,
                        f"declared window for {act.id} is longer than {m.max_window}",
                    )
                )
    return obs, finds


RULES: dict[str, Callable[[Any, Context], Result]] = {
    "prior_notification": _notice_rule(
        "notification.missing", "notification.late", "prior notification"
    ),
    "observation_invitation": _notice_rule(
        "observation.invitation_missing", "observation.invitation_late", "observer invitation"
    ),
    "annual_calendar": annual_calendar,
    "advance_announcement": advance_announcement,
    "activity_cap": activity_cap,
    "zone_rule": zone_rule,
    "periodic_exchange": periodic_exchange,
    "reply_deadline": reply_deadline,
    "quota": quota,
    "event_notification": event_notification,
    "launch_notification": launch_notification,
}


def evaluate(
    agreement: am.Agreement,
    events: Sequence[Event],
    as_of: int,
    zones: Mapping[str, Geometry] | None = None,
) -> Report:
    """Obligations and findings of ``agreement`` over ``events`` as of ``as_of`` (epoch ms)."""
    # The engine builds many small acyclic objects; the cyclic garbage collector would
    # rescan every live event each time. Pause it for the evaluation (it is reference
    # counting, not the collector, that frees these).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ctx = Context(agreement, as_of, list(events), zones or {})
        obligations: list[Obligation] = []
        findings: list[Finding] = []
        for measure in agreement.measures:
            obs, finds = RULES[measure.rule](measure, ctx)
            obligations.extend(obs)
            findings.extend(finds)
        return Report(agreement.id, as_of, sort_obligations(obligations), sort_findings(findings))
    finally:
        if was_enabled:
            gc.enable()
