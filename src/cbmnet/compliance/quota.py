"""``quota_status``: before a request is sent, would the host be obliged to accept it?

The hub asks this so it can tell a requester that a host's quota is exhausted before the
request goes on the log. Pure and deterministic (no clock, no I/O): the answer depends only
on the agreement, the events and the moment given. It replays the engine's own
``QuotaBook``, so over the same events it cannot disagree with the
``quota.refusal_within_quota`` finding that ``evaluate`` would make of a refusal sent at the
same moment.

The hub gives a party only the events that party may read (ADR 0006): a request between two
other parties must not show through a count, a window or a reason. A party's answer is then
advisory; the engine's findings are made on the full record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cbmnet.agreements import model as am
from cbmnet.compliance.context import Context
from cbmnet.compliance.events import Event
from cbmnet.compliance.timeutil import year_of
from cbmnet.compliance.visits import QuotaBook

WHOLE_RECORD = "every entry of the log (the secretariat reads them all)"
"""``basis`` of an answer counted on the full record."""


@dataclass(frozen=True)
class QuotaStatus:
    """What a request of ``request_kind`` from ``requester`` to ``host`` would meet.

    ``exhausted``: a limit is reached, so the host may refuse without a finding; ``obliged``:
    a quota applies and no limit is reached, so a refusal would be a finding. Both are false
    when no quota applies at all (``reason`` says why). ``remaining_*`` are None when no
    figure limits them; ``concurrent_open`` counts the host's accepted visits of that kind
    that overlap the one asked for (or are under way at its start).

    ``basis`` names the record the figures are counted on; ``caveat`` says, in words, what
    that record may lack that could change the host's obligation (None when nothing can).
    """

    host: str
    requester: str
    request_kind: str
    year: int
    measures: tuple[str, ...]
    remaining_for_host: int | None
    remaining_for_requester: int | None
    concurrent_open: int
    exhausted: bool
    obliged: bool
    reason: str
    basis: str = WHOLE_RECORD
    caveat: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "requester": self.requester,
            "request_kind": self.request_kind,
            "year": self.year,
            "measures": list(self.measures),
            "remaining_for_host": self.remaining_for_host,
            "remaining_for_requester": self.remaining_for_requester,
            "concurrent_open": self.concurrent_open,
            "exhausted": self.exhausted,
            "obliged": self.obliged,
            "reason": self.reason,
            "basis": self.basis,
            "caveat": self.caveat,
        }


BOOK_TYPES = frozenset({"request", "response", "exchange", "notification"})
"""The event types a ``QuotaBook`` reads (requests, their answers, the exchanges that set a
quota by units, the notifications that record an outcome the quota does not count, such
as a prohibited flight): the rest cannot change a quota answer."""


def basis_of(reader: str | None) -> str:
    """What an answer is counted on: the events ``reader`` may read, or (None) all of them."""
    return WHOLE_RECORD if reader is None else f"entries readable by {reader}"


QuotaBooks = list[QuotaBook]
"""The replayed books of one agreement's quota measures for one request kind."""


def quota_books(
    agreement: am.Agreement, events: Sequence[Event], request_kind: str, as_of: int
) -> QuotaBooks:
    """Replay the books ``quota_status`` reads, over the events up to ``as_of``.

    A moment's books depend on which events it sees, not on the moment itself: books
    built at or after the latest event's time serve ``quota_status`` at any later moment.
    """
    ctx = Context(agreement, as_of, [e for e in events if e.type in BOOK_TYPES], {})
    out = []
    for m in agreement.measures:
        if isinstance(m, am.Quota) and m.request_kind == request_kind:
            book = QuotaBook(m, ctx)
            book.replay()
            out.append(book)
    return out


