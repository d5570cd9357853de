"""Helpers for benchmarks that load a real hub: the hub in a subprocess, parties, profiling.

``HubProcess`` creates a hub (``init_hub``) over an agreement of generated parties and
serves it from a child process (``python bench/_hubload.py serve ...``, the project's
``ServerThread`` inside), so the load generator and the server do not share a GIL. The
child reads commands on stdin (``profile start``, ``profile stop``, ``stop``; EOF stops
it too, so it cannot outlive its parent) and answers on stdout.

With ``profiling`` the child can profile its hub while the load runs (py-spy is not at
hand): ``LoopProfile`` runs cProfile in the event loop's thread (exact counts and
self times, about twice as slow); ``Sampler`` records the Python stack of every thread
every few milliseconds (idle, waiting on a lock, or running) and reads each thread's
CPU time from /proc. Sampling in-process needs the GIL, so it over-samples code that
releases it (zlib, SQLite): trust its CPU figures and its wait shares, and the
cProfile figures for the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import linecache
import os
import pstats
import re
import select
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cbmnet.agreements.model import Agreement
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.hub.service import init_hub
from cbmnet.ledger.note import generate_key
from cbmnet.party.client import HubClient, Identity

ORIGIN = "hub.bench.cbmnet.test/log"
AGREEMENT_ID = "bench-hotline"


def party_ids(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"P{i:0{width}d}" for i in range(n)]


def bench_agreement(parties: list[str]) -> Agreement:
    """An agreement with these parties and no measures: only hotline traffic is logged."""
    return Agreement.model_validate(
        {
            "id": AGREEMENT_ID,
            "title": "Benchmark hotline network",
            "version": "1",
            "parties": parties,
            "measures": [],
        }
    )


@dataclass
class Party:
    id: str
    signer: str
    vkey: str
    enc_private: str
    enc_public: str

    def identity(self) -> Identity:
        return Identity(self.id, self.signer, self.enc_private)


def new_party(pid: str) -> Party:
    skey, vkey = generate_key(f"{pid.lower()}.bench.cbmnet.test")
    ep, eq = generate_encryption_key()
    return Party(pid, skey, vkey, ep, eq)


# ---- the store --------------------------------------------------------------------------


@contextmanager
def store_url(db: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    """(url, backend): SQLite in ``tmp``, or a fresh schema on ``db``'s PostgreSQL, dropped after."""
    if db is None:
        yield f"sqlite:///{tmp / 'hub.db'}", "sqlite"
        return
    if not db.startswith(("postgresql://", "postgres://")):
        yield db, "sqlite"
        return
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in db else "?"
        yield f"{db}{sep}options={quote(f'-csearch_path={schema}')}", "postgres"
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# ---- the hub in a child process ---------------------------------------------------------


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc; None elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HubProcess:
    """A hub for ``parties`` served by a child process; ``secretariat`` registers them."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        parties: list[str],
        *,
        writes_per_s: float,
        party_writes_per_s: float | None = None,
        profiling: bool = False,
    ) -> None:
        sec_skey, sec_vkey = generate_key("secretariat.bench.cbmnet.test")
        self.secretariat = Identity("secretariat", sec_skey)
        init_hub(
            url,
            tmp / "hubkeys",
            origin=ORIGIN,
            secretariat_vkey=sec_vkey,
            agreements=[bench_agreement(parties)],
        )
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "serve",
            "--url",
            url,
            "--keys",
            str(tmp / "hubkeys"),
            "--writes-per-s",
            str(writes_per_s),
            *(
                ["--party-writes-per-s", str(party_writes_per_s)]
                if party_writes_per_s is not None
                else []
            ),
            *(["--profiling"] if profiling else []),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = self._read_line(timeout=120)
            if not line.startswith("PORT "):
                raise RuntimeError(f"the hub process did not start: {line!r}")
        except BaseException:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the hub process did not answer within {timeout} s")
        return self.proc.stdout.readline().strip()

    def command(self, cmd: str, timeout: float = 60) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read_line(timeout)

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.proc.pid)

    def close(self) -> None:
        """Stop the child: ask, then wait, then kill (never leave it running)."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def register(self, parties: list[Party]) -> None:
        """Log each party's registration (the secretariat's signed act), as a real hub does."""
        with HubClient(self.url, self.secretariat) as sec:
            for p in parties:
                sec.register(
                    {
                        "party": p.id,
                        "name": f"State {p.id}",
                        "agreements": [AGREEMENT_ID],
                        "signing_key": p.vkey,
                        "encryption_key": p.enc_public,
                        "contact": {"poc": f"verification centre of {p.id}"},
                    }
                )


# ---- sampling profiler ------------------------------------------------------------------

_IDLE = {
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("selectors.py", "select"),
    ("runners.py", "run"),
    ("base_events.py", "run_forever"),
    ("base_events.py", "run_until_complete"),
    ("base_events.py", "_run_once"),
    ("_hubload.py", "serve"),  # the child's main thread, reading commands
}
_BLOCKING_LINE = re.compile(r"(sleep|wait|select|readline|notifies)\(|\.get\(\)")
"""A leaf line blocking in C (time.sleep, queue.get, ...): the thread is parked there."""
_LOCK_LINE = re.compile(r"^\s*with [\w.]*lock\b.*:|\.acquire\(")


