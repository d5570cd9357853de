// The one HPKE suite the hotline console opens, from @hpke/core (npm, pinned by
// package-lock.json), bundled by `make assets` into static/vendor/hpke-core.js as
// globalThis.HpkeCore for static/hpke.js (the dashboard loads no modules from elsewhere).
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

globalThis.HpkeCore = { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 };
