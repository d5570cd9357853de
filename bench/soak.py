"""Fault-injection soak: two hub processes on one PostgreSQL, open-loop load, faults, checks.

``make soak`` (``SOAK_SECONDS`` or ``--seconds``; about 5 minutes by default). Everything
runs on loopback and stops by itself: two ``cbmnet serve`` processes share a fresh
PostgreSQL schema (dropped at the end); four parties submit signed events and hotline
messages at several times the simulator's Vienna Document rate, alternating between the
two hubs and failing over to the other when one does not answer; every member listens on
``/v1/stream`` (reconnecting, with its cursor, to whichever hub is up) and acknowledges
each hotline message it receives; each party's witness cosigns every couple of seconds.

Faults, on a schedule, repeated while time allows:

- ``sigkill_hub``: SIGKILL one hub process, restart it on the same port a few seconds later;
- ``pg_restart``: restart the PostgreSQL cluster (``pg_ctlcluster``; skipped with a note
  when it is not available, or with ``--no-pg-restart``);
- ``primary_lost`` (only with ``--failover``, once: the soak then runs on its own
  primary and synchronous streaming standby, ``tests/pgcluster.py``, instead of ``--db``):
  stop the primary with ``pg_ctl stop -m immediate``, promote the standby a second later
  (the soak plays the operator; cbmnet never promotes); the hubs, on a multi-host URL,
  must reconnect to it and carry on, and no acknowledged entry may be missing from it.
  Replaces ``pg_restart``, which would restart the system cluster instead;
- ``witness_offline``: stop one party's witness loop, bring it back: it must catch up;
- ``clock_skew``: one party's clock runs 5 minutes fast, then 5 minutes slow. A client's
  clock reaches the log only through the times it writes into its own acts (an event's
  dates) and its witness's cosignature timestamps; tokens are the hub's (their expiry is
  the hub's clock, the client just signs a new challenge on 401), and integration time is
  the hub's. So the skewed party must still get entries stamped with the hub's time, in
  order, and its cosignatures must be accepted.

Afterwards: every acknowledged receipt (index + statement digest) is looked up in the log
as the secretariat; each hotline message id must appear once in the log and reach every
member once over its stream; the log is audited from outside (``audit_hub``) as the
secretariat and as each party; every witness must have cosigned the final checkpoint.
Progress goes to stderr; the last line of stdout is one JSON object. Exit 1 on any loss,
duplicate, late-stamped entry, missing cosignature or failed audit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.pgcluster (--failover)

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HOTLINE
from cbmnet.agreements.loader import bundled
from cbmnet.communication import hotline
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.errors import CbmnetError
from cbmnet.hub.service import init_hub
from cbmnet.ledger import dsse
from cbmnet.ledger.entry import decode_entry
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.party.audit import audit_hub
from cbmnet.party.client import HubClient, Identity
from cbmnet.party.witness import Witness, witness_hub
from cbmnet.store import open_store

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
AGREEMENT = "vienna-document-2011"
PARTIES = ("DEU", "FRA", "POL", "ITA")
CHANNEL = "soak-all"
SKEW_S = 300
START = time.monotonic()


def say(msg: str) -> None:
    print(f"[soak {time.monotonic() - START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def now() -> float:
    return time.monotonic()


# ---- the database -----------------------------------------------------------------------


@contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    import psycopg

    schema = "soak_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        wait_pg(base, 60)
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def wait_pg(base: str, timeout: float) -> bool:
    import psycopg

    deadline = now() + timeout
    while now() < deadline:
        try:
            with psycopg.connect(base, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            time.sleep(0.2)
    return False


def pg_restart_command() -> list[str] | None:
    """``pg_ctlcluster`` for the (only or newest) local cluster, or None when unavailable."""
    tool = shutil.which("pg_ctlcluster")
    conf = Path("/etc/postgresql")
    if tool is None or not conf.is_dir():
        return None
    versions = sorted((p.name for p in conf.iterdir() if (p / "main").is_dir()), key=_version_key)
    if not versions:
        return None
    return [tool, "--skip-systemctl-redirect", versions[-1], "main", "restart"]


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)) or (0,)


# ---- hub processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProc:
    """``cbmnet serve`` in a process group of its own, on a fixed port (kept over restarts)."""

    def __init__(self, name: str, db: str, keys: Path, log_path: Path) -> None:
        self.name = name
        self.db = db
        self.keys = keys
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> float:
        """Start and wait for /healthz; returns the seconds it took."""
        t0 = now()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cbmnet.cli.main",
                    "serve",
                    "--db",
                    self.db,
                    "--keys",
                    str(self.keys),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while now() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub {self.name} exited: {self.log_path.read_text()[-2000:]}")
            with suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return now() - t0
            time.sleep(0.1)
        raise RuntimeError(f"hub {self.name} did not come up in {timeout} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


# ---- what happened ----------------------------------------------------------------------


@dataclass
class Record:
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempted: int = 0
    acked: dict[int, tuple[bytes, str, str]] = field(default_factory=dict)
    """index -> (statement digest, kind, party) of every receipt a client got."""
    conflicting: list[str] = field(default_factory=list)
    """Two receipts naming one index for different statements."""
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ok_writes: list[tuple[float, int, str]] = field(default_factory=list)
    """(monotonic time, hub number, party) of every acknowledged write."""
    hotline_sent: dict[str, int] = field(default_factory=dict)
    """message id -> index, for every message acknowledged by the hub."""
    hotline_attempted: int = 0
    acks_sent: int = 0
    acks_acknowledged: int = 0
    received: dict[str, Counter[str]] = field(default_factory=dict)
    """member -> message id -> times pushed to it."""
    stream_reconnects: Counter[str] = field(default_factory=Counter)
    cosigns: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    witness_errors: Counter[str] = field(default_factory=Counter)
    skewed: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(index, sent wall ms, answered wall ms, integrated ms) of the skewed party's writes."""
    faults: list[dict[str, Any]] = field(default_factory=list)


