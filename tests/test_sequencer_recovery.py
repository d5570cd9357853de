"""The group-commit writer outlives a failed commit whose recovery fails too (found by the soak).

A PostgreSQL restart made a hub's commit fail, and the hub's recovery (rebuilding its state
from the log) failed as well while the server was still coming back: the exception ended
the writer thread, so that submitter and every later one waited forever.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cbmnet.errors import StoreError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.log.sequencer import Sequencer
from cbmnet.log.service import TransparencyLog, verify_all

PT = "application/vnd.cbmnet.event+json"


def test_writer_survives_a_failing_recovery(tlog: TransparencyLog) -> None:
    key, _ = generate_key("party")
    pub = parse_signer_key(key).public_key
    down = {"commit": True}
    recoveries: list[BaseException] = []

    def admit(size: int, ms: int, envelopes: Sequence[dsse.Envelope]) -> list[None]:
        if down["commit"]:
            down["commit"] = False
            raise StoreError("the connection is closed")
        return [None for _ in envelopes]

    def on_failure(e: BaseException) -> None:
        recoveries.append(e)
        raise StoreError("cannot reconnect: the database system is shutting down")

    def append(seq: Sequencer, raw: bytes) -> int:
        # A bounded wait: before the fix the writer thread was gone and this never returned.
        return seq.submit(verify_all([raw], [pub], 1)).result(timeout=10)[0].index

    with Sequencer(tlog, admit=admit, on_failure=on_failure) as seq:
        first = dsse.sign(PT, b'{"i":1}', [key])
        with pytest.raises(StoreError, match="connection is closed"):
            append(seq, first)
        assert len(recoveries) == 1
        # The writer is still there: the next act, and the first sent again, are logged.
        assert append(seq, dsse.sign(PT, b'{"i":2}', [key])) == 0
        assert append(seq, first) == 1
    assert tlog.size() == 2
