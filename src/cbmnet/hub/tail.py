"""Following appends by other processes (PostgreSQL LISTEN/NOTIFY, else polling), so that
this process's streams wake for entries it did not write itself."""

import contextlib
import logging
import threading
import time
from typing import Any

from cbmnet.errors import CbmnetError
from cbmnet.hub.service import Hub

log = logging.getLogger("cbmnet.hub")


def tail(hub: Hub, stop: threading.Event) -> None:
    """Follow appends by other processes: PostgreSQL LISTEN/NOTIFY, else polling.

    A dropped LISTEN connection (a database restart) is reopened, polling meanwhile: the
    thread must outlive the database's restarts, or this process would stop waking its
    streams for what the other processes append.
    """
    listen: Any = None
    pg = hub.url.startswith(("postgresql://", "postgres://"))
    retry_at = 0.0

    def connect() -> Any:
        import psycopg

        from cbmnet.store.postgres import NOTIFY_CHANNEL

        conn = psycopg.connect(hub.url, autocommit=True, connect_timeout=5)
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return conn

    try:
        while not stop.is_set():
            if pg and listen is None and time.monotonic() >= retry_at:
                try:
                    listen = connect()
                except Exception as e:  # the database is down: poll, and try again soon
                    log.warning("LISTEN unavailable, polling meanwhile: %s", e)
                    retry_at = time.monotonic() + 2.0
            if listen is not None:
                try:
                    for _ in listen.notifies(timeout=0.5, stop_after=1):
                        pass
                except Exception as e:  # the connection dropped: reopen it
                    log.warning("LISTEN connection lost, reconnecting: %s", e)
                    with contextlib.suppress(Exception):
                        listen.close()
                    listen = None
                    retry_at = time.monotonic() + 0.5
                    stop.wait(0.25)
            else:
                stop.wait(0.25)
            try:
                hub.sync()  # wakes the streams that may read what other processes appended
            except CbmnetError as e:
                log.warning("tail: %s", e)
    finally:
        if listen is not None:
            listen.close()
