"""One time formatter for the whole tree: the log's (always milliseconds, as events-v1
writes integration times) and the engine's (milliseconds only when not zero) are one
function, exact to the millisecond across the span the engine reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cbmnet.compliance.timeutil import MAX_TIME_MS, MIN_TIME_MS, format_time, parse_time
from cbmnet.ledger.entry import MAX_ENTRY_TIME_MS, format_time_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(MIN_TIME_MS, MAX_ENTRY_TIME_MS))
def test_the_log_formatter_is_exact(ms: int) -> None:
    at = EPOCH + timedelta(milliseconds=ms)
    assert format_time_ms(ms) == at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(st.integers(MIN_TIME_MS, MAX_TIME_MS - 1))
def test_the_engine_formatter_is_the_log_one_without_a_zero_fraction(ms: int) -> None:
    text = format_time(ms)
    assert parse_time(text, "t") == ms
    assert text == (format_time_ms(ms) if ms % 1000 else format_time_ms(ms)[:-5] + "Z")


def test_edges() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999Z"
    assert format_time_ms(MAX_ENTRY_TIME_MS) == "9999-12-31T23:59:59.999Z"
