// The dashboard's Map: Leaflet over world-atlas country outlines (Natural Earth), no tiles.
// The features come from /dashboard/map.json with the page's own filters, already cut to
// the signed-in party. Text from the data goes into the page only as DOM text nodes
// (textContent), never as HTML.
"use strict";

(function () {
  const el = document.getElementById("map");
  const status = document.getElementById("map-status");
  if (!el || typeof L === "undefined" || typeof topojson === "undefined") {
    if (status) status.textContent = "The map libraries did not load; the table below lists every feature.";
    return;
  }
  const say = (text) => {
    if (status) status.textContent = text;
  };

  const STYLES = {
    zone: { color: "#7a3e9d", weight: 2, dashArray: "6 4", fill: false },
    activity: { color: "#0b4f8a", weight: 2, fillColor: "#0b4f8a", fillOpacity: 0.35 },
    observations: { color: "#b35900", weight: 1, fillColor: "#e67e22" },
    // A ring around its subject, so the activity inside stays visible and clickable.
    finding: { color: "#9b1c1c", weight: 4, fill: false },
  };
  const RADIUS = { activity: 7, finding: 13, zone: 4, observations: 4 };

  const map = L.map(el, {
    worldCopyJump: true,
    attributionControl: true,
    preferCanvas: false, // SVG: every feature is a DOM element (clickable, testable)
    fadeAnimation: false,
    zoomAnimation: false,
  });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Outlines: Natural Earth (world-atlas)");
  map.setView([30, 10], 2, { animate: false });

  function node(tag, text, cls) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (cls) n.className = cls;
    return n;
  }

  function line(label, value) {
    if (value === undefined || value === null || value === "") return null;
    const p = node("p");
    p.appendChild(node("strong", label + ": "));
    p.appendChild(document.createTextNode(String(value)));
    return p;
  }

  function link(href, text) {
    const a = node("a", text);
    a.href = href;
    return a;
  }

  function entryLinks(p, index) {
    const i = Number(index);
    if (!Number.isSafeInteger(i) || i < 0) return null;
    const wrap = node("p");
    wrap.appendChild(node("strong", "Entry " + i + ": "));
    wrap.appendChild(link("/dashboard/entries/" + i + "/envelope", "signed envelope"));
    wrap.appendChild(document.createTextNode(" · "));
    wrap.appendChild(link("/dashboard/verify/" + i, "verify in your browser"));
    return wrap;
  }

  function popup(props) {
    const box = node("div", null, "map-popup");
    const head = node("h3");
    if (props.exercise === true) {
      head.appendChild(node("span", "EXERCISE", "exercise"));
      head.appendChild(document.createTextNode(" "));
    }
    head.appendChild(document.createTextNode(String(props.label || props.id || props.layer)));
    box.appendChild(head);
    const rows = [line("Layer", props.layer), line("Agreement", props.agreement)];
    if (props.layer === "activity") {
      rows.push(line("Party", props.party), line("Category", props.category));
      rows.push(line("From", props.start), line("To", props.end), line("Time", props.time));
      const size = props.size && typeof props.size === "object" ? props.size : {};
      const parts = Object.keys(size).map((k) => k + " " + size[k]);
      rows.push(line("Size", parts.join(", ")));
      rows.push(entryLinks(props, props.index));
    } else if (props.layer === "finding") {
      const sev = line("Severity", props.severity);
      if (sev) sev.className = "sev-" + String(props.severity).replace(/[^a-z]/g, "");
      rows.push(line("Code", props.code), sev, line("Party", props.party));
      rows.push(line("Provision", props.provision), line("Due", props.due));
      rows.push(line("Finding", props.message));
      for (const ev of Array.isArray(props.evidence) ? props.evidence : []) {
        rows.push(line("Evidence", "event " + ev.subject));
        rows.push(entryLinks(props, ev.index));
      }
    } else if (props.layer === "observations") {
      rows.push(line("Observations", props.observations), line("Objects counted", props.count));
      rows.push(line("Provided by", (props.parties || []).join(", ")));
      for (const b of Array.isArray(props.batches) ? props.batches : []) rows.push(entryLinks(props, b));
    } else {
      rows.push(line("Source", props.source), line("Description", props.description));
    }
    for (const r of rows) if (r) box.appendChild(r);
    return box;
  }

  function layerFor(fc, maxObs) {
    const rings = new Map(); // several findings on one place: concentric rings, each clickable
    const radius = (f, latlng) => {
      const base = RADIUS[f.properties.layer] || 6;
      if (f.properties.layer !== "finding") return base;
      const key = latlng.lat + "," + latlng.lng;
      const k = rings.get(key) || 0;
      rings.set(key, k + 1);
      return base + 6 * k;
    };
    return L.geoJSON(fc, {
      style: (f) => {
        const p = f.properties;
        const s = Object.assign({ className: "map-" + p.layer }, STYLES[p.layer] || {});
        if (p.layer === "observations") s.fillOpacity = 0.15 + 0.6 * Math.sqrt(p.observations / maxObs);
        return s;
      },
      pointToLayer: (f, latlng) =>
        L.circleMarker(
          latlng,
          Object.assign({ radius: radius(f, latlng), className: "map-" + f.properties.layer }, STYLES[f.properties.layer] || {}),
        ),
      onEachFeature: (f, layer) => layer.bindPopup(() => popup(f.properties)),
    });
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw new Error((body && body.message) || "HTTP " + r.status);
    return body;
  }

  async function draw() {
    const [atlas, data] = await Promise.all([
      getJSON("/dashboard/static/vendor/countries-50m.json"),
      getJSON(el.dataset.json + window.location.search),
    ]);
    const countries = topojson.feature(atlas, atlas.objects.countries);
    L.geoJSON(countries, {
      interactive: false,
      style: { color: "#5d6d7e", weight: 0.7, fillColor: "#f7f4ea", fillOpacity: 1, className: "map-outline" },
    }).addTo(map);
    const order = ["zone", "observations", "activity", "finding"];
    const obs = data.features.filter((f) => f.properties.layer === "observations");
    const maxObs = Math.max(1, ...obs.map((f) => Number(f.properties.observations) || 0));
    const bounds = L.latLngBounds([]);
    let drawn = 0;
    let zones = null;
    for (const name of order) {
      const feats = data.features.filter((f) => f.properties.layer === name && f.geometry);
      if (!feats.length) continue;
      const layer = layerFor({ type: "FeatureCollection", features: feats }, maxObs).addTo(map);
      if (name === "zone") zones = layer;
      else bounds.extend(layer.getBounds());
      drawn += feats.length;
    }
    // No animation: the outlines are redrawn once, for the final view, before "ready".
    if (bounds.isValid()) map.fitBounds(bounds.pad(0.3), { maxZoom: 7, animate: false });
    else if (zones && zones.getBounds().isValid()) map.fitBounds(zones.getBounds(), { animate: false });
    el.dataset.ready = "true";
    say(drawn + " features drawn" + (data.truncated ? " (truncated: narrow the filters)" : "") + ".");
  }

  draw().catch((err) => {
    el.dataset.ready = "error";
    say("The map could not be drawn: " + err.message + ". The table below lists every feature.");
  });
})();
