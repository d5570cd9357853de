"""The hub's state, derived from the log and from nothing else.

Every hub process folds the same entries, in log order, into the same state: who the
parties are and which keys they hold, which events each agreement has seen, who may read
which entry, which channels exist and which messages still wait for an acknowledgement.
``check`` decides whether an act may be logged next (it is called inside the log's write
transaction, so no other act can slip in between); ``apply`` folds a logged act in.
Replaying a log from index 0 rebuilds exactly what the processes that wrote it saw.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from cbmnet.acts.model import (
    HUB,
    PT_ACK,
    PT_EVENT,
    PT_HOTLINE,
    PT_HUB,
    PT_OBSERVATIONS,
    PT_REGISTRY,
    SECRETARIAT,
    Act,
    read_act,
)
from cbmnet.acts.registry import Key, Party, Proposal, Registry
from cbmnet.agreements.model import Agreement, ObserverTerms
from cbmnet.compliance.events import not_a_member
from cbmnet.compliance.timeutil import format_time, parse_duration, parse_time
from cbmnet.errors import CbmnetError, ConflictError, ForbiddenError, FormatError, NotFoundError
from cbmnet.ledger.dsse import pae

ALL = "*"
"""Audience scope: every registered party (the registry itself)."""


@dataclass
class Entry:
    """What the hub knows of one logged entry, for routing and filtering."""

    index: int
    ms: int
    payload_type: str
    kind: str
    author: str
    agreement: str | None = None
    scope: str | None = None
    """ALL, an agreement id (its registered parties), or None (only ``addressees``)."""
    addressees: frozenset[str] = frozenset()
    form: str | None = None
    ref: int | None = None
    """The entry this one answers, acknowledges or amends."""
    event_id: str | None = None
    statement: bytes = b""
    """SHA-256 of the DSSE PAE: what an acknowledgement may name to bind to this very act."""
    exercise: bool = False
    """The act marks itself exercise data (``"exercise": true``), as real exercise traffic is."""


@dataclass
class Channel:
    id: str
    agreement: str
    members: tuple[str, ...]
    opened_at: int
    accepted: set[str] = field(default_factory=set)
    """Members held to acknowledgement deadlines: the opener, and each member that
    acknowledged the opening (all of them when the secretariat opened it). Nobody can be
    put on the record as silent on a channel it never agreed to."""


@dataclass
class Pending:
    """A hotline message awaiting acknowledgement from some members."""

    index: int
    channel: str
    precedence: str
    deadline_ms: int
    waiting: set[str]


@dataclass
class _AgreementLog:
    events: dict[str, int] = field(default_factory=dict)
    """Event id -> index of the entry that declared it."""
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Index -> the event as the engine reads it (``time`` = integration time)."""
    withdrawn: set[str] = field(default_factory=set)
    withdrawn_at: dict[str, int] = field(default_factory=dict)
    """Event id -> index of its withdrawal (what ``events(upto=...)`` reads as withdrawn)."""
    corrected: dict[str, int] = field(default_factory=dict)
    """Event id -> index of its latest correction."""
    corrections: dict[str, list[int]] = field(default_factory=dict)
    """Event id -> indices of its corrections, in log order."""
    refs: dict[str, set[str]] = field(default_factory=dict)
    """Event id -> ids of the events that ever referred to it (the author's own live ones
    block its withdrawal; see ``_own_live_refs``)."""