def _min(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def quota_status(
    agreement: am.Agreement,
    events: Sequence[Event],
    host: str,
    requester: str,
    request_kind: str,
    at_ms: int,
    *,
    eta_ms: int | None = None,
    until_ms: int | None = None,
    books: QuotaBooks | None = None,
    reader: str | None = None,
) -> QuotaStatus:
    """The quota a request sent at ``at_ms`` (epoch ms) would meet, as of that moment.

    ``events`` are the agreement's events as the engine reads them (those after ``at_ms``
    are ignored). ``eta_ms``/``until_ms`` are the visit's planned arrival and end, as the
    request would carry them in ``eta``/``until``; concurrency is judged on them (default:
    the visit starts at ``at_ms`` and lasts the measure's ``visit_length``). The year is the
    calendar year of ``at_ms``, as the engine counts a request in the year it was sent.
    ``books``: ``quota_books`` of ``request_kind`` over the events ``at_ms`` sees, if at hand
    (they are only read here).

    ``reader``: the party whose readable events ``events`` are (None: the full record). The
    answer then says so, and warns that the host's visits with others, which that party does
    not see, could leave the host less to give: the figures are never guessed up.
    """
    year = year_of(at_ms)
    basis = basis_of(reader)

    def status(measures: tuple[str, ...], reason: str, **kw: Any) -> QuotaStatus:
        fields: dict[str, Any] = {
            "remaining_for_host": None,
            "remaining_for_requester": None,
            "concurrent_open": 0,
            "exhausted": False,
            "obliged": False,
        }
        fields.update(kw)
        return QuotaStatus(
            host, requester, request_kind, year, measures, reason=reason, basis=basis, **fields
        )

    quotas = [
        m for m in agreement.measures if isinstance(m, am.Quota) and m.request_kind == request_kind
    ]
    ids = tuple(m.id for m in quotas)
    if not quotas:
        return status(ids, f"{agreement.id} sets no quota for {request_kind} requests")
    # Bound on the day asked (a State that has left the agreement is owed nothing): the
    # engine's rule (``Context.member``).
    bound = agreement.is_member(host, at_ms) and agreement.is_member(requester, at_ms)
    if host == requester or not bound:
        return status(ids, f"a request from {requester} to {host} does not bind under {agreement.id}")
    caveat = _caveat(quotas, host, request_kind, reader)
    if books is None:
        books = quota_books(agreement, events, request_kind, at_ms)
    host_left: list[int | None] = []
    mine_left: list[int | None] = []
    busy = 0
    limits: list[str] = []
    for book in books:
        m = book.m
        start, end = book.span_of(at_ms if eta_ms is None else eta_ms, until_ms)
        host_left.append(max(0, book.quota(host, year, at_ms) - book.used(host, year)))
        cap = book.requester_cap(host, requester, year, at_ms)
        if cap is not None:
            mine_left.append(max(0, cap[0] - book.used_from(host, requester, year)))
        busy = max(busy, len(book.overlapping(host, start, end)))
        why = book.limit(host, requester, year, at_ms, start, end)
        if why is not None:
            limits.append(f"{m.id}: {why}")
    claims = sorted({r for book in books for r in book.claimed(host, year)})
    if claims:
        # The same rule as the engine's: a claim by the side the measure does not name
        # is not counted as settled, and a refusal resting on it cannot be judged.
        said = (
            f"{', '.join(claims)}: one side records an outcome that would take it out of "
            f"{host}'s quota, the side the measure names has not; a refusal that only counting "
            "it makes lawful cannot be judged"
        )
        caveat = said if caveat is None else f"{caveat} {said}"
    left, mine = _min(host_left), _min(mine_left)
    counts = {"remaining_for_host": left, "remaining_for_requester": mine, "concurrent_open": busy}
    if limits:
        return status(ids, "; ".join(limits), exhausted=True, caveat=caveat, **counts)
    of_mine = f", {mine} for {requester}" if mine is not None else ""
    seen = "" if reader is None else f" as far as the entries readable by {reader} show"
    reason = f"within quota{seen}: {left} left for {host} in {year}{of_mine}"
    return status(ids, reason, obliged=True, caveat=caveat, **counts)


def _caveat(quotas: list[am.Quota], host: str, kind: str, reader: str | None) -> str | None:
    """What the reader's record may lack. Said whenever it could matter, never from whether
    anything is in fact hidden: that would itself tell of the hidden entries."""
    if reader is None:
        return None
    if reader == host and not any(host in members for m in quotas for members in m.groups.values()):
        return None  # every request to the host is addressed to it
    return (
        f"{host} may have accepted {kind} visits from others that are not shown to {reader}: "
        f"they would leave {host} less to give, and could make a refusal lawful where this "
        "answer says obliged. The engine judges a refusal on the full record."
    )
