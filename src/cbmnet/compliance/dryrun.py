"""What an act would change if it were sent now: the engine run twice, without and with it.

An officer filling a form wants to know, before signing, the deadline the act meets or
misses ("due 3 Aug; you are 4 days late"), what it starts (an activity makes a
notification due; a request makes an answer due), and the findings it would add or
clear. The engine is pure and deterministic, so the honest answer is to evaluate the
agreement over what the party may read, as of now, once as it stands and once with the
draft added (its ``time`` the present, as the hub would stamp it), and compare.

Pure: no I/O, no clock (``as_of`` is given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import Geometry, evaluate
from cbmnet.compliance.events import Event, parse_events
from cbmnet.compliance.report import Finding, Obligation
from cbmnet.compliance.timeutil import format_time

NOT_READ = frozenset({"body", "sealed_body", "withdrawn_refs", "time"})
"""What the engine is not given from a draft, as the hub does not give it from a logged
event: the human text, the time (the log's, here ``as_of``), and ``withdrawn_refs``
(which only the hub states)."""

AMENDMENTS_UNJUDGED = (
    "a correction or withdrawal changes the event it amends: its effect is judged once it "
    "is logged, not in a dry run"
)


@dataclass(frozen=True)
class DryRun:
    """The draft's effect, as the engine states it (with provisions): obligations it meets,
    obligations it starts, obligations it concerns but leaves open (a notice of the year
    judged at the year's end), findings it adds or clears. ``note``: why nothing is judged."""

    as_of: int
    meets: tuple[Obligation, ...] = ()
    starts: tuple[Obligation, ...] = ()
    concerns: tuple[Obligation, ...] = ()
    adds: tuple[Finding, ...] = ()
    clears: tuple[Finding, ...] = ()
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        def obligation(o: Obligation) -> dict[str, Any]:
            out = o.to_json()
            late = o.status in ("late", "missed") or (o.status == "pending" and o.due < self.as_of)
            out["late_by_ms"] = max(0, self.as_of - o.due) if late else 0
            return out

        return {
            "as_of": format_time(self.as_of),
            "meets": [obligation(o) for o in self.meets],
            "starts": [obligation(o) for o in self.starts],
            "concerns": [obligation(o) for o in self.concerns],
            "adds": [f.to_json() for f in self.adds],
            "clears": [f.to_json() for f in self.clears],
            "note": self.note,
        }


def _involved(e: Event) -> set[str]:
    """The States an event concerns: its author, addressees, host and forces."""
    out = {e.party, *e.to}
    host = e.raw.get("host")
    if isinstance(host, str):
        out.add(host)
    forces = e.raw.get("forces")
    if isinstance(forces, list):
        out.update(f["party"] for f in forces if isinstance(f, dict) and isinstance(f.get("party"), str))
    return out


def neighbourhood(agreement: Agreement, events: Sequence[Event], draft: Event) -> list[Event]:
    """The events a draft can change the engine's answer about: every event concerning a
    State the draft concerns (its author, addressee, host, forces, the authors of what it
    names, and the States sharing a quota group with any of them), and what it names.

    Every rule of the engine judges a State on events that concern it: its activities,
    notices, calendars and exchanges, the requests made to it and by it, their answers,
    its quotas (a group's shared). So an obligation or finding the draft can add, meet or
    clear is computed from these alone exactly as from the whole, and the rest cancel out
    between the two runs (``tests/test_dashboard_file.py`` checks this against the whole
    on generated logs). A draft addressed to every party (``*``) concerns all: the whole.
    """
    if "*" in draft.to:
        return list(events)
    by_id = {e.id: e for e in events}
    named = [
        by_id[r]
        for r in (
            draft.raw.get("activity"),
            draft.raw.get("request"),
            *(draft.raw.get("activities") or ()),
        )
        if isinstance(r, str) and r in by_id
    ]
    states = _involved(draft)
    for e in named:
        states |= _involved(e)
    for m in agreement.measures:
        for members in (getattr(m, "groups", None) or {}).values():
            if states & set(members):
                states |= set(members)
    names = {e.id for e in named}
    return [e for e in events if e.id in names or not states.isdisjoint(_involved(e))]


def _key(f: Finding, draft_id: str) -> tuple[Any, ...]:
    """A finding's identity across the two runs: a late fulfilment adds the draft to a
    finding's subjects without making it another finding."""
    subjects = tuple(s for s in f.subjects if s != draft_id)
    return (f.code, f.party, f.provision, subjects, f.due, f.period, f.measure)


def dry_run(
    agreement: Agreement,
    events: Sequence[Event],
    draft: Mapping[str, Any],
    as_of: int,
    zones: Mapping[str, Geometry] | None = None,
    *,
    whole: bool = False,
) -> DryRun:
    """The engine over ``events`` (parsed, what the party may read) as of ``as_of``,
    without and with ``draft`` (stamped ``as_of``). Raises the engine's ``FormatError``
    when the draft cannot be read with them (an id used before, a reference to nothing),
    naming the field.

    Judged on the draft's ``neighbourhood`` (a party's few hundred events, not the
    agreement's tens of thousands); ``whole``: on every event.
    """
    if draft.get("amends") is not None:
        return DryRun(as_of, note=AMENDMENTS_UNJUDGED)
    stamped = {k: v for k, v in draft.items() if k not in NOT_READ} | {"time": format_time(as_of)}
    with_draft = parse_events([stamped], "this draft", after=events)
    near = list(events) if whole else neighbourhood(agreement, events, with_draft[-1])
    before = evaluate(agreement, near, as_of, zones)
    after = evaluate(agreement, [*near, with_draft[-1]], as_of, zones)
    did = str(draft.get("id", ""))
    old_obligations = {o.id for o in before.obligations}
    meets = tuple(o for o in after.obligations if o.met_by == did)
    starts = tuple(
        o
        for o in after.obligations
        if o.id not in old_obligations and did in o.subjects and o.met_by != did
    )
    concerns = tuple(
        o for o in after.obligations if o.id in old_obligations and did in o.subjects and o.met_by != did
    )
    old = {_key(f, did) for f in before.findings}
    new = {_key(f, did) for f in after.findings}
    return DryRun(
        as_of,
        meets,
        starts,
        concerns,
        tuple(f for f in after.findings if _key(f, did) not in old),
        tuple(f for f in before.findings if _key(f, did) not in new),
    )
