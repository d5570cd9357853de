"""Observation files: every kind of malformed row is refused with file, row and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError
from cbmnet.verification.observations import (
    OBJECT_CLASSES,
    SENSOR_KINDS,
    CsvObservations,
    ObservationBatch,
    ParquetObservations,
    RowObservations,
    open_observations,
)
from tests.scenario_gen import write_csv, write_geojson, write_parquet

HEADER = "id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence,track_id"
GOOD = "a1,2027-09-10T06:00:00Z,21.2,47.0,SAT-1,satellite,troops,100,0.9,"


def _rows(n: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "id": f"a{i}",
            "time": f"2027-09-10T0{i}:00:00Z",
            "lon": 21.2 + i / 100,
            "lat": 47.0,
            "sensor_id": "SAT-1",
            "sensor_kind": "satellite",
            "object_class": "troops",
            "count": 100 + i,
            "confidence": 0.9,
            "track_id": "t1" if i % 2 else None,
        }
        for i in range(1, n + 1)
    ]


def _read(src: Any) -> list[ObservationBatch]:
    return list(src.batches())


def _csv(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    p = tmp_path / "obs.csv"
    p.write_bytes(("\n".join([header, *lines]) + "\n").encode("utf-8"))
    return p


def test_csv_reads_columns(tmp_path: Path) -> None:
    p = tmp_path / "o.csv"
    write_csv(_rows(3), p)
    (b,) = _read(open_observations(p))
    assert len(b) == 3 and b.offset == 0
    assert b.time[0] == parse_time("2027-09-10T01:00:00Z", "t")
    assert list(b.count) == [101, 102, 103]
    assert b.sensor_names == ("SAT-1",) and list(b.sensor) == [0, 0, 0]
    assert SENSOR_KINDS[b.kind[0]] == "satellite" and OBJECT_CLASSES[b.object_class[0]] == "troops"
    assert b.track[0] == b.track[2] != 0 and b.track[1] == 0
    assert b.id_strings(np.array([2])) == ["a3"]


def test_three_formats_agree(tmp_path: Path) -> None:
    rows = _rows(5)
    write_csv(rows, tmp_path / "o.csv")
    write_geojson(rows, tmp_path / "o.geojson")
    write_parquet(rows, tmp_path / "o.parquet")
    write_parquet(rows, tmp_path / "s.parquet", timestamps=False)
    got = [
        _read(open_observations(tmp_path / n))[0]
        for n in ("o.csv", "o.geojson", "o.parquet", "s.parquet")
    ]
    for b in got[1:]:
        for col in (
            "time",
            "lon",
            "lat",
            "sensor",
            "kind",
            "object_class",
            "count",
            "confidence",
            "track",
        ):
            assert np.array_equal(getattr(b, col), getattr(got[0], col)), col
        assert b.id_strings(np.arange(5)) == got[0].id_strings(np.arange(5))


def test_time_forms(tmp_path: Path) -> None:
    p = _csv(
        tmp_path,
        "a,2027-09-10T06:00:00.123456+02:00,1,1,S,ground,acv,1,1,",
        "b,2027-09-10 04:00:00z,1,1,S,ground,acv,1,0,",
    )
    (b,) = _read(CsvObservations(p))
    assert b.time[0] == b.time[1] + 123


def test_ids_default_to_row_numbers(tmp_path: Path) -> None:
    p = _csv(
        tmp_path,
        "2027-09-10T06:00:00Z,1,1,S,ground,acv,1,1",
        "2027-09-10T06:00:00Z,1,1,S,ground,acv,1,1",
        header="time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence",
    )
    (b,) = _read(CsvObservations(p))
    assert b.id_strings(np.arange(2)) == ["1", "2"]


def test_unknown_columns_are_ignored(tmp_path: Path) -> None:
    p = _csv(tmp_path, GOOD + ",whatever", header=HEADER + ",remark")
    assert len(_read(CsvObservations(p))[0]) == 1


BAD_CSV = [
    ("a2,2027-09-10T06:00:00,21.2,47.0,S,satellite,troops,1,0.9,", 2, "time", "offset"),
    ("a2,2027-02-30T06:00:00Z,21.2,47.0,S,satellite,troops,1,0.9,", 2, "time", ""),
    ("a2,1850-01-01T06:00:00Z,21.2,47.0,S,satellite,troops,1,0.9,", 2, "time", "1900"),
    ("a2,yesterday,21.2,47.0,S,satellite,troops,1,0.9,", 2, "time", "RFC 3339"),
    ("a2,,21.2,47.0,S,satellite,troops,1,0.9,", 2, "time", "missing"),
    ("a2,2027-09-10T06:00:00Z,181,47.0,S,satellite,troops,1,0.9,", 2, "lon", "181"),
    ("a2,2027-09-10T06:00:00Z,east,47.0,S,satellite,troops,1,0.9,", 2, "lon", "not a number"),
    ("a2,2027-09-10T06:00:00Z,21.2,-90.5,S,satellite,troops,1,0.9,", 2, "lat", "-90.5"),
    ("a2,2027-09-10T06:00:00Z,21.2,nan,S,satellite,troops,1,0.9,", 2, "lat", "nan"),
    ("a2,2027-09-10T06:00:00Z,inf,47,S,satellite,troops,1,0.9,", 2, "lon", "inf"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,,satellite,troops,1,0.9,", 2, "sensor_id", "missing"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,radar,troops,1,0.9,", 2, "sensor_kind", "radar"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,,troops,1,0.9,", 2, "sensor_kind", "missing"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,tank,1,0.9,", 2, "object_class", "tank"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,0,0.9,", 2, "count", ">= 1"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,-3,0.9,", 2, "count", ">= 1"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,2.5,0.9,", 2, "count", "integer"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,,0.9,", 2, "count", "missing"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,99999999999,0.9,", 2, "count", "larger"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,1.5,", 2, "confidence", "1.5"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,-0.1,", 2, "confidence", "-0.1"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,nan,", 2, "confidence", "nan"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,high,", 2, "confidence", "not"),
    ("a1,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,0.9,", 2, "id", "duplicates row 1"),
    (",2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,0.9,", 2, "id", "missing"),
    ("a2,2027-09-10T06:00:00Z,21.2,47.0,S,satellite,troops,1,0.9," + "x" * 300, 2, "track_id", "256"),
]


@pytest.mark.parametrize(("line", "row", "fld", "text"), BAD_CSV)
def test_csv_bad_rows(tmp_path: Path, line: str, row: int, fld: str, text: str) -> None:
    p = _csv(tmp_path, GOOD, line, GOOD.replace("a1", "a3"))
    with pytest.raises(FormatError) as e:
        _read(CsvObservations(p))
    msg = str(e.value)
    assert str(p) in msg and f"row {row}" in msg and f"field {fld!r}" in msg, msg
    assert text in msg, msg


def test_csv_structure_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"header: column 'lat' missing"):
        _read(CsvObservations(_csv(tmp_path, GOOD, header=HEADER.replace(",lat", ""))))
    with pytest.raises(FormatError, match=r"column 'lon' appears twice"):
        _read(CsvObservations(_csv(tmp_path, GOOD, header=HEADER.replace("lat", "lon"))))
    with pytest.raises(FormatError, match=r"row 2: 3 fields where the header has 10"):
        _read(CsvObservations(_csv(tmp_path, GOOD, "a2,x,y")))
    p = tmp_path / "bad.csv"
    p.write_bytes(
        (HEADER + "\n" + GOOD + "\n").encode() + b"a2,2027-09-10T06:00:00Z,1,1,S\xff,ground,acv,1,1,\n"
    )
    with pytest.raises(FormatError, match=r"row 2 \(id 'a2'\), field 'sensor_id': is not valid UTF-8"):
        _read(CsvObservations(p))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FormatError, match="header row"):
        _read(CsvObservations(tmp_path / "empty.csv"))


def test_bad_row_in_a_later_chunk(tmp_path: Path) -> None:
    rows = _rows(9)
    rows += [dict(rows[0], id=f"b{i}", count=5) for i in range(3000)]
    rows[2500]["confidence"] = 2.0
    write_csv(rows, tmp_path / "o.csv")
    with pytest.raises(FormatError, match=r"row 2501 \(id 'b2491'\), field 'confidence'"):
        _read(CsvObservations(tmp_path / "o.csv", chunk_bytes=16 << 10))
    rows[2500]["confidence"] = 0.5
    rows[2900]["id"] = "a3"
    write_csv(rows, tmp_path / "o.csv")
    with pytest.raises(FormatError, match=r"row 2901 \(id 'a3'\), field 'id': duplicates row 3"):
        _read(CsvObservations(tmp_path / "o.csv", chunk_bytes=16 << 10))


def _feature(**props: Any) -> dict[str, Any]:
    base = dict(_rows(1)[0])
    lon, lat = base.pop("lon"), base.pop("lat")
    geom = props.pop("geometry", {"type": "Point", "coordinates": [lon, lat]})
    base.update(props)
    return {
        "type": "Feature",
        "geometry": geom,
        "properties": {k: v for k, v in base.items() if v is not None},
    }


BAD_GEOJSON = [
    ({"id": "a1"}, "id", "duplicates row 1"),
    (
        {"geometry": {"type": "LineString", "coordinates": [[1, 1], [2, 2]]}},
        "geometry",
        "Point is needed",
    ),
    ({"geometry": None}, "geometry", "Point is needed"),
    ({"geometry": {"type": "Point", "coordinates": [1]}}, "geometry", "[lon, lat]"),
    ({"geometry": {"type": "Point", "coordinates": ["1", 2]}}, "geometry", "[lon, lat]"),
    ({"geometry": {"type": "Point", "coordinates": [200, 2]}}, "lon", "200"),
    ({"time": 1789}, "time", "RFC 3339"),
    ({"count": 2.5}, "count", "integer"),
    ({"count": True}, "count", "integer"),
    ({"count": None}, "count", "missing"),
    ({"confidence": "high"}, "confidence", "not a number"),
    ({"sensor_kind": "sonar"}, "sensor_kind", "sonar"),
    ({"object_class": 3}, "object_class", "not a string"),
]


@pytest.mark.parametrize(("change", "fld", "text"), BAD_GEOJSON)
def test_geojson_bad_rows(tmp_path: Path, change: dict[str, Any], fld: str, text: str) -> None:
    doc = {"type": "FeatureCollection", "features": [_feature(), _feature(**{"id": "a2", **change})]}
    p = tmp_path / "o.geojson"
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        _read(open_observations(p))
    msg = str(e.value)
    assert str(p) in msg and "row 2" in msg and f"field {fld!r}" in msg and text in msg, msg


def test_geojson_structure_errors(tmp_path: Path) -> None:
    p = tmp_path / "o.geojson"
    for doc, text in (
        ({"type": "Feature"}, "FeatureCollection"),
        ({"type": "FeatureCollection", "features": {}}, "features"),
        ({"type": "FeatureCollection", "features": [{"type": "Point"}]}, "row 1: not a GeoJSON Feature"),
        ({"type": "FeatureCollection", "features": [_feature(lat=3)]}, "field 'lat'"),
    ):
        p.write_text(json.dumps(doc))
        with pytest.raises(FormatError, match=text):
            _read(open_observations(p))
    p.write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        open_observations(p)


def _table(**change: Any) -> pa.Table:
    rows = _rows(3)
    cols: dict[str, Any] = {
        "id": pa.array([r["id"] for r in rows]),
        "time": pa.array([1_820_556_000_000 + i for i in range(3)], pa.timestamp("ms", "UTC")),
        "lon": pa.array([r["lon"] for r in rows]),
        "lat": pa.array([r["lat"] for r in rows]),
        "sensor_id": pa.array(["S"] * 3).dictionary_encode(),
        "sensor_kind": pa.array(["ground"] * 3),
        "object_class": pa.array(["acv"] * 3),
        "count": pa.array([1, 2, 3], pa.int16()),
        "confidence": pa.array([0.5, 0.5, 0.5], pa.float32()),
    }
    for k, v in change.items():
        if v is None:
            del cols[k]
        else:
            cols[k] = v
    return pa.table(cols)


def test_parquet_reads_typed_columns(tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "o.parquet")
    (b,) = _read(ParquetObservations(tmp_path / "o.parquet"))
    assert list(b.count) == [1, 2, 3] and b.time[2] - b.time[0] == 2
    assert np.all(b.track == 0)


BAD_PARQUET = [
    ({"lon": pa.array(["1", "2", "3"])}, "column 'lon': type string"),
    ({"count": pa.array([1.0, 2.0, 3.0])}, "column 'count': type double"),
    ({"time": pa.array([1, 2, 3], pa.timestamp("ms"))}, "column 'time': type timestamp"),
    ({"time": pa.array([1, 2, 3], pa.int64())}, "column 'time': type int64"),
    ({"sensor_kind": pa.array([1, 2, 3])}, "column 'sensor_kind': type int64"),
    ({"confidence": None}, "column 'confidence': missing"),
    ({"count": pa.array([1, None, 3], pa.int32())}, "row 2 (id 'a2'), field 'count': missing"),
    ({"count": pa.array([1, 0, 3], pa.int32())}, "row 2 (id 'a2'), field 'count'"),
    ({"lat": pa.array([1.0, float("nan"), 3.0])}, "row 2 (id 'a2'), field 'lat'"),
    (
        {"object_class": pa.array(["acv", "acv", "drone"])},
        "row 3 (id 'a3'), field 'object_class': 'drone'",
    ),
    ({"time": pa.array(["2027-09-10T06:00:00Z", "2027-09-10", "x"])}, "row 2 (id 'a2'), field 'time'"),
    ({"id": pa.array(["a1", "a2", "a1"])}, "row 3 (id 'a1'), field 'id': duplicates row 1"),
]


@pytest.mark.parametrize(("change", "text"), BAD_PARQUET)
def test_parquet_bad(tmp_path: Path, change: dict[str, Any], text: str) -> None:
    p = tmp_path / "o.parquet"
    pq.write_table(_table(**change), p)
    with pytest.raises(FormatError) as e:
        _read(ParquetObservations(p))
    assert str(p) in str(e.value) and text in str(e.value), str(e.value)


def test_parquet_not_parquet(tmp_path: Path) -> None:
    p = tmp_path / "o.parquet"
    p.write_bytes(b"PAR1 nonsense")
    with pytest.raises(FormatError, match="not a readable Parquet file"):
        _read(open_observations(p))


def test_open_observations_refuses(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        open_observations(tmp_path / "none.csv")
    (tmp_path / "o.xlsx").write_text("x")
    with pytest.raises(FormatError, match="unknown observations format"):
        open_observations(tmp_path / "o.xlsx")


def test_rows_source_chunks_like_one(tmp_path: Path) -> None:
    rows = _rows(9)
    whole = _read(RowObservations(rows))
    parts = _read(RowObservations(rows, chunk_rows=4))
    assert [b.offset for b in parts] == [0, 4, 8]
    assert np.array_equal(np.concatenate([b.time for b in parts]), whole[0].time)
    assert parts[2].id_strings(np.array([0])) == ["a9"]
