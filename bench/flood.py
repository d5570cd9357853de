"""Flood: one party writes far above its budget; do the others keep their latency?

A hub (SQLite in a temp dir) runs in a child process (``bench/_hubload.py``) so this load
generator does not share its GIL. Parties P000..P(n-1) are registered; each opens a
hotline channel with its neighbour. Every act is presigned and sealed before the timed
phases (``HubClient.hotline_envelope``), so the load generator spends no CPU on crypto.

Four phases of ``--seconds`` each, the calm load identical in all: every calm party
posts one message every ``1 / --calm-rate`` s (open loop) and reads its latest entries
(GET /v1/entries) as often, half a period later. The first phase is only that (the
baseline). In the others party P000 also floods, from a process of its own (as another
state would: not from the calm parties' event loop), over ``--flood-conns`` connections,
back to back: in the second with its own acts; in the third by replaying the calm parties'
envelopes logged in the first (each answered with its receipt; it must cost their
authors nothing); in the fourth with compliance evaluations (/v1/indicators and
/v1/obligations), three in four with a far-future ``as_of``, the rest each at another
date within the horizon. The hub's per-party write budget is ``--party-rate`` per second
(a burst of twice that); its per-address budget is raised out of the way, since every
client here shares 127.0.0.1.

Last line, one JSON object:
* ``calm_p50_ms`` / ``calm_p99_ms``: POST /v1/acts round trips of the calm parties in the
  first phase (the baseline, same run), ``flood_p50_ms`` / ``flood_p99_ms`` in the second,
  and ``p99_ratio`` = flood_p99 / calm_p99; ``calm_read_p99_ms`` and ``flood_read_p99_ms``
  the same for their reads, ``read_p99_ratio`` their ratio;
* ``replay`` and ``evaluation``: the calm parties' write and read p99 during that flood,
  their ratios to the baseline (``write_p99_ratio``, ``read_p99_ratio``; target: within
  3x), calm acts refused, and the flooder's answers by status;
* ``calm_refused``: calm acts not logged (any status but 201) in any phase (must be 0);
* ``flooder``: requests sent, accepted (201 or 200: an envelope logged already), refused
  with 429, the 429 share, and its request rate.

Usage: python bench/flood.py [--parties 6] [--seconds 10] [--calm-rate 5]
       [--party-rate 20] [--flood-conns 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hubload import AGREEMENT_ID, HubProcess, new_party, store_url
from cbmnet.party.client import HubClient


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def calm_party(
    http: httpx.AsyncClient,
    envs: list[bytes],
    token: str,
    rate: float,
    seconds: float,
    out: dict[str, Any],
) -> None:
    """Open loop: message i at start + i / rate, a read half a period later, each its own task."""
    start = time.perf_counter()

    async def one(env: bytes) -> None:
        t = time.perf_counter()
        r = await http.post("/v1/acts", content=env, params={"proof": "false"})
        ms = 1000 * (time.perf_counter() - t)
        if r.status_code == 201:
            out["ms"].append(ms)
        else:
            out["refused"].append(r.status_code)

    async def read() -> None:
        t = time.perf_counter()
        r = await http.get(
            "/v1/entries", params={"limit": 20}, headers={"Authorization": f"Bearer {token}"}
        )
        ms = 1000 * (time.perf_counter() - t)
        if r.status_code == 200:
            out["read_ms"].append(ms)
        else:
            out["read_refused"].append(r.status_code)

    tasks = []
    for i, env in enumerate(envs[: int(rate * seconds)]):
        for k, job in ((0.0, one(env)), (0.5, read())):
            delay = start + (i + k) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(job))
    await asyncio.gather(*tasks)


async def flooder(
    http: httpx.AsyncClient, envs: list[bytes], stop: asyncio.Event, out: dict[str, int]
) -> None:
    t = time.perf_counter()
    i = 0
    while not stop.is_set():  # the same envelopes again when done: the flood lasts the phase
        env = envs[i % len(envs)]
        i += 1
        r = await http.post("/v1/acts", content=env, params={"proof": "false"})
        out["sent"] += 1
        out[str(r.status_code)] = out.get(str(r.status_code), 0) + 1
    out["seconds_x1000"] = out.get("seconds_x1000", 0) + int(1000 * (time.perf_counter() - t))


async def evaluation_flooder(
    http: httpx.AsyncClient, token: str, k: int, stop: asyncio.Event, out: dict[str, int]
) -> None:
    """Compliance views back to back: mostly far-future as_of, else a new date within reach."""
    t = time.perf_counter()
    now = time.time()
    n = 0
    while not stop.is_set():
        n += 1
        if n % 4:
            as_of = f"{2199 - (n + k) % 100}-{1 + n % 12:02d}-01T00:00:00Z"
        else:
            when = time.gmtime(now + 86400 * ((n * 7 + k) % 300) + n)
            as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
        path = "/v1/indicators" if n % 2 else "/v1/obligations"
        r = await http.get(
            path,
            params={"agreement": AGREEMENT_ID, "as_of": as_of},
            headers={"Authorization": f"Bearer {token}"},
        )
        out["sent"] += 1
        out[str(r.status_code)] = out.get(str(r.status_code), 0) + 1
    out["seconds_x1000"] = out.get("seconds_x1000", 0) + int(1000 * (time.perf_counter() - t))


def _flood_process(kind: str, url: str, work: Any, conns: int, stop: Any, pipe: Any) -> None:
    """The flooder's own process: ``kind`` "acts" sends ``work`` (envelopes), "evaluations"
    asks with ``work`` (a token). Says "started", floods until ``stop``, sends its counts."""

    async def run() -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        headers = {"Content-Type": "application/json"}
        fl: dict[str, int] = {"sent": 0}
        done = asyncio.Event()
        async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=60) as http:
            if kind == "evaluations":
                jobs = [evaluation_flooder(http, work, k, done, fl) for k in range(conns)]
            else:
                jobs = [flooder(http, work[k::conns], done, fl) for k in range(conns)]
            tasks = [asyncio.create_task(j) for j in jobs]
            pipe.send("started")
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()
            await asyncio.gather(*tasks)
        pipe.send(fl)

    asyncio.run(run())


async def phase(
    url: str,
    calm: dict[str, list[bytes]],
    tokens: dict[str, str],
    flood: tuple[str, Any] | None,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, int]]:
    """The calm load for ``args.seconds``, with ``flood`` (kind, work) from its own process.

    The flooder is another state: in this process its client work (httpx, h11, the event
    loop) delayed the calm parties' requests in this process's loop, and that was most of
    what the calm p99 measured (9x, of which about 2x was the hub's).
    """
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Content-Type": "application/json"}
    out: dict[str, Any] = {"ms": [], "refused": [], "read_ms": [], "read_refused": []}
    fl: dict[str, int] = {"sent": 0}
    proc = None
    if flood is not None:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        here, there = ctx.Pipe()
        proc = ctx.Process(
            target=_flood_process, args=(flood[0], url, flood[1], args.flood_conns, stop, there)
        )
        proc.start()
        if not here.poll(120) or here.recv() != "started":
            proc.kill()
            raise RuntimeError("the flooder process did not start")
    try:
        async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=60) as http:
            await asyncio.sleep(0.5 if flood else 0)  # the flood is on before the calm load starts
            await asyncio.gather(
                *(
                    calm_party(http, envs, tokens[pid], args.calm_rate, args.seconds, out)
                    for pid, envs in calm.items()
                )
            )
    finally:
        if proc is not None:
            stop.set()
            if here.poll(120):
                fl = here.recv()
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return out, fl


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parties", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--calm-rate", type=float, default=5.0, help="messages/s per calm party")
    ap.add_argument("--party-rate", type=float, default=20.0, help="the hub's per-party budget")
    ap.add_argument("--flood-conns", type=int, default=8)
    args = ap.parse_args()
    if args.parties < 3:
        ap.error("--parties: at least 3 (one flooder, two calm)")
    ids = [f"P{i:03d}" for i in range(args.parties)]
    per_calm = int(args.calm_rate * args.seconds) + 1
    flood_total = 6000

    with (
        tempfile.TemporaryDirectory(prefix="cbmnet-flood-") as tmpdir,
        store_url(None, Path(tmpdir)) as (url, _backend),
    ):
        hub = HubProcess(
            url, Path(tmpdir), ids, writes_per_s=1_000_000.0, party_writes_per_s=args.party_rate
        )
        try:
            parties = {pid: new_party(pid) for pid in ids}
            hub.register(list(parties.values()))
            clients = {pid: HubClient(hub.url, p.identity()) for pid, p in parties.items()}
            try:
                chans = {}
                for k, pid in enumerate(ids):
                    peer = ids[(k + 1) % len(ids)]
                    chans[pid] = (f"ch-{pid.lower()}", [pid, peer])
                    clients[pid].open_channel(chans[pid][0], AGREEMENT_ID, chans[pid][1])
                keys = {pid: base64.b64decode(p.enc_public) for pid, p in parties.items()}

                def sealed(pid: str, tag: str, n: int) -> list[bytes]:
                    cid, members = chans[pid]
                    return [
                        clients[pid].hotline_envelope(
                            cid,
                            f"{tag}-{i}",
                            "routine",
                            "calm traffic " * 4,
                            {m: keys[m] for m in members},
                        )
                        for i in range(n)
                    ]

                t = time.perf_counter()
                calm1 = {pid: sealed(pid, "a", per_calm) for pid in ids[1:]}
                calm2 = {pid: sealed(pid, "b", per_calm) for pid in ids[1:]}
                calm3 = {pid: sealed(pid, "c", per_calm) for pid in ids[1:]}
                calm4 = {pid: sealed(pid, "d", per_calm) for pid in ids[1:]}
                tokens = {pid: clients[pid].token() for pid in ids}
                flood_envs = sealed(ids[0], "f", flood_total)
                log(f"presigned in {time.perf_counter() - t:.1f} s")
            finally:
                for c in clients.values():
                    c.close()
            gc.collect()
            gc.freeze()
            cpu0 = hub.cpu_s()
            base, _ = asyncio.run(phase(hub.url, calm1, tokens, None, args))
            log(f"calm phase: {len(base['ms'])} acts")
            loaded, fl = asyncio.run(phase(hub.url, calm2, tokens, ("acts", flood_envs), args))
            cpu1 = hub.cpu_s()
            log(f"flood phase: {len(loaded['ms'])} calm acts, flooder {fl}")
            logged = [e for envs in calm1.values() for e in envs[: int(args.calm_rate * args.seconds)]]
            replayed, rfl = asyncio.run(phase(hub.url, calm3, tokens, ("acts", logged), args))
            log(f"replay phase: {len(replayed['ms'])} calm acts, flooder {rfl}")
            flood_eval = ("evaluations", tokens[ids[0]])
            evaluated, efl = asyncio.run(phase(hub.url, calm4, tokens, flood_eval, args))
            log(f"evaluation phase: {len(evaluated['ms'])} calm acts, flooder {efl}")
        finally:
            hub.close()

    sent = fl["sent"]
    accepted = fl.get("201", 0) + fl.get("200", 0)
    refused = fl.get("429", 0)
    calm_p99, flood_p99 = pct(base["ms"], 0.99), pct(loaded["ms"], 0.99)
    calm_read_p99 = pct(base["read_ms"], 0.99)

    def under(got: dict[str, Any], fl: dict[str, int]) -> dict[str, Any]:
        """A flood phase's calm figures against the baseline of the same run."""
        write_p99, read_p99 = pct(got["ms"], 0.99), pct(got["read_ms"], 0.99)
        return {
            "write_p99_ms": round(write_p99, 2),
            "read_p99_ms": round(read_p99, 2),
            "write_p99_ratio": round(write_p99 / calm_p99, 2),
            "read_p99_ratio": round(read_p99 / calm_read_p99, 2),
            "calm_refused": len(got["refused"]) + len(got["read_refused"]),
            "flooder": {k: v for k, v in fl.items() if k != "seconds_x1000"},
        }

    out = {
        "benchmark": "flood",
        "parties": args.parties,
        "seconds_per_phase": args.seconds,
        "calm_rate_per_party": args.calm_rate,
        "party_budget_per_s": args.party_rate,
        "calm_p50_ms": round(statistics.median(base["ms"]), 2),
        "calm_p99_ms": round(calm_p99, 2),
        "flood_p50_ms": round(statistics.median(loaded["ms"]), 2),
        "flood_p99_ms": round(flood_p99, 2),
        "p99_ratio": round(flood_p99 / calm_p99, 2),
        "calm_read_p50_ms": round(statistics.median(base["read_ms"]), 2),
        "calm_read_p99_ms": round(calm_read_p99, 2),
        "flood_read_p99_ms": round(pct(loaded["read_ms"], 0.99), 2),
        "read_p99_ratio": round(pct(loaded["read_ms"], 0.99) / calm_read_p99, 2),
        "replay": under(replayed, rfl),
        "evaluation": under(evaluated, efl),
        "calm_acts": sum(len(x["ms"]) for x in (base, loaded, replayed, evaluated)),
        "calm_refused": sum(
            len(x["refused"]) + len(x["read_refused"]) for x in (base, loaded, replayed, evaluated)
        ),
        "flooder": {
            "sent": sent,
            "accepted": accepted,
            "refused_429": refused,
            "share_429": round(refused / sent, 3) if sent else None,
            "per_s": round(sent / (fl.get("seconds_x1000", 1) / 1000 / args.flood_conns), 1),
            "other": {
                k: v for k, v in fl.items() if k not in ("sent", "200", "201", "429", "seconds_x1000")
            },
        },
        "hub_cpu_s": round(cpu1 - cpu0, 1) if cpu0 is not None and cpu1 is not None else None,
    }
    print(json.dumps(out))
    if out["calm_refused"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
