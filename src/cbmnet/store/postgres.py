"""PostgreSQL backend (psycopg 3): writers serialise on the ``log_state`` row lock.

Several hub processes may share one database: each append locks ``log_state`` with
``SELECT ... FOR UPDATE``, reloads the tree's right edge if another process moved it,
and commits; PostgreSQL's commit is durable (synchronous_commit on).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from cbmnet.errors import ConflictError, StoreError
from cbmnet.store.sql import AppendWatch, Store

log = logging.getLogger("cbmnet.store")

NOTIFY_CHANNEL = "cbmnet_log"
"""Hub processes LISTEN here to push new entries appended by any process."""


class PostgresStore(Store):
    blob_type = "BYTEA"

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL store: {e}") from e
        self._tx: Any = None
        super().__init__()

    @property
    def url(self) -> str:
        return self._url

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, opened anew if the server dropped the old one (a restart).

        Called only where no transaction is open: a transaction whose connection died has
        failed and its caller was told so; statements and transactions after it run on a
        new connection instead of failing for the rest of the process's life.
        """
        if self._conn.closed or self._conn.broken:
            old = self._conn
            try:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            except psycopg.Error as e:
                raise StoreError(f"cannot reconnect to PostgreSQL store: {e}") from e
            old.close()
        return self._conn

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            conn = self._conn if self._in_tx else self._live()
            cur = conn.execute(self._sql(sql), params, prepare=False)
            return cur.fetchall() if cur.description else []
        except psycopg.errors.IntegrityError as e:
            raise ConflictError(f"PostgreSQL store: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL store: {e}") from e

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            conn = self._conn if self._in_tx else self._live()
            with conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except psycopg.errors.IntegrityError as e:
            raise ConflictError(f"PostgreSQL store: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL store: {e}") from e

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            # Store.transaction holds the lock and no transaction is open yet: reconnect here.
            with self._live().transaction():
                yield
        except psycopg.errors.IntegrityError as e:
            raise ConflictError(f"PostgreSQL store: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL store: {e}") from e

    def _migrate_lock_sql(self) -> str | None:
        return "SELECT pg_advisory_xact_lock(4242424242)"

    def _lock_log_sql(self) -> str:
        return "SELECT size, last_ms FROM log_state WHERE id = 1 FOR UPDATE"

    def watch_appends(self) -> AppendWatch:
        return _Listen(self._url)

    def announce(self, size: int) -> None:
        # NOTIFY inside the transaction is delivered at commit, and never on rollback.
        self._execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, str(size)))

    def close(self) -> None:
        self._conn.close()


class _Listen(AppendWatch):
    """LISTEN on :data:`NOTIFY_CHANNEL` on a connection of its own: woken at the commit of
    another process's append. A dropped connection (a database restart) is reopened,
    polling meanwhile: the watch must outlive the database's restarts."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        self._retry_at = 0.0

    def _connect(self) -> None:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception as e:  # the database is down: poll, and try again soon
            log.warning("LISTEN unavailable, polling meanwhile: %s", e)
            self._retry_at = time.monotonic() + 2.0
            return
        self._conn = conn

    def wait(self, timeout: float) -> None:
        if self._conn is None and time.monotonic() >= self._retry_at and not self._closed.is_set():
            self._connect()
        if self._conn is None:
            super().wait(timeout)
            return
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
        except Exception as e:  # the connection dropped: reopen it
            log.warning("LISTEN connection lost, reconnecting: %s", e)
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            self._retry_at = time.monotonic() + 0.5
            super().wait(min(timeout, 0.25))

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
