// cbmnet officer's forms: render a form the hub derived from the agreement, show what the
// draft would do if sent now (the hub's dry run), sign it in this page and send it.
//
// The key is signer.js's: imported non-extractable, never sent (docs/adr/0004). The draft
// is kept in this browser's localStorage until the hub has logged it; a refused send keeps
// it. Every text from the hub is inserted with textContent. Plain ES2020, no inline script.
"use strict";

(function () {
  const S = globalThis.cbmnetSigner;
  // Fixed here, not taken from the hub: what the key signs is an events-v1 event.
  const PAYLOAD_TYPE = "application/vnd.cbmnet.event+json";
  const MAX_TEXT = 65536; // characters of a body or reason (the hub's MAX_BODY_CHARS)
  const PRIVATE_TEXT = ["body", "reason"]; // never sent for a dry run: the operator reads drafts
  const $ = (id) => document.getElementById(id);
  const root = $("fl");
  if (!root) return;
  const agreement = root.dataset.agreement;
  const party = root.dataset.party;
  let view = null; // /dashboard/file.json
  let form = null; // the chosen form
  let signer = null;
  let checked = null; // the draft (as JSON text) the last dry run accepted
  let timer = null;
  let seq = 0;

  // The page's words in the reader's language (file.json's "ui"), English until it loads.
  const T = (key, english) => (view && view.ui && view.ui[key]) || english;
  const storeKey = (f) => `cbmnet-draft:${party}:${agreement}:${f.id}`;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function showError(text) {
    const p = $("fl-error");
    p.textContent = text || "";
    p.hidden = !text;
  }

  function newId() {
    const t = Date.now().toString(36);
    const r = Math.floor(Math.random() * 36 ** 4).toString(36);
    // The exact party id first: ids beginning "DEU-" are DEU's alone on the hub.
    return `${party}-${form.id.replace(/[^a-z0-9]+/g, "-")}-${t}${r}`;
  }

  // ---- building the form -----------------------------------------------------------------

  function input(f, id) {
    const choices = view.choices[f.kind];
    if (f.kind === "choice" || f.kind === "party" || ["own_activity", "own_incident", "request_to_us", "request"].includes(f.kind)) {
      const sel = el("select", { id });
      sel.appendChild(el("option", { value: "" }, f.required ? T("choose", "— choose —") : T("none", "— none —")));
      const items =
        f.kind === "choice"
          ? f.choices.map((c) => ({ id: c, text: c.replace(/_/g, " ") }))
          : f.kind === "party"
            ? view.choices.party.map((p) => ({ id: p, text: p }))
            : choices || [];
      for (const it of items) {
        sel.appendChild(el("option", { value: it.id }, it.id === it.text ? it.id : `${it.id} — ${it.text}`));
      }
      return sel;
    }
    if (f.kind === "parties" || f.kind === "own_activities" || f.kind === "parts") {
      const box = el("fieldset", { id, class: "choices" });
      box.appendChild(el("legend", {}, f.label));
      const items =
        f.kind === "parts"
          ? f.choices.map((c) => ({ id: c, text: c }))
          : f.kind === "parties"
            ? view.choices.party.map((p) => ({ id: p, text: p }))
            : view.choices.own_activity;
      for (const it of items) {
        const label = el("label");
        const cb = el("input", { type: "checkbox", value: it.id, "data-field": f.name });
        label.appendChild(cb);
        label.appendChild(document.createTextNode(` ${it.id}${it.text && it.text !== it.id ? ` — ${it.text}` : ""}`));
        box.appendChild(label);
      }
      if (!items.length) box.appendChild(el("p", {}, T("nothing_to_choose", "Nothing to choose from yet.")));
      return box;
    }
    if (f.kind === "time") return el("input", { id, type: "datetime-local", step: "60" });
    if (f.kind === "count" || f.kind === "year") return el("input", { id, type: "number", min: f.kind === "year" ? "1970" : "0", step: "1" });
    if (f.kind === "flag") return el("input", { id, type: "checkbox" });
    if (f.kind === "place") {
      return el("input", { id, type: "text", placeholder: "lon, lat — or a GeoJSON geometry", size: "40" });
    }
    if (f.name === "body" || f.name === "reason") return el("textarea", { id, rows: "3", cols: "60" });
    return el("input", { id, type: "text", size: "40" });
  }

  function build(f) {
    form = f;
    checked = null;
    $("fl-title").textContent = f.title;
    $("fl-draft-section").hidden = false;
    $("fl-receipt").hidden = true;
    const host = $("fl-form");
    host.textContent = "";
    const idRow = el("p");
    idRow.appendChild(el("label", { for: "fl-f-id" }, T("event_id", "Event id (unique in the agreement's log)")));
    idRow.appendChild(el("input", { id: "fl-f-id", type: "text", size: "40" }));
    if (f.serves.length) {
      const serves = el("details", { class: "serves" });
      serves.appendChild(el("summary", {}, T("serves", "The measures it serves")));
      const ul = el("ul");
      for (const m of f.serves) {
        ul.appendChild(el("li", {}, `${m.title} — ${m.provision}${m.unconfirmed ? " (unconfirmed)" : ""}`));
      }
      serves.appendChild(ul);
      host.appendChild(serves);
    }
    host.appendChild(idRow);
    host.appendChild(amendRow(f));
    for (const [i, fld] of f.fields.entries()) {
      const id = `fl-f-${i}`;
      const row = el("div", { class: "field", "data-name": fld.name });
      const ctl = input(fld, id);
      if (ctl.tagName !== "FIELDSET") {
        row.appendChild(el("label", { for: id }, fld.label + (fld.required ? ` ${T("required", "(required)")}` : "")));
      }
      row.appendChild(ctl);
      for (const h of fld.hints) row.appendChild(el("p", { class: "hint" }, h));
      host.appendChild(row);
      if (fld.kind === "place" && globalThis.cbmnetPicker) {
        // In the page first: a map measures its box when it is made.
        globalThis.cbmnetPicker.attach(ctl, {
          point: T("pick_point", "Click a point"),
          area: T("pick_area", "Draw an area (click its corners)"),
          close: T("pick_close", "Close the area"),
          clear: T("pick_clear", "Clear"),
        });
      }
    }
    restore();
    if (!$("fl-f-id").value) $("fl-f-id").value = newId();
    host.oninput = changed;
    host.onchange = changed;
    changed();
  }

  // ---- corrections and withdrawals of the party's own acts ------------------------------

  function ownOfForm(f) {
    return (view.choices.own_event || []).filter(
      (e) =>
        e.doc.type === f.fixed.type &&
        (!f.fixed.form || e.doc.form === f.fixed.form) &&
        (!f.fixed.kind || e.doc.kind === f.fixed.kind) &&
        !e.doc.amends,
    );
  }

  function amendRow(f) {
    const row = el("p", { class: "field", "data-name": "amends" });
    row.appendChild(el("label", { for: "fl-amend" }, T("amend_label", "This act")));
    const sel = el("select", { id: "fl-amend" });
    sel.appendChild(el("option", { value: "" }, T("amend_new", "is new")));
    for (const e of ownOfForm(f)) {
      const text = e.text ? ` — ${e.text}` : "";
      sel.appendChild(el("option", { value: `correct:${e.id}` }, T("amend_correct", "corrects %(id)s").replace("%(id)s", e.id) + text));
      sel.appendChild(el("option", { value: `withdraw:${e.id}` }, T("amend_withdraw", "withdraws %(id)s").replace("%(id)s", e.id) + text));
    }
    sel.addEventListener("change", () => amend(f, sel.value));
    row.appendChild(sel);
    return row;
  }

  function valueOf(doc, name) {
    return name.split(".").reduce((at, k) => (at && typeof at === "object" ? at[k] : undefined), doc);
  }

  // Fill the form from the event amended; a withdrawal re-sends it as it stands, unchanged.
  // "correct:ID" / "withdraw:ID" (the select's value) -> {action, id}; "" -> null.
  function amendment(choice) {
    const cut = choice ? choice.indexOf(":") : -1;
    return cut < 0 ? null : { action: choice.slice(0, cut), id: choice.slice(cut + 1) };
  }

  function amend(f, choice) {
    const { action, id } = amendment(choice) || { action: "", id: "" };
    const own = ownOfForm(f).find((e) => e.id === id);
    f.fields.forEach((fld, i) => {
      const ctl = $(`fl-f-${i}`);
      const lock = action === "withdraw";
      for (const c of ctl.tagName === "FIELDSET" ? ctl.querySelectorAll("input") : [ctl]) c.disabled = lock;
      if (!own) return;
      const v = valueOf(own.doc, fld.name);
      if (ctl.tagName === "FIELDSET") {
        const want = Array.isArray(v) ? v.map(String) : [];
        for (const c of ctl.querySelectorAll("input")) c.checked = want.includes(c.value);
      } else if (fld.kind === "flag") {
        ctl.checked = v === true;
      } else if (v === undefined || v === null) {
        ctl.value = "";
      } else if (fld.kind === "time") {
        ctl.value = String(v).slice(0, 16);
      } else if (fld.kind === "place") {
        ctl.value = v.type === "Point" ? `${v.coordinates[0]}, ${v.coordinates[1]}` : JSON.stringify(v);
      } else {
        ctl.value = String(v);
      }
    });
    changed();
  }

  // ---- reading the form into an event ------------------------------------------------------

  function place(text, label) {
    const t = text.trim();
    if (t.startsWith("{")) {
      try {
        return JSON.parse(t);
      } catch (e) {
        throw new Error(`${label}: not valid GeoJSON`);
      }
    }
    const m = t.match(/^(-?\d+(?:\.\d+)?)\s*[, ]\s*(-?\d+(?:\.\d+)?)$/);
    if (!m) throw new Error(`${label}: give "lon, lat" in degrees, or a GeoJSON geometry`);
    return { type: "Point", coordinates: [Number(m[1]), Number(m[2])] };
  }

  function read() {
    const doc = { agreement, id: $("fl-f-id").value.trim(), party, ...form.fixed };
    const amending = $("fl-amend") && amendment($("fl-amend").value);
    if (amending) doc.amends = { id: amending.id, action: amending.action };
    for (const [i, f] of form.fields.entries()) {
      const ctl = $(`fl-f-${i}`);
      let v;
      if (ctl.tagName === "FIELDSET") {
        const picked = Array.from(ctl.querySelectorAll("input:checked"), (c) => c.value);
        v = picked.length || f.kind === "own_activities" ? picked : undefined;
        if (f.kind === "own_activities" && !picked.length) v = [];
      } else if (f.kind === "flag") {
        v = ctl.checked ? true : undefined;
      } else if (ctl.value.trim() === "") {
        v = undefined;
      } else if (f.kind === "time") {
        v = `${ctl.value.length === 16 ? `${ctl.value}:00` : ctl.value}Z`;
      } else if (f.kind === "count" || f.kind === "year") {
        v = Number(ctl.value);
        if (!Number.isInteger(v) || v < 0) throw new Error(`${f.label}: a whole number`);
      } else if (f.kind === "place") {
        v = place(ctl.value, f.label);
      } else {
        v = ctl.value.trim();
      }
      if (v === undefined) {
        if (f.required) throw new Error(`${f.label}: required`);
        continue;
      }
      if (f.kind === "parties" && !v.length) continue;
      const path = f.name.split(".");
      let at = doc;
      for (const p of path.slice(0, -1)) at = at[p] = at[p] || {};
      at[path[path.length - 1]] = v;
    }
    return doc;
  }

  // ---- drafts kept in the browser ------------------------------------------------------

  function save() {
    const values = { id: $("fl-f-id").value };
    form.fields.forEach((f, i) => {
      const ctl = $(`fl-f-${i}`);
      if (ctl.tagName === "FIELDSET") values[i] = Array.from(ctl.querySelectorAll("input:checked"), (c) => c.value);
      else if (f.kind === "flag") values[i] = ctl.checked;
      else values[i] = ctl.value;
    });
    try {
      localStorage.setItem(storeKey(form), JSON.stringify(values));
    } catch (e) {
      /* storage full or disabled: the draft lives as long as the page */
    }
  }

  function restore() {
    let values = null;
    try {
      values = JSON.parse(localStorage.getItem(storeKey(form)) || "null");
    } catch (e) {
      values = null;
    }
    if (!values) return;
    $("fl-f-id").value = values.id || "";
    form.fields.forEach((f, i) => {
      const ctl = $(`fl-f-${i}`);
      const v = values[i];
      if (v === undefined) return;
      if (ctl.tagName === "FIELDSET") {
        for (const c of ctl.querySelectorAll("input")) c.checked = v.includes(c.value);
      } else if (f.kind === "flag") ctl.checked = !!v;
      else ctl.value = v;
    });
  }

  function discard() {
    if (!form) return;
    localStorage.removeItem(storeKey(form));
    build(form);
    $("fl-f-id").value = newId();
    changed();
  }

  // ---- the hub's dry run -----------------------------------------------------------------

  // A message of file.json's "ui" with its %(name)s filled (English until it loads).
  const F = (key, english, vars) =>
    T(key, english).replace(/%\((\w+)\)s/g, (_m, name) => (name in vars ? String(vars[name]) : ""));

  function when(ms) {
    if (ms < 3600000) return T("under_hour", "under an hour");
    const h = Math.round(ms / 3600000);
    return h >= 48
      ? F("n_days", "%(n)s days", { n: Math.round(h / 24) })
      : F("n_hours", "%(n)s hours", { n: h });
  }

  function obligationLine(o, starts) {
    const what = o.kind.replace(/_/g, " ");
    const due = F("due_at", "due %(time)s", {
      time: o.due.replace("T", " ").replace(/:00Z$/, " UTC").replace(/Z$/, " UTC"),
    });
    const whose = starts ? F("owes", "%(party)s owes %(what)s", { party: o.party, what }) : what;
    let state;
    if (o.status === "met") state = T("met_on_time", "met on time");
    else if (o.status === "late") state = F("met_late", "met, %(late)s late", { late: when(o.late_by_ms) });
    else if (o.status === "missed") state = F("overdue", "already %(late)s overdue", { late: when(o.late_by_ms) });
    else if (o.late_by_ms > 0) {
      state = F("past_due", "open, %(late)s past due (judged at the period's end)", { late: when(o.late_by_ms) });
    } else state = T("pending", "pending");
    return `${whose} (${o.provision}), ${due}: ${state}`;
  }

  function findingLine(f) {
    return `${f.severity.toUpperCase()} ${f.code} against ${f.party} (${f.provision}): ${f.message}`;
  }

  function list(title, items, line, cls) {
    const box = el("div", { class: cls });
    box.appendChild(el("h4", {}, title));
    const ul = el("ul");
    for (const it of items) ul.appendChild(el("li", {}, line(it)));
    box.appendChild(ul);
    return box;
  }

  function showEffect(out) {
    const box = $("fl-effect");
    box.textContent = "";
    if (out.meets.length) box.appendChild(list(T("meets", "Meets"), out.meets, (o) => obligationLine(o, false), "meets"));
    if (out.starts.length) box.appendChild(list(T("starts", "Starts"), out.starts, (o) => obligationLine(o, true), "starts"));
    if (out.concerns.length) {
      box.appendChild(list(T("concerns", "Concerns (left open)"), out.concerns, (o) => obligationLine(o, true), "concerns"));
    }
    if (out.note) box.appendChild(el("p", { class: "note" }, out.note));
    if (out.adds.length) box.appendChild(list(T("adds", "Findings it would add"), out.adds, findingLine, "adds"));
    if (out.clears.length) box.appendChild(list(T("clears", "Findings it would clear"), out.clears, findingLine, "clears"));
    if (!box.childNodes.length) box.appendChild(el("p", {}, T("nothing", "Accepted by the hub; it meets no deadline and changes no finding.")));
  }

  function changed() {
    save();
    // A "change" fired by leaving a field (say, to press Send) changes nothing: keep the check.
    try {
      if (checked !== null && JSON.stringify(read()) === checked) return;
    } catch (e) {
      /* unreadable now: checked again below */
    }
    checked = null;
    updateSend();
    clearTimeout(timer);
    timer = setTimeout(dryRun, 300);
  }

  let inflight = null;

  async function dryRun() {
    let doc;
    try {
      doc = read();
      for (const k of PRIVATE_TEXT) {
        if (typeof doc[k] === "string" && doc[k].length > MAX_TEXT) {
          throw new Error(`${k}: at most ${MAX_TEXT} characters`);
        }
      }
    } catch (e) {
      showError(e.message);
      $("fl-effect").textContent = "";
      return;
    }
    const mine = ++seq;
    const text = JSON.stringify(doc);
    const probe = { ...doc };
    for (const k of PRIVATE_TEXT) delete probe[k];
    if (inflight) inflight.abort(); // only the latest draft matters
    inflight = new AbortController();
    let r;
    try {
      r = await fetch(`/dashboard/file/dry-run?agreement=${encodeURIComponent(agreement)}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(probe),
        credentials: "same-origin",
        signal: inflight.signal,
      });
    } catch (e) {
      if (mine === seq) showError(`The hub could not be asked (${e.message}); retrying.`);
      if (mine === seq) timer = setTimeout(dryRun, 3000);
      return;
    }
    if (mine !== seq) return; // a later keystroke asked again
    if (r.status === 429) {
      const wait = Math.max(1, Number(r.headers.get("Retry-After")) || 1);
      timer = setTimeout(dryRun, wait * 1000);
      return;
    }
    if (!r.ok) {
      showError((await S.refusal(r)).message);
      $("fl-effect").textContent = "";
      return;
    }
    showError("");
    showEffect(await r.json());
    checked = text;
    updateSend();
  }

  function updateSend() {
    $("fl-send").disabled = !(signer && checked);
  }

  // ---- signing and sending ---------------------------------------------------------------

  async function send() {
    let doc;
    try {
      doc = read();
    } catch (e) {
      showError(e.message);
      return;
    }
    if (JSON.stringify(doc) !== checked) {
      showError("The draft changed since the hub checked it: wait for the check.");
      return;
    }
    $("fl-send").disabled = true;
    try {
      const envelope = await S.signEnvelope(signer, PAYLOAD_TYPE, doc);
      const receipt = await S.postAct(envelope, true);
      localStorage.removeItem(storeKey(form));
      const what = receipt.duplicate ? "Already logged" : "Logged";
      $("fl-receipt-text").textContent = `${what} at entry ${receipt.index}, integrated ${receipt.integrated_at}: ${doc.id}.`;
      const blob = new Blob([receipt.tlog_proof], { type: "text/plain" });
      const link = $("fl-receipt-save");
      link.href = URL.createObjectURL(blob);
      link.download = `${doc.id}.tlog-proof`;
      $("fl-receipt").hidden = false;
      $("fl-draft-section").hidden = true;
      const sent = form;
      view = await load();
      form = sent;
    } catch (e) {
      showError(`Not sent (the draft is kept): ${e.message}`);
      updateSend();
    }
  }

  // ---- start -----------------------------------------------------------------------------

  async function load() {
    const r = await fetch(`/dashboard/file.json?agreement=${encodeURIComponent(agreement)}`, {
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!r.ok) throw await S.refusal(r);
    return r.json();
  }

  if ($("fl-key")) {
    const who = async () => ({ party, keys: view.signing_keys });
    const purpose = "acts are signed in this page.";
    const say = (kind, vars) =>
      F(`key_${kind}`, S.KEY_WORDS[kind], { ...vars, purpose: F("key_purpose", purpose) });
    S.watchKeyFile($("fl-key"), $("fl-key-status"), who, purpose, (loaded) => {
      signer = loaded;
      if (signer) obsReady();
      updateSend();
    }, say);
  }
  $("fl-send").addEventListener("click", () => send());

  // ---- an observation batch: its hash signed and logged here, then its rows stored ------

  const OBS_TYPE = "application/vnd.cbmnet.observations+json";
  const FORMATS = { csv: "csv", geojson: "geojson", json: "geojson", parquet: "parquet" };

  function obsReady() {
    const btn = $("fl-obs-send");
    if (!btn) return;
    const file = $("fl-obs-file").files[0];
    btn.disabled = !(signer && file && $("fl-obs-batch").value.trim());
  }

  async function uploadBatch() {
    const out = $("fl-obs-status");
    const file = $("fl-obs-file").files[0];
    const ext = file.name.split(".").pop().toLowerCase();
    const format = FORMATS[ext];
    if (!format) throw new Error("a .csv, .geojson or .parquet file");
    if (file.size > view.max_batch_bytes) throw new Error(`at most ${view.max_batch_bytes} bytes`);
    const data = new Uint8Array(await file.arrayBuffer());
    const act = {
      act: "observations.batch",
      party,
      agreement,
      batch: $("fl-obs-batch").value.trim(),
      sha256: await S.sha256hex(data),
      bytes: data.length,
      format,
    };
    const receipt = await S.postAct(await S.signEnvelope(signer, OBS_TYPE, act), true);
    const bearer = await S.token(signer, view.origin);
    const r = await fetch(`/v1/observations/${receipt.index}`, {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", Authorization: `Bearer ${bearer}` },
      body: data,
      credentials: "omit",
    });
    if (!r.ok) throw await S.refusal(r);
    out.textContent = F("obs_done", "Logged at entry %(index)s and stored: %(bytes)s bytes.", {
      index: receipt.index,
      bytes: data.length,
    });
  }

  if ($("fl-obs-send")) {
    $("fl-obs-file").addEventListener("change", obsReady);
    $("fl-obs-batch").addEventListener("input", obsReady);
    $("fl-obs-send").addEventListener("click", async () => {
      $("fl-obs-send").disabled = true;
      try {
        await uploadBatch();
      } catch (e) {
        $("fl-obs-status").textContent = `${T("not_sent", "Not sent")}: ${e.message}`;
      }
      obsReady();
    });
  }
  $("fl-discard").addEventListener("click", discard);

  // A link from the work queue names the form and what it answers (?form=response&request=…).
  // Only the subject and the decision are taken from a link: never text the officer would
  // then sign without having written it.
  const PREFILLED = ["activity", "request", "decision"];
  function prefill(q) {
    form.fields.forEach((f, i) => {
      const v = q.get(f.name);
      if (v === null || !PREFILLED.includes(f.name)) return;
      const ctl = $(`fl-f-${i}`);
      if (ctl.tagName === "FIELDSET") {
        const want = v.split(",");
        for (const c of ctl.querySelectorAll("input")) c.checked = want.includes(c.value);
      } else if (ctl.tagName === "SELECT") {
        if (Array.from(ctl.options).some((o) => o.value === v)) ctl.value = v;
      } else if (f.kind !== "flag") {
        ctl.value = v;
      }
    });
    changed();
  }

  if (!agreement) return;
  load()
    .then((v) => {
      view = v;
      for (const b of document.querySelectorAll("#fl-forms button[data-form]")) {
        const f = view.forms.find((x) => x.id === b.dataset.form);
        if (!f) continue;
        b.disabled = false;
        b.addEventListener("click", () => build(f));
      }
      const q = new URLSearchParams(location.search);
      const asked = view.forms.find((x) => x.id === q.get("form"));
      if (asked) {
        build(asked);
        prefill(q);
      }
    })
    .catch((e) => showError(`Could not load the forms: ${e.message}`));
})();
