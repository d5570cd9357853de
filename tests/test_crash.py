"""Crash test: SIGKILL a log writer at random moments; nothing it acknowledged may be lost.

A child process (this file, run as a script) appends batches of freshly signed envelopes
and, after each ``append_batch`` returns, prints the indices it was given and flushes; in
some rounds it also signs a checkpoint after every batch and prints it, so that kills land
inside checkpoint signing too. The parent kills it with SIGKILL at a random moment, then
reopens the store: every acknowledged entry must be there with the act that was signed for
it, every acknowledged checkpoint must be stored, and the audit must pass. Between rounds
the parent sometimes signs a checkpoint and has a witness cosign it, so the audit also
checks checkpoints and cosignatures written around crashed writers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.ledger.tlogproof import format_add_checkpoint
from cbmnet.log.audit import audit_log
from cbmnet.log.service import TransparencyLog
from cbmnet.party.witness import Witness
from cbmnet.store import open_store

PAYLOAD_TYPE = "application/vnd.cbmnet.crash+json"
ROUNDS = 8
KILL_AFTER = (0.05, 1.5)
"""Seconds after the child reports ready (its imports and store opening done)."""
ENV_LOG_KEY = "CBMNET_CRASH_LOG_KEY"
ENV_AUTHOR_KEY = "CBMNET_CRASH_AUTHOR_KEY"


def _payload(rnd: int, n: int) -> bytes:
    return b'{"round":%d,"n":%d}' % (rnd, n)


# ---- the child ---------------------------------------------------------------------------


def child_main(url: str, rnd: int, mode: str, seed: int) -> None:
    """Append (and in mode "checkpoint" also sign checkpoints) until killed."""
    log_skey = os.environ[ENV_LOG_KEY]
    author_skey = os.environ[ENV_AUTHOR_KEY]
    authors = [parse_signer_key(author_skey).public_key]
    tlog = TransparencyLog(open_store(url), signer_key=log_skey)
    rng = random.Random(seed)
    most = 5 if mode == "checkpoint" else 50
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    n = 0
    while True:
        k = rng.randint(1, most)
        envs = [dsse.sign(PAYLOAD_TYPE, _payload(rnd, n + j), [author_skey]) for j in range(k)]
        receipts = tlog.append_batch(envs, authors)
        assert not any(r.duplicate for r in receipts)
        out.write("ack " + " ".join(f"{r.index}:{n + j}" for j, r in enumerate(receipts)) + "\n")
        out.flush()
        n += k
        if mode == "checkpoint":
            cp = tlog.checkpoint()
            out.write(f"cp {cp.seq} {cp.size} {cp.root_hash.hex()}\n")
            out.flush()


# ---- the parent --------------------------------------------------------------------------


@dataclass
class RoundResult:
    acked: dict[int, int] = field(default_factory=dict)
    """Acknowledged index -> the child's item number n (payload ``_payload(round, n)``)."""
    checkpoints: list[tuple[int, int, str]] = field(default_factory=list)
    lines: int = 0


