"""Verification rules: quotas (per year, per requester, units, groups, concentration,
concurrency), visit conduct, plans, reports, observers, and ``quota_status`` — each at its
boundary (on the deadline vs one millisecond late), on a small test regime and on the
bundled Vienna Document and Open Skies files."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cbmnet.agreements.loader import bundled, parse_agreement
from cbmnet.agreements.model import Agreement
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.quota import QuotaStatus, quota_status
from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import FormatError

REGIME = """
id: verification-test
title: Verification rules under test
version: "1"
parties: [AAA, BBB, CCC, DDD, EEE, FFF]
measures:
  - {id: inspections, kind: verification, provision: "V ¶1", rule: quota,
     request_kind: inspection, per_year: 3, per_requester: 1, reply_within: PT24H}
  - {id: conduct, kind: verification, provision: "V ¶2", rule: visit_conduct,
     request_kind: inspection, form: inspection_report, entry_within: PT36H,
     max_stay: PT48H, max_team: 4}
  - {id: evaluations, kind: verification, provision: "V ¶3", rule: quota,
     request_kind: evaluation, per_year: 1, per_requester_share: 0.2, max_concurrent: 1,
     per_units: {form: annual_military_information, units_per_request: 60, max_per_year: 15}}
  - {id: flights, kind: verification, provision: "V ¶4", rule: quota,
     request_kind: observation_flight, per_year: 0, groups: {DE: [DDD, EEE]},
     per_party: {AAA: 6, BBB: 4, CCC: 3, DE: 2, FFF: 8}, concentration: 0.5,
     max_concurrent: 1, visit_length: PT96H}
  - {id: plan, kind: verification, provision: "V ¶5", rule: visit_plan,
     request_kind: observation_flight, lead: PT24H, answer_within: PT4H}
  - {id: report, kind: verification, provision: "V ¶6", rule: visit_report,
     request_kind: observation_flight, form: mission_report, within: P7D, to_all: true}
  - {id: observers, kind: verification, provision: "V ¶7", rule: observer_terms,
     reply_within: P21D, report_within: P30D}
