"""The hub's read model: every answer a route or a page gives about the folded log.

Routes and pages read through here, never the hub's state or its lock. The model is fed by
committed entries only (``Folded.committed``: what is durable), keeps its caches (parsed
events, compliance reports and their windows, per-caller views, confidence facts, the
hotline's message index) and drops them itself (``clear``, when the hub rebuilds its
state). Each answer is cut to what its caller may read (``HubState.may_read``): a party's
view, counts and errors never rest on an entry addressed to others.

Lock order (as in ``hub.service``): the store's lock may be followed by the state lock,
never the reverse; here only the state lock is taken, and never while the engine runs.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any, Protocol

from cbmnet import collector
from cbmnet.acts.model import PT_EVENT, PT_HOTLINE, SECRETARIAT, Act, read_act
from cbmnet.acts.registry import Party
from cbmnet.acts.state import ALL, Entry, HubState, invitation_forms
from cbmnet.agreements.model import Agreement, HotlineTerms
from cbmnet.compliance.annual import annual
from cbmnet.compliance.dryrun import dry_run
from cbmnet.compliance.engine import evaluate, next_change
from cbmnet.compliance.events import Event, parse_events
from cbmnet.compliance.quota import BOOK_TYPES, QuotaBooks, quota_books, quota_status
from cbmnet.compliance.report import Report
from cbmnet.compliance.timeutil import format_time
from cbmnet.compliance.visits import time_field
from cbmnet.confidence import Record, facts_from_state, indicators
from cbmnet.confidence.indicators import FactBook, month_end, month_of
from cbmnet.confidence.record import Fact
from cbmnet.errors import CbmnetError, ForbiddenError, FormatError, NotFoundError, StoreError

log = logging.getLogger("cbmnet.hub")

MAX_BOOKS = 32
"""Readers' fact books kept (the least recently read go first): a party's is small, the
secretariat's holds every fact of the agreement."""


class Folded(Protocol):
    """What the read model reads of the hub: the state folded from the log (replaced when
    the hub rebuilds it) and the size below which entries are durable."""

    @property
    def state(self) -> HubState: ...

    @property
    def committed(self) -> int: ...


def _better(have: _Window | None, new: _Window, now: int) -> bool:
    """Keep ``new`` in place of ``have``? Yes if it is of a longer log, or of the same one
    unless ``have`` holds for the present and ``new`` does not (one look at another
    ``as_of`` must not evict the view of the present)."""
    if have is None or have.key < new.key:
        return True
    if have.key > new.key:
        return False
    return not (have.since <= now < have.until) or new.since <= now < new.until


def _hit(win: _Window | None, key: tuple[int, ...], as_of: int) -> _Window | None:
    """``win`` if it was made from the inputs ``key`` names and holds at ``as_of``."""
    if win is not None and win.key == key and win.since <= as_of < win.until:
        return win
    return None


@dataclass
class Parsed:
    """One agreement's events as of ``committed``: the state's documents and the engine's."""

    committed: int
    count: int
    """The agreement's entries below ``committed`` (``HubState.events_at``): two parses
    with the same count hold the same events."""
    docs: list[dict[str, Any]]
    """Shared by every reader: never modified."""
    events: list[Event]
    latest: int
    """The latest event time (-1 when none): a moment at or after it sees every event."""
    quota: dict[str, QuotaView]
    """Reader -> its quota view: keyed by the party it was cut for, never served to another."""
    generation: int
    """Grows when the events are read again from scratch (an amendment): within one
    generation, a later parse's ``docs`` begin with an earlier one's, the same objects."""


@dataclass
class QuotaView:
    """The quota books' events one reader may read at one log size, and books replayed on them."""

    events: list[Event]
    latest: int
    """The latest time among ``events`` (-1 when none): the books serve any moment after it."""
    books: dict[str, QuotaBooks]
    """Request kind -> the books replayed over every one of ``events``."""


@dataclass
class _Window:
    """A result of the inputs ``key`` names (log sizes, counts: they only grow), valid for
    any moment in [``since``, ``until``)."""

    key: tuple[int, ...]
    since: int
    until: int
    value: Any


@dataclass(frozen=True)
class HotlineRow:
    """One hotline message as the console shows it to one member (or the secretariat)."""

    row: dict[str, Any]
    terms: HotlineTerms | None


