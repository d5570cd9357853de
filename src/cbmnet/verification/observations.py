"""Sensor observations (``events-v1.md``, Observations): columnar, validated, streamed.

An observation is one detection: time, lon/lat, sensor (id and kind), object class,
count, confidence, optional track. Files are CSV (header row), GeoJSON (a FeatureCollection
of Points) or Parquet. Rows are kept as numpy arrays in chunks (:class:`ObservationBatch`),
never as one Python object per row, so 50 million observations stream through in bounded
memory.

Validation is strict: a malformed row stops everything with the file, the row (from 1,
the header not counted) and the field. Because files are read in chunks, a bad row late in
a file is found after earlier chunks were handed on; :func:`cbmnet.verification.reconcile`
produces nothing until the whole file has been read, so nothing of a bad file is used.

Strings (ids, track ids) are hashed to 64 bits rather than interned; sensor ids, which are
few, are numbered in order of first appearance (the same order on every read of a file).
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from cbmnet.compliance.timeutil import MAX_TIME_MS, MIN_TIME_MS, parse_time
from cbmnet.errors import FormatError
from cbmnet.verification.columnar import hash_strings

SENSOR_KINDS: tuple[str, ...] = ("aerial", "satellite", "ground", "seismic", "open_source")
OBJECT_CLASSES: tuple[str, ...] = ("troops", "battle_tank", "acv", "artillery", "aircraft", "ship")
SIZE_KEYS: tuple[str, ...] = ("troops", "battle_tanks", "acvs", "artillery", "aircraft", "ships")
"""The events-v1 size key of each object class, in the order of :data:`OBJECT_CLASSES`."""
COLUMNS: tuple[str, ...] = (
    "id",
    "time",
    "lon",
    "lat",
    "sensor_id",
    "sensor_kind",
    "object_class",
    "count",
    "confidence",
    "track_id",
)
REQUIRED: tuple[str, ...] = COLUMNS[1:9]
CHUNK_ROWS = 1 << 20
MAX_STRING_BYTES = 256
MAX_COUNT = 1_000_000_000
MAX_SENSORS = 1 << 20
MAX_GEOJSON_BYTES = 1 << 30
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339_RE = re.compile(_RFC3339)


class IdColumn(Protocol):
    """The observation ids of one batch; only looked up for evidence, a few at a time."""

    def take(self, rows: NDArray[np.intp]) -> list[str]: ...


@dataclass(frozen=True)
class ListIds:
    """Ids held as a Python sequence (tests and small in-memory sets)."""

    values: Sequence[str]

    def take(self, rows: NDArray[np.intp]) -> list[str]:
        return [self.values[int(i)] for i in rows]


@dataclass(frozen=True, eq=False)
class ObservationBatch:
    """A chunk of validated observations as arrays (one entry per row).

    ``offset`` is the index (from 0) of the first row in the whole source. ``sensor``
    indexes ``sensor_names``; ``kind`` and ``object_class`` index :data:`SENSOR_KINDS` and
    :data:`OBJECT_CLASSES`; ``track`` is a 64-bit hash of the track id (0: none). Without
    ``ids`` an observation's id is its row number from 1.
    """

    offset: int
    time: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    sensor: NDArray[np.int32]
    kind: NDArray[np.uint8]
    object_class: NDArray[np.uint8]
    count: NDArray[np.int64]
    confidence: NDArray[np.float64]
    track: NDArray[np.uint64]
    sensor_names: tuple[str, ...]
    ids: IdColumn | None = None

    def __len__(self) -> int:
        return len(self.time)

    def id_strings(self, rows: NDArray[np.intp]) -> list[str]:
        """The ids of the batch-local ``rows``."""
        if self.ids is None:
            return [str(self.offset + int(i) + 1) for i in rows]
        return self.ids.take(rows)

    def take(self, rows: NDArray[np.intp]) -> ObservationBatch:
        """A sub-batch of ``rows`` (its ids still resolve; its offset is meaningless)."""
        return ObservationBatch(
            self.offset,
            self.time[rows],
            self.lon[rows],
            self.lat[rows],
            self.sensor[rows],
            self.kind[rows],
            self.object_class[rows],
            self.count[rows],
            self.confidence[rows],
            self.track[rows],
            self.sensor_names,
            _SubIds(self, rows),
        )


@dataclass(frozen=True, eq=False)
class _SubIds:
    parent: ObservationBatch
    rows: NDArray[np.intp]

    def take(self, rows: NDArray[np.intp]) -> list[str]:
        return self.parent.id_strings(self.rows[rows])


class ObservationSource(Protocol):
    """Something that yields validated batches, in the same order each time it is asked.

    Reconciliation reads a source twice when it has findings (the second pass gathers
    their evidence), so a source must be re-readable and unchanged between reads.
    """

    def batches(self) -> Iterator[ObservationBatch]: ...


# ---- validation of one chunk, whatever the file format -----------------------------------


@dataclass
class _Chunk:
    """One chunk's columns after decoding, before checking: Python-free arrays."""

    row0: int  # row number (from 1) of the first row
    time: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    sensor_id: Any  # pyarrow string array
    sensor_kind: Any
    object_class: Any
    count: NDArray[np.int64]
    confidence: NDArray[np.float64]
    track_id: Any | None
    id: Any | None


