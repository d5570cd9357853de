"""Fuzz every door with a larger budget: the harnesses of ``tests/test_fuzz_doors.py``.

Each parser (notes, keys, checkpoints, proofs, envelopes, policies, acts, agreement
files, event files, observation files) and a real hub on loopback (SQLite, ``/v1/acts``)
get ``--examples`` hypothesis examples (derandomized: the same inputs on every run), each
example feeding the door one or more inputs.

Figures (last line, one JSON object), all counted, none assumed:

* ``inputs_tried``: inputs fed to each door; ``total_inputs`` their sum.
* ``accepted`` / ``rejected``: per door, what parsed and what was refused with a
  ``CbmnetError`` (a 4xx for the hub).
* ``crashes``: inputs that raised anything else (or broke an identity rule).
* ``http_5xx``: hub answers of 500 or more.
* ``state_changed_by_rejected_input``: refused hub inputs after which the log size or a
  store table's row count differed.
* ``hub_statuses``: the hub's answers by status code.

Usage: python bench/fuzz.py [--examples N] [--hub-examples N] [--doors a,b,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.test_fuzz_doors import DOORS, Tally  # noqa: E402

SLOW = {"observations": 0.5, "agreements": 0.5}
"""Doors whose inputs cost more (files on disk, pydantic): a share of the budget."""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--examples", type=int, default=3000, help="examples per parser door")
    ap.add_argument("--hub-examples", type=int, default=1000, help="examples at the hub door")
    ap.add_argument("--doors", default=",".join(DOORS), help="comma-separated doors to run")
    args = ap.parse_args()
    doors = [d for d in args.doors.split(",") if d]
    unknown = sorted(set(doors) - set(DOORS))
    if unknown:
        ap.error(f"unknown doors {', '.join(unknown)}; known: {', '.join(DOORS)}")

    tally = Tally()
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for door in doors:
        n = args.hub_examples if door == "hub" else max(1, int(args.examples * SLOW.get(door, 1.0)))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                DOORS[door](tally, n, Path(tmp))
            except Exception as e:  # a crash, 5xx or changed state: hypothesis re-raises it
                failures[door] = f"{type(e).__name__}: {str(e)[:300]}"
        seconds[door] = round(time.perf_counter() - t0, 2)
        print(
            f"{door}: {tally.tried[door]} inputs, {tally.accepted[door]} accepted, "
            f"{tally.rejected[door]} refused, {seconds[door]} s",
            file=sys.stderr,
        )
    crashes = len(tally.crashes) + sum(
        1 for d, msg in failures.items() if not any(c.startswith(f"{d}:") for c in tally.crashes)
    )
    print(
        json.dumps(
            {
                "benchmark": "fuzz",
                "inputs_tried": dict(tally.tried),
                "total_inputs": sum(tally.tried.values()),
                "accepted": dict(tally.accepted),
                "rejected": dict(tally.rejected),
                "crashes": crashes,
                "http_5xx": tally.http_5xx,
                "state_changed_by_rejected_input": tally.state_changed,
                "hub_statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
                "failures": failures,
                "examples": args.examples,
                "hub_examples": args.hub_examples,
                "seconds_per_door": seconds,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
