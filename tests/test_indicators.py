"""Confidence indicators: hand-computed expectations, month edges, null for no data."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HUB, PT_REGISTRY, read_act
from cbmnet.acts.state import HubState, act_json
from cbmnet.agreements.loader import bundled
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.compliance.report import Finding, Obligation, Report
from cbmnet.compliance.timeutil import parse_time
from cbmnet.confidence import Fact, Record, facts_from_state, indicators, month_of, record_from_state
from cbmnet.confidence.indicators import FactBook, month_end, months_between, nearest_rank
from cbmnet.ledger.dsse import pae
from cbmnet.ledger.note import generate_key, parse_signer_key

A = "example"
DOC = Path(__file__).resolve().parent.parent / "docs" / "indicators.md"


def t(text: str) -> int:
    return parse_time(text, "test")


def example() -> Record:
    """The worked example of docs/indicators.md."""
    due = t
    obligations = (
        Obligation(
            "notify:DEU:a1", "DEU", "¶38", "prior_notification", due("2027-09-05T00:00:00Z"), "met"
        ),
        Obligation("aei:DEU:2027", "DEU", "¶9", "periodic_exchange", due("2027-09-15T00:00:00Z"), "met"),
        Obligation(
            "notify:DEU:a2", "DEU", "¶38", "prior_notification", due("2027-09-20T00:00:00Z"), "late"
        ),
        Obligation(
            "reply:DEU:r9", "DEU", "¶16", "reply_deadline", due("2027-09-25T00:00:00Z"), "missed"
        ),
        Obligation(
            "notify:DEU:a3", "DEU", "¶38", "prior_notification", due("2027-10-10T00:00:00Z"), "waived"
        ),
        Obligation(
            "notify:DEU:a4", "DEU", "¶38", "prior_notification", due("2027-11-05T00:00:00Z"), "pending"
        ),
    )
    findings = (
        Finding(
            "exchange.incomplete", "DEU", "¶9", ("x1",), due("2027-09-15T00:00:00Z"), "B", "2027", "aei"
        ),
        Finding("notification.late", "DEU", "¶38", ("a2", "n2"), due("2027-09-20T00:00:00Z"), "late"),
        Finding("reply.missing", "DEU", "¶16", ("r9",), due("2027-09-25T00:00:00Z"), "never answered"),
    )
    deu, fra, sec = frozenset({"DEU"}), frozenset({"FRA"}), frozenset({"secretariat"})
    facts = (
        Fact(10, t("2027-09-02T10:00:00Z"), "FRA", "request", A, to=deu, form="inspection"),
        Fact(11, t("2027-09-03T10:00:00Z"), "DEU", "response", A, 10, fra, outcome="accept"),
        Fact(12, t("2027-09-04T00:00:00Z"), "DEU", "notification", A, to_all=True, form="x"),
        Fact(13, t("2027-09-04T02:00:00Z"), "FRA", "ack", A, 12, deu),
        Fact(14, t("2027-09-04T06:00:00Z"), "POL", "ack", A, 12, deu),
        Fact(15, t("2027-09-10T00:00:00Z"), "FRA", "hotline.message", A, to=deu),
        Fact(16, t("2027-09-10T00:05:00Z"), "DEU", "ack", A, 15, fra),
        Fact(17, t("2027-09-20T00:00:00Z"), "FRA", "request", A, to=deu, form="explanation"),
        Fact(18, t("2027-09-22T00:00:00Z"), "DEU", "response", A, 17, fra, outcome="answer"),
        Fact(
            19,
            t("2027-09-30T23:00:00Z"),
            "secretariat",
            "request",
            A,
            to=deu,
            form="communication_check",
        ),
        Fact(20, t("2027-10-01T01:00:00Z"), "DEU", "ack", A, 19, sec),
        Fact(
            21,
            t("2027-10-01T02:00:00Z"),
            "hub",
            "check.result",
            A,
            19,
            to_all=True,
            outcome="passed",
            concerns="DEU",
        ),
        Fact(22, t("2027-10-05T00:00:00Z"), "FRA", "notification", A, to=deu, form="flight_notice"),
        Fact(
            23,
            t("2027-10-06T00:00:00Z"),
            "hub",
            "check.result",
            A,
            to_all=True,
            outcome="missed",
            concerns="FRA",
        ),
    )
    report = Report(A, t("2027-10-31T12:00:00Z"), obligations, findings)
    return Record.of(report, facts, ["POL", "DEU", "FRA"])


def rows(out: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["party"], r["month"]): r for r in out["rows"]}


def test_worked_example_matches_the_documentation() -> None:
    out = indicators(example())
    assert out["months"] == ["2027-09", "2027-10"]
    assert out["parties"] == ["DEU", "FRA", "POL"]
    documented = re.search(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert documented is not None
    assert rows(out)[("DEU", "2027-09")] == json.loads(documented.group(1))


def test_worked_example_october_and_the_other_parties() -> None:
    r = rows(indicators(example()))
    deu = r[("DEU", "2027-10")]
    assert deu["timeliness"]["share"] is None and deu["timeliness"]["waived"] == 1
    # The check came on 30 September; the acknowledgement on 1 October counts in October.
    assert deu["responsiveness"]["reaction"] == {
        "median_ms": 7_200_000,
        "p90_ms": 7_200_000,
        "sample": 1,
        "acknowledgements": 1,
        "answers": 0,
    }
    assert deu["responsiveness"]["checks"]["share"] == 1.0
    assert deu["compliance"]["open"]["total"] == 3 and deu["compliance"]["new"]["total"] == 0
    assert deu["reciprocity"]["FRA"]["share"] == 0.0
    assert deu["reciprocity"]["FRA"]["receives"]["notifications"] == 1
    assert r[("FRA", "2027-09")]["responsiveness"]["reaction"]["median_ms"] == 7_200_000
    assert r[("FRA", "2027-09")]["reciprocity"]["DEU"]["receives"]["total"] == 3
    assert r[("FRA", "2027-10")]["responsiveness"]["checks"] == {
        "share": 0.0,
        "numerator": 0,
        "denominator": 1,
        "sample": 1,
    }
    assert r[("POL", "2027-09")]["responsiveness"]["reaction"]["median_ms"] == 21_600_000
    pol = r[("POL", "2027-10")]
    assert pol["reciprocity"] == {}
    assert pol["responsiveness"]["reaction"]["median_ms"] is None


def test_empty_months_are_null_not_zero() -> None:
    rec = example()
    out = indicators(rec, months=["2027-08", "2027-09"])
    row = rows(out)[("DEU", "2027-08")]
    assert row["timeliness"]["share"] is None
    assert row["completeness"]["exchanges"]["share"] is None
    assert row["responsiveness"]["reaction"]["median_ms"] is None
    assert row["responsiveness"]["checks"]["share"] is None
    assert row["compliance"]["open"]["total"] == 0
    nothing = Record.of(Report(A, t("2027-03-15T00:00:00Z"), (), ()), (), ["DEU"])
    out = indicators(nothing)
    assert out["months"] == ["2027-03"]
    assert out["rows"][0]["timeliness"]["share"] is None


def test_month_boundaries_are_utc() -> None:
    assert month_of(t("2027-09-30T23:59:59.999Z")) == "2027-09"
    assert month_of(t("2027-10-01T00:00:00Z")) == "2027-10"
    assert month_of(t("2027-10-01T01:00:00+02:00")) == "2027-09"
    assert month_end("2027-12") == t("2028-01-01T00:00:00Z")
    assert months_between("2027-11", "2028-02") == ["2027-11", "2027-12", "2028-01", "2028-02"]
    # An obligation due at the last millisecond of a month belongs to that month.
    last = t("2027-09-30T23:59:59.999Z")
    rec = Record.of(
        Report(A, t("2027-10-02T00:00:00Z"), (Obligation("o", "DEU", "p", "k", last, "met"),), ()),
        (),
        ["DEU"],
    )
    r = rows(indicators(rec))
    assert r[("DEU", "2027-09")]["timeliness"]["numerator"] == 1
    assert r[("DEU", "2027-10")]["timeliness"]["denominator"] == 0


def test_nearest_rank_percentiles() -> None:
    assert nearest_rank([], 50) is None
    assert nearest_rank([7], 90) == 7
    assert nearest_rank([1, 2, 3, 4], 50) == 2
    assert nearest_rank(list(range(1, 11)), 90) == 9
    assert nearest_rank(list(range(1, 12)), 90) == 10


def test_deterministic_whatever_the_input_order() -> None:
    rec = example()
    shuffled = Record(
        rec.agreement,
        rec.as_of,
        rec.parties,
        tuple(reversed(rec.obligations)),
        tuple(reversed(rec.findings)),
        tuple(reversed(rec.facts)),
    )
    a = json.dumps(indicators(rec), sort_keys=False)
    assert a == json.dumps(indicators(shuffled), sort_keys=False)
    assert a == json.dumps(indicators(example()), sort_keys=False)


def test_only_the_first_reaction_counts_and_facts_after_as_of_are_ignored() -> None:
    deu = frozenset({"DEU"})
    facts = [
        Fact(1, t("2027-05-01T00:00:00Z"), "FRA", "request", A, to=deu, form="evaluation"),
        Fact(2, t("2027-05-01T01:00:00Z"), "DEU", "ack", A, 1, frozenset({"FRA"})),
        Fact(
            3, t("2027-05-02T00:00:00Z"), "DEU", "response", A, 1, frozenset({"FRA"}), outcome="refuse"
        ),
        Fact(
            4, t("2027-05-03T00:00:00Z"), "DEU", "response", A, 1, frozenset({"FRA"}), outcome="accept"
        ),
        Fact(5, t("2027-07-01T00:00:00Z"), "DEU", "notification", A, to_all=True),
    ]
    rec = Record.of(Report(A, t("2027-05-31T00:00:00Z"), (), ()), facts, ["DEU", "FRA"])
    assert len(rec.facts) == 4
    row = rows(indicators(rec))[("DEU", "2027-05")]
    assert row["responsiveness"]["reaction"]["sample"] == 1
    assert row["responsiveness"]["reaction"]["median_ms"] == 3_600_000
    # The first answer was a refusal: an answer given, not a visit accepted.
    assert row["reciprocity"]["FRA"]["gives"] == {
        "notifications": 0,
        "visits_accepted": 0,
        "answers": 1,
        "total": 1,
    }


# ---- from a HubState ----------------------------------------------------------------------

VD = "vienna-document-2011"


def _pub(skey: str) -> bytes:
    return parse_signer_key(skey).public_key


class Log:
    """A HubState folded through its API, as the hub does."""

    def __init__(self) -> None:
        self.sec = generate_key("secretariat.test")[0]
        self.hub = generate_key("hub.test")[0]
        self.state = HubState({VD: bundled(VD)}, _pub(self.sec), _pub(self.hub))
        self.keys: dict[str, str] = {}
        self.ms = t("2027-09-01T00:00:00Z")

    def act(self, pt: str, doc: dict[str, Any], signer: str, after_ms: int = 1000) -> int:
        payload = act_json(doc)
        act = read_act(pt, payload)
        self.state.check(act, [_pub(signer)])
        self.ms += after_ms
        idx = self.state.size
        self.state.apply(act, idx, self.ms, hashlib.sha256(pae(pt, payload)).digest())
        return idx

    def register(self, party: str) -> None:
        skey, vkey = generate_key(f"{party.lower()}.test")
        self.keys[party] = skey
        doc = {
            "act": "party.register",
            "party": party,
            "name": party,
            "agreements": [VD],
            "signing_key": vkey,
            "encryption_key": generate_encryption_key()[1],
        }
        self.act(PT_REGISTRY, doc, self.sec)

    def event(self, party: str, doc: dict[str, Any], after_ms: int = 1000) -> int:
        key = self.sec if party == "secretariat" else self.keys[party]
        return self.act(PT_EVENT, {"agreement": VD, "party": party, **doc}, key, after_ms)

    def ack(self, party: str, entry: int, after_ms: int) -> int:
        return self.act(
            PT_ACK, {"act": "ack", "party": party, "entry": entry}, self.keys[party], after_ms
        )


def test_facts_from_a_hub_state() -> None:
    log = Log()
    for p in ("DEU", "FRA", "POL"):
        log.register(p)
    req = log.event("FRA", {"id": "r1", "type": "request", "kind": "inspection", "to": "DEU"})
    log.event("DEU", {"id": "s1", "type": "response", "request": "r1", "decision": "accept"}, 3_600_000)
    note = log.event("DEU", {"id": "n1", "type": "notification", "form": "flight_notice"})
    log.ack("POL", note, 60_000)
    log.event("DEU", {"id": "n2", "type": "notification", "form": "flight_notice", "to": ["FRA"]})
    gone = {"id": "n3", "type": "notification", "form": "flight_notice"}
    log.event("DEU", gone)
    log.event("DEU", {**gone, "id": "n3-w", "amends": {"id": "n3", "action": "withdraw"}})
    fixed = {"id": "n2-c", "type": "notification", "form": "flight_notice", "to": ["FRA"]}
    log.event("DEU", {**fixed, "amends": {"id": "n2", "action": "correct"}})
    check = log.event(
        "secretariat", {"id": "c1", "type": "request", "kind": "communication_check", "to": "FRA"}
    )
    result = {
        "act": "check.result",
        "agreement": VD,
        "request": "c1",
        "party": "FRA",
        "result": "missed",
    }
    log.act(PT_HUB, {**result, "due": "2027-09-02T00:00:00Z", "answered_by": None}, log.hub)

    facts = facts_from_state(log.state, VD)
    kinds = [(f.kind, f.author) for f in facts]
    assert kinds == [
        ("request", "FRA"),
        ("response", "DEU"),
        ("notification", "DEU"),
        ("ack", "POL"),
        ("notification", "DEU"),  # n2, once, its correction folded in; n3 withdrawn
        ("request", "secretariat"),
        ("check.result", "hub"),
    ]
    by_kind = {f.kind: f for f in facts}
    assert facts[0].to == frozenset({"DEU"}) and facts[0].form == "inspection"
    assert by_kind["response"].ref == req and by_kind["response"].outcome == "accept"
    assert by_kind["check.result"].concerns == "FRA" and by_kind["check.result"].outcome == "missed"
    assert by_kind["check.result"].ref == check
    assert facts[2].to_all and not facts[4].to_all and facts[4].to == frozenset({"FRA"})

    rec = record_from_state(log.state, Report(VD, log.ms, (), ()))
    assert rec.parties == ("DEU", "FRA", "POL")
    r = rows(indicators(rec))
    deu = r[("DEU", "2027-09")]
    assert deu["reciprocity"]["FRA"]["gives"] == {
        "notifications": 2,
        "visits_accepted": 1,
        "answers": 0,
        "total": 3,
    }
    assert deu["reciprocity"]["POL"]["gives"]["notifications"] == 1
    assert deu["responsiveness"]["reaction"]["median_ms"] == 3_600_000
    assert r[("POL", "2027-09")]["responsiveness"]["reaction"]["median_ms"] == 60_000
    assert r[("FRA", "2027-09")]["responsiveness"]["checks"]["share"] == 0.0


# ---- properties -----------------------------------------------------------------------------

PARTIES = ("DEU", "FRA", "POL")
STATUSES = ("pending", "met", "late", "missed", "waived")
START = t("2027-01-01T00:00:00Z")
YEAR = t("2028-01-01T00:00:00Z") - START


@st.composite
def records(draw: st.DrawFn) -> Record:
    times = st.integers(START, START + YEAR - 1)
    obs = tuple(
        Obligation(f"m:{p}:{i}", p, "prov", k, draw(times), s)
        for i, (p, k, s) in enumerate(
            draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(PARTIES),
                        st.sampled_from(("periodic_exchange", "prior_notification")),
                        st.sampled_from(STATUSES),
                    ),
                    max_size=12,
                )
            )
        )
    )
    facts: list[Fact] = []
    for i in range(draw(st.integers(0, 15))):
        author = draw(st.sampled_from(PARTIES))
        kind = draw(st.sampled_from(("request", "notification", "ack", "response")))
        ref = draw(st.integers(0, i - 1)) if i and kind in ("ack", "response") else None
        to = frozenset(draw(st.sets(st.sampled_from(PARTIES)))) - {author}
        prev = facts[-1].ms if facts else START
        ms = prev + draw(st.integers(0, 20 * 86_400_000))
        outcome = draw(st.sampled_from(("accept", "refuse", "answer")))
        form = draw(st.sampled_from(("inspection", "explanation")))
        facts.append(Fact(i, ms, author, kind, A, ref, to, draw(st.booleans()), form, outcome))
    report = Report(A, START + YEAR + 40 * 86_400_000, obs, ())
    return Record.of(report, facts, PARTIES)


def _shares(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "share" in node else []
        for v in node.values():
            found += _shares(v)
        return found
    if isinstance(node, list):
        return [x for v in node for x in _shares(v)]
    return []


@settings(max_examples=60, deadline=None)
@given(records())
def test_every_share_is_in_range_with_consistent_parts(rec: Record) -> None:
    out = indicators(rec)
    for s in _shares(out["rows"]):
        assert 0 <= s["numerator"] <= s["denominator"] == s["sample"]
        if s["denominator"] == 0:
            assert s["share"] is None
        else:
            assert s["share"] == round(s["numerator"] / s["denominator"], 4)
            assert 0.0 <= s["share"] <= 1.0
    for row in out["rows"]:
        t_ = row["timeliness"]
        assert t_["denominator"] == t_["met"] + t_["late"] + t_["missed"]
        reaction = row["responsiveness"]["reaction"]
        assert reaction["sample"] == reaction["acknowledgements"] + reaction["answers"]
        if reaction["sample"]:
            assert 0 <= reaction["median_ms"] <= reaction["p90_ms"]
        for c in row["reciprocity"].values():
            assert c["numerator"] == c["gives"]["total"]
            assert c["denominator"] == c["gives"]["total"] + c["receives"]["total"]


@settings(max_examples=40, deadline=None)
@given(records())
def test_obligations_settled_are_counted_once_across_months(rec: Record) -> None:
    out = indicators(rec)
    settled = sum(r["timeliness"]["denominator"] for r in out["rows"])
    in_span = [o for o in rec.obligations if month_of(o.due) in out["months"]]
    assert settled == sum(1 for o in in_span if o.status in ("met", "late", "missed"))
    given_ = sum(c["gives"]["total"] for r in out["rows"] for c in r["reciprocity"].values())
    received = sum(c["receives"]["total"] for r in out["rows"] for c in r["reciprocity"].values())
    assert given_ == received


@settings(max_examples=80, deadline=None)
@given(records(), st.lists(st.integers(0, 15), max_size=4))
def test_a_fact_book_grown_in_parts_reads_as_the_whole_at_once(rec: Record, cuts: list[int]) -> None:
    """A hub grows each reader's fact book as the log grows: read in any number of parts,
    it gives the indicators of the whole read at once (and of the record's own facts)."""
    whole = indicators(rec)
    book = FactBook(rec.parties)
    start = 0
    for cut in [*sorted(cuts), len(rec.facts)]:
        book.add(rec.facts[start : max(start, cut)])
        start = max(start, cut)
    bare = Record(rec.agreement, rec.as_of, rec.parties, rec.obligations, rec.findings, ())
    assert indicators(bare, book=book) == whole
    recent = indicators(bare, book=book, last=2)  # what the overview reads: the same rows
    assert recent["months"] == whole["months"][-2:]
    assert recent["rows"] == [r for r in whole["rows"] if r["month"] in recent["months"]]
    own = indicators(bare, book=book, rows_of=["FRA"])  # a party's own page: its rows alone
    assert own["rows"] == [r for r in whole["rows"] if r["party"] == "FRA"]
    if rec.facts:
        with pytest.raises(ValueError, match="not after"):
            book.add(rec.facts[-1:])  # read once: never twice
