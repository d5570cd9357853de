"""Benchmark hotline push latency: 100 parties on loopback, each with a WebSocket open.

A hub (SQLite in a temp dir, or ``--db postgresql://...``: a fresh schema there, dropped
after) is served by a child process (``bench/_hubload.py``), so the load generator and
the server do not share a GIL. An agreement of generated parties (P000 ...) is logged
with real keys; channels are opened: every party with its neighbour (bilateral) and in
groups of five. Each party holds one ``/v1/stream`` WebSocket, as ``HubClient.stream``
opens it (same library, same defaults, permessage-deflate included unless
``--no-deflate``).

The load is open-loop: message ``i`` is posted at ``start + i / rate`` whatever the
state of earlier ones, from its own task (one asyncio loop, ``httpx.AsyncClient``),
mixed precedences, bilateral and group channels, bodies of 80 to 800 characters. The
envelopes are signed and HPKE-sealed by ``HubClient.hotline_envelope`` BEFORE the timed
phase (``presigned``: sealing and signing in the load generator would take CPU from the
two cores the server runs on and distort the rate; ``presign_ms_per_msg`` says what it
costs).

Figures (last line, one JSON object):

* ``p50_ms`` / ``p99_ms``: delivery latency, from just before the POST of the signed
  envelope to the moment the message has arrived on the WebSocket of EVERY channel
  member (the sender's too: it gets its own entries), matched on the message id.
  The first ``--warmup`` seconds of the same load are not counted.
* ``msgs_per_s``: messages delivered to all members per second (counted ones, first
  POST to last delivery).
* ``echo_p50_ms`` / ``echo_p99_ms``: the baseline, measured in the same run: round trips
  of the hub's authenticated WebSocket echo (``/v1/echo``, same server, same stack, one
  connection per party), same message rate, payloads of the same sizes (random base64,
  as incompressible as the ciphertexts), half before the hotline phase and half after.
* ``ratio``: p99_ms / echo_p99_ms (for reference: an echo is not the floor of a message
  that must be durably committed before it is pushed).
* ``floor_p50_ms`` / ``floor_p99_ms``: the physical floor, measured in the same run on the
  same database while the hub is idle (``bench/_floor.py``): a bare INSERT of each
  envelope's size, a durable COMMIT and the wake-up of a waiter (SQLite WAL with
  synchronous=FULL and a thread woken after the commit; PostgreSQL with a NOTIFY in the
  transaction and a LISTENing connection), paced at the load's rate for
  ``--floor-seconds``.
* ``floor_ratio``: p99_ms / floor_p99_ms.
* ``lost``: messages not delivered to every member within ``--timeout`` s (or refused);
  any loss makes the exit status 1.
* ``server_cpu_pct`` / ``client_cpu_pct``: CPU of the hub process and of this one during
  the hotline phase (100 = one core); ``client_lag_p99_ms``: how late this process's event
  loop runs a 5 ms timer (if high, the load generator, not the hub, is the bottleneck).

Targets (issue 17): p99_ms <= 50 at 200 messages/s; floor_ratio <= 3, on both backends.

On stderr: progress, lost messages, and delivery latency per second of the run (steady
queueing, or stalls?). ``--profile`` also profiles the hub process during the hotline
phase and prints where its time goes: cProfile in the event loop's thread, CPU per
thread, stack samples of every thread (``bench/_hubload.py``); it slows the event loop
about twice, so its latencies are not the benchmark's.

The limiter on writes is raised for the run: every bench client shares one address,
the limiter's key, where real parties each have their own.

Usage: python bench/hotline.py [--rate 200] [--seconds 20] [--parties 100] [--db URL]
       [--warmup 2] [--echo-seconds 10] [--floor-seconds 5] [--timeout 10] [--group-share 0.4]
       [--no-deflate] [--profile] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import importlib.util
import json
import math
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if importlib.util.find_spec("sniffio") is None:
    # httpcore imports sniffio on every lock it makes; a failed import is not cached, so
    # without this each request of the load generator walks sys.path a dozen times (ms).
    sys.modules["sniffio"] = None  # type: ignore[assignment]

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floor import floor_round_trips
from _hubload import (
    AGREEMENT_ID,
    HubProcess,
    Party,
    format_profile,
    new_party,
    party_ids,
    store_url,
)
from cbmnet.communication import hotline
from cbmnet.party.client import HubClient

PRECEDENCE_WEIGHTS = {"flash": 0.1, "immediate": 0.2, "priority": 0.3, "routine": 0.4}
TARGET_P99_MS = 50.0
TARGET_FLOOR_RATIO = 3.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Message:
    id: str
    channel: str
    sender: str
    members: tuple[str, ...]
    precedence: str
    text: str
    envelope: bytes = b""
    t_sched: float = 0.0
    t0: float | None = None
    t_receipt: float | None = None
    t_done: float | None = None
    error: str | None = None
    waiting: set[str] = field(default_factory=set)


@dataclass
class Tracker:
    by_id: dict[str, Message]
    outstanding: int = 0
    duplicates: int = 0
    unknown: int = 0
    other: int = 0
    samples: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def delivered(self, party: str, item: dict[str, Any], t: float) -> None:
        if item.get("kind") != "hotline.message":
            self.other += 1
            return
        m = self.by_id.get(str(item.get("event_id")))
        if m is None:
            self.unknown += 1
            return
        if party not in m.waiting:
            self.duplicates += 1
            return
        m.waiting.discard(party)
        if len(self.samples) < 4 and party != m.sender:
            self.samples.append((party, item))
        if not m.waiting:
            m.t_done = t
            self.outstanding -= 1


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def channels_for(ids: list[str]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Bilateral: each party with the next (a ring); groups: consecutive fives (n >= 5)."""
    n = len(ids)
    pairs: list[tuple[str, ...]] = [(ids[i], ids[(i + 1) % n]) for i in range(n)]
    groups: list[tuple[str, ...]] = (
        [tuple(ids[i : i + 5]) for i in range(0, n - n % 5, 5)] if n >= 5 else []
    )
    return pairs, groups


