"""A finding on a figure the treaty text did not settle is never a violation.

The India-Pakistan 1991 exercises agreement's 60-day notice (¶3(b)) was not in the part of
the text that could be read, so the bundled file marks it ``unconfirmed``. A missed
notice under it is reported (the record shows it), at severity ``info``, with the reason;
the same rule with the figure confirmed is a violation.
"""

from __future__ import annotations

from cbmnet.agreements.loader import bundled
from cbmnet.compliance.engine import evaluate
from cbmnet.compliance.events import parse_events
from cbmnet.compliance.timeutil import parse_time
from tests.test_bundled_agreements import MX, exercise, zones_of

MEASURE = "notice-corps-75km"


def _findings(confirmed: bool) -> list[dict[str, object]]:
    agreement = bundled(MX)
    if confirmed:
        measures = tuple(
            m.model_copy(update={"unconfirmed": None}) if m.id == MEASURE else m
            for m in agreement.measures
        )
        agreement = agreement.model_copy(update={"measures": measures})
    events = parse_events([exercise("a", 74, "corps", "2028-11-01T00:00:00Z")])
    report = evaluate(agreement, events, parse_time("2028-12-31T00:00:00Z", "as_of"), zones_of(MX))
    return [f for f in report.to_json()["findings"] if f["measure"] == MEASURE]


def test_a_missed_notice_under_an_unconfirmed_figure_is_info_with_its_reason() -> None:
    assert next(m for m in bundled(MX).measures if m.id == MEASURE).unconfirmed
    (found,) = _findings(confirmed=False)
    assert found["code"] == "notification.missing" and found["party"] == "IND"
    assert found["severity"] == "info"
    assert "rests on an unconfirmed figure" in str(found["message"])


def test_the_same_rule_with_its_figure_confirmed_is_a_violation() -> None:
    (found,) = _findings(confirmed=True)
    assert found["code"] == "notification.missing" and found["severity"] == "violation"
    assert "unconfirmed" not in str(found["message"])
