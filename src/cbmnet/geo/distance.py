"""Geodesic distances, in kilometres, between shapely geometries in WGS84 longitude/latitude.

Distances are on the WGS84 ellipsoid. Degrees are never used as a distance: a degree of
longitude is 111 km at the equator and 95 km at Lahore's latitude.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Final

import pyproj
import shapely
from shapely.ops import nearest_points

from cbmnet.errors import FormatError

Geometry = Any  # shapely.Geometry; shapely ships no type information

_GEOD: Final = pyproj.Geod(ellps="WGS84")
# Edges are densified to this many degrees (<= 1.1 km) before projecting, so that an edge means
# the same thing (a straight line in lon/lat, as in GeoJSON and in the intersects() test below)
# in the projection as in the input. Natural Earth 1:10m edges are shorter than this already.
_MAX_SEGMENT_DEG: Final = 0.01
_ELLIPSOID: Final = "+ellps=WGS84"
_SPHERE: Final = "+R=6371008.8"  # IUGG mean radius; only used to locate the nearest region
_MAX_REFINE: Final = 4
# aeqd's scale error 10 km from its centre is ~4e-7, and it only shifts which pair is chosen,
# so a pair found that close to the centre is taken as final.
_RECENTRE_M: Final = 10_000.0


def distance_km(a: Geometry, b: Geometry) -> float:
    """The geodesic distance in km between geometries ``a`` and ``b`` (lon/lat degrees, WGS84).

    Points, lines, polygons and their multi-part forms are accepted; the result is 0.0 if the
    two intersect (touching counts), else the length of the shortest geodesic between them.

    Method: if ``a`` and ``b`` do not intersect, the nearest points lie on their outlines, so
    polygons are replaced by their boundaries. Both are projected to an azimuthal equidistant
    projection (PROJ ``aeqd`` on the WGS84 ellipsoid) centred on a representative point of
    ``a`` (spherical at this stage, as it is 8 times faster) and shapely finds the nearest pair
    of points in that plane. That locates the pair; outline farther from the other geometry
    than this pair's geodesic distance is cut away (lon/lat boxes, conservative). aeqd is exact
    only for distances from its centre, so the search is repeated on the ellipsoid with the
    projection centred on the point just found on ``a`` (until that point moves less than
    10 km, at most 4 times), now with every edge densified to at most 0.01 degrees so that an
    edge means a straight line in lon/lat, as in GeoJSON and in the ``intersects`` test. The
    final pair is projected back to lon/lat and ``pyproj.Geod.inv`` gives the true geodesic
    distance between them, which is what is returned.

    Accuracy: the figure is the exact ellipsoidal distance (``Geod.inv``, about 15 nm) between
    a point of ``a`` and a point of ``b``, so it can only err by picking a slightly wrong pair.
    Against a brute-force minimum over outlines densified to 0.002 degrees it agrees to 0.1 m
    from 20 km (Lahore to the IND-PAK border) to 15,000 km (Santiago to India), including a
    polygon the size of the USA measured from its own side, where one fixed projection centre
    would be 527 km out. The limit in practice is the data: Natural Earth 1:10m outlines are
    generalised by hundreds of metres to kilometres. Cost: about 1 ms for a point against the
    IND-PAK border, a few ms against a nearby country; up to 0.5 s against a whole large
    country far away (Russia, Canada: 300,000 densified vertices, none of which can be cut).
    Not for geometries near each other's antipode (aeqd is singular there) or with edges that
    cross the antimeridian (an edge from 179 to -179 degrees runs the long way round).

    Raises :class:`~cbmnet.errors.FormatError` for a non-geometry, an empty geometry, or
    coordinates outside longitude [-180, 180] / latitude [-90, 90].
    """
    _check(a, "a")
    _check(b, "b")
    if a.intersects(b):
        return 0.0
    start = a.representative_point()
    oa, ob = _outline(a), _outline(b)
    # Locate: original vertices, spherical projection (8x faster to compute) centred inside a.
    clon, clat, qlon, qlat = _nearest_lonlat(oa, ob, float(start.x), float(start.y), _SPHERE)
    # Only outline within that pair's distance (plus a margin) of the other geometry can hold
    # the nearest pair: drop the rest before the costly densified projections.
    reach = _GEOD.inv(clon, clat, qlon, qlat)[2] * 1.01 + 1000.0
    ea = _outline(shapely.segmentize(_near(oa, b, reach), _MAX_SEGMENT_DEG))
    eb = _outline(shapely.segmentize(_near(ob, a, reach), _MAX_SEGMENT_DEG))
    # Refine: densified edges, projection centred on the nearest point of a found so far.
    for _ in range(_MAX_REFINE):
        alon, alat, blon, blat = _nearest_lonlat(ea, eb, clon, clat, _ELLIPSOID)
        moved = _GEOD.inv(clon, clat, alon, alat)[2]
        clon, clat = alon, alat
        if moved < _RECENTRE_M:
            break
    return float(_GEOD.inv(alon, alat, blon, blat)[2]) / 1000.0


def within_km(a: Geometry, b: Geometry, km: float) -> bool:
    """Whether ``a`` and ``b`` are at most ``km`` kilometres apart (the boundary is inclusive).

    ``within_km(exercise, border("IND", "PAK"), 5)`` is True for an exercise area 5.0 km from
    the border or closer. Raises :class:`~cbmnet.errors.FormatError` for a negative or
    non-finite ``km`` and for what :func:`distance_km` rejects.
    """
    if not (isinstance(km, int | float) and math.isfinite(km) and km >= 0):
        raise FormatError(f"distance limit must be a finite number of km >= 0, got {km!r}")
    return distance_km(a, b) <= km


def _check(g: Geometry, name: str) -> None:
    if not isinstance(g, shapely.Geometry):
        raise FormatError(f"{name} must be a shapely geometry, got {type(g).__name__}")
    if g.is_empty:
        raise FormatError(f"{name} is an empty geometry")
    minx, miny, maxx, maxy = g.bounds
    if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        raise FormatError(
            f"{name} has bounds ({minx}, {miny}, {maxx}, {maxy}): not WGS84 longitude/latitude degrees"
        )


def _near(outline: Geometry, other: Geometry, metres: float) -> Geometry:
    """The part of ``outline`` inside a lon/lat box holding every point within ``metres`` of ``other``.

    The box is conservative: a degree of latitude is at least 110,574 m and a degree of
    longitude at least 111,319 m x cos(latitude) on WGS84. Clipping line work (never polygons)
    to a lon/lat rectangle cuts straight lon/lat edges exactly. Near a pole or across the
    antimeridian the longitude range is not narrowed.
    """
    minx, miny, maxx, maxy = other.bounds
    dlat = metres / 110_574.0
    south, north = miny - dlat, maxy + dlat
    if south > -89.0 and north < 89.0:
        dlon = metres / (111_319.0 * math.cos(math.radians(max(abs(south), abs(north)))))
        west, east = minx - dlon, maxx + dlon
        if west < -180.0 or east > 180.0:
            west, east = -180.0, 180.0
    else:
        west, east = -180.0, 180.0
    clipped = shapely.clip_by_rect(outline, west, max(south, -90.0), east, min(north, 90.0))
    return outline if clipped.is_empty else clipped


def _outline(g: Geometry) -> Geometry:
    """``g`` with every polygon replaced by its boundary (nested collections flattened)."""
    if shapely.get_dimensions(g) < 2:
        return g
    out: list[Geometry] = []
    stack = [g]
    while stack:
        part = stack.pop()
        kind = part.geom_type
        if kind == "GeometryCollection":
            stack.extend(shapely.get_parts(part))
        elif kind in ("Polygon", "MultiPolygon"):
            out.append(part.boundary)
        else:
            out.append(part)
    return shapely.GeometryCollection(out)


@functools.lru_cache(maxsize=128)
def _aeqd(lon: float, lat: float, figure: str) -> pyproj.Transformer:
    """lon/lat degrees -> metres in an azimuthal equidistant projection centred at (lon, lat).

    A bare PROJ pipeline: no CRS database lookup, about 0.5 ms to build. Transformers are
    thread-safe since pyproj 3.1, so sharing cached ones is fine.
    """
    return pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=aeqd +lon_0={lon!r} +lat_0={lat!r} {figure}"
    )


def _nearest_lonlat(
    a: Geometry, b: Geometry, lon: float, lat: float, figure: str
) -> tuple[float, float, float, float]:
    """The nearest pair of points of ``a`` and ``b`` in the aeqd plane at (lon, lat), in lon/lat."""
    tr = _aeqd(lon, lat, figure)

    def forward(x: Any, y: Any) -> Any:
        return tr.transform(x, y)

    pa, pb = nearest_points(
        shapely.transform(a, forward, interleaved=False),
        shapely.transform(b, forward, interleaved=False),
    )
    lons, lats = tr.transform([pa.x, pb.x], [pa.y, pb.y], direction="INVERSE")
    return float(lons[0]), float(lats[0]), float(lons[1]), float(lats[1])
