"""The dashboard's in-browser verifier (static/verify.js) run under Node 20.

It must agree with the Python verifier on the transparency-dev peer inclusion vectors and
accept a real hub's tlog-proof (inclusion and the log's Ed25519 signature), while a proof
whose entry bytes were changed by one byte fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.hubkit import running_hub
from tests.test_merkle_peer_vectors import INCLUSION

SCRIPT = Path(__file__).resolve().parent.parent / "src" / "cbmnet" / "hub" / "static" / "verify.js"

DRIVER = r"""
const fs = require("fs");
require(process.argv[2]);
const V = globalThis.cbmnetVerify;
const job = JSON.parse(fs.readFileSync(0, "utf8"));
const hash = (s) => V.unb64(s, "vector");
(async () => {
  const vectors = [];
  for (const v of job.vectors) {
    try {
      const idx = v.leafIdx !== undefined ? v.leafIdx : v.leafIndex;
      await V.verifyInclusion(hash(v.leafHash), BigInt(idx), BigInt(v.treeSize),
        (v.proof || []).map(hash), hash(v.root));
      vectors.push({ path: v.path, ok: true, error: null });
    } catch (e) {
      vectors.push({ path: v.path, ok: false, error: String(e.message) });
    }
  }
  const proofs = [];
  for (const p of job.proofs) proofs.push(await V.verifyProofText(p.text, p.vkey));
  process.stdout.write(JSON.stringify({ vectors, proofs }));
})().catch((e) => { console.error(e); process.exit(2); });
"""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node (20+) is not on PATH; CI must provide it to test verify.js")
        pytest.skip("node is not on PATH: verify.js not tested here (CI runs it)")
    return node


def run_js(tmp: Path, vectors: list[dict[str, Any]], proofs: list[dict[str, str]]) -> dict[str, Any]:
    """Run the driver once over ``vectors`` and ``proofs``; its JSON answer."""
    driver = tmp / "driver.cjs"
    driver.write_text(DRIVER)
    # Vector indices reach 2**64 - 1: pass them as JSON strings so JavaScript loses nothing.
    exact = [
        {**v, **{k: str(v[k]) for k in ("leafIdx", "leafIndex", "treeSize") if k in v}} for v in vectors
    ]
    r = subprocess.run(
        [_node(), str(driver), str(SCRIPT)],
        input=json.dumps({"vectors": exact, "proofs": proofs}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_peer_inclusion_vectors(tmp_path: Path) -> None:
    got = run_js(tmp_path, INCLUSION, [])["vectors"]
    assert len(got) == len(INCLUSION)
    wrong = [
        f"{v['path']}: wantErr={v['wantErr']}, js ok={g['ok']} ({g['error']})"
        for v, g in zip(INCLUSION, got, strict=True)
        if g["ok"] is v["wantErr"]
    ]
    assert not wrong, "\n".join(wrong)
    assert any(not v["wantErr"] for v in INCLUSION) and any(v["wantErr"] for v in INCLUSION)


def _tamper(text: str) -> str:
    """Change one byte of the entry in the ``extra`` line."""
    lines = text.split("\n")
    raw = bytearray(base64.b64decode(lines[1].removeprefix("extra ")))
    raw[len(raw) // 2] ^= 0x01
    lines[1] = "extra " + base64.b64encode(bytes(raw)).decode()
    return "\n".join(lines)


def test_real_hub_proof_verifies_and_a_tampered_one_fails(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("AUT", "BEL", "CHE")
        hub = th.hub
        hub.sync()
        from cbmnet.ledger.tlogproof import format_proof

        texts = [format_proof(hub.receipt_bundle(i)) for i in range(hub.committed)]
        vkey = hub.log.vkey
    assert len(texts) >= 3 and all(t.split("\n")[1].startswith("extra ") for t in texts)
    tampered = _tamper(texts[-1])
    name, _kid, data = vkey.split("+", 2)
    other_key = f"{name}x+00000000+{data}"
    proofs = [{"text": t, "vkey": vkey} for t in texts]
    proofs += [{"text": tampered, "vkey": vkey}, {"text": texts[0], "vkey": other_key}]
    got = run_js(tmp_path, [], proofs)["proofs"]
    for i, g in enumerate(got[: len(texts)]):
        assert g["ok"] and g["inclusion"], g
        assert g["message"].startswith(f"verified: entry {i} is in the tree of size "), g
        assert g["signature"] == {
            "checked": True,
            "ok": True,
            "message": f"the checkpoint is signed by the log's key {name}",
        }
    bad = got[len(texts)]
    assert not bad["ok"] and not bad["inclusion"]
    assert (
        bad["message"]
        == f"NOT verified: inclusion proof for leaf {len(texts) - 1} does not lead to the root"
    )
    wrong_key = got[len(texts) + 1]
    assert not wrong_key["ok"] and "key id does not match" in wrong_key["message"]
