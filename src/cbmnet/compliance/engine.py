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
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
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
    parse_time,
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
        # Every State that is or was a party; who was bound WHEN is ``member`` /
        # ``members_on`` (a withdrawn party owes nothing, and is owed no copy, after it left).
        self.parties = frozenset(self.agreement.parties)
        self._spans = {p: m.span_ms() for p, m in self.agreement.membership.items()}
        self._changes = self.agreement.membership_changes()
        self._epochs: dict[int, frozenset[str]] = {}
        self.by_type = defaultdict(list)
        self.notices = defaultdict(list)
        self.calendars = defaultdict(list)
        self.exchanges = defaultdict(list)
        # Events keep their input order here; only where "the first" matters (buckets of
        # notices, calendars, exchanges, answers) is (time, id) order established, below.
        # Output order never depends on input order: the report is sorted at the end.
        self.attached: dict[tuple[str, str], list[Event]] = defaultdict(list)
        """(request or invitation id, form) -> notifications naming it in ``request``."""
        self.activity_by_id: dict[str, Event] = {}
        for e in self.events:
            if e.time > self.as_of:
                continue
            self.by_type[e.type].append(e)
            if e.type == "activity":
                self.activity_by_id[e.id] = e
            elif e.type == "notification":
                ref = e.raw.get("request")
                if isinstance(ref, str):
                    # Visit records and reports travel to the two sides, or to all: kept
                    # whoever they are addressed to; a rule that needs "to all" checks.
                    self.attached[(ref, e.raw["form"])].append(e)
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
        for buckets in (self.notices, self.calendars, self.exchanges, self.attached):
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
        # Each party's first answer to a notification (an invitation to observe).
        self.replies: dict[tuple[str, str], Event] = {}
        notes = {e.id: e for e in self.by_type["notification"]}
        for e in self.by_type["response"]:
            note = notes.get(e.raw["request"])
            if note is not None and e.party != note.party and e.time >= note.time:
                best = self.replies.get((note.id, e.party))
                if best is None or order(e) < order(best):
                    self.replies[(note.id, e.party)] = e
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

    def member(self, party: str, ms: int) -> bool:
        """Was ``party`` bound by the agreement at ``ms``?"""
        if party not in self.parties:
            return False
        span = self._spans.get(party)
        if span is None:
            return True
        start, end = span
        return (start is None or start <= ms) and (end is None or ms < end)

    def members_on(self, ms: int) -> frozenset[str]:
        """The parties bound at ``ms`` (computed once per stretch without a change)."""
        epoch = bisect.bisect_right(self._changes, ms)
        got = self._epochs.get(epoch)
        if got is None:
            got = self._epochs[epoch] = self.agreement.members_on(ms)
        return got

    def _to_all(self, notice: Event) -> bool:
        """``to`` absent, ``["*"]``, or naming every other party that is a member on the
        notice's date (a State that has left is owed no copy)."""
        if not notice.to or "*" in notice.to:
            return True
        return self.members_on(notice.time) - {notice.party} <= set(notice.to)

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
                if self.member(e.party, _start(e)):
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


def _start(e: Event) -> int:
    """The date membership is judged on: an activity's start, any other event's time."""
    return e.start if e.type == "activity" and e.start is not None else e.time


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
    convention = getattr(m, "convention", False)
    return Finding(
        code,
        party,
        m.provision,
        tuple(subjects),
        due,
        message,
        period,
        m.id,
        unconfirmed=m.unconfirmed,
        convention=CONVENTION if convention else None,
    )


CONVENTION = "the text sets no figure ('immediately', or none); this window is cbmnet's reading"
"""Why a finding under a convention window is information, never an accusation."""


def _withdrawn(e: Event, ref: object) -> bool:
    """Does ``e`` name ``ref`` as an event its owner withdrew since (the hub marks those
    in ``withdrawn_refs``: another party's reference never blocks a withdrawal)?"""
    return isinstance(ref, str) and ref in (e.raw.get("withdrawn_refs") or ())


def _unassessable(
    m: am._Measure, party: str, subjects: Iterable[str], due: int | None, message: str
) -> Finding:
    """What the engine says where an event it would judge on was withdrawn: that it
    cannot judge (severity info), rather than accuse on half a record or stay silent."""
    return _finding(m, "data.unassessable", party, subjects, due, message)


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
    return _owed_on(ctx, m, party, subject.id, (subject.id,), due, fulfilment, codes, what)


