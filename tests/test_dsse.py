"""DSSE: the spec's PAE vector, round trips, thresholds, base64 variants, bad input."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key

PT = "application/vnd.cbmnet.test+json"


def _pub(skey: str) -> bytes:
    return parse_signer_key(skey).public_key


def test_pae_vector_from_the_spec() -> None:
    # secure-systems-lab/dsse protocol.md test vector.
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"


@given(st.binary(max_size=300), st.text(min_size=1, max_size=40))
def test_round_trip(payload: bytes, ptype: str) -> None:
    skey, _ = generate_key("a")
    env = dsse.verify(dsse.sign(ptype, payload, [skey]), [_pub(skey)])
    assert (env.payload_type, env.payload) == (ptype, payload)
    assert env.verified_keys == (_pub(skey),)


def test_keyid_is_only_a_hint() -> None:
    skey, _ = generate_key("a")
    doc = json.loads(dsse.sign(PT, b"x", [skey]))
    doc["signatures"][0]["keyid"] = "somebody-else"
    dsse.verify(json.dumps(doc), [_pub(skey)])


def test_wrong_key_and_tampered_payload_rejected() -> None:
    a, _ = generate_key("a")
    b, _ = generate_key("b")
    raw = dsse.sign(PT, b"payload", [a])
    with pytest.raises(VerificationError):
        dsse.verify(raw, [_pub(b)])
    doc = json.loads(raw)
    doc["payload"] = base64.b64encode(b"payloaD").decode()
    with pytest.raises(VerificationError):
        dsse.verify(json.dumps(doc), [_pub(a)])
    doc = json.loads(raw)
    doc["payloadType"] = PT + "x"
    with pytest.raises(VerificationError):
        dsse.verify(json.dumps(doc), [_pub(a)])


def test_url_safe_and_unpadded_base64_accepted() -> None:
    skey, _ = generate_key("a")
    payload = bytes(range(250, 256)) * 3  # encodes with + and /
    doc = json.loads(dsse.sign(PT, payload, [skey]))
    for field in ("payload",):
        doc[field] = doc[field].replace("+", "-").replace("/", "_").rstrip("=")
    s = doc["signatures"][0]
    s["sig"] = s["sig"].replace("+", "-").replace("/", "_").rstrip("=")
    assert dsse.verify(json.dumps(doc), [_pub(skey)]).payload == payload


def test_threshold_counts_distinct_keys() -> None:
    keys = [generate_key(f"p{i}")[0] for i in range(3)]
    pubs = [_pub(k) for k in keys]
    two = dsse.sign(PT, b"joint act", keys[:2])
    assert len(dsse.verify_threshold(two, pubs, 2).verified_keys) == 2
    with pytest.raises(VerificationError, match="2 of the required 3"):
        dsse.verify_threshold(two, pubs, 3)
    # The same key signing twice counts once.
    twice = dsse.sign(PT, b"joint act", [keys[0], keys[0]])
    with pytest.raises(VerificationError):
        dsse.verify_threshold(twice, pubs, 2)
    # Listing a key twice in the trusted set does not count twice either.
    with pytest.raises(VerificationError):
        dsse.verify_threshold(dsse.sign(PT, b"x", keys[:1]), [pubs[0], pubs[0]], 2)


def test_signing_key_forms() -> None:
    priv = Ed25519PrivateKey.generate()
    seed = priv.private_bytes_raw()
    pub = priv.public_key().public_bytes_raw()
    for k in (priv, seed):
        dsse.verify(dsse.sign(PT, b"x", [k]), [pub])
    with pytest.raises(FormatError):
        dsse.sign(PT, b"x", [b"short"])


def test_canonical_form_and_statement_digest() -> None:
    skey, _ = generate_key("a")
    raw = dsse.sign(PT, b"x", [skey])
    spaced = json.dumps(json.loads(raw), indent=2)
    e1, e2 = dsse.parse(raw), dsse.parse(spaced)
    assert e1.canonical() == e2.canonical() == raw
    assert e1.statement_digest() == e2.statement_digest()


@pytest.mark.parametrize(
    ("doc", "msg"),
    [
        ("[]", "JSON object"),
        ("{", "not JSON"),
        ('{"payload": "", "payloadType": "t"}', "signatures"),
        ('{"payload": "", "payloadType": "t", "signatures": []}', "non-empty"),
        ('{"payload": 1, "payloadType": "t", "signatures": [{"sig": ""}]}', "base64"),
        ('{"payload": "", "payloadType": 5, "signatures": [{"sig": ""}]}', "payloadType"),
        ('{"payload": "", "payloadType": "", "signatures": [{"sig": ""}]}', "payloadType"),
        ('{"payload": "a+b_", "payloadType": "t", "signatures": [{"sig": ""}]}', "mixes"),
        ('{"payload": "", "payloadType": "t", "signatures": [{"keyid": "k"}]}', "sig"),
        ('{"payload": "", "payloadType": "t", "signatures": ["x"]}', "sig"),
    ],
)
def test_malformed_envelopes(doc: str, msg: str) -> None:
    with pytest.raises(FormatError, match=msg):
        dsse.verify(doc, [bytes(32)])


def test_size_and_count_limits() -> None:
    with pytest.raises(FormatError, match="larger than"):
        dsse.parse(b" " * (dsse.MAX_ENVELOPE_BYTES + 1))
    sig = {"sig": "AA=="}
    doc = {"payload": "", "payloadType": "t", "signatures": [sig] * (dsse.MAX_SIGNATURES + 1)}
    with pytest.raises(FormatError, match="more than"):
        dsse.parse(json.dumps(doc))
    with pytest.raises(FormatError):
        dsse.verify('{"payload": "", "payloadType": "t", "signatures": [{"sig": ""}]}', [b"x"])


def test_deep_nesting_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        dsse.parse("[" * 100_000 + "]" * 100_000)


@given(st.binary(max_size=200))
def test_parse_never_crashes(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        dsse.parse(data)


@given(st.text(min_size=1, max_size=30), st.binary(max_size=50), st.text(max_size=20))
def test_canonical_form_is_sorted_compact_json(ptype: str, payload: bytes, keyid: str) -> None:
    env = dsse.Envelope(ptype, payload, (dsse.Signature(keyid, b"\x01" * 64),))
    doc = json.loads(env.canonical())
    assert (
        env.canonical()
        == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert base64.b64decode(doc["payload"]) == payload and doc["payloadType"] == ptype


@given(st.binary(max_size=600), st.text(min_size=1, max_size=40), st.integers(1, 3))
def test_what_the_verifier_computes_for_the_writer_is_what_the_writer_would(
    payload: bytes, payload_type: str, n_keys: int
) -> None:
    """The logged form and statement digest filled in by ``verify`` (in the verifying
    thread, issue 17) equal the ones computed from the envelope's fields afresh."""
    import hashlib

    keys = [generate_key(f"k{i}.test")[0] for i in range(n_keys)]
    other = generate_key("other.test")[0]
    with contextlib.suppress(FormatError):
        raw = dsse.sign(payload_type, payload, [*keys, other])
        env = dsse.verify(raw, [parse_signer_key(k).public_key for k in keys])
        fresh = dsse.Envelope(env.payload_type, env.payload, env.signatures, (), env.verified_signatures)
        assert env.logged and env.logged == fresh.logged_form()
        assert env.digest == hashlib.sha256(dsse.pae(payload_type, payload)).digest()
        assert env.digest == fresh.statement_digest()
        assert len(json.loads(env.logged)["signatures"]) == n_keys  # the unverified one dropped


