"""The log's leaf: an envelope together with the time the log integrated it.

The leaf commits to both, so an inclusion proof also proves "the log held this act at
time T" and nobody can later claim an earlier time. Format (docs/adr/0001-log-format.md)::

    cbmnet/log-entry/v1\\n
    time <unix milliseconds, decimal>\\n
    <the envelope's canonical JSON bytes>
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from cbmnet.errors import FormatError
from cbmnet.ledger.encoding import parse_uint
from cbmnet.ledger.merkle import leaf_hash

ENTRY_HEADER = b"cbmnet/log-entry/v1\n"
MAX_ENTRY_TIME_MS = 253402300799999
"""9999-12-31T23:59:59.999Z: the latest integration time the entry format carries (the
engine handles a narrower span of event times: ``compliance.timeutil.MAX_TIME_MS``)."""


@dataclass(frozen=True)
class LogEntry:
    integrated_ms: int
    envelope: bytes

    def encode(self) -> bytes:
        return encode_entry(self.integrated_ms, self.envelope)

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())

    @property
    def integrated_at(self) -> str:
        return format_time_ms(self.integrated_ms)


def encode_entry(integrated_ms: int, envelope: bytes) -> bytes:
    if not 0 <= integrated_ms <= MAX_ENTRY_TIME_MS:
        raise FormatError(f"log entry: integration time {integrated_ms} ms is out of range")
    return ENTRY_HEADER + b"time %d\n" % integrated_ms + envelope


def decode_entry(data: bytes) -> LogEntry:
    if not data.startswith(ENTRY_HEADER):
        raise FormatError("log entry: does not start with cbmnet/log-entry/v1")
    rest = data[len(ENTRY_HEADER) :]
    line, sep, envelope = rest.partition(b"\n")
    if not sep or not line.startswith(b"time "):
        raise FormatError("log entry: missing time line")
    ms = parse_uint(line[5:].decode("ascii", "replace"), "log entry: time", MAX_ENTRY_TIME_MS)
    return LogEntry(ms, envelope)


def format_time_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form events-v1 uses: cbmnet's one time
    formatter (``compliance.timeutil.format_time`` drops a ``.000``). Integer arithmetic,
    so an instant is never rounded into the next second; the date is looked up per day
    (a report formats tens of thousands of times over a few hundred days)."""
    day, rest = divmod(ms, 86_400_000)
    second, milli = divmod(rest, 1000)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


@functools.lru_cache(maxsize=4096)
def _date(day: int) -> str:
    t = time.gmtime(day * 86_400)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
