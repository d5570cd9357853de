"""Two hub processes on one PostgreSQL database: one log, no lost or duplicated index.

Real processes (``cbmnet serve``), real HTTP and WebSocket on loopback. One is killed
with SIGKILL mid-load: every act it acknowledged must be in the log afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cbmnet.errors import CbmnetError
from cbmnet.ledger import dsse
from cbmnet.log.audit import audit_log
from cbmnet.party.client import HubClient
from cbmnet.store import open_store
from tests.hubcli_helpers import serve_process
from tests.hubkit import PartyKeys, ServedHub, activity_event, init_test_hub

pytestmark = pytest.mark.slow


@contextmanager
def hub_process(url: str, keys: Path, log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``cbmnet serve`` on the shared database (sweeps off: the test drives them)."""
    args = ["--db", url, "--keys", str(keys), "--sweep-seconds", "3600"]
    with serve_process(args, log_path, log_path.parent) as served:
        yield served


@pytest.fixture
def two_hubs(
    pg_schema_url: str, tmp_path: Path
) -> Iterator[tuple[str, str, str, dict[str, PartyKeys], Any]]:
    _keys, secretariat = init_test_hub(pg_schema_url, tmp_path / "keys")
    with (
        hub_process(pg_schema_url, tmp_path / "keys", tmp_path / "a.log") as (a, proc_a),
        hub_process(pg_schema_url, tmp_path / "keys", tmp_path / "b.log") as (b, _),
    ):
        served = ServedHub(a, secretariat)
        served.register("DEU", "FRA", "POL", "ITA")
        keys = served.keys
        yield pg_schema_url, a, b, keys, proc_a


def test_concurrent_submits_through_two_processes(two_hubs: Any) -> None:
    url, a, b, keys, _ = two_hubs
    receipts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def load(party: str, base: str) -> None:
        try:
            with HubClient(base, keys[party].identity()) as c:
                for i in range(15):
                    r = c.event(activity_event(i, party + base[-5:]), proof=False)
                    with lock:
                        receipts.append(r["index"])
        except BaseException as e:  # reported below
            errors.append(e)

    # One party pushes through hub B while another writes through hub A: B must push it.
    async def watch() -> list[int]:
        seen: list[int] = []
        with HubClient(b, keys["ITA"].identity()) as ita:
            async for item in ita.stream(after=3):
                seen.append(item["index"])
                if len(seen) >= 4 * 15 * 2:
                    return seen
        return seen

    watcher: list[list[int]] = []
    wt = threading.Thread(target=lambda: watcher.append(asyncio.run(asyncio.wait_for(watch(), 120))))
    wt.start()
    time.sleep(0.5)
    threads = [threading.Thread(target=load, args=(p, base)) for p in keys for base in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    wt.join()
    assert len(receipts) == len(set(receipts)) == 4 * 2 * 15
    store = open_store(url)
    try:
        size = store.log_state()[0]
        assert size == 4 + len(receipts)  # four registrations, then every act: dense
        assert sorted(receipts) == list(range(4, size))
        audit_log(store)
    finally:
        store.close()
    # Every act reached the member connected to the other process, in log order.
    assert watcher and watcher[0] == list(range(4, size))


def test_kill_9_loses_no_acknowledged_entry(two_hubs: Any) -> None:
    url, a, b, keys, proc_a = two_hubs
    acked: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(party: str) -> None:
        with HubClient(a, keys[party].identity(), timeout=5) as c:
            i = 0
            while not stop.is_set():
                env = c.sign(
                    "application/vnd.cbmnet.event+json", {"party": party, **activity_event(i, party)}
                )
                i += 1
                try:
                    r = c.submit(env, proof=False)
                except CbmnetError:
                    return  # the hub died under us: this act was never acknowledged
                with lock:
                    acked.append((r["index"], dsse.parse(env).statement_digest()))

    threads = [threading.Thread(target=load, args=(p,)) for p in keys]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc_a.pid, signal.SIGKILL)
    proc_a.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 40
    store = open_store(url)
    try:
        for idx, digest in acked:
            row = store.get_entry(idx)
            assert row is not None, f"acknowledged entry {idx} lost"
            assert dsse.parse(row.envelope).statement_digest() == digest, f"entry {idx} is another act"
        audit_log(store)
    finally:
        store.close()
    # The surviving process goes on serving the same log.
    with HubClient(b, keys["DEU"].identity()) as deu:
        r = deu.event(activity_event(10_000, "after"), proof=True)
        assert r["index"] >= max(i for i, _ in acked) + 1
