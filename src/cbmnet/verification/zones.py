"""Which observations stand where a zone rule forbids forces (inside a zone, or nearer than
``min_distance_km`` to it), vectorised.

A coarse table over a lon/lat grid (cells that can hold such points, from the zone grown
generously in degrees) picks candidates in one lookup per row. Candidates are then
measured exactly: inside a polygonal zone by ``intersects_xy``; for a distance, in an
azimuthal equidistant projection on the WGS84 ellipsoid centred on each 1-degree cell
that holds candidates (distance error well under 0.1 % that close to the centre), with
the zone clipped to the neighbourhood first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from cbmnet.agreements.model import ZoneRule
from cbmnet.verification.matching import KM_PER_DEG

F64 = NDArray[np.float64]
_MAX_CELLS = 250_000


@dataclass
class ZoneCheck:
    """One zone rule made ready for lookups."""

    rule: ZoneRule
    zone: Any  # shapely geometry, lon/lat
    km: float = field(init=False)
    _cache: dict[tuple[int, int], tuple[Any, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.km = float(self.rule.min_distance_km)
        if self.km == 0:
            parts = shapely.get_parts(self.zone)
            polys = parts[shapely.get_dimensions(parts) == 2]
            self.area = shapely.union_all(polys) if len(polys) else None
            coarse = self.area
        else:
            self.area = None
            lat_max = min(89.0, max(abs(self.zone.bounds[1]), abs(self.zone.bounds[3])) + self.km / 100)
            deg = self.km / (KM_PER_DEG * 0.99 * math.cos(math.radians(lat_max))) + 0.01
            coarse = shapely.buffer(self.zone, deg, quad_segs=4)
        if coarse is None or coarse.is_empty:
            self.table = None
            return
        if self.area is not None:
            shapely.prepare(self.area)
        minx, miny, maxx, maxy = coarse.bounds
        self.cz = max(0.05, math.sqrt((maxx - minx + 1e-9) * (maxy - miny + 1e-9) / _MAX_CELLS))
        self.x0, self.y0 = minx, miny
        self.ni = math.ceil((maxx - minx) / self.cz) + 1
        self.nj = math.ceil((maxy - miny) / self.cz) + 1
        ii, jj = np.meshgrid(np.arange(self.ni), np.arange(self.nj), indexing="ij")
        boxes = shapely.box(
            minx + ii.ravel() * self.cz,
            miny + jj.ravel() * self.cz,
            minx + (ii.ravel() + 1) * self.cz,
            miny + (jj.ravel() + 1) * self.cz,
        )
        shapely.prepare(coarse)
        self.table = shapely.intersects(coarse, boxes).reshape(self.ni, self.nj)

    def inside(self, lon: F64, lat: F64) -> NDArray[np.bool_]:
        """Whether each point is where the rule forbids forces."""
        out = np.zeros(len(lon), dtype=bool)
        if self.table is None or len(lon) == 0:
            return out
        i = np.floor((lon - self.x0) / self.cz).astype(np.int64)
        j = np.floor((lat - self.y0) / self.cz).astype(np.int64)
        ok = (i >= 0) & (i < self.ni) & (j >= 0) & (j < self.nj)
        cand = np.flatnonzero(ok)
        cand = cand[self.table[i[cand], j[cand]]]
        if len(cand) == 0:
            return out
        if self.area is not None:
            out[cand] = shapely.intersects_xy(self.area, lon[cand], lat[cand])
            return out
        ci = np.floor(lon[cand]).astype(np.int64)
        cj = np.floor(lat[cand]).astype(np.int64)
        cell = (ci + 180) * 1000 + (cj + 90)
        order = np.argsort(cell, kind="stable")
        cand, cell = cand[order], cell[order]
        cuts = np.flatnonzero(np.diff(cell)) + 1
        for grp in np.split(np.arange(len(cand)), cuts):
            rows = cand[grp]
            c = int(cell[grp[0]])
            near = self._near(c // 1000 - 180, c % 1000 - 90)
            if near is None:
                continue
            zone_xy, tr = near
            x, y = tr.transform(lon[rows], lat[rows])
            d = shapely.distance(zone_xy, shapely.points(np.asarray(x), np.asarray(y)))
            out[rows] = d <= self.km * 1000.0
        return out

    def _near(self, lon0: int, lat0: int) -> tuple[Any, Any] | None:
        key = (lon0, lat0)
        if key not in self._cache:
            reach = (
                self.km / (KM_PER_DEG * 0.99 * math.cos(math.radians(min(89.0, abs(lat0) + 2)))) + 0.05
            )
            part = shapely.clip_by_rect(
                self.zone, lon0 - reach, lat0 - reach, lon0 + 1 + reach, lat0 + 1 + reach
            )
            if part.is_empty:
                self._cache[key] = (None, None)
            else:
                tr = pyproj.Transformer.from_pipeline(
                    "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
                    f"+step +proj=aeqd +lon_0={lon0 + 0.5!r} +lat_0={lat0 + 0.5!r} +ellps=WGS84"
                )

                def fwd(c: F64, tr: Any = tr) -> F64:
                    x, y = tr.transform(c[:, 0], c[:, 1])
                    return np.column_stack([x, y])

                self._cache[key] = (shapely.transform(part, fwd), tr)
        zone_xy, tr = self._cache[key]
        return None if zone_xy is None else (zone_xy, tr)
