"""Benchmark a national mirror (issue 16): how far behind the hub it runs, how fast it
verifies tiles, and that it serves reads with the hub stopped.

A hub in a child process (``_hubload.HubProcess``, SQLite by default), parties on
bilateral hotline channels, and ``cbmnet mirror`` as a real process following it
as the first party (its entries described and kept, the hub's answers fetched) every
0.1 s. Timed:

- ``lag_p50_s`` / ``lag_p99_s``: for each acknowledged act sent at ``--rate`` acts/s, from
  its acknowledgement to the mirror serving a checkpoint that covers it (``/v1/mirror``
  polled every 20 ms); ``hub_cp_lag_p99_s``, the same to the hub's own checkpoint (the hub
  signs one a second: the floor the mirror cannot beat); ``lag_ratio``, the two p99s;
- ``tiles_per_s`` / ``leaves_per_s``: a fresh in-process follower catching up on the
  whole log (hash tiles and entry bundles fetched, every leaf checked, every node
  stored); ``fetch_tiles_per_s``, the same tiles fetched and nothing else (the HTTP
  floor); ``verify_ratio``, the two;
- ``reads_with_hub_stopped``: after stopping the hub, reads of the mirror that answered
  (of 5): its checkpoint, a tile and a consistency proof (anonymous), then, signed in as
  its party, its inbox (as many entries as the hub listed for it) and an agreement's
  obligations (the hub's last answer).

Last line, one JSON object. Usage: python bench/mirror.py [--db URL] [--rate N] [--seconds S]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _hubload import AGREEMENT_ID, HubProcess, new_party, party_ids, store_url
from cbmnet.ledger.tiles import tile_path, tile_width
from cbmnet.mirror.follow import Follower
from cbmnet.party.client import HubClient
from cbmnet.store import open_store


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    ap.add_argument("--parties", type=int, default=10)
    ap.add_argument("--rate", type=float, default=20.0, help="acts per second while timing lag")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--prefill", type=int, default=5000, help="acts logged before, for catch-up")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s, store_url(args.db, Path(tmp_s)) as (url, _label):
        tmp = Path(tmp_s)
        ids = party_ids(args.parties)
        parties = {pid: new_party(pid) for pid in ids}
        hub = HubProcess(url, tmp, ids, writes_per_s=100_000, party_writes_per_s=100_000)
        mirror = None
        try:
            hub.register(list(parties.values()))
            clients = {pid: HubClient(hub.url, p.identity()) for pid, p in parties.items()}
            keys = {pid: base64.b64decode(p.enc_public) for pid, p in parties.items()}
            pairs = [(ids[i], ids[(i + 1) % len(ids)]) for i in range(len(ids))]
            for a, b in pairs:
                clients[a].open_channel(f"{a}-{b}".lower(), AGREEMENT_ID, [a, b])
            for c in clients.values():
                c.info()
            counter = iter(range(10**9))

            def send(k: int) -> int:
                a, b = pairs[k % len(pairs)]
                sealed_to = {p: keys[p] for p in (a, b)}
                channel = f"{a}-{b}".lower()
                env = clients[a].hotline_envelope(
                    channel, f"m{next(counter)}", "routine", "x" * 200, sealed_to
                )
                return int(clients[a].submit(env)["index"])

            t = time.perf_counter()
            for k in range(args.prefill):
                send(k)
            log(f"prefill: {args.prefill} acts in {time.perf_counter() - t:.1f} s")
            info = httpx.get(f"{hub.url}/v1/hub").json()
            vkey = info["log_vkey"]

            # ---- the mirror process, following as the load runs -----------------------
            port_file = tmp / "mirror.err"
            err = port_file.open("w")
            me = parties[ids[0]]
            (tmp / "party.key").write_text(me.signer)
            mirror = subprocess.Popen(
                [sys.executable, "-m", "cbmnet.cli.main", "mirror", "--hub", hub.url, "--log", vkey,
                 "--db", f"sqlite:///{tmp / 'mirror.db'}", "--port", "0", "--every", "0.1",
                 "--party", me.id, "--key", str(tmp / "party.key")],
                env={**os.environ, "CBMNET_LANG": "en"}, stderr=err, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            murl = None
            deadline = time.monotonic() + 60
            while murl is None and time.monotonic() < deadline:
                for line in port_file.read_text().splitlines():
                    if '"mirroring"' in line:
                        murl = json.loads(line)["url"]
                time.sleep(0.05)
            assert murl, "the mirror did not start"
            while httpx.get(f"{murl}/v1/mirror").json()["checkpoint_size"] != httpx.get(
                f"{hub.url}/healthz"
            ).json().get("log_size"):
                time.sleep(0.2)
            log("mirror caught up with the prefill")

            acked: list[tuple[int, float]] = []
            seen_mirror: dict[int, float] = {}
            seen_hub: dict[int, float] = {}
            stop = threading.Event()

            def watch(base: str, path: str, key: str, into: dict[int, float]) -> None:
                with httpx.Client() as http:
                    while not stop.is_set():
                        r = http.get(base + path)
                        now = time.perf_counter()
                        size = r.json()[key] if key else int(r.text.splitlines()[1])
                        for i, _t in list(acked):
                            if i < size and i not in into:
                                into[i] = now
                        time.sleep(0.02)

            watchers = [
                threading.Thread(
                    target=watch, args=(murl, "/v1/mirror", "checkpoint_size", seen_mirror)
                ),
                threading.Thread(target=watch, args=(hub.url, "/v1/tlog/checkpoint", "", seen_hub)),
            ]
            for w in watchers:
                w.start()
            start = time.perf_counter()
            k = 0
            while time.perf_counter() - start < args.seconds:
                due = start + k / args.rate
                if due > time.perf_counter():
                    time.sleep(due - time.perf_counter())
                idx = send(k)
                acked.append((idx, time.perf_counter()))
                k += 1
            deadline = time.perf_counter() + 30
            while len(seen_mirror) < len(acked) and time.perf_counter() < deadline:
                time.sleep(0.05)
            stop.set()
            for w in watchers:
                w.join()
            lags = [seen_mirror[i] - t for i, t in acked if i in seen_mirror]
            hub_lags = [seen_hub[i] - t for i, t in acked if i in seen_hub]
            log(f"{len(acked)} acts; lag p99 {pct(lags, 0.99):.2f} s (hub {pct(hub_lags, 0.99):.2f} s)")

            # ---- catch-up from zero, in process: verify rate against a bare fetch ------
            size = httpx.get(f"{hub.url}/healthz").json()["log_size"]
            fresh = open_store(f"sqlite:///{tmp / 'fresh.db'}", create=True)
            t = time.perf_counter()
            got = Follower(fresh, hub.url, vkey).step()
            verify_s = time.perf_counter() - t
            fresh.close()
            tiles = [(0, i, tile_width(0, i, got.size)) for i in range((got.size + 255) // 256)]
            t = time.perf_counter()
            with httpx.Client() as http:
                for level, i, w in tiles:
                    http.get(f"{hub.url}/v1/tlog/{tile_path(level, i, w)}").raise_for_status()
                    http.get(f"{hub.url}/v1/tlog/{tile_path(-1, i, w)}").raise_for_status()
            fetch_s = time.perf_counter() - t
            log(
                f"catch-up: {got.size} leaves, {got.tiles} tiles {verify_s:.2f} s, fetch {fetch_s:.2f} s"
            )

            # ---- the hub stops; the mirror answers --------------------------------------
            listed = len(list(clients[me.id].iter_inbox()))
            for c in clients.values():
                c.close()
            time.sleep(1.5)  # the mirror's last look describes what the hub last listed
            hub.close()
            ok = 0
            for path in (
                "/v1/tlog/checkpoint",
                f"/v1/tlog/{tile_path(0, 0)}",
                "/v1/log/consistency?old=1&new=2",
            ):
                ok += httpx.get(murl + path).status_code == 200
            with HubClient(murl, me.identity()) as mine:
                ok += len(list(mine.iter_inbox())) == listed > 0
                ok += "mirror" in mine.obligations(AGREEMENT_ID)
        finally:
            if mirror is not None and mirror.poll() is None:
                mirror.send_signal(signal.SIGTERM)
                mirror.wait(timeout=30)
            hub.close()
    result = {
        "bench": "mirror",
        "backend": "postgresql" if args.db else "sqlite",
        "acts": len(acked),
        "rate": args.rate,
        "lag_p50_s": round(pct(lags, 0.5), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "hub_cp_lag_p99_s": round(pct(hub_lags, 0.99), 3),
        "lag_ratio": round(pct(lags, 0.99) / max(pct(hub_lags, 0.99), 1e-9), 2),
        "leaves": got.size,
        "tiles_per_s": round(got.tiles / verify_s, 1),
        "leaves_per_s": round(got.size / verify_s),
        "fetch_tiles_per_s": round(2 * len(tiles) / fetch_s, 1),
        "verify_ratio": round((got.tiles / verify_s) / (2 * len(tiles) / fetch_s), 2),
        "reads_with_hub_stopped": ok,
        "log_size_at_catch_up": size,
        "targets_met": pct(lags, 0.99) <= 2.0 and ok == 5,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
