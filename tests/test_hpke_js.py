"""The console's HPKE opener (static/hpke.js over @hpke/core) under Node, against the hub's
own sealing.

Python's ``cryptography`` is the peer implementation: whatever it seals for a member, the
page must open with that member's key and binding, and nothing else may open: another
key, another binding (channel, message id, sender), or a flipped bit.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmnet.communication import hotline
from cbmnet.errors import VerificationError
from tests.test_verify_js import _node

STATIC = Path(__file__).resolve().parent.parent / "src" / "cbmnet" / "hub" / "static"
SCRIPT = STATIC / "hpke.js"
LIBRARY = STATIC / "vendor" / "hpke-core.js"
DRIVER = r"""
const fs = require("fs");
require(process.argv[2]); // @hpke/core, as make assets bundles it for the page
require(process.argv[3]);
const H = globalThis.cbmnetHpke;
(async () => {
  const cases = JSON.parse(fs.readFileSync(0, "utf8"));
  const out = [];
  for (const c of cases) {
    try {
      const key = await H.importPrivate(c.key);
      const info = H.hotlineInfo(c.origin, c.channel, c.id, c.sender);
      const pt = await H.open(H.unb64(c.ct), key, info);
      out.push({ ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(pt) });
    } catch (e) {
      out.push({ ok: false, error: String(e.message || e) });
    }
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def _library() -> Path:
    """The page's HPKE library; built by ``make assets`` (``make test`` runs it first)."""
    if not LIBRARY.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LIBRARY} is missing: make assets did not run")
        pytest.skip(f"{LIBRARY} is missing: run `make assets`")
    return LIBRARY


def run_cases(tmp: Path, cases: list[dict[str, str]], driver_js: str = DRIVER) -> list[Any]:
    """``cases`` through a Node driver of hpke.js (the opener by default); its JSON answer."""
    driver = tmp / "hpke-driver.cjs"
    driver.write_text(driver_js)
    r = subprocess.run(
        [_node(), str(driver), str(_library()), str(SCRIPT)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got: list[Any] = json.loads(r.stdout)
    return got


def _case(text: str, channel: str, mid: str, sender: str) -> tuple[dict[str, str], str]:
    priv, pub = hotline.generate_encryption_key()
    bind = hotline.info("hub.test/log", channel, mid, sender)
    ct = hotline.seal(text.encode(), {"X": base64.b64decode(pub)}, bind)["X"]
    case = {
        "key": priv,
        "ct": ct,
        "origin": "hub.test/log",
        "channel": channel,
        "id": mid,
        "sender": sender,
    }
    return case, priv


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(max_size=300), min_size=1, max_size=8),
    channel=names,
    mid=names,
    sender=st.sampled_from(["IND", "PAK", "DEU", "secretariat"]),
)
def test_opens_what_python_seals_and_nothing_else(
    tmp_path: Path, texts: list[str], channel: str, mid: str, sender: str
) -> None:
    cases: list[dict[str, str]] = []
    want: list[str | None] = []
    for t in texts:
        # Lone surrogates cannot be sent as UTF-8: the hub's bodies are UTF-8 text.
        t = t.encode("utf-8", "replace").decode()
        good, _ = _case(t, channel, mid, sender)
        cases.append(good)
        want.append(t)
        other_key, _ = hotline.generate_encryption_key()
        cases.append({**good, "key": other_key})
        want.append(None)
        cases.append({**good, "id": mid + "x"})
        want.append(None)
        cases.append({**good, "sender": "EVE"})
        want.append(None)
        raw = bytearray(base64.b64decode(good["ct"]))
        raw[len(raw) // 2] ^= 0x01
        cases.append({**good, "ct": base64.b64encode(bytes(raw)).decode()})
        want.append(None)
    got = run_cases(tmp_path, cases)
    for g, w, c in zip(got, want, cases, strict=True):
        if w is None:
            assert g["ok"] is False, c
        else:
            assert g == {"ok": True, "text": w}, (g, c)


def test_bad_keys_are_named(tmp_path: Path) -> None:
    good, _ = _case("hello", "c", "m", "IND")
    got = run_cases(
        tmp_path,
        [
            {**good, "key": "not base64!"},
            {**good, "key": base64.b64encode(b"short").decode()},
            {**good, "ct": base64.b64encode(b"x" * 10).decode()},
        ],
    )
    assert [g["ok"] for g in got] == [False, False, False]
    assert "not base64" in got[0]["error"]
    assert "32 bytes, not 5" in got[1]["error"]
    assert "too short" in got[2]["error"]


SEAL_DRIVER = r"""
const fs = require("fs");
require(process.argv[2]);
require(process.argv[3]);
const H = globalThis.cbmnetHpke;
(async () => {
  const cases = JSON.parse(fs.readFileSync(0, "utf8"));
  const out = [];
  for (const c of cases) {
    const info = H.hotlineInfo(c.origin, c.channel, c.id, c.sender);
    const ct = await H.seal(H.unb64(c.pub), new TextEncoder().encode(c.text), info);
    let bin = "";
    for (const b of ct) bin += String.fromCharCode(b);
    out.push(btoa(bin));
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(max_size=300), min_size=1, max_size=6),
    channel=names,
    mid=names,
    sender=st.sampled_from(["IND", "PAK", "DEU"]),
)
def test_python_opens_what_the_page_seals_under_its_binding_only(
    tmp_path: Path, texts: list[str], channel: str, mid: str, sender: str
) -> None:
    """The console's sending side: what the page seals to a member, the member's Python
    client opens with its key and that binding, and not under another binding or key."""
    keys = [hotline.generate_encryption_key() for _ in texts]
    texts = [t.encode("utf-8", "replace").decode() for t in texts]
    where = {"origin": "hub.test/log", "channel": channel, "id": mid, "sender": sender}
    cases = [{"pub": pub, "text": t, **where} for t, (_, pub) in zip(texts, keys, strict=True)]
    sealed = run_cases(tmp_path, cases, SEAL_DRIVER)
    bind = hotline.info("hub.test/log", channel, mid, sender)
    for ct, t, (priv, _) in zip(sealed, texts, keys, strict=True):
        key = hotline.private_key(priv, "key")
        assert hotline.open_sealed(ct, key, bind).decode() == t
        with pytest.raises(VerificationError):
            hotline.open_sealed(ct, key, hotline.info("hub.test/log", channel, mid + "x", sender))
        other = hotline.private_key(hotline.generate_encryption_key()[0], "other")
        with pytest.raises(VerificationError):
            hotline.open_sealed(ct, other, bind)
