"""Checkpoint bodies, tlog-policy files and quorum decisions, proof bundles."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cbmnet.errors import FormatError, PolicyError, VerificationError
from cbmnet.ledger import merkle
from cbmnet.ledger.checkpoint import format_checkpoint, parse_checkpoint
from cbmnet.ledger.entry import decode_entry, encode_entry
from cbmnet.ledger.note import generate_key, new_cosigner, new_signer, parse_signer_key, sign_note
from cbmnet.ledger.policy import parse_policy, single_log_policy, verify_checkpoint
from cbmnet.ledger.tlogproof import (
    AddCheckpoint,
    ProofBundle,
    format_add_checkpoint,
    format_proof,
    parse_add_checkpoint,
    parse_proof,
    verify_entry_proof,
)

ROOT = bytes(range(32))


def test_checkpoint_round_trip() -> None:
    body = format_checkpoint("example.com/log", 20852163, ROOT, ["ext one"])
    assert body == ("example.com/log\n20852163\n" + base64.b64encode(ROOT).decode() + "\next one\n")
    cp = parse_checkpoint(body)
    assert (cp.origin, cp.size, cp.root_hash, cp.extensions) == (
        "example.com/log",
        20852163,
        ROOT,
        ["ext one"],
    )
    assert cp.body() == body


@pytest.mark.parametrize(
    "body",
    [
        "o\n1\n",
        "o\n01\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "o\n1\nnot base64!\n",
        "\n1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode(),
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",
        "o\n99999999999999999999999\n" + base64.b64encode(ROOT).decode() + "\n",
    ],
)
def test_malformed_checkpoints(body: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(body)


@given(st.text(max_size=80))
def test_parse_checkpoint_never_crashes(text: str) -> None:
    with contextlib.suppress(FormatError):
        parse_checkpoint(text)


def _keys(n: int, prefix: str) -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        s, v = generate_key(f"{prefix}{i}")
        out.append((s, v, parse_signer_key(s).cosigner_verifier_key))
    return out


def test_policy_quorum_k_of_n() -> None:
    log_s, log_v = generate_key("hub.example/log")
    ws = _keys(3, "w")
    policy = parse_policy(
        f"# treaty parties' witnesses\nlog {log_v}\n"
        + "".join(f"witness W{i} {c}\n" for i, (_, _, c) in enumerate(ws))
        + "group parties 2 W0 W1 W2\nquorum parties\n"
    )
    body = format_checkpoint("hub.example/log", 5, ROOT)
    one = sign_note(body, new_signer(log_s), new_cosigner(ws[0][0], 10))
    with pytest.raises(PolicyError, match="quorum not met"):
        verify_checkpoint(one, policy)
    two = sign_note(body, new_signer(log_s), new_cosigner(ws[0][0], 10), new_cosigner(ws[2][0], 11))
    agreed = verify_checkpoint(two, policy)
    assert agreed.cosigned_by == {"W0", "W2"} and agreed.checkpoint.size == 5
    # A witness's plain (0x01) signature is not a cosignature.
    plain = sign_note(body, new_signer(log_s), new_signer(ws[0][0]), new_signer(ws[1][0]))
    with pytest.raises(PolicyError):
        verify_checkpoint(plain, policy)
    # Unsigned by the log: rejected even with every witness.
    no_log = sign_note(body, *[new_cosigner(s, 1) for s, _, _ in ws])
    with pytest.raises(PolicyError, match="not signed by a log"):
        verify_checkpoint(no_log, policy)


def test_policy_nested_groups_and_none() -> None:
    ws = _keys(4, "x")
    text = "".join(f"witness X{i} {c}\n" for i, (_, _, c) in enumerate(ws))
    text += "group a any X0 X1\ngroup b all X2 X3\ngroup ab all a b\nquorum ab\n"
    p = parse_policy(text)
    assert p.satisfied({"X1", "X2", "X3"})
    assert not p.satisfied({"X0", "X1", "X2"})
    assert parse_policy("quorum none\n").satisfied(set())


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("", "no quorum"),
        ("quorum none\nquorum none\n", "second quorum"),
        ("quorum W\n", "quorum must name"),
        ("group g 1 A\nquorum g\n", "not defined"),
        ("bogus x\nquorum none\n", "unknown keyword"),
        ("log notakey\nquorum none\n", "policy line 1"),
    ],
)
def test_malformed_policies(text: str, msg: str) -> None:
    with pytest.raises(FormatError, match=msg):
        parse_policy(text)


def test_policy_rejects_wrong_key_types_and_duplicates() -> None:
    s, v = generate_key("w")
    c = parse_signer_key(s).cosigner_verifier_key
    with pytest.raises(FormatError, match="type"):
        parse_policy(f"witness W {v}\nquorum W\n")
    with pytest.raises(FormatError, match="type"):
        parse_policy(f"log {c}\nquorum none\n")
    with pytest.raises(FormatError, match="duplicate"):
        parse_policy(f"witness A {c}\nwitness B {c}\nquorum A\n")
    with pytest.raises(FormatError, match="threshold"):
        parse_policy(f"witness A {c}\ngroup g 2 A\nquorum g\n")


def _bundle(n: int, index: int) -> tuple[str, str, list[bytes]]:
    log_s, log_v = generate_key("hub.example/log")
    entries = [encode_entry(1000 + i, b'{"e":%d}' % i) for i in range(n)]
    body = format_checkpoint("hub.example/log", n, merkle.root_hash(entries))
    note = sign_note(body, new_signer(log_s))
    proof = merkle.inclusion_proof(entries, index)
    return format_proof(ProofBundle(index, proof, note, entries[index])), log_v, entries


def test_proof_bundle_round_trip_and_verify() -> None:
    text, log_v, entries = _bundle(11, 6)
    b = parse_proof(text)
    assert b.index == 6 and b.extra == entries[6] and format_proof(b) == text
    got = verify_entry_proof(text, single_log_policy(log_v))
    assert got.entry == decode_entry(entries[6]) and got.agreed.checkpoint.size == 11


def test_proof_bundle_tampering_rejected() -> None:
    text, log_v, entries = _bundle(11, 6)
    policy = single_log_policy(log_v)
    b = parse_proof(text)
    wrong_index = format_proof(ProofBundle(5, b.proof, b.checkpoint, b.extra))
    other_entry = format_proof(ProofBundle(6, b.proof, b.checkpoint, entries[5]))
    short = format_proof(ProofBundle(6, b.proof[:-1], b.checkpoint, b.extra))
    for bad in (wrong_index, other_entry, short):
        with pytest.raises(VerificationError):
            verify_entry_proof(bad, policy)
    with pytest.raises(FormatError):
        verify_entry_proof(text.replace("index 6", "index 06"), policy)
    with pytest.raises(FormatError):
        verify_entry_proof(text.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), policy)


def test_add_checkpoint_round_trip() -> None:
    req = AddCheckpoint(3, [ROOT, ROOT[::-1]], "o\n5\n" + base64.b64encode(ROOT).decode() + "\n")
    assert parse_add_checkpoint(format_add_checkpoint(req)) == req
    with pytest.raises(FormatError):
        parse_add_checkpoint("old x\n\nbody\n")
    with pytest.raises(FormatError, match="more than"):
        parse_add_checkpoint("old 1\n" + (base64.b64encode(ROOT).decode() + "\n") * 64 + "\ncp\n")


@given(st.text(max_size=120))
def test_proof_parsers_never_crash(text: str) -> None:
    for parse in (parse_proof, parse_add_checkpoint):
        with contextlib.suppress(FormatError):
            parse(text)