class HubState:
    """The fold of the log. Not thread-safe: the hub serialises access."""

    def __init__(
        self,
        agreements: Mapping[str, Agreement],
        secretariat_key: bytes,
        hub_key: bytes,
    ) -> None:
        self.agreements = dict(agreements)
        self.secretariat_key = secretariat_key
        self.hub_key = hub_key
        self.size = 0
        self.entries: list[Entry] = []
        self.registry = Registry(
            secretariat_key,
            hub_key,
            {a: ag.key_recovery_quorum for a, ag in self.agreements.items() if ag.key_recovery_quorum},
        )
        self.parties: dict[str, Party] = self.registry.parties
        self.channels: dict[str, Channel] = {}
        self.pending: dict[int, Pending] = {}
        self.acks: dict[tuple[int, str], int] = {}
        """(entry, party) -> index of the party's acknowledgement."""
        self.no_answer: set[tuple[int, str]] = set()
        self.overdue: set[tuple[str, str]] = set()
        self.check_results: set[tuple[str, str]] = set()
        """(agreement, communication check request id) whose result is logged."""
        self.hotline_ids: set[tuple[str, str]] = set()
        self.batches: dict[int, dict[str, Any]] = {}
        """Index of an observations act -> its statement (sha256, bytes, format …)."""
        self.batch_ids: set[tuple[str, str]] = set()
        self._by_party: dict[str, list[int]] = {}
        self._by_scope: dict[str, list[int]] = {}
        self._by_author: dict[str, list[int]] = {}
        self._logs: dict[str, _AgreementLog] = {a: _AgreementLog() for a in self.agreements}
        self.version = 0
        """Bumped by every apply: caches keyed by it stay exact."""
        self._events_memo: dict[str, tuple[int, int, list[dict[str, Any]]]] = {}
        """Agreement -> (version, upto, ``events()``): read again only after a change."""

    # ---- who signs --------------------------------------------------------------------

    def signing_keys(self, author: str) -> list[bytes]:
        """The keys that may sign the next ordinary act of ``author`` (empty: it cannot)."""
        return self.registry.signing_keys(author)

    def signers_for(self, act: Act) -> list[bytes]:
        """The keys one of which must sign ``act`` (a recovery or quorum rotation differs)."""
        return self.registry.signers_for(act)

    def party_of_key(self, key: bytes) -> str | None:
        return self.registry.party_of_key(key)

    # ---- reading ------------------------------------------------------------------------

    def entry(self, index: int) -> Entry:
        if not 0 <= index < len(self.entries):
            raise NotFoundError(f"no entry {index}: the log holds {len(self.entries)}")
        return self.entries[index]

    def members_of(self, agreement: str) -> set[str]:
        return {p.id for p in self.parties.values() if agreement in p.agreements}

    def audience(self, e: Entry) -> set[str]:
        """Every party that may read ``e`` (the secretariat reads everything)."""
        out = set(e.addressees)
        if e.scope == ALL:
            out |= set(self.parties)
        elif e.scope is not None:
            out |= self.members_of(e.scope)
        return out

    def may_read(self, party: str, e: Entry) -> bool:
        if party == SECRETARIAT or party in e.addressees or e.scope == ALL:
            return True
        p = self.parties.get(party)
        return p is not None and e.scope is not None and e.scope in p.agreements

    def visible(self, party: str, after: int = -1) -> Iterator[int]:
        """Indices ``party`` may read, ascending, from ``after + 1``."""
        if party == SECRETARIAT:
            yield from range(after + 1, len(self.entries))
            return
        p = self.parties.get(party)
        lists = [self._by_party.get(party, []), self._by_scope.get(ALL, [])]
        if p is not None:
            lists += [self._by_scope.get(a, []) for a in p.agreements]
        iters = [_tail(lst, bisect_right(lst, after)) for lst in lists]
        last = after
        for i in heapq.merge(*iters):
            if i > last:  # a party that joined an agreement later may be on two lists
                last = i
                yield i

    def authored(self, party: str, author: str, after: int = -1) -> Iterator[int]:
        """Indices of ``author``'s entries ``party`` may read, ascending, from ``after + 1``
        (the same as ``visible`` keeps of them, without walking everything else)."""
        lst = self._by_author.get(author, [])
        for i in _tail(lst, bisect_right(lst, after)):
            if self.may_read(party, self.entries[i]):
                yield i

    def amended(self, agreement: str, lo: int, hi: int) -> bool:
        """Does an entry in [lo, hi) amend (correct or withdraw) one of the agreement's events?"""
        docs = self._logs[agreement].docs if agreement in self._logs else {}
        return any(docs.get(i, {}).get("amends") is not None for i in range(lo, hi))

    def events_since(self, agreement: str, since: int, upto: int) -> list[dict[str, Any]]:
        """``events(agreement, upto)`` past those of ``events(agreement, since)``, when no
        entry in [since, upto) amends one (``amended``): what a reader that has the first
        list appends to it. The documents are fresh (not shared with ``events``)."""
        return self._read_events(agreement, upto, since)

    def registry_at(self, upto: int) -> int:
        """How many entries addressed to every party (the registry's among them) lie below
        ``upto``: who may read what changes only with one of them."""
        return bisect_left(self._by_scope.get(ALL, []), upto)

    def events_at(self, agreement: str, upto: int) -> int:
        """How many of the agreement's entries (events and amendments) lie below ``upto``:
        the events the engine reads are the same for two sizes with the same count."""
        docs = self._logs[agreement].docs if agreement in self._logs else {}
        n = len(docs)
        for idx in reversed(docs):
            if idx < upto:
                break
            n -= 1
        return n

    def events(self, agreement: str, upto: int | None = None) -> list[dict[str, Any]]:
        """The agreement's events as the compliance engine reads them, in log order.

        A withdrawn event is left out. A corrected one is read as its latest correction
        under the original's id (the original stays in the log): with the original's time
        if only its text changed (a corrigendum), else with the correction's own time, so
        a change of substance counts from when it was made and nothing is backdated.

        The list is the caller's; the documents in it are shared between calls (until the
        state changes): read them, never modify them.
        """
        limit = self.size if upto is None else upto
        memo = self._events_memo.get(agreement)
        if memo is not None and memo[0] == self.version and memo[1] == limit:
            return list(memo[2])
        out = self._read_events(agreement, limit)
        self._events_memo[agreement] = (self.version, limit, out)
        return list(out)

    def _read_events(self, agreement: str, limit: int, since: int = 0) -> list[dict[str, Any]]:
        log = self._logs[agreement]
        gone = {eid for eid, at in log.withdrawn_at.items() if at < limit}
        out = []
        docs: Iterable[tuple[int, dict[str, Any]]] = log.docs.items()
        if since > 0:  # only the latest: walk back to ``since``, not through the whole log
            tail = []
            for idx in reversed(log.docs):
                if idx < since:
                    break
                tail.append((idx, log.docs[idx]))
            docs = reversed(tail)
        for idx, doc in docs:
            if idx >= limit:
                break
            if doc.get("amends") is not None:
                continue
            eid = doc["id"]
            if eid in gone:
                continue
            made = [c for c in log.corrections.get(eid, ()) if c < limit]
            if made:
                when, prev = doc["time"], doc
                for c in made:
                    nxt = log.docs[c]
                    if _substance(nxt) != _substance(prev):
                        when = nxt["time"]
                    prev = nxt
                fixed = {k: v for k, v in prev.items() if k != "amends"}
                fixed["corrected_at"], fixed["corrected_by"] = prev["time"], prev["id"]
                fixed["id"], fixed["time"] = eid, when
                doc = fixed
            view = {k: v for k, v in doc.items() if k not in _NOT_READ} | {"log_index": idx}
            # Another party's event may name one its owner withdrew since (a withdrawal is
            # never blocked by others' references): say so, so the engine can tell a
            # reference withdrawn from one that never resolved, and judge nothing on it.
            dangling = sorted({r for r in _refs_of(view) if r in gone})
            if dangling:
                view["withdrawn_refs"] = dangling
            out.append(view)
        return out

    def event_doc(self, agreement: str, event_id: str) -> dict[str, Any] | None:
        idx = self.event_entry(agreement, event_id)
        return self._logs[agreement].docs.get(idx) if idx is not None else None

    def event_entry(self, agreement: str, event_id: str) -> int | None:
        log = self._logs.get(agreement)
        return log.events.get(event_id) if log else None

    # ---- deciding ---------------------------------------------------------------------

    def check(
        self, act: Act, signers: Sequence[bytes], ms: int | None = None, *, draft: bool = False
    ) -> None:
        """May ``act``, signed by ``signers``, be logged next (at ``ms``, the time the log
        would give it: membership is judged on it)? Raises if not; changes nothing.

        ``draft``: a dry run for the author (the officer's forms), nothing signed or logged.
        It must not tell whether an id the author may not read is taken: that would make
        the residual leak of ``_check_id`` free to probe. The real send still says so."""
        if not set(signers) & set(self.signers_for(act)):
            if act.author in (SECRETARIAT, HUB) or act.author in self.parties:
                raise ForbiddenError(f"the key that signed is not an active key of {act.author!r}")
            raise ForbiddenError(f"{act.author!r} is not a registered party of this hub")
        if act.payload_type == PT_REGISTRY:
            self._check_registry(act)
        elif act.payload_type == PT_EVENT:
            self._check_event(act, ms, draft=draft)
        elif act.payload_type == PT_ACK:
            self._check_ack(act)
        elif act.payload_type == PT_HOTLINE:
            self._check_hotline(act)
        elif act.payload_type == PT_OBSERVATIONS:
            self._check_observations(act)
        else:
            self._check_hub(act)

    def _check_observations(self, act: Act) -> None:
        d = act.doc
        what = f"observations batch {d['batch']!r}"
        self._agreement(d["agreement"], what)
        if act.author != SECRETARIAT and d["agreement"] not in self._party(act.author, what).agreements:
            raise ForbiddenError(f"{what}: {act.author!r} is not registered for {d['agreement']!r}")
        if (act.author, d["batch"]) in self.batch_ids:
            raise ConflictError(f"{what}: {act.author!r} logged a batch with this id before")

    def _check_hub(self, act: Act) -> None:
        d = act.doc
        if act.kind == "hotline.no_answer":
            pend = self.pending.get(d.get("entry", -1))
            if pend is None or d.get("party") not in pend.waiting:
                raise ConflictError("no answer: the message was acknowledged or reported already")
        elif act.kind == "check.result":
            if (str(d.get("agreement")), str(d.get("request"))) in self.check_results:
                raise ConflictError("communication check: result logged already")
        elif (str(d.get("agreement")), str(d.get("obligation"))) in self.overdue:
            raise ConflictError("obligation overdue: reported already")

    def _agreement(self, aid: str, what: str) -> Agreement:
        if aid not in self.agreements:
            raise NotFoundError(f"{what}: this hub does not serve agreement {aid!r}")
        return self.agreements[aid]

    def _party(self, pid: str, what: str) -> Party:
        if pid not in self.parties:
            raise NotFoundError(f"{what}: {pid!r} is not a registered party")
        return self.parties[pid]

    def _check_registry(self, act: Act) -> None:
        d, what = act.doc, f"registry act {act.kind!r}"
        if act.kind == "party.register":
            for aid in d["agreements"]:
                if d["party"] not in self._agreement(aid, what).parties:
                    raise FormatError(f"{what}: {d['party']!r} is not a party to {aid!r}")
        self.registry.check(act)

    def _check_event(self, act: Act, ms: int | None = None, *, draft: bool = False) -> None:
        """May this event be logged? Ordered so that nothing private leaks: an event the
        author may not read (or amend) gets the very answer a missing one gets, and the
        readers of a sealed body are named only once the author is entitled to the event
        it amends or answers (docs/adr/0003)."""
        d = act.doc
        what = f"event {d['id']!r}"
        ag = self._agreement(d["agreement"], what)
        author = act.author
        if author != SECRETARIAT:
            if d["agreement"] not in self._party(author, what).agreements:
                raise ForbiddenError(f"{what}: {author!r} is not registered for {d['agreement']!r}")
        elif d["type"] != "request" or d.get("kind") != "communication_check":
            raise ForbiddenError(f"{what}: the secretariat sends communication checks only")
        if ms is not None:
            self._check_members(act, ag, ms, what)
        log = self._logs[ag.id]
        amends = d.get("amends")
        if amends is not None:
            self._check_amendment(act, ag, log, what)
        self._check_id(act, ag, log, what, draft=draft)
        for fld in ("to",):
            targets = d.get(fld)
            if targets is None:
                continue
            targets = [targets] if isinstance(targets, str) else targets
            for t in targets:
                if t != ALL and (t not in ag.parties or t not in self.parties):
                    raise NotFoundError(
                        f"{what}, field 'to': {t!r} is not a registered party of {ag.id!r}"
                    )
        refs = []
        if d.get("activity"):
            refs.append(("activity", d["activity"]))
        refs += [("activities", a) for a in d.get("activities") or ()]
        if d["type"] in ("response", "notification") and d.get("request"):
            refs.append(("request", d["request"]))
        invitations = invitation_forms(ag)
        for fld, ref in refs:
            target = self._referable(author, ag.id, log, fld, ref, what)
            invitation = target.kind == "notification" and target.form in invitations
            if fld == "request" and d["type"] == "response":
                # An answer goes to a request, or to an invitation to observe (acceptance).
                if target.kind != "request" and not invitation:
                    raise FormatError(f"{what}, field 'request': {ref!r} is not a request or invitation")
                if target.author == author or (not invitation and author not in target.addressees):
                    raise ForbiddenError(f"{what}: the request {ref!r} is not addressed to {author!r}")
            elif fld == "request" and invitation:
                # An observer's report names the invitation (observer_terms): only an invited
                # party reports on it, never the inviting State.
                if target.author == author:
                    raise ForbiddenError(
                        f"{what}: {author!r} sent the invitation {ref!r}; it is not invited"
                    )
            elif fld == "request":
                # A report on a visit names the request: only its two sides report on it.
                if target.kind != "request":
                    raise FormatError(f"{what}, field 'request': {ref!r} is not a request or invitation")
                if author not in target.addressees:
                    raise ForbiddenError(f"{what}: {author!r} is not a side of the request {ref!r}")
            elif d["type"] == "notification" and target.author != author:
                raise ForbiddenError(f"{what}, field {fld!r}: {ref!r} is another party's activity")
        # Last: the author is now known to own what it amends and to be asked what it
        # answers, so the readers it must seal to are its own to know.
        self._check_sealed(act, log, what)

    def _check_members(self, act: Act, ag: Agreement, ms: int, what: str) -> None:
        """The author (and an activity's ``host``) must be members of the agreement on the
        event's date: the log's time, an activity's start. Registration says only that a
        State is or was a party; ``cbmnet check`` refuses the same events in the same words."""
        d = act.doc
        when = parse_time(d["start"], "start") if d["type"] == "activity" else ms
        who = [] if act.author == SECRETARIAT else [("party", act.author)]
        if d["type"] == "activity" and isinstance(d.get("host"), str):
            who.append(("host", d["host"]))
        for fld, party in who:
            why = not_a_member(ag, party, when)
            if why is not None:
                raise FormatError(f"{what}, field {fld!r}: {why}")

    def _check_amendment(self, act: Act, ag: Agreement, log: _AgreementLog, what: str) -> None:
        """Only the author amends, and only an event it sent (not an amendment of one).

        Another party's event, private or not, is answered as a missing one: whether a
        private event exists, and who wrote it, is not the asker's to learn.
        """
        d, amends = act.doc, act.doc["amends"]
        orig = log.events.get(amends["id"])
        if orig is None or self.entries[orig].author != act.author:
            raise NotFoundError(
                f"{what}, field 'amends': no event {amends['id']!r} you may amend in {ag.id!r}"
            )
        first = log.docs[orig]
        if first.get("amends") is not None:
            raise FormatError(
                f"{what}, field 'amends': {amends['id']!r} is an amendment of "
                f"{first['amends']['id']!r}; amend that event"
            )
        if amends["id"] in log.withdrawn:
            raise ConflictError(f"{what}: {amends['id']!r} was withdrawn already")
        o = self.entries[orig]
        if o.kind != d["type"]:
            raise FormatError(f"{what}: a correction must have type {o.kind!r}")
        if amends["action"] == "withdraw":
            live = self._own_live_refs(log, amends["id"], act.author)
            if live:
                raise ConflictError(
                    f"{what}, field 'amends': {', '.join(live)} still refer to {amends['id']!r}; "
                    "withdraw them first"
                )
            return
        for fld in ("to", "kind", "request"):
            if d.get(fld) != first.get(fld):
                raise FormatError(
                    f"{what}, field {fld!r}: a correction cannot change whom or what an act "
                    "addresses; withdraw it and send a new one"
                )

    def _own_live_refs(self, log: _AgreementLog, eid: str, author: str) -> list[str]:
        """The author's own events that still (in their latest version) name ``eid``.

        These block its withdrawal, so the author's own record stays coherent (its notice
        or report does not point at what it withdrew itself) and it can clear them first.
        Other parties' references never block: otherwise naming an activity in one's own
        request or exchange would pin it on its owner, who cannot withdraw what it did not
        write, with its missed obligations accruing. Those stay, read by the engine with
        ``withdrawn_refs`` (``_read_events``).
        """
        live = []
        for r in log.refs.get(eid, ()):
            first = log.events.get(r)
            if r in log.withdrawn or first is None or self.entries[first].author != author:
                continue
            if eid in _refs_of(log.docs[log.corrected.get(r, first)]):
                live.append(r)
        return sorted(live)

    def _check_id(
        self, act: Act, ag: Agreement, log: _AgreementLog, what: str, *, draft: bool = False
    ) -> None:
        """Event ids are unique per agreement, and those that begin with a party's id and
        "-" ("PAK-N-7") are that party's alone.

        The reservation is decided before the id is looked up, so another author gets one
        answer whether or not the id exists: a party that uses the convention can be
        neither squatted nor probed. Parties of the agreement not registered yet are
        covered too. Residual leak: a free-form id (no party prefix) is first come, first
        served, so the 409 below tells anyone that some event of the agreement has that
        id, though nothing about it (not its author, type or readers).
        """
        eid = act.doc["id"]
        owner = _id_owner(eid, {*self.parties, *ag.parties})
        if owner is not None and owner != act.author:
            raise ForbiddenError(
                f"{what}, field 'id': ids beginning {owner + '-'!r} are reserved to {owner!r}"
            )
        if eid in log.events:
            if draft and not self.may_read(act.author, self.entries[log.events[eid]]):
                return  # a dry run answers as for a free id (see ``check``)
            raise ConflictError(
                f"{what}, field 'id': agreement {ag.id!r} already has an event with this id"
            )

    def _referable(
        self, author: str, aid: str, log: _AgreementLog, fld: str, ref: str, what: str
    ) -> Entry:
        """The event ``ref`` names, if ``author`` may refer to it: one that it may read
        (an unreadable one is answered as a missing one), not an amendment (the engine
        reads those under their original's id), not withdrawn."""
        idx = log.events.get(ref)
        if idx is None or not self.may_read(author, self.entries[idx]):
            raise NotFoundError(f"{what}, field {fld!r}: no event {ref!r} you may refer to in {aid!r}")
        amended = log.docs[idx].get("amends")
        if amended is not None:
            raise FormatError(
                f"{what}, field {fld!r}: {ref!r} is an amendment; name {amended['id']!r} instead"
            )
        if ref in log.withdrawn:
            raise NotFoundError(f"{what}, field {fld!r}: {ref!r} was withdrawn")
        return self.entries[idx]

    def _check_sealed(self, act: Act, log: _AgreementLog, what: str) -> None:
        """A sealed body holds one ciphertext per reader, and only a restricted event has one.

        Called only once the author is entitled to what it amends or answers: the readers
        named in the refusal are then the author's own to know.
        """
        d = act.doc
        sealed = d.get("sealed_body")
        if sealed is None:
            return
        amended = d.get("amends")
        if amended is not None:
            readers: frozenset[str] | None = self.entries[log.events[amended["id"]]].addressees
            readers = readers or None
        else:
            readers = self._event_readers(act)
        if readers is None:
            raise FormatError(
                f"{what}, field 'sealed_body': only an event for some parties (a request, its "
                "response, a notification with 'to') is sealed; this one is read by all"
            )
        if set(sealed["ciphertexts"]) != set(readers):
            raise FormatError(
                f"{what}, field 'sealed_body': needs one ciphertext for each reader "
                f"({', '.join(sorted(readers))})"
            )

    def _check_ack(self, act: Act) -> None:
        idx = act.doc["entry"]
        what = f"acknowledgement of entry {idx}"
        if not 0 <= idx < len(self.entries) or not self.may_read(act.author, self.entries[idx]):
            # One answer for "none" and "not yours to read": no existence oracle.
            raise NotFoundError(f"{what}, field 'entry': no entry {idx} you may acknowledge")
        e = self.entries[idx]
        if e.author == act.author:
            raise FormatError(f"{what}: a party does not acknowledge its own act")
        if e.payload_type == PT_ACK:
            raise FormatError(f"{what}: acknowledgements are not acknowledged")
        if (idx, act.author) in self.acks:
            raise ConflictError(f"{what}: already acknowledged at entry {self.acks[(idx, act.author)]}")
        want = act.doc.get("statement")
        if want is not None and want != e.statement.hex():
            raise ConflictError(f"{what}: entry {idx} is not the act acknowledged (statement differs)")

    def _check_hotline(self, act: Act) -> None:
        d = act.doc
        cid = d["channel"]
        what = f"hotline channel {cid!r}"
        if act.kind == "channel.open":
            if cid in self.channels:
                raise ConflictError(f"{what}: already open")
            ag = self._agreement(d["agreement"], what)
            for m in d["members"]:
                p = self._party(m, what)
                if ag.id not in p.agreements:
                    raise FormatError(f"{what}: {m!r} is not registered for {ag.id!r}")
            if act.author != SECRETARIAT and act.author not in d["members"]:
                raise ForbiddenError(f"{what}: only a member or the secretariat opens a channel")
            return
        ch = self.channels.get(cid)
        if ch is None:
            raise NotFoundError(f"{what}: no such channel")
        if act.author not in ch.members:
            raise ForbiddenError(f"{what}: {act.author!r} is not a member")
        if (cid, d["id"]) in self.hotline_ids:
            raise ConflictError(f"{what}: message id {d['id']!r} was used before")
        if set(d["ciphertexts"]) != set(ch.members):
            raise FormatError(
                f"{what}, field 'ciphertexts': must hold one ciphertext for each member "
                f"({', '.join(ch.members)})"
            )

    # ---- folding ------------------------------------------------------------------------

    def apply_logged(self, index: int, ms: int, payload_type: str, payload: bytes) -> Entry:
        """Fold a logged entry read back from the store (replay, or another process's)."""
        statement = hashlib.sha256(pae(payload_type, payload)).digest()
        try:
            act = read_act(payload_type, payload)
        except CbmnetError:
            # Not an act of this hub (a plain log append): the secretariat alone reads it.
            return self._add(Entry(index, ms, payload_type, "opaque", SECRETARIAT, statement=statement))
        return self.apply(act, index, ms, statement)

    def apply(self, act: Act, index: int, ms: int, statement: bytes = b"") -> Entry:
        """Fold an act logged at ``index``; never raises for an act ``check`` admitted."""
        if index != self.size:
            raise ValueError(f"entry {index} applied to a state of size {self.size}")
        d = act.doc
        e = Entry(
            index,
            ms,
            act.payload_type,
            act.kind,
            act.author,
            statement=statement,
            exercise=d.get("exercise") is True,
        )
        if act.payload_type == PT_REGISTRY:
            self._apply_registry(act, e)
        elif act.payload_type == PT_EVENT:
            self._apply_event(act, e)
        elif act.payload_type == PT_ACK:
            target = self.entries[d["entry"]] if 0 <= d["entry"] < len(self.entries) else None
            e.ref = d["entry"]
            e.agreement = target.agreement if target else None
            e.addressees = frozenset({act.author, target.author if target else act.author})
            if target is not None and target.kind == "channel.open":
                ch = self.channels.get(target.form or "")
                if ch is not None and ch.opened_at == target.index and act.author in ch.members:
                    ch.accepted.add(act.author)
            if target is not None and target.kind == "hotline.message":
                ch = self.channels.get(target.form or "")
                e.addressees = frozenset(ch.members) if ch else e.addressees
                pend = self.pending.get(target.index)
                if pend is not None:
                    pend.waiting.discard(act.author)
                    if not pend.waiting:
                        del self.pending[target.index]
            self.acks.setdefault((d["entry"], act.author), index)
        elif act.payload_type == PT_HOTLINE:
            self._apply_hotline(act, e)
        elif act.payload_type == PT_HUB:
            self._apply_hub(act, e)
        elif act.payload_type == PT_OBSERVATIONS:
            e.agreement = d["agreement"]
            e.scope = d["agreement"] if d["agreement"] in self.agreements else None
            e.addressees = frozenset({act.author})
            e.form, e.event_id = d["format"], d["batch"]
            self.batches[index] = dict(d)
            self.batch_ids.add((act.author, d["batch"]))
        return self._add(e)

    def _add(self, e: Entry) -> Entry:
        self.entries.append(e)
        self.size += 1
        self.version += 1
        if e.scope is not None:
            self._by_scope.setdefault(e.scope, []).append(e.index)
        self._by_author.setdefault(e.author, []).append(e.index)
        for p in e.addressees:
            if e.scope is None or not self.may_read(p, e):
                self._by_party.setdefault(p, []).append(e.index)
        return e

    def _apply_registry(self, act: Act, e: Entry) -> None:
        e.scope = ALL
        e.form = act.doc["for"] if act.kind == "key.approve" else act.doc["party"]
        self.registry.apply(act, e.index)

    def _event_readers(self, act: Act) -> frozenset[str] | None:
        """Who may read a new (not amending) event: its addressees, or None when every
        party of the agreement may (a notification to all, a declaration, an exchange)."""
        d = act.doc
        log = self._logs.get(d["agreement"])
        if d["type"] == "request":
            return frozenset({act.author, d["to"]})
        if d["type"] == "response":
            req = log.events.get(d["request"]) if log is not None else None
            if req is None:
                return frozenset({act.author})
            asked = self.entries[req]
            return asked.addressees | {act.author, asked.author}
        if d["type"] == "notification" and d.get("to") and d["to"] != [ALL]:
            return frozenset({act.author, *d["to"]})
        return None

    def _apply_event(self, act: Act, e: Entry) -> None:
        d = act.doc
        aid = d["agreement"]
        e.agreement = aid
        e.event_id = d["id"]
        e.form = d.get("form") or d.get("kind")
        log = self._logs.get(aid)
        if log is None:
            return
        amends = d.get("amends")
        if amends is not None and amends["id"] in log.events:
            orig = self.entries[log.events[amends["id"]]]
            e.ref, e.scope, e.addressees = orig.index, orig.scope, orig.addressees
            if amends["action"] == "withdraw":
                log.withdrawn.add(amends["id"])
                log.withdrawn_at.setdefault(amends["id"], e.index)
            else:
                log.corrected[amends["id"]] = e.index
                log.corrections.setdefault(amends["id"], []).append(e.index)
        else:
            if d["type"] == "response":
                e.ref = log.events.get(d["request"])
            readers = self._event_readers(act)
            if readers is None:
                e.scope = aid
            else:
                e.addressees = readers
        log.events.setdefault(d["id"], e.index)
        log.docs[e.index] = {**d, "time": format_time(e.ms)}
        referrer = amends["id"] if amends is not None else d["id"]
        for t in _refs_of(d):
            log.refs.setdefault(t, set()).add(referrer)

    def _apply_hotline(self, act: Act, e: Entry) -> None:
        d = act.doc
        cid = d["channel"]
        e.form = cid
        if act.kind == "channel.open":
            e.agreement = d["agreement"]
            e.addressees = frozenset({*d["members"], act.author})
            accepted = set(d["members"]) if act.author == SECRETARIAT else {act.author}
            self.channels.setdefault(
                cid, Channel(cid, d["agreement"], tuple(d["members"]), e.index, accepted)
            )
            return
        ch = self.channels.get(cid)
        if ch is None:
            return
        e.agreement = ch.agreement
        e.addressees = frozenset(ch.members)
        e.event_id = d["id"]
        self.hotline_ids.add((cid, d["id"]))
        terms = self.agreements[ch.agreement].hotline if ch.agreement in self.agreements else None
        within = parse_duration(getattr(terms, d["precedence"]), "hotline") if terms else 6 * 3_600_000
        waiting = ch.accepted - {act.author}
        if waiting:
            self.pending[e.index] = Pending(e.index, cid, d["precedence"], e.ms + within, waiting)

    def _apply_hub(self, act: Act, e: Entry) -> None:
        d = act.doc
        if act.kind == "hotline.no_answer":
            idx = d.get("entry")
            target = self.entries[idx] if isinstance(idx, int) and 0 <= idx < len(self.entries) else None
            e.ref = idx
            e.addressees = target.addressees if target else frozenset()
            e.agreement = target.agreement if target else None
            e.form = target.form if target else None
            self.no_answer.add((idx if isinstance(idx, int) else -1, str(d.get("party"))))
            pend = self.pending.get(idx) if isinstance(idx, int) else None
            if pend is not None:
                pend.waiting.discard(str(d.get("party")))
                if not pend.waiting:
                    del self.pending[pend.index]
        else:
            e.agreement = str(d.get("agreement"))
            e.scope = e.agreement if e.agreement in self.agreements else None
            if act.kind == "check.result":
                e.form = str(d.get("result"))
                e.event_id = str(d.get("request"))
                self.check_results.add((e.agreement, str(d.get("request"))))
            else:
                e.form = str(d.get("kind"))
                self.overdue.add((e.agreement, str(d.get("obligation"))))
                self._overdue_readers(e, d)

    def _overdue_readers(self, e: Entry, d: Mapping[str, Any]) -> None:
        """An overdue obligation is read by whoever may read all it concerns, and its party.

        Owed on an agreement-wide event (a declaration, an exchange): the whole agreement.
        Owed on a private request: only the two sides. Derived from the log alone.
        """
        log = self._logs.get(e.agreement or "")
        subjects = d.get("subjects")
        if log is None or not isinstance(subjects, list):
            return
        readers: set[str] | None = None
        for sid in subjects:
            idx = log.events.get(str(sid))
            if idx is None:
                continue
            target = self.entries[idx]
            if target.scope is None:
                readers = set(target.addressees) if readers is None else readers & target.addressees
        if readers is not None:
            e.scope = None
            e.addressees = frozenset(readers | {str(d.get("party"))})

    # ---- what the hub must state itself -------------------------------------------------

    def unanswered(self, now_ms: int) -> list[dict[str, Any]]:
        """``hotline.no_answer`` acts due: acknowledgement deadlines passed by ``now_ms``."""
        out = []
        for pend in sorted(self.pending.values(), key=lambda p: p.index):
            if pend.deadline_ms > now_ms:
                continue
            for party in sorted(pend.waiting):
                if (pend.index, party) in self.no_answer:
                    continue
                out.append(
                    {
                        "act": "hotline.no_answer",
                        "entry": pend.index,
                        "channel": pend.channel,
                        "party": party,
                        "precedence": pend.precedence,
                        "deadline": format_time(pend.deadline_ms),
                    }
                )
        return out

    # ---- a snapshot's plain data (acts/snapshot.py) -------------------------------------

    def plain(self) -> dict[str, Any]:
        """The fold as plain data for a snapshot, sharing the state's objects (pickle it
        before the state changes). The entries go as columns, which pickle reads back
        about six times faster than one object each; the agreements and the keys stay out
        (``from_plain`` takes them from the hub's own settings), and so does the memo."""
        reg = self.registry
        out = {name: getattr(self, name) for name in _PLAIN if name != "entries"}
        out["entries"] = _entry_columns(self.entries)
        out["registry"] = {name: getattr(reg, name) for name in _REGISTRY_PLAIN}
        return out

    @classmethod
    def from_plain(
        cls,
        data: Mapping[str, Any],
        agreements: Mapping[str, Agreement],
        secretariat_key: bytes,
        hub_key: bytes,
    ) -> HubState:
        """The state ``plain`` described, with these agreements and keys re-attached."""
        if set(data) != {*_PLAIN, "registry"} or set(data["registry"]) != set(_REGISTRY_PLAIN):
            raise FormatError("hub-state snapshot: not the fields this cbmnet's state holds")
        state = cls(agreements, secretariat_key, hub_key)
        for name in _PLAIN:
            if name != "entries":
                setattr(state, name, data[name])
        for name in _REGISTRY_PLAIN:
            setattr(state.registry, name, data["registry"][name])
        state.parties = state.registry.parties
        cols = data["entries"]
        if len(cols) != len(_ENTRY_FIELDS) or any(len(c) != state.size for c in cols):
            raise FormatError(f"hub-state snapshot: the entries' columns do not hold {state.size} rows")
        state.entries = list(map(Entry, range(state.size), *cols))
        if set(state._logs) != set(state.agreements):
            raise FormatError("hub-state snapshot: its agreements' event logs are not this hub's")
        return state