def _owed_on(
    ctx: Context,
    m: am._Measure,
    party: str,
    key: str,
    subjects: tuple[str, ...],
    due: int,
    fulfilment: Event | None,
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """``_owed`` where one subject event carries several obligations (``key`` tells them
    apart in the obligation id) or several events are concerned (``subjects``)."""
    ob, status = _settle(ctx, m, party, key, due, fulfilment, subjects)
    if status == "missed":
        return ob, [_finding(m, codes[0], party, subjects, due, f"{what} never came")]
    if status == "late" and fulfilment is not None:
        msg = f"{what} came {format_time(fulfilment.time)}, due {format_time(due)}"
        return ob, [_finding(m, codes[1], party, [*subjects, fulfilment.id], due, msg)]
    return ob, []


def _forces_unsized(act: Event) -> list[str]:
    """The ``forces[i].size`` an activity's size lacks where that size is the sum of its
    forces (no ``size`` of its own): their sum is then only a lower bound."""
    forces = act.raw.get("forces")
    if "size" in act.raw or not isinstance(forces, list):
        return []
    return [f"forces[{i}].size" for i, f in enumerate(forces) if f.get("size") is None]


def _undecided(ctx: Context, scope: am.Scope) -> list[tuple[Event, list[str]]]:
    """Activities of the scope's categories whose forces' summed size falls short of the
    threshold only because a force's size is missing: neither owed nor clear."""
    if not scope.threshold:
        return []
    out = []
    open_scope: am.Scope | None = None
    for act in ctx.activities(scope):
        missing = _forces_unsized(act)
        if not missing or _in_scope(ctx, act, scope):
            continue
        open_scope = open_scope or scope.model_copy(update={"threshold": {}})
        if _in_scope(ctx, act, open_scope):
            out.append((act, missing))
    return out


def _undecided_findings(
    ctx: Context, m: am._Measure, scope: am.Scope, owner: Callable[[Event], str]
) -> list[Finding]:
    """``data.unassessable`` for each activity ``_undecided`` finds, against its owner."""
    return [
        _unassessable(
            m,
            owner(act),
            (act.id,),
            None,
            f"{act.id} cannot be judged under {m.id}: its size is the sum of its forces "
            f"and {', '.join(missing)} is missing",
        )
        for act, missing in _undecided(ctx, scope)
        if ctx.member(owner(act), _start(act))
    ]


def _notice_owner(m: am.PriorNotification | am.ObservationInvitation, act: Event) -> str:
    """Who owes the notice: the activity's party, or under ``owed_by: host`` the State on
    whose territory it takes place (VD11 ¶39), the party where no ``host`` is given."""
    if getattr(m, "owed_by", "party") == "host":
        host = act.raw.get("host")
        if isinstance(host, str) and host:
            return host
    return act.party


def _one_of_year(
    ctx: Context,
    m: am.PriorNotification,
    owner: str,
    year: int,
    acts: list[tuple[Event, int]],
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """One activity of the year, of the owner's choosing, is owed a notice (US-USSR 1989
    Art. I): any one on-time notice meets the duty. Until the year is over another
    activity may still be notified, so it is missed (or late) only after 31 December."""
    subjects = tuple(a.id for a, _ in acts)
    on_time: tuple[Event, int] | None = None
    late: tuple[Event, int] | None = None
    for act, due in acts:
        sent = ctx.notices.get((owner, m.form, act.id))
        if not sent:
            continue
        n = sent[0]
        pick = (n, due)
        if n.time <= due:
            if on_time is None or (n.time, n.id) < (on_time[0].time, on_time[0].id):
                on_time = pick
        elif late is None or (n.time, n.id) < (late[0].time, late[0].id):
            late = pick
    year_end = date_in_year(year + 1, "01-01", m.id) - 1
    status: Status
    if on_time is not None:
        status, due, met_by = "met", on_time[1], on_time[0]
    elif year_end >= ctx.as_of:
        status, due, met_by = "pending", year_end, None
    elif late is not None:
        status, due, met_by = "late", late[1], late[0]
    else:
        status, due, met_by = "missed", year_end, None
    ob = Obligation(
        id=f"{m.id}:{owner}:{year}",
        party=owner,
        provision=m.provision,
        kind=m.rule,
        due=due,
        status=status,
        met_by=met_by.id if met_by is not None else None,
        subjects=subjects,
    )
    listed = ", ".join(subjects)
    if status == "missed":
        msg = f"{what} of one of {owner}'s {year} activities in scope ({listed}) never came"
        return ob, [_finding(m, codes[0], owner, subjects, due, msg, str(year))]
    if status == "late" and met_by is not None:
        msg = (
            f"no {year} activity of {owner} in scope ({listed}) was notified in time: "
            f"the first notice came {format_time(met_by.time)}, due {format_time(due)}"
        )
        return ob, [_finding(m, codes[1], owner, [*subjects, met_by.id], due, msg, str(year))]
    return ob, []


def _notice_rule(missing: str, late: str, what: str) -> Callable[[Any, Context], Result]:
    """Prior notification and observation invitation: same shape, different codes."""

    def rule(m: am.PriorNotification | am.ObservationInvitation, ctx: Context) -> Result:
        lead = parse_duration(m.lead, "lead")
        obs, finds = [], []
        longer = getattr(m, "alert_longer_than", None)
        min_alert_ms = parse_duration(longer, "alert_longer_than") if longer else None
        from_date = getattr(m, "lead_from", "start") == "start_utc_date"
        notify = getattr(m, "notify", "each")
        per_year: dict[tuple[str, int], list[tuple[Event, int]]] = defaultdict(list)
        for act in ctx.scoped(m.scope):
            assert act.start is not None and act.end is not None
            if min_alert_ms is not None and act.raw.get("alert") and act.end - act.start <= min_alert_ms:
                continue  # a short alert activity: nothing owed under this measure
            owner = _notice_owner(m, act)
            if not ctx.member(owner, act.start):
                continue  # the host is not bound by this agreement (on that date)
            alert = bool(act.raw.get("alert")) and m.alert_exempt
            # The lead runs back from the start, or from 00:00 UTC of the start's date.
            anchor = act.start - act.start % MS_PER_DAY if from_date else act.start
            due = act.start if alert else anchor - lead
            if notify != "each":
                per_year[(owner, year_of(act.start))].append((act, due))
                continue
            sent = ctx.notices.get((owner, m.form, act.id))
            first = sent[0] if sent else None
            ob, found = _owed(ctx, m, owner, act, due, first, (missing, late), f"{what} for {act.id}")
            obs.append(ob)
            finds.extend(found)
        for (owner, year), acts in sorted(per_year.items()):
            acts.sort(key=lambda x: (x[0].start or 0, x[0].id))
            if notify == "first_of_year":
                act, due = acts[0]
                sent = ctx.notices.get((owner, m.form, act.id))
                first = sent[0] if sent else None
                what_first = f"{what} for {act.id}, the first of {year}"
                ob, found = _owed(ctx, m, owner, act, due, first, (missing, late), what_first)
            else:
                assert isinstance(m, am.PriorNotification)
                ob, found = _one_of_year(ctx, m, owner, year, acts, (missing, late), what)
            obs.append(ob)
            finds.extend(found)
        finds.extend(_undecided_findings(ctx, m, m.scope, lambda a: _notice_owner(m, a)))
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
    finds.extend(_undecided_findings(ctx, m, m.scope, lambda a: a.party))
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
    finds.extend(_undecided_findings(ctx, m, m.scope, lambda a: a.party))
    return obs, finds


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
            finds.append(_unassessable(m, act.party, (act.id,), act.start, msg))
            continue
        assert d is not None
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
    times = [e.time for e in ctx.events if e.time <= ctx.as_of and ctx.member(e.party, e.time)]
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
            if not ctx.member(party, due):
                continue  # owed only by a State that is a member when it falls due
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
    if not req.to or not ctx.member(req.to[0], req.time) or req.party == req.to[0]:
        return False
    return anyone or ctx.member(req.party, req.time)


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


def _int_field(e: Event, key: str) -> int | None:
    """A count events-v1 leaves to the rules (``team_size``, an exchange's ``units``): a
    non-negative integer, anything else is taken as absent."""
    v = e.raw.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _time_field(e: Event, key: str) -> int | None:
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
        start = _time_field(req, "eta")
        start = req.time if start is None else start
        return self.span_of(start, _time_field(req, "until"))

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
            if r.raw.get("decision") == "accept" and _withdrawn(r, r.raw.get("request")):
                k = self.key(r.party)
                blind[k] = max(blind.get(k, -1), year_of(r.time))
        for i, req in enumerate(asked):
            while o < len(outcomes) and (outcomes[o][0], outcomes[o][1]) < (req.time, i):
                self._settle(outcomes[o][2], outcomes[o][3])
                o += 1
            if not _between_parties(ctx, req):
                continue
            ans = _answer(ctx, req)
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
                        _finding(
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
                    finds.append(_unassessable(m, host, [req.id, ans.id, *claims], ans.time, msg))
            elif decision == "refuse":
                if year <= blind.get(self.key(host), -1):
                    msg = (
                        f"{host}'s refusal of {m.request_kind} request {req.id} cannot be judged "
                        f"against its {year} quota: it accepted a request withdrawn since"
                    )
                    finds.append(_unassessable(m, host, [req.id, ans.id], ans.time, msg))
                    continue
                q = self.quota(host, year, req.time)
                finds.append(
                    _finding(
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
    return obs, finds + QuotaBook(m, ctx).replay()


def _visits(ctx: Context, kind: str) -> list[Event]:
    """Requests of ``kind`` that bind: a party asking another."""
    return [r for r in ctx.by_type["request"] if r.raw.get("kind") == kind and _between_parties(ctx, r)]


def _judge(
    m: am._Measure, party: str, key: str, due: int, at: int, by: Event, subjects: tuple[str, ...]
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
                    _finding(
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
            eta = _time_field(req, "eta")
            due = req.time + entry if eta is None else max(req.time + entry, eta)
            ob, status = _judge(m, host, f"{req.id}:entry", due, rec.start, rec, ids)
            obs.append(ob)
            if status == "late":
                msg = (
                    f"{host} admitted the {kind} team of {req.id} at {format_time(rec.start)}, "
                    f"due by {format_time(due)}"
                )
                finds.append(_finding(m, "visit.entry_late", host, ids, due, msg))
        if stay is not None and rec.end is not None and rec.end <= ctx.as_of:
            # The stay runs from the time the text names: entry, or another event the
            # record carries (VD11: the arrival in the specified area, `arrived_area`).
            anchor, since = rec.start, "entry"
            if m.stay_from is not None:
                got, since = _time_field(rec, m.stay_from), m.stay_from
                if got is None or not rec.start <= got <= rec.end:
                    why = "no" if got is None else "an out-of-window"
                    msg = (
                        f"the stay of the {kind} team of {req.id} cannot be judged under "
                        f"{m.id}: {rec.id} has {why} {m.stay_from}"
                    )
                    finds.append(_unassessable(m, req.party, ids, None, msg))
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
                finds.append(_finding(m, "visit.stay_exceeded", req.party, ids, due, msg))
    return obs, finds


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
            ob, found = _owed_on(
                ctx,
                m,
                req.party,
                f"{req.id}:plan",
                (req.id,),
                last.start - lead,
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
            ob, found = _owed_on(
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
        if act is None and _withdrawn(req, ref):
            # Whose it was, and when it ended, went with it: no report can be judged owed.
            msg = f"{req.party}'s {m.form} on {req.id} cannot be judged: {ref} was withdrawn"
            finds.append(_unassessable(m, req.party, (req.id, str(ref)), None, msg))
            continue
        if act is None or act.party != req.party or act.end is None:
            continue
        reports = [
            r
            for r in ctx.attached.get((req.id, m.form), ())
            if r.party == req.party and (not m.to_all or ctx._to_all(r))
        ]
        ob, found = _owed_on(
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
        gone = act is None and _withdrawn(inv, ref)
        for p in invited:
            ans = ctx.replies.get((inv.id, p))
            if reply is not None:
                ob, found = _owed_on(
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
                finds.append(_unassessable(m, p, (inv.id, str(ref)), None, msg))
            if report is not None and accepted and act is not None and act.end is not None:
                reports = [r for r in ctx.attached.get((inv.id, m.report_form), ()) if r.party == p]
                ob, found = _owed_on(
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


def event_notification(m: am.EventNotification, ctx: Context) -> Result:
    """A notice owed ``within`` of each incident; a convention window (the text says
    "immediately") only ever gives info findings."""
    obs, finds = [], []
    within = parse_duration(m.within, "within")
    codes = ("notification.missing", "notification.late")
    for inc in ctx.by_type["incident"]:
        if inc.raw.get("kind") not in m.incident_kinds or not ctx.member(inc.party, inc.time):
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
            codes,
            f"{m.form} for {inc.id}" + (f" (cbmnet's {m.within} convention)" if m.convention else ""),
        )
        obs.append(ob)
        finds.extend(found)
    return obs, finds


def _launch_finding(
    m: am.LaunchNotification,
    provision: str,
    code: str,
    party: str,
    subjects: Iterable[str],
    due: int | None,
    message: str,
    unconfirmed: str | None = None,
) -> Finding:
    """A finding under one article of a launch measure: each distance and notice item cites
    its own, and an item the text read does not settle is unconfirmed (severity info)."""
    why = unconfirmed or m.unconfirmed
    return Finding(code, party, provision, tuple(subjects), due, message, None, m.id, unconfirmed=why)


def _launch_covered(m: am.LaunchNotification, act: Event) -> bool | None:
    """Does the measure cover this launch? None where it cannot tell: with a closed list
    of classes (``excluded_classes``), a class in neither list, or none given."""
    cls = act.raw.get("missile_class")
    if not m.missile_classes or cls in m.missile_classes:
        return True
    if not m.excluded_classes or cls in m.excluded_classes:
        return False
    return None


def _launch_content(m: am.LaunchNotification, act: Event, notice: Event, due: int) -> list[Finding]:
    """What the notice must say and does not (``content``): it came, but not in full. One
    finding per item, under the provision that requires it."""
    finds = []
    for c in m.content:
        if c.item == "window" and (notice.start is None or notice.end is None):
            what = "its launch window (window_start, window_end)"
        elif c.item == "impact" and notice.raw.get("impact") is None:
            what = "the planned impact area (impact)"
        else:
            continue
        msg = f"notice {notice.id} of launch {act.id} does not give {what}"
        code, ids = "notification.incomplete", [act.id, notice.id]
        finds.append(_launch_finding(m, c.provision, code, act.party, ids, due, msg, c.unconfirmed))
    return finds


_LAUNCH_SUBJECT = {"launch": "launch point", "trajectory": "trajectory", "impact": "planned impact area"}


def _launch_distances(
    m: am.LaunchNotification, ctx: Context, act: Event, notice: Event | None
) -> list[Finding]:
    """Each of ``distances``: the launch point and trajectory as the activity records them,
    the impact area as the notice plans it. Where the field (or the notice) is missing,
    ``data.unassessable`` naming it: never silence, never a guess from other fields."""
    finds = []
    for rule in m.distances:
        assert m.zone is not None
        what = _LAUNCH_SUBJECT[rule.subject]
        src = notice if rule.subject == "impact" else act
        d = ctx.distance_km(src, rule.subject, m.zone) if src is not None else None
        if d is None:
            holder = f"{src.id} has no" if src is not None else "no notice gives its"
            msg = f"{act.id} cannot be judged under {m.id} ({rule.provision}): "
            msg += f"{holder} {what} ({rule.subject})"
            code = "data.unassessable"
            finds.append(_launch_finding(m, rule.provision, code, act.party, [act.id], act.start, msg))
            continue
        if d == 0.0 or d < rule.min_distance_km:
            where = (
                f"touches or crosses {m.zone}"
                if d == 0.0
                else f"{d:.1f} km from {m.zone}, closer than {rule.min_distance_km:g} km"
            )
            assert src is not None  # a distance was measured on it
            ids = [act.id] if src is act else [act.id, src.id]
            msg, code = f"{act.id}: {what} {where}", "constraint.zone_violation"
            finds.append(_launch_finding(m, rule.provision, code, act.party, ids, act.start, msg))
    return finds


def launch_notification(m: am.LaunchNotification, ctx: Context) -> Result:
    """Notice before the window, the window itself, what the notice says, and where the
    launch, its trajectory and its planned impact lie (each with the article it rests on)."""
    obs, finds = [], []
    lead = parse_duration(m.lead, "lead")
    max_window = parse_duration(m.max_window, "max_window") if m.max_window else None
    for act in ctx.activities():
        if act.raw.get("category") != "missile_launch":
            continue
        covered = _launch_covered(m, act)
        if covered is None:
            cls = act.raw.get("missile_class")
            why = f"missile_class {cls!r} is neither covered nor excluded" if cls else "no missile_class"
            msg = f"{act.id} cannot be judged under {m.id}: {why}"
            finds.append(_unassessable(m, act.party, (act.id,), act.start, msg))
            continue
        if not covered:
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
        if first is not None:
            finds.extend(_launch_content(m, act, first, due))
        finds.extend(_launch_distances(m, ctx, act, first))
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
    "visit_conduct": visit_conduct,
    "visit_plan": visit_plan,
    "visit_report": visit_report,
    "observer_terms": observer_terms,
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
        for period in range(year - m.due_year_offset - 2, year - m.due_year_offset + 3):
            due = _end_of_day(date_in_year(period + m.due_year_offset, m.due, m.id))
            for t in (due - 366 * MS_PER_DAY, due + 1):
                if as_of < t < horizon:
                    horizon = t
    return horizon
