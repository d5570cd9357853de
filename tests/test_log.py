"""The log over both stores: appends, dedup, proofs from stored hashes, checkpoints, witnesses."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmnet.errors import ConflictError, FormatError, NotFoundError, VerificationError
from cbmnet.ledger import dsse, merkle
from cbmnet.ledger.note import generate_key, new_verifier, parse_signer_key
from cbmnet.ledger.policy import parse_policy, single_log_policy, verify_checkpoint
from cbmnet.ledger.tlogproof import format_add_checkpoint, format_proof, verify_entry_proof
from cbmnet.ledger.witness import BadLogSignatureError, UnknownLogError
from cbmnet.log.audit import audit_log
from cbmnet.log.service import TransparencyLog
from cbmnet.party.witness import Witness
from cbmnet.store import open_store
from cbmnet.store.sql import Store

PT = "application/vnd.cbmnet.event+json"
Key = tuple[str, str]


def _env(skey: str, i: int) -> bytes:
    return dsse.sign(PT, json.dumps({"n": i}).encode(), [skey])


def _pub(skey: str) -> bytes:
    return parse_signer_key(skey).public_key


def _entries(tlog: TransparencyLog) -> list[bytes]:
    return [tlog.entry_bytes(i) for i in range(tlog.size())]


def test_append_receipts_and_dedup(tlog: TransparencyLog, author_key: Key) -> None:
    a = author_key[0]
    r = tlog.append_batch([_env(a, i) for i in range(5)], [_pub(a)])
    assert [x.index for x in r] == [0, 1, 2, 3, 4] and not any(x.duplicate for x in r)
    again = tlog.append(_env(a, 2), [_pub(a)])
    assert (again.index, again.duplicate, again.integrated_ms) == (2, True, r[2].integrated_ms)
    # The same statement re-serialised is the same act: no second leaf.
    spaced = json.dumps(json.loads(_env(a, 3)), indent=1).encode()
    assert tlog.append(spaced, [_pub(a)]).index == 3
    # A duplicate inside one batch gets one leaf.
    r2 = tlog.append_batch([_env(a, 9), _env(a, 9)], [_pub(a)])
    assert [x.index for x in r2] == [5, 5] and r2[1].duplicate
    assert tlog.size() == 6
    audit_log(tlog.store)


def test_bad_envelope_in_a_batch_changes_nothing(tlog: TransparencyLog, author_key: Key) -> None:
    a = author_key[0]
    other, _ = generate_key("intruder")
    tlog.append(_env(a, 0), [_pub(a)])
    with pytest.raises(VerificationError, match="envelope 2"):
        tlog.append_batch([_env(a, 1), _env(a, 2), _env(other, 3)], [_pub(a)])
    with pytest.raises(FormatError, match="envelope 1"):
        tlog.append_batch([_env(a, 1), b"{not json"], [_pub(a)])
    assert tlog.size() == 1
    assert tlog.append(_env(a, 1), [_pub(a)]).index == 1


def test_integration_time_never_goes_back(store: Store, log_key: Key, author_key: Key) -> None:
    times = iter([5000, 4000, 4000, 7000])
    tlog = TransparencyLog.create(store, log_key[0], clock=lambda: next(times))
    a = author_key[0]
    got = [tlog.append(_env(a, i), [_pub(a)]).integrated_ms for i in range(4)]
    assert got == [5000, 5000, 5000, 7000]


def test_stored_proofs_equal_reference(tlog: TransparencyLog, author_key: Key) -> None:
    a = author_key[0]
    envs = [_env(a, i) for i in range(150)]
    for lo in range(0, 150, 37):  # uneven batches
        tlog.append_batch(envs[lo : lo + 37], [_pub(a)])
    entries = _entries(tlog)
    assert merkle.root_hash(entries) == tlog.root_at(150)

    @given(st.integers(1, 150), st.data())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def check(size: int, data: st.DataObject) -> None:
        idx = data.draw(st.integers(0, size - 1))
        old = data.draw(st.integers(0, size))
        root = tlog.root_at(size)
        assert root == merkle.root_hash(entries[:size])
        proof = tlog.inclusion_proof(idx, size)
        assert proof == merkle.inclusion_proof(entries[:size], idx)
        merkle.verify_inclusion(merkle.leaf_hash(entries[idx]), idx, size, proof, root)
        cproof = tlog.consistency_proof(old, size)
        assert cproof == merkle.consistency_proof(entries[:size], old)
        merkle.verify_consistency(old, size, cproof, tlog.root_at(old), root)

    check()
    with pytest.raises(NotFoundError):
        tlog.inclusion_proof(0, 151)
    with pytest.raises(NotFoundError):
        tlog.inclusion_proof(150, 150)


def test_checkpoints_link_and_bundle_verifies(tlog: TransparencyLog, author_key: Key) -> None:
    a = author_key[0]
    first = tlog.checkpoint()
    assert first.size == 0 and first.root_hash == merkle.EMPTY_ROOT
    tlog.append_batch([_env(a, i) for i in range(10)], [_pub(a)])
    cp = tlog.checkpoint()
    assert (cp.seq, cp.size) == (1, 10)
    assert tlog.checkpoint() == cp  # no growth, no new signature
    policy = single_log_policy(tlog.vkey)
    assert verify_checkpoint(tlog.signed_checkpoint(cp), policy).checkpoint.size == 10
    bundle = format_proof(tlog.proof_bundle(7))
    got = verify_entry_proof(bundle, policy)
    assert got.index == 7 and dsse.verify(got.entry.envelope, [_pub(a)]).payload == b'{"n": 7}'
    audit_log(tlog.store, tlog.vkey)


def test_checkpoint_needs_the_right_key(store: Store, log_key: Key) -> None:
    TransparencyLog.create(store, log_key[0])
    other, _ = generate_key(new_verifier(log_key[1]).name)
    with pytest.raises(FormatError, match="not this log's key"):
        TransparencyLog(store, signer_key=other)
    with pytest.raises(FormatError, match="signer key"):
        TransparencyLog(store).checkpoint()
    with pytest.raises(ConflictError):
        TransparencyLog.create(store, other)


def test_no_checkpoint_yet_for_proof(tlog: TransparencyLog, author_key: Key) -> None:
    tlog.append(_env(author_key[0], 0), [_pub(author_key[0])])
    with pytest.raises(NotFoundError, match="no checkpoint covers entry 0"):
        tlog.proof_bundle(0)


def test_two_writers_share_one_store(store_url: str, log_key: Key, author_key: Key) -> None:
    a = author_key[0]
    s1, s2 = open_store(store_url, create=True), open_store(store_url)
    try:
        w1 = TransparencyLog.create(s1, log_key[0])
        w2 = TransparencyLog(s2, signer_key=log_key[0])
        for i in range(0, 40, 2):
            w1.append(_env(a, i), [_pub(a)])
            w2.append_batch([_env(a, i + 1), _env(a, 1000 + i)], [_pub(a)])
            if i % 10 == 0:
                (w1 if i % 20 else w2).checkpoint()
        assert w1.size() == w2.size() == 60
        assert w1.root_at(60) == merkle.root_hash(_entries(w2))
        audit_log(s1)
    finally:
        s1.close()
        s2.close()


def _witness(
    store_url: str, tlog: TransparencyLog, name: str = "witness.test/w1"
) -> tuple[Witness, str]:
    skey, _ = generate_key(name)
    return Witness(open_store(store_url, create=True), skey, [tlog.vkey]), parse_signer_key(
        skey
    ).cosigner_verifier_key


def test_witness_cosigns_consistent_checkpoints(
    tlog: TransparencyLog, author_key: Key, tmp_path_factory: pytest.TempPathFactory
) -> None:
    a = author_key[0]
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'witness.db'}"
    witness, cvkey = _witness(wurl, tlog)
    tlog.append_batch([_env(a, i) for i in range(6)], [_pub(a)])
    cp = tlog.checkpoint()
    lines = witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))
    assert tlog.add_cosignatures(cp.size, lines, [cvkey]) == 1
    # The witness now holds size 6; a request claiming old 0 is a 409 with the size.
    tlog.append_batch([_env(a, i) for i in range(6, 13)], [_pub(a)])
    cp2 = tlog.checkpoint()
    with pytest.raises(ConflictError) as info:
        witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))
    assert info.value.current_size == 6
    lines2 = witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(6)))
    tlog.add_cosignatures(cp2.size, lines2, [cvkey])
    policy = parse_policy(f"log {tlog.vkey}\nwitness W1 {cvkey}\nquorum W1\n")
    agreed = verify_checkpoint(tlog.signed_checkpoint(cp2), policy)
    assert agreed.cosigned_by == {"W1"}
    got = verify_entry_proof(format_proof(tlog.proof_bundle(12)), policy)
    assert got.agreed.checkpoint.size == 13
    r = audit_log(tlog.store)
    assert (r.checkpoints, r.cosignatures) == (2, 2)


def test_witness_refuses_a_split_view(
    tlog: TransparencyLog, author_key: Key, log_key: Key, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A log that forks its history cannot get the same witness to cosign both branches."""
    a = author_key[0]
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'witness.db'}"
    witness, _ = _witness(wurl, tlog)
    tlog.append_batch([_env(a, i) for i in range(4)], [_pub(a)])
    tlog.checkpoint()
    witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))
    # A second log with the same key and origin but another history (the fork).
    fork_store = open_store(f"sqlite:///{tmp_path_factory.mktemp('f') / 'fork.db'}", create=True)
    fork = TransparencyLog.create(fork_store, log_key[0])
    fork.append_batch([_env(a, 100 + i) for i in range(8)], [_pub(a)])
    fork.checkpoint()
    forged = fork.witness_request(4)
    forged_text = format_add_checkpoint(forged)
    with pytest.raises(VerificationError):
        witness.add_checkpoint(forged_text)
    fork_store.close()


def test_witness_rejects_unknown_and_badly_signed(
    tlog: TransparencyLog, author_key: Key, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'witness.db'}"
    skey, _ = generate_key("w")
    _other_s, other_v = generate_key("other.example/log")
    witness = Witness(open_store(wurl, create=True), skey, [other_v])
    tlog.checkpoint()
    with pytest.raises(UnknownLogError):
        witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))
    impostor = Witness(open_store(wurl), skey, [generate_key(tlog.origin)[1]])
    with pytest.raises(BadLogSignatureError):
        impostor.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))


def test_add_cosignature_refuses_bad_lines(
    tlog: TransparencyLog, author_key: Key, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'witness.db'}"
    witness, _cvkey = _witness(wurl, tlog)
    cp = tlog.checkpoint()
    lines = witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)))
    _, stranger = _witness(wurl, tlog, "stranger")
    with pytest.raises(VerificationError):
        tlog.add_cosignatures(cp.size, lines, [stranger])
    with pytest.raises(FormatError):
        tlog.add_cosignatures(cp.size, lines, [tlog.vkey])
    assert tlog.store.cosignatures() == []
