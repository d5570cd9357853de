// cbmnet signer: a party's Ed25519 key loaded into this page, DSSE envelopes signed here,
// acts posted to /v1/acts like any client's (docs/adr/0004).
//
// The key file (PRIVATE+KEY+name+hexid+base64(0x01 || seed), the note format of ADR 0002)
// is imported into WebCrypto as a non-extractable key after its public half is checked
// against the party's registered keys; the copies are zeroed. Nothing here sends a key.
// Plain ES2020, no dependencies, no inline script (the pages' CSP forbids it).
"use strict";

(function () {
  const enc = new TextEncoder();

  function b64decode(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64encode(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function b64urlToStd(text) {
    const s = text.replace(/-/g, "+").replace(/_/g, "/");
    return s + "=".repeat((4 - (s.length % 4)) % 4);
  }

  function concat(...parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  // DSSE Pre-Authentication Encoding: "DSSEv1 SP LEN(type) SP type SP LEN(body) SP body".
  function pae(payloadType, payload) {
    const t = enc.encode(payloadType);
    return concat(enc.encode(`DSSEv1 ${t.length} `), t, enc.encode(` ${payload.length} `), payload);
  }

  async function sha256hex(bytes) {
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The form cbmnet writes an act in: keys sorted (by UTF-16 code units, as Python sorts
  // the ASCII keys acts use), no spaces, non-ASCII kept as is (UTF-8 on the wire).
  function canonicalJSON(value) {
    if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(",")}]`;
    if (value !== null && typeof value === "object") {
      const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON(value[k])}`).join(",")}}`;
    }
    return JSON.stringify(value);
  }

  // PRIVATE+KEY+name+hexid+base64(0x01 || seed) -> a non-extractable WebCrypto key.
  async function importSigner(text, party, activeKeys) {
    // The base64 field may itself hold "+": split off the first four fields only.
    const all = text.trim().split("+");
    const parts = [...all.slice(0, 4), all.slice(4).join("+")];
    if (all.length < 5 || parts[0] !== "PRIVATE" || parts[1] !== "KEY") {
      throw new Error("not a signer key: expected PRIVATE+KEY+name+hexid+base64");
    }
    let raw;
    try {
      raw = b64decode(parts[4]);
    } catch (e) {
      throw new Error("the key's last field is not base64");
    }
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 seed (type 0x01, 32 bytes)");
    // PKCS#8 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix.
    const prefix = Uint8Array.from([
      0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]);
    const der = concat(prefix, raw.slice(1));
    const probe = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", probe);
    const pub = b64urlToStd(jwk.x);
    if (!activeKeys.includes(pub)) {
      throw new Error(`this key is not an active signing key of ${party}`);
    }
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
    der.fill(0);
    raw.fill(0);
    return { key, keyid: `${parts[2]}+${parts[3]}`, party };
  }

  const KEY_WORDS = {
    loaded: "Key %(key)s of %(party)s loaded: %(purpose)s",
    not_loaded: "Key not loaded: %(error)s",
  };
  const fill = (text, vars) => text.replace(/%\((\w+)\)s/g, (_m, n) => (n in vars ? String(vars[n]) : ""));

  // The key file the operator picks in `input`: imported for the party `who()` names (with
  // its active keys), `status` saying what happened; `done(signer)` gets null if refused.
  // `say(kind, vars)` words the status in the page's language (KEY_WORDS's kinds).
  function watchKeyFile(input, status, who, purpose, done, say = (kind, vars) => fill(KEY_WORDS[kind], vars)) {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      input.value = "";
      if (!file) return;
      let signer = null;
      try {
        if (file.size > 4096) throw new Error("a signer key file is a single short line");
        const { party, keys } = await who();
        signer = await importSigner(await file.text(), party, keys);
        status.textContent = say("loaded", { key: signer.keyid, party, purpose });
      } catch (e) {
        status.textContent = say("not_loaded", { error: e.message });
      }
      done(signer);
    });
  }

  // A DSSE envelope of `doc` (written canonically) signed by `signer` in this page.
  async function signEnvelope(signer, payloadType, doc) {
    const bytes = enc.encode(canonicalJSON(doc));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signer.key, pae(payloadType, bytes)));
    return {
      payload: b64encode(bytes),
      payloadType,
      signatures: [{ keyid: signer.keyid, sig: b64encode(sig) }],
    };
  }

  // The hub's refusal in its own words (its error JSON carries `message`).
  async function refusal(r) {
    let detail = `HTTP ${r.status}`;
    try {
      const doc = await r.json();
      if (doc && doc.message) detail = String(doc.message);
      else if (doc && doc.detail) detail = String(doc.detail);
    } catch (e) {
      /* not JSON: keep the status */
    }
    return new Error(detail);
  }

  // POST the envelope to /v1/acts; the answer is the receipt (with its proof unless asked not).
  async function postAct(envelope, proof) {
    const r = await fetch(`/v1/acts?proof=${proof ? "true" : "false"}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(envelope),
      credentials: "omit",
    });
    if (!r.ok) throw await refusal(r);
    return r.json();
  }

  // A short-lived API token for the loaded key: the hub's challenge, checked to be for
  // `origin` (this hub's log, as the page was told), signed here (the client's sign-in).
  async function token(signer, origin) {
    const r = await fetch("/v1/auth/challenge", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ party: signer.party }),
      credentials: "omit",
    });
    if (!r.ok) throw await refusal(r);
    const doc = await r.json();
    const challenge = doc.challenge;
    if (doc.origin !== origin || typeof challenge !== "string" || challenge.length >= 1024 || challenge.split(".").length !== 2) {
      throw new Error("the hub's challenge is not one for its own log; not signing");
    }
    const text = enc.encode(`cbmnet/auth/v1\n${origin}\n${challenge}\n`);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, signer.key, text));
    const t = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ challenge, signature: b64encode(sig) }),
      credentials: "omit",
    });
    if (!t.ok) throw await refusal(t);
    return (await t.json()).token;
  }

  globalThis.cbmnetSigner = {
    token,
    watchKeyFile,
    KEY_WORDS,
    b64decode,
    b64encode,
    pae,
    sha256hex,
    canonicalJSON,
    importSigner,
    signEnvelope,
    postAct,
    refusal,
  };
})();
