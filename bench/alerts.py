"""Benchmark alert delivery: from an act's commit to its alert arriving, by mail and webhook.

A hub (``cbmnet serve``, SQLite in a temp dir) runs in a child process with ``--smtp``
pointed at a real SMTP server (aiosmtpd) in this process and webhooks allowed to loopback.
``--parties`` parties register and each subscribes an address and a webhook (this
process's receiver) to the alerts of acts addressed to it. The load is open-loop: an
explanation request from one random party to another every ``1 / --rate`` s for
``--seconds``; each commit (its receipt's ``integrated_ms``) is matched with the arrival
of its two alerts (by the ``Cbmnet-Alert`` key, ``entry:INDEX:PARTY|channel|target``).

Last line, one JSON object:

* ``p50_ms`` / ``p99_ms``: arrival minus commit, over every alert (mail and webhook);
  ``email_p99_ms`` and ``webhook_p99_ms`` apart.
* ``floor_p50_ms`` / ``floor_p99_ms``: the baseline, same run, same receivers: this
  process mails the same SMTP server and posts the same receiver directly, at the same
  rate (what sending costs without the hub).
* ``floor_ratio``: p99_ms / floor_p99_ms (the hub's half-second alert loop dominates).
* ``target_p99_ms``: 5000 (issue 15: alert delivery p99 <= 5 s after commit);
  ``targets_met``; ``lost``: alerts not arrived within ``--timeout`` s.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cbmnet.acts.model import PT_EVENT  # noqa: E402
from cbmnet.agreements.loader import bundled  # noqa: E402
from cbmnet.communication.hotline import generate_encryption_key  # noqa: E402
from cbmnet.hub.service import init_hub  # noqa: E402
from cbmnet.ledger.note import generate_key, parse_signer_key  # noqa: E402
from cbmnet.party.client import HubClient, Identity  # noqa: E402

VD = "vienna-document-2011"
TARGET_P99_MS = 5000.0
PARTIES = [
    "AUT", "BEL", "CHE", "CZE", "DEU", "DNK", "ESP", "EST", "FIN", "FRA", "GBR", "GRC",
    "HUN", "IRL", "ITA", "LTU", "NLD", "NOR", "POL", "PRT", "SWE", "TUR", "USA", "CAN",
]  # fmt: skip


def now_ms() -> float:
    return time.time() * 1000


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            self.at.setdefault(key, now_ms())


class Mail:
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(policy=email_policy).parsebytes(envelope.content, headersonly=True)
        self.arrivals.add(str(msg.get("X-Cbmnet-Alert", "")))
        return "250 OK"


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrivals.add(self.headers.get("Cbmnet-Alert", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def floor(arrivals: Arrivals, smtp_port: int, hook: str, n: int, rate: float) -> list[float]:
    """Direct sends from this process, at the load's rate: the cost of delivery alone."""
    out = []
    with httpx.Client() as http:
        for i in range(n):
            t0 = now_ms()
            key = f"floor:{i}"
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "f@x.example", "t@x.example", "floor"
            msg["X-Cbmnet-Alert"] = key + "|email"
            msg.set_content("floor")
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
                s.send_message(msg)
            http.post(hook, content=b"{}", headers={"Cbmnet-Alert": key + "|webhook"})
            for ch in ("email", "webhook"):
                out.append(arrivals.at[f"{key}|{ch}"] - t0)
            time.sleep(max(0.0, 1 / rate - (now_ms() - t0) / 1000))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parties", type=int, default=20)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    parties = PARTIES[: args.parties]
    arrivals = Arrivals()
    smtp_port = free_port()
    smtp = Controller(Mail(arrivals), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    hooks = receiver(arrivals)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{hooks.server_address[1]}/alerts"
    tmp = Path(tempfile.mkdtemp(prefix="cbmnet-bench-alerts-"))
    proc = None
    try:
        sec_skey, sec_vkey = generate_key("secretariat.bench.test")
        url = f"sqlite:///{tmp / 'hub.db'}"
        init_hub(url, tmp / "keys", origin="bench.cbmnet.test/log", secretariat_vkey=sec_vkey,
                 agreements=[bundled(VD)])  # fmt: skip
        port = free_port()
        cmd = [sys.executable, "-m", "cbmnet.cli.main", "serve", "--db", url,
               "--keys", str(tmp / "keys"), "--port", str(port), "--sweep-seconds", "3600",
               "--log-level", "warning", "--smtp", f"127.0.0.1:{smtp_port}",
               "--alerts-allow-private"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        ids: dict[str, Identity] = {}
        with HubClient(base, Identity("secretariat", sec_skey)) as sec:
            for p in parties:
                skey, vkey = generate_key(f"{p.lower()}.bench.test")
                wkey, _ = generate_key(f"witness.{p.lower()}.bench.test")
                _ep, eq = generate_encryption_key()
                sec.register({"party": p, "name": p, "agreements": [VD], "signing_key": vkey,
                              "encryption_key": eq,
                              "witness_key": parse_signer_key(wkey).cosigner_verifier_key})  # fmt: skip
                ids[p] = Identity(p, skey)
        clients = {p: HubClient(base, ident) for p, ident in ids.items()}
        for p, c in clients.items():
            doc = {"emails": [f"{p.lower()}@alerts.example"], "webhooks": [hook], "kinds": ["addressed"]}
            c._request("PUT", "/v1/alerts", json=doc)
        rng = random.Random(7)
        committed: dict[int, tuple[float, str]] = {}
        t_start = time.monotonic()
        n = int(args.seconds * args.rate)
        for i in range(n):
            due = t_start + i / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            a, b = rng.sample(parties, 2)
            req = {"agreement": VD, "id": f"{a}-bench-{i}", "type": "request", "party": a,
                   "kind": "explanation", "to": b}  # fmt: skip
            r = clients[a].submit(clients[a].sign(PT_EVENT, req), proof=False)
            committed[int(r["index"])] = (float(r["integrated_ms"]), b)
        want = {
            f"entry:{idx}:{b}|{ch}|{target}": ms
            for idx, (ms, b) in committed.items()
            for ch, target in (("email", f"{b.lower()}@alerts.example"), ("webhook", hook))
        }
        end = time.monotonic() + args.timeout
        while time.monotonic() < end and not all(k in arrivals.at for k in want):
            time.sleep(0.1)
        delays = {k: arrivals.at[k] - ms for k, ms in want.items() if k in arrivals.at}
        lost = len(want) - len(delays)
        for c in clients.values():
            c.close()
        base_floor = floor(arrivals, smtp_port, hook, min(n, 100), args.rate)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        hooks.shutdown()
        hooks.server_close()
        smtp.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    values = list(delays.values())
    email = [v for k, v in delays.items() if "|email|" in k]
    web = [v for k, v in delays.items() if "|webhook|" in k]
    p99 = pct(values, 99)
    floor_p99 = pct(base_floor, 99)
    print(
        json.dumps(
            {
                "parties": len(parties),
                "acts": n,
                "alerts": len(want),
                "rate_per_s": args.rate,
                "p50_ms": round(statistics.median(values), 1) if values else None,
                "p99_ms": round(p99, 1),
                "email_p99_ms": round(pct(email, 99), 1),
                "webhook_p99_ms": round(pct(web, 99), 1),
                "floor_p50_ms": round(statistics.median(base_floor), 2),
                "floor_p99_ms": round(floor_p99, 2),
                "floor_ratio": round(p99 / floor_p99, 1) if floor_p99 else None,
                "target_p99_ms": TARGET_P99_MS,
                "targets_met": lost == 0 and p99 <= TARGET_P99_MS,
                "lost": lost,
            }
        )
    )


if __name__ == "__main__":
    main()
