"""Smoke run of the fault-injection soak (bench/soak.py): about 25 s, each fault once.

PostgreSQL is shared with the other tests, so it is not restarted here (``--no-pg-restart``);
``make soak`` does that. Skips locally without PostgreSQL, fails in CI (``pg_base_url``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pg_base_url

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def run_soak_smoke(*args: str, timeout: float = 240) -> dict[str, Any]:
    """``bench/soak.py`` for 22 s, each fault once (``args`` add to it): its last line,
    once it exited 0."""
    cmd = [sys.executable, str(SOAK), "--seconds", "22", *args]
    cmd += ["--fault-gap", "1.5", "--down-s", "1.5", "--rate", "20"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = r.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{r.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    assert r.returncode == 0, f"soak failed: {lines[-1]}\n{r.stderr[-4000:]}"
    return out


def test_soak_smoke_loses_nothing() -> None:
    out = run_soak_smoke("--db", pg_base_url(), "--no-pg-restart")
    assert out["acknowledged"] > 100
    assert out["acknowledged_lost"] == 0
    assert out["hotline_sent"] > 10
    assert out["hotline_lost"] == 0 and out["hotline_duplicated"] == 0
    assert out["audit"] == "passed" and out["witnesses_cosigned_final"]
    assert out["skewed_writes"] > 0 and out["skewed_misstamped"] == 0
    kinds = {f["kind"] for f in out["faults"]}
    assert {"sigkill_hub", "witness_offline", "clock_skew"} <= kinds
    assert "pg_restart" not in kinds
    assert all(f["recovered_ms"] is not None for f in out["faults"])
