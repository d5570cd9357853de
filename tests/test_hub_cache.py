"""The hub's compliance caches: exact for the events they read and a span of time, never wider.

What a party relies on: a view served from a cache is the view the engine would compute
now. So the cache must drop a report when the log grows, when the clock passes a due
time (a pending obligation turns missed) or the next instant the engine names, and must
never hand one party's cut to another.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cbmnet.acts.model import PT_ACK, PT_EVENT
from cbmnet.agreements.loader import bundled
from cbmnet.compliance import engine
from cbmnet.compliance.engine import evaluate, next_change
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time, parse_time
from cbmnet.confidence import Record, indicators
from cbmnet.confidence.record import facts_from_state
from cbmnet.hub import views
from tests.hubkit import TestHub, running_hub
from tests.test_hub_api import AG, Api, FakeClock, activity, event


class Counted:
    """``evaluate`` wrapped: how often the hub ran the engine."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *a: Any, **kw: Any) -> Any:
        self.calls += 1
        return evaluate(*a, **kw)


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestHub, Api, FakeClock, Counted]]:
    counted = Counted()
    monkeypatch.setattr(views, "evaluate", counted)
    clock = FakeClock("2030-01-10T00:00:00Z")
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, clock=clock) as th:
        api = Api(th)
        try:
            th.register("AUT", "BEL", "CHE")
            yield th, api, clock, counted
        finally:
            api.close()


def _obligation(doc: dict[str, Any], subject: str) -> dict[str, Any]:
    """The prior notification owed for ``subject``."""
    found = [
        o for o in doc["obligations"] if subject in o["subjects"] and o["kind"] == "prior_notification"
    ]
    assert len(found) == 1, doc["obligations"]
    one: dict[str, Any] = found[0]
    return one


