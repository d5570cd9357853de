"""The forms a party files under an agreement, derived from the agreement file.

An officer should not write events-v1 JSON by hand. Each measure says which act meets it
(a notification of some ``form``, an exchange, a request of some ``kind``, an answer);
this module reads the measures and gives, per act, the fields it needs in the officer's
words, with the agreement's own figures beside them (the thresholds that make an activity
notifiable, the parts an exchange must have) and the provisions they come from. The
dashboard renders these; the hub checks what is sent exactly as it checks any act, so a
form can never accept what the hub would refuse.

Pure: no I/O. The vocabulary (categories, size keys, request kinds) is events-v1's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from cbmnet.agreements.model import (
    AdvanceAnnouncement,
    Agreement,
    AnnualCalendar,
    Category,
    EventNotification,
    Formation,
    LaunchNotification,
    ObservationInvitation,
    ObserverTerms,
    PeriodicExchange,
    PriorNotification,
    Quota,
    ReplyDeadline,
    Scope,
    SizeKey,
    VisitConduct,
    VisitPlan,
    VisitReport,
    ZoneRule,
)
from cbmnet.compliance.timeutil import MS_PER_DAY, parse_duration

SIZE_KEYS: tuple[str, ...] = get_args(SizeKey)
CATEGORIES: tuple[str, ...] = get_args(Category)
FORMATIONS: tuple[str, ...] = get_args(Formation)
MISSILE_CLASSES = ("icbm", "slbm", "ballistic", "cruise", "space_launch")
DECISIONS = ("accept", "refuse", "answer")
PRECEDENCES = ("flash", "immediate", "priority", "routine")

_SIZE_WORDS = {
    "troops": "troops",
    "battle_tanks": "battle tanks",
    "acvs": "armoured combat vehicles",
    "artillery": "artillery pieces",
    "sorties": "sorties",
    "ships": "ships",
    "aircraft": "aircraft",
    "heavy_bombers": "heavy bombers",
}


def N_(message: str) -> str:
    """Mark ``message`` for the dashboard's catalogues (``cbmnet/locale``)."""
    return message


_SIZE_LABELS = {
    "troops": N_("Troops"),
    "battle_tanks": N_("Battle tanks"),
    "acvs": N_("Armoured combat vehicles"),
    "artillery": N_("Artillery pieces"),
    "sorties": N_("Sorties"),
    "ships": N_("Ships"),
    "aircraft": N_("Aircraft"),
    "heavy_bombers": N_("Heavy bombers"),
}
"""The size fields' labels (``_SIZE_WORDS`` is how sizes read inside a sentence)."""


def words(code: str) -> str:
    """``observation_invitation`` -> ``observation invitation``: a code as a diplomat reads it."""
    return code.replace("_", " ")


def span(text: str) -> str:
    """An agreement's ISO 8601 duration (``P42D``, ``PT24H``) in words: ``42 days``."""
    ms = parse_duration(text, "duration")
    for unit, size in (("day", MS_PER_DAY), ("hour", 3_600_000), ("minute", 60_000)):
        if ms % size == 0:
            n = ms // size
            return f"{n:,} {unit}{'' if n == 1 else 's'}"
    return text


@dataclass(frozen=True)
class Field:
    """One input of a form. ``name`` is its place in the event (``size.troops``)."""

    name: str
    label: str
    kind: str
    """``text``, ``choice``, ``time``, ``count``, ``place``, ``party``, ``parties``,
    ``own_activity``, ``own_activities``, ``own_incident``, ``request_to_us``, ``request``
    (one the party may read: a request or an invitation), ``year``, ``flag``, ``parts``."""
    required: bool = False
    choices: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    """The agreement's figures for this field, each with its provision."""

    def to_json(self, tr: Callable[[str], str] = str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": tr(self.label),
            "kind": self.kind,
            "required": self.required,
            "choices": list(self.choices),
            "hints": list(self.hints),
        }