"""
AS_OF = "2029-06-01T00:00:00Z"
MS = 1
HOUR = 3_600_000
DAY = 24 * HOUR


def regime() -> Agreement:
    return parse_agreement(REGIME, "test")


def t(s: str, plus_ms: int = 0) -> str:
    return format_time(parse_time(s, "t") + plus_ms)


def req(i: str, frm: str, to: str, time: str, kind: str = "inspection", **kw: Any) -> dict:
    return {"id": i, "type": "request", "party": frm, "to": to, "time": time, "kind": kind, **kw}


def ans(i: str, party: str, request: str, time: str, decision: str = "accept") -> dict:
    return {
        "id": i,
        "type": "response",
        "party": party,
        "request": request,
        "time": time,
        "decision": decision,
    }


def note(i: str, party: str, time: str, form: str, **kw: Any) -> dict:
    return {"id": i, "type": "notification", "party": party, "time": time, "form": form, **kw}


def units(i: str, party: str, n: int, period: str = "2028", time: str = "2027-12-01T00:00:00Z") -> dict:
    return {
        "id": i,
        "type": "exchange",
        "party": party,
        "time": time,
        "form": "annual_military_information",
        "period": period,
        "units": n,
    }


def asked(
    host: str, rows: list[tuple[str, str, str]], kind: str = "inspection", **kw: Any
) -> list[dict]:
    """``rows`` of (requester, time, decision); each answered one hour later."""
    out: list[dict] = []
    for k, (frm, time, decision) in enumerate(rows):
        out += [
            req(f"q{k}", frm, host, time, kind, **kw),
            ans(f"p{k}", host, f"q{k}", t(time, HOUR), decision),
        ]
    return out


def run(events: list[dict], as_of: str = AS_OF, agreement: Agreement | None = None) -> dict:
    a = agreement or regime()
    return evaluate(a, parse_events(events), parse_time(as_of, "as_of")).to_json()


def codes(report: dict, measure: str | None = None) -> list[tuple[str, str]]:
    return sorted(
        (f["code"], f["party"]) for f in report["findings"] if measure is None or f["measure"] == measure
    )


def obligation(report: dict, oid: str) -> dict:
    found = [o for o in report["obligations"] if o["id"] == oid]
    assert len(found) == 1, [o["id"] for o in report["obligations"]]
    return found[0]


def status(
    events: list[dict],
    host: str,
    requester: str,
    kind: str,
    at: str,
    agreement: Agreement | None = None,
    **kw: Any,
) -> QuotaStatus:
    return quota_status(
        agreement or regime(), parse_events(events), host, requester, kind, parse_time(at, "at"), **kw
    )


# ---- quotas: per year, per requester ------------------------------------------------------

THREE = [
    ("BBB", "2028-02-01T00:00:00Z", "accept"),
    ("CCC", "2028-03-01T00:00:00Z", "accept"),
    ("DDD", "2028-04-01T00:00:00Z", "accept"),
]


def test_third_and_fourth_inspection_of_a_year() -> None:
    fourth = asked("AAA", [*THREE, ("EEE", "2028-05-01T00:00:00Z", "refuse")])
    assert codes(run(fourth), "inspections") == []
    third = asked("AAA", [*THREE[:2], ("EEE", "2028-05-01T00:00:00Z", "refuse")])
    assert codes(run(third), "inspections") == [("quota.refusal_within_quota", "AAA")]
    # Before the fourth is asked, the hub can say so.
    before_fourth = status(asked("AAA", THREE), "AAA", "EEE", "inspection", "2028-05-01T00:00:00Z")
    assert before_fourth.exhausted and not before_fourth.obliged
    assert before_fourth.remaining_for_host == 0
    assert "3 of its 3" in before_fourth.reason
    before_third = status(asked("AAA", THREE[:2]), "AAA", "EEE", "inspection", "2028-05-01T00:00:00Z")
    assert before_third.obliged and not before_third.exhausted
    assert (before_third.remaining_for_host, before_third.remaining_for_requester) == (1, 1)


def test_a_second_request_from_the_same_state() -> None:
    second = asked("AAA", [THREE[0], ("BBB", "2028-05-01T00:00:00Z", "refuse")])
    assert codes(run(second), "inspections") == []
    other = asked("AAA", [THREE[0], ("CCC", "2028-05-01T00:00:00Z", "refuse")])
    assert codes(run(other), "inspections") == [("quota.refusal_within_quota", "AAA")]
    same = status(asked("AAA", [THREE[0]]), "AAA", "BBB", "inspection", "2028-05-01T00:00:00Z")
    assert same.exhausted and same.remaining_for_requester == 0 and same.remaining_for_host == 2
    assert "from BBB" in same.reason


def test_the_quota_year_turns_at_midnight_utc() -> None:
    last = asked("AAA", [*THREE, ("EEE", "2028-12-31T23:59:59.999Z", "refuse")])
    assert codes(run(last), "inspections") == []
    first = asked("AAA", [*THREE, ("EEE", "2029-01-01T00:00:00Z", "refuse")])
    assert codes(run(first), "inspections") == [("quota.refusal_within_quota", "AAA")]


# ---- quotas: concurrency ------------------------------------------------------------------

ETA = "2028-05-10T12:00:00Z"


def test_one_flight_at_a_time_in_the_96_hour_window() -> None:
    def events(second_eta: str) -> list[dict]:
        return [
            req("f1", "BBB", "AAA", "2028-05-01T00:00:00Z", "observation_flight", eta=ETA),
            ans("a1", "AAA", "f1", "2028-05-01T01:00:00Z"),
            req("f2", "CCC", "AAA", "2028-05-02T00:00:00Z", "observation_flight", eta=second_eta),
            ans("a2", "AAA", "f2", "2028-05-02T01:00:00Z", "refuse"),
        ]

    overlapping = t(ETA, 96 * HOUR - MS)
    assert codes(run(events(overlapping)), "flights") == []
    after = t(ETA, 96 * HOUR)
    assert codes(run(events(after)), "flights") == [("quota.refusal_within_quota", "AAA")]
    before = t(ETA, -96 * HOUR)  # ends exactly when the accepted one starts
    assert codes(run(events(before)), "flights") == [("quota.refusal_within_quota", "AAA")]

    first = events(ETA)[:2]
    busy = status(
        first,
        "AAA",
        "CCC",
        "observation_flight",
        "2028-05-02T00:00:00Z",
        eta_ms=parse_time(overlapping, "t"),
    )
    assert busy.exhausted and busy.concurrent_open == 1 and "f1" in busy.reason
    free = status(
        first, "AAA", "CCC", "observation_flight", "2028-05-02T00:00:00Z", eta_ms=parse_time(after, "t")
    )
    assert free.obliged and free.concurrent_open == 0


def test_a_visit_lasts_from_eta_to_until_where_no_length_is_set() -> None:
    start = "2028-06-01T08:00:00Z"
    end = "2028-06-01T16:00:00Z"

    def events(second_eta: str, **second: Any) -> list[dict]:
        return [
            units("u", "AAA", 300),  # quota 5, one from each requester
            req("e1", "BBB", "AAA", "2028-05-01T00:00:00Z", "evaluation", eta=start, until=end),
            ans("a1", "AAA", "e1", "2028-05-01T01:00:00Z"),
            req("e2", "CCC", "AAA", "2028-05-02T00:00:00Z", "evaluation", eta=second_eta, **second),
            ans("a2", "AAA", "e2", "2028-05-02T01:00:00Z", "refuse"),
        ]

    assert codes(run(events(t(end, -MS))), "evaluations") == []
    assert codes(run(events(end)), "evaluations") == [("quota.refusal_within_quota", "AAA")]
    # A malformed end is bad input, named, not silently an instant ...
    with pytest.raises(FormatError, match="field 'until'"):
        run(events(t(end, -MS), until="soon"))
    # ... a request with no end is an instant: it meets the visit under way then ...
    assert codes(run(events(t(end, -MS))), "evaluations") == []
    # ... but an accepted visit with neither until nor a length occupies no time.
    bare = events(start)
    del bare[1]["until"]
    assert codes(run(bare), "evaluations") == [("quota.refusal_within_quota", "AAA")]
    eta = parse_time(start, "t")
    s = status(bare[:3], "AAA", "CCC", "evaluation", "2028-05-02T00:00:00Z", eta_ms=eta)
    assert s.concurrent_open == 0 and s.obliged
    # An unreadable until is bad input, named.
    garbled = events(start)
    garbled[1]["until"] = "tomorrow"
    with pytest.raises(FormatError, match="field 'until'"):
        run(garbled)
    busy = status(events(start)[:3], "AAA", "CCC", "evaluation", "2028-05-02T00:00:00Z", eta_ms=eta)
    assert busy.concurrent_open == 1 and busy.exhausted


# ---- quotas: units, groups, concentration ---------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "quota", "per_requester"),
    [
        (0, 0, None),
        (1, 1, 1),
        (60, 1, 1),
        (61, 2, 1),
        (540, 9, 1),
        (600, 10, 2),
        (900, 15, 3),
        (5000, 15, 3),
    ],
)
def test_evaluation_quota_follows_the_units_reported(
    reported: int, quota: int, per_requester: int | None
) -> None:
    s = status([units("u", "AAA", reported)], "AAA", "BBB", "evaluation", "2028-03-01T00:00:00Z")
    assert s.remaining_for_host == quota
    if per_requester is not None:
        assert s.remaining_for_requester == per_requester
    assert s.exhausted == (quota == 0)


def test_evaluation_units_count_only_once_delivered_and_for_the_year() -> None:
    rows = [("BBB", "2028-02-01T00:00:00Z", "accept"), ("CCC", "2028-03-01T00:00:00Z", "refuse")]
    assert codes(run([units("u", "AAA", 61), *asked("AAA", rows, "evaluation")]), "evaluations") == [
        ("quota.refusal_within_quota", "AAA")
    ]
    assert codes(run([units("u", "AAA", 60), *asked("AAA", rows, "evaluation")]), "evaluations") == []
    late = units("u", "AAA", 61, time="2028-03-01T00:00:00.001Z")  # after the refused request
    assert codes(run([late, *asked("AAA", rows, "evaluation")]), "evaluations") == []
    other_year = units("u", "AAA", 61, period="2027")
    assert codes(run([other_year, *asked("AAA", rows, "evaluation")]), "evaluations") == []
    # A correction delivered before the request replaces the first figure.
    fixed = units("u2", "AAA", 61, time="2027-12-10T00:00:00Z")
    assert codes(
        run([units("u", "AAA", 60), fixed, *asked("AAA", rows, "evaluation")]), "evaluations"
    ) == [("quota.refusal_within_quota", "AAA")]


def flights(
    host: str, rows: list[tuple[str, str]], start: str = "2028-02-01T00:00:00Z", prefix: str = ""
) -> list[dict]:
    """Flights over ``host``, one a week (never concurrent), ``rows`` of (observer, decision)."""
    out: list[dict] = []
    for k, (frm, decision) in enumerate(rows):
        time = t(start, k * 7 * DAY)
        eta = t(time, 4 * DAY)
        out += [
            req(f"{prefix}f{k}", frm, host, time, "observation_flight", eta=eta),
            ans(f"{prefix}a{k}", host, f"{prefix}f{k}", t(time, HOUR), decision),
        ]
    return out


def test_a_group_shares_one_passive_quota() -> None:
    both = [
        *flights("DDD", [("AAA", "accept")]),
        req("g", "BBB", "EEE", "2028-06-01T00:00:00Z", "observation_flight"),
        ans("ga", "EEE", "g", "2028-06-01T01:00:00Z"),
        req("h", "CCC", "DDD", "2028-07-01T00:00:00Z", "observation_flight"),
        ans("ha", "DDD", "h", "2028-07-01T01:00:00Z", "refuse"),
    ]
    assert codes(run(both), "flights") == []  # DDD and EEE together owe 2
    one = [e for e in both if e["id"] not in ("g", "ga")]
    assert codes(run(one), "flights") == [("quota.refusal_within_quota", "DDD")]
    s = status(both[:4], "EEE", "CCC", "observation_flight", "2028-07-01T00:00:00Z")
    assert s.exhausted and s.remaining_for_host == 0


def test_concentration_cap_half_the_active_quota_rounded_up() -> None:
    # BBB's quota is 4, so over AAA (6) it may fly ceil(4 / 2) = 2 a year.
    two = flights("AAA", [("BBB", "accept"), ("BBB", "accept")])
    assert codes(run(two), "flights") == []
    third = flights("AAA", [("BBB", "accept"), ("BBB", "accept"), ("BBB", "accept")])
    assert codes(run(third), "flights") == [("constraint.count_exceeded", "BBB")]
    refused = flights("AAA", [("BBB", "accept"), ("BBB", "accept"), ("BBB", "refuse")])
    assert codes(run(refused), "flights") == []
    second_refused = flights("AAA", [("BBB", "accept"), ("BBB", "refuse")])
    assert codes(run(second_refused), "flights") == [("quota.refusal_within_quota", "AAA")]
    at = "2028-12-01T00:00:00Z"
    assert status(two, "AAA", "BBB", "observation_flight", at).remaining_for_requester == 0
    # CCC (3): ceil(1.5) = 2; FFF (8) over CCC (3): ceil(4) capped by CCC's own 3.
    assert status([], "AAA", "CCC", "observation_flight", at).remaining_for_requester == 2
    assert status([], "CCC", "FFF", "observation_flight", at).remaining_for_requester == 3
    # The group DE (2) as observer: 1 over one party, whichever member flies.
    by_group = flights("AAA", [("DDD", "accept"), ("EEE", "accept")])
    assert codes(run(by_group), "flights") == [("constraint.count_exceeded", "EEE")]


def test_an_active_quota_given_in_the_agreement_sets_the_cap() -> None:
    a = parse_agreement(
        REGIME.replace("concentration: 0.5,", "concentration: 0.5, active: {BBB: 2},"), "t"
    )
    one = flights("AAA", [("BBB", "accept"), ("BBB", "refuse")])
    assert codes(run(one, agreement=a), "flights") == []
    assert codes(run(one), "flights") == [("quota.refusal_within_quota", "AAA")]


# ---- quota_status: what the hub asks before a request -------------------------------------


def test_quota_status_when_nothing_binds() -> None:
    none = status([], "AAA", "BBB", "explanation", "2028-01-01T00:00:00Z")
    assert not none.obliged and not none.exhausted and none.measures == ()
    assert "no quota" in none.reason
    stranger = status([], "AAA", "ZZZ", "inspection", "2028-01-01T00:00:00Z")
    assert not stranger.obliged and not stranger.exhausted and "does not bind" in stranger.reason
    itself = status([], "AAA", "AAA", "inspection", "2028-01-01T00:00:00Z")
    assert not itself.obliged
    fresh = status([], "AAA", "BBB", "inspection", "2028-01-01T00:00:00Z")
    assert fresh.obliged and fresh.to_json()["remaining_for_host"] == 3
    assert set(fresh.to_json()) >= {
        "remaining_for_host",
        "remaining_for_requester",
        "concurrent_open",
        "exhausted",
        "reason",
    }


def test_quota_status_sees_only_what_happened_by_then() -> None:
    events = asked("AAA", THREE)
    before_last_answer = status(events, "AAA", "EEE", "inspection", "2028-04-01T00:30:00Z")
    assert before_last_answer.remaining_for_host == 1 and before_last_answer.obliged
    after = status(events, "AAA", "EEE", "inspection", "2028-04-01T01:00:00Z")
    assert after.exhausted


def test_quota_status_agrees_with_the_engine() -> None:
    """Whatever the history, a refusal sent at the moment asked about is a finding exactly
    when quota_status said the host was obliged."""
    a = regime()
    parties = list(a.parties)
    kinds = ["inspection", "evaluation", "observation_flight"]
    rng = random.Random(7)
    seen: set[str] = set()
    for trial in range(12):
        events: list[dict] = [units(f"u{p}", p, rng.choice([0, 59, 61, 130, 400])) for p in parties[:3]]
        clock = parse_time("2028-01-03T00:00:00Z", "t")
        for k in range(25):
            clock += rng.randrange(2 * HOUR, 3 * DAY)
            host, frm = rng.sample(parties, 2)
            kind = rng.choice(kinds)
            eta = format_time(clock + rng.randrange(0, 5 * DAY))
            time = format_time(clock)
            events.append(req(f"q{k}", frm, host, time, kind, eta=eta))
            events.append(
                ans(f"p{k}", host, f"q{k}", t(time, HOUR), rng.choice(["accept", "accept", "refuse"]))
            )
            # Ask about a new request two hours later, then send it and refuse it.
            ask = clock + 2 * HOUR
            h, r = rng.sample(parties, 2)
            kind2 = rng.choice(kinds)
            eta2 = ask + rng.randrange(0, 5 * DAY)
            s = quota_status(a, parse_events(events), h, r, kind2, ask, eta_ms=eta2)
            probe = [
                req("probe", r, h, format_time(ask), kind2, eta=format_time(eta2)),
                ans("probe-a", h, "probe", format_time(ask)),
            ]
            probe[1]["decision"] = "refuse"
            rep = evaluate(a, parse_events(events + probe), ask + DAY).to_json()
            found = any(
                f["code"] == "quota.refusal_within_quota" and f["subjects"][0] == "probe"
                for f in rep["findings"]
            )
            assert found == s.obliged, (trial, k, s)
            assert not (s.obliged and s.exhausted)
            seen.add("obliged" if s.obliged else "exhausted" if s.exhausted else "free")
            seen |= {w for w in ("at a time", "from", "of its") if s.exhausted and w in s.reason}
    # Every kind of limit came up, and so did requests the host had to accept.
    assert seen == {"obliged", "exhausted", "at a time", "from", "of its"}, seen


# ---- visit conduct: entry, stay, team ------------------------------------------------------

ASKED = "2028-03-01T06:00:00Z"


def inspection(
    entry: str, end: str, team: Any = None, report_team: int | None = None, prefix: str = "", **kw: Any
) -> list[dict]:
    """BBB's inspection of AAA asked at ASKED, accepted, and its report (entry, end)."""
    extra = {"team_size": team} if team is not None else {}
    rep_extra = {"team_size": report_team} if report_team is not None else {}
    q = f"{prefix}q"
    return [
        req(q, "BBB", "AAA", ASKED, **extra, **kw),
        ans(f"{prefix}p", "AAA", q, t(ASKED, HOUR)),
        note(
            f"{prefix}r",
            "BBB",
            t(end, DAY),
            "inspection_report",
            request=q,
            window_start=entry,
            window_end=end,
            **rep_extra,
        ),
    ]


