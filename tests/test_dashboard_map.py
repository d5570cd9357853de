"""The dashboard's Map over a real hub on loopback (SQLite): map.json's layers cut to the
caller, its filters and their errors, the page with and without the vendored libraries,
and the map drawn by a real browser (Debian's chromium through Playwright).

What an operator relies on: a declared activity shows where it was declared, a finding
shows with links to its evidence, and nothing of another pair's private exchange shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.acts.model import PT_EVENT
from cbmnet.hub.service import HubSettings
from cbmnet.hub.web import maps as dashboard_map
from cbmnet.hub.web.render import STATIC
from tests import browserkit
from tests.hubkit import TestHub, running_hub
from tests.test_hub_api import POINT, Api, FakeClock, activity, event

VD = "vienna-document-2011"
ICT = "osce-ict-cbm-2016"
SECRET = "req-secret-map"
SECRET_AT = {"type": "Point", "coordinates": [10.5, 51.5]}
BRUSSELS = {"type": "Point", "coordinates": [4.35, 50.85]}
ROWS = (
    b"id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence\n"
    b"o1,2030-05-02T06:00:00Z,16.37,48.21,sat-1,satellite,acv,4,0.8\n"
    b"o2,2030-05-03T06:00:00Z,16.38,48.22,sat-1,satellite,acv,6,0.9\n"
    b"o3,2030-08-02T06:00:00Z,4.35,50.85,sat-1,satellite,troops,300,0.7\n"
)


@pytest.fixture(autouse=True)
def fresh_map_cache() -> None:
    """Some tests here change the module's limits or the hub's zones in place, which the
    answer cache (keyed by caller, filters, log size and time) cannot see: start empty."""
    dashboard_map._MAP_CACHE.clear()


@dataclass
class World:
    th: TestHub
    api: Api
    index: dict[str, int]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("map")
    clock = FakeClock("2030-06-01T00:00:00Z")
    # Many map requests in a row: lift the per-party evaluation budget (tested elsewhere).
    fast = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp, clock=clock, settings=fast) as th:
        api = Api(th)
        try:
            th.register("AUT", "BEL", "CHE")
            idx: dict[str, int] = {}
            # AUT's exercise took place in May without any notification: a finding.
            act1 = activity("AUT", "act-1", "2030-05-01T00:00:00Z", "2030-05-10T00:00:00Z")
            idx["act-1"] = api.act(api.sign("AUT", PT_EVENT, {**act1, "exercise": True}))["index"]
            actb = activity("BEL", "act-b", "2030-08-01T00:00:00Z", "2030-08-05T00:00:00Z")
            actb["location"] = BRUSSELS
            idx["act-b"] = api.act(api.sign("BEL", PT_EVENT, actb))["index"]
            private = event("AUT", SECRET, "request", kind="explanation", to="BEL", location=SECRET_AT)
            idx[SECRET] = api.act(api.sign("AUT", PT_EVENT, private))["index"]
            with th.client("AUT") as aut:
                idx["batch"] = aut.submit_observations(VD, "pass-1", ROWS, "csv")["index"]
            yield World(th, api, idx)
        finally:
            api.close()


@contextmanager
def session(w: World, party: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=w.th.url, timeout=60, follow_redirects=False) as http:
        code = browserkit.signin_code(w.th.url, w.api.token(party))
        r = http.post("/dashboard/login", data={"code": code}, headers={"Origin": w.th.url})
        assert r.status_code == 303, r.text
        yield http


def features(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = http.get("/dashboard/map.json", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "no-store" in r.headers["cache-control"]
    doc = r.json()
    assert doc["type"] == "FeatureCollection" and doc["truncated"] is False
    feats: list[dict[str, Any]] = doc["features"]
    assert {f["properties"]["layer"] for f in feats} <= set(dashboard_map.LAYERS)
    return feats


def by_id(feats: list[dict[str, Any]], layer: str) -> dict[str, dict[str, Any]]:
    return {f["properties"]["id"]: f for f in feats if f["properties"]["layer"] == layer}


def test_activity_shows_at_its_declared_location(world: World) -> None:
    with session(world, "CHE") as http:
        acts = by_id(features(http), "activity")
    assert set(acts) == {"act-1", "act-b"}
    a1 = acts["act-1"]
    assert a1["geometry"] == POINT
    p = a1["properties"]
    assert (p["party"], p["agreement"], p["type"], p["exercise"]) == ("AUT", VD, "activity", True)
    assert (p["start"], p["end"]) == ("2030-05-01T00:00:00Z", "2030-05-10T00:00:00Z")
    assert p["entry_url"] == f"/dashboard/entries/{world.index['act-1']}/envelope"
    assert p["verify_url"] == f"/dashboard/verify/{world.index['act-1']}"
    assert acts["act-b"]["geometry"] == BRUSSELS and acts["act-b"]["properties"]["exercise"] is False


def test_finding_shows_with_links_to_its_evidence(world: World) -> None:
    with session(world, "BEL") as http:
        feats = features(http)
    found = [f for f in feats if f["properties"]["layer"] == "finding"]
    missing = [f for f in found if f["properties"]["code"] == "notification.missing"]
    assert len(missing) == 1, [f["properties"]["code"] for f in found]
    f = missing[0]
    p = f["properties"]
    assert f["geometry"] == POINT  # pinned to its subject's declared location
    # VD11 Ch. V was not read (the notice measure is unconfirmed): info, never a violation.
    assert (p["party"], p["severity"], p["subjects"], p["exercise"]) == (
        "AUT",
        "info",
        ["act-1"],
        True,
    )
    i = world.index["act-1"]
    assert p["evidence"] == [
        {
            "subject": "act-1",
            "index": i,
            "entry_url": f"/dashboard/entries/{i}/envelope",
            "verify_url": f"/dashboard/verify/{i}",
        }
    ]
    # The same finding the hub's obligations API reports.
    rep = world.api.ok("/v1/obligations", "BEL", params={"agreement": VD})
    assert ("notification.missing", "AUT", ["act-1"]) in [
        (x["code"], x["party"], x["subjects"]) for x in rep["findings"]
    ]
    # The evidence link opens the verify page for a party that may read the entry.
    with session(world, "BEL") as http:
        assert http.get(p["evidence"][0]["verify_url"]).status_code == 200


def test_observation_density_counts_rows_per_cell(world: World) -> None:
    with session(world, "CHE") as http:
        cells = [f for f in features(http) if f["properties"]["layer"] == "observations"]
        may = [f for f in features(http, to="2030-06-01") if f["properties"]["layer"] == "observations"]
    got = sorted((c["properties"]["observations"], c["properties"]["count"]) for c in cells)
    assert got == [(1, 300), (2, 10)]
    vienna = next(c for c in cells if c["properties"]["observations"] == 2)
    ring = vienna["geometry"]["coordinates"][0]
    assert min(x for x, _ in ring) <= 16.37 <= max(x for x, _ in ring)
    assert min(y for _, y in ring) <= 48.21 <= max(y for _, y in ring)
    assert vienna["properties"]["batches"] == [world.index["batch"]]
    assert vienna["properties"]["parties"] == ["AUT"]
    assert [c["properties"]["observations"] for c in may] == [2]


def test_filters_by_agreement_party_and_time(world: World) -> None:
    with session(world, "CHE") as http:
        assert set(by_id(features(http, party="BEL"), "activity")) == {"act-b"}
        bel = by_id(features(http, party="BEL"), "finding").values()
        assert bel and all(f["properties"]["party"] == "BEL" for f in bel)
        assert by_id(features(http, party="BEL"), "observations") == {}  # AUT's batch
        assert set(by_id(features(http, party="AUT"), "finding"))
        assert by_id(features(http, agreement=ICT), "activity") == {}
        assert set(by_id(features(http, agreement=VD), "activity")) == {"act-1", "act-b"}
        assert set(by_id(features(http, **{"from": "2030-07-01"}), "activity")) == {"act-b"}
        assert set(by_id(features(http, to="2030-05-05"), "activity")) == {"act-1"}
        # A date-only "to" covers its whole day; an RFC 3339 time is taken as given.
        assert set(by_id(features(http, to="2030-08-01"), "activity")) == {"act-1", "act-b"}
        assert set(by_id(features(http, to="2030-08-01T00:00:00Z"), "activity")) == {"act-1"}
        window = {"from": "2030-05-05", "to": "2030-05-06"}
        assert set(by_id(features(http, **window), "activity")) == {"act-1"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"agreement": "no-such-agreement"}, "agreement"),
        ({"party": "<script>"}, "party"),
        ({"party": "ZZZ"}, "party"),
        ({"from": "2030-13-01"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2030-02-30"}, "to"),
        ({"from": "2030-06-01", "to": "2030-05-01"}, "to"),
    ],
)
def test_bad_filter_is_a_400_naming_the_field(world: World, params: dict[str, str], field: str) -> None:
    with session(world, "AUT") as http:
        r = http.get("/dashboard/map.json", params=params)
        assert r.status_code == 400, r.text
        doc = r.json()
        assert set(doc) == {"error", "message"} and doc["message"].startswith(f"{field}: "), doc
        page = http.get("/dashboard/map", params=params)
        assert page.status_code == 400 and "Cannot draw the map" in page.text
        assert "<script" not in page.text  # no map script, and the bad value escaped


def test_outsider_never_sees_a_private_exchange(world: World) -> None:
    for party, sees in (("AUT", True), ("BEL", True), ("CHE", False), ("secretariat", True)):
        with session(world, party) as http:
            r = http.get("/dashboard/map.json")
            assert r.status_code == 200
            assert (SECRET in r.text) is sees, party
            page = http.get("/dashboard/map")
            assert page.status_code == 200
            assert (SECRET in page.text) is sees, party
            if sees:
                secret = by_id(r.json()["features"], "activity")[SECRET]
                assert secret["geometry"] == SECRET_AT
    with httpx.Client(base_url=world.th.url, timeout=30) as anon:
        assert anon.get("/dashboard/map.json").status_code == 401
        assert anon.get("/dashboard/map").status_code == 401


def test_page_renders_with_and_without_the_vendored_libraries(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with session(world, "CHE") as http:
        r = http.get("/dashboard/map", params={"agreement": VD})
        assert r.status_code == 200, r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        page = r.text
        assert 'href="/dashboard/map"' in page and "<h1>Map</h1>" in page
        assert (
            '<label for="m-agreement">' in page
            and '<option value="vienna-document-2011" selected>' in page
        )
        assert "Legend" in page and '<table id="map-table">' in page
        assert "act-1" in page and "act-b" in page and "notification.missing" in page
        assert "<strong>EXERCISE</strong>" in page
        assert f'href="/dashboard/verify/{world.index["act-1"]}"' in page
        assert " style=" not in page and "<script>" not in page  # CSP: no inline style or script
        if dashboard_map.vendor_ready():
            assert '<div id="map"' in page and '<script src="/dashboard/static/map.js"></script>' in page
            assert "map assets not built" not in page
            for f in dashboard_map.VENDOR_FILES:
                assert http.get(f"/dashboard/static/vendor/{f}").status_code == 200, f
        js = http.get("/dashboard/static/map.js")
        assert js.status_code == 200 and "textContent" in js.text and "innerHTML" not in js.text
        # Without `make assets`: the page still works, says so, and loads no map script.
        monkeypatch.setattr(dashboard_map, "STATIC", tmp_path)
        bare = http.get("/dashboard/map")
        assert bare.status_code == 200
        assert "map assets not built: run make assets" in bare.text
        assert "<script" not in bare.text and '<div id="map"' not in bare.text
        assert "act-1" in bare.text


def test_zones_of_the_agreement_are_drawn(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from cbmnet.agreements.loader import resolve_zones
    from cbmnet.agreements.model import Zone

    hub = world.th.hub
    area = {"type": "Polygon", "coordinates": [[[15, 47], [17, 47], [17, 49], [15, 49], [15, 47]]]}
    zones = {
        "training-area": Zone(geometry=area, description="agreed <b>area</b>"),
        "aut-che": Zone(border=("AUT", "CHE")),
    }
    agreement = hub.agreements[VD].model_copy(update={"zones": zones})
    monkeypatch.setitem(hub.agreements, VD, agreement)
    monkeypatch.setitem(hub.zones, VD, resolve_zones(agreement))
    with session(world, "CHE") as http:
        got = by_id(features(http, agreement=VD), "zone")
        assert by_id(features(http, agreement=VD, party="AUT"), "zone") == {}
        page = http.get("/dashboard/map", params={"agreement": VD}).text
    assert set(got) == {"training-area", "aut-che"}
    assert got["training-area"]["geometry"] == area
    assert got["training-area"]["properties"]["source"] == "agreement geometry"
    assert got["training-area"]["properties"]["description"] == "agreed <b>area</b>"
    border = got["aut-che"]
    assert border["properties"]["source"] == "Natural Earth border"
    assert border["geometry"]["type"] in ("LineString", "MultiLineString")
    xs = [
        float(c)
        for c in str(border["geometry"]["coordinates"]).replace("[", "").replace("]", "").split(",")
    ]
    assert all(9 < x < 48 for x in xs)  # lon 9.5-10.5, lat 46.8-47.6: the Rhine and Alps
    assert "zone training-area" in page and "agreed &lt;b&gt;area&lt;/b&gt;" in page  # escaped
    assert "<b>area" not in page


def test_map_json_is_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_map, "MAX_FEATURES", 2)
    with session(world, "AUT") as http:
        doc = http.get("/dashboard/map.json").json()
    assert doc["truncated"] is True and len(doc["features"]) == 2


# ---- a real browser ----------------------------------------------------------------------


def vendor_or_skip() -> None:
    if not dashboard_map.vendor_ready():
        msg = f"the map's libraries are not in {STATIC / 'vendor'} (run make assets)"
        if os.environ.get("CI"):
            pytest.fail(msg + " (in CI the browser tests must run)")
        pytest.skip(msg)


def test_browser_draws_the_map_and_opens_popups(world: World, browser: Any) -> None:
    vendor_or_skip()
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = ctx.new_page()
        problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        browserkit.sign_in(page, world.th.url, world.api.token("CHE"))
        assert page.url.endswith("/dashboard")

        def open_map() -> None:
            """The page afresh: a popup pans the map, which may push other features off it."""
            page.goto(f"{world.th.url}/dashboard/map?agreement={VD}")
            page.wait_for_selector("#map[data-ready='true']", timeout=30_000)

        open_map()
        assert page.locator("path.map-outline").count() > 100  # the world's countries
        page.wait_for_selector("path.map-activity.leaflet-interactive", timeout=10_000)
        assert page.locator("path.map-activity.leaflet-interactive").count() == 2
        assert page.locator("path.map-observations.leaflet-interactive").count() == 2
        assert "features drawn" in page.locator("#map-status").inner_text()
        # BEL's activity in Brussels: the western one of the two activity markers.
        markers = page.locator("path.map-activity.leaflet-interactive")
        xs = [(b or {"x": 0.0})["x"] for b in (markers.nth(i).bounding_box() for i in range(2))]
        markers.nth(xs.index(min(xs))).click()
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for(timeout=5_000)
        text = popup.inner_text()
        assert "act-b" in text and "BEL" in text and "EXERCISE" not in text
        assert popup.locator(f"a[href='/dashboard/verify/{world.index['act-b']}']").count() == 1
        # The finding on AUT's exercise: its code, its evidence, the EXERCISE mark. Findings
        # are rings around their subject (concentric when several): click each on its ring.
        n = page.locator("path.map-finding.leaflet-interactive").count()
        assert n >= 3  # act-1: notification and calendar missing; act-b: calendar missing
        codes = []
        for i in range(n):
            open_map()
            ring = page.locator("path.map-finding.leaflet-interactive").nth(i)
            box = ring.bounding_box()
            assert box is not None and ring.is_visible(), i
            ring.click(position={"x": 0.5, "y": box["height"] / 2})  # on the stroke
            popup.wait_for(timeout=5_000)
            text = popup.inner_text()
            codes += [c for c in ("notification.missing", "calendar.missing") if c in text]
            if "notification.missing" in text:
                assert "EXERCISE" in text and "act-1" in text and "info" in text
                link = popup.locator(f"a[href='/dashboard/verify/{world.index['act-1']}']")
                assert link.count() == 1
                browserkit.screenshot(page, "map")
        assert "notification.missing" in codes and "calendar.missing" in codes, codes
        assert not problems, problems  # no script error, no CSP refusal
    finally:
        ctx.close()


def test_undeclared_activity_is_reconciled_on_the_hub_with_its_batch_as_evidence(world: World) -> None:
    """Sensor rows far from anything declared: the hub reconciles the readable batches and
    the map shows the discrepancy where the rows are, linking the batch that holds them."""
    rows = [b"id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence"]
    for k in range(30):
        # Two looks (a satellite pass at 06:00, an aerial one at 10:00) at 30 units of 700.
        sensor, hour = ("sat-1,satellite", "06") if k % 2 else ("aer-2,aerial", "10")
        rows.append(
            f"u{k},2030-04-02T{hour}:0{k % 10}:00Z,{15.90 + k * 0.002:.3f},{47.60 + k * 0.001:.3f},"
            f"{sensor},troops,700,0.95".encode()
        )
    with world.th.client("AUT") as aut:
        batch = aut.submit_observations(VD, "pass-undeclared", b"\n".join(rows) + b"\n", "csv")["index"]
    with session(world, "CHE") as http:
        found = [
            f
            for f in features(http)
            if f["properties"]["layer"] == "finding"
            and f["properties"].get("source") == "reconciliation"
        ]
        later = [
            f
            for f in features(http, to="2030-03-01")
            if f["properties"].get("source") == "reconciliation"
        ]
    undeclared = [f for f in found if f["properties"]["code"] == "discrepancy.undeclared_activity"]
    assert len(undeclared) == 1, [f["properties"]["code"] for f in found]
    p = undeclared[0]["properties"]
    assert p["details"]["sensors"] == ["aer-2", "sat-1"]
    assert p["details"]["observations"] == 30 and p["details"]["estimate"].get("troops", 0) >= 9000
    assert batch in [e["index"] for e in p["evidence"]]
    xs = [x for x, _ in undeclared[0]["geometry"]["coordinates"][0]]
    assert min(xs) >= 15.89 and max(xs) <= 15.97
    assert later == []  # the rows are of April: a window ending in February shows nothing


def test_a_corrected_location_moves_and_a_withdrawn_event_leaves(world: World) -> None:
    """The map reads each event's location once and extends that as the log grows; a
    correction or a withdrawal makes it read them again: the map follows both."""
    api = world.api
    moved = activity("BEL", "act-moved", "2030-09-01T00:00:00Z", "2030-09-02T00:00:00Z")
    api.act(api.sign("BEL", PT_EVENT, {**moved, "location": BRUSSELS}))
    with session(world, "CHE") as http:
        assert by_id(features(http), "activity")["act-moved"]["geometry"] == BRUSSELS
        fix = activity("BEL", "act-moved-fix", "2030-09-01T00:00:00Z", "2030-09-02T00:00:00Z")
        fix = {**fix, "location": SECRET_AT, "amends": {"id": "act-moved", "action": "correct"}}
        api.act(api.sign("BEL", PT_EVENT, fix))
        assert by_id(features(http), "activity")["act-moved"]["geometry"] == SECRET_AT
        gone = activity("BEL", "act-moved-w", "2030-09-01T00:00:00Z", "2030-09-02T00:00:00Z")
        gone = {**gone, "amends": {"id": "act-moved", "action": "withdraw"}}
        api.act(api.sign("BEL", PT_EVENT, gone))
        assert "act-moved" not in by_id(features(http), "activity")
