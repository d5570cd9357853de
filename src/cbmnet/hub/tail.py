"""Following appends by other processes, so that this process's streams wake for entries
it did not write itself. How a process hears of them is the store's (``watch_appends``:
PostgreSQL's LISTEN/NOTIFY, else time)."""

import logging
import threading

from cbmnet.errors import CbmnetError
from cbmnet.hub.service import Hub

log = logging.getLogger("cbmnet.hub")


def tail(hub: Hub, stop: threading.Event) -> None:
    """Catch up with the log whenever the store says another process may have appended,
    and at least every half second."""
    with hub.rstore.watch_appends() as watch:
        while not stop.is_set():
            watch.wait(0.5)
            try:
                hub.sync()  # wakes the streams that may read what other processes appended
            except CbmnetError as e:
                log.warning("tail: %s", e)