def test_team_admitted_within_36_hours() -> None:
    due = t(ASKED, 36 * HOUR)
    on_time = run(inspection(due, t(due, HOUR)))
    assert codes(on_time, "conduct") == []
    assert obligation(on_time, "conduct:AAA:q:entry")["status"] == "met"
    late = run(inspection(t(due, MS), t(due, HOUR)))
    assert codes(late, "conduct") == [("visit.entry_late", "AAA")]
    assert obligation(late, "conduct:AAA:q:entry")["status"] == "late"
    # A later eta the requester asked for moves the due time with it.
    eta = t(ASKED, 60 * HOUR)
    assert codes(run(inspection(eta, t(eta, HOUR), eta=eta)), "conduct") == []
    assert codes(run(inspection(t(eta, MS), t(eta, HOUR), eta=eta)), "conduct") == [
        ("visit.entry_late", "AAA")
    ]


def test_no_more_than_48_hours_in_the_area() -> None:
    entry = t(ASKED, 20 * HOUR)
    assert codes(run(inspection(entry, t(entry, 48 * HOUR))), "conduct") == []
    over = run(inspection(entry, t(entry, 48 * HOUR + MS)))
    assert codes(over, "conduct") == [("visit.stay_exceeded", "BBB")]
    assert obligation(over, "conduct:BBB:q:stay")["status"] == "late"