def plan(
    count: int,
    pairs: list[tuple[str, ...]],
    groups: list[tuple[str, ...]],
    group_share: float,
    rng: random.Random,
) -> list[Message]:
    precs, weights = list(PRECEDENCE_WEIGHTS), list(PRECEDENCE_WEIGHTS.values())
    out = []
    for i in range(count):
        members = rng.choice(groups) if groups and rng.random() < group_share else rng.choice(pairs)
        out.append(
            Message(
                id=f"m{i:07d}",
                channel=channel_id(members),
                sender=rng.choice(members),
                members=members,
                precedence=rng.choices(precs, weights)[0],
                text=base64.b64encode(rng.randbytes(rng.randrange(60, 600))).decode(),
            )
        )
    return out


def channel_id(members: Sequence[str]) -> str:
    return ("pair-" if len(members) == 2 else "group-") + "-".join(m.lower() for m in members)


async def paced(
    count: int, rate: float, start: float, fn: Callable[[int, float], Coroutine[Any, Any, None]]
) -> None:
    """Open loop: task ``i`` starts at ``start + i / rate`` whatever earlier ones do."""
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fn(i, at)))
    await asyncio.gather(*tasks)


async def lag_monitor(out: list[float], stop: asyncio.Event, period: float = 0.005) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period)
        out.append(time.perf_counter() - t - period)


