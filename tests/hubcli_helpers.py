"""Run the ``cbmnet`` CLI in-process the way a user meets it, and ``cbmnet serve`` for real."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from cbmnet.cli.main import main as cli_main


class _Main:
    """Stands in for a click command: ``CliRunner`` calls ``.main(args=..., prog_name=...)``.

    It runs ``cbmnet.cli.main.main`` itself, so the one error-to-exit-code mapping is the
    one under test (invoking the Typer app directly would bypass it).
    """

    name = "cbmnet"

    def main(self, args: Sequence[str], prog_name: str, **_: Any) -> None:
        saved = sys.argv
        sys.argv = [prog_name, *args]
        try:
            cli_main(in_process=True)
        finally:
            sys.argv = saved


def cli(*args: str, env: Mapping[str, str | None] | None = None, input: str | None = None) -> Result:
    """One ``cbmnet`` invocation; fails the test on any traceback-worthy exception."""
    base: dict[str, str | None] = {
        "CBMNET_HUB": None,
        "CBMNET_PARTY": None,
        "CBMNET_KEY": None,
        "CBMNET_HPKE": None,
        "CBMNET_DB": None,
    }
    r = CliRunner().invoke(_Main(), list(args), env={**base, **(env or {})}, input=input)  # type: ignore[arg-type]
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"cbmnet {' '.join(args)} raised {r.exception!r}") from r.exception
    assert "Traceback" not in r.output, r.output
    return r


def ok(*args: str, env: Mapping[str, str | None] | None = None, input: str | None = None) -> Result:
    r = cli(*args, env=env, input=input)
    assert r.exit_code == 0, f"cbmnet {' '.join(args)} -> {r.exit_code}: {r.stderr}"
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    args: Sequence[str], log_path: Path, cwd: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``cbmnet serve ARGS --port P`` as a real process; always terminated and reaped."""
    port = free_port()
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cbmnet.cli.main", "serve", *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not come up: " + log_path.read_text()[-2000:])
            time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
