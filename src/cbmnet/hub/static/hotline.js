// cbmnet hotline console: live rows over a WebSocket, countdowns to each acknowledgement
// deadline, and an acknowledge button that signs the `ack` act in this browser.
//
// The party's signing key is read from a file the operator picks; it is imported into
// WebCrypto as a non-extractable Ed25519 key and never leaves the page. The statement an
// acknowledgement names (SHA-256 of the DSSE PAE of the message) is computed here from the
// message's own envelope, so the page's server cannot make us acknowledge something else.
// Signing is signer.js's (loaded before this file). Plain ES2020, no inline script.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let view = null;
  let offset = 0; // server clock minus ours, from the last view
  let signer = null; // {key: CryptoKey, keyid: string, party: string}
  let reader = null; // {key: CryptoKey, pub: Uint8Array}: the party's X25519 hotline key
  const opened = new Map(); // entry index -> {text} or {error}
  const busy = new Set();

  const { b64decode, b64encode, pae, sha256hex, signEnvelope, postAct } = globalThis.cbmnetSigner;

  // The page's words in the reader's language: the table's data-ui (JSON the server put
  // there, read as data: no inline script), English where a word is missing.
  let UI = {};
  try {
    const table = $("hl-table");
    UI = JSON.parse((table && table.dataset.ui) || "{}") || {};
  } catch (e) {
    UI = {};
  }
  // One of those words with its %(name)s filled.
  const T = (key, english, vars = {}) =>
    (typeof UI[key] === "string" && UI[key] ? UI[key] : english).replace(/%\((\w+)\)s/g, (_m, name) =>
      name in vars ? String(vars[name]) : "",
    );

  async function acknowledge(m) {
    const body = b64decode(m.envelope.payload);
    const statement = await sha256hex(pae(m.envelope.payloadType, body));
    const act = { act: "ack", entry: m.index, party: signer.party, statement };
    return postAct(await signEnvelope(signer, view.ack_payload_type, act), false);
  }

  function span(text, cls) {
    const s = document.createElement("span");
    if (cls) s.className = cls;
    s.textContent = text;
    return s;
  }

  function fmtLeft(ms) {
    const s = Math.max(0, Math.floor(Math.abs(ms) / 1000));
    const h = Math.floor(s / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  // Whose silence the countdown is about, for the signed-in party.
  function running(m) {
    if (view.party === "secretariat" || view.party === m.from) return m.waiting.length > 0;
    return m.waiting.includes(view.party);
  }

  // The countdown's words, and whether it has stopped.
  function countdown(m, now) {
    const mine = m.acks[view.party];
    if (mine) return { text: T("stopped_acked", "stopped: acknowledged at %(time)s", { time: mine.at }), stopped: true };
    if (m.no_answer.includes(view.party)) return { text: T("stopped_no_answer", "stopped: NO ANSWER logged"), stopped: true };
    if (!running(m)) {
      return m.waiting.length === 0
        ? { text: T("stopped_all", "stopped: all acknowledged"), stopped: true }
        : { text: "", stopped: false };
    }
    const left = m.deadline_ms - now;
    const text =
      left >= 0
        ? T("left", "%(time)s left", { time: fmtLeft(left) })
        : T("overdue_by", "overdue by %(time)s", { time: fmtLeft(left) });
    return { text, stopped: false };
  }

  function tick() {
    if (!view) return;
    const now = Date.now() + offset;
    for (const m of view.messages) {
      const cell = document.querySelector(`tr[data-index="${m.index}"] .countdown`);
      if (!cell) continue;
      const { text, stopped } = countdown(m, now);
      if (cell.textContent !== text) cell.textContent = text;
      const late = running(m) && !m.acks[view.party] && m.deadline_ms < now;
      cell.classList.toggle("late", late);
      cell.dataset.state = stopped ? "stopped" : running(m) ? "running" : "idle";
    }
  }

  function showError(text) {
    const el = $("hl-error");
    el.textContent = text;
    el.hidden = !text;
  }

  function row(m) {
    const tr = document.createElement("tr");
    tr.dataset.index = String(m.index);
    const td = (...kids) => {
      const c = document.createElement("td");
      for (const k of kids) c.append(k);
      tr.append(c);
      return c;
    };
    const first = td(String(m.index));
    if (m.exercise) first.append(" ", span("EXERCISE", "badge exercise"));
    td(m.sent);
    td(m.channel);
    td(m.from);
    td(span(m.precedence.toUpperCase(), `badge prec-${m.precedence}`));
    const got = opened.get(m.index);
    const bodyCell = td();
    bodyCell.className = "body";
    if (got && got.text !== undefined) bodyCell.textContent = got.text;
    else if (got) bodyCell.append(span(T("not_opened", "not opened: %(error)s", { error: got.error }), "error"));
    else bodyCell.textContent = T("sealed", "sealed");
    td(`${m.deadline} `, span("", "countdown"));
    const acked = td();
    const names = Object.keys(m.acks).sort();
    acked.append(names.map((w) => T("acked_at", "%(party)s at %(time)s", { party: w, time: m.acks[w].at })).join("; "));
    for (const w of m.no_answer) acked.append(" ", span(T("no_answer", "NO ANSWER: %(party)s", { party: w }), "badge no-answer"));
    if (m.waiting.length) acked.append(
        `${names.length ? "; " : ""}${T("waiting", "waiting for %(parties)s", { parties: m.waiting.join(", ") })}`,
      );
    const action = td();
    if (m.may_ack) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "ack";
      b.textContent = T("acknowledge", "Acknowledge %(index)s", { index: m.index });
      b.disabled = !signer || busy.has(m.index);
      b.title = signer
        ? T("ack_title", "Sign and log an acknowledgement")
        : T("load_key_first", "Load your signing key first");
      b.addEventListener("click", async () => {
        busy.add(m.index);
        b.disabled = true;
        b.textContent = T("signing", "Signing…");
        try {
          const receipt = await acknowledge(m);
          showError("");
          b.textContent = T("acknowledged", "Acknowledged (entry %(index)s)", { index: receipt.index });
          await refresh();
        } catch (e) {
          showError(
            T("ack_refused", "Acknowledgement of entry %(index)s refused: %(error)s", { index: m.index, error: e.message }),
          );
          b.textContent = T("acknowledge", "Acknowledge %(index)s", { index: m.index });
          b.disabled = false;
        } finally {
          busy.delete(m.index);
        }
      });
      action.append(b);
    }
    return tr;
  }

  function render() {
    const body = $("hl-rows");
    const rows = view.messages.map(row);
    if (!rows.length) {
      const tr = document.createElement("tr");
      const c = document.createElement("td");
      c.colSpan = 9;
      c.textContent = T("no_messages", "No messages on your channels.");
      tr.append(c);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $("hl-now").textContent = view.now;
    tick();
  }

  // Open our own ciphertext of each shown message, once (entries never change).
  async function openBodies() {
    if (!reader || !view) return;
    const H = globalThis.cbmnetHpke;
    let changed = false;
    for (const m of view.messages) {
      if (opened.has(m.index)) continue;
      try {
        const doc = JSON.parse(new TextDecoder().decode(b64decode(m.envelope.payload)));
        const ct = doc.ciphertexts && doc.ciphertexts[view.party];
        if (!ct) throw new Error(T("no_ciphertext", "no ciphertext for %(party)s", { party: view.party }));
        const info = H.hotlineInfo(view.origin, doc.channel, doc.id, doc.party);
        const pt = await H.open(H.unb64(ct), reader, info);
        opened.set(m.index, { text: new TextDecoder("utf-8", { fatal: true }).decode(pt) });
      } catch (e) {
        opened.set(m.index, { error: e.message });
      }
      changed = true;
    }
    if (changed) render();
  }

  async function refresh() {
    const r = await fetch("/dashboard/hotline.json", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) {
      $("hl-live").textContent = T("session_ended", "Your session ended: sign in again.");
      return;
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    view = await r.json();
    offset = view.now_ms - Date.now();
    render();
    await openBodies();
  }

  let retry = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/dashboard/hotline/stream`);
    ws.addEventListener("open", () => {
      retry = 1000;
      $("hl-live").textContent = T("live", "Live.");
    });
    ws.addEventListener("message", (ev) => {
      let msg = null;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (msg && msg.type === "changed") refresh().catch((e) => showError(T("refresh_failed", "Refresh failed: %(error)s", { error: e.message })));
    });
    ws.addEventListener("close", (ev) => {
      if (ev.code === 4401) {
        $("hl-live").textContent = T("session_ended", "Your session ended: sign in again.");
        return;
      }
      $("hl-live").textContent = T("reconnecting", "Reconnecting…");
      setTimeout(() => {
        refresh().catch(() => {});
        connect();
      }, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }

  if ($("hl-key")) {
    const who = async () => {
      if (!view) await refresh();
      return { party: view.party, keys: view.signing_keys };
    };
    const purpose = "acknowledgements and messages are signed in this page.";
    const S = globalThis.cbmnetSigner;
    const say = (kind, vars) =>
      T(`key_${kind}`, S.KEY_WORDS[kind], { ...vars, purpose: T("key_purpose", purpose) });
    S.watchKeyFile($("hl-key"), $("hl-key-status"), who, purpose, (loaded) => {
      signer = loaded;
      render();
      if (signer) updateCompose();
    }, say);
  }

  const hpkeInput = $("hl-hpke");
  if (hpkeInput) {
    hpkeInput.addEventListener("change", async () => {
      const out = $("hl-hpke-status");
      const file = hpkeInput.files && hpkeInput.files[0];
      hpkeInput.value = "";
      if (!file) return;
      try {
        if (file.size > 1024) throw new Error(T("hpke_too_long", "a hotline key file is one short line"));
        if (!view) await refresh();
        const loaded = await globalThis.cbmnetHpke.importPrivate(await file.text());
        if (b64encode(loaded.pub) !== view.encryption_key) {
          throw new Error(T("hpke_not_registered", "this is not the hotline key %(party)s registered", { party: view.party }));
        }
        reader = loaded;
        opened.clear();
        out.textContent = T("hpke_loaded", "Hotline key loaded: your copy of each message is opened in this page.");
        await openBodies();
      } catch (e) {
        reader = null;
        out.textContent = T("hpke_not_loaded", "Hotline key not loaded: %(error)s", { error: e.message });
      }
    });
  }

  // ---- sending: sealed to every member in this page, signed with the loaded key ----------

  const HOTLINE_TYPE = "application/vnd.cbmnet.hotline+json";
  const SUITE = "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-128-GCM";
  const MAX_BODY_BYTES = 16 * 1024;
  const textEncoder = new TextEncoder();

  function chosenChannel() {
    const sel = $("hl-channel");
    return sel && view ? view.channels.find((c) => c.id === sel.value) : null;
  }

  function updateCompose() {
    const btn = $("hl-send");
    if (!btn) return;
    const ch = chosenChannel();
    const prec = $("hl-precedence").value;
    $("hl-within").textContent =
      ch && ch.ack_within[prec] ? T("ack_within", "acknowledge within %(span)s", { span: ch.ack_within[prec] }) : "";
    btn.disabled = !(signer && ch && $("hl-text").value.trim());
    const loadToSend = T("load_to_send", "Load your signing key to send.");
    if (!signer) $("hl-send-status").textContent = loadToSend;
    else if (ch && $("hl-send-status").textContent === loadToSend) {
      $("hl-send-status").textContent = T("sealed_to", "Sealed to %(n)s members, signed as %(party)s.", {
        n: ch.members.length,
        party: signer.party,
      });
    }
  }

  async function sendMessage() {
    const ch = chosenChannel();
    const text = $("hl-text").value;
    const body = textEncoder.encode(text);
    if (body.length > MAX_BODY_BYTES) throw new Error(T("too_long", "at most %(n)s bytes of text", { n: MAX_BODY_BYTES }));
    const missing = ch.members.filter((m) => !ch.member_keys[m]);
    if (missing.length) throw new Error(T("no_member_key", "no hotline key registered for %(parties)s", { parties: missing.join(", ") }));
    // 128 random bits, as the CLI's uuid4: nobody guesses (or squats) the next id.
    const rnd = crypto.getRandomValues(new Uint8Array(16));
    const id = `${signer.party}-${Array.from(rnd, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    const info = globalThis.cbmnetHpke.hotlineInfo(view.origin, ch.id, id, signer.party);
    const ciphertexts = {};
    for (const m of ch.members) {
      const sealed = await globalThis.cbmnetHpke.seal(b64decode(ch.member_keys[m]), body, info);
      ciphertexts[m] = b64encode(sealed);
    }
    body.fill(0);
    const act = {
      act: "hotline.message",
      party: signer.party,
      channel: ch.id,
      id,
      precedence: $("hl-precedence").value,
      suite: SUITE,
      ciphertexts,
    };
    return postAct(await signEnvelope(signer, HOTLINE_TYPE, act), false);
  }

  const compose = $("hl-compose");
  if (compose) {
    compose.addEventListener("input", updateCompose);
    compose.addEventListener("change", updateCompose);
    $("hl-send").addEventListener("click", async () => {
      const out = $("hl-send-status");
      $("hl-send").disabled = true;
      out.textContent = T("sealing", "Sealing and signing…");
      try {
        const r = await sendMessage();
        $("hl-text").value = "";
        out.textContent = T("sent", "Sent: entry %(index)s, logged %(time)s.", { index: r.index, time: r.integrated_at });
        await refresh();
      } catch (e) {
        out.textContent = T("not_sent", "Not sent (your text is kept): %(error)s", { error: e.message });
      }
      updateCompose();
    });
  }

  setInterval(tick, 1000);
  refresh()
    .then(connect)
    .catch((e) => showError(T("load_failed", "Could not load the console: %(error)s", { error: e.message })));
})();
