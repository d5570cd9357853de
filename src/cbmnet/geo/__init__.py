"""Offline geography for agreements: country outlines, shared borders, geodesic distances.

Borders come from Natural Earth 1:10m admin-0 countries (public domain, German point of view,
see :data:`SOURCE` and ``docs/data-sources.md``); distances are geodesic on the WGS84
ellipsoid, in kilometres, never in degrees. Nothing is loaded until first used.
"""

from cbmnet.geo.distance import distance_km, within_km
from cbmnet.geo.natural_earth import SOURCE, border, codes, country, data_version, territory

__all__ = [
    "SOURCE",
    "border",
    "codes",
    "country",
    "data_version",
    "distance_km",
    "territory",
    "within_km",
]