@dataclass(frozen=True)
class Form:
    """One act a party files: its fixed fields (``type``, ``form`` or ``kind``) and inputs."""

    id: str
    title: str
    fixed: dict[str, str]
    fields: tuple[Field, ...]
    serves: tuple[dict[str, Any], ...] = field(default=())
    """The measures this act meets or starts: id, provision, title, unconfirmed."""
    title_args: dict[str, str] = field(default_factory=dict)
    """``title`` is a message (``Notification: %(what)s``) filled with these."""

    def to_json(self, tr: Callable[[str], str] = str, lang: str = "en") -> dict[str, Any]:
        """The form as the page renders it; ``tr`` translates labels and the title, and a
        measure's title is the agreement file's in ``lang`` where it gives one (figures and
        provisions, in the hints, are never translated)."""
        serves = [
            {k: v for k, v in s.items() if k != "titles"} | {"title": s["titles"].get(lang, s["title"])}
            for s in self.serves
        ]
        return {
            "id": self.id,
            "title": tr(self.title) % self.title_args if self.title_args else tr(self.title),
            "fields": [f.to_json(tr) for f in self.fields],
            "fixed": dict(self.fixed),
            "serves": serves,
        }


def _unconfirmed(m: Any) -> str:
    """`` (unconfirmed)`` where the agreement file says its text could not settle the figure."""
    return " (unconfirmed)" if getattr(m, "unconfirmed", None) else ""


def _serves(m: Any) -> dict[str, Any]:
    out = {
        "measure": m.id,
        "provision": m.provision,
        "title": m.title or words(m.rule),
        "titles": dict(m.titles),
    }
    if m.unconfirmed:
        out["unconfirmed"] = m.unconfirmed
    return out


_WHAT_SCOPE_DOES = {
    "prior_notification": "notifiable",
    "observation_invitation": "observers invited",
    "annual_calendar": "in the annual calendar",
    "advance_announcement": "announced years ahead",
    "activity_cap": "counted against a cap",
    "zone_rule": "bound by a zone rule",
}


def _scope_hints(m: Any, scope: Scope) -> list[tuple[str, str]]:
    """(size key, hint) for each threshold ``scope`` sets: what makes an activity count."""
    cats = ", ".join(words(c) for c in scope.categories) or "any category"
    what = _WHAT_SCOPE_DOES.get(m.rule, words(m.rule))
    return [
        (
            key,
            f"{what} from {n:,} {_SIZE_WORDS.get(key, words(key))} ({cats})"
            f" — {m.provision}{_unconfirmed(m)}",
        )
        for key, n in sorted(scope.threshold.items())
    ]


def scope_words(scope: Scope) -> str:
    """``from 9,000 troops or 250 battle tanks (land, transfer)``, ``at corps level or above,
    within 75 km of ib-loc (land)``: which activities a measure covers, in words, every
    condition of its scope said (a size, a formation, a distance from a zone)."""
    parts = []
    if scope.threshold:
        sizes = (f"{n:,} {_SIZE_WORDS.get(k, words(k))}" for k, n in sorted(scope.threshold.items()))
        parts.append("from " + " or ".join(sizes))
    if scope.formation_at_least == "above_corps":
        parts.append("above corps level")
    elif scope.formation_at_least:
        parts.append(f"at {words(scope.formation_at_least)} level or above")
    if scope.near_zone:
        km = f"{scope.within_km:g} km" if scope.within_km is not None else "near"
        parts.append(f"within {km} of {scope.near_zone}")
    out = ", ".join(parts) or "of any size"
    cats = ", ".join(words(c) for c in scope.categories)
    return f"{out} ({cats})" if cats else out


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _due_words(m: PeriodicExchange) -> str:
    if m.due:
        month, day = (int(x) for x in m.due.split("-"))
        year = {
            0: "of the period's year",
            -1: "of the year before the period",
            1: "of the year after the period",
        }.get(m.due_year_offset, f"of the period's year {m.due_year_offset:+d}")
        return f"due {day} {_MONTHS[month - 1]} {year}"
    if m.due_after:
        return f"due {span(m.due_after)} after the period {m.due_from.removeprefix('period_')}s"
    return "due as the agreement says"


