"""Persistence: one interface, two backends (SQLite by default, PostgreSQL in production).

``open_store(url)`` takes ``sqlite:///path/to/file.db`` (or a bare path) or
``postgresql://...``. Both backends share the SQL in ``sql.py``; they differ only in
placeholders, blob types and how a writer takes the log's lock.
"""

from __future__ import annotations

import os

from cbmnet.errors import StoreError
from cbmnet.store.sql import Store


def open_store(url: str, *, create: bool = False) -> Store:
    """Open the store at ``url``; a missing SQLite file is made only with ``create``."""
    if url.startswith(("postgresql://", "postgres://")):
        from cbmnet.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if path.startswith("/") and not path.startswith("//"):
            # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db"
            path = path[1:]
        elif path.startswith("//"):
            path = path[1:]
    elif "://" in url:
        raise StoreError(f"store URL {url!r}: use sqlite:///PATH or postgresql://...")
    else:
        path = url
    if not path:
        raise StoreError("store URL names no SQLite file")
    if not create and not os.path.exists(path):
        raise StoreError(f"no store at {path!r} (run 'cbmnet log init' first?)")
    from cbmnet.store.sqlite import SqliteStore

    return SqliteStore(path)


__all__ = ["Store", "open_store"]