def test_team_of_at_most_four() -> None:
    entry = t(ASKED, 20 * HOUR)
    assert codes(run(inspection(entry, t(entry, HOUR), team=4, report_team=4)), "conduct") == []
    big = run(inspection(entry, t(entry, HOUR), team=5))
    assert codes(big, "conduct") == [("visit.team_too_large", "BBB")]
    grew = run(inspection(entry, t(entry, HOUR), team=4, report_team=5))
    [f] = [f for f in grew["findings"] if f["measure"] == "conduct"]
    assert f["subjects"] == ["q", "r"]
    # Not an integer: bad input, named (the hub refuses it before it is logged).
    with pytest.raises(FormatError, match="field 'team_size'"):
        run(inspection(entry, t(entry, HOUR), team="five"))


def test_no_record_no_duty_and_others_records_do_not_count() -> None:
    bare = inspection(ASKED, ASKED)[:2]
    r = run(bare)
    assert codes(r, "conduct") == []
    assert not [o for o in r["obligations"] if o["id"].startswith("conduct:")]
    hosts_own = inspection(t(ASKED, 40 * HOUR), t(ASKED, 41 * HOUR))
    hosts_own[2]["party"] = "AAA"  # only the visiting party's record is the record
    assert codes(run(hosts_own), "conduct") == []
    # A record of an entry still to come (after as_of) is not judged yet.
    future = inspection(t(ASKED, 40 * HOUR), t(ASKED, 41 * HOUR))
    future[2]["time"] = ASKED
    assert codes(run(future, as_of=t(ASKED, 39 * HOUR)), "conduct") == []


