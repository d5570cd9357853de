// A map picker for the forms' places: a point by one click, an area by clicks then "Close
// the area". Leaflet over the world-atlas outlines (Natural Earth), no tiles: nothing is
// fetched from outside this hub. The field keeps its text ("lon, lat" or GeoJSON), so the
// picker is a help, never the only way to give a place.
"use strict";

(function () {
  let atlas = null; // the outlines, fetched once per page

  async function outlines() {
    if (!atlas) {
      const r = await fetch("/dashboard/static/vendor/countries-50m.json", { credentials: "same-origin" });
      if (!r.ok) throw new Error(`outlines: HTTP ${r.status}`);
      const topo = await r.json();
      atlas = topojson.feature(topo, topo.objects.countries);
    }
    return atlas;
  }

  const round = (x) => Math.round(x * 10000) / 10000;

  // Attach a picker under `input`; `labels`: {point, area, close, clear} in the page's language.
  function attach(input, labels) {
    if (typeof L === "undefined" || typeof topojson === "undefined") return null;
    const box = document.createElement("div");
    box.className = "picker";
    const bar = document.createElement("p");
    const mode = { area: false, vertices: [] };
    const btn = (text, on) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.addEventListener("click", on);
      bar.appendChild(b);
      return b;
    };
    const holder = document.createElement("div");
    holder.className = "picker-map";
    box.append(bar, holder);
    input.insertAdjacentElement("afterend", box);
    const map = L.map(holder, { worldCopyJump: true, fadeAnimation: false, zoomAnimation: false });
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution("Natural Earth");
    map.setView([35, 30], 2, { animate: false });
    setTimeout(() => map.invalidateSize(), 0);
    outlines()
      .then((world) => L.geoJSON(world, { style: { color: "#486581", weight: 1, fillOpacity: 0.05 } }).addTo(map))
      .catch(() => {});
    const drawn = L.layerGroup().addTo(map);

    function set(value) {
      input.value = value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function redraw() {
      drawn.clearLayers();
      if (mode.vertices.length) L.polyline(mode.vertices.map(([x, y]) => [y, x])).addTo(drawn);
    }

    btn(labels.point, () => {
      mode.area = false;
      mode.vertices = [];
      redraw();
    });
    btn(labels.area, () => {
      mode.area = true;
      mode.vertices = [];
      redraw();
    });
    btn(labels.close, () => {
      if (mode.vertices.length < 3) return;
      const ring = [...mode.vertices, mode.vertices[0]];
      set(JSON.stringify({ type: "Polygon", coordinates: [ring] }));
      L.polygon(ring.map(([x, y]) => [y, x])).addTo(drawn);
      mode.vertices = [];
    });
    btn(labels.clear, () => {
      mode.vertices = [];
      drawn.clearLayers();
      set("");
    });
    map.on("click", (ev) => {
      const lon = round(((((ev.latlng.lng + 180) % 360) + 360) % 360) - 180);
      const lat = round(ev.latlng.lat);
      if (mode.area) {
        mode.vertices.push([lon, lat]);
        redraw();
      } else {
        drawn.clearLayers();
        L.circleMarker([lat, lon], { radius: 6 }).addTo(drawn);
        set(`${lon}, ${lat}`);
      }
    });
    return map;
  }

  globalThis.cbmnetPicker = { attach };
})();
