"""The cyclic garbage collector, paused or told to skip long-lived data, in one place.

The engine, the event parser and the hub's caches build millions of small acyclic objects
that reference counting alone frees. Left running, the cyclic collector rescans all of them
again and again as they pile up, and a full collection over a folded million-entry state
stalls every request for a second. So the edges (the hub, ``cbmnet check``, benchmarks)
pause it around bulk work and freeze what lives long; the pure core never touches it.

``paused()`` is reentrant and shared by threads: the collector runs again only when the
outermost pause of any thread ends, and only if it was running when the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False

FREEZE_OBJECTS = 50_000
"""A cache at least this large is frozen once built (``keep``); smaller ones are left to
the collector."""


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector paused for the duration (nested and concurrent uses share one
    pause)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def keep(objects: int | None = None) -> None:
    """What was just built lives on (a cache until the log grows, or the state folded at
    start-up for the process's life) and is acyclic: freeze it so that full collections
    skip it. ``objects``: its size; a cache under ``FREEZE_OBJECTS`` is not worth it.
    None: everything alive now, after a full collection (start-up)."""
    if objects is None:
        gc.collect()
        gc.freeze()
    elif objects >= FREEZE_OBJECTS:
        gc.collect(1)
        gc.freeze()
