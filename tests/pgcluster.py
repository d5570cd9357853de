"""A PostgreSQL primary with a synchronous streaming standby, on loopback, for failover tests.

Debian's own binaries (``/usr/lib/postgresql/<version>/bin``: initdb, pg_ctl,
pg_basebackup -R); nothing home-made replicates. The primary commits only once the
standby (``application_name=standby1``, ``synchronous_standby_names = 'FIRST 1
(standby1)'``) has flushed the WAL (``synchronous_commit = on``), so a COMMIT that
returned survives the primary's loss. Both servers run as the ``postgres`` OS user when
this process is root (PostgreSQL refuses root), in data directories under a temporary
directory, on free loopback ports; :meth:`PgCluster.stop` stops both (``-m immediate``
as the fallback) and removes the directory.

Used by ``tests/test_pg_failover.py`` and by ``bench/soak.py --failover`` (which puts the
repository root on ``sys.path``); importing it needs no pytest (:func:`cluster_or_skip`
imports it only when called).

cbmnet never promotes anything: here the test plays the operator (or Patroni), calling
:meth:`PgCluster.kill_primary` and then :meth:`PgCluster.promote`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

PG_BIN_ROOT = Path("/usr/lib/postgresql")
STANDBY_NAME = "standby1"
DB = "cbmnet"


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL bin directory holding every binary the cluster needs."""
    if not PG_BIN_ROOT.is_dir():
        return None
    versions = sorted(
        (p for p in PG_BIN_ROOT.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
    )
    for v in versions:
        b = v / "bin"
        if all((b / n).exists() for n in ("initdb", "pg_ctl", "pg_basebackup", "postgres")):
            return b
    return None


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if pg_bin() is None:
        return f"PostgreSQL server binaries not found under {PG_BIN_ROOT}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A primary and its synchronous standby. ``start()`` then ``url``; ``stop()`` always."""

    def __init__(self, *, keep_log_tail: int = 4000) -> None:
        bin_dir = pg_bin()
        if bin_dir is None:
            raise RuntimeError(missing_reason() or "no PostgreSQL binaries")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cbmnet-pgcluster-"))
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        while self.standby_port == self.primary_port:
            self.standby_port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._keep_log_tail = keep_log_tail
        self.primary_up = False
        self.standby_up = False
        self.promoted = False

    # ---- running the binaries ------------------------------------------------------------

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(self.bin / name), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else argv

    def _run(self, name: str, *args: str, timeout: float = 120) -> None:
        r = subprocess.run(
            self._cmd(name, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise RuntimeError(
                f"{name} {' '.join(args)} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-2000:]}"
            )

    def _pg_ctl(self, data: Path, *args: str, timeout: float = 60) -> None:
        self._run("pg_ctl", "-D", str(data), *args, timeout=timeout)

    def _start_server(self, data: Path, logname: str) -> None:
        # -W: do not wait; we wait ourselves (a standby is "ready" before it can be queried).
        # No pipes: the server inherits pg_ctl's descriptors and would hold a pipe open.
        argv = self._cmd("pg_ctl", "-D", str(data), "-l", str(self.root / logname), "-W", "start")
        r = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            timeout=60,
            start_new_session=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start of {data} failed ({r.returncode})\n{self.logs()}")

    # ---- the cluster -----------------------------------------------------------------------

    def url_for(self, port: int, db: str = DB) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{db}"

    @property
    def url(self) -> str:
        """Both servers, the writable one chosen at each connection (libpq multi-host)."""
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}"
            f"/{DB}?target_session_attrs=read-write"
        )

    def start(self, timeout: float = 90) -> PgCluster:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            "initdb",
            "-D",
            str(self.primary_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.primary_port),
            "unix_socket_directories": f"'{self.root}'",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "max_replication_slots": "5",
            "wal_keep_size": "'256MB'",
            "hot_standby": "on",
            "synchronous_commit": "on",
            "fsync": "on",
            "max_connections": "60",
            "shared_buffers": "'32MB'",
            "log_min_messages": "warning",
        }
        with open(self.primary_dir / "postgresql.conf", "a") as f:
            f.write("\n# cbmnet tests/pgcluster.py\n")
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        with open(self.primary_dir / "pg_hba.conf", "w") as f:
            f.write(
                "local all all trust\n"
                "host all all 127.0.0.1/32 trust\n"
                "local replication all trust\n"
                "host replication all 127.0.0.1/32 trust\n"
            )
        self._start_server(self.primary_dir, "primary.log")
        self.primary_up = True
        self._wait_writable(self.primary_port, timeout, db="postgres")
        with psycopg.connect(self.url_for(self.primary_port, "postgres"), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {DB}")
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            str(self.standby_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            f"host=127.0.0.1 port={self.primary_port} user=postgres application_name={STANDBY_NAME}",
        )
        with open(self.standby_dir / "postgresql.conf", "a") as f:
            f.write(f"port = {self.standby_port}\n")
        self._start_server(self.standby_dir, "standby.log")
        self.standby_up = True
        # Only now is the primary made to wait for the standby at each commit (set before,
        # CREATE DATABASE would wait for a standby not yet there). Set on the primary
        # alone, after the base backup: the promoted standby must not wait for a standby.
        with psycopg.connect(self.url_for(self.primary_port, "postgres"), autocommit=True) as c:
            c.execute(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'")
            c.execute("SELECT pg_reload_conf()")
        self._wait_sync_standby(timeout)
        return self

    def _wait_writable(self, port: int, timeout: float, db: str = DB) -> float:
        """Seconds until the server at ``port`` accepts a write (a read-write session)."""
        t0 = time.monotonic()
        last: Exception | None = None
        while time.monotonic() - t0 < timeout:
            try:
                with psycopg.connect(self.url_for(port, db), autocommit=True, connect_timeout=2) as c:
                    row = c.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        return time.monotonic() - t0
            except psycopg.Error as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"port {port} not writable after {timeout} s: {last}\n{self.logs()}")

    def _wait_sync_standby(self, timeout: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with psycopg.connect(self.url_for(self.primary_port), autocommit=True) as c:
                rows = c.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (STANDBY_NAME,),
                ).fetchall()
            if rows and rows[0][0] == "sync":
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby never became synchronous\n{self.logs()}")

    def replication(self) -> list[tuple[Any, ...]]:
        """The primary's pg_stat_replication (application_name, state, sync_state)."""
        with psycopg.connect(self.url_for(self.primary_port), autocommit=True) as c:
            return c.execute(
                "SELECT application_name, state, sync_state FROM pg_stat_replication"
            ).fetchall()

    def stop_standby(self) -> None:
        """The standby goes away: the primary's commits wait for it (synchronous commit)."""
        self._pg_ctl(self.standby_dir, "-m", "fast", "stop")
        self.standby_up = False

    def start_standby(self, timeout: float = 60) -> None:
        """Start the (stopped, not promoted) standby again; returns once it answers."""
        self._start_server(self.standby_dir, "standby.log")
        self.standby_up = True
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                with psycopg.connect(self.url_for(self.standby_port), connect_timeout=2) as c:
                    c.execute("SELECT 1")
                return
            except psycopg.Error:
                time.sleep(0.05)
        raise RuntimeError(f"the standby did not come back\n{self.logs()}")

    def kill_primary(self) -> None:
        """The primary is lost: stopped at once, no shutdown checkpoint, clients cut off."""
        self._pg_ctl(self.primary_dir, "-m", "immediate", "stop")
        self.primary_up = False

    def promote(self, timeout: float = 60) -> float:
        """Promote the standby (``pg_ctl promote``); seconds until it accepts writes."""
        t0 = time.monotonic()
        self._pg_ctl(self.standby_dir, "-W", "promote")
        self._wait_writable(self.standby_port, timeout)
        self.promoted = True
        return time.monotonic() - t0

    def logs(self) -> str:
        out = []
        for name in ("primary.log", "standby.log"):
            p = self.root / name
            with contextlib.suppress(OSError):
                out.append(f"--- {name}\n{p.read_text(errors='replace')[-self._keep_log_tail :]}")
        return "\n".join(out)

    def stop(self) -> None:
        """Stop whatever still runs (fast, then immediate) and remove the directory."""
        for data, up in ((self.standby_dir, self.standby_up), (self.primary_dir, self.primary_up)):
            if not up and not (data / "postmaster.pid").exists():
                continue
            try:
                self._pg_ctl(data, "-m", "fast", "-t", "20", "stop", timeout=30)
            except Exception:
                with contextlib.suppress(Exception):
                    self._pg_ctl(data, "-m", "immediate", "stop", timeout=30)
        self.primary_up = self.standby_up = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A started cluster, stopped on the way out whatever happens (even if start fails)."""
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def cluster_or_skip() -> None:
    """In a test: skip locally, fail in CI (``CI=true``), when a cluster cannot be started."""
    reason = missing_reason()
    if reason is None:
        return
    import pytest

    if os.environ.get("CI"):
        pytest.fail(reason + " (in CI the failover tests must run)")
    pytest.skip(reason)
