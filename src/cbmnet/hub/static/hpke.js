// Opening (and sealing) a hotline body in the page: HPKE (RFC 9180) base mode, single shot, in the one
// suite cbmnet uses, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, by @hpke/core
// (npm, pinned by package-lock.json; static/vendor/hpke-core.js, built by `make assets`).
// Here only what cbmnet adds: reading the operator's key file into a non-extractable
// WebCrypto key, the ciphertext layout (enc || AEAD ciphertext) and the `info` binding.
"use strict";

(function (root) {
  const enc = new TextEncoder();
  const NENC = 32; // Nenc of DHKEM(X25519, HKDF-SHA256)
  let suite = null;
  function cipherSuite() {
    const H = root.HpkeCore;
    if (!H) throw new Error("the page's HPKE library (vendor/hpke-core.js) is missing: run make assets");
    suite = suite || new H.CipherSuite({
      kem: new H.DhkemX25519HkdfSha256(),
      kdf: new H.HkdfSha256(),
      aead: new H.Aes128Gcm(),
    });
    return suite;
  }

  function unb64(text) {
    const bin = atob(text.trim());
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // PKCS#8 wrapping of a raw X25519 private key (RFC 8410): a fixed 16-byte prefix.
  const X25519_PKCS8 = Uint8Array.from([
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
  ]);

  // A private key file (standard base64 of 32 bytes) -> the recipient's key pair. The
  // private key is non-extractable: nothing in the page can read it back out.
  // @hpke/core is given the pair, so it never needs to derive the public key from it.
  async function importPrivate(b64text) {
    let raw;
    try {
      raw = unb64(b64text);
    } catch (e) {
      throw new Error("the hotline key is not base64");
    }
    if (raw.length !== 32) throw new Error(`an X25519 private key is 32 bytes, not ${raw.length}`);
    const der = new Uint8Array(X25519_PKCS8.length + 32);
    der.set(X25519_PKCS8);
    der.set(raw, X25519_PKCS8.length);
    const probe = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, true, ["deriveBits"]);
    const jwk = await crypto.subtle.exportKey("jwk", probe);
    const pub = unb64(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (jwk.x.length % 4)) % 4));
    const publicKey = await crypto.subtle.importKey("raw", pub, { name: "X25519" }, true, []);
    const privateKey = await crypto.subtle.importKey("pkcs8", der, { name: "X25519" }, false, ["deriveBits"]);
    der.fill(0);
    raw.fill(0);
    return { privateKey, publicKey, pub }; // pub: the raw public key, to compare with the registry
  }

  // Open a single-shot ciphertext (enc || AEAD ciphertext) with the recipient's key pair.
  async function open(ciphertext, recipient, info) {
    if (ciphertext.length < NENC + 16) throw new Error("ciphertext too short");
    const hpke = cipherSuite();
    let context;
    try {
      context = await hpke.createRecipientContext({
        recipientKey: recipient,
        enc: ciphertext.slice(0, NENC).buffer,
        info: info.buffer.slice(info.byteOffset, info.byteOffset + info.byteLength),
      });
      return new Uint8Array(await context.open(ciphertext.slice(NENC).buffer));
    } catch (e) {
      throw new Error("does not open with this key and binding");
    }
  }

  // Seal `plaintext` to a member's X25519 public key (32 raw bytes): enc || AEAD ciphertext,
  // the layout the hub's Python sealing writes and every member's opener reads.
  async function seal(publicRaw, plaintext, info) {
    if (publicRaw.length !== 32) throw new Error(`an X25519 public key is 32 bytes, not ${publicRaw.length}`);
    const hpke = cipherSuite();
    const recipientPublicKey = await crypto.subtle.importKey("raw", publicRaw, { name: "X25519" }, true, []);
    const context = await hpke.createSenderContext({
      recipientPublicKey,
      info: info.buffer.slice(info.byteOffset, info.byteOffset + info.byteLength),
    });
    const ct = new Uint8Array(await context.seal(plaintext.buffer.slice(plaintext.byteOffset, plaintext.byteOffset + plaintext.byteLength)));
    const encapsulated = new Uint8Array(context.enc);
    const out = new Uint8Array(encapsulated.length + ct.length);
    out.set(encapsulated);
    out.set(ct, encapsulated.length);
    return out;
  }

  // The binding cbmnet puts in `info`: log origin, channel, message id and sender.
  function hotlineInfo(origin, channel, messageId, sender) {
    return enc.encode(`cbmnet/hotline/v1\n${origin}\n${channel}\n${messageId}\n${sender}\n`);
  }

  root.cbmnetHpke = { importPrivate, open, seal, hotlineInfo, unb64 };
})(globalThis);
