"""Go's own tile reader for the interop tests: the ``tlogtiles`` fixture builds
tests/interop/tlogtiles/main.go against Debian's golang.org/x/mod (GOPATH mode, offline).

Needs ``go`` and the x/mod sources (``.ci/run`` installs both): locally a test that uses it
skips saying so; in CI it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_SRC = Path(__file__).resolve().parent / "interop" / "tlogtiles"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="session")
def tlogtiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program, built in GOPATH mode against Debian's x/mod (no module download)."""
    go = shutil.which("go")
    missing = [] if go else ["go (apt: golang-go)"]
    if not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        missing.append("golang.org/x/mod (apt: golang-golang-x-mod-dev)")
    if missing:
        msg = f"Go's tile reader cannot be built here: missing {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (.ci/run installs them)")
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("go") / "tlogtiles"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out.parent / "cache"),
        "GOFLAGS": "",
    }
    subprocess.run([str(go), "build", "-o", str(out), "."], cwd=GO_SRC, env=env, check=True, timeout=300)
    return out