def _activity_form(ag: Agreement) -> Form:
    hints: dict[str, list[str]] = {k: [] for k in SIZE_KEYS}
    cats: set[str] = set()
    serves: list[dict[str, str]] = []
    for m in ag.measures:
        scope = getattr(m, "scope", None)
        if isinstance(scope, Scope):
            cats.update(scope.categories)
            for key, hint in _scope_hints(m, scope):
                hints[key].append(hint)
            serves.append(_serves(m))
        elif isinstance(m, LaunchNotification):
            cats.add("missile_launch")
            serves.append(_serves(m))
    categories = tuple(c for c in CATEGORIES if c in cats) or CATEGORIES
    size_fields = tuple(
        Field(f"size.{k}", _SIZE_LABELS[k], "count", hints=tuple(hints[k]))
        for k in SIZE_KEYS
        if hints[k] or k == "troops"
    )
    fields: list[Field] = [
        Field("category", N_("Category"), "choice", True, categories),
        Field("start", N_("Start (UTC)"), "time", True),
        Field("end", N_("End (UTC)"), "time", True),
        *size_fields,
        Field("formation", N_("Largest formation"), "choice", False, FORMATIONS),
        Field("location", N_("Where (area or point)"), "place"),
        Field("host", N_("Host State (if not your own territory)"), "party"),
        Field("alert", N_("Alert activity (ordered without advance notice to the troops)"), "flag"),
    ]
    if "missile_launch" in cats:
        fields += [
            Field("missile_class", N_("Missile class"), "choice", False, MISSILE_CLASSES),
            Field("launch", N_("Launch point"), "place"),
            Field("impact", N_("Impact area"), "place"),
        ]
    return Form(
        "activity",
        N_("Declare an activity (as planned or conducted)"),
        {"type": "activity"},
        tuple(fields),
        tuple(serves),
    )


def _notification(form: str, ms: list[Any]) -> Form:
    fields: list[Field] = []
    calendar = any(isinstance(m, (AnnualCalendar, AdvanceAnnouncement)) for m in ms)
    launch = [m for m in ms if isinstance(m, LaunchNotification)]
    if calendar:
        fields += [
            Field("year", N_("Calendar year covered"), "year", True),
            Field("activities", N_("Activities it lists"), "own_activities"),
        ]
    elif all(isinstance(m, EventNotification) for m in ms):
        fields.append(Field("activity", N_("The incident it reports"), "own_incident", True))
    else:
        fields.append(Field("activity", N_("The activity it covers"), "own_activity", not launch))
    if launch:
        need = {item.item for m in launch for item in m.content}
        window_hints = tuple(
            f"at least {span(m.lead)} before the window — {m.provision}" for m in launch
        ) + tuple(
            f"a window of at most {span(m.max_window)} — {m.provision}" for m in launch if m.max_window
        )
        fields += [
            Field(
                "window_start",
                N_("Launch window opens (UTC)"),
                "time",
                "window" in need,
                (),
                window_hints,
            ),
            Field("window_end", N_("Launch window closes (UTC)"), "time", "window" in need),
        ]
        if "impact" in need:
            fields.append(Field("impact", N_("Planned impact area"), "place", True))
    fields += [
        Field("to", N_("Addressees (none: every party of the agreement)"), "parties"),
        Field("body", N_("Text of the notification"), "text"),
    ]
    lead_hints = tuple(
        f"{span(m.lead)} ahead for activities {scope_words(m.scope)} — {m.provision}{_unconfirmed(m)}"
        for m in ms
        if isinstance(m, (PriorNotification, ObservationInvitation))
    ) + tuple(
        f"{words(m.rule)}: within {span(m.within)} of the incident — {m.provision}"
        for m in ms
        if isinstance(m, EventNotification)
    )
    title = N_("Notification: %(what)s")
    if lead_hints:
        fields[0] = Field(
            fields[0].name, fields[0].label, fields[0].kind, fields[0].required, (), lead_hints
        )
    return Form(
        f"notification.{form}",
        title,
        {"type": "notification", "form": form},
        tuple(fields),
        tuple(_serves(m) for m in ms),
        {"what": words(form)},
    )


def _exchange(m: PeriodicExchange) -> Form:
    due = _due_words(m)
    fields = [
        Field("period", N_("Period covered"), "text", True, (), (f"{m.period}: {due} — {m.provision}",)),
    ]
    if m.parts:
        fields.append(
            Field(
                "parts",
                N_("Parts delivered"),
                "parts",
                True,
                m.parts,
                (f"every part is required: {', '.join(m.parts)} — {m.provision}",),
            )
        )
    fields += [
        Field("units", N_("Units reported"), "count"),
        Field("body", N_("Text of the exchange"), "text"),
    ]
    return Form(
        f"exchange.{m.form}",
        N_("Information exchange: %(what)s"),
        {"type": "exchange", "form": m.form},
        tuple(fields),
        (_serves(m),),
        {"what": words(m.form)},
    )


