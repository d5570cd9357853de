"""What every rule reads, and how every rule says what it found.

``Context`` indexes the events once (by type; notices by subject, calendars, exchanges,
first answers) so that each rule looks up rather than scans. The helpers turn a duty, its
due time and what met it into an obligation and its finding the same way for every
measure, so no two rule families word or grade the same failure differently.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from cbmnet.agreements import model as am
from cbmnet.compliance.events import FORMATIONS, Event
from cbmnet.compliance.report import Finding, Obligation, Status
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time
from cbmnet.errors import FormatError

Geometry = Any  # shapely geometry in WGS84 lon/lat
Result = tuple[list[Obligation], list[Finding]]
"""What a rule returns: the obligations it computed and the findings among them."""


@dataclass
class Context:
    """One evaluation's events up to ``as_of``, indexed once so that no rule scans them all."""

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
                if not self.to_all(e):
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

    def to_all(self, notice: Event) -> bool:
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


def settle(
    ctx: Context,
    m: am.Measure,
    party: str,
    subject: str,
    due: int,
    fulfilment: Event | None,
    subjects: tuple[str, ...],
) -> tuple[Obligation, Status]:
    """The obligation and its status: met or late by ``fulfilment``, else missed once
    ``due`` is past ``as_of`` and pending until then (never a finding before its time)."""
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


def finding(
    m: am.Measure,
    code: str,
    party: str,
    subjects: Iterable[str],
    due: int | None,
    message: str,
    period: str | None = None,
) -> Finding:
    """A finding under ``m``, carrying what makes it info rather than an accusation: a
    figure the text does not settle (``unconfirmed``) or a window that is cbmnet's own."""
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


def withdrawn(e: Event, ref: object) -> bool:
    """Does ``e`` name ``ref`` as an event its owner withdrew since (the hub marks those
    in ``withdrawn_refs``: another party's reference never blocks a withdrawal)?"""
    return isinstance(ref, str) and ref in (e.raw.get("withdrawn_refs") or ())


def unassessable(
    m: am.Measure, party: str, subjects: Iterable[str], due: int | None, message: str
) -> Finding:
    """What the engine says where an event it would judge on was withdrawn: that it
    cannot judge (severity info), rather than accuse on half a record or stay silent."""
    return finding(m, "data.unassessable", party, subjects, due, message)


def owed(
    ctx: Context,
    m: am.Measure,
    party: str,
    subject: Event,
    due: int,
    fulfilment: Event | None,
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """An obligation to act on ``subject`` by ``due``, and its missing/late finding if any."""
    return owed_on(ctx, m, party, subject.id, (subject.id,), due, fulfilment, codes, what)


def owed_on(
    ctx: Context,
    m: am.Measure,
    party: str,
    key: str,
    subjects: tuple[str, ...],
    due: int,
    fulfilment: Event | None,
    codes: tuple[str, str],
    what: str,
) -> tuple[Obligation, list[Finding]]:
    """``owed`` where one subject event carries several obligations (``key`` tells them
    apart in the obligation id) or several events are concerned (``subjects``)."""
    ob, status = settle(ctx, m, party, key, due, fulfilment, subjects)
    if status == "missed":
        return ob, [finding(m, codes[0], party, subjects, due, f"{what} never came")]
    if status == "late" and fulfilment is not None:
        msg = f"{what} came {format_time(fulfilment.time)}, due {format_time(due)}"
        return ob, [finding(m, codes[1], party, [*subjects, fulfilment.id], due, msg)]
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


def undecided_findings(
    ctx: Context, m: am.Measure, scope: am.Scope, owner: Callable[[Event], str]
) -> list[Finding]:
    """``data.unassessable`` for each activity ``_undecided`` finds, against its owner."""
    return [
        unassessable(
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


def end_of_day(ms: int) -> int:
    """The last millisecond of the UTC day starting at ``ms``: a date as a deadline."""
    return ms + MS_PER_DAY - 1