_PLAIN = (
    "size",
    "entries",
    "channels",
    "pending",
    "acks",
    "no_answer",
    "overdue",
    "check_results",
    "hotline_ids",
    "batches",
    "batch_ids",
    "_by_party",
    "_by_scope",
    "_by_author",
    "_logs",
    "version",
)
"""What ``HubState.plain`` keeps of the state (besides the registry's ``_REGISTRY_PLAIN``)."""
_REGISTRY_PLAIN = ("parties", "approvals", "used_keys", "witnesses", "witness_holders")
_ENTRY_FIELDS = (
    "ms",
    "payload_type",
    "kind",
    "author",
    "agreement",
    "scope",
    "addressees",
    "form",
    "ref",
    "event_id",
    "statement",
    "exercise",
)
"""``Entry``'s fields after ``index`` (which is the entry's position), in order."""
_SHARED = frozenset({"payload_type", "kind", "author", "agreement", "scope", "addressees", "form"})
"""Columns of few distinct values: one object per value makes the pickle a third as large."""

SNAPSHOT_CLASSES: tuple[type, ...] = (Channel, Pending, _AgreementLog, Party, Key, Proposal)
"""Every class ``HubState.plain`` holds an instance of (besides builtins): what a snapshot
may unpickle, and nothing else."""