def _parse_by_json(raw: bytes) -> dsse.Envelope | str:
    """The general reading alone (the canonical fast path switched off): the reference."""
    saved = dsse._CANONICAL
    dsse._CANONICAL = __import__("re").compile(rb"(?!)")  # matches nothing
    try:
        return dsse.parse(raw)
    except FormatError as e:
        return str(e)
    finally:
        dsse._CANONICAL = saved


def _parsed(raw: bytes) -> dsse.Envelope | str:
    try:
        return dsse.parse(raw)
    except FormatError as e:
        return str(e)


_b64text = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
_field = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
    st.sampled_from(["application/vnd.cbmnet.event+json", "", "a\\b", 'q"', "\x00", "\udc80", "é"]),
)


@given(
    _field, _field, st.one_of(_b64text, st.text(max_size=20)), st.one_of(_b64text, st.text(max_size=20))
)
def test_the_canonical_fast_path_reads_what_the_json_reading_reads(
    ptype: str, keyid: str, payload: str, sig: str
) -> None:
    """Every byte string either way: the same envelope, or the same refusal."""
    for raw in (
        (
            f'{{"payload":"{payload}","payloadType":"{ptype}",'
            f'"signatures":[{{"keyid":"{keyid}","sig":"{sig}"}}]}}'
        ).encode("utf-8", "surrogatepass"),
        json.dumps(
            {"payload": payload, "payloadType": ptype, "signatures": [{"keyid": keyid, "sig": sig}]},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8", "surrogatepass"),
    ):
        assert _parsed(raw) == _parse_by_json(raw)


def test_what_cbmnet_signs_takes_the_fast_path() -> None:
    skey, _ = generate_key("party.test/A")
    raw = dsse.sign("application/vnd.cbmnet.event+json", b'{"a": 1}', [skey])
    assert dsse._CANONICAL.fullmatch(raw) is not None
    assert dsse.parse(raw) == _parse_by_json(raw)


@given(st.binary(max_size=200), st.sampled_from([0, 1, 2, 3]))
def test_the_logged_form_is_canonical_whatever_base64_spelling_came_in(
    payload: bytes, nudge: int
) -> None:
    """``verify`` logs the envelope's own bytes only when they are its canonical form: an
    envelope whose base64 has non-zero trailing bits (the same bytes, spelt otherwise) or
    another spelling is logged canonical."""
    skey, _ = generate_key("party.test/A")
    pub = parse_signer_key(skey).public_key
    raw = dsse.sign("application/vnd.cbmnet.event+json", payload, [skey])
    doc = json.loads(raw)
    sig = doc["signatures"][0]["sig"]  # 64 bytes: "....X==", 4 bits of X unused
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    spelt = sig[:-3] + alphabet[alphabet.index(sig[-3]) + nudge] + "=="
    doc["signatures"][0]["sig"] = spelt
    other = json.dumps(doc, separators=(",", ":")).encode()
    for given_raw in (raw, other):
        try:
            env = dsse.verify(given_raw, [pub])
        except (FormatError, VerificationError):
            continue
        assert env.logged == dsse._dump(env.payload_type, env.payload, env.verified_signatures)
        assert env.logged == raw  # the one canonical form
