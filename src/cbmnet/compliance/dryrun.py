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
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.report import Finding, Obligation, Report
from cbmnet.compliance.timeutil import format_time


@dataclass(frozen=True)
class DryRun:
    """The draft's effect: obligations it meets, obligations it starts, findings it adds or
    clears, all as the engine states them (with their provisions)."""

    as_of: int
    meets: tuple[Obligation, ...]
    starts: tuple[Obligation, ...]
    adds: tuple[Finding, ...]
    clears: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        def obligation(o: Obligation) -> dict[str, Any]:
            out = o.to_json()
            out["late_by_ms"] = max(0, self.as_of - o.due) if o.status in ("late", "missed") else 0
            return out

        return {
            "as_of": format_time(self.as_of),
            "meets": [obligation(o) for o in self.meets],
            "starts": [obligation(o) for o in self.starts],
            "adds": [f.to_json() for f in self.adds],
            "clears": [f.to_json() for f in self.clears],
        }


def _key(f: Finding) -> tuple[Any, ...]:
    return (f.code, f.party, f.provision, f.subjects, f.due, f.period, f.measure)


def dry_run(
    agreement: Agreement,
    docs: Sequence[Mapping[str, Any]],
    draft: Mapping[str, Any],
    as_of: int,
    zones: Mapping[str, Geometry] | None = None,
    *,
    before: Report | None = None,
) -> DryRun:
    """The engine over ``docs`` as of ``as_of``, without and with ``draft`` (stamped
    ``as_of``). Raises the engine's ``FormatError`` when the draft cannot be read with the
    rest (an id used before, a reference to nothing), naming the field as the hub would.

    ``before``: the report over ``docs`` alone, when the caller holds it already.
    """
    stamped = {**draft, "time": format_time(as_of)}
    base = parse_events(list(docs), "the events you may read")
    with_draft = parse_events([stamped], "this draft", after=base)
    if before is None:
        before = evaluate(agreement, base, as_of, zones)
    after = evaluate(agreement, with_draft, as_of, zones)
    did = str(draft.get("id", ""))
    old_obligations = {o.id for o in before.obligations}
    meets = tuple(o for o in after.obligations if o.met_by == did)
    starts = tuple(
        o
        for o in after.obligations
        if o.id not in old_obligations and did in o.subjects and o.met_by != did
    )
    old = {_key(f) for f in before.findings}
    new = {_key(f) for f in after.findings}
    return DryRun(
        as_of,
        meets,
        starts,
        tuple(f for f in after.findings if _key(f) not in old),
        tuple(f for f in before.findings if _key(f) not in new),
    )