class Load:
    def __init__(self, args: argparse.Namespace, hub: HubProcess, tokens: dict[str, str]) -> None:
        self.args = args
        self.hub = hub
        self.tokens = tokens
        self.ws_url = hub.url.replace("http://", "ws://", 1)
        self.compression = None if args.no_deflate else "deflate"
        self.retries = 0

    async def _connect(self, path: str, party: str, *, header: bool) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.tokens[party]}"} if header else None
        return await connect(
            f"{self.ws_url}{path}",
            additional_headers=headers,
            max_size=4 << 20,
            compression=self.compression,
            open_timeout=30,
        )

    # ---- the baseline: echo ---------------------------------------------------------------

    async def echo(
        self, sizes: list[int], seconds: float, rng: random.Random
    ) -> tuple[list[float], int]:
        parties = list(self.tokens)
        conns = await asyncio.gather(
            *(self._connect(f"/v1/echo?token={self.tokens[p]}", p, header=False) for p in parties)
        )
        count = max(1, int(self.args.rate * seconds))
        noise = base64.b64encode(rng.randbytes(3 * 64 * 1024)).decode()
        sent: dict[int, float] = {}
        rtts: dict[int, float] = {}

        async def receive(ws: ClientConnection) -> None:
            try:
                async for raw in ws:
                    t = time.perf_counter()
                    i = int(json.loads(raw)["i"])
                    rtts[i] = t - sent[i]
            except ConnectionClosed:
                pass

        readers = [asyncio.create_task(receive(ws)) for ws in conns]

        async def send(i: int, _at: float) -> None:
            size = sizes[i % len(sizes)]
            off = rng.randrange(0, len(noise) - size)
            text = json.dumps({"i": i, "pad": noise[off : off + size]})
            ws = conns[i % len(conns)]
            sent[i] = time.perf_counter()
            await ws.send(text)

        await paced(count, self.args.rate, time.perf_counter() + 0.05, send)
        deadline = time.perf_counter() + self.args.timeout
        while len(rtts) < count and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        for ws in conns:
            await ws.close()
        for r in readers:
            r.cancel()
        timeout = self.args.timeout
        ok = [v for v in rtts.values() if v <= timeout]
        return ok, count - len(ok)

    # ---- the measured phase: hotline ------------------------------------------------------

    async def run(self, msgs: list[Message], after: int) -> dict[str, Any]:
        args = self.args
        rng = random.Random(args.seed + 1)
        sizes = [len(m.envelope) for m in msgs]
        track = Tracker({m.id: m for m in msgs}, outstanding=len(msgs))
        streams = await asyncio.gather(
            *(self._connect(f"/v1/stream?after={after}", p, header=True) for p in self.tokens)
        )

        async def receive(party: str, ws: ClientConnection) -> None:
            try:
                async for raw in ws:
                    t = time.perf_counter()
                    track.delivered(party, json.loads(raw), t)
            except ConnectionClosed:
                pass

        readers = [
            asyncio.create_task(receive(p, ws)) for p, ws in zip(self.tokens, streams, strict=True)
        ]
        lags: list[float] = []
        stop_lag = asyncio.Event()
        lag_task = asyncio.create_task(lag_monitor(lags, stop_lag))
        out: dict[str, Any] = {}
        try:
            echo_a, lost_a = await self.echo(sizes, args.echo_seconds / 2, rng)
            log(f"echo (before): {len(echo_a)} round trips, p99 {1000 * pct(echo_a, 0.99):.1f} ms")

            # One HTTP client per party, as each State runs its own (one shared pool of
            # hundreds of connections costs httpcore O(connections) per request).
            tls = ssl.create_default_context()  # unused on loopback; built once, not 100 times
            # Idle connections closed before uvicorn's 5 s keep-alive timeout closes them.
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=4)
            https = {
                p: httpx.AsyncClient(base_url=self.hub.url, limits=limits, timeout=60, verify=tls)
                for p in self.tokens
            }
            try:
                await asyncio.gather(*(h.get("/v1/hub") for h in https.values()))  # connect
                headers = {"Content-Type": "application/json"}

                async def post(i: int, at: float) -> None:
                    m = msgs[i]
                    m.t_sched = at
                    m.t0 = time.perf_counter()
                    for attempt in range(3):
                        try:
                            r = await https[m.sender].post(
                                "/v1/acts?proof=false", content=m.envelope, headers=headers
                            )
                            break
                        except httpx.TransportError as e:
                            # A kept-alive connection the server closed as we sent: submitting
                            # is idempotent (the hub answers a duplicate with its receipt).
                            self.retries += 1
                            if attempt == 2:
                                m.error = repr(e)
                                return
                    m.t_receipt = time.perf_counter()
                    if r.status_code not in (200, 201):
                        m.error = f"{r.status_code}: {r.text[:200]}"

                out["loadavg_1m"] = round(os.getloadavg()[0], 2)
                if args.profile:
                    self.hub.command("profile start")
                cpu0, ccpu0, t_start = self.hub.cpu_s(), time.process_time(), time.perf_counter()
                lags.clear()
                await paced(len(msgs), args.rate, t_start + 0.05, post)
                last_post = time.perf_counter()
                while track.outstanding and time.perf_counter() < last_post + args.timeout:
                    await asyncio.sleep(0.02)
                t_end = time.perf_counter()
                cpu1, ccpu1 = self.hub.cpu_s(), time.process_time()
                lag_p99 = pct(lags, 0.99) if lags else 0.0
                if args.profile:
                    reply = self.hub.command("profile stop")
                    log(format_profile(json.loads(reply.removeprefix("PROFILE "))))
            finally:
                await asyncio.gather(*(h.aclose() for h in https.values()))
            busy = t_end - t_start
            out["server_cpu_pct"] = (
                round(100 * (cpu1 - cpu0) / busy, 1) if cpu0 is not None and cpu1 is not None else None
            )
            out["client_cpu_pct"] = round(100 * (ccpu1 - ccpu0) / busy, 1)
            out["client_lag_p99_ms"] = round(1000 * lag_p99, 2)
            out["post_retries"] = self.retries

            echo_b, lost_b = await self.echo(sizes, args.echo_seconds / 2, rng)
            log(f"echo (after): {len(echo_b)} round trips, p99 {1000 * pct(echo_b, 0.99):.1f} ms")
            out["echo"] = (echo_a, echo_b, lost_a + lost_b)
            out["track"] = track
        finally:
            stop_lag.set()
            await lag_task
            for ws in streams:
                await ws.close()
            for r in readers:
                r.cancel()
        return out