def run_and_kill(
    url: str, rnd: int, mode: str, delay: float, env: dict[str, str], tmp_path: Path
) -> RoundResult:
    """Start the child, SIGKILL it ``delay`` s after it is ready; what did it acknowledge?"""
    err_path = tmp_path / f"child-{rnd}.err"
    lines: list[str] = []
    ready = threading.Event()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, url, str(rnd), mode, str(1000 + rnd)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
        )
    try:
        assert proc.stdout is not None
        stdout = proc.stdout

        def reader() -> None:
            for line in stdout:
                if line == "ready\n":
                    ready.set()
                elif line.endswith("\n"):
                    lines.append(line)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        if not ready.wait(60):
            pytest.fail(f"child never got ready: {err_path.read_text()}")
        time.sleep(delay)
        if proc.poll() is not None:
            pytest.fail(f"child exited by itself ({proc.returncode}): {err_path.read_text()}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        t.join(30)
        assert not t.is_alive()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()

    res = RoundResult(lines=len(lines))
    for line in lines:
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "ack":
            for item in rest.split():
                idx, _, n = item.partition(":")
                res.acked[int(idx)] = int(n)
        elif kind == "cp":
            seq, size, root = rest.split()
            res.checkpoints.append((int(seq), int(size), root))
        else:
            pytest.fail(f"child said {line!r}")
    return res


@pytest.mark.slow
def test_sigkilled_writer_loses_nothing_acknowledged(store_url: str, tmp_path: Path) -> None:
    log_skey, log_vkey = generate_key("log.cbmnet.test/crash")
    author_skey, _ = generate_key("party.test/PK")
    witness_skey, _ = generate_key("witness.test/w1")
    witness_vkey = parse_signer_key(witness_skey).cosigner_verifier_key
    env = {**os.environ, ENV_LOG_KEY: log_skey, ENV_AUTHOR_KEY: author_skey}

    store = open_store(store_url, create=True)
    TransparencyLog.create(store, log_skey)
    store.close()
    witness = Witness(
        open_store(f"sqlite:///{tmp_path / 'witness.db'}", create=True), witness_skey, [log_vkey]
    )
    cosigned = 0

    all_acked: dict[int, tuple[int, int]] = {}
    all_cps: dict[int, tuple[int, str]] = {}
    killed_in_checkpoint_mode = 0
    try:
        for rnd in range(ROUNDS):
            rng = random.Random(rnd)
            mode = "checkpoint" if rnd % 3 == 1 else "append"
            delay = rng.uniform(*KILL_AFTER)
            res = run_and_kill(store_url, rnd, mode, delay, env, tmp_path)
            killed_in_checkpoint_mode += mode == "checkpoint"
            for idx, n in res.acked.items():
                assert idx not in all_acked, f"index {idx} acknowledged twice"
                all_acked[idx] = (rnd, n)
            for seq, size, root in res.checkpoints:
                all_cps[seq] = (size, root)

            store = open_store(store_url)
            try:
                tlog = TransparencyLog(store, signer_key=log_skey)
                size = tlog.size()
                if all_acked:
                    assert size > max(all_acked), (size, max(all_acked))
                # This round's acknowledged entries, one by one:
                for idx, n in res.acked.items():
                    e = store.get_entry(idx)
                    assert e is not None, f"round {rnd}: acknowledged entry {idx} is lost"
                    assert dsse.parse(e.envelope).payload == _payload(rnd, n)
                # Every round's, in one scan; entries never acknowledged (killed between
                # commit and print) may exist, but only as acts some child signed.
                seen = 0
                for e in store.iter_entries():
                    want = all_acked.get(e.idx)
                    payload = dsse.parse(e.envelope).payload
                    if want is not None:
                        assert payload == _payload(*want), f"entry {e.idx} holds another act"
                        seen += 1
                    else:
                        assert payload.startswith(b'{"round":'), payload
                assert seen == len(all_acked)
                for seq, (cp_size, root) in all_cps.items():
                    cp = store.checkpoint_by_size(cp_size)
                    assert cp is not None, f"acknowledged checkpoint #{seq} is lost"
                    assert (cp.seq, cp.root_hash.hex()) == (seq, root)

                report = audit_log(store, log_vkey)
                assert report.size == size

                if rng.random() < 0.5 and size > 0:
                    # The parent, as the next writer, signs and has the checkpoint cosigned.
                    cp = tlog.checkpoint()
                    request = format_add_checkpoint(tlog.witness_request(cosigned))
                    tlog.add_cosignatures(cp.size, witness.add_checkpoint(request), [witness_vkey])
                    cosigned = cp.size
                    all_cps[cp.seq] = (cp.size, cp.root_hash.hex())
                    report = audit_log(store, log_vkey)
                    assert report.checkpoints == len(store.all_checkpoints())
            finally:
                store.close()
        assert killed_in_checkpoint_mode
        assert all_acked, "no round acknowledged anything: the kills came too early"
    finally:
        witness.store.close()


if __name__ == "__main__":
    child_main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