def _threads_cpu() -> dict[int, tuple[str, float]]:
    """Native thread id -> (group, CPU seconds) for this process's threads (Linux /proc)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        try:
            text = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        out[t.native_id] = (_thread_group(t.name), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _label_path(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _label(code: CodeType) -> str:
    return f"{_label_path(code.co_filename)}:{code.co_name}"


def _thread_group(name: str) -> str:
    if name.endswith("(run)"):
        return "uvicorn event loop"  # ServerThread's thread
    return re.sub(r"[-_ ]?\d+", "", name.split(" (")[0]).strip() or name


class Sampler:
    """Stacks of every thread every ``interval_s``: idle, waiting on a lock, or running.

    "Running" includes waiting for the GIL and time in C (a SQLite statement, an fsync,
    zlib); the self entries name the line (and its caller's line) to tell those apart.
    """

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.samples = 0
        self.state: dict[str, Counter[str]] = {}
        self.self_time: dict[str, Counter[str]] = {}
        self.inclusive: dict[str, Counter[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._cpu0: dict[int, tuple[str, float]] = {}
        self._t0 = 0.0
        self.cpu_pct: dict[str, float] = {}
        self.gc_pauses: dict[str, tuple[int, float, float]] = {}
        self._gc_t0 = 0.0

    def start(self) -> None:
        self._cpu0 = _threads_cpu()
        self._t0 = time.perf_counter()
        gc.callbacks.append(self._gc)
        self._thread.start()

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        """Collector pauses (every thread stops: the collector holds the GIL)."""
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        ms = 1000 * (time.perf_counter() - self._gc_t0)
        gen = str(info.get("generation"))
        n, total, worst = self.gc_pauses.get(gen, (0, 0.0, 0.0))
        self.gc_pauses[gen] = (n + 1, total + ms, max(worst, ms))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        wall = time.perf_counter() - self._t0
        cpu: dict[str, float] = {}
        for tid, (group, s) in _threads_cpu().items():
            cpu[group] = cpu.get(group, 0.0) + s - self._cpu0.get(tid, (group, 0.0))[1]
        ranked = sorted(cpu.items(), key=lambda kv: -kv[1])
        self.cpu_pct = {g: round(100 * s / wall, 1) for g, s in ranked}

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            names = {t.ident: t.name for t in threading.enumerate()}
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    try:
                        self._sample(_thread_group(names.get(ident, "?")), frame)
                    except Exception:  # a frame torn down while read: skip the sample
                        continue

    def _sample(self, group: str, frame: FrameType) -> None:
        state = self.state.setdefault(group, Counter())
        leaf = frame.f_code
        line = linecache.getline(leaf.co_filename, frame.f_lineno or 0)
        if (os.path.basename(leaf.co_filename), leaf.co_name) in _IDLE or _BLOCKING_LINE.search(line):
            state["idle"] += 1
            return
        where = f"{_label(leaf)}:{frame.f_lineno}"
        if frame.f_back is not None:
            where += f" <- {_label(frame.f_back.f_code)}:{frame.f_back.f_lineno}"
        if _LOCK_LINE.search(line):
            state["lock"] += 1
            where = "[lock] " + where
        else:
            state["busy"] += 1
        self.self_time.setdefault(group, Counter())[where] += 1
        codes = set()
        f: FrameType | None = frame
        while f is not None:
            codes.add(f.f_code)
            f = f.f_back
        self.inclusive.setdefault(group, Counter()).update({_label(c) for c in codes})

    def report(self, top: int = 15) -> dict[str, Any]:
        out: dict[str, Any] = {
            "samples": self.samples,
            "interval_s": self.interval_s,
            "cpu_pct": self.cpu_pct,
            "gc_pauses": {
                g: (n, round(t, 1), round(w, 1)) for g, (n, t, w) in sorted(self.gc_pauses.items())
            },
            "objects": len(gc.get_objects()),
            "gc_enabled": gc.isenabled(),
            "threads": {},
        }
        for group, state in sorted(self.state.items(), key=lambda kv: -kv[1]["busy"]):
            out["threads"][group] = {
                **{k: state[k] for k in ("busy", "lock", "idle")},
                "self": self.self_time.get(group, Counter()).most_common(top),
                "inclusive": self.inclusive.get(group, Counter()).most_common(3 * top),
            }
        return out


def format_profile(report: dict[str, Any], top: int = 10) -> str:
    """Readable text of a ``Sampler.report``: shares of wall time, summed over a group's threads."""
    n = max(1, int(report["samples"]))
    lines = []
    loop = report.get("loop")
    if loop:
        lines.append(
            f"event loop thread, cProfile: {loop['total_s']} s of CPU in Python functions; "
            "self time (tottime):"
        )
        lines += [f"  {p:5.1f}% {t:8.3f} s {c:8d}x  {name}" for name, c, t, p in loop["tottime"]]
        lines.append("cumulative (cumtime; coroutines count each resumption):")
        lines += [f"  {p:5.1f}% {t:8.3f} s {c:8d}x  {name}" for name, c, t, p in loop["cumtime"]]
        lines.append("")
    lines.append(f"all threads, sampled: {n} samples every {report['interval_s'] * 1000:.0f} ms")
    cpu = report.get("cpu_pct") or {}
    if cpu:
        lines.append(
            f"CPU by thread (% of one core, the sampler's own included): "
            f"total {sum(cpu.values()):.0f}: "
            + ", ".join(f"{g} {c:.0f}" for g, c in cpu.items() if c >= 0.5)
        )
    pauses = "; ".join(
        f"gen {g}: {k}x, {t} ms in all, worst {w} ms" for g, (k, t, w) in report["gc_pauses"].items()
    )
    lines.append(
        f"cyclic collector {'on' if report['gc_enabled'] else 'OFF'} at the end, "
        f"{report['objects']} objects tracked; its pauses: {pauses or 'none'}"
    )
    for group, t in report["threads"].items():
        if not t["busy"] and not t["lock"]:
            continue
        lines.append(
            f"\n[{group}] running {100 * t['busy'] / n:.0f}%, waiting on a lock "
            f"{100 * t['lock'] / n:.0f}% of wall time"
        )
        lines.append("  self (line <- caller):")
        lines += [f"    {100 * c / n:5.1f}%  {name}" for name, c in t["self"][:top]]
        lines.append("  inclusive (cbmnet, starlette, fastapi, uvicorn, websockets):")
        keep = ("cbmnet/", "starlette/", "fastapi/", "uvicorn/", "websockets/", "anyio/")
        incl = [(name, c) for name, c in t["inclusive"] if name.startswith(keep)]
        lines += [f"    {100 * c / n:5.1f}%  {name}" for name, c in incl[:top]]
    return "\n".join(lines)


# ---- the child --------------------------------------------------------------------------


class LoopCapture:
    """The ASGI app, noting the event loop it runs on (to profile that thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


class LoopProfile:
    """cProfile in the event loop's thread (deterministic: no GIL bias, but ~2x slower)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.prof = cProfile.Profile()

    def _in_loop(self, fn: Any) -> None:
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)

    def start(self) -> None:
        self._in_loop(self.prof.enable)

    def stop(self, top: int = 25) -> dict[str, Any]:
        self._in_loop(self.prof.disable)
        st: Any = pstats.Stats(self.prof)
        rows = []
        for (path, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():
            rows.append((_label_path(path) + f":{line}:{func}", nc, tt, ct))
        total = float(st.total_tt) or 1.0
        by_tt = sorted(rows, key=lambda r: -r[2])[:top]
        by_ct = sorted(rows, key=lambda r: -r[3])
        keep = ("cbmnet/", "starlette/", "fastapi/", "uvicorn/", "websockets/", "anyio/", "json/")
        by_ct = [r for r in by_ct if r[0].startswith(keep)][:top]
        return {
            "total_s": round(total, 3),
            "tottime": [(n, c, round(t, 4), round(t / total * 100, 1)) for n, c, t, _ in by_tt],
            "cumtime": [(n, c, round(t, 4), round(t / total * 100, 1)) for n, c, _, t in by_ct],
        }


def serve(argv: list[str]) -> None:
    from cbmnet.hub.app import create_app
    from cbmnet.hub.server import ServerThread
    from cbmnet.hub.service import Hub, HubKeys, HubSettings

    ap = argparse.ArgumentParser(prog="_hubload.py serve")
    ap.add_argument("--url", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--writes-per-s", type=float, default=HubSettings.writes_per_s)
    ap.add_argument("--party-writes-per-s", type=float, default=HubSettings.party_writes_per_s)
    ap.add_argument("--profiling", action="store_true", help="accept 'profile start|stop'")
    args = ap.parse_args(argv)
    settings = HubSettings(writes_per_s=args.writes_per_s, party_writes_per_s=args.party_writes_per_s)
    hub = Hub(args.url, HubKeys.load(Path(args.keys)), settings)
    app = create_app(hub)
    capture = LoopCapture(app) if args.profiling else None  # one ASGI layer more: only then
    server = ServerThread(capture or app)
    sampler: Sampler | None = None
    loop_prof: LoopProfile | None = None
    try:
        server.start()
        print(f"PORT {server.port}", flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stop":
                break
            if cmd == "profile start" and capture is not None and capture.loop is not None:
                sampler = Sampler()
                sampler.start()
                loop_prof = LoopProfile(capture.loop)
                loop_prof.start()
                print("OK", flush=True)
            elif cmd == "profile stop" and sampler is not None and loop_prof is not None:
                report = {"loop": loop_prof.stop()}
                sampler.stop()
                report.update(sampler.report())
                print("PROFILE " + json.dumps(report), flush=True)
                sampler = loop_prof = None
            else:
                print(f"ERROR unknown command {cmd!r}", flush=True)
    finally:
        if sampler is not None:
            sampler.stop()
        server.stop()
        hub.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        sys.exit("usage: _hubload.py serve --url URL --keys DIR [--writes-per-s N] [--profiling]")