# ---- visit plan and report (Open Skies style) ---------------------------------------------


def flight_with(*extra: dict, start: str = "2028-05-10T12:00:00Z") -> list[dict]:
    return [
        {
            "id": "fl",
            "type": "activity",
            "party": "BBB",
            "start": start,
            "end": t(start, 90 * HOUR),
            "category": "flight",
        },
        req("rq", "BBB", "AAA", t(start, -100 * HOUR), "observation_flight", eta=start, activity="fl"),
        ans("ack", "AAA", "rq", t(start, -99 * HOUR)),
        *extra,
    ]


def test_mission_plan_24_hours_ahead_answered_within_4() -> None:
    submitted = "2028-05-10T14:00:00Z"

    def plan(start_in_ms: int) -> dict:
        return note(
            "mp", "BBB", submitted, "mission_plan", request="rq", window_start=t(submitted, start_in_ms)
        )

    answer = note("mpa", "AAA", t(submitted, 4 * HOUR), "mission_plan_answer", request="rq")
    assert codes(run(flight_with(plan(24 * HOUR), answer)), "plan") == []
    assert codes(run(flight_with(plan(24 * HOUR - MS), answer)), "plan") == [
        ("notification.late", "BBB")
    ]
    late_answer = dict(answer, time=t(submitted, 4 * HOUR + MS))
    assert codes(run(flight_with(plan(24 * HOUR), late_answer)), "plan") == [("reply.late", "AAA")]
    assert codes(run(flight_with(plan(24 * HOUR))), "plan") == [("reply.missing", "AAA")]
    # The observer's own "answer" is not the observed party's.
    assert codes(run(flight_with(plan(24 * HOUR), dict(answer, party="BBB"))), "plan") == [
        ("reply.missing", "AAA")
    ]
    # No plan yet: nothing owed by either side.
    assert codes(run(flight_with()), "plan") == []


