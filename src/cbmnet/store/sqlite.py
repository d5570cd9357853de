"""SQLite backend: WAL, full sync, one writer at a time (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cbmnet.errors import ConflictError, StoreError
from cbmnet.store.sql import Store


class SqliteStore(Store):
    blob_type = "BLOB"

    def __init__(self, path: str) -> None:
        self._path = path
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
            self._conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            # WAL lets readers go on while one writer appends; synchronous=FULL makes a
            # commit durable before it returns, so an acknowledged entry survives a crash.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open SQLite store {path!r}: {e}") from e
        super().__init__()

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}"

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.IntegrityError as e:
            raise ConflictError(f"SQLite store {self._path!r}: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"SQLite store {self._path!r}: {e}") from e

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as e:
            raise ConflictError(f"SQLite store {self._path!r}: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"SQLite store {self._path!r}: {e}") from e

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._run("COMMIT", ())
        except BaseException:
            if self._conn.in_transaction:  # never leave the connection inside it
                self._conn.execute("ROLLBACK")
            raise

    def _lock_log_sql(self) -> str:
        # BEGIN IMMEDIATE already holds the database's write lock.
        return "SELECT size, last_ms FROM log_state WHERE id = 1"

    def relax_durability(self) -> None:
        # WAL with synchronous=NORMAL: never corrupt, may lose the last moments on power loss.
        self._execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        self._conn.close()
