"""The dashboard's Map: zones, declared activity areas, observation density and findings.

Everything on it comes from the same Hub reads the other pages use, cut to the signed-in
party before anything is drawn: events and observation batches only where
``HubState.may_read`` says so, findings from ``Hub.report_for`` (already cut). The page
works without its canvas: a table lists the same features. The map itself is Leaflet with
country outlines from world-atlas (Natural Earth), both vendored by ``make assets``; no tile
layer, nothing fetched from the internet at run time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import CbmnetError, FormatError, NotFoundError, error_code
from cbmnet.hub.deps import evaluating, hub_from, limits_of
from cbmnet.hub.service import Hub
from cbmnet.hub.web.i18n import N_, gettext, ngettext
from cbmnet.hub.web.render import STATIC, render

MAX_FEATURES = 5000
"""At most this many features in one answer (then ``truncated: true``)."""
MAX_TABLE_ROWS = 1000
MAX_BATCHES = 20
"""Observation batches read for one answer: the newest readable ones."""
MAX_ROWS = 500_000
"""Observation rows aggregated for one answer, over all batches."""
CELL_DEG = 0.25
"""Side of an observation-density grid cell, in degrees of longitude and latitude."""
MAX_GEOMETRY_POINTS = 20_000
"""A declared location with more vertices than this is drawn as its bounding box."""
VENDOR_FILES = ("leaflet.js", "leaflet.css", "topojson-client.min.js", "countries-50m.json")
LAYERS = ("zone", "activity", "observations", "finding")
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
_PARTY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MS = 86_400_000
_BATCH_CACHE: dict[tuple[str, int, str], tuple[np.ndarray[Any, Any], ...]] = {}
"""Parsed rows of a few batches, by (store, entry, SHA-256): uploads are never undone or changed."""


def vendor_ready() -> bool:
    """Whether ``make assets`` has copied the map's libraries into ``static/vendor/``."""
    return all((STATIC / "vendor" / f).is_file() for f in VENDOR_FILES)


ZONE_SOURCES = (N_("agreement geometry"), N_("Natural Earth border"))
"""Where a zone's outline comes from: the GeoJSON's ``source`` (English, as data), worded in
the reader's language in the page's table."""


@dataclass(frozen=True)
class Filters:
    agreement: str | None = None
    party: str | None = None
    start: int | None = None
    end: int | None = None
    """Exclusive: a date-only ``to`` covers that whole day."""


def parse_filters(
    params: Any, agreements: list[str], parties: set[str]
) -> tuple[Filters, dict[str, str]]:
    """The query's filters, validated; a FormatError names the field that is wrong."""
    raw = {k: str(params.get(k) or "").strip()[:128] for k in ("agreement", "party", "from", "to")}
    agreement = raw["agreement"] or None
    if agreement is not None and agreement not in agreements:
        msg = gettext("agreement: %(agreement)s is not an agreement of yours on this hub")
        raise FormatError(msg % {"agreement": repr(agreement)})
    party = raw["party"] or None
    if party is not None and (not _PARTY.match(party) or party not in parties):
        raise FormatError(gettext("party: %(party)s is not a registered party") % {"party": repr(party)})
    start = _when(raw["from"], "from", end=False)
    end = _when(raw["to"], "to", end=True)
    if start is not None and end is not None and end <= start:
        msg = gettext("to: %(to)s is not after from %(from)s")
        raise FormatError(msg % {"to": repr(raw["to"]), "from": repr(raw["from"])})
    return Filters(agreement, party, start, end), raw


