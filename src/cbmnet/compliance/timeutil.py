"""Times and durations as the event format and the agreement files write them.

Times are RFC 3339 with an explicit offset; inside the engine they are integer
milliseconds since the Unix epoch (UTC), so comparisons are exact and output is stable.
Durations are ISO 8601 (``P42D``, ``PT48H``, ``PT10M``, ``P1DT12H``); months and years are
not durations here (they vary), agreements name calendar dates for those.
"""

from __future__ import annotations

import bisect
import re
import time
from datetime import UTC, datetime, timedelta

from cbmnet.errors import FormatError
from cbmnet.ledger.entry import format_time_ms

MS_PER_DAY = 86_400_000
MAX_DURATION_MS = 36_525 * MS_PER_DAY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TIME_MS = (datetime(1900, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
MAX_TIME_MS = (datetime(2200, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
"""Event times the engine handles: 1900 to 2199 (the log's own bound is wider:
``ledger.entry.MAX_ENTRY_TIME_MS``)."""
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_time(text: object, what: str) -> int:
    """RFC 3339 with an offset -> epoch milliseconds; anything else names ``what``."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise FormatError(f"{what}: {text!r} is not an RFC 3339 time with an offset")
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as e:
        raise FormatError(f"{what}: {text!r} is not a valid time ({e})") from e
    ms = (dt - _EPOCH) // timedelta(milliseconds=1)  # exact integer arithmetic, floors
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise FormatError(f"{what}: {text!r} is outside the years 1900-2199 cbmnet handles")
    return ms


def format_time(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC (``Z``), milliseconds only when not zero: the
    log's formatter (``ledger.entry.format_time_ms``) without a ``.000``."""
    text = format_time_ms(ms)
    return text if ms % 1000 else text[:-5] + "Z"


def parse_duration(text: str, what: str) -> int:
    """ISO 8601 duration (weeks, days, hours, minutes, seconds) -> milliseconds."""
    m = _DURATION.match(text) if isinstance(text, str) and len(text) < 40 else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise FormatError(f"{what}: {text!r} is not an ISO 8601 duration like P42D or PT48H")
    w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    ms = ((((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s) * 1000
    if ms > MAX_DURATION_MS:
        raise FormatError(f"{what}: {text!r} is longer than 100 years")
    return ms


_YEAR_STARTS = [int(datetime(y, 1, 1, tzinfo=UTC).timestamp()) * 1000 for y in range(1900, 2201)]


def year_of(ms: int) -> int:
    """The UTC calendar year of an instant (a table lookup: this runs per event)."""
    i = bisect.bisect_right(_YEAR_STARTS, ms) - 1
    if 0 <= i < len(_YEAR_STARTS) - 1:
        return 1900 + i
    return time.gmtime(ms // 1000).tm_year


def date_in_year(year: int, month_day: str, what: str) -> int:
    """``"12-15"`` in ``year`` -> that day's 00:00 UTC in epoch ms."""
    try:
        month, day = (int(x) for x in month_day.split("-"))
        return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000
    except ValueError as e:
        raise FormatError(f"{what}: {month_day!r} is not a MM-DD date") from e


PERIODS_IN_YEAR = {"half_year": 2, "quarter": 4, "month": 12}
"""How many of each shorter period a calendar year holds."""


def period_label(kind: str, year: int, index: int) -> str:
    """The label an exchange gives its period: ``2027-H1``, ``2027-Q3``, ``2027-03``."""
    if kind == "half_year":
        return f"{year}-H{index}"
    if kind == "quarter":
        return f"{year}-Q{index}"
    return f"{year}-{index:02d}"


def period_bounds(kind: str, year: int, index: int) -> tuple[int, int]:
    """[first instant, first instant after) of the ``index``-th (from 1) ``kind`` of
    ``year``, in epoch ms, UTC."""
    months = 12 // PERIODS_IN_YEAR[kind]
    first = (index - 1) * months + 1
    start = datetime(year, first, 1, tzinfo=UTC)
    after = datetime(year + (first + months > 12), (first + months - 1) % 12 + 1, 1, tzinfo=UTC)
    return (start - _EPOCH) // timedelta(milliseconds=1), (after - _EPOCH) // timedelta(milliseconds=1)


def add_working_days(ms: int, days: int) -> int:
    """``days`` working days (Monday to Friday, UTC) after ``ms``: an instant on a weekend
    counts from the next Monday at 00:00; each day added that lands on a weekend moves on to
    Monday, at the same time of day."""
    weekday = ((ms // MS_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
    if weekday >= 5:
        ms = (ms // MS_PER_DAY + 7 - weekday) * MS_PER_DAY
    for _ in range(days):
        ms += MS_PER_DAY
        weekday = ((ms // MS_PER_DAY) + 3) % 7
        if weekday >= 5:
            ms += (7 - weekday) * MS_PER_DAY
    return ms