def status_of(e: BaseException) -> str:
    m = re.search(r"hub answered (\d{3})", str(e))
    if m:
        return m.group(1)
    if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
        return "timeout"
    return "connect"


@dataclass
class PartyKeys:
    party: str
    signer: str
    vkey: str
    enc_private: str
    enc_public: str
    witness_signer: str

    def identity(self) -> Identity:
        return Identity(self.party, self.signer, self.enc_private)


def party_keys(party: str) -> PartyKeys:
    skey, vkey = generate_key(f"{party.lower()}.soak.cbmnet.test")
    ep, eq = generate_encryption_key()
    wskey, _ = generate_key(f"witness.{party.lower()}.soak.cbmnet.test")
    return PartyKeys(party, skey, vkey, ep, eq, wskey)


class Clock:
    """A party's notion of time: the wall clock plus its skew (changed by the fault)."""

    def __init__(self) -> None:
        self.skew_s = 0

    def time(self) -> float:
        return time.time() + self.skew_s


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---- the load ---------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, hubs: list[HubProc], keys: dict[str, PartyKeys]):
        self.args = args
        self.hubs = hubs
        self.keys = keys
        self.rec = Record()
        self.stop_load = threading.Event()
        self.stop_all = threading.Event()
        self.clocks = {p: Clock() for p in keys}
        self.queues: dict[str, queue.Queue[tuple[str, Any] | None]] = {p: queue.Queue() for p in keys}
        self.witness_on = {p: threading.Event() for p in keys}
        for e in self.witness_on.values():
            e.set()
        self.rng = random.Random(args.seed)
        self.origin = ""
        self.log_vkey = ""
        self.members: dict[str, bytes] = {}
        self.seq = Counter[str]()
        self.threads: list[threading.Thread] = []
        self.t0 = now()
        self.load_s = 0.0

    # one write, with failover -------------------------------------------------------------

    def submit(
        self, clients: list[HubClient], env: bytes, kind: str, party: str, turn: int
    ) -> dict[str, Any] | None:
        """Send ``env`` to one hub, then the other, until a receipt or a deadline.

        The same bytes are resent, so a write that committed but lost its answer comes back
        as the original's receipt (``duplicate``): never a second entry.
        """
        with self.rec.lock:
            self.rec.attempted += 1
        deadline = now() + self.args.write_deadline
        i = turn
        delay = 0.05
        while True:
            c = clients[i % len(clients)]
            sent_wall = time.time()
            try:
                r = c.submit(env, proof=False)
            except CbmnetError as e:
                st = status_of(e)
                with self.rec.lock:
                    self.rec.errors[st] += 1
                if st not in ("connect", "timeout", "500", "502", "503", "504", "429") or (
                    now() > deadline or self.stop_all.is_set()
                ):
                    with self.rec.lock:
                        self.rec.failed += 1
                    if st == "409" or st == "422" or st == "400":
                        say(f"{party} {kind}: refused: {e}")
                    return None
                i += 1
                if i % len(clients) == turn % len(clients):
                    time.sleep(delay)
                    delay = min(1.0, delay * 2)
                continue
            digest = dsse.parse(env).statement_digest()
            idx = int(r["index"])
            with self.rec.lock:
                have = self.rec.acked.get(idx)
                if have is not None and have[0] != digest:
                    self.rec.conflicting.append(f"index {idx}: {have[1]} and {kind}")
                self.rec.acked[idx] = (digest, kind, party)
                self.rec.ok_writes.append((now(), i % len(clients), party))
                if self.clocks[party].skew_s:
                    self.rec.skewed.append(
                        (idx, int(sent_wall * 1000), int(time.time() * 1000), int(r["integrated_ms"]))
                    )
            return r

    # a party's writers ---------------------------------------------------------------------

    def writer(self, party: str, n: int) -> None:
        k = self.keys[party]
        clients = [HubClient(h.url, k.identity(), timeout=self.args.http_timeout) for h in self.hubs]
        signer = clients[0]
        turn = n
        try:
            while True:
                job = self.queues[party].get()
                if job is None:
                    return
                turn += 1
                what, arg = job
                if what == "event":
                    t = self.clocks[party].time()
                    doc = {
                        "party": party,
                        "agreement": AGREEMENT,
                        "id": arg,
                        "type": "activity",
                        "start": iso(t + 42 * 86400),
                        "end": iso(t + 44 * 86400),
                        "category": "land",
                        "size": {"troops": 9000 + self.rng.randrange(1000)},
                        "exercise": True,
                    }
                    self.submit(clients, signer.sign(PT_EVENT, doc), "event", party, turn)
                elif what == "hotline":
                    with self.rec.lock:
                        self.rec.hotline_attempted += 1
                    bind = hotline.info(self.origin, CHANNEL, arg, party)
                    doc = {
                        "act": "hotline.message",
                        "party": party,
                        "channel": CHANNEL,
                        "id": arg,
                        "precedence": self.rng.choice(["flash", "immediate", "priority", "routine"]),
                        "exercise": True,
                        "suite": hotline.SUITE_NAME,
                        "ciphertexts": hotline.seal(
                            f"soak message {arg} at {iso(self.clocks[party].time())}".encode(),
                            self.members,
                            bind,
                        ),
                    }
                    r = self.submit(clients, signer.sign(PT_HOTLINE, doc), "hotline", party, turn)
                    if r is not None:
                        with self.rec.lock:
                            self.rec.hotline_sent[arg] = int(r["index"])
                else:  # an acknowledgement of (index, statement hex)
                    idx, statement = arg
                    with self.rec.lock:
                        self.rec.acks_sent += 1
                    doc = {
                        "act": "ack",
                        "entry": idx,
                        "party": party,
                        "statement": statement,
                        "exercise": True,
                    }
                    r = self.submit(clients, signer.sign(PT_ACK, doc), "ack", party, turn)
                    if r is not None:
                        with self.rec.lock:
                            self.rec.acks_acknowledged += 1
        finally:
            for c in clients:
                c.close()

    def scheduler(self) -> None:
        """Open loop: jobs at the target rate whatever the answers (backlog queues up)."""
        rate = self.args.rate
        share = self.args.hotline_share
        t = now()
        parties = list(self.keys)
        while not self.stop_load.is_set():
            t += self.rng.expovariate(rate)
            wait = t - now()
            if wait > 0 and self.stop_load.wait(wait):
                return
            p = self.rng.choice(parties)
            self.seq[p] += 1
            if self.rng.random() < share:
                self.queues[p].put(("hotline", f"{p}-m{self.seq[p]:06d}"))
            else:
                self.queues[p].put(("event", f"{p}-e{self.seq[p]:06d}"))

    # a member's stream ----------------------------------------------------------------------

    def listener(self, party: str, first: int) -> None:
        """Follow /v1/stream from a cursor; on any failure reconnect to the other hub."""
        k = self.keys[party]
        got = self.rec.received.setdefault(party, Counter())
        cursor = -1
        hub_i = first

        async def follow(c: HubClient) -> None:
            nonlocal cursor
            stream = c.stream(after=cursor)
            try:
                async for item in stream:
                    idx = int(item["index"])
                    if idx <= cursor:
                        with self.rec.lock:
                            self.rec.errors["stream_reordered"] += 1
                    cursor = max(cursor, idx)
                    if item.get("kind") != "hotline.message":
                        continue
                    doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
                    with self.rec.lock:
                        got[str(doc["id"])] += 1
                    if doc["party"] != party and got[str(doc["id"])] == 1:
                        env = dsse.parse(json.dumps(item["envelope"]).encode())
                        self.queues[party].put(("ack", (idx, env.statement_digest().hex())))
                    if self.stop_all.is_set():
                        return
            finally:
                await stream.aclose()

        async def run_one(c: HubClient) -> None:
            task = asyncio.ensure_future(follow(c))
            while not task.done():
                if self.stop_all.is_set():
                    task.cancel()
                await asyncio.sleep(0.2)
            with suppress(asyncio.CancelledError):
                task.result()

        while not self.stop_all.is_set():
            c = HubClient(self.hubs[hub_i].url, k.identity(), timeout=self.args.http_timeout)
            why = "closed"
            try:
                asyncio.run(run_one(c))
            except asyncio.CancelledError:
                pass
            except Exception as e:  # a dropped socket, a dead hub, a 4401: reconnect
                why = f"{type(e).__name__}: {str(e)[:100]}"
            finally:
                c.close()
            if self.stop_all.is_set():
                return
            with self.rec.lock:
                self.rec.stream_reconnects[party] += 1
            if self.args.verbose:
                say(f"{party} stream on hub {hub_i} ended ({why}); to the other hub")
            hub_i = (hub_i + 1) % len(self.hubs)
            time.sleep(0.3)

    # a party's witness ---------------------------------------------------------------------

    def witness(self, party: str, folder: Path) -> None:
        k = self.keys[party]
        store = open_store(f"sqlite:///{folder / f'witness-{party}.db'}", create=True)
        w = Witness(store, k.witness_signer, [self.log_vkey])
        log = self.rec.cosigns.setdefault(party, [])
        i = 0
        try:
            while not self.stop_all.is_set():
                if not self.witness_on[party].is_set():
                    self.stop_all.wait(0.2)
                    continue
                i += 1
                c = HubClient(self.hubs[i % len(self.hubs)].url, timeout=self.args.http_timeout)
                try:
                    skew = self.clocks[party].skew_s
                    ts = int(time.time()) + skew if skew else None
                    r = witness_hub(c, w, timestamp=ts)
                    with self.rec.lock:
                        log.append((now(), r.size))
                except CbmnetError as e:
                    with self.rec.lock:
                        self.rec.witness_errors[status_of(e)] += 1
                    if self.args.verbose:
                        say(f"witness {party}: {str(e)[:120]}")
                finally:
                    c.close()
                self.stop_all.wait(self.args.witness_every)
        finally:
            store.close()

    def witnessed_size(self, party: str) -> int:
        store = open_store(f"sqlite:///{self.args.tmp / f'witness-{party}.db'}")
        try:
            rec = store.witness_latest(self.origin)
            return rec.size if rec else 0
        finally:
            store.close()

    # faults ---------------------------------------------------------------------------------

    def fault(self, kind: str, **detail: Any) -> dict[str, Any]:
        f = {"kind": kind, "at_s": round(now() - self.t0, 1), "_t": now(), **detail}
        self.rec.faults.append(f)
        say(f"FAULT {kind} {detail or ''}")
        return f

    def sigkill_hub(self, n: int) -> None:
        h = self.hubs[n % len(self.hubs)]
        f = self.fault("sigkill_hub", hub=h.name)
        h.kill()
        self.stop_all.wait(self.args.down_s)
        took = h.start()
        f["_back"] = now()
        f["restart_s"] = round(took, 1)
        say(f"hub {h.name} restarted in {took:.1f} s")

    def pg_restart(self) -> None:
        cmd = pg_restart_command()
        if cmd is None or self.args.no_pg_restart:
            return
        f = self.fault("pg_restart")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        f["_back"] = now()
        f["restart_s"] = round(now() - f["_t"], 1)
        if r.returncode != 0:
            f["error"] = (r.stderr or r.stdout).strip()[:200]
            say(f"pg_ctlcluster failed: {f['error']}")
        ok = wait_pg(self.args.db, 60)
        say(f"PostgreSQL restarted in {f['restart_s']} s (accepting: {ok})")

    def primary_lost(self) -> None:
        """The primary is lost; the operator promotes the standby (the soak plays it)."""
        cluster = self.args.cluster
        if cluster is None or cluster.promoted:
            return
        f = self.fault("primary_lost")
        cluster.kill_primary()
        f["_lost"] = now()
        self.stop_all.wait(self.args.promote_after)
        f["promote_s"] = round(cluster.promote(), 2)
        f["_back"] = now()
        say(f"standby promoted ({f['promote_s']} s); writes go to port {cluster.standby_port}")

    def witness_offline(self, n: int) -> None:
        p = list(self.keys)[n % len(self.keys)]
        f = self.fault("witness_offline", party=p)
        self.witness_on[p].clear()
        self.stop_all.wait(self.args.down_s * 2)
        f["_back"] = now()
        f["_size"] = self._checkpoint_size()
        self.witness_on[p].set()

    def clock_skew(self, n: int) -> None:
        p = list(self.keys)[(n + 2) % len(self.keys)]
        sign = 1 if n % 2 == 0 else -1
        f = self.fault("clock_skew", party=p, skew_s=sign * SKEW_S)
        self.clocks[p].skew_s = sign * SKEW_S
        self.stop_all.wait(self.args.down_s * 2)
        self.clocks[p].skew_s = -sign * SKEW_S
        say(f"{p} clock now {-sign * SKEW_S:+d} s")
        self.stop_all.wait(self.args.down_s * 2)
        self.clocks[p].skew_s = 0
        f["_back"] = now()

    def _checkpoint_size(self) -> int:
        """The size of the hub's latest signed checkpoint (what a witness is shown)."""
        for h in self.hubs:
            with suppress(httpx.HTTPError, ValueError, IndexError):
                return int(httpx.get(h.url + "/v1/log/checkpoint", timeout=2).text.split("\n")[1])
        return -1

    def faults(self) -> None:
        """Each kind once, in turn, then again while time allows; a pause between each."""
        kinds = ["sigkill_hub", "witness_offline", "clock_skew", "pg_restart"]
        if self.args.cluster is not None:  # one failover: there is no standby after it
            kinds = ["sigkill_hub", "primary_lost", "witness_offline", "clock_skew"]
        n = 0
        gap = self.args.fault_gap
        # A fault starts only with time left to see the system recover under load: down,
        # back up (a hub restarts in about 2 s), and a write or cosignature after it.
        room = gap + self.args.down_s + 4.0
        end = self.t0 + self.args.seconds
        if self.stop_load.wait(gap):
            return
        while now() < end - room:
            kind = kinds[n % len(kinds)]
            if kind == "sigkill_hub":
                self.sigkill_hub(n // len(kinds))
            elif kind == "witness_offline":
                self.witness_offline(n // len(kinds))
            elif kind == "clock_skew":
                self.clock_skew(n // len(kinds))
            elif kind == "primary_lost":
                self.primary_lost()
            else:
                self.pg_restart()
            n += 1
            if self.stop_load.wait(gap):
                return

    # the run --------------------------------------------------------------------------------

    def start(self, thread: Any, *args: Any, name: str) -> threading.Thread:
        t = threading.Thread(target=thread, args=args, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def run(self) -> None:
        self.t0 = now()
        say(f"load: {self.args.rate}/s of events and hotline messages (+ acknowledgements)")
        for i, p in enumerate(self.keys):
            self.start(self.listener, p, i % len(self.hubs), name=f"stream-{p}")
            self.start(self.witness, p, self.args.tmp, name=f"witness-{p}")
        writers = [
            self.start(self.writer, p, j, name=f"writer-{p}-{j}")
            for p in self.keys
            for j in range(self.args.writers)
        ]
        sched = self.start(self.scheduler, name="scheduler")
        faults = self.start(self.faults, name="faults")
        last = now()
        while now() - self.t0 < self.args.seconds:
            time.sleep(0.5)
            if now() - last >= 10:
                last = now()
                with self.rec.lock:
                    backlog = sum(q.qsize() for q in self.queues.values())
                    say(
                        f"{len(self.rec.acked)} acknowledged of {self.rec.attempted} attempted, "
                        f"backlog {backlog}, errors {dict(self.rec.errors)}"
                    )
        self.stop_load.set()
        sched.join()
        faults.join()  # a fault under way finishes (a hub restarts, PostgreSQL comes back)
        self.load_s = now() - self.t0
        say("load stopped; draining the writers' queues")
        for q in self.queues.values():
            for _ in range(self.args.writers):
                q.put(None)
        drain_end = now() + 120
        for t in writers:
            t.join(timeout=max(0.1, drain_end - now()))
        # Acknowledgements of the last messages: the listeners queue them after the writers
        # stopped, so send what is left with a writer of each party, once more.
        time.sleep(2)
        tail = []
        for p in self.keys:
            self.queues[p].put(None)
            tail.append(self.start(self.writer, p, 0, name=f"tail-{p}"))
        for t in tail:
            t.join(timeout=60)

    def finish(self) -> None:
        self.stop_all.set()
        end = now() + 15
        for t in self.threads:
            t.join(timeout=max(0.1, end - now()))


# ---- checks -----------------------------------------------------------------------------


def all_leaves(c: HubClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = c.leaves(len(out), 1000)
        if not page:
            return out
        out += page


def latest_cosigners(c: HubClient) -> tuple[int, int]:
    """(size, cosignature lines) of the hub's latest checkpoint."""
    cps = c.checkpoints(after=-1)
    if not cps:
        return 0, 0
    last = cps[-1]
    lines = [ln for ln in last["note"].split("\n\n", 1)[1].splitlines() if ln.startswith("— ")]
    return int(last["size"]), len(lines) - 1


def recovery(
    soak: Soak, f: dict[str, Any], cosigns: dict[str, list[tuple[float, int]]]
) -> dict[str, Any]:
    """Time from the fault to the first success after it (writes, or the witness's cosign)."""
    t = f["_t"]
    out = {k: v for k, v in f.items() if not k.startswith("_")}
    writes = soak.rec.ok_writes
    if f["kind"] == "witness_offline":
        back = f["_back"]
        after = [(ts, size) for ts, size in cosigns.get(f["party"], []) if ts >= back]
        out["offline_s"] = round(back - t, 1)
        if after:
            out["recovered_ms"] = round(1000 * (after[0][0] - t))
            out["cosigned_after_return_ms"] = round(1000 * (after[0][0] - back))
            out["caught_up"] = after[0][1] >= f["_size"]
        else:
            out["recovered_ms"] = None
        return out
    if f["kind"] == "sigkill_hub":
        n = next(i for i, h in enumerate(soak.hubs) if h.name == f["hub"])
        first_any = next((ts for ts, _, _ in writes if ts >= t), None)
        first_back = next((ts for ts, h, _ in writes if ts >= f.get("_back", t) and h == n), None)
        out["failover_ms"] = round(1000 * (first_any - t)) if first_any else None
        out["recovered_ms"] = round(1000 * (first_back - t)) if first_back else None
        return out
    if f["kind"] == "primary_lost":
        back = f["_back"]
        first = next((ts for ts, _, _ in writes if ts >= back), None)
        out["down_ms"] = round(1000 * (back - t))
        out["recovered_ms"] = round(1000 * (first - t)) if first else None
        out["resume_after_promotion_ms"] = round(1000 * (first - back)) if first else None
        # Each hub process on its own: both must carry on on the promoted server.
        by_hub = {}
        for n, h in enumerate(soak.hubs):
            mine = next((ts for ts, i, _ in writes if ts >= back and i == n), None)
            by_hub[h.name] = round(1000 * (mine - back)) if mine else None
        out["resume_by_hub_ms"] = by_hub
        if any(v is None for v in by_hub.values()):
            out["recovered_ms"] = None  # a hub that never wrote again fails the soak
        return out
    if f["kind"] == "clock_skew":
        first = next((ts for ts, _, p in writes if ts >= t and p == f["party"]), None)
    else:
        # After a restart of the database: the first write admitted after it came back.
        back = f.get("_back", t)
        first = next((ts for ts, _, _ in writes if ts >= back), None)
        out["down_ms"] = round(1000 * (back - t))
    out["recovered_ms"] = round(1000 * (first - t)) if first else None
    return out


def verify(soak: Soak, sec: Identity) -> dict[str, Any]:
    rec = soak.rec
    hub = soak.hubs[0].url
    report: dict[str, Any] = {}
    with HubClient(hub, sec, timeout=60) as c:
        leaves = all_leaves(c)
        say(f"log: {len(leaves)} entries; checking {len(rec.acked)} receipts")
        lost: list[int] = []
        for idx, (digest, kind, party) in sorted(rec.acked.items()):
            if idx >= len(leaves) or "entry" not in leaves[idx]:
                lost.append(idx)
                continue
            env = decode_entry(base64.b64decode(leaves[idx]["entry"])).envelope
            if dsse.parse(env).statement_digest() != digest:
                lost.append(idx)
                say(f"LOST: receipt {idx} ({kind} of {party}) names another act in the log")
        # Hotline messages in the log, by id.
        in_log: Counter[str] = Counter()
        integrated: dict[int, int] = {}
        for item in leaves:
            e = decode_entry(base64.b64decode(item["entry"]))
            integrated[int(item["index"])] = e.integrated_ms
            if dsse.parse(e.envelope).payload_type != PT_HOTLINE:
                continue
            doc = json.loads(dsse.parse(e.envelope).payload)
            if doc.get("act") == "hotline.message":
                in_log[str(doc["id"])] += 1
        hot_lost = [m for m in rec.hotline_sent if in_log[m] == 0]
        hot_dup_log = [m for m, n in in_log.items() if n > 1]
        # Delivery: every member got every message of the channel exactly once.
        missing: Counter[str] = Counter()
        dup_pushed: Counter[str] = Counter()
        for p in soak.keys:
            got = rec.received.get(p, Counter())
            for m in in_log:
                if got[m] == 0:
                    missing[p] += 1
                elif got[m] > 1:
                    dup_pushed[p] += 1
        report["log_size"] = len(leaves)
        report["acknowledged_lost"] = len(lost) + len(rec.conflicting)
        report["hotline_lost"] = len(hot_lost) + sum(missing.values())
        report["hotline_duplicated"] = len(hot_dup_log) + sum(dup_pushed.values())
        report["hotline_in_log"] = len(in_log)
        report["hotline_undelivered_by_member"] = dict(missing)
        for m in hot_lost[:5]:
            say(f"LOST: hotline message {m} acknowledged at {rec.hotline_sent[m]}, not in the log")
        for p, n in missing.items():
            say(f"LOST: {n} hotline messages never reached {p} over its stream")
        # The skewed party's entries carry the hub's time, not its own.
        late = [
            idx
            for idx, sent, got_ms, integ in rec.skewed
            if not sent - 1000 <= integ <= got_ms + 1000 or integrated.get(idx) != integ
        ]
        report["skewed_writes"] = len(rec.skewed)
        report["skewed_misstamped"] = len(late)
        order_bad = sum(1 for i in range(1, len(leaves)) if integrated[i] < integrated[i - 1])
        report["integration_time_reversals"] = order_bad
        # Witnesses: every one cosigns the final checkpoint.
        deadline = now() + 60
        size, cosigners = latest_cosigners(c)
        while now() < deadline:
            sizes = {p: soak.witnessed_size(p) for p in soak.keys}
            size, cosigners = latest_cosigners(c)
            if (
                size == len(leaves)
                and all(s == size for s in sizes.values())
                and cosigners >= len(soak.keys)
            ):
                break
            time.sleep(1)
        report["final_checkpoint"] = {"size": size, "cosignatures": cosigners}
        report["witnesses_cosigned_final"] = cosigners >= len(soak.keys) and size == len(leaves)
        # Full audits from outside: as the secretariat, then as each party.
        audits: dict[str, str] = {}
        try:
            r = audit_hub(c, soak.log_vkey)
            audits["secretariat"] = f"passed ({r.entries_checked} entries, {r.cosignatures} cosigs)"
        except CbmnetError as e:
            audits["secretariat"] = f"FAILED: {e}"
    for p, k in soak.keys.items():
        with HubClient(soak.hubs[1].url, k.identity(), timeout=60) as pc:
            try:
                r = audit_hub(pc, soak.log_vkey)
                audits[p] = f"passed ({r.entries_checked} entries)"
            except CbmnetError as e:
                audits[p] = f"FAILED: {e}"
    for who, verdict in audits.items():
        say(f"audit as {who}: {verdict}")
    report["audits"] = audits
    report["audit"] = "passed" if all(v.startswith("passed") for v in audits.values()) else "failed"
    return report


# ---- main -------------------------------------------------------------------------------


def _interrupt(*_: object) -> None:
    """SIGTERM unwinds like Ctrl-C: the finally blocks stop the hubs and drop the schema."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "300")))
    ap.add_argument(
        "--db", default=os.environ.get("CBMNET_TEST_POSTGRES_URL", DEFAULT_PG), help="PostgreSQL"
    )
    ap.add_argument("--rate", type=float, default=40.0, help="events + hotline messages per s")
    ap.add_argument("--hotline-share", type=float, default=0.25)
    ap.add_argument("--writers", type=int, default=3, help="writer threads per party")
    ap.add_argument("--witness-every", type=float, default=2.0)
    ap.add_argument("--down-s", type=float, default=4.0, help="how long a fault lasts")
    ap.add_argument("--fault-gap", type=float, default=15.0, help="seconds between faults")
    ap.add_argument("--write-deadline", type=float, default=60.0)
    ap.add_argument("--http-timeout", type=float, default=10.0)
    ap.add_argument("--no-pg-restart", action="store_true", help="never restart PostgreSQL")
    ap.add_argument(
        "--failover",
        action="store_true",
        help="run on a primary + synchronous standby of its own (tests/pgcluster.py) and"
        " add the fault primary_lost (standby promoted); needs Debian's PostgreSQL binaries",
    )
    ap.add_argument(
        "--promote-after", type=float, default=1.0, help="--failover: seconds before promoting"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    args.cluster = None
    if args.failover:
        from tests.pgcluster import PgCluster, missing_reason

        reason = missing_reason()
        if reason is not None:
            say(f"--failover: {reason}")
            return 2
        cluster = PgCluster()
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        say(f"--failover: primary on {cluster.primary_port}, sync standby on {cluster.standby_port}")
        args.cluster = cluster
        args.db = cluster.url
        args.no_pg_restart = True  # pg_ctlcluster would restart the system's cluster, not ours
        try:
            return _main(args)
        finally:
            cluster.stop()
    return _main(args)


def _main(args: argparse.Namespace) -> int:
    if not wait_pg(args.db, 5):
        say(f"PostgreSQL not reachable at {args.db}")
        return 2
    if not args.failover and not args.no_pg_restart and pg_restart_command() is None:
        say("pg_ctlcluster or /etc/postgresql not available: the pg_restart fault is skipped")
    t_start = now()
    hubs: list[HubProc] = []
    soak: Soak | None = None
    with tempfile.TemporaryDirectory(prefix="cbmnet-soak-") as tmpdir, fresh_schema(args.db) as url:
        tmp = Path(tmpdir)
        args.tmp = tmp
        sec_skey, sec_vkey = generate_key("secretariat.soak.cbmnet.test")
        sec = Identity("secretariat", sec_skey)
        init_hub(
            url,
            tmp / "keys",
            origin="hub.soak.cbmnet.test/log",
            secretariat_vkey=sec_vkey,
            agreements=[bundled(AGREEMENT)],
        )
        try:
            hubs = [HubProc(n, url, tmp / "keys", tmp / f"hub-{n}.log") for n in ("A", "B")]
            for h in hubs:
                say(f"hub {h.name} up at {h.url} in {h.start():.1f} s")
            keys = {p: party_keys(p) for p in PARTIES}
            with HubClient(hubs[0].url, sec) as s:
                info = s.info()
                for p, k in keys.items():
                    s.register(
                        {
                            "party": p,
                            "name": f"State {p} (EXERCISE)",
                            "agreements": [AGREEMENT],
                            "signing_key": k.vkey,
                            "encryption_key": k.enc_public,
                            "witness_key": parse_signer_key(k.witness_signer).cosigner_verifier_key,
                            "contact": {"poc": f"EXERCISE verification centre of {p}"},
                            "exercise": True,
                        }
                    )
                s.open_channel(CHANNEL, AGREEMENT, list(PARTIES))
            soak = Soak(args, hubs, keys)
            soak.origin, soak.log_vkey = str(info["origin"]), str(info["log_vkey"])
            soak.members = {p: base64.b64decode(k.enc_public) for p, k in keys.items()}
            try:
                soak.run()
                time.sleep(args.witness_every * 2)
                report = verify(soak, sec)
            finally:
                soak.finish()
            cosigns = soak.rec.cosigns
            faults = [recovery(soak, f, cosigns) for f in soak.rec.faults]
        finally:
            for h in hubs:
                h.stop()
            wait_pg(args.db, 60)
        rec = soak.rec
        for h in hubs:
            text = h.log_path.read_text(errors="replace")
            tb = text.count("Traceback")
            if tb:
                say(f"hub {h.name} log: {tb} tracebacks; last lines:\n{text[-1500:]}")
    out = {
        "seconds": round(now() - t_start, 1),
        "load_seconds": round(soak.load_s, 1),
        "writes_attempted": rec.attempted,
        "acknowledged": len(rec.acked),
        "acknowledged_lost": report["acknowledged_lost"],
        "hotline_sent": len(rec.hotline_sent),
        "hotline_lost": report["hotline_lost"],
        "hotline_duplicated": report["hotline_duplicated"],
        "acks_acknowledged": rec.acks_acknowledged,
        "audit": report["audit"],
        "witnesses_cosigned_final": report["witnesses_cosigned_final"],
        "final_checkpoint": report["final_checkpoint"],
        "log_size": report["log_size"],
        "skewed_writes": report["skewed_writes"],
        "skewed_misstamped": report["skewed_misstamped"],
        "faults": faults,
        "write_rate_per_s": round(len(rec.acked) / soak.load_s, 1),
        "errors_by_status": dict(sorted(rec.errors.items())),
        "witness_errors": dict(sorted(rec.witness_errors.items())),
        "stream_reconnects": dict(rec.stream_reconnects),
        "pg_restart": "skipped (--failover: primary_lost instead)"
        if args.failover
        else "skipped (--no-pg-restart)"
        if args.no_pg_restart
        else ("skipped (pg_ctlcluster not available)" if pg_restart_command() is None else "on"),
    }
    if args.failover:
        lost = [f for f in faults if f["kind"] == "primary_lost"]
        out["failover"] = "on" if lost else "not reached (too short a run)"
        resumed = [f["resume_after_promotion_ms"] for f in lost]
        out["resume_after_promotion_s"] = (
            round(resumed[0] / 1000, 3) if resumed and resumed[0] is not None else None
        )
    print(json.dumps(out), flush=True)
    bad = (
        out["acknowledged_lost"]
        or out["hotline_lost"]
        or out["hotline_duplicated"]
        or out["skewed_misstamped"]
        or report["integration_time_reversals"]
        or out["audit"] != "passed"
        or not out["witnesses_cosigned_final"]
        or any(f.get("recovered_ms") is None for f in faults)
        or (args.failover and out["resume_after_promotion_s"] is None)
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