def _when(text: str, field: str, *, end: bool) -> int | None:
    """``YYYY-MM-DD`` (the day's start; for ``to``, the next day's) or an RFC 3339 time."""
    if not text:
        return None
    if _DATE.match(text):
        ms = parse_time(text + "T00:00:00Z", field) if _valid_date(text) else None
        if ms is None:
            msg = gettext("%(field)s: %(text)s is not a valid date")
            raise FormatError(msg % {"field": field, "text": repr(text)})
        return ms + _DAY_MS if end else ms
    try:
        return parse_time(text, field)
    except FormatError as e:
        msg = gettext("%(field)s: %(text)s is not a date (YYYY-MM-DD) or an RFC 3339 time")
        raise FormatError(msg % {"field": field, "text": repr(text)}) from e


def _valid_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _ms(value: Any) -> int | None:
    try:
        return parse_time(value, "time")
    except FormatError:
        return None


def _overlaps(lo: int | None, hi: int | None, f: Filters) -> bool:
    """Whether [lo, hi] meets the filter's [start, end); unknown times always pass."""
    if lo is None and hi is None:
        return True
    lo = hi if lo is None else lo
    hi = lo if hi is None else hi
    assert lo is not None and hi is not None
    return (f.end is None or lo < f.end) and (f.start is None or hi >= f.start)


def _points(geom: Any) -> Iterator[tuple[float, float]]:
    """Every position of a GeoJSON geometry's coordinates (any nesting)."""
    stack = [geom.get("coordinates")]
    while stack:
        c = stack.pop()
        if isinstance(c, list | tuple):
            if len(c) >= 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in c[:2]
            ):
                yield float(c[0]), float(c[1])
            else:
                stack.extend(c)


def clean_geometry(geom: Any) -> dict[str, Any] | None:
    """A declared location fit to draw: a GeoJSON geometry of a known type with lon/lat in
    range; a huge one becomes its bounding box. None if it is not such a geometry."""
    if not isinstance(geom, dict) or geom.get("type") not in GEOMETRY_TYPES:
        return None
    pts = []
    for i, (x, y) in enumerate(_points(geom)):
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            return None
        if i < MAX_GEOMETRY_POINTS:
            pts.append((x, y))
        else:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            return _box(min(xs), min(ys), max(xs), max(ys))
    if not pts:
        return None
    return {"type": geom["type"], "coordinates": geom["coordinates"]}


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def anchor(geom: dict[str, Any]) -> dict[str, Any]:
    """A point on ``geom`` to pin a finding to (a point stays itself)."""
    if geom["type"] == "Point":
        return geom
    from shapely.geometry import mapping, shape

    try:
        p = shape(geom).representative_point()
        return dict(mapping(p))
    except Exception:  # shapely raises several kinds for odd geometries; fall back to a vertex
        x, y = next(_points(geom))
        return {"type": "Point", "coordinates": [x, y]}


def entry_links(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "entry_url": f"/dashboard/entries/{index}/envelope",
        "verify_url": f"/dashboard/verify/{index}",
    }


class Collector:
    """Features in layer order, stopping at :data:`MAX_FEATURES`."""

    def __init__(self) -> None:
        self.features: list[dict[str, Any]] = []
        self.truncated = False

    def add(self, geometry: dict[str, Any] | None, **props: Any) -> bool:
        if len(self.features) >= MAX_FEATURES:
            self.truncated = True
            return False
        self.features.append({"type": "Feature", "geometry": geometry, "properties": props})
        return True

    def full(self) -> bool:
        return len(self.features) >= MAX_FEATURES


_MAP_CACHE: dict[tuple[str, str, Filters, int, int], dict[str, Any]] = {}
_MAP_LOCK = threading.Lock()
MAP_CACHE_MS = 10_000
"""A map answer is reused for the same caller and filters while the log has not grown,
for at most this long (findings may change as deadlines pass)."""