def test_mission_report_within_7_days_to_all() -> None:
    end = t("2028-05-10T12:00:00Z", 90 * HOUR)
    report = note("mr", "BBB", t(end, 7 * DAY), "mission_report", request="rq")
    r = run(flight_with(report))
    assert codes(r, "report") == []
    assert obligation(r, "report:BBB:rq")["status"] == "met"
    late = dict(report, time=t(end, 7 * DAY + MS))
    assert codes(run(flight_with(late)), "report") == [("notification.late", "BBB")]
    assert codes(run(flight_with()), "report") == [("notification.missing", "BBB")]
    to_one = dict(report, to=["AAA"])
    assert codes(run(flight_with(to_one)), "report") == [("notification.missing", "BBB")]
    pending = run(flight_with(), as_of=t(end, 7 * DAY))
    assert codes(pending, "report") == [] and obligation(pending, "report:BBB:rq")["status"] == "pending"
    # A request that names no flight: the end of the visit is unknown, nothing is owed.
    unnamed = flight_with()
    del unnamed[1]["activity"]
    assert codes(run(unnamed), "report") == []


# ---- observers ------------------------------------------------------------------------------


def observed(*extra: dict, to: list[str] | None = None) -> list[dict]:
    invite = note("inv", "AAA", "2028-04-01T00:00:00Z", "observation_invitation", activity="ex")
    if to is not None:
        invite["to"] = to
    return [
        {
            "id": "ex",
            "type": "activity",
            "party": "AAA",
            "start": "2028-06-01T00:00:00Z",
            "end": "2028-06-05T00:00:00Z",
            "category": "land",
            "size": {"troops": 14000},
        },
        invite,
        *extra,
    ]


def test_invited_parties_answer_within_21_days() -> None:
    due = t("2028-04-01T00:00:00Z", 21 * DAY)
    yes = ans("y", "BBB", "inv", due, "refuse")
    r = run(observed(yes, to=["BBB"]))
    assert codes(r, "observers") == []
    assert codes(run(observed(dict(yes, time=t(due, MS)), to=["BBB"])), "observers") == [
        ("reply.late", "BBB")
    ]
    everyone = codes(run(observed(yes)), "observers")
    assert everyone == [("reply.missing", p) for p in ("CCC", "DDD", "EEE", "FFF")]


def test_observers_who_accepted_report_within_30_days_of_the_end() -> None:
    end = "2028-06-05T00:00:00Z"
    yes = ans("y", "BBB", "inv", "2028-04-02T00:00:00Z")
    report = note("or", "BBB", t(end, 30 * DAY), "observer_report", request="inv")
    assert codes(run(observed(yes, report, to=["BBB"])), "observers") == []
    late = dict(report, time=t(end, 30 * DAY + MS))
    assert codes(run(observed(yes, late, to=["BBB"])), "observers") == [("notification.late", "BBB")]
    assert codes(run(observed(yes, to=["BBB"])), "observers") == [("notification.missing", "BBB")]
    no = dict(yes, decision="refuse")
    assert codes(run(observed(no, to=["BBB"])), "observers") == []


# ---- determinism ---------------------------------------------------------------------------