class _Encoder:
    """Checks chunks and turns them into batches; remembers sensors and id hashes."""

    def __init__(self, source: str, has_ids: bool) -> None:
        self.source = source
        self.has_ids = has_ids
        self.sensors: dict[str, int] = {}
        self.sensor_names: list[str] = []
        self.id_hashes: list[NDArray[np.uint64]] = []
        self.rows = 0

    def fail(self, row: int, fld: str, msg: str, ident: str | None = None) -> FormatError:
        label = f"{self.source}, row {row}" + (f" (id {ident!r})" if ident else "")
        return FormatError(f"{label}, field {fld!r}: {msg}")

    def batch(self, ch: _Chunk) -> ObservationBatch:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(ch.time)
        problems: list[tuple[int, str, str]] = []

        def first(bad: NDArray[np.bool_], fld: str, msg: str | Callable[[int], str]) -> None:
            idx = np.flatnonzero(bad)
            if len(idx):
                i = int(idx[0])
                problems.append((i, fld, msg(i) if callable(msg) else msg))

        first(~((ch.time >= MIN_TIME_MS) & (ch.time < MAX_TIME_MS)), "time", "outside 1900-2199")
        for name, arr, lim in (("lon", ch.lon, 180.0), ("lat", ch.lat, 90.0)):
            bad = ~(np.isfinite(arr) & (np.abs(arr) <= lim))
            first(bad, name, _range_msg(arr, lim))
        first(ch.count < 1, "count", lambda i: f"{int(ch.count[i])} is not an integer >= 1")
        first(ch.count > MAX_COUNT, "count", f"larger than {MAX_COUNT}")
        conf_bad = ~(np.isfinite(ch.confidence) & (ch.confidence >= 0) & (ch.confidence <= 1))
        first(conf_bad, "confidence", lambda i: f"{ch.confidence[i]!r} is not a number in [0, 1]")
        kinds = _vocab(ch.sensor_kind, SENSOR_KINDS)
        first(kinds < 0, "sensor_kind", lambda i: _not_one_of(ch.sensor_kind[i], SENSOR_KINDS))
        classes = _vocab(ch.object_class, OBJECT_CLASSES)
        first(classes < 0, "object_class", lambda i: _not_one_of(ch.object_class[i], OBJECT_CLASSES))
        sensor_len = pc.binary_length(ch.sensor_id).to_numpy(zero_copy_only=False)
        first(sensor_len == 0, "sensor_id", "missing")
        first(sensor_len > MAX_STRING_BYTES, "sensor_id", f"longer than {MAX_STRING_BYTES} bytes")
        track = np.zeros(n, dtype=np.uint64)
        if ch.track_id is not None:
            track_len = pc.binary_length(ch.track_id).to_numpy(zero_copy_only=False)
            first(track_len > MAX_STRING_BYTES, "track_id", f"longer than {MAX_STRING_BYTES} bytes")
            track = _hash_arrow(ch.track_id)
        id_hash = None
        if ch.id is not None:
            id_len = pc.binary_length(ch.id).to_numpy(zero_copy_only=False)
            first(id_len == 0, "id", "missing")
            first(id_len > MAX_STRING_BYTES, "id", f"longer than {MAX_STRING_BYTES} bytes")
            id_hash = _hash_arrow(ch.id)
        if problems:
            i, fld, msg = min(problems, key=lambda p: p[0])  # the earliest row first
            ident = None
            if ch.id is not None and fld != "id":
                ident = ch.id[i].as_py()
            raise self.fail(ch.row0 + i, fld, msg, ident)
        enc = pc.dictionary_encode(ch.sensor_id)
        table = np.empty(len(enc.dictionary), dtype=np.int32)
        for k, name in enumerate(enc.dictionary.to_pylist()):
            code = self.sensors.get(name)
            if code is None:
                if len(self.sensor_names) >= MAX_SENSORS:
                    raise self.fail(ch.row0, "sensor_id", f"more than {MAX_SENSORS} distinct sensors")
                code = self.sensors[name] = len(self.sensor_names)
                self.sensor_names.append(name)
            table[k] = code
        sensor = table[enc.indices.to_numpy(zero_copy_only=False)]
        ids: IdColumn | None = None
        if id_hash is not None:
            self.id_hashes.append(id_hash)
            ids = _ArrowIds(pa.array(ch.id) if not isinstance(ch.id, pa.Array) else ch.id)
        batch = ObservationBatch(
            offset=ch.row0 - 1,
            time=ch.time,
            lon=ch.lon,
            lat=ch.lat,
            sensor=sensor,
            kind=kinds.astype(np.uint8),
            object_class=classes.astype(np.uint8),
            count=ch.count,
            confidence=ch.confidence,
            track=track,
            sensor_names=tuple(self.sensor_names),
            ids=ids,
        )
        self.rows += n
        return batch

    def duplicate_candidates(self) -> list[tuple[int, int]]:
        """Pairs (earlier row, later row), by row number, whose ids hash alike."""
        if not self.id_hashes:
            return []
        h = np.concatenate(self.id_hashes)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        same = np.flatnonzero(hs[1:] == hs[:-1])
        pairs = [(int(order[k]) + 1, int(order[k + 1]) + 1) for k in same[:1000]]
        return sorted(pairs, key=lambda p: p[1])


