// HPKE (RFC 9180) base mode, single-shot open, for the one suite cbmnet uses:
// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM. WebCrypto only, no dependencies.
//
// Why written here and not taken from a package: it is ~80 lines of a small, exact spec,
// and the hotline console must open a member's ciphertext in the browser with the key the
// operator loads, which never leaves the page. It is tested under Node against Python's
// `cryptography` (the hub's own sealing code) on many random messages and bindings.
"use strict";

(function (root) {
  const enc = new TextEncoder();
  const KEM_ID = 0x0020;
  const KDF_ID = 0x0001;
  const AEAD_ID = 0x0001;
  const NK = 16;
  const NN = 12;
  const NENC = 32;

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

  function i2osp(n, len) {
    const out = new Uint8Array(len);
    for (let i = len - 1; i >= 0; i--) {
      out[i] = n & 0xff;
      n >>>= 8;
    }
    return out;
  }

  function unb64(text) {
    const bin = atob(text.trim());
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  const SUITE_KEM = concat(enc.encode("KEM"), i2osp(KEM_ID, 2));
  const SUITE_HPKE = concat(enc.encode("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(AEAD_ID, 2));
  const V1 = enc.encode("HPKE-v1");

  async function hmac(key, data) {
    // An empty salt is HashLen zero bytes (RFC 5869 §2.2); WebCrypto refuses a 0-length key.
    const k = await crypto.subtle.importKey(
      "raw",
      key.length ? key : new Uint8Array(32),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
  }

  function labeledExtract(suite, salt, label, ikm) {
    return hmac(salt, concat(V1, suite, enc.encode(label), ikm));
  }

  async function labeledExpand(suite, prk, label, info, len) {
    // One HMAC block is enough for every length this suite needs (at most 32 bytes).
    const labeled = concat(i2osp(len, 2), V1, suite, enc.encode(label), info);
    const t1 = await hmac(prk, concat(labeled, Uint8Array.of(1)));
    return t1.slice(0, len);
  }

  // PKCS#8 wrapping of a raw X25519 private key (RFC 8410): a fixed 16-byte prefix.
  const X25519_PKCS8 = Uint8Array.from([
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
  ]);

  // A private key file (standard base64 of 32 bytes) -> {key, pub}; the key is non-extractable.
  async function importPrivate(b64text) {
    let raw;
    try {
      raw = unb64(b64text);
    } catch (e) {
      throw new Error("the hotline key is not base64");
    }
    if (raw.length !== 32) throw new Error(`an X25519 private key is 32 bytes, not ${raw.length}`);
    const der = concat(X25519_PKCS8, raw);
    const probe = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, true, ["deriveBits"]);
    const jwk = await crypto.subtle.exportKey("jwk", probe);
    const pub = unb64(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (jwk.x.length % 4)) % 4));
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, false, ["deriveBits"]);
    der.fill(0);
    raw.fill(0);
    return { key, pub };
  }

  // Open a single-shot ciphertext (enc || AEAD ciphertext) with the recipient's key.
  async function open(ciphertext, recipient, info) {
    if (ciphertext.length < NENC + 16) throw new Error("ciphertext too short");
    const encapped = ciphertext.slice(0, NENC);
    const ct = ciphertext.slice(NENC);
    const pkE = await crypto.subtle.importKey("raw", encapped, { name: "X25519" }, false, []);
    const dh = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: pkE }, recipient.key, 256),
    );
    const kemContext = concat(encapped, recipient.pub);
    const eaePrk = await labeledExtract(SUITE_KEM, new Uint8Array(0), "eae_prk", dh);
    const shared = await labeledExpand(SUITE_KEM, eaePrk, "shared_secret", kemContext, 32);
    const pskIdHash = await labeledExtract(SUITE_HPKE, new Uint8Array(0), "psk_id_hash", new Uint8Array(0));
    const infoHash = await labeledExtract(SUITE_HPKE, new Uint8Array(0), "info_hash", info);
    const context = concat(Uint8Array.of(0), pskIdHash, infoHash); // mode_base
    const secret = await labeledExtract(SUITE_HPKE, shared, "secret", new Uint8Array(0));
    const key = await labeledExpand(SUITE_HPKE, secret, "key", context, NK);
    const nonce = await labeledExpand(SUITE_HPKE, secret, "base_nonce", context, NN); // seq 0
    const aes = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, aes, ct));
    } catch (e) {
      throw new Error("does not open with this key and binding");
    }
  }

  // The binding cbmnet puts in `info`: log origin, channel, message id and sender.
  function hotlineInfo(origin, channel, messageId, sender) {
    return enc.encode(`cbmnet/hotline/v1\n${origin}\n${channel}\n${messageId}\n${sender}\n`);
  }

  root.cbmnetHpke = { importPrivate, open, hotlineInfo, unb64 };
})(globalThis);