def test_reports_and_quota_status_do_not_depend_on_event_order() -> None:
    observers = [("BBB", "accept"), ("BBB", "accept"), ("BBB", "accept"), ("CCC", "refuse")]
    events = [
        *asked("AAA", [*THREE, ("EEE", "2028-05-01T00:00:00Z", "refuse")]),
        *flights("AAA", observers, prefix="x"),
        *inspection(t(ASKED, 37 * HOUR), t(ASKED, 90 * HOUR), team=5, prefix="i"),
        *flight_with(note("mr", "BBB", "2028-06-30T00:00:00Z", "mission_report", request="rq")),
        *observed(ans("y", "BBB", "inv", "2028-04-02T00:00:00Z")),
        units("u", "AAA", 200),
    ]
    a = regime()
    as_of = parse_time(AS_OF, "t")
    want = evaluate(a, parse_events(events), as_of).dumps()
    want_status = status(events, "AAA", "CCC", "observation_flight", "2028-12-01T00:00:00Z")
    rng = random.Random(11)
    for _ in range(4):
        rng.shuffle(events)
        assert evaluate(a, parse_events(events), as_of).dumps() == want
        assert status(events, "AAA", "CCC", "observation_flight", "2028-12-01T00:00:00Z") == want_status


# ---- the agreement file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        (("groups: {DE: [DDD, EEE]}", "groups: {DE: [DDD, ZZZ]}"), "ZZZ not parties"),
        (("groups: {DE: [DDD, EEE]}", "groups: {DE: [DDD, EEE], AAA: [FFF]}"), "named like a party"),
        (
            ("groups: {DE: [DDD, EEE]}", "groups: {DE: [DDD, EEE], DF: [EEE, FFF]}"),
            "more than one group",
        ),
        (("FFF: 8}", "ZZZ: 8}"), "ZZZ not parties"),
        (("concentration: 0.5", "concentration: 1.5"), "concentration"),
        (("max_team: 4", "max_team: 0"), "max_team"),
    ],
)
def test_bad_verification_figures_are_refused(patch: tuple[str, str], words: str) -> None:
    assert patch[0] in REGIME
    with pytest.raises(FormatError, match=words):
        parse_agreement(REGIME.replace(*patch), "my.yaml")


# ---- bundled: Vienna Document 2011 ---------------------------------------------------------

VD = "vienna-document-2011"


def test_vd_inspection_conduct() -> None:
    vd = bundled(VD)
    m = "inspection-conduct"

    def events(entry_ms: int, stay_ms: int, team: int) -> list[dict]:
        # The 48 h run from the arrival in the specified area (here 5 h after entry).
        entry = t(ASKED, entry_ms)
        arrived = t(entry, 5 * HOUR)
        return [
            req("q", "UKR", "RUS", ASKED, "inspection", team_size=team),
            ans("p", "RUS", "q", t(ASKED, HOUR)),
            note(
                "r",
                "UKR",
                t(entry, 3 * DAY),
                "inspection_report",
                request="q",
                window_start=entry,
                arrived_area=arrived,
                window_end=t(arrived, stay_ms),
                team_size=team,
            ),
        ]

    ok = run(events(36 * HOUR, 48 * HOUR, 4), agreement=vd)
    assert codes(ok, m) == [] and codes(ok, "inspection-quota") == []
    assert {o["status"] for o in ok["obligations"] if o["id"].startswith(m)} == {"met"}
    assert codes(run(events(36 * HOUR + MS, 48 * HOUR, 4), agreement=vd), m) == [
        ("visit.entry_late", "RUS")
    ]
    assert codes(run(events(36 * HOUR, 48 * HOUR + MS, 4), agreement=vd), m) == [
        ("visit.stay_exceeded", "UKR")
    ]
    assert codes(run(events(36 * HOUR, 48 * HOUR, 5), agreement=vd), m) == [
        ("visit.team_too_large", "UKR")
    ]


def test_vd_third_and_fourth_inspection_as_quota_status_sees_them() -> None:
    vd = bundled(VD)
    at = "2028-05-01T00:00:00Z"
    ukr, pol, est = (
        ("UKR", "2028-02-01T00:00:00Z", "accept"),
        ("POL", "2028-03-01T00:00:00Z", "accept"),
        ("EST", "2028-04-01T00:00:00Z", "accept"),
    )
    two = asked("RUS", [ukr, pol])
    before_third = status(two, "RUS", "EST", "inspection", at, agreement=vd)
    assert before_third.obliged and before_third.remaining_for_host == 1
    again = status(two, "RUS", "UKR", "inspection", at, agreement=vd)
    assert again.exhausted and again.remaining_for_requester == 0
    full = status(asked("RUS", [ukr, pol, est]), "RUS", "LVA", "inspection", at, agreement=vd)
    assert full.exhausted and full.remaining_for_host == 0 and not full.obliged


