"""Following appends by other processes, so that this process's streams wake for entries
it did not write itself. How a process hears of them is the store's (``watch_appends``:
PostgreSQL's LISTEN/NOTIFY, else time).

It is also how a process re-reads the log after the database was lost (a restart, a
failover to a promoted standby): ``Hub.sync`` folds whatever the store now holds, every
half second, once the store answers again (appends fold the log first in any case, inside
their own transaction)."""

import logging
import threading
import time

from cbmnet.errors import CbmnetError
from cbmnet.hub.service import Hub

log = logging.getLogger("cbmnet.hub")


def tail(hub: Hub, stop: threading.Event) -> None:
    """Catch up with the log whenever the store says another process may have appended,
    and at least every half second."""
    failing_since: float | None = None
    with hub.rstore.watch_appends() as watch:
        while not stop.is_set():
            watch.wait(0.5)
            try:
                size = hub.sync()  # wakes the streams that may read what other processes appended
            except CbmnetError as e:
                if failing_since is None:  # said once, not twice a second while it lasts
                    failing_since = time.monotonic()
                    log.warning("tail: cannot read the log, retrying: %s", e)
                continue
            if failing_since is not None:
                log.warning(
                    "tail: the log is readable again after %.1f s (size %d)",
                    time.monotonic() - failing_since,
                    size,
                )
                failing_since = None
