"""The physical floor of a hotline message: a bare durable commit plus its wake-up.

A hotline message must be durably committed before anyone is shown it, then pushed. The
least any hub could do for it, on the same database from the same machine, is one INSERT
of a body of the same size, a durable COMMIT, and the wake-up of a waiter:

* SQLite: WAL with ``synchronous=FULL`` (as the hub's store opens it); the waiter is a
  thread of the same process woken after the commit (as the hub wakes its streams).
* PostgreSQL: the INSERT and a ``pg_notify`` in one transaction; the waiter is another
  connection that LISTENs (as the hub's other processes do).

Round trips are paced at the load's rate, one at a time, on a table of their own
(``bench_floor``, dropped after) before the hub starts, so nothing else writes meanwhile.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

CHANNEL = "bench_floor"


def floor_round_trips(url: str, sizes: Sequence[int], rate: float) -> list[float]:
    """Seconds from before each INSERT to its waiter's wake-up, one per size in ``sizes``."""
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres(url, sizes, rate)
    return _sqlite(url.removeprefix("sqlite:///"), sizes, rate)


def _paced(sizes: Sequence[int], rate: float, once: Any) -> list[float]:
    out = []
    start = time.perf_counter()
    for i, n in enumerate(sizes):
        wait = start + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        out.append(once(i, b"x" * n))
    return out


def _sqlite(path: str, sizes: Sequence[int], rate: float) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, body BLOB)")
    woken: queue.Queue[tuple[int, float]] = queue.Queue()
    cond = threading.Condition()
    posted: list[int] = []

    def waiter() -> None:
        seen = 0
        while True:
            with cond:
                while len(posted) <= seen:
                    cond.wait()
                news = posted[seen:]
            now = time.perf_counter()
            for i in news:
                if i < 0:
                    return
                woken.put((i, now))
            seen += len(news)

    t = threading.Thread(target=waiter, daemon=True)
    t.start()

    def once(i: int, body: bytes) -> float:
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bench_floor (id, body) VALUES (?, ?)", (i, body))
        conn.execute("COMMIT")
        with cond:
            posted.append(i)
            cond.notify_all()
        got, at = woken.get(timeout=10)
        assert got == i
        return at - t0

    try:
        return _paced(sizes, rate, once)
    finally:
        with cond:
            posted.append(-1)
            cond.notify_all()
        t.join(timeout=5)
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.close()


def _postgres(url: str, sizes: Sequence[int], rate: float) -> list[float]:
    import psycopg

    writer = psycopg.connect(url, autocommit=True)
    listener = psycopg.connect(url, autocommit=True)
    writer.execute("CREATE TABLE IF NOT EXISTS bench_floor (id BIGINT PRIMARY KEY, body BYTEA)")
    listener.execute(f"LISTEN {CHANNEL}")

    def once(i: int, body: bytes) -> float:
        t0 = time.perf_counter()
        with writer.transaction():
            writer.execute("INSERT INTO bench_floor (id, body) VALUES (%s, %s)", (i, body))
            writer.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(i)))
        for n in listener.notifies(timeout=10, stop_after=1):
            if int(n.payload) != i:
                raise RuntimeError(f"floor: notified {n.payload}, waiting for {i}")
            return time.perf_counter() - t0
        raise RuntimeError(f"floor: no notification for round trip {i} within 10 s")

    try:
        return _paced(sizes, rate, once)
    finally:
        writer.execute("DROP TABLE IF EXISTS bench_floor")
        writer.close()
        listener.close()