@dataclass(frozen=True, eq=False)
class _ArrowIds:
    arr: Any  # pyarrow string array

    def take(self, rows: NDArray[np.intp]) -> list[str]:
        import pyarrow as pa

        return [str(x) for x in self.arr.take(pa.array(rows, type=pa.int64())).to_pylist()]


def _range_msg(arr: NDArray[np.float64], lim: float) -> Callable[[int], str]:
    return lambda i: f"{float(arr[i])!r} is not a number in [-{lim:g}, {lim:g}]"


def _not_one_of(value: Any, allowed: tuple[str, ...]) -> str:
    v = value.as_py() if hasattr(value, "as_py") else value
    if v in (None, ""):
        return "missing"
    return f"{v!r} is not one of {', '.join(allowed)}"


def _vocab(arr: Any, allowed: tuple[str, ...]) -> NDArray[np.int64]:
    """Codes into ``allowed`` for a string array; -1 where the value is not in it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = pc.index_in(arr, value_set=pa.array(allowed, type=pa.string()))
    return np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _hash_arrow(arr: Any) -> NDArray[np.uint64]:
    """64-bit hashes of a pyarrow string array through its buffers (no Python strings)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = arr.fill_null("")
    if pa.types.is_large_string(arr.type):
        odt: Any = np.int64
    else:
        arr = arr.cast(pa.string())
        odt = np.int32
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=odt)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return hash_strings(offsets, data)


def _row_fail(enc: _Encoder, row: int, ident: str | None) -> Callable[[str, str], FormatError]:
    return lambda fld, msg: enc.fail(row, fld, msg, ident if fld != "id" else None)


def _check_duplicates(enc: _Encoder, ids_at: Callable[[list[int]], dict[int, str]]) -> None:
    """Raise for the first true duplicate id; hash collisions are confirmed on the strings."""
    pairs = enc.duplicate_candidates()
    if not pairs:
        return
    strings = ids_at(sorted({r for p in pairs for r in p}))
    for a, b in pairs:
        if strings.get(a) == strings.get(b):
            raise enc.fail(b, "id", f"duplicates row {a}", strings.get(b))


# ---- CSV ----------------------------------------------------------------------------------