def check_samples(track: Tracker, parties: dict[str, Party], origin: str) -> int:
    """Open a few delivered ciphertexts with the recipients' keys: real, readable messages."""
    opened = 0
    for party, item in track.samples:
        doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
        m = track.by_id[doc["id"]]
        bind = hotline.info(origin, doc["channel"], doc["id"], doc["party"])
        key = hotline.private_key(parties[party].enc_private, "encryption key")
        if hotline.open_sealed(doc["ciphertexts"][party], key, bind).decode() != m.text:
            raise SystemExit(f"message {m.id}: {party} opened another text than was sent")
        opened += 1
    return opened


def git_version() -> str | None:
    """The commit measured, ``-dirty`` if src/ differs from it (the hub under test)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def timeline(ok: list[Message]) -> None:
    """Per second of the run (stderr): is it steady queueing, or stalls now and then?"""
    if not ok:
        return
    base = min(m.t0 for m in ok if m.t0 is not None)
    by_s: dict[int, list[float]] = {}
    for m in ok:
        if m.t0 is not None and m.t_done is not None:
            by_s.setdefault(int(m.t0 - base), []).append(1000 * (m.t_done - m.t0))
    log("second  msgs  p50_ms  p99_ms  max_ms")
    for sec, v in sorted(by_s.items()):
        log(f"{sec:6d} {len(v):5d} {statistics.median(v):7.1f} {pct(v, 0.99):7.1f} {max(v):7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rate", type=float, default=200.0, help="messages per second (target)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured load phase")
    ap.add_argument("--warmup", type=float, default=2.0, help="load before the counted phase")
    ap.add_argument("--echo-seconds", type=float, default=10.0, help="baseline, half before, half after")
    ap.add_argument("--parties", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=10.0, help="undelivered after this: lost")
    ap.add_argument("--group-share", type=float, default=0.4, help="share of 5-member channels")
    ap.add_argument("--db", default=None, help="store URL (default: SQLite in a temp dir)")
    ap.add_argument("--no-deflate", action="store_true", help="no permessage-deflate")
    ap.add_argument(
        "--floor-seconds", type=float, default=5.0, help="bare durable commit + wake-up, at the rate"
    )
    ap.add_argument("--profile", action="store_true", help="profile the hub (slows it)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.parties < 5:
        ap.error("--parties: at least 5")

    rng = random.Random(args.seed)
    ids = party_ids(args.parties)
    pairs, groups = channels_for(ids)
    warm = int(args.rate * args.warmup)
    msgs = plan(warm + int(args.rate * args.seconds), pairs, groups, args.group_share, rng)

    with (
        tempfile.TemporaryDirectory(prefix="cbmnet-bench-") as tmpdir,
        store_url(args.db, Path(tmpdir)) as (url, backend),
    ):
        t = time.perf_counter()
        # Above the load: every bench client shares one address, the limiter's key.
        hub = HubProcess(
            url,
            Path(tmpdir),
            ids,
            writes_per_s=max(10_000.0, 10 * args.rate),  # see the module's docstring
            profiling=args.profile,
        )
        try:
            log(f"hub up at {hub.url} ({backend}) in {time.perf_counter() - t:.1f} s")
            parties = {pid: new_party(pid) for pid in ids}
            hub.register(list(parties.values()))
            clients = {pid: HubClient(hub.url, p.identity()) for pid, p in parties.items()}
            try:
                tokens = {pid: c.token() for pid, c in clients.items()}
                for members in pairs + groups:
                    clients[members[0]].open_channel(channel_id(members), AGREEMENT_ID, list(members))
                origin = str(clients[ids[0]].info()["origin"])
                log(f"{len(ids)} parties, {len(pairs)} pairs, {len(groups)} groups: set up")
                for c in clients.values():
                    c.info()  # the origin its ciphertexts are bound to (one GET each)
                keys = {pid: base64.b64decode(p.enc_public) for pid, p in parties.items()}
                t = time.perf_counter()
                for m in msgs:
                    m.envelope = clients[m.sender].hotline_envelope(
                        m.channel, m.id, m.precedence, m.text, {p: keys[p] for p in m.members}
                    )
                    m.waiting = set(m.members)
                presign_ms = 1000 * (time.perf_counter() - t) / len(msgs)
                log(f"{len(msgs)} envelopes signed and sealed, {presign_ms:.2f} ms each")
                # The floor, same database, hub idle: envelopes' sizes, the load's rate.
                n = max(1, int(args.rate * args.floor_seconds))
                floor = floor_round_trips(url, [len(m.envelope) for m in msgs[:n]], args.rate)
                log(f"floor: {len(floor)} commits + wake-ups, p99 {1000 * pct(floor, 0.99):.2f} ms")
                after = int(httpx.get(f"{hub.url}/healthz").json()["log_size"]) - 1
            finally:
                for c in clients.values():
                    c.close()
            gc.collect()
            gc.freeze()  # the setup's objects: out of the collector's way in the timed phase
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                res = runner.run(Load(args, hub, tokens).run(msgs, after))
        finally:
            hub.close()

    track: Tracker = res["track"]
    echo_a, echo_b, echo_lost = res["echo"]
    counted = msgs[warm:]
    lost = [
        m
        for m in msgs
        if m.error is not None or m.t_done is None or m.t0 is None or m.t_done - m.t0 > args.timeout
    ]
    for m in lost[:5]:
        if m.error is not None:
            why = m.error
        elif m.waiting:
            why = "never delivered to " + ", ".join(sorted(m.waiting))
        else:
            why = f"delivered to all after {m.t_done - m.t0:.3f} s" if m.t_done and m.t0 else "not sent"
        log(f"lost {m.id} on {m.channel}: {why}")
    lost_ids = {m.id for m in lost}
    ok = [m for m in counted if m.t_done is not None and m.t0 is not None and m.id not in lost_ids]
    lat = [1000 * (m.t_done - m.t0) for m in ok if m.t_done is not None and m.t0 is not None]
    receipts = [1000 * (m.t_receipt - m.t0) for m in ok if m.t_receipt is not None and m.t0 is not None]
    send_lag = [1000 * (m.t0 - m.t_sched) for m in ok if m.t0 is not None]
    echo = [1000 * v for v in echo_a + echo_b]
    timeline(ok)
    first = min((m.t0 for m in ok if m.t0 is not None), default=0.0)
    last = max((m.t_done for m in ok if m.t_done is not None), default=1.0)
    p99 = pct(lat, 0.99) if lat else None
    echo_p99 = pct(echo, 0.99) if echo else None
    ratio = p99 / echo_p99 if p99 is not None and echo_p99 else None
    floor_ms = [1000 * v for v in floor]
    floor_p99 = pct(floor_ms, 0.99)
    floor_ratio = p99 / floor_p99 if p99 is not None and floor_p99 else None
    by_size = {
        str(len(members)): count for members, count in ((pairs[0], len(pairs)), (groups[0], len(groups)))
    }
    opened = check_samples(track, parties, origin)
    lost_n = len(lost)
    result = {
        "benchmark": "hotline",
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": round(p99, 2) if p99 is not None else None,
        "max_ms": round(max(lat), 2) if lat else None,
        "msgs_per_s": round(len(ok) / (last - first), 1) if ok else 0.0,
        "echo_p50_ms": round(statistics.median(echo), 2) if echo else None,
        "echo_p99_ms": round(echo_p99, 2) if echo_p99 is not None else None,
        "ratio": round(ratio, 2) if ratio is not None else None,
        "floor_p50_ms": round(statistics.median(floor_ms), 2),
        "floor_p99_ms": round(floor_p99, 2),
        "floor_ratio": round(floor_ratio, 2) if floor_ratio is not None else None,
        "targets_met": bool(
            p99 is not None
            and floor_ratio is not None
            and p99 <= TARGET_P99_MS
            and floor_ratio <= TARGET_FLOOR_RATIO
            and not lost_n
        ),
        "receipt_p50_ms": round(statistics.median(receipts), 2) if receipts else None,
        "receipt_p99_ms": round(pct(receipts, 0.99), 2) if receipts else None,
        "send_lag_p99_ms": round(pct(send_lag, 0.99), 2) if send_lag else None,
        "client_lag_p99_ms": res["client_lag_p99_ms"],
        "post_retries": res["post_retries"],
        "server_cpu_pct": res["server_cpu_pct"],
        "client_cpu_pct": res["client_cpu_pct"],
        "messages": len(counted),
        "warmup_messages": warm,
        "pushes": sum(len(m.members) for m in msgs),
        "lost": lost_n,
        "echo_round_trips": len(echo),
        "echo_lost": echo_lost,
        "duplicates": track.duplicates,
        "other_pushes": track.other + track.unknown,
        "opened_ok": opened,
        "parties": len(ids),
        "channels": by_size,
        "group_share": args.group_share,
        "rate_target": args.rate,
        "seconds": args.seconds,
        "envelope_bytes_mean": round(statistics.mean(len(m.envelope) for m in msgs)),
        "presigned": True,
        "presign_ms_per_msg": round(presign_ms, 3),
        "deflate": not args.no_deflate,
        "backend": backend,
        "server": "subprocess",
        "profiled": args.profile,
        "cpus": os.cpu_count(),
        "loadavg_1m": res["loadavg_1m"],
        "git": git_version(),
    }
    print(json.dumps(result))
    if lost_n or echo_lost:
        sys.exit(1)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
