"""Smoke run of the fault-injection soak (bench/soak.py): about 25 s, each fault once.

PostgreSQL is shared with the other tests, so it is not restarted here (``--no-pg-restart``);
``make soak`` does that. Skips locally without PostgreSQL, fails in CI (``pg_base_url``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pg_base_url

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def test_soak_smoke_loses_nothing() -> None:
    url = pg_base_url()
    r = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--seconds",
            "22",
            "--db",
            url,
            "--no-pg-restart",
            "--fault-gap",
            "1.5",
            "--down-s",
            "1.5",
            "--rate",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = r.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{r.stderr[-4000:]}"
    out = json.loads(lines[-1])
    assert r.returncode == 0, f"soak failed: {lines[-1]}\n{r.stderr[-4000:]}"
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