def map_features(hub: Hub, party: str, f: Filters) -> dict[str, Any]:
    """The map's features for ``party`` (kept per caller, filters and log size, briefly)."""
    now = hub.clock()
    version = hub.views.version()
    key = (hub.url, party, f, version, now // MAP_CACHE_MS)
    with _MAP_LOCK:
        got = _MAP_CACHE.get(key)
    if got is not None:
        return got
    doc = _map_features(hub, party, f, now)
    with _MAP_LOCK:
        while len(_MAP_CACHE) >= 64:
            _MAP_CACHE.pop(next(iter(_MAP_CACHE)))
        _MAP_CACHE[key] = doc
    return doc


def _map_features(hub: Hub, party: str, f: Filters, now: int) -> dict[str, Any]:
    """The map's GeoJSON FeatureCollection for ``party``, cut to what it may read."""
    ags = [a for a in hub.views.agreements_of(party) if f.agreement in (None, a)]
    out = Collector()
    for ag in ags:
        _zones(hub, ag, f, out)
    located: dict[tuple[str, str], dict[str, Any]] = {}
    for ag in ags:
        _events(hub, party, ag, f, out, located)
    _observations(hub, party, ags, f, out)
    for ag in ags:
        _findings(hub, party, ag, now, f, out, located)
    for ag in ags:
        _verification(hub, party, ag, now, f, out)
    return {
        "type": "FeatureCollection",
        "features": out.features,
        "truncated": out.truncated,
        "party": party,
        "as_of": format_time(now),
        "limits": {"features": MAX_FEATURES, "batches": MAX_BATCHES, "rows": MAX_ROWS},
        "cell_deg": CELL_DEG,
    }


def _zones(hub: Hub, ag: str, f: Filters, out: Collector) -> None:
    """The agreement's named zones (its own geometry, or a border drawn from Natural Earth)."""
    if f.party is not None:
        return  # zones belong to the agreement, not to a party's acts
    from shapely.geometry import mapping

    for name, zone in sorted(hub.agreements[ag].zones.items()):
        geom = hub.zones.get(ag, {}).get(name)
        if geom is None or geom.is_empty:
            continue
        simple = geom.simplify(0.01, preserve_topology=True)
        gj = clean_geometry(json.loads(json.dumps(mapping(simple))))
        source = ZONE_SOURCES[0] if zone.geometry is not None else ZONE_SOURCES[1]
        out.add(
            gj,
            layer="zone",
            agreement=ag,
            id=name,
            label=f"zone {name}",
            description=zone.description.strip()[:500],
            source=source,
        )


@dataclass(frozen=True)
class Located:
    """An event with a valid declared location, its span read once (events never change
    within one reading of the log; see ``Parsed.generation``)."""

    index: int
    doc: dict[str, Any]
    geometry: dict[str, Any]
    exercise: bool
    start: int | None
    end: int | None


_LOCATED: dict[tuple[str, str], tuple[int, int, list[Located]]] = {}
"""(store, agreement) -> (generation, documents read, the located among them)."""
_LOCATED_LOCK = threading.Lock()


def located_events(hub: Hub, ag: str) -> list[Located]:
    """The agreement's committed events that declare a valid location: cleaned and dated
    once, then extended with the new events as the log grows (the map redraws often)."""
    parsed = hub.views.parsed_events(ag)
    with _LOCATED_LOCK:
        got = _LOCATED.get((hub.url, ag))
        if got is not None and got[0] == parsed.generation and got[1] <= len(parsed.docs):
            start, rows = got[1], list(got[2])
        else:
            start, rows = 0, []
        new = parsed.docs[start:]
        exercise = hub.views.exercise_flags([int(d["log_index"]) for d in new])
        for d in new:
            geom = clean_geometry(d.get("location"))
            if geom is None:
                continue
            lo, hi = _ms(d.get("start")), _ms(d.get("end"))
            if lo is None and hi is None:
                lo = hi = _ms(d.get("time"))
            index = int(d["log_index"])
            flag = d.get("exercise") is True or index in exercise
            rows.append(Located(index, d, geom, flag, lo, hi))
        if got is None or got[0] != parsed.generation or got[1] < len(parsed.docs):
            _LOCATED[(hub.url, ag)] = (parsed.generation, len(parsed.docs), rows)
            while len(_LOCATED) > 64:
                _LOCATED.pop(next(iter(_LOCATED)))
        return rows


def _events(
    hub: Hub,
    party: str,
    ag: str,
    f: Filters,
    out: Collector,
    located: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Events with a declared ``location`` that ``party`` may read (activities and others)."""
    rows = located_events(hub, ag)
    ok = hub.views.readable_indices(party, [r.index for r in rows])
    for r in rows:
        if r.index not in ok:
            continue
        d, geom, exercise, start, end = r.doc, r.geometry, r.exercise, r.start, r.end
        located[(ag, str(d.get("id")))] = {"geometry": geom, "exercise": exercise}
        if f.party is not None and d.get("party") != f.party:
            continue
        if not _overlaps(start, end, f):
            continue
        raw_size = d.get("size")
        size: dict[str, Any] = raw_size if isinstance(raw_size, dict) else {}
        if not out.add(
            geom,
            layer="activity",
            agreement=ag,
            id=str(d.get("id")),
            type=str(d.get("type")),
            party=str(d.get("party")),
            category=d.get("category"),
            start=d.get("start"),
            end=d.get("end"),
            time=d.get("time"),
            size={str(k): v for k, v in size.items() if isinstance(v, int)},
            exercise=exercise,
            label=f"{d.get('type')} {d.get('id')} of {d.get('party')}",
            **entry_links(int(d["log_index"])),
        ):
            return


def _observations(hub: Hub, party: str, ags: list[str], f: Filters, out: Collector) -> None:
    """Observation density: rows of readable batches counted per grid cell."""
    cands = hub.views.readable_batches(party, set(ags), f.party, MAX_BATCHES)
    cells: dict[tuple[int, int], list[Any]] = {}
    budget = MAX_ROWS
    truncated = False
    for index, meta, author in cands:
        if budget <= 0:
            truncated = True
            break
        try:
            t, lon, lat, count = _batch_rows(hub, party, index, meta)
        except (CbmnetError, KeyError):
            continue  # rows not uploaded (yet), or an unknown format: nothing to count
        if len(t) > budget:
            t, lon, lat, count = t[:budget], lon[:budget], lat[:budget], count[:budget]
            truncated = True
        budget -= len(t)
        keep = np.ones(len(t), dtype=bool)
        if f.start is not None:
            keep &= t >= f.start
        if f.end is not None:
            keep &= t < f.end
        if not keep.any():
            continue
        ci = np.floor(lon[keep] / CELL_DEG).astype(np.int64)
        cj = np.floor(lat[keep] / CELL_DEG).astype(np.int64)
        uniq, inv = np.unique(np.stack([ci, cj], axis=1), axis=0, return_inverse=True)
        inv = inv.ravel()
        rows = np.bincount(inv)
        total = np.bincount(inv, weights=count[keep].astype(np.float64))
        for (i, j), n, s in zip(uniq.tolist(), rows.tolist(), total.tolist(), strict=True):
            c = cells.setdefault((int(i), int(j)), [0, 0, set(), set(), set()])
            c[0] += int(n)
            c[1] += int(s)
            c[2].add(index)
            c[3].add(author)
            c[4].add(str(meta.get("agreement")))
    for (i, j), (n, s, batches, authors, agreements) in sorted(cells.items()):
        x0, y0 = i * CELL_DEG, j * CELL_DEG
        if not out.add(
            _box(x0, y0, x0 + CELL_DEG, y0 + CELL_DEG),
            layer="observations",
            agreement=", ".join(sorted(agreements)),
            id=f"cell {x0:.2f},{y0:.2f}",
            label=f"{n} observations in cell {x0:.2f},{y0:.2f}",
            observations=n,
            count=s,
            batches=sorted(batches),
            parties=sorted(authors),
            batches_truncated=truncated,
        ):
            return


def _batch_rows(
    hub: Hub, party: str, index: int, meta: dict[str, Any]
) -> tuple[np.ndarray[Any, Any], ...]:
    """(time, lon, lat, count) of a batch's rows, at most :data:`MAX_ROWS` of them.

    Only for a batch ``party`` may read. The parsed rows of a few batches are kept: an
    upload is checked against the signed hash and never replaced, so they never go stale.
    """
    hub.views.readable(party, index)
    key = (hub.url, index, str(meta.get("sha256")))
    cached = _BATCH_CACHE.get(key)
    if cached is not None:
        return cached
    data = hub.get_batch(party, index)  # NotFoundError while the rows are not uploaded
    from cbmnet.verification.observations import observations_in

    parts: list[tuple[np.ndarray[Any, Any], ...]] = []
    n = 0
    with observations_in(data, str(meta.get("format")), f"batch {index}") as source:
        for b in source.batches():
            parts.append((b.time, b.lon, b.lat, b.count))
            n += len(b)
            if n >= MAX_ROWS:
                break
    if parts:
        rows = tuple(np.concatenate([p[k] for p in parts])[:MAX_ROWS] for k in range(4))
    else:
        rows = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    if len(_BATCH_CACHE) >= 8:
        _BATCH_CACHE.pop(next(iter(_BATCH_CACHE)))
    _BATCH_CACHE[key] = rows
    return rows


def _finding_fields(fd: dict[str, Any]) -> dict[str, Any]:
    """A finding's events-v1 fields as the map shows them, whichever rule made it."""
    return {
        "code": fd.get("code"),
        "severity": fd.get("severity"),
        "party": fd.get("party"),
        "provision": fd.get("provision"),
        "message": fd.get("message"),
        "due": fd.get("due"),
        "subjects": list(fd.get("subjects", [])),
        "label": f"{fd.get('severity')}: {fd.get('code')} ({fd.get('party') or 'unattributed'})",
    }


def _findings(
    hub: Hub,
    party: str,
    ag: str,
    now: int,
    f: Filters,
    out: Collector,
    located: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Findings, pinned to a subject event's location, with links to their evidence."""
    try:
        rep = hub.views.report_for(party, ag, now)
    except CbmnetError:
        return
    for fd in rep["findings"]:
        if f.party is not None and fd.get("party") != f.party:
            continue
        due = _ms(fd.get("due"))
        if due is not None and not _overlaps(due, due, f):
            continue
        geom = None
        exercise = False
        evidence = [
            {"subject": sid, **entry_links(idx)}
            for sid, idx in hub.views.readable_subjects(party, ag, fd.get("subjects", []))
        ]
        for sid in fd.get("subjects", []):
            where = located.get((ag, sid))
            if where is not None:
                geom = anchor(where["geometry"])
                exercise = exercise or bool(where["exercise"])
                break
        extra = fd.get("evidence")
        if extra is not None and len(json.dumps(extra)) > 2000:
            extra = {"note": "too large to show here: see /v1/obligations"}
        if not out.add(
            geom,
            layer="finding",
            agreement=ag,
            id=f"{fd.get('code')}:{','.join(fd.get('subjects', []))}",
            **_finding_fields(fd),
            evidence=evidence,
            details=extra,
            exercise=exercise,
        ):
            return


_RECONCILED: dict[tuple[str, str, str, int, int], list[dict[str, Any]]] = {}
"""Reconciliation findings by (store, party, agreement, committed size, minute): a few kept."""


def _verification(hub: Hub, party: str, ag: str, now: int, f: Filters, out: Collector) -> None:
    """Observations against declarations, as ``cbmnet reconcile`` does it, on the hub.

    Only what ``party`` may read goes in: its readable batches (the newest
    :data:`MAX_BATCHES`) and the activities it may read, so an undeclared activity shows
    with the sensor rows that are its evidence, and nothing private leaks into the count.
    """
    from cbmnet.compliance.events import parse_events
    from cbmnet.geo import territory
    from cbmnet.verification.observations import (
        BATCH_SUFFIXES,
        ObservationBatch,
        observations_in,
    )
    from cbmnet.verification.reconcile import iter_batches, reconcile
    from cbmnet.verification.settings import ReconcileSettings

    agreement = hub.agreements.get(ag)
    if agreement is None:
        return
    parsed = hub.views.parsed_events(ag)
    committed = parsed.committed
    batches = [(i, meta) for i, meta, _ in hub.views.readable_batches(party, {ag}, None, MAX_BATCHES)]
    if not batches:
        return
    activities = [d for d in parsed.docs if d.get("type") == "activity"]
    ok = hub.views.readable_indices(party, [int(d["log_index"]) for d in activities])
    docs = [d for d in activities if int(d["log_index"]) in ok]
    key = (hub.url, party, ag, committed, now // 60_000)
    found = _RECONCILED.get(key)
    if found is None:
        parts: list[ObservationBatch] = []
        next_row = 0
        sensor_code: dict[str, int] = {}
        for index, meta in batches:
            try:
                data = hub.get_batch(party, index)
            except CbmnetError:
                continue  # rows not uploaded yet
            if str(meta.get("format")) not in BATCH_SUFFIXES:
                continue
            with observations_in(data, str(meta.get("format")), f"batch {index}") as source:
                # One source out of several files: row numbers run on (evidence is found
                # by them) and sensors share one table of names (estimates count looks).
                for b in source.batches():
                    codes = np.array(
                        [sensor_code.setdefault(n, len(sensor_code)) for n in b.sensor_names] or [0],
                        dtype=np.int64,
                    )
                    parts.append(
                        dataclasses.replace(
                            b,
                            offset=next_row,
                            sensor=codes[b.sensor].astype(b.sensor.dtype),
                            sensor_names=tuple(sensor_code),
                        )
                    )
                    next_row += len(b)
        try:
            events = parse_events([{k: v for k, v in d.items() if k != "log_index"} for d in docs])
            rep = reconcile(
                agreement,
                events,
                iter_batches(parts),
                now,
                hub.zones.get(ag, {}),
                territory,
                ReconcileSettings.for_agreement(agreement),
            )
        except CbmnetError:
            return
        found = [fd.to_json() for fd in rep.findings]
        if len(_RECONCILED) >= 16:
            _RECONCILED.pop(next(iter(_RECONCILED)))
        _RECONCILED[key] = found
    for fd in found:
        if f.party is not None and fd.get("party") != f.party:
            continue
        ev = fd.get("evidence") or {}
        lo, hi = _ms(ev.get("start")), _ms(ev.get("end"))
        if not _overlaps(lo, hi, f):
            continue
        geom = clean_geometry(ev.get("geometry"))
        if not out.add(
            geom,
            layer="finding",
            agreement=ag,
            id=f"{fd.get('code')}:{ev.get('start')}",
            **_finding_fields(fd),
            evidence=[{"batch": i, **entry_links(i)} for i, _ in batches],
            details={
                "observations": len(ev.get("observations", [])),
                "sensors": ev.get("sensors"),
                "estimate": ev.get("estimate"),
                "confidence": fd.get("confidence"),
                "start": ev.get("start"),
                "end": ev.get("end"),
            },
            exercise=False,
            source="reconciliation",
        ):
            return


def table_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The features as rows for the page's text alternative."""
    rows = []
    for feat in doc["features"][:MAX_TABLE_ROWS]:
        p = feat["properties"]
        geom = feat["geometry"]
        where = ""
        if geom is not None:
            pts = list(_points(geom))
            if len(pts) == 1:
                where = f"{pts[0][1]:.4f}, {pts[0][0]:.4f}"
            elif pts:
                xs, ys = [q[0] for q in pts], [q[1] for q in pts]
                where = f"{min(ys):.2f}…{max(ys):.2f}, {min(xs):.2f}…{max(xs):.2f}"
        layer = p["layer"]
        if layer == "activity":
            when = " to ".join(x for x in (p.get("start"), p.get("end")) if x) or (p.get("time") or "")
            what = f"{p['type']} {p['id']}" + (f" ({p['category']})" if p.get("category") else "")
            who_ = p["party"]
            links = [p]
        elif layer == "finding":
            when = p.get("due") or ""
            what = f"{p['severity']}: {p['code']} — {p['message']}"
            who_ = p["party"]
            links = p["evidence"]
        elif layer == "observations":
            when = ""
            n = p["observations"]
            what = ngettext(
                "%(n)s observation (%(count)s objects counted), batch %(batches)s",
                "%(n)s observations (%(count)s objects counted), batch %(batches)s",
                n,
            ) % {"n": n, "count": p["count"], "batches": ", ".join(str(b) for b in p["batches"])}
            who_ = ", ".join(p["parties"])
            links = [entry_links(b) for b in p["batches"]]
        else:
            when = ""
            # The source is one of ZONE_SOURCES (data in the GeoJSON, worded here).
            source = gettext(p["source"]) if p["source"] in ZONE_SOURCES else p["source"]
            if p["description"]:
                what = gettext("zone %(id)s (%(source)s): %(description)s") % {
                    "id": p["id"],
                    "source": source,
                    "description": p["description"],
                }
            else:
                what = gettext("zone %(id)s (%(source)s)") % {"id": p["id"], "source": source}
            who_ = ""
            links = []
        rows.append(
            {
                "layer": layer,
                "agreement": p.get("agreement", ""),
                "what": what,
                "party": who_,
                "when": when,
                "where": where or "not placed",
                "exercise": p.get("exercise") is True,
                "links": [{"index": x["index"], "verify_url": x["verify_url"]} for x in links],
            }
        )
    return rows


router = APIRouter()
"""``/dashboard/map`` (the page) and ``/dashboard/map.json`` (its features); both spend from
the caller's evaluation budget, like the pages that run the engine."""


def filters_for(hub: Hub, party: str, request: Request) -> tuple[Filters, dict[str, str]]:
    ags = hub.views.agreements_of(party)
    return parse_filters(request.query_params, ags, set(hub.views.party_ids()))


@router.get("/dashboard/map.json", include_in_schema=False)
def map_json(request: Request) -> Response:
    """The map's features as GeoJSON, cut to the signed-in party (cookie, like the pages)."""
    party = evaluating(request)
    hub = hub_from(request)
    try:
        f, _ = filters_for(hub, party, request)
        doc = limits_of(request).evaluations.call(party, partial(map_features, hub, party, f))
    except (FormatError, NotFoundError) as e:
        return JSONResponse(
            {"error": error_code(e), "message": str(e)[:500]},
            status_code=e.http_status,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse(doc, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/map", include_in_schema=False)
def map_page(request: Request) -> Response:
    party = evaluating(request)
    hub = hub_from(request)
    agreements = hub.views.agreements_of(party)
    parties = hub.views.party_ids()
    raw = {k: str(request.query_params.get(k) or "")[:128] for k in ("agreement", "party", "from", "to")}
    ctx: dict[str, Any] = {
        "party": party,
        "agreements": agreements,
        "parties": parties,
        "filters": raw,
        "assets": vendor_ready(),
        "layers": LAYERS,
    }
    try:
        f, raw = filters_for(hub, party, request)
        doc = limits_of(request).evaluations.call(party, partial(map_features, hub, party, f))
    except (FormatError, NotFoundError) as e:
        return render(
            "map.html", e.http_status, scripts=True, error=str(e)[:300], rows=[], doc=None, **ctx
        )
    return render(
        "map.html",
        scripts=True,
        error=None,
        rows=table_rows(doc),
        doc=doc,
        shown=min(len(doc["features"]), MAX_TABLE_ROWS),
        **ctx,
    )
