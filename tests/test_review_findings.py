"""Regression tests for the trust core's review findings (weak keys, group commit, policy
quorums, joint acts, witness conflicts, time bounds in offline proofs)."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import Future

import pytest

from cbmnet.errors import ConflictError, FormatError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import (
    _SMALL_ORDER_Y,
    generate_key,
    new_verifier,
    parse_signer_key,
)
from cbmnet.ledger.policy import parse_policy
from cbmnet.ledger.tlogproof import format_add_checkpoint, format_proof, verify_entry_proof
from cbmnet.ledger.witness import Latest, check_add_checkpoint
from cbmnet.log.sequencer import Sequencer
from cbmnet.log.service import Receipt, TransparencyLog
from cbmnet.party.witness import Witness
from cbmnet.store import open_store
from cbmnet.store.sql import Store

PT = "application/vnd.cbmnet.event+json"

# ---- weak keys ----------------------------------------------------------------------------

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P


def _point(y: int) -> tuple[int, int] | None:
    """Decompress an Edwards25519 point from y (either x), or None if not on the curve."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    return (x, y) if (x * x - x2) % P == 0 else None


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P,
    )


def test_blocked_y_values_are_exactly_small_order_points() -> None:
    """Every blocked y is a point of order dividing 8; the generator's y is not blocked."""
    for y in _SMALL_ORDER_Y:
        pt = _point(y)
        assert pt is not None
        acc = pt
        for _ in range(3):
            acc = _add(acc, acc)  # 8P
        assert acc == (0, 1), y
    base_y = 4 * pow(5, P - 2, P) % P
    assert base_y not in _SMALL_ORDER_Y


def _vkey_for(raw: bytes, name: str = "pak.example") -> str:
    from cbmnet.ledger.note import key_id

    return f"{name}+{key_id(name, 1, raw):08x}+" + base64.b64encode(b"\x01" + raw).decode()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01" + bytes(31),  # identity
        bytes(32),  # order 4
        (P - 1).to_bytes(32, "little"),  # order 2
        (P + 1).to_bytes(32, "little"),  # non-canonical identity
        b"\x01" + bytes(30) + b"\x80",  # identity with the sign bit
    ],
)
def test_weak_public_keys_refused(raw: bytes) -> None:
    with pytest.raises(FormatError, match="weak"):
        new_verifier(_vkey_for(raw))
    forged = dsse._dump(PT, b"I never said this", [dsse.Signature("k", b"\x01" + bytes(63))])
    with pytest.raises(FormatError, match="weak"):
        dsse.verify(forged, [raw])


# ---- DSSE input that used to escape the error tree ----------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        '{"payload": "", "payloadType": "t", "signatures": [{"sig": ""}], "x": ' + "9" * 5000 + "}",
        '{"payload": "", "payloadType": "\\ud800", "signatures": [{"sig": ""}]}',
        '{"payload": "", "payloadType": "t", "signatures": [{"keyid": "\\udc00", "sig": ""}]}',
    ],
)
def test_dsse_hostile_json_is_a_format_error(doc: str) -> None:
    with pytest.raises(FormatError):
        dsse.parse(doc)


# ---- policies -----------------------------------------------------------------------------


def _cosigner_vkeys(n: int) -> list[str]:
    return [parse_signer_key(generate_key(f"w{i}")[0]).cosigner_verifier_key for i in range(n)]


def test_policy_member_in_two_groups_refused() -> None:
    a, b, c = _cosigner_vkeys(3)
    text = f"witness A {a}\nwitness B {b}\nwitness C {c}\n"
    with pytest.raises(FormatError, match="already a group member"):
        parse_policy(text + "group G1 any A B\ngroup G2 any A C\ngroup Q all G1 G2\nquorum Q\n")


def test_policy_separators_are_ascii_only() -> None:
    (a,) = _cosigner_vkeys(1)
    # "A\u00a0B" is one (undefined) name, not two members.
    with pytest.raises(FormatError, match="not defined"):
        parse_policy(f"witness A {a}\ngroup G 1 A\u00a0B\nquorum G\n")


# ---- joint acts and what the log stores ---------------------------------------------------


def test_joint_act_needs_all_signers_and_stores_only_verified(tlog: TransparencyLog) -> None:
    ind, pak = generate_key("ind.example")[0], generate_key("pak.example")[0]
    pubs = [parse_signer_key(k).public_key for k in (ind, pak)]
    partial = json.loads(dsse.sign(PT, b"joint statement", [ind]))
    partial["signatures"].append({"keyid": "pak.example+deadbeef", "sig": "AAAA"})
    with pytest.raises(VerificationError, match="1 of the required 2"):
        tlog.append(json.dumps(partial), pubs, threshold=2)
    assert tlog.size() == 0
    tlog.append(json.dumps(partial), pubs)  # as a one-party act it is fine...
    stored = json.loads(tlog.store.get_entry(0).envelope)  # type: ignore[union-attr]
    assert [s["keyid"] for s in stored["signatures"]] == [partial["signatures"][0]["keyid"]]


