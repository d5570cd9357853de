"""Group commit from many threads: every receipt durable, unique, the log auditable."""

from __future__ import annotations

import json
import threading

import pytest

from cbmnet.errors import StoreError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.log.audit import audit_log
from cbmnet.log.sequencer import Sequencer
from cbmnet.log.service import Receipt, TransparencyLog

PT = "application/vnd.cbmnet.event+json"


def test_concurrent_submitters(tlog: TransparencyLog) -> None:
    keys = [generate_key(f"party{i}")[0] for i in range(4)]
    got: dict[int, list[Receipt]] = {}
    errors: list[BaseException] = []

    def party(n: int, seq: Sequencer) -> None:
        try:
            pub = parse_signer_key(keys[n]).public_key
            out = []
            for i in range(40):
                env = dsse.sign(PT, json.dumps({"party": n, "i": i}).encode(), [keys[n]])
                out.append(seq.append(env, [pub]))
            # A resubmission from another thread's point of view is still one leaf.
            again = dsse.sign(PT, json.dumps({"party": n, "i": 0}).encode(), [keys[n]])
            dup = seq.append(again, [pub])
            assert dup.duplicate and dup.index == out[0].index
            got[n] = out
        except BaseException as e:
            errors.append(e)

    with Sequencer(tlog, max_group=16) as seq:
        threads = [threading.Thread(target=party, args=(n, seq)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    indices = sorted(r.index for rs in got.values() for r in rs)
    assert indices == list(range(160))
    for rs in got.values():  # each party's own acts keep their order
        assert [r.index for r in rs] == sorted(r.index for r in rs)
    assert tlog.size() == 160
    audit_log(tlog.store)


def test_bad_envelope_is_refused_before_the_queue(tlog: TransparencyLog) -> None:
    a, _ = generate_key("a")
    b, _ = generate_key("b")
    with Sequencer(tlog) as seq, pytest.raises(VerificationError):
        seq.append(dsse.sign(PT, b"x", [b]), [parse_signer_key(a).public_key])
    assert tlog.size() == 0
    with pytest.raises(StoreError, match="closed"):
        seq.submit([])
