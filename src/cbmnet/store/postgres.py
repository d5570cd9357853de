"""PostgreSQL backend (psycopg 3): writers serialise on the ``log_state`` row lock.

Several hub processes may share one database: each append locks ``log_state`` with
``SELECT ... FOR UPDATE``, reloads the tree's right edge if another process moved it,
and commits; PostgreSQL's commit is durable (synchronous_commit on).

Failover is PostgreSQL's (docs/RELIABILITY.md): given a libpq multi-host URL with
``target_session_attrs=read-write``, a lost connection is reopened, with bounded backoff,
on whichever server now takes writes. A transaction whose connection died fails whole;
its COMMIT's outcome may be unknown, and the hub answers it as not acknowledged: the
client resends the same act, which the log keeps once (a statement is logged once).
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


RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 0.5
"""Backoff between reconnection attempts: doubled after each failed one, up to this.

While it runs, statements fail at once (the hub answers 503, the client retries): a
database being promoted is not met by every request of every hub at once, and writes
resume within this much of the new primary taking them."""


class PostgresStore(Store):
    blob_type = "BYTEA"

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL store: {e}") from e
        self._tx: Any = None
        self._backoff = 0.0
        self._retry_at = 0.0
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
            now = time.monotonic()
            if now < self._retry_at:
                raise StoreError(
                    f"PostgreSQL store unreachable; next reconnection in {self._retry_at - now:.2f} s"
                )
            old = self._conn
            try:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            except psycopg.Error as e:
                self._backoff = min(RECONNECT_MAX_S, max(RECONNECT_MIN_S, 2 * self._backoff))
                self._retry_at = time.monotonic() + self._backoff
                raise StoreError(f"cannot reconnect to PostgreSQL store: {e}") from e
            if self._backoff:
                log.warning(
                    "PostgreSQL store reconnected (%s:%s)", self._conn.info.host, self._conn.info.port
                )
            self._backoff = 0.0
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

    # The append's rows go in one statement each, as arrays: psycopg's executemany pipelines
    # one statement per row, and its per-row Python work held the writer (85 us an entry;
    # issue 17). ``unnest`` keeps the order of the arrays; ``%b``: dumped binary, not escaped.

    def insert_entries(self, rows: Sequence[tuple[int, int, bytes, bytes]]) -> None:
        if rows:
            idx, ms, statement, envelope = (list(c) for c in zip(*rows, strict=True))
            self._execute(
                "INSERT INTO log_entries (idx, integrated_ms, statement, envelope)"
                " SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[], %b::bytea[])",
                (idx, ms, statement, envelope),
            )

    def insert_nodes(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        if rows:
            level, idx, digest = (list(c) for c in zip(*rows, strict=True))
            self._execute(
                "INSERT INTO log_nodes (level, idx, hash)"
                " SELECT * FROM unnest(%b::integer[], %b::bigint[], %b::bytea[])",
                (level, idx, digest),
            )

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
        committing = False
        try:
            # Store.transaction holds the lock and no transaction is open yet: reconnect here.
            with self._live().transaction():
                yield
                committing = True
        except psycopg.errors.IntegrityError as e:
            raise ConflictError(f"PostgreSQL store: {e}") from e
        except psycopg.OperationalError as e:
            if committing:  # the COMMIT was sent: it may have been applied, or not
                raise StoreError(
                    f"PostgreSQL store: connection lost at COMMIT, outcome unknown: {e}"
                ) from e
            raise StoreError(f"PostgreSQL store: {e}") from e
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
