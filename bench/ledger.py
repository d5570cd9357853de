"""Benchmark the ledger: durable appends with signature checks, and proof latency.

Figures (last line, one JSON object):

* ``verify_per_s``: raw Ed25519 verifications per second of the same envelopes' PAE with
  ``cryptography``, measured here, now: the baseline.
* ``appends_per_s``: envelopes appended per second on SQLite (WAL, synchronous=FULL),
  single process, through the hub's path: the caller parses and verifies each envelope,
  the ``Sequencer`` thread dedups, hashes and commits each group durably while the next
  batch is being verified. ``serial_appends_per_s`` is the same work without overlap
  (``TransparencyLog.append_batch``: verify a batch, commit it, repeat).
  ``two_verifier_threads_appends_per_s`` is the hub's shape: two request threads verify
  (``cryptography`` releases the GIL while verifying), one sequencer commits; it is not
  part of the ratio, whose baseline is one verifying core.
* ``ratio``: appends_per_s / verify_per_s (target >= 0.8: verification is the only
  inherent cost).
* ``proof_p50_ms`` / ``proof_p99_ms``: inclusion-proof generation from stored hashes at
  ``proof_tree_size`` entries (default 1,000,000), random indices. That tree is filled
  through ``append_verified`` with placeholder signatures, because proof generation never
  reads envelopes and signing a million of them would only measure signing.

Usage: python bench/ledger.py [--appends N] [--batch B] [--proof-size N] [--proofs K]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.log.sequencer import Sequencer
from cbmnet.log.service import Receipt, TransparencyLog
from cbmnet.store import open_store

PT = "application/vnd.cbmnet.event+json"


def payload(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"bench-{i}",
            "type": "notification",
            "agreement": "VD11",
            "party": "XA",
            "time": "2027-09-10T00:00:00Z",
            "activity": {"category": "exercise", "troops": 9000 + i % 1000, "tanks": 300},
        },
        sort_keys=True,
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--appends", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--round", type=int, default=2000)
    ap.add_argument("--proof-size", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=2_000)
    args = ap.parse_args()

    skey, _ = generate_key("bench.party")
    pub = parse_signer_key(skey).public_key
    envs = [dsse.sign(PT, payload(i), [skey]) for i in range(args.appends)]

    parsed = [dsse.parse(e) for e in envs]
    pairs = [(p.signatures[0].sig, dsse.pae(p.payload_type, p.payload)) for p in parsed]
    key = Ed25519PublicKey.from_public_bytes(pub)

    def raw_verify(lo: int, hi: int) -> float:
        t0 = time.perf_counter()
        for sig, msg in pairs[lo:hi]:
            key.verify(sig, msg)
        return (hi - lo) / (time.perf_counter() - t0)

    # Rounds interleave the baseline with the measured work, so drift in the machine's
    # speed (other load, frequency) hits both alike; the figures are medians over rounds.
    rounds = range(0, len(envs), args.round)
    with tempfile.TemporaryDirectory() as tmp:
        log_skey, _ = generate_key("bench.example/log")
        serial_log = TransparencyLog.create(open_store(f"{tmp}/serial.db", create=True), log_skey)
        group_log = TransparencyLog.create(open_store(f"{tmp}/append.db", create=True), log_skey)
        pool_log = TransparencyLog.create(open_store(f"{tmp}/pool.db", create=True), log_skey)
        verify_rates, serial_rates, group_rates = [], [], []
        ratios, serial_ratios = [], []
        pool_rates = []
        with (
            Sequencer(group_log) as seq,
            Sequencer(pool_log) as pool_seq,
            ThreadPoolExecutor(2) as verifiers,
        ):
            for start in rounds:
                end = min(start + args.round, len(envs))
                base = raw_verify(start, end)
                # Serial: verify a batch, commit it, repeat.
                t0 = time.perf_counter()
                for lo in range(start, end, args.batch):
                    serial_log.append_batch(envs[lo : min(lo + args.batch, end)], [pub])
                serial = (end - start) / (time.perf_counter() - t0)
                # Group commit (the hub's path): verify the next batch while the last commits.
                t0 = time.perf_counter()
                pending: deque[Future[list[Receipt]]] = deque()
                for lo in range(start, end, args.batch):
                    chunk = envs[lo : min(lo + args.batch, end)]
                    pending.append(seq.submit([dsse.verify(e, [pub]) for e in chunk]))
                    while len(pending) > 2:
                        pending.popleft().result()
                for fut in pending:
                    fut.result()
                group = (end - start) / (time.perf_counter() - t0)
                # As the hub runs it: two request threads verify, the sequencer commits.
                t0 = time.perf_counter()
                futs = [
                    verifiers.submit(
                        lambda c: pool_seq.submit([dsse.verify(e, [pub]) for e in c]).result(),
                        envs[lo : min(lo + args.batch // 2, end)],
                    )
                    for lo in range(start, end, args.batch // 2)
                ]
                for f in futs:
                    f.result()
                pool_rates.append((end - start) / (time.perf_counter() - t0))
                base = (base + raw_verify(start, end)) / 2
                verify_rates.append(base)
                serial_rates.append(serial)
                group_rates.append(group)
                ratios.append(group / base)
                serial_ratios.append(serial / base)
        assert serial_log.size() == group_log.size() == pool_log.size() == len(envs)
        verify_per_s = statistics.median(verify_rates)
        appends_per_s = statistics.median(group_rates)
        serial_per_s = statistics.median(serial_rates)

        # The proof tree.
        big = TransparencyLog.create(open_store(f"{tmp}/proofs.db", create=True), log_skey)
        fake = (dsse.Signature("placeholder", bytes(64)),)
        t_fill = time.perf_counter()
        step = 20_000
        for lo in range(0, args.proof_size, step):
            hi = min(lo + step, args.proof_size)
            big.append_verified([dsse.Envelope(PT, b"%d" % i, fake, (), fake) for i in range(lo, hi)])
        fill_s = time.perf_counter() - t_fill
        size = big.size()
        rng = random.Random(7)
        big.inclusion_proof(0, size)  # warm the connection and statement cache
        times = []
        for _ in range(args.proofs):
            idx = rng.randrange(size)
            t = time.perf_counter()
            big.inclusion_proof(idx, size)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50 = statistics.median(times)
        p99 = times[int(len(times) * 0.99) - 1]

    print(
        json.dumps(
            {
                "benchmark": "ledger",
                "appends_per_s": round(appends_per_s, 1),
                "verify_per_s": round(verify_per_s, 1),
                "ratio": round(statistics.median(ratios), 3),
                "serial_appends_per_s": round(serial_per_s, 1),
                "serial_ratio": round(statistics.median(serial_ratios), 3),
                "rounds": len(ratios),
                "two_verifier_threads_appends_per_s": round(statistics.median(pool_rates), 1),
                "proof_p50_ms": round(p50, 4),
                "proof_p99_ms": round(p99, 4),
                "proof_tree_size": size,
                "proof_tree_fill_s": round(fill_s, 1),
                "appends": len(envs),
                "batch": args.batch,
                "backend": "sqlite",
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