def _bisect_cast(arr: Any, typ: Any) -> tuple[Any, int | None]:
    """Cast a pyarrow array; on failure find the first row that does not convert."""
    import pyarrow as pa

    try:
        return arr.cast(typ), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lo, hi = 0, len(arr)
    while hi - lo > 1:  # invariant: arr[lo:hi] holds a bad value
        mid = (lo + hi) // 2
        try:
            arr.slice(lo, mid - lo).cast(typ)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return None, lo


class _Strings:
    """Column decoding from text (CSV and string-typed Parquet columns)."""

    def __init__(self, enc: _Encoder, row0: int, ids: Any | None = None) -> None:
        self.enc = enc
        self.row0 = row0
        self.ids = ids

    def fail(self, i: int, fld: str, msg: str) -> FormatError:
        ident = None
        if self.ids is not None and fld != "id":
            v = self.ids[i].as_py()
            ident = v if isinstance(v, str) else None
        return self.enc.fail(self.row0 + i, fld, msg, ident)

    def text(self, arr: Any, fld: str) -> Any:
        import pyarrow as pa

        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            out, bad = _bisect_cast(arr, pa.string())
            if bad is not None:
                raise self.fail(bad, fld, "is not valid UTF-8")
            return out
        return arr

    def required(self, arr: Any, fld: str) -> Any:
        import pyarrow.compute as pc

        arr = self.text(arr, fld)
        empty = pc.equal(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(empty)
        if len(idx):
            raise self.fail(int(idx[0]), fld, "missing")
        return arr

    def number(self, arr: Any, fld: str, typ: Any, what: str) -> NDArray[Any]:
        arr = self.required(arr, fld)
        out, bad = _bisect_cast(arr, typ)
        if bad is not None:
            raise self.fail(bad, fld, f"{arr[bad].as_py()!r} is not {what}")
        return np.asarray(out.to_numpy(zero_copy_only=False))

    def time(self, arr: Any, fld: str) -> NDArray[np.int64]:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = self.required(arr, fld)
        ok = pc.match_substring_regex(arr, _RFC3339).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(~ok)
        if len(idx):
            v = arr[int(idx[0])].as_py()
            raise self.fail(int(idx[0]), fld, f"{v!r} is not an RFC 3339 time with an offset")
        up = pc.utf8_upper(arr)
        ts, bad = _bisect_cast(up, pa.timestamp("ns", "UTC"))
        if bad is not None:
            v = arr[bad].as_py()
            try:
                parse_time(v, "time")  # its message says why (a day that does not exist …)
            except FormatError as e:
                raise self.fail(bad, fld, str(e).removeprefix("time: ")) from None
            raise self.fail(bad, fld, f"{v!r} is not a valid time")
        ns: NDArray[np.int64] = np.asarray(ts.cast(pa.int64()).to_numpy(zero_copy_only=False))
        return np.floor_divide(ns, 1_000_000).astype(np.int64)


@dataclass
class CsvObservations:
    """Observations in a CSV file with a header row (extra columns are ignored)."""

    path: Path
    chunk_bytes: int = 32 << 20
    _stat: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def _header(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                raw = f.readline(1 << 20)
        except OSError as e:
            raise FormatError(f"{self.path}: {e.strerror}") from e
        try:
            line = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise FormatError(f"{self.path}, header: not valid UTF-8") from e
        if not line.strip():
            raise FormatError(f"{self.path}: empty (a CSV file needs a header row)")
        try:
            names = next(csv.reader([line]))
        except csv.Error as e:  # a quoted name past the csv module's field limit
            raise FormatError(f"{self.path}, header: not a CSV header row ({e})") from None
        names = [n.strip() for n in names]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FormatError(f"{self.path}, header: column {dup[0]!r} appears twice")
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise FormatError(f"{self.path}, header: column {missing[0]!r} missing")
        return names

    def batches(self) -> Iterator[ObservationBatch]:
        yield from self._read(check_dups=True)

    def _read(self, check_dups: bool) -> Iterator[ObservationBatch]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        names = self._header()
        stat = _stat(self.path)
        if check_dups:
            if self._stat is not None and self._stat != stat:
                raise FormatError(f"{self.path}: changed while being read")
            self._stat = stat
        present = [c for c in COLUMNS if c in names]
        enc = _Encoder(str(self.path), "id" in present)
        bad_rows: list[tuple[int | None, int, int]] = []

        def on_invalid(row: Any) -> str:
            bad_rows.append((row.number, row.expected_columns, row.actual_columns))
            return "error"

        try:
            reader = pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(use_threads=False, block_size=self.chunk_bytes),
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(
                    include_columns=present,
                    column_types=dict.fromkeys(names, pa.binary()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            row0 = 1
            for rb in reader:
                if rb.num_rows == 0:
                    continue
                yield enc.batch(self._chunk(enc, rb, row0))
                row0 += rb.num_rows
        except pa.ArrowInvalid as e:
            if bad_rows:
                line, want, got = bad_rows[0]
                where = f"row {line - 1}" if line is not None else "a row"
                raise FormatError(
                    f"{self.path}, {where}: {got} fields where the header has {want}"
                ) from None
            raise FormatError(f"{self.path}: not a readable CSV file ({e})") from None
        except OSError as e:
            raise FormatError(f"{self.path}: {e}") from None
        if check_dups:
            _check_duplicates(enc, lambda rows: _ids_at(self._read(False), rows))

    def _chunk(self, enc: _Encoder, rb: Any, row0: int) -> _Chunk:
        import pyarrow as pa

        col = {name: rb.column(name) for name in rb.schema.names}
        ids = _Strings(enc, row0).required(col["id"], "id") if "id" in col else None
        s = _Strings(enc, row0, ids)
        return _Chunk(
            row0=row0,
            time=s.time(col["time"], "time"),
            lon=s.number(col["lon"], "lon", pa.float64(), "a number"),
            lat=s.number(col["lat"], "lat", pa.float64(), "a number"),
            sensor_id=s.required(col["sensor_id"], "sensor_id"),
            sensor_kind=s.text(col["sensor_kind"], "sensor_kind"),
            object_class=s.text(col["object_class"], "object_class"),
            count=s.number(col["count"], "count", pa.int64(), "an integer >= 1"),
            confidence=s.number(col["confidence"], "confidence", pa.float64(), "a number in [0, 1]"),
            track_id=s.text(col["track_id"], "track_id") if "track_id" in col else None,
            id=ids,
        )


def _ids_at(batches: Iterator[ObservationBatch], rows: list[int]) -> dict[int, str]:
    want = np.asarray(sorted(rows), dtype=np.int64) - 1
    out: dict[int, str] = {}
    for b in batches:
        lo, hi = np.searchsorted(want, [b.offset, b.offset + len(b)])
        if hi > lo:
            local = (want[lo:hi] - b.offset).astype(np.intp)
            for r, s in zip(local, b.id_strings(local), strict=True):
                out[int(r) + b.offset + 1] = s
    return out


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise FormatError(f"{path}: {e.strerror}") from e
    return st.st_size, st.st_mtime_ns


# ---- Parquet ------------------------------------------------------------------------------


@dataclass
class ParquetObservations:
    """Observations in a Parquet file; column types are checked before any row is read.

    Accepted types: strings (or dictionary-encoded strings) for the text columns;
    ``time`` a timestamp with a time zone, or an RFC 3339 string; ``lon``, ``lat``,
    ``confidence`` floating point or integer; ``count`` an integer type.
    """

    path: Path
    chunk_rows: int = CHUNK_ROWS
    _stat: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def _open(self) -> tuple[Any, list[str]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as e:
            raise FormatError(f"{self.path}: not a readable Parquet file ({e})") from None
        schema = pf.schema_arrow
        names = list(schema.names)
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise FormatError(f"{self.path}, column {missing[0]!r}: missing")
        for c in COLUMNS:
            if c not in names:
                continue
            t = schema.field(c).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            ok = {
                "time": (pa.types.is_timestamp(t) and t.tz is not None)
                or pa.types.is_string(t)
                or pa.types.is_large_string(t),
                "lon": pa.types.is_floating(t) or pa.types.is_integer(t),
                "lat": pa.types.is_floating(t) or pa.types.is_integer(t),
                "confidence": pa.types.is_floating(t) or pa.types.is_integer(t),
                "count": pa.types.is_integer(t),
            }.get(c, pa.types.is_string(t) or pa.types.is_large_string(t))
            if not ok:
                want = {
                    "time": "a timestamp with a time zone, or RFC 3339 strings",
                    "count": "an integer type",
                    "lon": "a number type",
                    "lat": "a number type",
                    "confidence": "a number type",
                }.get(c, "strings")
                raise FormatError(f"{self.path}, column {c!r}: type {t} where {want} is needed")
        return pf, [c for c in COLUMNS if c in names]

    def batches(self) -> Iterator[ObservationBatch]:
        yield from self._read(check_dups=True)

    def _read(self, check_dups: bool) -> Iterator[ObservationBatch]:
        import pyarrow as pa

        pf, present = self._open()
        stat = _stat(self.path)
        if check_dups:
            if self._stat is not None and self._stat != stat:
                raise FormatError(f"{self.path}: changed while being read")
            self._stat = stat
        enc = _Encoder(str(self.path), "id" in present)
        row0 = 1
        try:
            for rb in pf.iter_batches(batch_size=self.chunk_rows, columns=present):
                if rb.num_rows == 0:
                    continue
                yield enc.batch(self._chunk(enc, rb, row0))
                row0 += rb.num_rows
        except (OSError, pa.ArrowException) as e:
            raise FormatError(f"{self.path}: not a readable Parquet file ({e})") from None
        if check_dups:
            _check_duplicates(enc, lambda rows: _ids_at(self._read(False), rows))

    def _chunk(self, enc: _Encoder, rb: Any, row0: int) -> _Chunk:
        import pyarrow as pa

        col: dict[str, Any] = {}
        for name in rb.schema.names:
            arr = rb.column(name)
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            col[name] = arr
        s = _Strings(enc, row0, col.get("id"))
        for name, arr in col.items():
            if arr.null_count and name != "track_id":
                i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                raise s.fail(i, name, "missing")
        t = col["time"]
        if pa.types.is_timestamp(t.type):
            ns = t.cast(pa.timestamp("ns", "UTC"), safe=False).cast(pa.int64())
            time = np.floor_divide(np.asarray(ns.to_numpy(zero_copy_only=False)), 1_000_000)
            time = time.astype(np.int64)
        else:
            time = s.time(t, "time")
        count = np.asarray(col["count"].to_numpy(zero_copy_only=False))
        if count.dtype.kind == "u" and len(count) and int(count.max()) > MAX_COUNT:
            count = np.minimum(count, MAX_COUNT + 1)
        return _Chunk(
            row0=row0,
            time=time,
            lon=np.asarray(col["lon"].to_numpy(zero_copy_only=False), dtype=np.float64),
            lat=np.asarray(col["lat"].to_numpy(zero_copy_only=False), dtype=np.float64),
            sensor_id=col["sensor_id"],
            sensor_kind=col["sensor_kind"],
            object_class=col["object_class"],
            count=count.astype(np.int64),
            confidence=np.asarray(col["confidence"].to_numpy(zero_copy_only=False), dtype=np.float64),
            track_id=col.get("track_id"),
            id=col.get("id"),
        )


# ---- GeoJSON and in-memory rows ------------------------------------------------------------


@dataclass
class RowObservations:
    """Observations given as Python records (dicts with the spec's columns).

    For GeoJSON and for tests; not for large sets (each record is a Python object). Rows
    are checked with the same rules as the files.
    """

    records: Sequence[dict[str, Any]]
    source: str = "observations"
    chunk_rows: int = CHUNK_ROWS
    has_ids: bool | None = None
    _batches: list[ObservationBatch] | None = field(default=None, init=False, repr=False)

    def batches(self) -> Iterator[ObservationBatch]:
        if self._batches is None:
            self._batches = list(self._build())
        yield from self._batches

    def _build(self) -> Iterator[ObservationBatch]:
        has_ids = self.has_ids
        if has_ids is None:
            has_ids = any(r.get("id") is not None for r in self.records)
        enc = _Encoder(self.source, has_ids)
        for lo in range(0, len(self.records), self.chunk_rows):
            yield enc.batch(self._chunk(enc, lo, has_ids))
        ids = {i + 1: str(r.get("id")) for i, r in enumerate(self.records)} if has_ids else {}
        _check_duplicates(enc, lambda rows: {r: ids[r] for r in rows})

    def _chunk(self, enc: _Encoder, lo: int, has_ids: bool) -> _Chunk:
        import pyarrow as pa

        recs = self.records[lo : lo + self.chunk_rows]
        row0 = lo + 1
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for k, r in enumerate(recs):
            rid = r.get("id")
            fail = _row_fail(enc, row0 + k, rid if isinstance(rid, str) else None)
            for c in COLUMNS:
                v = r.get(c)
                if v is None:
                    if c in REQUIRED or (c == "id" and has_ids):
                        raise fail(c, "missing")
                    v = ""
                elif c in ("lon", "lat", "confidence"):
                    if not isinstance(v, int | float) or isinstance(v, bool):
                        raise fail(c, f"{v!r} is not a number")
                    try:
                        v = float(v)
                    except OverflowError:  # a JSON integer of hundreds of digits
                        raise fail(c, "is out of range") from None
                elif c == "count":
                    if isinstance(v, float) and v.is_integer():
                        v = int(v)
                    if not isinstance(v, int) or isinstance(v, bool):
                        raise fail(c, f"{v!r} is not an integer >= 1")
                    if v > MAX_COUNT:
                        raise fail(c, f"larger than {MAX_COUNT}")
                    if v < 1:  # checked here too: a huge negative one does not fit int64
                        raise fail(
                            c, f"{v if v > -MAX_COUNT else 'a huge negative'} is not an integer >= 1"
                        )
                elif c == "time":
                    if not isinstance(v, str) or not _RFC3339_RE.match(v):
                        raise fail(c, f"{v!r} is not an RFC 3339 time with an offset")
                    try:
                        v = parse_time(v, "time")
                    except FormatError as e:
                        raise fail(c, str(e).removeprefix("time: ")) from None
                elif not isinstance(v, str):
                    raise fail(c, f"{v!r} is not a string")
                else:
                    try:
                        v.encode("utf-8")
                    except UnicodeEncodeError:
                        raise fail(c, "is not valid Unicode") from None
                    if c == "id" and not v:
                        raise fail(c, "missing")
                cols[c].append(v)
        return _Chunk(
            row0=row0,
            time=np.asarray(cols["time"], dtype=np.int64),
            lon=np.asarray(cols["lon"], dtype=np.float64),
            lat=np.asarray(cols["lat"], dtype=np.float64),
            sensor_id=pa.array(cols["sensor_id"], type=pa.string()),
            sensor_kind=pa.array(cols["sensor_kind"], type=pa.string()),
            object_class=pa.array(cols["object_class"], type=pa.string()),
            count=np.asarray(cols["count"], dtype=np.int64),
            confidence=np.asarray(cols["confidence"], dtype=np.float64),
            track_id=pa.array(cols["track_id"], type=pa.string()),
            id=pa.array(cols["id"], type=pa.string()) if has_ids else None,
        )


def geojson_records(text: str, source: str) -> list[dict[str, Any]]:
    """The rows of a GeoJSON FeatureCollection of Points (properties hold the columns)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{source}: not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise FormatError(f"{source}: expected a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise FormatError(f"{source}, field 'features': must be a list of Features")
    out: list[dict[str, Any]] = []
    for k, f in enumerate(feats, start=1):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise FormatError(f"{source}, row {k}: not a GeoJSON Feature")
        g = f.get("geometry")
        if not isinstance(g, dict) or g.get("type") != "Point":
            got = g.get("type") if isinstance(g, dict) else type(g).__name__
            raise FormatError(f"{source}, row {k}, field 'geometry': a Point is needed, not {got}")
        c = g.get("coordinates")
        if not (
            isinstance(c, list)
            and 2 <= len(c) <= 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in c)
        ):
            raise FormatError(f"{source}, row {k}, field 'geometry': coordinates must be [lon, lat]")
        props = f.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise FormatError(f"{source}, row {k}, field 'properties': must be an object")
        for c_name in ("lon", "lat"):
            if c_name in props:
                raise FormatError(
                    f"{source}, row {k}, field {c_name!r}: give the position as the Point's coordinates"
                )
        rec = dict(props)
        rec["lon"], rec["lat"] = c[0], c[1]
        if (
            rec.get("id") is None
            and isinstance(f.get("id"), str | int)
            and not isinstance(f.get("id"), bool)
        ):
            rec["id"] = str(f["id"])
        out.append(rec)
    return out


BATCH_SUFFIXES = {"csv": ".csv", "geojson": ".geojson", "parquet": ".parquet"}
"""A logged batch's ``format`` and the file suffix its reader goes by."""


@contextmanager
def observations_in(data: bytes, fmt: str, what: str) -> Iterator[ObservationSource]:
    """A source over a batch file held in memory (a logged batch's rows), named ``what``
    in errors. The readers take paths, so the bytes sit in a private temporary file for
    as long as the source is read."""
    suffix = BATCH_SUFFIXES.get(fmt)
    if suffix is None:
        raise FormatError(f"{what}: format {fmt!r} is not one of {', '.join(BATCH_SUFFIXES)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"batch{suffix}"
        path.write_bytes(data)
        try:
            yield open_observations(path)
        except FormatError as e:
            raise FormatError(str(e).replace(str(path), what)) from None


def open_observations(path: str | Path) -> ObservationSource:
    """A source for a file, by its extension: .csv, .geojson/.json, .parquet/.pq."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise FormatError(f"{p}: no such file")
    if suffix == ".csv":
        return CsvObservations(p)
    if suffix in (".parquet", ".pq"):
        return ParquetObservations(p)
    if suffix in (".geojson", ".json"):
        size = p.stat().st_size
        if size > MAX_GEOJSON_BYTES:
            raise FormatError(f"{p}: larger than {MAX_GEOJSON_BYTES} bytes (use Parquet for large sets)")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{p}: not valid UTF-8 (at byte {e.start})") from None
        except OSError as e:
            raise FormatError(f"{p}: {e.strerror}") from None
        return RowObservations(geojson_records(text, str(p)), str(p))
    raise FormatError(f"{p}: unknown observations format (use .csv, .geojson or .parquet)")


def arrays_source(
    *,
    time: NDArray[np.int64],
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    sensor: NDArray[np.int32],
    sensor_names: Sequence[str],
    kind: NDArray[np.uint8],
    object_class: NDArray[np.uint8],
    count: NDArray[np.int64],
    confidence: NDArray[np.float64],
    track: NDArray[np.uint64] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ArraySource:
    """A source over arrays already encoded (benchmarks, generators); ids are row numbers."""
    n = len(time)
    trk = track if track is not None else np.zeros(n, dtype=np.uint64)
    batches = [
        ObservationBatch(
            lo,
            time[lo : lo + chunk_rows],
            lon[lo : lo + chunk_rows],
            lat[lo : lo + chunk_rows],
            sensor[lo : lo + chunk_rows],
            kind[lo : lo + chunk_rows],
            object_class[lo : lo + chunk_rows],
            count[lo : lo + chunk_rows],
            confidence[lo : lo + chunk_rows],
            trk[lo : lo + chunk_rows],
            tuple(sensor_names),
        )
        for lo in range(0, n, chunk_rows)
    ]
    _check_arrays(batches)
    return ArraySource(batches)


def _check_arrays(batches: Sequence[ObservationBatch]) -> None:
    for b in batches:
        bad = (
            (b.time < MIN_TIME_MS)
            | (b.time >= MAX_TIME_MS)
            | ~np.isfinite(b.lon)
            | ~np.isfinite(b.lat)
            | (np.abs(b.lon) > 180)
            | (np.abs(b.lat) > 90)
            | (b.count < 1)
            | (b.count > MAX_COUNT)
            | ~((b.confidence >= 0) & (b.confidence <= 1))
            | (b.kind >= len(SENSOR_KINDS))
            | (b.object_class >= len(OBJECT_CLASSES))
            | (b.sensor < 0)
            | (b.sensor >= len(b.sensor_names))
        )
        idx = np.flatnonzero(bad)
        if len(idx):
            raise FormatError(f"arrays, row {b.offset + int(idx[0]) + 1}: a value is out of range")


@dataclass(frozen=True)
class ArraySource:
    """Batches held in memory."""

    items: Sequence[ObservationBatch]

    def batches(self) -> Iterator[ObservationBatch]:
        yield from self.items


def total_rows(source: ObservationSource) -> int:
    return sum(len(b) for b in source.batches())


__all__ = [
    "COLUMNS",
    "OBJECT_CLASSES",
    "SENSOR_KINDS",
    "SIZE_KEYS",
    "ArraySource",
    "CsvObservations",
    "ListIds",
    "ObservationBatch",
    "ObservationSource",
    "ParquetObservations",
    "RowObservations",
    "arrays_source",
    "geojson_records",
    "open_observations",
]