def test_report_cache_invalidates_on_append_and_on_time(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    th, api, clock, counted = world
    hub = th.hub
    # An activity starting 2030-04-01: its prior notification is due 42 days before.
    api.act(
        api.sign(
            "AUT", PT_EVENT, activity("AUT", "ex-1", "2030-04-01T00:00:00Z", "2030-04-05T00:00:00Z")
        )
    )
    now = clock()
    first = hub.views.report_for("AUT", AG, now)
    assert _obligation(first, "ex-1")["status"] == "pending"
    runs = counted.calls
    # Later moments before the due time: served from the cache, re-stamped, equal otherwise.
    for later in (now + 1, now + 3_600_000, now + 20 * MS_PER_DAY):
        again = hub.views.report_for("AUT", AG, later)
        assert again["as_of"] == format_time(later)
        assert {**again, "as_of": first["as_of"]} == first
    assert counted.calls == runs
    # The due time passes: the engine runs again and the obligation is missed.
    due = parse_time(_obligation(first, "ex-1")["due"], "due")
    assert hub.views.report_for("AUT", AG, due)["obligations"] == first["obligations"]
    missed = hub.views.report_for("AUT", AG, due + 1)
    assert _obligation(missed, "ex-1")["status"] == "missed"
    assert counted.calls == runs + 1
    assert hub.views.report(AG, due + 1) == evaluate(
        bundled(AG), parse_events(hub.views.agreement_events(AG), "log"), due + 1, hub.zones[AG]
    )
    # A new entry: the cache is dropped even though the time is the same.
    clock.set("2030-02-01T00:00:00Z")
    before = hub.views.report_for("AUT", AG, clock())
    runs = counted.calls
    note = event("AUT", "ex-1-n", "notification", form="prior_notification", activity="ex-1")
    api.act(api.sign("AUT", PT_EVENT, note))
    after = hub.views.report_for("AUT", AG, clock())
    assert counted.calls == runs + 1
    assert _obligation(before, "ex-1")["status"] == "pending"
    assert _obligation(after, "ex-1")["status"] == "met"


def test_views_are_cut_per_caller_and_indicators_follow_time(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    th, api, clock, counted = world
    hub = th.hub
    secret = event("AUT", "private-ask", "request", kind="explanation", to="BEL")
    api.act(api.sign("AUT", PT_EVENT, secret))
    now = clock()
    runs = counted.calls
    mine = hub.views.report_for("BEL", AG, now)
    assert any("private-ask" in o["subjects"] for o in mine["obligations"])
    # CHE asks right after, from the same cached report: its own cut, without the request.
    theirs = hub.views.report_for("CHE", AG, now + 1)
    assert not any("private-ask" in o["subjects"] for o in theirs["obligations"])
    assert hub.views.report_for("BEL", AG, now + 2)["obligations"] == mine["obligations"]
    assert counted.calls == runs + 1
    # Indicators: cached within the month, recomputed in the next (a new month row).
    ind = hub.views.indicators_for("BEL", AG, now)
    assert hub.views.indicators_for("BEL", AG, now + 5)["rows"] == ind["rows"]
    next_month = parse_time("2030-02-01T00:00:00Z", "t")
    later = hub.views.indicators_for("BEL", AG, next_month)
    assert later["months"] == [*ind["months"], "2030-02"]
    assert later["as_of"] == format_time(next_month)
    # A new entry changes what BEL's indicators count.
    api.act(
        api.sign(
            "BEL",
            PT_EVENT,
            event("BEL", "private-ask-r", "response", request="private-ask", decision="answer"),
        )
    )
    fresh = hub.views.indicators_for("BEL", AG, clock())
    assert fresh != hub.views.indicators_for("CHE", AG, clock())
    assert fresh["rows"] != ind["rows"]


def _random_events(rng: random.Random, start: int) -> list[dict[str, Any]]:
    parties = ["AUT", "BEL", "CHE", "DNK"]
    out: list[dict[str, Any]] = []
    for k in range(60):
        p = rng.choice(parties)
        t = start + rng.randrange(300 * MS_PER_DAY)
        base = {"agreement": AG, "party": p, "time": format_time(t)}
        roll = rng.random()
        if roll < 0.4:
            s = t + rng.randrange(10, 90) * MS_PER_DAY
            aid = f"a{k}"
            out.append(
                {
                    **base,
                    "id": aid,
                    "type": "activity",
                    "category": "land",
                    "start": format_time(s),
                    "end": format_time(s + 3 * MS_PER_DAY),
                    "size": {"troops": rng.choice((9500, 14000, 45000))},
                }
            )
            if rng.random() < 0.7:
                out.append(
                    {
                        **base,
                        "id": f"{aid}-n",
                        "type": "notification",
                        "form": "prior_notification",
                        "activity": aid,
                        "time": format_time(t + rng.randrange(5) * MS_PER_DAY),
                    }
                )
        elif roll < 0.7:
            to = rng.choice([q for q in parties if q != p])
            kind = rng.choice(("explanation", "inspection", "evaluation"))
            out.append({**base, "id": f"r{k}", "type": "request", "kind": kind, "to": to})
            if rng.random() < 0.6:
                out.append(
                    {
                        **base,
                        "id": f"r{k}-r",
                        "type": "response",
                        "party": to,
                        "request": f"r{k}",
                        "decision": "answer"
                        if kind == "explanation"
                        else rng.choice(("accept", "refuse")),
                        "time": format_time(t + rng.randrange(4) * MS_PER_DAY),
                    }
                )
        else:
            out.append(
                {
                    **base,
                    "id": f"x{k}",
                    "type": "exchange",
                    "form": "annual_military_information",
                    "period": str(int(format_time(t)[:4]) + 1),
                    "units": 80,
                }
            )
    return out


@pytest.mark.parametrize("seed", range(4))
def test_next_change_is_conservative(seed: int) -> None:
    """Between ``as_of`` and ``next_change`` the engine's answer is the same report."""
    rng = random.Random(seed)
    ag = bundled(AG)
    start = parse_time("2030-01-01T00:00:00Z", "t")
    events = parse_events(_random_events(rng, start), "random")
    for _ in range(12):
        as_of = start + rng.randrange(500 * MS_PER_DAY)
        rep = engine.evaluate(ag, events, as_of)
        horizon = next_change(ag, events, rep)
        assert horizon > as_of
        for t in {as_of + 1, horizon - 1, rng.randrange(as_of, horizon)}:
            assert engine.evaluate(ag, events, t) == replace(rep, as_of=t), (as_of, t, horizon)


def test_facts_are_extended_and_reread_after_an_amendment(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    """The facts kept per log size equal a fresh read after appends, corrections and
    withdrawals (an amendment rewrites an earlier entry's fact: everything is read again)."""
    th, api, _clock, _ = world
    hub = th.hub

    def same() -> None:
        kept = hub.views.facts_of(AG, hub.committed)
        for shorter in (hub.committed - 1, hub.committed - 3):  # a caller behind the cache
            got = hub.views.facts_of(AG, shorter)
            with hub._state_lock:
                assert got == facts_from_state(hub.state, AG, upto=shorter)
        with hub._state_lock:
            assert kept == facts_from_state(hub.state, AG, upto=hub.committed)
            for who in ("AUT", "BEL", "CHE", "secretariat", "nobody"):
                readable = [f for f in kept if hub.state.may_read(who, hub.state.entries[f.index])]
                assert hub.views.readable_facts(who, kept) == readable

    ask = event("AUT", "q-1", "request", kind="explanation", to="BEL")
    api.act(api.sign("AUT", PT_EVENT, ask))
    same()
    api.act(
        api.sign("BEL", PT_EVENT, event("BEL", "q-1-r", "response", request="q-1", decision="answer"))
    )
    api.act(
        api.sign(
            "AUT", PT_EVENT, activity("AUT", "ex-2", "2030-05-01T00:00:00Z", "2030-05-03T00:00:00Z")
        )
    )
    same()
    fixed = activity("AUT", "ex-2-fix", "2030-05-01T00:00:00Z", "2030-05-03T00:00:00Z", troops=14_000)
    api.act(api.sign("AUT", PT_EVENT, {**fixed, "amends": {"id": "ex-2", "action": "correct"}}))
    same()
    gone = event("BEL", "q-1-r-w", "response", request="q-1", decision="answer")
    api.act(api.sign("BEL", PT_EVENT, {**gone, "amends": {"id": "q-1-r", "action": "withdraw"}}))
    same()
    # And the archive's author filter reads the author's own index: the same rows.
    every = hub.views.entries_for("CHE", limit=1000)
    assert hub.views.entries_for("CHE", limit=1000, author="AUT") == [
        e for e in every if e.author == "AUT"
    ]
    assert (
        hub.views.entries_for("secretariat", limit=2, author="BEL", after=0)
        == [e for e in hub.views.entries_for("secretariat", limit=1000) if e.author == "BEL"][:2]
    )


def test_a_look_at_another_moment_keeps_the_present_cached(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    th, api, clock, counted = world
    hub = th.hub
    api.act(
        api.sign(
            "AUT", PT_EVENT, activity("AUT", "ex-3", "2030-06-01T00:00:00Z", "2030-06-02T00:00:00Z")
        )
    )
    now = clock()
    present = hub.views.report_for("AUT", AG, now)
    runs = counted.calls
    future = hub.views.report_for("AUT", AG, now + 400 * MS_PER_DAY)  # ?as_of= a year on
    assert _obligation(future, "ex-3")["status"] == "missed"
    assert counted.calls == runs + 1
    assert hub.views.report_for("AUT", AG, now + 1)["obligations"] == present["obligations"]
    assert counted.calls == runs + 1


def test_entries_that_are_not_the_agreements_events_keep_its_report(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    """An acknowledgement is no event of the agreement: the engine's report over the same
    events is the same, so it is not computed again, and what is served is still what the
    engine computes now. Indicators count acknowledgements: theirs are computed again."""
    th, api, clock, counted = world
    hub = th.hub
    note = event("AUT", "n-ack", "notification", form="annual_calendar", year=2031, activities=[])
    index = int(api.act(api.sign("AUT", PT_EVENT, note))["index"])
    now = clock()
    seen = hub.views.report_for("BEL", AG, now)
    ind = hub.views.indicators_for("BEL", AG, now)
    runs = counted.calls
    api.act(api.sign("BEL", PT_ACK, {"act": "ack", "entry": index, "party": "BEL"}))
    assert hub.views.report_for("BEL", AG, now + 1)["obligations"] == seen["obligations"]
    assert counted.calls == runs
    assert hub.views.report(AG, now + 1) == evaluate(
        bundled(AG),
        parse_events(hub.state.events(AG, upto=hub.committed), "log"),
        now + 1,
        hub.zones[AG],
    )
    again = hub.views.indicators_for("BEL", AG, now + 1)
    assert counted.calls == runs
    assert again["rows"] != ind["rows"]  # BEL's acknowledgement counts in its reaction times


def test_the_parse_grows_with_the_log_as_a_full_parse_would(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    """Events appended are parsed after the earlier ones; an amendment (a correction, a
    withdrawal) makes the whole be read again. Either way: what a full parse gives."""
    th, api, _clock, _ = world
    hub = th.hub
    rng = random.Random(7)

    def same() -> None:
        got = hub.views.parsed_events(AG)
        full = hub.state.events(AG, upto=hub.committed)
        assert got.docs == full
        assert got.events == parse_events(full, "log")
        assert got.latest == max((e.time for e in got.events), default=-1)

    same()
    for n in range(6):
        start = f"2030-0{3 + n % 5}-0{1 + rng.randrange(8)}T00:00:00Z"
        end = start.replace("T00", "T12")
        api.act(api.sign("AUT", PT_EVENT, activity("AUT", f"g-{n}", start, end)))
        same()
        ask = event("BEL", f"g-{n}-q", "request", kind="explanation", to="AUT", activity=f"g-{n}")
        api.act(api.sign("BEL", PT_EVENT, ask))
        if n % 2:
            same()
    fixed = activity("AUT", "g-1-fix", "2030-04-01T00:00:00Z", "2030-04-02T00:00:00Z", troops=12_000)
    api.act(api.sign("AUT", PT_EVENT, {**fixed, "amends": {"id": "g-1", "action": "correct"}}))
    same()
    gone = event("BEL", "g-2-q-w", "request", kind="explanation", to="AUT")
    api.act(api.sign("BEL", PT_EVENT, {**gone, "amends": {"id": "g-2-q", "action": "withdraw"}}))
    same()
    api.act(
        api.sign("AUT", PT_EVENT, activity("AUT", "g-9", "2030-09-01T00:00:00Z", "2030-09-02T00:00:00Z"))
    )
    same()


def test_each_readers_fact_book_grows_to_what_a_fresh_reading_gives(
    world: tuple[TestHub, Api, FakeClock, Counted],
) -> None:
    """The hub keeps one fact book per reader and reads only new entries into it; after
    acknowledgements, answers, a correction and a withdrawal, every reader's indicators
    are those of its facts read afresh from the whole log."""
    th, api, clock, _ = world
    hub = th.hub

    def fresh(who: str, at: int) -> dict[str, Any]:
        full = hub.views.report(AG, at)
        with hub._state_lock:
            rep = hub.views._readable_report(who, full)
            facts = hub.views.readable_facts(who, facts_from_state(hub.state, AG, upto=hub.committed))
            parties = hub.state.members_of(AG)
        return indicators(Record.of(rep, facts, parties))

    def same() -> None:
        clock.ms += 60_000
        for who in ("AUT", "BEL", "CHE", "secretariat"):
            assert hub.views.indicators_for(who, AG, clock()) == fresh(who, clock())

    cal = event("AUT", "cal-31", "notification", form="annual_calendar", year=2031, activities=[])
    cal_at = int(api.act(api.sign("AUT", PT_EVENT, cal))["index"])
    same()
    api.act(api.sign("BEL", PT_ACK, {"act": "ack", "entry": cal_at, "party": "BEL"}))
    ask = event("CHE", "b-q", "request", kind="explanation", to="AUT")
    ask_at = int(api.act(api.sign("CHE", PT_EVENT, ask))["index"])
    same()
    api.act(api.sign("AUT", PT_ACK, {"act": "ack", "entry": ask_at, "party": "AUT"}))
    answer = event("AUT", "b-q-r", "response", request="b-q", decision="answer")
    api.act(api.sign("AUT", PT_EVENT, answer))
    same()
    fixed = {**event("AUT", "b-q-r2", "response", request="b-q", decision="refuse")}
    api.act(api.sign("AUT", PT_EVENT, {**fixed, "amends": {"id": "b-q-r", "action": "correct"}}))
    same()
    api.act(api.sign("CHE", PT_ACK, {"act": "ack", "entry": cal_at, "party": "CHE"}))
    same()
