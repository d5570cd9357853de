"""`make demo` plays its scenario end to end (here on a free port, stopping afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbmnet.demo import main


def test_demo_scenario_runs_and_catches_the_tampered_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(tmp_path / "demo-data", once=True, port=0)
    out = capsys.readouterr().out
    assert "acknowledged by signed entry" in out
    assert "PAK decrypted: 'FLASH" in out
    assert "witness of IND cosigned" in out and "witness of PAK cosigned" in out
    assert "verified offline under 'both witnesses'" in out
    assert "tampered copy" in out and "does not match" in out
    assert "this would be a bug" not in out
    assert "The hub is running at http://127.0.0.1:" in out
    assert "/dashboard/login?code=" in out
    assert "EXERCISE: the Vienna Document scenario" in out and "acts logged" in out
