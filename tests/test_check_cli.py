"""`cbmnet check` and `cbmnet agreements` as a user runs them: exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "cbmnet.cli.main"]
AID = "india-pakistan-missile-tests-2005"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _events(tmp: Path, notice_time: str) -> Path:
    events = [
        {
            "id": "m1",
            "type": "activity",
            "party": "IND",
            "category": "missile_launch",
            "missile_class": "ballistic",
            "start": "2028-05-03T06:00:00Z",
            "end": "2028-05-03T06:20:00Z",
            "launch": {"type": "Point", "coordinates": [78.5, 17.4]},
            "trajectory": {"type": "LineString", "coordinates": [[78.5, 17.4], [86.0, 15.0]]},
        },
        {  # the window (Art. 2) and the planned impact area (Art. 5) of the 2005 agreement
            "id": "n1",
            "type": "notification",
            "party": "IND",
            "form": "launch_notification",
            "activity": "m1",
            "time": notice_time,
            "window_start": "2028-05-01T00:00:00Z",
            "window_end": "2028-05-06T00:00:00Z",
            "impact": {"type": "Point", "coordinates": [86.0, 15.0]},
        },
    ]
    p = tmp / "events.jsonl"
    p.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return p


def test_check_exit_codes_and_json(tmp_path: Path) -> None:
    ok = run(
        "check",
        "--agreement",
        AID,
        "--events",
        str(_events(tmp_path, "2028-04-28T00:00:00Z")),
        "--as-of",
        "2028-06-01T00:00:00Z",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["agreement"] == AID and doc["findings"] == []
    assert doc["obligations"][0]["status"] == "met"
    late = run(
        "check",
        "--agreement",
        AID,
        "--events",
        str(_events(tmp_path, "2028-04-28T00:00:01Z")),
        "--as-of",
        "2028-06-01T00:00:00Z",
        "--format",
        "table",
        cwd=tmp_path,
    )
    assert late.returncode == 1 and "notification.late" in late.stdout


def test_check_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '[{"id": "x", "type": "activity", "party": "IND", "start": "2028-01-02T00:00:00Z", '
        '"end": "2028-01-01T00:00:00Z", "category": "land"}]'
    )
    p = run(
        "check",
        "--agreement",
        AID,
        "--events",
        str(bad),
        "--as-of",
        "2028-06-01T00:00:00Z",
        cwd=tmp_path,
    )
    assert p.returncode == 2 and "record 0 (id 'x'), field 'end'" in p.stderr and p.stdout == ""
    p = run("check", "--agreement", "no-such-treaty", "--events", str(bad), cwd=tmp_path)
    assert p.returncode == 2 and "unknown agreement" in p.stderr


def test_agreements_verbs(tmp_path: Path) -> None:
    listed = run("agreements", "list", cwd=tmp_path)
    assert listed.returncode == 0 and AID in listed.stdout
    shown = run("agreements", "show", AID, cwd=tmp_path)
    assert shown.returncode == 0 and "launch_notification" in shown.stdout and "P3D" in shown.stdout
    schema = json.loads(run("agreements", "schema", cwd=tmp_path).stdout)
    assert "measures" in schema["properties"]
    broken = tmp_path / "a.yaml"
    broken.write_text(
        "id: x\ntitle: t\nversion: '1'\nparties: [AAA]\nmeasures:\n"
        "  - {id: m, kind: transparency, provision: p, rule: reply_deadline,"
        " request_kind: explanation, within: two days}\n"
    )
    p = run("agreements", "validate", str(broken), cwd=tmp_path)
    assert p.returncode == 2 and "measures[0] (id 'm').within" in p.stderr


def test_an_events_file_above_the_small_input_bound_is_read(tmp_path: Path) -> None:
    """A year of a large regime's traffic is a million events (about 170 MB): an events
    file is bounded at 512 MiB, not at the 16 MiB of keys and proofs. Checked with a
    17 MiB file (an empty array padded with spaces): read, and no findings (exit 0)."""
    from cbmnet.cli.files import MAX_INPUT_BYTES

    big = tmp_path / "events.json"
    big.write_text("[" + " " * (MAX_INPUT_BYTES + (1 << 20)) + "]")
    p = run(
        "check",
        "--agreement",
        "vienna-document-2011",
        "--events",
        str(big),
        "--as-of",
        "2030-01-01T00:00:00Z",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["findings"] == []
