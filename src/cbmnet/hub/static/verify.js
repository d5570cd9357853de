/* cbmnet: verify a log entry's inclusion proof in the browser, with WebCrypto only.
 *
 * Mirrors cbmnet.ledger.merkle (RFC 9162 leaf/node hashing, inclusion verification per
 * §2.1.3.2) and cbmnet.ledger.tlogproof (c2sp.org/tlog-proof@v1). Plain ES2020, no
 * dependencies; the pure functions are exported as globalThis.cbmnetVerify so that Node 20
 * runs them in the tests. On a page with #verify-proof it checks and reports by itself.
 */
(function (root) {
  "use strict";

  const HASH_SIZE = 32;
  const MAX_PROOF_HASHES = 63;
  const PROOF_HEADER = "c2sp.org/tlog-proof@v1";
  const SIG_PREFIX = "\u2014 ";
  const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const enc = new TextEncoder();

  class VerifyError extends Error {}

  function unb64(text, what) {
    if (typeof text !== "string" || !B64.test(text)) {
      throw new VerifyError(what + ": not standard base64");
    }
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function b64(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await root.crypto.subtle.digest("SHA-256", bytes));
  }

  /** RFC 9162 §2.1.1: SHA-256(0x00 || entry). */
  function leafHash(entry) {
    return sha256(concat(Uint8Array.of(0), entry));
  }

  /** RFC 9162 §2.1.1: SHA-256(0x01 || left || right). */
  function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  function uint(text, what) {
    if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new VerifyError(what + ": not a decimal number");
    const n = BigInt(text);
    if (n >= 2n ** 64n) throw new VerifyError(what + ": more than 64 bits");
    return n;
  }

  function checkHash(what, value) {
    if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
      throw new VerifyError(what + " is not a " + HASH_SIZE + "-byte SHA-256 hash");
    }
  }

  /** Throw VerifyError unless `proof` shows leaf `index` is in the tree of `size` with `rootHash`. */
  async function verifyInclusion(leaf, index, size, proof, rootHash) {
    index = BigInt(index);
    size = BigInt(size);
    checkHash("leaf hash", leaf);
    checkHash("root hash", rootHash);
    if (!(index >= 0n && index < size)) {
      throw new VerifyError("leaf index " + index + " is outside a tree of size " + size);
    }
    proof.forEach((p, i) => checkHash("inclusion proof hash " + i, p));
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new VerifyError("inclusion proof is longer than the tree needs");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new VerifyError("inclusion proof is shorter than the tree needs");
    if (!equal(r, rootHash)) {
      throw new VerifyError("inclusion proof for leaf " + index + " does not lead to the root");
    }
  }

  /** Parse a c2sp.org/tlog-proof@v1: {index, extra, proof, checkpoint}. */
  function parseProof(text) {
    const cut = text.indexOf("\n\n");
    if (cut < 0 || cut + 2 >= text.length) {
      throw new VerifyError("tlog-proof: no blank line before the checkpoint");
    }
    const checkpoint = text.slice(cut + 2);
    const lines = text.slice(0, cut).split("\n");
    if (lines[0] !== PROOF_HEADER) throw new VerifyError("tlog-proof: first line must be " + PROOF_HEADER);
    let rest = lines.slice(1);
    let extra = null;
    if (rest.length && rest[0].startsWith("extra ")) {
      extra = unb64(rest[0].slice(6), "tlog-proof: extra");
      rest = rest.slice(1);
    }
    if (!rest.length || !rest[0].startsWith("index ")) throw new VerifyError("tlog-proof: missing index line");
    const index = uint(rest[0].slice(6), "tlog-proof: index");
    const hashes = rest.slice(1);
    if (hashes.length > MAX_PROOF_HASHES) {
      throw new VerifyError("tlog-proof: more than " + MAX_PROOF_HASHES + " proof hashes");
    }
    const proof = hashes.map((h, i) => {
      const raw = unb64(h, "tlog-proof: proof hash " + i);
      if (raw.length !== HASH_SIZE) throw new VerifyError("tlog-proof: proof hash " + i + " is not 32 bytes");
      return raw;
    });
    return { index, extra, proof, checkpoint };
  }

  /** Split a signed checkpoint note: {text, origin, size, root, signatures: [{name, keyId, sig}]}. */
  function parseCheckpoint(note) {
    const cut = note.indexOf("\n\n");
    if (cut < 0) throw new VerifyError("checkpoint: no blank line before the signatures");
    const text = note.slice(0, cut + 1);
    const body = text.split("\n");
    if (body.length < 4) throw new VerifyError("checkpoint: origin, size and root hash lines needed");
    const origin = body[0];
    if (!origin) throw new VerifyError("checkpoint: empty origin line");
    const size = uint(body[1], "checkpoint: tree size");
    const rootHash = unb64(body[2], "checkpoint: root hash");
    checkHash("checkpoint root hash", rootHash);
    const signatures = [];
    for (const line of note.slice(cut + 2).split("\n")) {
      if (!line) continue;
      if (!line.startsWith(SIG_PREFIX)) throw new VerifyError("checkpoint: malformed signature line");
      const parts = line.slice(SIG_PREFIX.length).split(" ");
      if (parts.length !== 2) throw new VerifyError("checkpoint: malformed signature line");
      const raw = unb64(parts[1], "checkpoint: signature of " + parts[0]);
      if (raw.length < 5) throw new VerifyError("checkpoint: signature of " + parts[0] + " too short");
      const keyId = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
      signatures.push({ name: parts[0], keyId, sig: raw.slice(4) });
    }
    return { text, origin, size, root: rootHash, signatures };
  }

  /** A note verifier key `name+hexid+base64(0x01 || public key)`, its key id checked. */
  async function parseVerifierKey(vkey) {
    const m = /^([^+\s]+)\+([^+]*)\+(.*)$/.exec(vkey.trim());
    const parts = m ? m.slice(1) : [];
    if (!m || !/^[0-9a-f]{8}$/.test(parts[1])) {
      throw new VerifyError("verifier key: expected name+hexid+base64");
    }
    const raw = unb64(parts[2], "verifier key");
    if (raw.length !== 33 || raw[0] !== 1) throw new VerifyError("verifier key: not an Ed25519 (type 0x01) key");
    const digest = await sha256(concat(enc.encode(parts[0] + "\n"), raw));
    const keyId = ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
    if (keyId !== parseInt(parts[1], 16)) throw new VerifyError("verifier key: key id does not match the key");
    return { name: parts[0], keyId, publicKey: raw.slice(1) };
  }

  /** The log's signature on the checkpoint: {checked, ok, message}. */
  async function verifyNoteSignature(cp, vkey) {
    const key = await parseVerifierKey(vkey);
    const sigs = cp.signatures.filter((s) => s.name === key.name && s.keyId === key.keyId);
    if (!sigs.length) return { checked: true, ok: false, message: "no signature by the log's key " + key.name };
    let pub;
    try {
      pub = await root.crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      return {
        checked: false,
        ok: false,
        message: "signature NOT checked: this browser has no Ed25519 in WebCrypto (the CLI checks it)",
      };
    }
    for (const s of sigs) {
      if (s.sig.length === 64 && (await root.crypto.subtle.verify({ name: "Ed25519" }, pub, s.sig, enc.encode(cp.text)))) {
        return { checked: true, ok: true, message: "the checkpoint is signed by the log's key " + key.name };
      }
    }
    return { checked: true, ok: false, message: "the log's signature on the checkpoint does not verify" };
  }

  /** Check a whole tlog-proof text (and, given the key, its signature): never throws. */
  async function verifyProofText(text, vkey) {
    const out = { ok: false, inclusion: false, signature: null, index: null, size: null, root: null, message: "" };
    try {
      const bundle = parseProof(text);
      out.index = bundle.index.toString();
      if (bundle.extra === null) throw new VerifyError("tlog-proof: no extra line; a cbmnet proof carries its entry there");
      const cp = parseCheckpoint(bundle.checkpoint);
      out.size = cp.size.toString();
      out.root = b64(cp.root);
      await verifyInclusion(await leafHash(bundle.extra), bundle.index, cp.size, bundle.proof, cp.root);
      out.inclusion = true;
      out.ok = true;
      out.message =
        "verified: entry " + out.index + " is in the tree of size " + out.size + " with root " + out.root;
      if (vkey) {
        out.signature = await verifyNoteSignature(cp, vkey);
        if (out.signature.checked && !out.signature.ok) out.ok = false;
        out.message += "; " + out.signature.message;
      }
    } catch (e) {
      out.ok = false;
      out.message = "NOT verified: " + (e instanceof Error ? e.message : String(e));
    }
    return out;
  }

  async function runPage(doc) {
    const proofEl = doc.getElementById("verify-proof");
    const resultEl = doc.getElementById("verify-result");
    if (!proofEl || !resultEl) return;
    const vkeyEl = doc.getElementById("verify-vkey");
    if (!root.crypto || !root.crypto.subtle) {
      resultEl.textContent = "NOT verified: this browser offers no WebCrypto here (it needs HTTPS or localhost)";
      resultEl.className = "verify-result fail";
      return;
    }
    const res = await verifyProofText(proofEl.textContent, vkeyEl ? vkeyEl.textContent.trim() : "");
    resultEl.textContent = res.message;
    resultEl.className = "verify-result " + (res.ok ? "ok" : "fail");
  }

  const api = {
    VerifyError,
    unb64,
    b64,
    leafHash,
    nodeHash,
    verifyInclusion,
    parseProof,
    parseCheckpoint,
    parseVerifierKey,
    verifyNoteSignature,
    verifyProofText,
  };
  root.cbmnetVerify = api;
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", () => runPage(document));
    } else {
      runPage(document);
    }
  }
})(globalThis);
