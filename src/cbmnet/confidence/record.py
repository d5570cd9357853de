"""What the indicators read: the engine's verdicts plus a compact list of log facts.

Everything here comes from the log (through the compliance engine or straight from the
entries), so any party holding the log can rebuild the same ``Record`` and recompute the
same indicators. Who an entry was addressed to is resolved by the caller (the hub knows
its registry); the indicators never guess an audience.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HOTLINE, PT_HUB
from cbmnet.acts.state import Entry, HubState
from cbmnet.compliance.report import Finding, Obligation, Report


@dataclass(frozen=True, slots=True)
class Fact:
    """One logged entry, as much of it as the indicators need.

    ``kind`` is the event type (``notification``, ``exchange``, ``request``,
    ``response`` …), ``ack``, ``hotline.message`` or ``check.result``. ``ref`` is the
    index of the entry this one answers or acknowledges. ``to`` holds the parties it was
    addressed to (never its author); ``to_all`` says it went to every party of the
    agreement. ``form`` is a notification's or exchange's form or a request's kind;
    ``outcome`` a response's decision (``accept``, ``refuse``, ``answer``) or a check's
    result (``passed``, ``missed``); ``concerns`` the party a check result is about.
    """

    index: int
    ms: int
    author: str
    kind: str
    agreement: str
    ref: int | None = None
    to: frozenset[str] = frozenset()
    to_all: bool = False
    form: str | None = None
    outcome: str | None = None
    concerns: str | None = None

    def addressed_to(self, party: str) -> bool:
        return party != self.author and (self.to_all or party in self.to)


@dataclass(frozen=True)
class Record:
    """One agreement's record up to ``as_of``: parties, obligations, findings and facts."""

    agreement: str
    as_of: int
    parties: tuple[str, ...]
    obligations: tuple[Obligation, ...]
    findings: tuple[Finding, ...]
    facts: tuple[Fact, ...]

    @classmethod
    def of(cls, report: Report, facts: Iterable[Fact], parties: Iterable[str]) -> Record:
        """Join the engine's report with the log facts of the same agreement.

        Facts after the report's ``as_of`` are left out, so both halves describe the
        same moment; facts are kept in log order.
        """
        kept = sorted(
            (f for f in facts if f.agreement == report.agreement and f.ms <= report.as_of),
            key=lambda f: f.index,
        )
        return cls(
            report.agreement,
            report.as_of,
            tuple(sorted(set(parties))),
            report.obligations,
            report.findings,
            tuple(kept),
        )


_KINDS_FROM_HUB = frozenset({"check.result"})


def facts_from_state(
    state: HubState,
    agreement: str,
    upto: int | None = None,
    since: int = 0,
    hold: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[Fact, ...]:
    """The agreement's facts folded into ``state`` (entries before ``upto``), in log order.

    Reads only the state's public attributes. Events are taken as ``events()`` reads
    them: a withdrawn event is left out, a corrected one counts once, at its original
    entry, with its corrected content; the amendments themselves are not facts.
    ``since``: only the facts of entries from that index on (those before it are the same
    as long as no event before ``upto`` was amended since they were read).

    ``hold``: what makes a read of ``state`` safe while it grows (a hub's state lock).
    It is held only while the state is read, not while a million entries are turned into
    facts: entries never change once folded, so a copy of the list is read without it.
    """
    with hold():
        limit = state.size if upto is None else min(upto, state.size)
        known = agreement in state.agreements
        if not known:
            docs = {}
        elif since > 0 and not state.amended(agreement, since, limit):  # the new ones alone
            docs = {d["log_index"]: d for d in state.events_since(agreement, since, limit)}
        else:
            docs = {d["log_index"]: d for d in state.events(agreement, limit) if d["log_index"] >= since}
        entries = state.entries[since:limit]
    out: list[Fact | Entry] = []
    checks: list[Entry] = []
    for e in entries:
        if e.agreement != agreement:
            continue
        to = frozenset(e.addressees - {e.author})
        to_all = e.scope is not None
        if e.payload_type == PT_EVENT:
            doc = docs.get(e.index)
            if doc is None:
                continue  # an amendment, or a withdrawn event
            form = doc.get("form") or doc.get("kind")
            out.append(
                Fact(
                    e.index,
                    e.ms,
                    e.author,
                    e.kind,
                    agreement,
                    e.ref,
                    to,
                    to_all,
                    str(form) if form is not None else None,
                    str(doc["decision"]) if doc.get("decision") is not None else None,
                )
            )
        elif e.payload_type == PT_ACK or (e.payload_type == PT_HOTLINE and e.kind == "hotline.message"):
            out.append(Fact(e.index, e.ms, e.author, e.kind, agreement, e.ref, to, to_all))
        elif e.payload_type == PT_HUB and e.kind in _KINDS_FROM_HUB:
            out.append(e)  # its request is looked up in the state below
            checks.append(e)
    if not checks:
        return tuple(f for f in out if isinstance(f, Fact))
    resolved: dict[int, Fact] = {}
    with hold():
        for e in checks:
            request = state.event_doc(agreement, e.event_id or "")
            checked = request.get("to") if request is not None else None
            resolved[e.index] = Fact(
                e.index,
                e.ms,
                e.author,
                e.kind,
                agreement,
                request_index(state, agreement, e.event_id),
                frozenset(e.addressees - {e.author}),
                e.scope is not None,
                outcome=e.form,
                concerns=str(checked) if isinstance(checked, str) else None,
            )
    return tuple(f if isinstance(f, Fact) else resolved[f.index] for f in out)


def request_index(state: HubState, agreement: str, event_id: str | None) -> int | None:
    return state.event_entry(agreement, event_id) if event_id else None


def record_from_state(state: HubState, report: Report, parties: Iterable[str] | None = None) -> Record:
    """The ``Record`` the hub publishes: its report joined with its own log's facts.

    ``parties`` defaults to the parties registered for the agreement (those the hub
    reports on); pass the agreement's full list to include parties not on this hub.
    """
    who = state.members_of(report.agreement) if parties is None else set(parties)
    return Record.of(report, facts_from_state(state, report.agreement), who)