def _request(kind: str, ms: list[Any]) -> Form:
    hints = []
    for m in ms:
        if isinstance(m, ReplyDeadline):
            days = " working" if m.working_days else ""
            hints.append(f"answer due within {span(m.within)}{days} — {m.provision}")
        elif isinstance(m, Quota):
            hints.append(f"quota: {m.per_year} a year per receiving State — {m.provision}")
    fields = [
        Field("to", N_("Asked of (the State that must answer)"), "party", True, (), tuple(hints)),
        Field("activity", N_("About the activity (optional)"), "text"),
        Field("area", N_("Specified area (optional)"), "place"),
        Field("eta", N_("Planned arrival (UTC, optional)"), "time"),
        Field("body", N_("Text of the request"), "text"),
    ]
    return Form(
        f"request.{kind}",
        N_("Request: %(what)s"),
        {"type": "request", "kind": kind},
        tuple(fields),
        tuple(_serves(m) for m in ms),
        {"what": words(kind)},
    )


def _response(ms: list[Any]) -> Form:
    return Form(
        "response",
        N_("Answer a request"),
        {"type": "response"},
        (
            Field("request", N_("The request answered"), "request_to_us", True),
            Field("decision", N_("Decision"), "choice", True, DECISIONS),
            Field("reason", N_("Reason (a refusal should give one)"), "text"),
            Field("body", N_("Text of the answer"), "text"),
        ),
        tuple(_serves(m) for m in ms),
    )


def _report(form: str, ms: list[Any]) -> Form:
    return Form(
        f"notification.{form}",
        N_("Report: %(what)s"),
        {"type": "notification", "form": form},
        (
            Field("request", N_("The request or invitation it answers or reports on"), "request", True),
            Field("to", N_("Addressees (none: every party of the agreement)"), "parties"),
            Field("body", N_("Text of the report"), "text"),
        ),
        tuple(_serves(m) for m in ms),
        {"what": words(form)},
    )


def _incident(ms: list[EventNotification]) -> Form:
    kinds = tuple(dict.fromkeys(k for m in ms for k in m.incident_kinds))
    return Form(
        "incident",
        N_("Record an incident"),
        {"type": "incident"},
        (
            Field("kind", N_("Kind of incident"), "choice", True, kinds),
            Field("location", N_("Where"), "place"),
            Field("body", N_("What happened"), "text"),
        ),
        tuple(_serves(m) for m in ms),
    )


_NOTICES = (
    PriorNotification,
    ObservationInvitation,
    AnnualCalendar,
    AdvanceAnnouncement,
    LaunchNotification,
    EventNotification,
)


def forms_of(ag: Agreement) -> tuple[Form, ...]:
    """Every act a party may file under ``ag``, in the order an officer meets them."""
    notices: dict[str, list[Any]] = {}
    reports: dict[str, list[Any]] = {}
    requests: dict[str, list[Any]] = {}
    exchanges: list[Form] = []
    answered: list[Any] = []
    for m in ag.measures:
        if isinstance(m, _NOTICES):
            notices.setdefault(m.form, []).append(m)
        elif isinstance(m, ZoneRule) and m.exempt_if_notified is not None:
            notices.setdefault(m.exempt_if_notified.form, []).append(m)
        elif isinstance(m, PeriodicExchange):
            exchanges.append(_exchange(m))
        elif isinstance(m, (ReplyDeadline, Quota)):
            requests.setdefault(m.request_kind, []).append(m)
            answered.append(m)
        elif isinstance(m, (VisitConduct, VisitReport)):
            reports.setdefault(m.form, []).append(m)
        elif isinstance(m, VisitPlan):
            reports.setdefault(m.form, []).append(m)
            reports.setdefault(m.answer_form, []).append(m)
        elif isinstance(m, ObserverTerms):
            reports.setdefault(m.report_form, []).append(m)
    out: list[Form] = [_activity_form(ag)]
    incidents = [m for m in ag.measures if isinstance(m, EventNotification)]
    if incidents:
        out.append(_incident(incidents))
    out += [_notification(f, ms) for f, ms in notices.items()]
    out += exchanges
    out += [_request(k, ms) for k, ms in requests.items()]
    if answered:
        out.append(_response(answered))
    out += [_report(f, ms) for f, ms in reports.items() if f not in notices]
    return tuple(out)


def answering_form(forms: tuple[Form, ...], obligation_id: str) -> tuple[Form, str] | None:
    """The form that meets an obligation of the engine (``measure:party:subject``), and the
    field its subject goes in (``activity`` or ``request``); None where no one form does
    (an exchange's period is the officer's to give)."""
    measure = obligation_id.split(":", 1)[0]
    for f in forms:
        if f.fixed["type"] in ("activity", "request", "incident"):
            continue
        if not any(s["measure"] == measure for s in f.serves):
            continue
        names = {x.name for x in f.fields}
        for slot in ("request", "activity"):
            if slot in names:
                return f, slot
    return None
