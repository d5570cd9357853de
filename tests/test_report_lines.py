"""A report's records written straight to JSON text (``json_line``) are exactly what the
json module writes for their ``to_json`` dicts: the same bytes, for any text in them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cbmnet.compliance.report import Finding, Obligation, Report, _encode
from cbmnet.compliance.timeutil import MAX_TIME_MS, MIN_TIME_MS

text = st.text(max_size=40)
times = st.integers(MIN_TIME_MS, MAX_TIME_MS - 1)
evidence = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@given(text, text, text, text, times, st.sampled_from(["pending", "met", "late", "missed", "waived"]),
       st.none() | text, st.lists(text, max_size=4))  # fmt: skip
def test_an_obligation_line_is_its_json(
    oid: str, party: str, provision: str, kind: str, due: int, status: Any, met_by: str | None,
    subjects: list[str],
) -> None:  # fmt: skip
    o = Obligation(oid, party, provision, kind, due, status, met_by, tuple(subjects))
    assert o.json_line() == _encode(o.to_json())


@given(text, text, text, st.lists(text, max_size=4), st.none() | times, text, st.none() | text,
       text, st.none() | st.dictionaries(text, evidence, max_size=4), st.none() | text,
       st.none() | text)  # fmt: skip
def test_a_finding_line_is_its_json(
    code: str, party: str, provision: str, subjects: list[str], due: int | None, message: str,
    period: str | None, measure: str, ev: dict[str, Any] | None, unconfirmed: str | None,
    convention: str | None,
) -> None:  # fmt: skip
    f = Finding(code, party, provision, tuple(subjects), due, message, period, measure, ev,
                unconfirmed, convention)  # fmt: skip
    assert f.json_line() == _encode(f.to_json())


def test_the_report_text_reads_back_as_its_json() -> None:
    o = Obligation('a:"b"', "ALB", "VD11 ¶38", "notify", 0, "missed", None, ("x", "ü\n"))
    f = Finding("notification.late", "ALB", "VD11 ¶38", ("x",), None, "late\t", None, "m",
                {"k": [1, None, "é"]}, "why", None)  # fmt: skip
    rep = Report("vienna-document-2011", 86_400_000, (o,), (f,))
    assert json.loads(rep.dumps()) == rep.to_json()
    assert json.loads(Report("x", 0, (), ()).dumps()) == Report("x", 0, (), ()).to_json()
