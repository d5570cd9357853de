"""The CLI as a user meets it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "cbmnet.cli.main"]


def run(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CBMNET_DB": ""},
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("hub.example/log", "pak.example", "witness.pak.example"):
        assert run("keys", "generate", "--name", name, "--out", "keys", cwd=tmp_path).returncode == 0
    return tmp_path


def test_whole_flow_by_hand(work: Path, store_url: str) -> None:
    db = ["--db", store_url]
    k = "keys/"
    assert stat.S_IMODE((work / "keys/pak.example.key").stat().st_mode) == 0o600
    assert run("log", "init", "--key", k + "hub.example_log.key", *db, cwd=work).returncode == 0
    signed = run(
        "envelope",
        "sign",
        "--key",
        k + "pak.example.key",
        "--type",
        "application/x.t",
        cwd=work,
        stdin=b'{"id":"PAK-N-1"}',
    )
    assert signed.returncode == 0
    (work / "act.json").write_text(signed.stdout)
    app = run("log", "append", "--author", k + "pak.example.vkey", "act.json", "act.json", *db, cwd=work)
    assert app.returncode == 0
    assert '"index": 0' in app.stdout and '"duplicate": true' in app.stdout
    cp = run("log", "checkpoint", "--key", k + "hub.example_log.key", *db, cwd=work)
    assert cp.returncode == 0 and cp.stdout.startswith("hub.example/log\n1\n")
    req = run("log", "witness-request", "--old", "0", *db, cwd=work)
    (work / "req.txt").write_text(req.stdout)
    wdb = f"sqlite:///{work / 'w.db'}"
    cos = run(
        "witness",
        "cosign",
        "--state",
        wdb,
        "--key",
        k + "witness.pak.example.key",
        "--log",
        k + "hub.example_log.vkey",
        "req.txt",
        cwd=work,
    )
    assert cos.returncode == 0 and cos.stdout.startswith("\u2014 witness.pak.example ")
    (work / "cos.txt").write_text(cos.stdout)
    # The same request again: the witness already holds size 1 -> conflict, exit 1.
    again = run(
        "witness",
        "cosign",
        "--state",
        wdb,
        "--key",
        k + "witness.pak.example.key",
        "--log",
        k + "hub.example_log.vkey",
        "req.txt",
        cwd=work,
    )
    assert again.returncode == 1 and "holds size 1" in again.stderr
    add = run(
        "log",
        "add-cosignature",
        "--witness",
        k + "witness.pak.example.cosigner.vkey",
        "cos.txt",
        *db,
        cwd=work,
    )
    assert add.returncode == 0, add.stderr
    assert run("log", "proof", "0", "--out", "p.tlog-proof", *db, cwd=work).returncode == 0
    policy = (
        "log "
        + (work / "keys/hub.example_log.vkey").read_text()
        + "witness P "
        + (work / "keys/witness.pak.example.cosigner.vkey").read_text()
        + "quorum P\n"
    )
    (work / "policy.txt").write_text(policy)
    ok = run(
        "log",
        "verify-proof",
        "p.tlog-proof",
        "--policy",
        "policy.txt",
        "--author",
        k + "pak.example.vkey",
        cwd=work,
    )
    assert ok.returncode == 0 and "cosigned by P" in ok.stdout
    wrong_author = run(
        "log",
        "verify-proof",
        "p.tlog-proof",
        "--vkey",
        k + "hub.example_log.vkey",
        "--author",
        k + "witness.pak.example.vkey",
        cwd=work,
    )
    assert wrong_author.returncode == 1
    audit = run("log", "audit", *db, "--vkey", k + "hub.example_log.vkey", cwd=work)
    assert audit.returncode == 0 and "ok: 1 entries, 1 checkpoints, 1 cosignatures" in audit.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["log", "audit", "--db", "sqlite:///nowhere/x.db"], 2, "no store"),
        (["log", "audit", "--db", "mysql://x"], 2, "use sqlite"),
        (["envelope", "verify", "--vkey", "not-a-key", "act.json"], 2, "verifier key"),
        (["envelope", "sign", "--key", "missing.key", "--type", "t", "act.json"], 2, "missing.key"),
        (["log", "verify-proof", "junk.txt", "--vkey", "keys/hub.example_log.vkey"], 2, "tlog-proof"),
        (["log", "verify-proof", "junk.txt"], 2, "--vkey"),
        (["keys", "generate", "--name", "has space"], 2, "key name"),
        (["keys", "generate", "--name", "pak.example", "--out", "keys"], 2, "not overwriting"),
    ],
)
def test_bad_input_is_one_clear_line(work: Path, args: list[str], code: int, words: str) -> None:
    (work / "act.json").write_text("{}")
    (work / "junk.txt").write_text("hello\n\nworld\n")
    p = run(*args, cwd=work)
    assert p.returncode == code, p.stderr
    assert words in p.stderr


def test_tampered_envelope_fails_verification(work: Path) -> None:
    signed = run(
        "envelope",
        "sign",
        "--key",
        "keys/pak.example.key",
        "--type",
        "t",
        cwd=work,
        stdin=b"hello",
    ).stdout
    (work / "act.json").write_text(signed.replace('"payloadType":"t"', '"payloadType":"u"'))
    p = run("envelope", "verify", "--vkey", "keys/pak.example.vkey", "act.json", cwd=work)
    assert p.returncode == 1 and "no signature verifies" in p.stderr
