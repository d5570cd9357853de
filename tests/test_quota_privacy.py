"""Quota answers rest on what the caller may read (ADR 0006), over a real hub on loopback.

FRA asks DEU for an inspection and an evaluation visit, DEU accepts: a private exchange
between the two. POL, a third party, must learn nothing of it from ``/v1/quota`` or the
dashboard's quotas page: its answers are the very bytes it gets from a hub where the visit
never happened, whatever ``eta``/``until`` it steps through. FRA still sees the visit count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.compliance.quota import WHOLE_RECORD, quota_status
from cbmnet.compliance.timeutil import format_time, year_of
from cbmnet.hub.deps import COOKIE
from cbmnet.hub.service import HubSettings
from tests.browserkit import session_cookie
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"
HOST, VISITOR, THIRD = "DEU", "FRA", "POL"
PRIVATE = ("insp-fra-deu-private", "eval-fra-deu-private")
DAY = 86_400_000
FAST = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)


def _hub(url: str, tmp: Path, stack: ExitStack, *, private_visit: bool) -> tuple[TestHub, int]:
    """Three parties; DEU reports 130 units (3 evaluation visits a year, one at a time).
    With ``private_visit``, FRA's inspection and evaluation of DEU, both accepted."""
    th = stack.enter_context(running_hub(url, tmp, settings=FAST))
    th.register(HOST, VISITOR, THIRD)
    now = th.hub.clock()
    with th.client(HOST) as deu:
        deu.event(
            {"agreement": VD, "id": "deu-units", "type": "exchange",
             "form": "annual_military_information", "period": str(year_of(now)), "units": 130}
        )  # fmt: skip
    if private_visit:
        eta, until = format_time(now + 10 * DAY), format_time(now + 12 * DAY)
        with th.client(VISITOR) as fra, th.client(HOST) as deu:
            for rid, kind in zip(PRIVATE, ("inspection", "evaluation"), strict=True):
                fra.event(
                    {"agreement": VD, "id": rid, "type": "request", "kind": kind, "to": HOST,
                     "eta": eta, "until": until, "team_size": 2}
                )  # fmt: skip
                deu.event(
                    {"agreement": VD, "id": f"{rid}-ok", "type": "response", "request": rid,
                     "decision": "accept"}
                )  # fmt: skip
    return th, now


Span = tuple[float | None, float | None]
"""eta and until, in days from when the private visit was planned (None: not given)."""

WINDOWS: list[Span] = [
    (5, 6), (9, 11), (10.5, 11), (11, 13), (9, 13), (14, 15), (11, None), (None, None)
]  # fmt: skip
"""Before, across the start, inside, across the end, around and after the private visit
(days 10 to 12), an instant inside it, and the defaults (an instant now)."""


def _overlaps(span: Span) -> bool:
    a, b = span
    return a is not None and a < 12 and (a if b is None else b) + 1e-9 > 10


def _answers(th: TestHub, party: str, now: int, windows: list[Span]) -> list[str]:
    def at(days: float | None) -> str | None:
        return None if days is None else format_time(now + int(days * DAY))

    with th.client(party) as c:
        return [
            json.dumps(c.quota(VD, HOST, kind, eta=at(a), until=at(b)), sort_keys=True)
            for kind in ("inspection", "evaluation")
            for a, b in windows
        ]


@pytest.fixture(params=["sqlite", "postgres"])
def private_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store of the hub that holds the private visit, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'private.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def hubs(private_url: str, tmp_path: Path) -> Iterator[tuple[TestHub, TestHub, int]]:
    """(the hub with the private visit, the same hub without it, when the visit was planned)."""
    with ExitStack() as stack:
        private, now = _hub(private_url, tmp_path / "private", stack, private_visit=True)
        bare, _ = _hub(
            f"sqlite:///{tmp_path / 'bare.db'}", tmp_path / "bare", stack, private_visit=False
        )
        yield private, bare, now