def test_vd_evaluation_quota_from_units_and_one_at_a_time() -> None:
    vd = bundled(VD)
    m = "evaluation-quota"
    rows = [("POL", "2028-02-01T00:00:00Z", "accept"), ("LTU", "2028-03-01T00:00:00Z", "refuse")]
    reported = units("u", "BLR", 61)
    assert codes(run([reported, *asked("BLR", rows, "evaluation")], agreement=vd), m) == [
        ("quota.refusal_within_quota", "BLR")
    ]
    assert (
        codes(run([dict(reported, units=60), *asked("BLR", rows, "evaluation")], agreement=vd), m) == []
    )
    s = status(
        [dict(reported, units=1000)], "BLR", "POL", "evaluation", "2028-02-01T00:00:00Z", agreement=vd
    )
    assert (s.remaining_for_host, s.remaining_for_requester) == (15, 3)
    # One visit at a time, from eta to until.
    span = {"eta": "2028-03-05T08:00:00Z", "until": "2028-03-05T18:00:00Z"}
    busy = [
        reported,
        req("e1", "POL", "BLR", "2028-02-01T00:00:00Z", "evaluation", **span),
        ans("a1", "BLR", "e1", "2028-02-01T01:00:00Z"),
        req("e2", "LTU", "BLR", "2028-02-02T00:00:00Z", "evaluation", eta="2028-03-05T17:59:59.999Z"),
        ans("a2", "BLR", "e2", "2028-02-02T01:00:00Z", "refuse"),
    ]
    assert codes(run(busy, agreement=vd), m) == []
    busy[3]["eta"] = "2028-03-05T18:00:00Z"
    assert codes(run(busy, agreement=vd), m) == [("quota.refusal_within_quota", "BLR")]


# ---- bundled: Open Skies ----------------------------------------------------------------------

OS = "open-skies-1992"


def test_open_skies_annex_a_quotas_groups_and_the_50_percent_cap() -> None:
    os = bundled(OS)
    at = "2028-01-10T00:00:00Z"
    # The USA's 42 while it was a party; it left on 22 Nov 2020 and owes nothing since.
    then = "2019-01-10T00:00:00Z"
    assert status([], "USA", "DEU", "observation_flight", then, agreement=os).remaining_for_host == 42
    assert not status([], "USA", "DEU", "observation_flight", at, agreement=os).obliged
    assert status([], "PRT", "DEU", "observation_flight", at, agreement=os).remaining_for_host == 2
    # NOR (7) may fly over ITA (12) ceil(3.5) = 4 times; DEU (12) over PRT (2) only 2.
    assert status([], "ITA", "NOR", "observation_flight", at, agreement=os).remaining_for_requester == 4
    assert status([], "PRT", "DEU", "observation_flight", at, agreement=os).remaining_for_requester == 2
    four = flights("ITA", [("NOR", "accept")] * 4)
    assert codes(run(four, agreement=os), "flight-quota") == []
    five = flights("ITA", [("NOR", "accept")] * 5)
    assert codes(run(five, agreement=os), "flight-quota") == [("constraint.count_exceeded", "NOR")]
    refused = flights("ITA", [*[("NOR", "accept")] * 4, ("NOR", "refuse")])
    assert codes(run(refused, agreement=os), "flight-quota") == []
    # Benelux shares 6: flights over BEL, NLD and LUX count together.
    six = [
        e
        for k, host in enumerate(["BEL", "NLD", "LUX", "BEL", "NLD", "LUX"])
        for e in flights(
            host,
            [("DEU" if k % 2 else "FRA", "accept")],
            start=t("2028-02-01T00:00:00Z", k * 7 * DAY),
            prefix=f"b{k}",
        )
    ]
    s = status(six, "LUX", "GBR", "observation_flight", "2028-12-01T00:00:00Z", agreement=os)
    assert s.exhausted and s.remaining_for_host == 0


def test_open_skies_full_mission_is_clean() -> None:
    os = bundled(OS)
    eta = "2028-05-10T12:00:00Z"
    notice = t(eta, -72 * HOUR)
    plan_at = t(eta, 2 * HOUR)
    departure = t(eta, 90 * HOUR)
    events = [
        {
            "id": "fl",
            "type": "activity",
            "party": "DEU",
            "start": eta,
            "end": departure,
            "category": "flight",
        },
        note("fn", "DEU", notice, "flight_notice", activity="fl"),
        req("rq", "DEU", "POL", notice, "observation_flight", eta=eta, activity="fl"),
        ans("ack", "POL", "rq", t(notice, 24 * HOUR)),
        note(
            "mp",
            "DEU",
            plan_at,
            "mission_plan",
            request="rq",
            window_start=t(plan_at, 24 * HOUR),
            to=["POL"],
        ),
        note("mpa", "POL", t(plan_at, 4 * HOUR), "mission_plan_answer", request="rq", to=["DEU"]),
        note("mr", "DEU", t(departure, 7 * DAY), "mission_report", request="rq"),
    ]
    r = run(events, as_of="2028-12-31T00:00:00Z", agreement=os)
    assert codes(r) == []
    assert {o["status"] for o in r["obligations"]} == {"met"}
    no_report = run(events[:-1], as_of="2028-12-31T00:00:00Z", agreement=os)
    assert codes(no_report) == [("notification.missing", "DEU")]
