"""CBM events (``shared/spec/events-v1.md``), parsed strictly and fast.

A malformed record is refused with the file, the record (index and id) and the field,
and nothing is evaluated. Unknown fields are kept in ``Event.raw`` and ignored by rules
that do not use them (the spec's forward-compatibility rule). Parsing is hand-written
rather than pydantic because 10^6 events must parse in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from cbmnet.agreements.model import Agreement, Category, Formation, SizeKey
from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import FormatError

EVENT_TYPES = frozenset({"activity", "notification", "exchange", "request", "response", "incident"})
# One vocabulary for events and agreements: the agreement model's literals (events-v1).
CATEGORIES = frozenset(get_args(Category))
SIZE_KEYS = frozenset(get_args(SizeKey))
FORMATIONS: tuple[str, ...] = get_args(Formation)
REQUEST_KINDS = frozenset(
    {
        "explanation",
        "meeting",
        "inspection",
        "evaluation",
        "observation_flight",
        "communication_check",
        "hotline",
        "document",
    }
)
DECISIONS = frozenset({"accept", "refuse", "answer"})
PRECEDENCES = frozenset({"flash", "immediate", "priority", "routine"})
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
MAX_EVENTS = 5_000_000


@dataclass(slots=True)
class Event:
    """One event. Times are epoch milliseconds; ``raw`` keeps the record as given."""

    id: str
    type: str
    party: str
    time: int
    raw: dict[str, Any] = field(repr=False)
    start: int | None = None
    end: int | None = None
    size: dict[str, int] = field(default_factory=dict)
    to: tuple[str, ...] = ()


class _Record:
    """Field accessors that name the file, record and field in every error."""

    __slots__ = ("doc", "eid", "index", "source")

    def __init__(self, doc: Mapping[str, Any], source: str, index: int) -> None:
        self.doc = doc
        self.source = source
        self.index = index
        self.eid: str | None = None

    @property
    def where(self) -> str:
        """Built only when something is wrong: a million records need no labels."""
        label = f"{self.source}, record {self.index}"
        return f"{label} (id {self.eid!r})" if self.eid is not None else label

    def fail(self, fld: str, msg: str) -> FormatError:
        return FormatError(f"{self.where}, field {fld!r}: {msg}")

    def str_(self, fld: str, required: bool = True) -> str | None:
        v = self.doc.get(fld)
        if v is None:
            if required:
                raise self.fail(fld, "missing")
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(fld, "must be a non-empty string")
        _unicode(self, fld, v)
        return v

    def enum(self, fld: str, allowed: frozenset[str], required: bool = True) -> str | None:
        v = self.str_(fld, required)
        if v is not None and v not in allowed:
            raise self.fail(fld, f"{v!r} is not one of {', '.join(sorted(allowed))}")
        return v

    def time(self, fld: str, required: bool = True) -> int | None:
        v = self.doc.get(fld)
        if v is None:
            if required:
                raise self.fail(fld, "missing")
            return None
        try:
            return parse_time(v, "time")
        except FormatError as e:
            raise self.fail(fld, str(e).removeprefix("time: ")) from None

    def int_(self, fld: str, minimum: int = 0) -> int | None:
        v = self.doc.get(fld)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise self.fail(fld, f"must be an integer >= {minimum}")
        return v

    def str_list(self, fld: str) -> tuple[str, ...]:
        v = self.doc.get(fld)
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.fail(fld, "must be a list of non-empty strings")
        for x in v:
            _unicode(self, fld, x)
        return tuple(v)

    def geometry(self, fld: str) -> None:
        v = self.doc.get(fld)
        if v is None:
            return
        if not isinstance(v, dict) or v.get("type") not in GEOMETRY_TYPES:
            raise self.fail(fld, "must be a GeoJSON geometry (Point, LineString, Polygon, Multi…)")
        problem = _geometry_problem(v["type"], v.get("coordinates"))
        if problem:
            raise self.fail(fld, f"{v['type']}: {problem}")

    def size(self) -> dict[str, int]:
        """``size``; where it is absent, the sum of ``forces`` (forces of several States
        under one command count together against a threshold: VD11 ¶40.1)."""
        summed = self.forces() if self.doc.get("type") == "activity" else {}
        v = self.doc.get("size")
        if v is None:
            return summed
        return self.counts(v, "size")

    def counts(self, v: Any, fld: str) -> dict[str, int]:
        if not isinstance(v, dict):
            raise self.fail(fld, "must be an object of counts")
        out = {}
        for k, n in v.items():
            if k not in SIZE_KEYS:
                known = ", ".join(sorted(SIZE_KEYS))
                raise self.fail(f"{fld}.{k}", f"unknown size key (one of {known})")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise self.fail(f"{fld}.{k}", "must be an integer >= 0")
            out[k] = n
        return out

    def forces(self) -> dict[str, int]:
        """Validate ``forces`` ([{"party", "size"?}, ...]) and return their summed size
        (a force without ``size`` adds nothing: the rules report what they cannot judge)."""
        v = self.doc.get("forces")
        if v is None:
            return {}
        if not isinstance(v, list) or not v:
            raise self.fail("forces", "must be a non-empty list of {party, size}")
        total: dict[str, int] = {}
        for i, f in enumerate(v):
            if not isinstance(f, dict):
                raise self.fail(f"forces[{i}]", "must be an object {party, size}")
            p = f.get("party")
            if not isinstance(p, str) or not p:
                raise self.fail(f"forces[{i}].party", "must be a non-empty string")
            _unicode(self, f"forces[{i}].party", p)
            if f.get("size") is not None:
                for k, n in self.counts(f["size"], f"forces[{i}].size").items():
                    total[k] = total.get(k, 0) + n
        return total


def _unicode(r: _Record, fld: str, v: str) -> None:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise r.fail(fld, "is not valid Unicode (a lone surrogate)") from None


def _position_problem(p: Any) -> str | None:
    if not isinstance(p, list) or not 2 <= len(p) <= 3:
        return "a position is [longitude, latitude] (optionally with a height)"
    for x in p:
        if not isinstance(x, int | float) or isinstance(x, bool) or x != x or abs(x) == float("inf"):
            return "coordinates must be finite numbers"
    if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
        return f"position {p[:2]} is outside WGS84 longitude/latitude"
    return None


def _line_problem(c: Any, ring: bool) -> str | None:
    if not isinstance(c, list) or len(c) < (4 if ring else 2):
        return "a ring needs 4 or more positions" if ring else "a line needs 2 or more positions"
    for p in c:
        problem = _position_problem(p)
        if problem:
            return problem
    if ring and c[0][:2] != c[-1][:2]:
        return "a ring must end where it starts"
    return None


def _polygon_problem(c: Any) -> str | None:
    if not isinstance(c, list) or not c:
        return "a polygon is a list of rings"
    for ring in c:
        problem = _line_problem(ring, True)
        if problem:
            return problem
    return None


def _geometry_problem(kind: str, c: Any) -> str | None:
    """What is wrong with GeoJSON coordinates of ``kind`` (RFC 7946 §3.1), or None."""
    if kind == "Point":
        return _position_problem(c)
    if not isinstance(c, list) or not c or len(c) > 100_000:
        return "coordinates must be a non-empty list (at most 100,000 items)"
    if kind == "MultiPoint":
        return next((pr for p in c if (pr := _position_problem(p))), None)
    if kind == "LineString":
        return _line_problem(c, False)
    if kind == "MultiLineString":
        return next((pr for line in c if (pr := _line_problem(line, False))), None)
    if kind == "Polygon":
        return _polygon_problem(c)
    return next((pr for poly in c if (pr := _polygon_problem(poly))), None)


_FORMATION_SET = frozenset(FORMATIONS)


def _parse_one(doc: Any, source: str, index: int) -> Event:
    if not isinstance(doc, dict):
        raise FormatError(f"{source}, record {index}: an event must be a JSON object")
    r = _Record(doc, source, index)
    eid = r.str_("id")
    assert eid is not None
    r.eid = eid
    etype = r.enum("type", EVENT_TYPES)
    party = r.str_("party")
    assert etype is not None and party is not None
    ev_time = r.time("time", required=etype != "activity")
    start = end = None
    to: tuple[str, ...] = ()
    if etype == "activity":
        start, end = r.time("start"), r.time("end")
        assert start is not None and end is not None
        if end < start:
            raise r.fail("end", "precedes start")
        r.enum("category", CATEGORIES)
        if doc.get("alert") is not None and not isinstance(doc["alert"], bool):
            raise r.fail("alert", "must be true or false")
        # Optional fields are looked at only where present (a hundred thousand records
        # would otherwise pay a call for each field they do not have; issue 17).
        if "formation" in doc:
            r.enum("formation", _FORMATION_SET, required=False)
        for g in ("location", "launch", "impact"):
            if g in doc:
                r.geometry(g)
        # The missile's flight path (launch_notification distances): one line, launch to impact.
        if "trajectory" in doc:
            r.geometry("trajectory")
            if doc["trajectory"] is not None and doc["trajectory"]["type"] != "LineString":
                raise r.fail("trajectory", "must be a GeoJSON LineString (the flight path)")
        for fld in ("missile_class", "aircraft_role", "host"):  # host: whose territory (absent: party)
            if fld in doc:
                r.str_(fld, required=False)
        if ev_time is None:
            ev_time = start
    elif etype == "notification":
        r.str_("form")
        for fld in ("activity", "request"):  # request: the visit a report or plan is about
            if fld in doc:
                r.str_(fld, required=False)
        if "activities" in doc:
            r.str_list("activities")
        for fld in ("year", "team_size"):
            if fld in doc:
                r.int_(fld, minimum=1)
        if "impact" in doc:
            r.geometry("impact")  # a launch notice's planned impact area (launch_notification)
        if "window_start" in doc or "window_end" in doc:
            start, end = r.time("window_start", required=False), r.time("window_end", required=False)
            if start is not None and end is not None and end < start:
                raise r.fail("window_end", "precedes window_start")
        if "to" in doc:
            to = r.str_list("to")
    elif etype == "exchange":
        r.str_("form")
        r.str_("period")
        r.str_list("parts")
        r.int_("units")
    elif etype == "request":
        r.enum("kind", REQUEST_KINDS)
        to = (r.str_("to") or "",)
        if "precedence" in doc:
            r.enum("precedence", PRECEDENCES, required=False)
        if "activity" in doc:
            r.str_("activity", required=False)
        if "area" in doc:
            r.geometry("area")
        for fld in ("eta", "until"):
            if fld in doc:
                r.time(fld, required=False)
        if "team_size" in doc:
            r.int_("team_size", minimum=1)
    elif etype == "response":
        r.str_("request")
        r.enum("decision", DECISIONS)
        if "reason" in doc:
            r.str_("reason", required=False)
    else:  # incident
        r.str_("kind")
        r.geometry("location")
    if "withdrawn_refs" in doc:  # the hub's mark of references whose event was withdrawn
        r.str_list("withdrawn_refs")
    assert ev_time is not None
    return Event(eid, etype, party, ev_time, doc, start, end, r.size(), to)


def parse_event(doc: Any, source: str) -> Event:
    """Validate one record on its own (references to other events are the caller's)."""
    return _parse_one(doc, source, 0)


def parse_events(
    records: Sequence[Any], source: str = "events", *, after: Sequence[Event] = ()
) -> list[Event]:
    """Validate records into events; ids unique, references resolved (or listed in the
    event's ``withdrawn_refs``), or a ``FormatError``.

    ``after``: events validated already that ``records`` continue (a log that grew): only
    the new records are read, and checked against ``after`` and each other; the answer is
    ``after`` followed by them, as if the whole had been parsed at once.
    """
    if len(after) + len(records) > MAX_EVENTS:
        raise FormatError(f"{source}: more than {MAX_EVENTS} events")
    start = len(after)
    new = [_parse_one(doc, source, start + i) for i, doc in enumerate(records)]
    ids: dict[str, int] = {e.id: i for i, e in enumerate(after)}
    for i, e in enumerate(new, start):
        if e.id in ids:
            raise FormatError(
                f"{source}, record {i} (id {e.id!r}), field 'id': duplicates record {ids[e.id]}"
            )
        ids[e.id] = i
    events = [*after, *new]
    for i, e in enumerate(new, start):
        refs: Iterable[tuple[str, str]] = ()
        if e.type == "response":
            refs = (("request", e.raw["request"]),)
        elif e.type == "notification":
            refs = [("activity", e.raw["activity"])] if e.raw.get("activity") else []
            refs += [("request", e.raw["request"])] if e.raw.get("request") else []
            refs = [*refs, *(("activities", a) for a in e.raw.get("activities") or ())]
        elif e.type == "request" and e.raw.get("activity"):
            refs = (("activity", e.raw["activity"]),)
        # A reference the hub marks withdrawn (its owner withdrew it after this event named
        # it) resolves to nothing on purpose: the rules judge nothing on it.
        gone = e.raw.get("withdrawn_refs") or ()
        for fld, ref in refs:
            if ref not in ids and ref not in gone:
                raise FormatError(
                    f"{source}, record {i} (id {e.id!r}), field {fld!r}: "
                    f"refers to {ref!r}, which is not an event in {source}"
                )
    return events


SECRETARIAT = "secretariat"
"""Not a State: it sends communication checks (the hub's rule), and binds no one by sending."""


def not_a_member(agreement: Agreement, party: str, ms: int) -> str | None:
    """Why ``party`` is not bound by ``agreement`` at ``ms``, or None if it is. One wording
    for ``cbmnet check`` and the hub, so both refuse an event in the same words."""
    if agreement.is_member(party, ms):
        return None
    on = format_time(ms)
    mem = agreement.membership.get(party)
    if mem is not None:
        span = f"from {mem.joined}" if mem.joined is not None else ""
        span += f" until {mem.left}" if mem.left is not None else ""
        return f"{party!r} is not a member of {agreement.id!r} on {on} (a member {span.strip()})"
    if agreement.parties_complete:
        return f"{party!r} is not a party to {agreement.id!r}"
    return (
        f"{party!r} is not a party to {agreement.id!r} as its file lists them on {on} (the list "
        "is a subset, parties_complete: false: if it is a member, add it there with its source)"
    )


def check_membership(events: Sequence[Event], agreement: Agreement, source: str) -> None:
    """Refuse an event by a State that is not a member of ``agreement`` on its date (an
    activity's: its start), or an activity whose ``host`` is not: it would otherwise be
    passed over in silence. A secretariat's communication check is not a State's act."""
    for i, e in enumerate(events):
        when = e.start if e.type == "activity" and e.start is not None else e.time
        checks = [("party", e.party)]
        if e.type == "request" and e.party == SECRETARIAT and e.raw.get("kind") == "communication_check":
            checks = []
        host = e.raw.get("host") if e.type == "activity" else None
        if isinstance(host, str):
            checks.append(("host", host))
        for fld, who in checks:
            why = not_a_member(agreement, who, when)
            if why is not None:
                raise FormatError(f"{source}, record {i} (id {e.id!r}), field {fld!r}: {why}")


def load_events_text(text: str, source: str) -> list[Event]:
    """A JSON array of events, or JSON Lines (one event per line)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            records = json.loads(text)
        else:
            records = []
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise FormatError(f"{source}, line {n}: not JSON ({e.msg})") from e
    except json.JSONDecodeError as e:
        raise FormatError(f"{source}: not JSON ({e.msg} at line {e.lineno})") from e
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{source}: not JSON ({e})") from e
    if not isinstance(records, list):
        raise FormatError(f"{source}: expected a JSON array of events or JSON Lines")
    return parse_events(records, source)