def test_a_third_party_learns_nothing_of_a_private_visit(hubs: tuple[TestHub, TestHub, int]) -> None:
    private, bare, now = hubs
    windows = WINDOWS
    # The visiting party asks first, so any answer it leaves behind is cached before POL asks.
    fra = [json.loads(a) for a in _answers(private, VISITOR, now, windows)]
    seen = _answers(private, THIRD, now, windows)
    never = _answers(bare, THIRD, now, windows)
    assert seen == never  # no count, remaining figure, window or reason moves
    for text in seen:
        assert not any(rid in text for rid in PRIVATE)
        got = json.loads(text)
        assert got["basis"] == f"entries readable by {THIRD}"
        assert "not shown to POL" in got["caveat"] and got["remaining_for_host"] == 3
        assert got["obliged"] and not got["exhausted"] and got["concurrent_open"] == 0

    # FRA, a side of the visit, still sees it counted, and when it is under way.
    inspections, evaluations = fra[: len(windows)], fra[len(windows) :]
    for got in inspections:
        assert got["exhausted"] and got["remaining_for_requester"] == 0
        assert got["remaining_for_host"] == 2 and got["basis"] == f"entries readable by {VISITOR}"
    assert sum(_overlaps(w) for w in windows) == 5
    for got, w in zip(evaluations, windows, strict=True):
        assert got["exhausted"] and got["remaining_for_host"] == 2  # one fifth of 3: 1 per State
        assert got["concurrent_open"] == (1 if _overlaps(w) else 0)
    # And after FRA, POL again: nothing cached for one reader answers the other.
    assert _answers(private, THIRD, now, windows) == never

    # DEU, the host, reads the visit too: what it owes a newcomer is counted on it.
    hub = private.hub
    view = hub.views.quota_view(HOST, hub.views.parsed_events(VD))
    assert {e.id for e in view.events} >= set(PRIVATE)
    ag = hub.agreements[VD]
    owed = quota_status(ag, view.events, HOST, THIRD, "inspection", hub.clock(), reader=HOST)
    assert owed.remaining_for_host == 2 and owed.caveat is None and owed.obliged
    eta, until = now + 11 * DAY, now + 13 * DAY
    busy = quota_status(
        ag, view.events, HOST, THIRD, "evaluation", hub.clock(), eta_ms=eta, until_ms=until, reader=HOST
    )
    assert busy.exhausted and PRIVATE[1] in busy.reason  # one visit at a time
    # The secretariat's view is the whole record.
    with private.client() as sec:
        full = sec.quota(VD, HOST, "inspection")
    assert full["basis"] == WHOLE_RECORD and full["caveat"] is None


def _quotas_page(th: TestHub, party: str) -> str:
    with th.client(party) as c:
        cookie = session_cookie(th.url, c.token())
    with httpx.Client(base_url=th.url, timeout=30, cookies={COOKIE: cookie}) as http:
        page = http.get("/dashboard/quotas")
        assert page.status_code == 200, page.text
        return page.text


def _main(page: str) -> str:
    """The page's quota tables, without the moment it was drawn."""
    body = page[page.index("<h1>Inspections and quotas</h1>") :]
    return re.sub(r"As of [0-9T:.\-]+Z\.", "As of ….", body)


def test_the_quotas_page_shows_a_third_party_what_the_api_does(
    hubs: tuple[TestHub, TestHub, int],
) -> None:
    private, bare, _ = hubs
    pol = _quotas_page(private, THIRD)
    assert not any(rid in pol for rid in PRIVATE)
    assert _main(pol) == _main(_quotas_page(bare, THIRD))
    with private.client(THIRD) as c:
        api: dict[str, Any] = c.quota(VD, HOST, "inspection")
    row = pol[pol.index(f"<td>{HOST}</td>") :]
    row = row[: row.index("</tr>")]
    assert f"<td>{api['remaining_for_host']}</td>" in row and "obliged" in row
    assert f"entries readable by {THIRD}" in pol and "not shown to POL" in pol
    # FRA's page lists its own request to DEU, and counts it.
    fra = _quotas_page(private, VISITOR)
    assert PRIVATE[0] in fra and "exhausted" in fra
