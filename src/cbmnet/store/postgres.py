"""PostgreSQL backend (psycopg 3): writers serialise on the ``log_state`` row lock.

Several hub processes may share one database: each append locks ``log_state`` with
``SELECT ... FOR UPDATE``, reloads the tree's right edge if another process moved it,
and commits; PostgreSQL's commit is durable (synchronous_commit on).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from cbmnet.errors import ConflictError, StoreError
from cbmnet.store.sql import Store

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

    def announce(self, size: int) -> None:
        # NOTIFY inside the transaction is delivered at commit, and never on rollback.
        self._execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, str(size)))

    def close(self) -> None:
        self._conn.close()
