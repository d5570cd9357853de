"""Group commit: many submitters, one writer thread, one durable commit per group.

Submitters verify signatures in their own threads (the expensive, parallel part), then
hand verified envelopes to the sequencer and wait for their receipts. The writer thread
takes everything queued so far (up to ``max_group`` envelopes) and appends it in one
transaction, so a durable commit's cost is shared by the group, and verification of the
next acts overlaps the commit of the previous ones. A receipt is only handed back after
its group committed; if the commit fails, every submitter of that group gets the error
and nothing of the group is in the log.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from cbmnet.errors import CbmnetError, StoreError
from cbmnet.ledger import dsse
from cbmnet.log.service import Admit, Receipt, TransparencyLog, verify_all

_log = logging.getLogger(__name__)

_Item = tuple[Sequence[dsse.Envelope], "Future[list[Receipt]]"]


class Sequencer:
    def __init__(
        self,
        log: TransparencyLog,
        *,
        max_group: int = 2000,
        admit: Admit | None = None,
        on_commit: Callable[[], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``admit`` decides inside each group's transaction (see ``append_admitted``); an
        item with a refused envelope fails with that error. ``on_commit`` runs after each
        durable commit; ``on_failure`` after a failed one (an admit may need to forget)."""
        self.log = log
        self.admit = admit
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.max_group = max_group
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cbmnet-sequencer", daemon=True)
        self._thread.start()

    def submit(self, envelopes: Sequence[dsse.Envelope]) -> Future[list[Receipt]]:
        """Queue verified envelopes; the future resolves once they are durable.

        Cancelling the future before its group is taken drops the envelopes; after that,
        cancelling is refused and the receipt still comes.
        """
        if self._closed:
            raise StoreError("the sequencer is closed")
        fut: Future[list[Receipt]] = Future()
        self._queue.put((envelopes, fut))
        return fut

    def append(self, envelope: bytes | str, authors: Sequence[bytes], *, threshold: int = 1) -> Receipt:
        """Verify here (in the caller's thread), then wait for the group commit."""
        return self.submit(verify_all([envelope], authors, threshold)).result()[0]

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        # A submit racing with close may have queued behind the sentinel: refuse it.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(StoreError("the sequencer is closed"))

    def __enter__(self) -> Sequencer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            count = len(first[0])
            while count < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                count += len(nxt[0])
            # A submitter that gave up before its turn is dropped, not logged.
            live = [item for item in group if item[1].set_running_or_notify_cancel()]
            if live:
                self._commit(live)

    def _commit(self, group: list[_Item]) -> None:
        envelopes = [e for envs, _ in group for e in envs]
        try:
            results = self.log.append_admitted(envelopes, self.admit)
        except Exception as e:  # the writer thread must outlive any one bad group
            if self.on_failure is not None:
                try:
                    self.on_failure(e)
                except Exception as again:  # e.g. the store is still down: its next commit recovers
                    _log.warning("after a failed commit, recovery failed too: %s", again)
            if len(group) > 1:
                for item in group:  # isolate the culprit: only its submitter fails
                    self._commit([item])
                return
            group[0][1].set_exception(e)
            return
        if self.on_commit is not None:
            self.on_commit()
        at = 0
        for envs, fut in group:
            mine = results[at : at + len(envs)]
            at += len(envs)
            refused = next((r for r in mine if isinstance(r, CbmnetError)), None)
            if refused is not None:
                fut.set_exception(refused)
            else:
                fut.set_result([r for r in mine if isinstance(r, Receipt)])