def _entry_columns(entries: Sequence[Entry]) -> list[list[Any]]:
    rows = list(map(attrgetter(*_ENTRY_FIELDS), entries))
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in _ENTRY_FIELDS]
    for i, name in enumerate(_ENTRY_FIELDS):
        if name in _SHARED:
            one: dict[Any, Any] = {}
            cols[i] = [one.setdefault(v, v) for v in cols[i]]
    return cols


_NOT_READ = frozenset({"body", "sealed_body", "withdrawn_refs"})
"""Left out of what the engine reads: the human text, and ``withdrawn_refs``, which only
the hub states (a party that sent its own would make a live reference look withdrawn)."""


def _refs_of(doc: Mapping[str, Any]) -> list[str]:
    """The ids an event names in ``activity``, ``activities`` and ``request``."""
    out = [doc.get("activity"), doc.get("request"), *(doc.get("activities") or ())]
    return [r for r in out if isinstance(r, str) and r]


_NOT_SUBSTANCE = frozenset(
    {"id", "time", "amends", "body", "sealed_body", "log_index", "corrected_at", "corrected_by"}
)


def _substance(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What an obligation may depend on: everything but ids, times and the human text."""
    return {k: v for k, v in doc.items() if k not in _NOT_SUBSTANCE}


def _id_owner(eid: str, parties: set[str]) -> str | None:
    """The party an event id is reserved to: the longest party id that, with "-", begins it."""
    owners = [p for p in parties if eid.startswith(p + "-")]
    return max(owners, key=len) if owners else None


def _tail(lst: list[int], start: int) -> Iterator[int]:
    """``lst[start:]`` without copying it (lists grow with the log)."""
    for i in range(start, len(lst)):
        yield lst[i]


def act_json(doc: Mapping[str, Any]) -> bytes:
    """The one way cbmnet writes an act payload: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def invitation_forms(ag: Agreement) -> frozenset[str]:
    """The notification forms that invite observers: answered by a response and reported
    on by the invited (``observer_terms``; ``observation_invitation`` by default)."""
    forms = {m.form for m in ag.measures if isinstance(m, ObserverTerms)}
    return frozenset(forms | {"observation_invitation"})


def stated_fields(act: Act) -> dict[str, Any]:
    """The fields of an entry's description (``Entry``: agreement, form, ref, event_id)
    that the signed act states itself, as ``HubState.apply`` sets them; the rest need the
    hub's state (an answer's request, an acknowledged entry's agreement). A reader holding
    the envelope checks the hub's description against these (a national mirror does;
    tests/test_mirror.py checks them against the hub's own entries)."""
    d, pt, kind = act.doc, act.payload_type, act.kind
    if pt == PT_REGISTRY:
        return {
            "agreement": None,
            "ref": None,
            "event_id": None,
            "form": d["for"] if kind == "key.approve" else d["party"],
        }
    if pt == PT_EVENT:
        out = {"agreement": d["agreement"], "event_id": d["id"], "form": d.get("form") or d.get("kind")}
        if d.get("amends") is None and d["type"] != "response":
            out["ref"] = None
        return out
    if pt == PT_ACK:
        return {"ref": d["entry"], "form": None, "event_id": None}
    if pt == PT_HOTLINE:
        if kind == "channel.open":
            return {"form": d["channel"], "agreement": d["agreement"], "ref": None, "event_id": None}
        return {"form": d["channel"], "ref": None}
    if pt == PT_OBSERVATIONS:
        return {"agreement": d["agreement"], "form": d["format"], "event_id": d["batch"], "ref": None}
    if pt == PT_HUB:
        if kind == "hotline.no_answer":
            return {"ref": d.get("entry")}
        out = {"agreement": str(d.get("agreement")), "ref": None}
        if kind == "check.result":
            return {**out, "form": str(d.get("result")), "event_id": str(d.get("request"))}
        return {**out, "form": str(d.get("kind")), "event_id": None}
    return {}
