"""A PostgreSQL store outlives a dropped connection (a server restart, found by the soak).

Before, the store kept its dead connection: after a restart of PostgreSQL every request of a
running hub process answered 503 until the process itself was restarted. Here the server
end of the store's connection is terminated (as a restart does) without restarting the
server the other tests share.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from cbmnet.errors import StoreError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_verifier_key
from cbmnet.log.service import TransparencyLog
from cbmnet.store import open_store
from cbmnet.store.postgres import PostgresStore
from tests.conftest import pg_base_url
from tests.hubkit import running_hub


def _terminate(store: PostgresStore) -> None:
    pid = store._conn.info.backend_pid
    with psycopg.connect(pg_base_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_store_reconnects_after_its_connection_is_dropped(pg_schema_url: str) -> None:
    store = open_store(pg_schema_url, create=True)
    assert isinstance(store, PostgresStore)
    try:
        skey, _ = generate_key("log.cbmnet.test/reconnect")
        log = TransparencyLog.create(store, skey)
        _terminate(store)
        # The statement that meets the dead connection fails (nothing is acknowledged) ...
        with pytest.raises(StoreError):
            store.get_meta("origin")
        # ... and the next ones run on a new connection: reads, then a write transaction.
        assert store.get_meta("origin") == "log.cbmnet.test/reconnect"
        _terminate(store)
        with pytest.raises(StoreError):
            store.log_state()
        author_skey, author_vkey = generate_key("party.test/reconnect")
        env = dsse.sign("application/vnd.test+json", b'{"n":1}', [author_skey])
        receipt = log.append(env, [parse_verifier_key(author_vkey).public_key])
        assert receipt.index == 0
        # A transaction that meets the dead connection fails whole; the retry is logged once.
        _terminate(store)
        env2 = dsse.sign("application/vnd.test+json", b'{"n":2}', [author_skey])
        with pytest.raises(StoreError):
            log.append(env2, [parse_verifier_key(author_vkey).public_key])
        assert log.append(env2, [parse_verifier_key(author_vkey).public_key]).index == 1
        assert store.log_state()[0] == 2
    finally:
        store.close()


def _listeners(app_marker: str) -> list[int]:
    with psycopg.connect(pg_base_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND state IS NOT NULL",
            (f"LISTEN {app_marker}%",),
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_the_hubs_listen_thread_reconnects_after_its_connection_is_dropped(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """The hub's LISTEN connection (how it hears of other processes' appends) is dropped as
    by a database restart: the thread opens a new one (it used to die with the connection,
    so the hub stopped waking its streams for other processes' writes)."""
    from cbmnet.store.postgres import NOTIFY_CHANNEL

    with running_hub(pg_schema_url, tmp_path) as th:
        deadline = time.monotonic() + 10
        before: list[int] = []
        while not before and time.monotonic() < deadline:
            before = _listeners(NOTIFY_CHANNEL)
            time.sleep(0.1)
        assert before, "the hub opened no LISTEN connection"
        with psycopg.connect(pg_base_url(), autocommit=True) as admin:
            for pid in before:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        after: list[int] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            after = [p for p in _listeners(NOTIFY_CHANNEL) if p not in before]
            if after:
                break
            time.sleep(0.2)
        assert after, "the LISTEN connection was not reopened"
        # And the hub still serves and writes.
        th.register("DEU")
        assert httpx.get(f"{th.url}/healthz").json()["log_size"] >= 1
