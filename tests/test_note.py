"""Signed notes and cosignatures: Go's sumdb/note vectors, round trips, bad input."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger import note as n

# Peer vectors: golang.org/x/mod/sumdb/note documentation (BSD-3-Clause), used as data.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# c2sp.org/signed-note, "Verifier keys" example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def test_go_vector_sign_is_byte_exact() -> None:
    assert n.sign_note(GO_TEXT, n.new_signer(GO_SKEY)) == GO_NOTE


def test_go_vector_open() -> None:
    got = n.open_note(GO_NOTE, [n.new_verifier(GO_VKEY)])
    assert got.text == GO_TEXT
    assert [(s.name, s.key_id, s.timestamp) for s in got.signatures] == [
        ("PeterNeumann", 0xC74F20A3, None)
    ]


def test_go_vector_key_encodings() -> None:
    k = n.parse_signer_key(GO_SKEY)
    assert k.verifier_key == GO_VKEY
    v = n.parse_verifier_key(SPEC_VKEY)
    assert (v.name, v.key_id, v.alg) == ("example.com/foo", 0x530D903A, 1)


def test_generate_round_trip_and_key_ids_differ_by_type() -> None:
    skey, vkey = n.generate_key("log.example/a")
    k = n.parse_signer_key(skey)
    assert k.verifier_key == vkey
    signer, cosigner = n.new_signer(skey), n.new_cosigner(skey, timestamp=1700000000)
    assert signer.key_id != cosigner.key_id
    cv = n.new_verifier(k.cosigner_verifier_key)
    assert cv.alg == n.ALG_COSIGNATURE_V1 and cv.key_id == cosigner.key_id
    text = "log.example/a\n3\n" + base64.b64encode(bytes(32)).decode() + "\n"
    signed = n.sign_note(text, signer, cosigner)
    opened = n.open_note(signed, [n.new_verifier(vkey), cv])
    assert [s.timestamp for s in opened.signatures] == [None, 1700000000]
    # Neither key type verifies the other's signature: a 0x01 verifier ignores the
    # cosignature line (different key id), a 0x04 verifier ignores the plain one.
    only_cosig = n.open_note(signed, [cv])
    assert len(only_cosig.signatures) == 1 and only_cosig.signatures[0].timestamp == 1700000000
    # Forge: present the cosignature line under the 0x01 key id -> bad signature.
    raw = base64.b64decode(signed.splitlines()[-1].split(" ")[2])
    forged_sig = signer.key_id.to_bytes(4, "big") + raw[4:]
    forged = text + "\n\u2014 log.example/a " + base64.b64encode(forged_sig).decode() + "\n"
    with pytest.raises(VerificationError):
        n.open_note(forged, [n.new_verifier(vkey)])


def test_cosignature_message_format() -> None:
    assert n.cosignature_message(b"o\n1\nr\n", 12) == b"cosignature/v1\ntime 12\no\n1\nr\n"


def test_multiple_signers_order_and_unknown_ignored() -> None:
    keys = [n.generate_key(f"k{i}") for i in range(5)]
    signed = n.sign_note("hello\n", *[n.new_signer(s) for s, _ in keys])
    assert [line.split(" ")[1] for line in signed.splitlines()[2:]] == [f"k{i}" for i in range(5)]
    got = n.open_note(signed, [n.new_verifier(keys[3][1])])
    assert [s.name for s in got.signatures] == ["k3"]
    assert len(got.unverified) == 4


def test_no_known_signature_rejected() -> None:
    _, other = n.generate_key("other")
    with pytest.raises(VerificationError, match="no signature by a known key"):
        n.open_note(GO_NOTE, [n.new_verifier(other)])


def test_tampered_text_rejected() -> None:
    with pytest.raises(VerificationError, match="invalid signature"):
        n.open_note(GO_NOTE.replace("answer", "answers"), [n.new_verifier(GO_VKEY)])


def test_ambiguous_verifiers() -> None:
    v = n.new_verifier(GO_VKEY)
    with pytest.raises(FormatError, match="ambiguous"):
        n.open_note(GO_NOTE, [v, v])


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper hex
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad b64
        "PeterNeumann+c74f20a3+AhpcAA==",  # unknown type 0x02
        "PeterNeumann+c74f20a3+Ag==",
    ],
)
def test_malformed_verifier_keys(vkey: str) -> None:
    with pytest.raises(FormatError):
        n.new_verifier(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        GO_VKEY,
    ],
)
def test_malformed_signer_keys(skey: str) -> None:
    with pytest.raises(FormatError):
        n.new_signer(skey)


@pytest.mark.parametrize(
    "bad",
    [
        GO_TEXT,  # no signature block
        GO_TEXT + "\n",  # empty signature block
        GO_TEXT + "\n- PeterNeumann AAAA\n",  # hyphen, not an em dash
        GO_TEXT + "\n\u2014 PeterNeumann\n",
        GO_TEXT + "\n\u2014 PeterNeumann AAAA\n",  # too short
        GO_TEXT + "\n\u2014 PeterNeumann !!!!!!!!\n",
        GO_NOTE[:-1],  # missing final newline
        "bell\x07\n" + GO_NOTE[len(GO_TEXT) :],
    ],
)
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(FormatError):
        n.open_note(bad, [n.new_verifier(GO_VKEY)])


def test_too_many_signatures() -> None:
    line = GO_NOTE[len(GO_TEXT) + 1 :]
    with pytest.raises(FormatError, match="more than"):
        n.open_note(GO_TEXT + "\n" + line * (n.MAX_SIGNATURES + 1), [n.new_verifier(GO_VKEY)])


def test_sixteen_signatures_accepted() -> None:
    keys = [n.generate_key(f"w{i}") for i in range(16)]
    signed = n.sign_note("t\n", *[n.new_cosigner(s, 5) for s, _ in keys])
    vs = [n.new_verifier(n.parse_signer_key(s).cosigner_verifier_key) for s, _ in keys]
    assert len(n.open_note(signed, vs).signatures) == 16


def test_invalid_utf8_bytes() -> None:
    with pytest.raises(FormatError, match="UTF-8"):
        n.open_note(b"\xff\xfe\n\n", [n.new_verifier(GO_VKEY)])


@given(st.text(max_size=60))
def test_open_never_crashes_on_garbage(text: str) -> None:
    with contextlib.suppress(FormatError, VerificationError):
        n.open_note(text, [n.new_verifier(GO_VKEY)])


@given(st.binary(min_size=1, max_size=40))
def test_any_bit_flip_in_signature_rejected(noise: bytes) -> None:
    raw = bytearray(base64.b64decode(GO_NOTE.splitlines()[-1].split(" ")[2]))
    pos = 4 + noise[0] % 64
    raw[pos] ^= 1 << (len(noise) % 8)
    bad = GO_TEXT + "\n\u2014 PeterNeumann " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(VerificationError):
        n.open_note(bad, [n.new_verifier(GO_VKEY)])
