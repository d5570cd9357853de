"""The one place the cyclic garbage collector is paused: reentrant, shared by threads, and
never left off; the pure core does not touch it."""

from __future__ import annotations

import ast
import gc
import threading
from pathlib import Path

from cbmnet import collector

SRC = Path(__file__).resolve().parents[1] / "src" / "cbmnet"


def test_nested_pauses_restore_the_collector_only_at_the_outermost() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner end must not switch it back on
    assert gc.isenabled()


def test_a_pause_ending_in_an_exception_still_restores_it() -> None:
    try:
        with collector.paused():
            raise ValueError("bulk work failed")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_threads_share_one_pause() -> None:
    inside, release = threading.Barrier(3), threading.Event()
    seen: list[bool] = []

    def work() -> None:
        with collector.paused():
            inside.wait()
            release.wait(10)
            seen.append(gc.isenabled())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join(10)
    assert seen == [False, False] and gc.isenabled()


def test_only_the_edges_touch_the_collector() -> None:
    """The pure core (ledger, acts, agreements, compliance, confidence) never pauses or
    freezes it: that is for the process that runs it to decide."""
    for pkg in ("ledger", "acts", "agreements", "compliance", "confidence"):
        for path in (SRC / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            assert "gc" not in names, path