class ReadModel:
    """The hub's reads, over the committed log, each cut to its caller."""

    def __init__(
        self,
        fold: Folded,
        lock: threading.Lock,
        agreements: dict[str, Agreement],
        zones: dict[str, dict[str, Any]],
        clock: Callable[[], int],
    ) -> None:
        self._fold = fold
        self._lock = lock
        self.agreements = agreements
        self.zones = zones
        self.clock = clock
        self._eval_lock = threading.Lock()
        self._report_cache: dict[tuple[str, int, int], Report] = {}
        # Compliance views of the present (see ``report``): per agreement, and per
        # (caller, agreement) for what is cut to the caller; exact for one log size and
        # a span of time over which the engine's answer cannot change.
        self._parsed: dict[str, Parsed] = {}
        self._present: dict[str, _Window] = {}
        self._views: dict[tuple[str, str, str], _Window] = {}
        self._facts: dict[str, tuple[int, tuple[Fact, ...]]] = {}
        """Agreement -> (log size, its facts): extended as the log grows, unless amended."""
        self._hotline: list[int] = []
        self._hotline_scanned = 0
        """Hotline message entries, indexed as they become durable (they never change)."""
        self._facts_epoch: dict[str, int] = {}
        """Agreement -> how often its facts were read from scratch (an amendment rewrote
        one): a fact book of an earlier reading is read again."""
        self._books: OrderedDict[tuple[str, str], tuple[tuple[int, int], FactBook]] = OrderedDict()
        """(reader, agreement) -> ((facts epoch, registry count), the reader's fact book)."""
        self._books_lock = threading.Lock()
        self._cuts: dict[tuple[str, str], tuple[Report, int, Report]] = {}
        """(reader, agreement) -> (the report, the registry count, its cut for the reader)."""
        self._book_locks: dict[tuple[str, str], threading.Lock] = {}
        """One per (reader, agreement): a reader's book is read by one caller at a time,
        while others' books are read (the secretariat's takes seconds at start)."""
        self._generation = 0
        self._one_at_a_time = {
            (what, a): threading.Lock() for a in agreements for what in ("parse", "facts")
        }
        """Reading an agreement's events or facts (seconds at a million entries, at start)
        is done once while other callers wait for it, not again by each."""

    def clear(self) -> None:
        """Drop every cache: the hub rebuilt its state (a failed commit), so nothing derived
        from the old one may be served (call with the state lock held)."""
        self._report_cache.clear()
        self._parsed.clear()
        self._present.clear()
        self._views.clear()
        self._facts.clear()
        self._hotline.clear()
        self._hotline_scanned = 0
        self._facts_epoch.clear()
        self._books.clear()
        self._cuts.clear()

    def warm(self) -> None:
        """Read every agreement's events and facts ahead of the first caller (at start:
        a snapshot restores the fold, not what is derived from it)."""
        for agreement in self.agreements:
            self.facts_of(agreement, self.parsed_events(agreement).committed)

    # ---- the registry -------------------------------------------------------------------

    def parties(self) -> list[Party]:
        """Every registered party, by id: copies, so a key change folded meanwhile cannot
        alter a list being rendered."""
        with self._lock:
            return [
                replace(p, keys=[replace(k) for k in p.keys], contact=dict(p.contact))
                for p in sorted(self._fold.state.parties.values(), key=lambda p: p.id)
            ]

    def party_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._fold.state.parties)

    def signing_keys(self, party: str) -> list[bytes]:
        """The keys that may sign for ``party`` now (none for a stranger)."""
        with self._lock:
            return list(self._fold.state.signing_keys(party))

    def encryption_key(self, party: str) -> bytes | None:
        """``party``'s current X25519 key for hotline bodies (None for a stranger)."""
        with self._lock:
            p = self._fold.state.parties.get(party)
            return p.encryption_key if p is not None else None

    def witness_keys(self) -> list[str]:
        """The witness keys the registered parties named, in registration order."""
        with self._lock:
            return [p.witness_key for p in self._fold.state.parties.values() if p.witness_key]

    def policy_witnesses(self) -> list[tuple[str, str]]:
        """(party, witness key) that count toward the witness majority (``Registry``)."""
        with self._lock:
            return list(self._fold.state.registry.policy_witnesses())

    def agreements_of(self, party: str) -> list[str]:
        """The agreements ``party`` is in (the secretariat: all), that this hub serves."""
        if party == SECRETARIAT:
            return sorted(self.agreements)
        with self._lock:
            p = self._fold.state.parties.get(party)
            return sorted(a for a in (p.agreements if p else ()) if a in self.agreements)

    def hosts_for(self, party: str, agreement: str) -> list[str]:
        """The other parties registered for ``agreement``: whom ``party`` may ask to visit."""
        with self._lock:
            return sorted(
                p.id
                for p in self._fold.state.parties.values()
                if p.id != party and agreement in p.agreements
            )

    def log_size(self) -> int:
        """How many entries are durable: what every read here is over."""
        return self._fold.committed

    def version(self) -> int:
        """Grows with every entry folded: a cache key for answers of the whole state."""
        with self._lock:
            return self._fold.state.version

    # ---- entries ------------------------------------------------------------------------

    def entries_for(
        self,
        party: str,
        *,
        after: int = -1,
        limit: int = 100,
        inbox: bool = False,
        match: Callable[[Entry], bool] | None = None,
        author: str | None = None,
    ) -> list[Entry]:
        """Entries ``party`` may read, oldest first, after ``after``; ``author``: only that
        author's (read through its own index, not by walking every entry)."""
        out: list[Entry] = []
        with self._lock:
            found = (
                self._fold.state.visible(party, after)
                if author is None
                else self._fold.state.authored(party, author, after)
            )
            for i in found:
                if i >= self._fold.committed:
                    break  # admitted but not yet durable: never shown
                e = self._fold.state.entries[i]
                if inbox and e.author == party:
                    continue
                if match is not None and not match(e):
                    continue
                if author is not None and e.author != author:
                    continue
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    def committed_entry(self, index: int) -> Entry:
        if index >= self._fold.committed:
            raise NotFoundError(f"no entry {index}: the log holds {self._fold.committed}")
        return self._fold.state.entry(index)

    def key_active(self, party: str, key: bytes) -> bool:
        with self._lock:
            return key in self._fold.state.signing_keys(party)

    def readable(self, party: str, index: int) -> Entry:
        with self._lock:
            e = self.committed_entry(index)
            if not self._fold.state.may_read(party, e):
                raise ForbiddenError(f"entry {index} is not addressed to {party!r}")
            return e

    def readable_events(self, party: str, agreement: str) -> list[dict[str, Any]]:
        """The agreement's committed events (as ``HubState.events``) that ``party`` may
        read; shared documents: read, never modify."""
        docs = self.parsed_events(agreement).docs
        if party == SECRETARIAT:
            return docs
        ok = self.readable_indices(party, [d["log_index"] for d in docs])
        return [d for d in docs if d["log_index"] in ok]

    def exercise_flags(self, indices: Sequence[int]) -> set[int]:
        """Those of ``indices`` whose entries mark themselves exercise data."""
        with self._lock:
            entries = self._fold.state.entries
            return {i for i in indices if entries[i].exercise}

    def readable_indices(self, party: str, indices: Sequence[int]) -> set[int]:
        """Those of the durable ``indices`` that ``party`` may read."""
        with self._lock:
            st, committed = self._fold.state, self._fold.committed
            return {i for i in indices if i < committed and st.may_read(party, st.entries[i])}

    def readable_subjects(
        self, party: str, agreement: str, subjects: Sequence[str]
    ) -> list[tuple[str, int]]:
        """(event id, entry index) of the durable ``subjects`` that ``party`` may read."""
        out = []
        with self._lock:
            st, committed = self._fold.state, self._fold.committed
            for sid in subjects:
                idx = st.event_entry(agreement, sid)
                if idx is not None and idx < committed and st.may_read(party, st.entries[idx]):
                    out.append((sid, idx))
        return out

    def readable_batches(
        self, party: str, agreements: set[str], author: str | None, limit: int
    ) -> list[tuple[int, dict[str, Any], str]]:
        """(index, statement, author) of the newest ``limit`` durable observation batches of
        ``agreements`` that ``party`` may read (by ``author`` only, if given)."""
        with self._lock:
            st, committed = self._fold.state, self._fold.committed
            found = [
                (i, dict(meta), st.entries[i].author)
                for i, meta in st.batches.items()
                if i < committed
                and meta.get("agreement") in agreements
                and (author is None or st.entries[i].author == author)
                and st.may_read(party, st.entries[i])
            ]
        return sorted(found, key=lambda t: -t[0])[:limit]

    def batch_statement(self, index: int) -> dict[str, Any] | None:
        """What the log says of observation batch ``index`` (None: not a batch)."""
        with self._lock:
            meta = self._fold.state.batches.get(index)
            return dict(meta) if meta is not None else None

    def entry_readers(self, index: int, parties: Sequence[str]) -> tuple[Entry, set[str]]:
        """The durable entry ``index`` and those of ``parties`` who may read it (its
        author excepted: nobody is told of its own act)."""
        with self._lock:
            e = self.committed_entry(index)
            return e, {p for p in parties if p != e.author and self._fold.state.may_read(p, e)}

    def channel_agreement(self, channel: str) -> str | None:
        with self._lock:
            ch = self._fold.state.channels.get(channel)
            return ch.agreement if ch is not None else None

    def channels_of(self, party: str) -> list[dict[str, Any]]:
        """The hotline channels ``party`` is a member of (the secretariat: all), by id."""
        with self._lock:
            return [
                {
                    "id": c.id,
                    "agreement": c.agreement,
                    "members": list(c.members),
                    "opened_at": c.opened_at,
                    "accepted": sorted(c.accepted),
                }
                for c in sorted(self._fold.state.channels.values(), key=lambda c: c.id)
                if party == SECRETARIAT or party in c.members
            ]

    def hotline_rows(self, party: str, limit: int) -> list[HotlineRow]:
        """The latest ``limit`` durable hotline messages ``party`` may read, newest first,
        each with who acknowledged it (in the log), who is on record as silent, and who is
        held to answer (members that accepted the channel)."""
        out: list[HotlineRow] = []
        with self._lock:
            st, durable = self._fold.state, self._fold.committed
            entries = st.entries
            upto = min(durable, len(entries))
            for i in range(self._hotline_scanned, upto):
                e = entries[i]
                if e.payload_type == PT_HOTLINE and e.kind == "hotline.message":
                    self._hotline.append(i)
            self._hotline_scanned = max(self._hotline_scanned, upto)
            mine = {c.id for c in st.channels.values() if party == SECRETARIAT or party in c.members}
            for i in reversed(self._hotline):
                e = entries[i]
                if e.form not in mine or not st.may_read(party, e):
                    continue
                ch = st.channels[str(e.form)]
                acks = {
                    m: {"index": a, "at": format_time(entries[a].ms), "at_ms": entries[a].ms}
                    for m in ch.members
                    if (a := st.acks.get((e.index, m))) is not None and a < durable
                }
                silent = sorted(m for m in ch.members if (e.index, m) in st.no_answer)
                held = sorted(ch.accepted - {e.author})
                row: dict[str, Any] = {
                    "index": e.index,
                    "channel": ch.id,
                    "agreement": ch.agreement,
                    "from": e.author,
                    "sent_ms": e.ms,
                    "sent": format_time(e.ms),
                    "members": list(ch.members),
                    "held": held,
                    "acks": acks,
                    "no_answer": silent,
                    "waiting": sorted(set(held) - set(acks) - set(silent)),
                    "may_ack": party in ch.members and party != e.author and party not in acks,
                }
                ag = self.agreements.get(ch.agreement)
                out.append(HotlineRow(row, ag.hotline if ag is not None else None))
                if len(out) == limit:
                    break
        return out

    # ---- quotas ---------------------------------------------------------------------------

    def quota_for(
        self,
        party: str,
        agreement: str,
        host: str,
        request_kind: str,
        *,
        eta_ms: int | None = None,
        until_ms: int | None = None,
    ) -> dict[str, Any]:
        """Before ``party`` asks ``host`` for a visit: would the host be obliged to accept?"""
        self.member(party, agreement)
        with self._lock:
            if host not in self._fold.state.parties:
                raise NotFoundError(f"{host!r} is not a registered party")
        view = self.quota_view(party, self.parsed_events(agreement))
        ag = self.agreements[agreement]
        at = self.clock()
        books = None
        if at >= view.latest:  # every event seen: the books replayed once serve any later moment
            books = view.books.get(request_kind)
            if books is None:
                books = view.books[request_kind] = quota_books(
                    ag, view.events, request_kind, max(0, view.latest)
                )
        status = quota_status(
            ag,
            view.events,
            host,
            party,
            request_kind,
            at,
            eta_ms=eta_ms,
            until_ms=until_ms,
            books=books,
            reader=None if party == SECRETARIAT else party,
        )
        return status.to_json()

    def quota_of_request(self, party: str, agreement: str, request: str) -> dict[str, Any]:
        """The host's question before it answers ``request``: would a refusal be a finding?

        Counted as the engine judges the refusal: at the request's time, on its planned
        visit, on the entries ``party`` (the host, or the secretariat) may read. Anyone else
        hears that no such request is addressed to them, whether it exists or not."""
        self.member(party, agreement)
        view = self.quota_view(party, self.parsed_events(agreement))
        req = next((e for e in view.events if e.type == "request" and e.id == request), None)
        if req is None or not req.to or party not in (SECRETARIAT, req.to[0]):
            raise NotFoundError(f"no request {request!r} under {agreement!r} is addressed to {party!r}")
        kind = req.raw.get("kind")
        if not isinstance(kind, str):
            raise NotFoundError(f"request {request!r} names no kind of visit")
        status = quota_status(
            self.agreements[agreement],
            view.events,
            req.to[0],
            req.party,
            kind,
            req.time,
            eta_ms=time_field(req, "eta"),
            until_ms=time_field(req, "until"),
            reader=None if party == SECRETARIAT else party,
        )
        return status.to_json()

    def quota_view(self, party: str, parsed: Parsed) -> QuotaView:
        """The events a quota answer to ``party`` may rest on: those it may read (all, for
        the secretariat). A request between two others must not move any figure, window or
        reason of the answer (ADR 0006), so the books are replayed per reader."""
        got = parsed.quota.get(party)
        if got is not None:
            return got
        pairs = [(d, e) for d, e in zip(parsed.docs, parsed.events, strict=True) if e.type in BOOK_TYPES]
        with self._lock:
            if party != SECRETARIAT:
                entries = self._fold.state.entries
                pairs = [
                    (d, e) for d, e in pairs if self._fold.state.may_read(party, entries[d["log_index"]])
                ]
        events = [e for _, e in pairs]
        got = QuotaView(events, max((e.time for e in events), default=-1), {})
        parsed.quota[party] = got
        return got

    def member(self, party: str, agreement: str) -> None:
        if agreement not in self.agreements:
            raise NotFoundError(f"this hub does not serve agreement {agreement!r}")
        with self._lock:
            who = self._fold.state.parties.get(party)
            member = party == SECRETARIAT or (who is not None and agreement in who.agreements)
        if not member:
            raise ForbiddenError(f"{party!r} is not registered for {agreement!r}")

    # ---- filing: the officer's forms --------------------------------------------------

    def filing(self, party: str, agreement: str) -> dict[str, Any]:
        """What a party's forms offer to pick from, cut to what it may read: its own
        activities and incidents, the requests (and invitations to observe) it may answer,
        the requests a report may name, and the parties registered here for the agreement."""
        self.member(party, agreement)
        docs = self.readable_events(party, agreement)
        answered = {(d.get("request"), d["party"]) for d in docs if d["type"] == "response"}

        def line(d: dict[str, Any]) -> dict[str, str]:
            return {"id": d["id"], "text": _one_line(d)}

        invitations = invitation_forms(self.agreements[agreement])

        def invited(d: dict[str, Any]) -> bool:
            to = d.get("to")
            is_invitation = d["type"] == "notification" and d.get("form") in invitations
            return is_invitation and d["party"] != party and (to is None or ALL in to or party in to)

        def answerable(d: dict[str, Any]) -> bool:
            if (d["id"], party) in answered or d["party"] == party:
                return False
            if d["type"] == "request":
                return d.get("to") == party
            return invited(d)

        with self._lock:
            registered = {
                p for p, who in self._fold.state.parties.items() if agreement in who.agreements
            }
        return {
            "own_activity": [line(d) for d in docs if d["type"] == "activity" and d["party"] == party],
            "own_incident": [line(d) for d in docs if d["type"] == "incident" and d["party"] == party],
            "request_to_us": [line(d) for d in docs if answerable(d)],
            # What a report may name: a request, or an invitation to observe it was sent.
            "request": [line(d) for d in docs if d["type"] == "request" or invited(d)],
            "party": sorted(registered - {party}),
            # Its own events as they stand (corrections folded in), to correct or withdraw.
            "own_event": [
                {**line(d), "doc": {k: v for k, v in d.items() if k not in _NOT_OFFERED}}
                for d in docs
                if d["party"] == party
            ],
        }

    def check_draft(self, party: str, act: Act, ms: int) -> None:
        """Would the hub log ``act`` (read by ``read_act``, as a sent act is) as ``party``'s
        event at ``ms``? Checked against the log as a sent act is, so the words are the
        hub's own; except that an id the party may not read is not said to be taken."""
        if act.author != party:
            raise ForbiddenError(f"event {act.doc['id']!r}, field 'party': you file as {party!r}")
        with self._lock:
            st = self._fold.state
            st.check(act, st.signing_keys(party), ms, draft=True)

    def dry_run(self, party: str, agreement: str, payload: bytes, ms: int) -> dict[str, Any]:
        """What the draft ``payload`` would meet, start, add and clear if ``party`` sent it
        at ``ms``, judged over what ``party`` may read (``compliance.dryrun``)."""
        self.member(party, agreement)
        act = read_act(PT_EVENT, payload)
        if act.doc["agreement"] != agreement:
            raise FormatError(f"event {act.doc['id']!r}, field 'agreement': must be {agreement!r}")
        self.check_draft(party, act, ms)
        parsed = self.parsed_events(agreement)
        readable = self.readable_indices(party, [d["log_index"] for d in parsed.docs])
        events = [
            e for d, e in zip(parsed.docs, parsed.events, strict=True) if d["log_index"] in readable
        ]
        with collector.paused():
            out = dry_run(self.agreements[agreement], events, act.doc, ms, self.zones[agreement])
        return out.to_json()

    # ---- compliance ---------------------------------------------------------------------

    def parsed_events(self, agreement: str) -> Parsed:
        """The agreement's events in the committed log, read and parsed once per log size.

        Most entries are not the agreement's events (acknowledgements, hotline traffic):
        then the parse of the shorter log is the answer, under the new size. When the log
        grew by events and amended none of the earlier ones, only the new ones are read
        and parsed, after the earlier (``HubState.events_since``, ``parse_events(after=)``).
        One caller reads at a time per agreement; the others wait for its answer.
        """
        with self._lock:
            got = self._parsed.get(agreement)
            if got is not None and got.committed == self._fold.committed:
                return got
        with self._alone("parse", agreement):
            return self._parse(agreement)

    def _parse(self, agreement: str) -> Parsed:
        with self._lock:
            st, committed = self._fold.state, self._fold.committed
            got = self._parsed.get(agreement)
            if got is not None and got.committed == committed:
                return got
            count = st.events_at(agreement, committed)
            base = None
            if got is not None and got.committed < committed:
                # Quota views are cut by who may read what: kept only while that stands.
                readers_same = st.registry_at(committed) == st.registry_at(got.committed)
                if count == got.count:
                    base = got
                    new_docs: list[dict[str, Any]] = []
                elif not st.amended(agreement, got.committed, committed):
                    base = got
                    new_docs = st.events_since(agreement, got.committed, committed)
            if base is None:
                new_docs = st.events(agreement, upto=committed)
        if base is not None and not new_docs:
            got = replace(base, committed=committed, quota=base.quota if readers_same else {})
        else:
            after = base.events if base is not None else ()
            with collector.paused():
                events = parse_events(new_docs, f"log of {agreement}", after=after)
            docs = [*base.docs, *new_docs] if base is not None else new_docs
            latest = max((e.time for e in events[len(after) :]), default=-1)
            if base is not None:
                latest = max(latest, base.latest)
            if base is not None:
                generation = base.generation
            else:
                generation = self._generation = self._generation + 1
            got = Parsed(committed, count, docs, events, latest, {}, generation)
            collector.keep(len(new_docs))
        with self._lock:
            have = self._parsed.get(agreement)
            if have is None or have.committed < committed:
                self._parsed[agreement] = got
        return got

    def agreement_events(self, agreement: str) -> list[dict[str, Any]]:
        """``HubState.events`` of the committed log (shared: read, never modify)."""
        return self.parsed_events(agreement).docs

    def report(self, agreement: str, as_of: int) -> Report:
        if agreement not in self.agreements:
            raise NotFoundError(f"this hub does not serve agreement {agreement!r}")
        win = self._report_window(self.parsed_events(agreement), agreement, as_of)
        rep: Report = win.value
        return rep if rep.as_of == as_of else replace(rep, as_of=as_of)

    def _report_window(self, parsed: Parsed, agreement: str, as_of: int) -> _Window:
        """The report of ``agreement`` over ``parsed``, and the span of time it holds for.

        The engine is pure: over the same events, its answer changes only at the instants
        ``next_change`` names (a due time passing, a declared start coming, a new year).
        So the report of the present is computed once per change of the agreement's
        events (not per entry of the log) and re-stamped with each later ``as_of`` until
        the next such instant.
        """
        key = (parsed.count,)
        with self._lock:
            hit = _hit(self._present.get(agreement), key, as_of)
            if hit is not None:
                return hit
            cached = self._report_cache.get((agreement, parsed.count, as_of))
            if cached is not None:
                return _Window(key, as_of, as_of + 1, cached)
        with self._eval_lock:  # one evaluation at a time: concurrent callers share it
            with self._lock:
                hit = _hit(self._present.get(agreement), key, as_of)
            if hit is not None:
                return hit
            ag = self.agreements[agreement]
            try:
                with collector.paused():
                    rep = evaluate(ag, parsed.events, as_of, self.zones[agreement])
                    until = next_change(ag, parsed.events, rep)
            except CbmnetError as e:
                # Admission should make this impossible; if not, say so without quoting events
                # the caller may not read, and tell the operator the details.
                log.error("compliance evaluation of %s failed: %s", agreement, e)
                raise StoreError(
                    f"the log of {agreement} cannot be evaluated; the operator is told"
                ) from e
            win = _Window(key, as_of, until, rep)
            collector.keep(len(rep.obligations) + len(rep.findings))
            with self._lock:
                if len(self._report_cache) > 64:
                    self._report_cache.clear()
                self._report_cache[(agreement, parsed.count, as_of)] = rep
                if _better(self._present.get(agreement), win, self.clock()):
                    self._present[agreement] = win
            return win

    def _view(
        self,
        name: str,
        party: str,
        agreement: str,
        as_of: int,
        make: Callable[[Report, int], tuple[dict[str, Any], int]],
        *,
        per_entry: bool,
    ) -> dict[str, Any]:
        """A JSON view of the report cut to ``party``, kept for the report's window (or the
        shorter one ``make`` names with it); only ``as_of`` differs within, and is re-stamped.
        ``make(report, committed)`` answers (view, until).

        A view that reads every entry (``per_entry``: the indicators' facts) is kept for one
        log size; one of the report alone, for as long as the agreement's events and the
        registry (who may read what) are unchanged.

        Keyed by the caller: a view is never served to anyone but the party it was cut for.
        """
        if agreement not in self.agreements:
            raise NotFoundError(f"this hub does not serve agreement {agreement!r}")
        parsed = self.parsed_events(agreement)
        with self._lock:
            readers = self._fold.state.registry_at(parsed.committed)
        key = (parsed.committed,) if per_entry else (parsed.count, readers)
        slot = (name, party, agreement)
        with self._lock:
            hit = _hit(self._views.get(slot), key, as_of)
        if hit is None:
            win = self._report_window(parsed, agreement, as_of)
            rep: Report = win.value
            with collector.paused():
                doc, until = make(rep, parsed.committed)
            collector.keep(sum(len(v) for v in doc.values() if isinstance(v, list)))
            hit = _Window(key, win.since, min(win.until, until), doc)
            with self._lock:
                if len(self._views) > 4096:
                    self._views.clear()
                if _better(self._views.get(slot), hit, self.clock()):
                    self._views[slot] = hit
        out: dict[str, Any] = hit.value
        return out if hit.since == as_of else {**out, "as_of": format_time(as_of)}

    def _readable_report(self, party: str, rep: Report) -> Report:
        """``rep`` cut to what ``party`` may read (call with the state lock held); kept for
        the same report object and registry, since a page asks for the same cut twice
        (its deadlines and its indicators)."""
        agreement = rep.agreement
        readers = self._fold.state.registry_at(self._fold.committed)
        kept = self._cuts.get((party, agreement))
        if kept is not None and kept[0] is rep and kept[1] == readers:
            return kept[2]
        cut = self._cut(party, rep)
        if len(self._cuts) > 4 * MAX_BOOKS:
            self._cuts.clear()
        self._cuts[(party, agreement)] = (rep, readers, cut)
        return cut

    def _cut(self, party: str, rep: Report) -> Report:
        agreement = rep.agreement
        if party == SECRETARIAT:
            return rep

        def readable(subjects: Sequence[str], at_fault: str) -> bool:
            if party in (SECRETARIAT, at_fault):
                return True
            for sid in subjects:
                idx = self._fold.state.event_entry(agreement, sid)
                if idx is not None and not self._fold.state.may_read(
                    party, self._fold.state.entries[idx]
                ):
                    return False
            return True

        return Report(
            agreement,
            rep.as_of,
            tuple(o for o in rep.obligations if readable(o.subjects, o.party)),
            tuple(f for f in rep.findings if readable(f.subjects, f.party)),
        )

    def annual_for(self, party: str, agreement: str, year: int, as_of: int) -> dict[str, Any]:
        """The annual implementation report of ``agreement`` for ``year`` (``compliance.annual``),
        from the report cut to what ``party`` may read, every party registered here for the
        agreement a row."""
        self.member(party, agreement)
        rep = self.report(agreement, as_of)
        with self._lock:
            cut = self._readable_report(party, rep)
            parties = sorted(
                p for p, who in self._fold.state.parties.items() if agreement in who.agreements
            )
        entries = {d["id"]: d["log_index"] for d in self.readable_events(party, agreement)}
        return annual(cut, year, parties, entries)

    def report_for(self, party: str, agreement: str, as_of: int) -> dict[str, Any]:
        """The agreement's report, cut to what ``party`` may read."""
        self.member(party, agreement)

        def make(rep: Report, _committed: int) -> tuple[dict[str, Any], int]:
            with self._lock:
                return self._readable_report(party, rep).to_json(), 2**62

        return self._view("report", party, agreement, as_of, make, per_entry=False)

    def indicators_for(
        self, party: str, agreement: str, as_of: int, *, last: int | None = None, own: bool = False
    ) -> dict[str, Any]:
        """Confidence indicators as ``party`` can recompute them from what it may read
        (``last``: of the last that many months only, as ``indicators`` takes it; ``own``:
        only ``party``'s own rows, all of them for the secretariat).

        Every party (and the secretariat, for the whole) gets the figures its own copy of
        the log supports: entries it may not read do not count, so nothing private leaks
        through a count.
        """
        self.member(party, agreement)

        def make(full: Report, committed: int) -> tuple[dict[str, Any], int]:
            with self._lock:
                rep = self._readable_report(party, full)
                parties = self._fold.state.members_of(agreement)
            book = self._fact_book(party, agreement, committed, parties, full.as_of)
            if book is not None:  # the present: every fact read is at or before as_of
                record = Record.of(rep, (), parties)
                times = [book.last_ms]
            else:  # another moment: read this once, as a party would from its copy
                every = self.facts_of(agreement, committed)
                with self._lock:
                    facts = self.readable_facts(party, every)
                record = Record.of(rep, facts, parties)
                times = [f.ms for f in facts]
            # Months run to the month of as_of; what is dated after as_of counts once due.
            times += [o.due for o in full.obligations]
            times += [f.due for f in full.findings if f.due is not None]
            later = [t + 1 for t in times if t + 1 > full.as_of]
            until = min([month_end(month_of(full.as_of)), *later])
            rows_of = [party] if own and party != SECRETARIAT else None
            return indicators(record, book=book, last=last, rows_of=rows_of), until

        name = "indicators" if last is None else f"indicators, last {last} months"
        name += ", own rows" if own else ""
        return self._view(name, party, agreement, as_of, make, per_entry=True)

    def _fact_book(
        self, party: str, agreement: str, committed: int, parties: set[str], as_of: int
    ) -> FactBook | None:
        """``party``'s facts of ``agreement`` up to ``committed``, read into a book that
        grows with the log: only new entries are read (None when some fact is after
        ``as_of``: a look at another moment reads its own)."""
        slot = (party, agreement)
        with self._books_lock:
            if len(self._book_locks) > 4 * MAX_BOOKS:
                self._book_locks = {k: v for k, v in self._book_locks.items() if k in self._books}
            alone = self._book_locks.setdefault(slot, threading.Lock())
        with alone:
            facts = self.facts_of(agreement, committed)
            with self._books_lock:
                kept = self._books.get(slot)
            with self._lock:
                epoch = (self._facts_epoch.get(agreement, 0), self._fold.state.registry_at(committed))
                if kept is None or kept[0] != epoch or kept[1].parties != frozenset(parties):
                    kept = (epoch, FactBook(parties))
                book = kept[1]
                if book.upto >= committed:
                    return None  # a caller behind the book (a shorter log): read its own
                start = bisect_left(facts, book.upto + 1, key=attrgetter("index"))
                new = self.readable_facts(party, facts[start:])
            if (new and max(f.ms for f in new) > as_of) or book.last_ms > as_of:
                return None
            with collector.paused():
                book.add(new)
            collector.keep(len(new))
            with self._books_lock:
                self._books[slot] = kept
                self._books.move_to_end(slot)
                while len(self._books) > MAX_BOOKS:
                    self._books.popitem(last=False)
            return book

    def readable_facts(self, party: str, facts: Sequence[Fact]) -> list[Fact]:
        """The facts of entries ``party`` may read: ``HubState.may_read``, inlined (it runs
        once per entry of the log; call with the state lock held)."""
        if party == SECRETARIAT:
            return list(facts)
        entries = self._fold.state.entries
        p = self._fold.state.parties.get(party)
        ags = p.agreements if p is not None else ()
        return [
            f
            for f in facts
            if (e := entries[f.index]).scope == ALL
            or party in e.addressees
            or (e.scope is not None and e.scope in ags)
        ]

    def facts_of(self, agreement: str, committed: int) -> tuple[Fact, ...]:
        """``facts_from_state`` up to ``committed``.

        Facts of earlier entries never change unless an event is amended (a withdrawal or
        correction rewrites its original's fact): otherwise only the new entries are read.
        The state lock is held only while the state is read (``facts_from_state``'s
        ``hold``), not while a million entries become facts. One caller reads at a time
        per agreement; the others wait for its answer.
        """
        with self._alone("facts", agreement):
            return self._read_facts(agreement, committed)

    def _alone(self, what: str, agreement: str) -> threading.Lock:
        lock = self._one_at_a_time.get((what, agreement))
        if lock is None:
            raise NotFoundError(f"this hub does not serve agreement {agreement!r}")
        return lock

    def _read_facts(self, agreement: str, committed: int) -> tuple[Fact, ...]:
        with self._lock:
            st = self._fold.state
            have = self._facts.get(agreement)
            if have is not None and have[0] == committed:
                return have[1]
            longer = have is not None and have[0] > committed
            if longer and have is not None and not st.amended(agreement, committed, have[0]):
                # kept for a longer log (another caller was quicker): its prefix
                return have[1][: bisect_left(have[1], committed, key=attrgetter("index"))]
            grow = have is not None and have[0] < committed
            grow = grow and have is not None and not st.amended(agreement, have[0], committed)

        def hold() -> threading.Lock:
            return self._lock

        if grow and have is not None:
            facts = have[1] + facts_from_state(st, agreement, upto=committed, since=have[0], hold=hold)
        else:
            with collector.paused():
                facts = facts_from_state(st, agreement, upto=committed, hold=hold)
            collector.keep(len(facts))
        with self._lock:
            if not grow:
                self._facts_epoch[agreement] = self._facts_epoch.get(agreement, 0) + 1
            kept = self._facts.get(agreement)
            if kept is None or kept[0] <= committed:
                self._facts[agreement] = (committed, facts)
        return facts


_NOT_OFFERED = frozenset({"log_index", "time", "corrected_at", "corrected_by", "withdrawn_refs"})
"""What the hub adds to a logged event: not part of what a correction re-sends."""


def _one_line(d: dict[str, Any]) -> str:
    """An event as a picker shows it: ``land, 2027-09-01 to 2027-09-05, 11,000 troops``."""
    bits: list[str] = []
    for key in ("category", "kind", "form"):
        if isinstance(d.get(key), str):
            bits.append(d[key].replace("_", " "))
    if isinstance(d.get("to"), str):
        bits.append(f"to {d['to']}")
    if d["type"] == "request" or d["type"] == "notification":
        bits.append(f"from {d['party']}")
    if isinstance(d.get("start"), str) and isinstance(d.get("end"), str):
        bits.append(f"{d['start'][:10]} to {d['end'][:10]}")
    size = d.get("size")
    if isinstance(size, dict):
        bits += [f"{n:,} {k.replace('_', ' ')}" for k, n in size.items() if isinstance(n, int) and n]
    return ", ".join(bits)[:200]
