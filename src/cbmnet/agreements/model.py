"""The agreement file: what a lawyer with the treaty text beside them reads and corrects.

An agreement has parties, named zones and a list of measures. Each measure cites its
provision and uses one rule from a closed vocabulary (the ``rule`` field picks the
model below); its figures are the rule's parameters. ``unconfirmed`` marks a figure the
sources do not settle, so it can be corrected in one place. ``docs/agreements.md``
documents every rule; ``cbmnet agreements schema`` prints the JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cbmnet.compliance.timeutil import MS_PER_DAY, parse_duration
from cbmnet.errors import FormatError

Kind = Literal["communication", "constraint", "transparency", "verification"]
SizeKey = Literal[
    "troops", "battle_tanks", "acvs", "artillery", "sorties", "ships", "aircraft", "heavy_bombers"
]
Category = Literal[
    "land",
    "air",
    "naval",
    "amphibious_landing",
    "parachute_assault",
    "heliborne_landing",
    "transfer",
    "concentration",
    "missile_launch",
    "strategic_exercise",
    "flight",
]
Formation = Literal["brigade", "division", "corps", "above_corps", "regional_command"]
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_day(v: str) -> str:
    month, day = int(v[:2]), int(v[3:])
    if day > _DAYS[month - 1]:
        raise ValueError(f"{v!r} is not a day of every year (use 02-28 rather than 02-29)")
    return v


MonthDay = Annotated[
    str,
    Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"),
    AfterValidator(_month_day),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(v: str) -> str:
    try:
        parse_duration(v, "duration")
    except FormatError as e:
        raise ValueError(str(e).removeprefix("duration: ")) from None
    return v


DurationText = Annotated[str, AfterValidator(_duration)]
"""An ISO 8601 duration: ``P42D``, ``PT48H``, ``PT10M``."""


class Zone(_Strict):
    """A named area: the shared land border of two parties (Natural Earth, or the
    agreement's own ``geometry``), or any GeoJSON geometry."""

    border: tuple[str, str] | None = None
    geometry: dict[str, Any] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> Zone:
        if (self.border is None) == (self.geometry is None):
            raise ValueError("a zone has either 'border: [A, B]' or 'geometry: {GeoJSON}'")
        return self


class Scope(_Strict):
    """Which activities a rule concerns: categories, a size threshold (any of the sizes at
    or above its figure), a minimum formation, and optionally nearness to a zone."""

    categories: tuple[Category, ...] = ()
    threshold: dict[SizeKey, int] = Field(default_factory=dict)
    formation_at_least: Formation | None = None
    near_zone: str | None = None
    within_km: float | None = None


class Measure(_Strict):
    """What every measure has, whatever its rule: an id, its kind, the provision it cites."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Kind
    provision: str = Field(min_length=1)
    title: str = ""
    titles: dict[Literal["ar", "es", "fr", "ru", "zh"], str] = Field(default_factory=dict)
    """The title in other UN languages, as the parties word it (the dashboard shows the
    reader's); the provision is cited as the text gives it, never translated."""
    unconfirmed: str | None = None
    """Why a figure here is not settled by the sources (shown with the measure)."""

    @model_validator(mode="after")
    def _titles_short(self) -> Measure:
        for lang, text in self.titles.items():
            if not 0 < len(text) <= 300:
                raise ValueError(f"titles.{lang}: 1 to 300 characters")
        return self


class _ActivityNotice(Measure):
    """A notice owed ``lead`` before each activity in scope starts (alert ones: at start)."""

    scope: Scope
    lead: DurationText
    alert_exempt: bool = True


class PriorNotification(_ActivityNotice):
    """Notify an activity in scope ``lead`` before it starts (alert activities: at start)."""

    rule: Literal["prior_notification"]
    form: str = "prior_notification"
    owed_by: Literal["party", "host"] = "party"
    """Who owes the notice: the State whose forces act (``party``), or the State on whose
    territory the activity takes place (``host``: the activity's ``host``, absent = its
    ``party``), whose notice alone meets it (VD11 ¶39)."""
    lead_from: Literal["start", "start_utc_date"] = "start"
    """What ``lead`` counts back from: the start instant, or 00:00 UTC of the UTC date the
    activity starts on (US-USSR 1989 Art. II.2: "prior to the date in ... (UTC) during
    which the relevant exercise will commence")."""
    notify: Literal["each", "first_of_year", "one_of_year"] = "each"
    """Which activities in scope are owed a notice, per owing State and calendar year (UTC,
    of the start): each; only the first of the year; or one of the year of the State's
    choosing, so any one on-time notice meets the duty, which is judged once the year is
    over and missed only if none of the year's activities was notified (US-USSR 1989
    Art. I: "one major strategic forces exercise ... to be held during each calendar
    year")."""


class ObservationInvitation(_ActivityNotice):
    """Invite observers to an activity in scope, ``lead`` before it starts."""

    rule: Literal["observation_invitation"]
    form: str = "observation_invitation"
    alert_longer_than: DurationText | None = None
    """Alert activities need observers only when they last longer than this (VD: 72 h)."""


class AnnualCalendar(Measure):
    """Every activity in scope in year Y appears in the party's calendar for Y, due on
    ``due`` (MM-DD) of Y + ``due_year_offset``."""

    rule: Literal["annual_calendar"]
    scope: Scope
    due: MonthDay
    due_year_offset: int = -1
    form: str = "annual_calendar"
    alert_exempt: bool = True
    """Alert activities cannot be forecast a year ahead and need not be in the calendar."""


class AdvanceAnnouncement(Measure):
    """An activity in scope is announced ``years_ahead`` calendar years before its year,
    by ``due`` (MM-DD) of that earlier year."""

    rule: Literal["advance_announcement"]
    scope: Scope
    years_ahead: int = Field(ge=1, le=10)
    due: MonthDay
    form: str = "advance_announcement"


class ActivityCap(Measure):
    """At most ``max_count`` activities in scope per ``period_years`` calendar years, and at
    most ``max_simultaneous`` at the same time (per party).

    A class may be a band: ``scope.threshold`` is its lower bound and ``not_more_than`` its
    upper one, so a limit written "more than 13,000 troops ... but not more than 40,000
    troops" never counts the activities another limit governs. ``of`` makes it a sub-limit
    ("of these six ... not more than three"): only activities the named activity_cap
    counts (its scope, band and ``of``) are counted."""

    rule: Literal["activity_cap"]
    scope: Scope
    max_count: int | None = Field(default=None, ge=0)
    period_years: int = Field(default=1, ge=1, le=10)
    max_simultaneous: int | None = Field(default=None, ge=0)
    not_more_than: dict[SizeKey, int] = Field(default_factory=dict)
    """Upper bound of the band: an activity with more than the figure of any key listed
    is outside it (the text's "but not more than N troops or M battle tanks")."""
    of: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Id of the activity_cap measure this one is a sub-limit of ("of these")."""


class NoticeExemption(_Strict):
    """An activity its own party gave notice of beforehand is exempt from a rule, as
    ``provision`` allows (IN-PK Airspace 1991 Art. 3: flights closer than 1,000 m for aerial
    survey, supply dropping or rescue, with information given in advance). The notice is a
    notification of ``form`` by the activity's party naming it in ``activity``, sent at least
    ``lead`` before the activity starts (absent: any time before it starts). ``unconfirmed``:
    why the text read does not settle the exemption's terms."""

    form: str = Field(min_length=1)
    lead: DurationText | None = None
    provision: str = Field(min_length=1)
    unconfirmed: str | None = None


class ZoneRule(Measure):
    """No ``subject`` (activity location, launch point, impact point, flight path) of the
    scoped activities inside ``zone``, or within ``min_distance_km`` of it, unless the
    activity is ``exempt_if_notified``."""

    rule: Literal["zone_rule"]
    scope: Scope
    subject: Literal["location", "launch", "impact", "flight"] = "location"
    zone: str
    min_distance_km: float = Field(default=0.0, ge=0)
    aircraft_roles: tuple[str, ...] = ()
    missile_classes: tuple[str, ...] = ()
    exempt_if_notified: NoticeExemption | None = None


Period = Literal["year", "half_year", "quarter", "month"]


class PeriodicExchange(Measure):
    """Each party delivers ``form`` for each period, with every part in ``parts``.

    ``period: year`` (the default): the period is a calendar year (``"2027"``) and the
    exchange is due by ``due`` (MM-DD) of period + ``due_year_offset``. A shorter period
    (``half_year`` ``"2027-H1"``, ``quarter`` ``"2027-Q3"``, ``month`` ``"2027-03"``) is due
    ``due_after`` (an ISO 8601 duration) after its ``due_from``: its first instant
    (``period_start``) or the first instant after it (``period_end``)."""

    rule: Literal["periodic_exchange"]
    form: str
    due: MonthDay | None = None
    due_year_offset: int = 0
    parts: tuple[str, ...] = ()
    first_period: int | None = None
    """The first year owed (for shorter periods: the year of the first period owed)."""
    period: Period = "year"
    due_from: Literal["period_start", "period_end"] = "period_end"
    due_after: DurationText | None = None

    @model_validator(mode="after")
    def _due(self) -> PeriodicExchange:
        if self.period == "year":
            if self.due is None or self.due_after is not None:
                raise ValueError("a yearly exchange gives 'due' (MM-DD), not 'due_after'")
        elif self.due is not None or self.due_after is None or self.due_year_offset:
            raise ValueError(
                f"a {self.period} exchange gives 'due_after' (and 'due_from'), not 'due' or "
                "'due_year_offset'"
            )
        return self


class ReplyDeadline(Measure):
    """A request of ``request_kind`` must be answered by its addressee ``within``."""

    rule: Literal["reply_deadline"]
    request_kind: str
    within: DurationText
    code: Literal["reply", "check"] = "reply"
    requesters: Literal["parties", "anyone"] = "parties"
    """``anyone``: requests from a non-party (a secretariat's communication check) bind too."""
    working_days: bool = False
    """``within`` is whole days (``P5D``) counted on working days, Monday to Friday (UTC):
    a request made on a Saturday is due as if made on Monday at 00:00. Public holidays are
    the parties' own and not known to the engine."""
    convention: bool = False
    """``within`` is cbmnet's convention, not the text's (the text sets no figure): an answer
    after it gives ``reply.*`` / ``check.missed`` at severity info (the message says so), never an
    accusation."""

    @model_validator(mode="after")
    def _whole_days(self) -> ReplyDeadline:
        if self.working_days:
            ms = parse_duration(self.within, "within")
            if ms <= 0 or ms % MS_PER_DAY:
                raise ValueError(f"working_days: 'within' must be whole days (P5D), not {self.within!r}")
        return self


class UnitQuota(_Strict):
    """A passive quota that follows what the host reported: one request per
    ``units_per_request`` units (or fraction) in its exchange ``form`` for the year, at most
    ``max_per_year`` (VD evaluation visits: 1 per 60 units, at most 15)."""

    form: str = Field(min_length=1)
    units_per_request: int = Field(ge=1)
    max_per_year: int | None = Field(default=None, ge=0)


Outcome = Literal["prohibited", "declined", "force_majeure"]


class QuotaAdjustment(_Strict):
    """An outcome after which an accepted visit no longer counts against the quota, as its
    ``provision`` says (Open Skies Art. VIII §I ¶3: a prohibited flight counts against
    neither State Party's quota). The outcome is on record once a party in ``recorded_by``
    (the visit's ``host`` or ``requester``) sends a notification of ``form`` naming the visit
    request in ``request``; from that moment the visit frees the host's quota, the
    requester's share and the time it occupied. The same record by the other side is a
    claim: a refusal that only the claim would make unlawful is ``data.unassessable``."""

    outcome: Outcome
    form: str = Field(min_length=1)
    recorded_by: tuple[Literal["host", "requester"], ...] = Field(default=("host",), min_length=1)
    provision: str = Field(min_length=1)


class Quota(Measure):
    """A party must accept up to ``per_year`` requests of ``request_kind`` a calendar year
    (``per_requester`` from any one requesting party); refusing one within quota is a
    finding. Answers are due ``reply_within``.

    The quota a host owes may instead come from ``per_party`` (a figure per party or
    ``groups`` of parties sharing one quota) or from the units it reported (``per_units``).
    A refusal is lawful, too, once the requester has used its share: ``per_requester``,
    ``per_requester_share`` of the host's quota (at least 1), or ``concentration`` of its own
    active quota (``active``, by default its passive quota; Open Skies: 50 %, rounded up,
    and never more than the host's quota), and while ``max_concurrent`` accepted visits
    overlap the one asked for (a visit lasts from its ``eta`` to its ``until``, or
    ``visit_length``)."""

    rule: Literal["quota"]
    request_kind: str
    per_year: int = Field(ge=0)
    per_requester: int | None = Field(default=None, ge=0)
    reply_within: DurationText | None = None
    per_party: dict[str, int] = Field(default_factory=dict)
    """Passive quota of a party or group, where it differs from ``per_year``."""
    groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Parties that share one quota, as host and as requester (Open Skies: RUS + BLR)."""
    per_units: UnitQuota | None = None
    per_requester_share: float | None = Field(default=None, gt=0, le=1)
    """At most max(1, floor(share x host's quota)) from one requester (VD evaluation: 0.2)."""
    concentration: float | None = Field(default=None, gt=0, le=1)
    """Requests one requester has accepted by one host a year: at most ceil(share x the
    requester's active quota), and at most the host's quota; more is a finding against the
    requester, and the host may refuse them."""
    active: dict[str, int] = Field(default_factory=dict)
    """Total active quota of a party or group; absent: its passive quota (the upper bound)."""
    max_concurrent: int | None = Field(default=None, ge=1)
    visit_length: DurationText | None = None
    """How long an accepted visit occupies the host from its ``eta`` (Open Skies: 96 h)."""
    not_counted: tuple[QuotaAdjustment, ...] = ()
    """Outcomes of an accepted visit that do not count against the quota (per the text)."""

    @model_validator(mode="after")
    def _groups(self) -> Quota:
        seen: set[str] = set()
        for name, members in self.groups.items():
            if not members:
                raise ValueError(f"group {name!r} has no members")
            if seen & set(members) or len(set(members)) != len(members):
                raise ValueError(f"group {name!r}: a party is in more than one group")
            seen |= set(members)
        return self

    def parties_named(self) -> set[str]:
        """Party ids this measure names (the agreement checks they are its parties)."""
        members = {p for g in self.groups.values() for p in g}
        return members | (set(self.per_party) | set(self.active)) - set(self.groups)


class VisitConduct(Measure):
    """How a visit of ``request_kind`` is conducted, as the visiting party's record (a
    notification of ``form`` whose ``request`` names it, ``window_start`` = the team's
    entry, ``window_end`` = the end of the visit, ``team_size``) shows it: the host admits
    the team within ``entry_within`` of the request (or at its ``eta``, if later); the team
    stays at most ``max_stay`` (counted from ``stay_from``, by default its entry); the
    request and the record name at most ``max_team``."""

    rule: Literal["visit_conduct"]
    request_kind: str
    form: str = "inspection_report"
    entry_within: DurationText | None = None
    max_stay: DurationText | None = None
    max_team: int | None = Field(default=None, ge=1)
    stay_from: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    """The record's time field the stay is counted from, where the text anchors it to an
    event other than entry (``arrived_area``: the team's arrival in the specified area).
    Unset: ``window_start``. A record without it cannot be judged (``data.unassessable``)."""


class VisitPlan(Measure):
    """Before a visit of ``request_kind`` the visiting party submits a plan (``form``,
    naming the request; ``window_start`` = the planned start) at least ``lead`` before that
    start, and the host answers it (``answer_form``) within ``answer_within``."""

    rule: Literal["visit_plan"]
    request_kind: str
    form: str = "mission_plan"
    lead: DurationText | None = None
    lead_unless_agreed: bool = False
    """The lead holds "unless otherwise agreed" (Open Skies Art. VI §II ¶4(E)): a plan the
    host accepted (an answer whose ``decision`` is ``accept``) is agreed as it stands, so
    its lead is not owed."""
    answer_form: str = "mission_plan_answer"
    answer_within: DurationText | None = None


class VisitReport(Measure):
    """The visiting party reports (``form``, naming the request) within ``within`` of the
    end of the visit: the ``end`` of the activity the request names (an Open Skies flight).
    ``to_all``: only a report addressed to every party counts."""

    rule: Literal["visit_report"]
    request_kind: str
    form: str
    within: DurationText
    to_all: bool = False


class ObserverTerms(Measure):
    """After an invitation to observe (``form``): each invited party answers it (a
    ``response`` whose ``request`` is the invitation) within ``reply_within``; each party
    that accepted reports (``report_form``, naming the invitation in ``request``) within
    ``report_within`` of the observed activity's end."""

    rule: Literal["observer_terms"]
    form: str = "observation_invitation"
    reply_within: DurationText | None = None
    report_form: str = "observer_report"
    report_within: DurationText | None = None


class EventNotification(Measure):
    """When an incident of ``incident_kinds`` happens, its party notifies ``within``.
    ``convention``: the text says "immediately" or "without delay" and sets no figure;
    ``within`` is cbmnet's reading, and a notice after it gives ``notification.late`` /
    ``notification.missing`` at severity info (the message says so), never an accusation."""

    rule: Literal["event_notification"]
    incident_kinds: tuple[str, ...]
    within: DurationText
    form: str
    convention: bool = False


class NoticeItem(_Strict):
    """One thing a launch notice must give, under the ``provision`` that requires it:
    ``window`` (its ``window_start`` and ``window_end``), ``impact`` (the planned impact
    area) or ``launch`` (the launch area, a geometry). ``missile_classes``: only for launches
    of these classes (US-USSR 1988 Art. II ¶2: the launch area of an SLBM); absent: for
    every launch. ``unconfirmed``: why the text read does not settle that it is required."""

    item: Literal["window", "impact", "launch"]
    provision: str = Field(min_length=1)
    missile_classes: tuple[str, ...] = ()
    unconfirmed: str | None = None


class LaunchDistance(_Strict):
    """A distance a notified launch keeps from its measure's ``zone``, under its own
    ``provision``: the activity's ``launch`` point or ``trajectory`` (flight path), or the
    ``impact`` area the notice plans (the planned one, not where the missile came down).
    At least ``min_distance_km``; 0: only never touching or crossing the zone."""

    subject: Literal["launch", "trajectory", "impact"]
    min_distance_km: float = Field(ge=0)
    provision: str = Field(min_length=1)


class LaunchNotification(Measure):
    """A launch of ``missile_classes`` is notified ``lead`` before its declared window
    (or before the launch when no window is declared); windows last at most
    ``max_window``; the launch happens inside the declared window.

    Optionally: the notice carries ``content`` (``window``: its start and end; ``impact``:
    the planned impact area), and the launch keeps its ``distances`` from ``zone``. With
    ``excluded_classes`` given, the classes are a closed list: a launch whose class is in
    neither list, or is not given, is ``data.unassessable`` rather than passed over."""

    rule: Literal["launch_notification"]
    missile_classes: tuple[str, ...] = ()
    lead: DurationText
    max_window: DurationText | None = None
    form: str = "launch_notification"
    excluded_classes: tuple[str, ...] = ()
    """Classes the agreement does not cover (a cruise missile)."""
    content: tuple[NoticeItem, ...] = ()
    """What the notice must say; a notice without it is ``notification.incomplete``."""
    zone: str | None = None
    distances: tuple[LaunchDistance, ...] = ()

    @model_validator(mode="after")
    def _zone_for_distances(self) -> LaunchNotification:
        if self.distances and self.zone is None:
            raise ValueError("'distances' are measured from a 'zone': name one")
        if set(self.missile_classes) & set(self.excluded_classes):
            raise ValueError("a class is both in 'missile_classes' and 'excluded_classes'")
        return self


Rule = Annotated[
    PriorNotification
    | ObservationInvitation
    | AnnualCalendar
    | AdvanceAnnouncement
    | ActivityCap
    | ZoneRule
    | PeriodicExchange
    | ReplyDeadline
    | Quota
    | VisitConduct
    | VisitPlan
    | VisitReport
    | ObserverTerms
    | EventNotification
    | LaunchNotification,
    Field(discriminator="rule"),
]


RULE_NAMES = frozenset(
    get_args(cls.model_fields["rule"].annotation)[0] for cls in get_args(get_args(Rule)[0])
)
"""The closed vocabulary, read off the models above."""


class HotlineTerms(_Strict):
    """How soon a hotline message of each precedence must be acknowledged (ACP 121 targets)."""

    provision: str = "ACP 121 handling targets"
    flash: DurationText = "PT10M"
    immediate: DurationText = "PT30M"
    priority: DurationText = "PT3H"
    routine: DurationText = "PT6H"


class VerificationTerms(_Strict):
    """What the parties agree counts as a discrepancy when observations meet declarations.

    Defaults are cbmnet's (docs/verification.md), not treaty figures: an agreement that
    settles them says so here.
    """

    buffer_km: float = Field(default=10.0, ge=0, le=1000)
    """An observation this close to a declared area still belongs to it."""
    time_margin: DurationText = "PT24H"
    """... and this long before its start or after its end."""
    size_tolerance: float = Field(default=0.20, ge=0, le=10)
    """Observed size may exceed the declared one by this fraction without a finding."""
    min_excess: dict[SizeKey, int] | None = None
    """... and must exceed it by at least this many objects per size key (None: cbmnet's)."""


_EPOCH = dt.date(1970, 1, 1)


def _day_ms(d: dt.date) -> int:
    """00:00 UTC of ``d``, in epoch milliseconds (the engine's time)."""
    return (d - _EPOCH).days * MS_PER_DAY


class Membership(_Strict):
    """When a party was bound: from 00:00 UTC of ``joined`` (absent: from the start) until
    00:00 UTC of ``left`` (absent: still a member), as the depositary or the text dates it.
    ``left`` is the first day it is no longer a party (the day its withdrawal took effect)."""

    joined: dt.date | None = None
    left: dt.date | None = None
    successor_of: str | None = None
    """The State whose membership this one continues, where the depositary says so."""
    source: str = ""
    """Where the dates were read (title, address, date read)."""
    note: str = ""

    @model_validator(mode="after")
    def _order(self) -> Membership:
        if self.joined is not None and self.left is not None and self.left <= self.joined:
            raise ValueError("'left' must be after 'joined'")
        return self

    def span_ms(self) -> tuple[int | None, int | None]:
        """[start, end) in epoch ms; None: unbounded on that side."""
        return (
            _day_ms(self.joined) if self.joined is not None else None,
            _day_ms(self.left) if self.left is not None else None,
        )


class Agreement(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    version: str
    source: str = ""
    parties: tuple[str, ...] = Field(min_length=1)
    """Every State that is or was a party; a party without a ``membership`` entry is a
    member for the agreement's whole life."""
    membership: dict[str, Membership] = Field(default_factory=dict)
    """Joining and leaving dates of the parties that have them (docs/agreements.md)."""
    parties_complete: bool = True
    """False: ``parties`` is a subset of the real membership (no full list was read), so a
    State missing from it may still be a member; events by it are refused until it is
    added, with its source."""
    zones: dict[str, Zone] = Field(default_factory=dict)
    measures: tuple[Rule, ...]
    hotline: HotlineTerms = Field(default_factory=HotlineTerms)
    verification: VerificationTerms = Field(default_factory=VerificationTerms)
    key_recovery_quorum: int | None = Field(default=None, ge=2, le=1000)
    """How many other parties' approvals recover a party that lost its signing and recovery
    keys (docs/adr/0007). Unset: a majority of the others; never fewer than two."""

    @model_validator(mode="after")
    def _references(self) -> Agreement:
        ids = [m.id for m in self.measures]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"measure ids repeat: {', '.join(sorted(dup))}")
        if len(set(self.parties)) != len(self.parties):
            raise ValueError("a party is listed twice")
        strangers = set(self.membership) - set(self.parties)
        if strangers:
            raise ValueError(f"membership: {', '.join(sorted(strangers))} not in 'parties'")
        for pid, mem in self.membership.items():
            if mem.successor_of is not None and mem.successor_of not in self.parties:
                raise ValueError(f"membership.{pid}.successor_of: {mem.successor_of!r} not in 'parties'")
        for name, z in self.zones.items():
            if z.border and not set(z.border) <= set(self.parties):
                raise ValueError(f"zone {name!r}: border of states that are not parties")
        for m in self.measures:
            scope = getattr(m, "scope", None)
            refs: list[str | None] = [getattr(m, "zone", None), scope.near_zone if scope else None]
            for ref in refs:
                if ref is not None and ref not in self.zones:
                    raise ValueError(f"measure {m.id!r}: unknown zone {ref!r}")
            if isinstance(m, Quota):
                strangers = m.parties_named() - set(self.parties)
                if strangers:
                    raise ValueError(
                        f"measure {m.id!r}: {', '.join(sorted(strangers))} not parties (nor groups)"
                    )
                clash = set(m.groups) & set(self.parties)
                if clash:
                    raise ValueError(f"measure {m.id!r}: group named like a party: {sorted(clash)}")
        return self

    def is_member(self, party: str, ms: int) -> bool:
        """Was ``party`` bound by this agreement at ``ms`` (epoch ms)?"""
        mem = self.membership.get(party)
        if mem is None:
            return party in self.parties
        start, end = mem.span_ms()
        return (start is None or start <= ms) and (end is None or ms < end)

    def members_on(self, ms: int) -> frozenset[str]:
        """The parties bound at ``ms``: "to all" means to all of these."""
        return frozenset(p for p in self.parties if self.is_member(p, ms))

    def membership_changes(self) -> tuple[int, ...]:
        """The instants (epoch ms, sorted) at which the set of members changes."""
        return tuple(sorted({t for m in self.membership.values() for t in m.span_ms() if t is not None}))