# ---- group commit -------------------------------------------------------------------------


def test_cancelled_submitter_does_not_stop_the_writer(tlog: TransparencyLog) -> None:
    a = generate_key("a")[0]
    pub = parse_signer_key(a).public_key
    gate = threading.Lock()
    gate.acquire()
    real = tlog.append_verified

    def slow(envs):  # type: ignore[no-untyped-def]
        with gate:
            return real(envs)

    tlog.append_verified = slow  # type: ignore[method-assign]
    with Sequencer(tlog) as seq:
        first = seq.submit([dsse.verify(dsse.sign(PT, b"0", [a]), [pub])])
        doomed: Future[list[Receipt]] = seq.submit([dsse.verify(dsse.sign(PT, b"1", [a]), [pub])])
        doomed.cancel()
        gate.release()
        assert first.result(timeout=10)[0].index == 0
        later = seq.append(dsse.sign(PT, b"2", [a]), [pub])
        assert later.index in (1, 2)
    assert not seq._thread.is_alive()


def test_one_bad_envelope_fails_only_its_submitter(tlog: TransparencyLog) -> None:
    a = generate_key("a")[0]
    pub = parse_signer_key(a).public_key
    with Sequencer(tlog) as seq:
        good = [seq.submit([dsse.verify(dsse.sign(PT, b"%d" % i, [a]), [pub])]) for i in range(3)]
        bad = seq.submit([dsse.parse(dsse.sign(PT, b"unverified", [a]))])
        more = seq.submit([dsse.verify(dsse.sign(PT, b"9", [a]), [pub])])
        with pytest.raises(FormatError, match="not verified"):
            bad.result(timeout=10)
        assert sorted(f.result(timeout=10)[0].index for f in [*good, more]) == [0, 1, 2, 3]


# ---- witness and offline time bounds ------------------------------------------------------


def test_witness_same_size_other_root_is_a_conflict(tlog: TransparencyLog) -> None:
    a = generate_key("a")[0]
    tlog.append(dsse.sign(PT, b"x", [a]), [parse_signer_key(a).public_key])
    cp = tlog.checkpoint()
    req = tlog.witness_request(1)
    logs = {tlog.origin: new_verifier(tlog.vkey)}
    with pytest.raises(ConflictError) as info:
        check_add_checkpoint(req, logs, Latest(cp.size, bytes(32)))
    assert info.value.http_status == 409 and info.value.current_size == 1


def test_offline_proof_refuses_a_time_after_the_cosignature(
    store: Store, log_key: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    future_ms = 1_900_000_000_000  # 2030
    tlog = TransparencyLog.create(store, log_key[0], clock=lambda: future_ms)
    a = generate_key("a")[0]
    tlog.append(dsse.sign(PT, b"x", [a]), [parse_signer_key(a).public_key])
    cp = tlog.checkpoint()
    wkey = generate_key("w")[0]
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'w.db'}"
    witness = Witness(open_store(wurl, create=True), wkey, [tlog.vkey])
    cosigned_at = 1_800_000_000
    lines = witness.add_checkpoint(format_add_checkpoint(tlog.witness_request(0)), timestamp=cosigned_at)
    cvkey = parse_signer_key(wkey).cosigner_verifier_key
    tlog.add_cosignatures(cp.size, lines, [cvkey])
    policy = parse_policy(f"log {tlog.vkey}\nwitness W {cvkey}\nquorum W\n")
    bundle = format_proof(tlog.proof_bundle(0))
    with pytest.raises(VerificationError, match="after witness w cosigned"):
        verify_entry_proof(bundle, policy)
    # Within the allowed skew it is accepted.
    ok = verify_entry_proof(bundle, policy, max_skew_ms=future_ms - cosigned_at * 1000)
    assert ok.entry.integrated_ms == future_ms


def test_add_cosignatures_is_all_or_nothing(
    tlog: TransparencyLog, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cp = tlog.checkpoint()
    wurl = f"sqlite:///{tmp_path_factory.mktemp('w') / 'w.db'}"
    k1, k2 = generate_key("w1")[0], generate_key("w2")[0]
    l1 = Witness(open_store(wurl, create=True), k1, [tlog.vkey]).add_checkpoint(
        format_add_checkpoint(tlog.witness_request(0))
    )
    l2 = Witness(open_store(wurl), k2, [tlog.vkey]).add_checkpoint(
        format_add_checkpoint(tlog.witness_request(0))
    )
    with pytest.raises(VerificationError):
        tlog.add_cosignatures(cp.size, l1 + l2, [parse_signer_key(k1).cosigner_verifier_key])
    assert tlog.store.cosignatures() == []


def test_concurrent_first_open_of_a_postgres_schema(pg_schema_url: str) -> None:
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_store(pg_schema_url).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
