"""Bad input at every door (issue 7): every parser, fuzzed, and the hub's act door.

Each door gets arbitrary input and input mutated from a valid example (bytes flipped,
cut, repeated; fields replaced by hostile JSON: deep nesting, huge numbers, oversize
strings; Unicode tricks: bidi overrides, zero-width characters, control characters,
lone surrogates, confusable letters, NFC/NFD pairs). The outcome is either success or a
:class:`CbmnetError`; any other exception is a crash. Where identity is at stake there
is an oracle too: a party id, key name or display name with a control or format
character (or a trailing newline) is refused.

The hub door runs a real hub on loopback (SQLite): every hostile act gets a 4xx, never a
5xx, and after each refused one the log size and the row count of every store table are
what they were before.

The harnesses (``DOORS``) take a budget so ``bench/fuzz.py`` can run them longer and
report the figures; here each is bounded and derandomized (reproducible in CI).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmnet.acts.model import (
    PARTY_ID,
    PAYLOAD_TYPES,
    PT_ACK,
    PT_EVENT,
    PT_HOTLINE,
    PT_OBSERVATIONS,
    PT_REGISTRY,
    read_act,
)
from cbmnet.agreements.loader import parse_agreement
from cbmnet.communication.hotline import SUITE_NAME, generate_encryption_key
from cbmnet.compliance.events import load_events_text
from cbmnet.errors import CbmnetError, FormatError
from cbmnet.hub.service import HubSettings
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import format_checkpoint, parse_checkpoint
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.merkle import leaf_hash, node_hash
from cbmnet.ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    generate_key,
    is_valid_name,
    key_id,
    new_cosigner,
    new_signer,
    new_verifier,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    split_note,
)
from cbmnet.ledger.policy import parse_policy, verify_checkpoint
from cbmnet.ledger.tlogproof import (
    AddCheckpoint,
    ProofBundle,
    format_add_checkpoint,
    format_proof,
    parse_add_checkpoint,
    verify_entry_proof,
)
from cbmnet.verification.observations import open_observations, total_rows

# ---- the tally ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the harnesses saw: inputs per door, outcomes, and every broken rule."""

    tried: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    http_5xx: int = 0
    state_changed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def run(self, door: str, fn: Callable[[], Any]) -> bool:
        """Call ``fn`` as one input at ``door``: True if accepted, False if refused cleanly."""
        self.tried[door] += 1
        try:
            fn()
        except CbmnetError as e:
            assert str(e), f"{door}: an error without a message"
            self.rejected[door] += 1
            return False
        except Exception as e:
            self.crashes.append(f"{door}: {type(e).__name__}: {str(e)[:200]}")
            raise
        self.accepted[door] += 1
        return True


def budget(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# ---- hostile material ---------------------------------------------------------------------

TRICKS = [
    "\u202e",  # right-to-left override
    "\u202d",  # left-to-right override
    "\u2066",  # left-to-right isolate
    "\u061c",  # Arabic letter mark
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufeff",  # byte order mark
    "\u00ad",  # soft hyphen
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",  # next line (C1)
    "\n",
    "\r",
    "\t",
    "\u2028",  # line separator
    "\u00a0",  # no-break space
    "\ud800",  # lone surrogates
    "\udfff",
]
HIDDEN = frozenset(c for c in TRICKS if unicodedata.category(c) in ("Cc", "Cf", "Cs"))
CONFUSABLE = {
    "A": "\u0410",  # Cyrillic A
    "E": "\u0415",
    "I": "\u0399",  # Greek Iota
    "N": "\u039d",
    "O": "\u041e",
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u03bf",
    "i": "\u0456",
}
NFD_PAIRS = [("\u00e9", "e\u0301"), ("\u00c5", "A\u030a"), ("\u212b", "\u00c5")]

RAW_JSON = [
    "[" * 100 + "]" * 100,
    "[" * 20_000 + "]" * 20_000,
    '{"a":' * 5_000 + "1" + "}" * 5_000,
    "1" + "0" * 5_000,  # past Python's int-from-string digit limit
    "-" + "9" * 400,
    "1e999999",
    "-1e-999999",
    "NaN",
    "Infinity",
    "-0",
    "9223372036854775808",
    '"' + "A" * 300_000 + '"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u202eDNI"',
    '"\\u0000"',
    "true",
    "null",
    "[]",
    "{}",
]
BAD_BYTES = [
    b"\xff",
    b"\xc0\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\x80",
    b"\x00",
    b"\xef\xbb\xbf",  # BOM
    "\u202e".encode(),
    b"\n\n",
    b"\r\n",
]


def tricky(base: str) -> st.SearchStrategy[str]:
    """``base`` with a trick: a hidden character inserted, letters swapped for look-alikes,
    a decomposed accent, or a trailing newline."""
    pos = st.integers(0, len(base))
    insert = st.tuples(pos, st.sampled_from(TRICKS)).map(lambda t: base[: t[0]] + t[1] + base[t[0] :])
    swapped = [base.replace(k, v, 1) for k, v in CONFUSABLE.items() if k in base]
    nfd = [base + a for a, _ in NFD_PAIRS] + [base + b for _, b in NFD_PAIRS]
    fixed = st.sampled_from([*swapped, *nfd, base + "\n", base.lower(), " " + base, base + " "])
    return st.one_of(insert, fixed, st.text(max_size=12))


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, cut, repeated or replaced by hostile ones."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "dup", "insert", "trunc"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 4))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(BAD_BYTES) | st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    return bytes(data)


def mutated_text(seed: str) -> st.SearchStrategy[str]:
    """``seed`` with a few characters changed: bytes mutated (then read back as UTF-8 with
    surrogateescape, so lone surrogates occur), or a trick inserted at a line start."""
    as_text = mutated_bytes(seed.encode()).map(lambda b: b.decode("utf-8", "surrogateescape"))
    lines = seed.split("\n")
    line_trick = st.tuples(st.integers(0, len(lines) - 1), st.sampled_from(TRICKS)).map(
        lambda t: "\n".join(ln if i != t[0] else t[1] + ln for i, ln in enumerate(lines))
    )
    return st.one_of(as_text, line_trick, st.text(max_size=200))


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(TRICKS),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_doc(draw: st.DrawFn, seed: dict[str, Any], tricks: dict[str, str] | None = None) -> bytes:
    """A JSON document from ``seed`` with fields dropped, replaced by hostile values or raw
    JSON text (deep nesting, huge numbers), or by a tricky variant of their string."""
    doc: dict[str, Any] = dict(seed)
    raw: dict[str, str] = {}
    names = sorted(doc)
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        how = draw(st.sampled_from(["drop", "value", "raw", "trick", "trick"]))
        if how == "drop":
            del doc[name]
        elif how == "value":
            doc[name] = draw(JSON_VALUE)
        elif how == "raw":
            raw[name] = draw(st.sampled_from(RAW_JSON))
            doc[name] = f"\x00RAW:{name}"
        else:
            base = (tricks or {}).get(name, doc[name] if isinstance(doc[name], str) else name)
            doc[name] = draw(tricky(base))
    if draw(st.booleans()):
        doc[draw(st.text(max_size=10))] = draw(JSON_VALUE)
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    for name, fragment in raw.items():
        text = text.replace(json.dumps(f"\x00RAW:{name}"), fragment)
        text = text.replace(json.dumps(f"\x00RAW:{name}", ensure_ascii=False), fragment)
    return text.encode("utf-8", "surrogatepass")


def hostile_bytes(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_bytes(seed),
        st.binary(max_size=300),
        st.sampled_from(RAW_JSON).map(str.encode),
        st.sampled_from(BAD_BYTES).map(lambda b: seed[: len(seed) // 2] + b + seed[len(seed) // 2 :]),
    )


def hidden_in(s: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in s)


# ---- valid examples to mutate --------------------------------------------------------------

LOG_SKEY, LOG_VKEY = generate_key("log.example")
W_SKEY, _ = generate_key("witness.example")
W_VKEY = parse_signer_key(W_SKEY).cosigner_verifier_key
LOG_PUB = parse_verifier_key(LOG_VKEY).public_key
POLICY = f"log {LOG_VKEY}\nwitness w1 {W_VKEY}\ngroup g any w1\nquorum g\n"
CP_BODY = format_checkpoint("log.example", 2, node_hash(leaf_hash(b"a"), leaf_hash(b"b")))
SIGNED_CP = sign_note(CP_BODY, new_signer(LOG_SKEY), new_cosigner(W_SKEY, timestamp=1_900_000_000))

PARTY_SKEY, PARTY_VKEY = generate_key("aut.cbmnet.test")
_, ENC_PUB = generate_encryption_key()
ENVELOPE = dsse.sign(PT_EVENT, b'{"hello":"world"}', [PARTY_SKEY])


def _proof_text() -> str:
    env = dsse.sign(PT_EVENT, b'{"a":1}', [PARTY_SKEY])
    extra = encode_entry(1_800_000_000_000, env)
    other = encode_entry(1_800_000_000_001, env)
    body = format_checkpoint("log.example", 2, node_hash(leaf_hash(extra), leaf_hash(other)))
    cp = sign_note(body, new_signer(LOG_SKEY), new_cosigner(W_SKEY, timestamp=1_900_000_000))
    return format_proof(ProofBundle(0, [leaf_hash(other)], cp, extra))


PROOF = _proof_text()
ADD_CP = format_add_checkpoint(AddCheckpoint(1, [leaf_hash(b"b")], SIGNED_CP))

AG = "vienna-document-2011"
ACT_SEEDS: list[tuple[str, dict[str, Any]]] = [
    (
        PT_REGISTRY,
        {
            "act": "party.register",
            "party": "AUT",
            "name": "Republic of Austria",
            "agreements": [AG],
            "signing_key": PARTY_VKEY,
            "encryption_key": ENC_PUB,
            "witness_key": parse_signer_key(W_SKEY).cosigner_verifier_key,
            "contact": {"poc": "verification centre"},
        },
    ),
    (PT_REGISTRY, {"act": "key.rotate", "party": "AUT", "by": "AUT", "signing_key": PARTY_VKEY}),
    (PT_REGISTRY, {"act": "key.revoke", "party": "AUT", "by": "recovery", "key": PARTY_VKEY}),
    (
        PT_EVENT,
        {
            "agreement": AG,
            "id": "act-1",
            "type": "activity",
            "party": "AUT",
            "start": "2030-05-01T00:00:00Z",
            "end": "2030-05-10T00:00:00Z",
            "category": "land",
            "size": {"troops": 10_000},
            "location": {"type": "Point", "coordinates": [16.3, 48.2]},
        },
    ),
    (
        PT_EVENT,
        {
            "agreement": AG,
            "id": "req-1",
            "type": "request",
            "party": "AUT",
            "kind": "meeting",
            "to": "BEL",
        },
    ),
    (PT_ACK, {"act": "ack", "party": "BEL", "entry": 4, "statement": "ab" * 32}),
    (
        PT_HOTLINE,
        {
            "act": "channel.open",
            "party": "AUT",
            "channel": "aut-bel",
            "agreement": AG,
            "members": ["AUT", "BEL"],
        },
    ),
    (
        PT_HOTLINE,
        {
            "act": "hotline.message",
            "party": "AUT",
            "channel": "aut-bel",
            "id": "m-1",
            "precedence": "flash",
            "suite": SUITE_NAME,
            "ciphertexts": {"AUT": "AAAA", "BEL": "AAAA"},
        },
    ),
    (
        PT_OBSERVATIONS,
        {
            "act": "observations.batch",
            "party": "AUT",
            "agreement": AG,
            "batch": "b-1",
            "sha256": "00" * 32,
            "format": "csv",
            "bytes": 10,
            "rows": 1,
        },
    ),
]
IDENTITY_FIELDS = ("party", "name", "id", "channel", "batch", "by", "agreement")
"""Fields that name someone or something: a tricky value in one must be refused."""

AGREEMENT = """\
id: fuzz-regime
title: A regime to fuzz
version: "1"
parties: [AAA, BBB]
measures:
  - {id: notice, kind: transparency, provision: "T 1", rule: prior_notification,
     scope: {categories: [land], threshold: {troops: 9000}}, lead: P42D}
  - {id: explain, kind: communication, provision: "T 2", rule: reply_deadline,
     request_kind: explanation, within: PT48H}
"""
YAML_HOSTILE = [
    "a: &a [*a]",
    "&a {x: *a}",
    "\n".join(
        ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    ),
    "[" * 5_000 + "]" * 5_000,
    "a: !!python/object/apply:os.system [echo]",
    "a: !!binary AAAA",
    "%YAML 9.9\n---\na: 1",
    "? [a, b]\n: c",
    "id: x\x00",
    "id: \ud800",
]

EVENTS = json.dumps(
    [
        {
            "id": "a-1",
            "type": "activity",
            "party": "AAA",
            "start": "2030-05-01T00:00:00Z",
            "end": "2030-05-02T00:00:00Z",
            "category": "land",
            "size": {"troops": 10_000},
        },
        {
            "id": "n-1",
            "type": "notification",
            "party": "AAA",
            "time": "2030-03-01T00:00:00Z",
            "form": "prior_notification",
            "activity": "a-1",
        },
        {
            "id": "r-1",
            "type": "request",
            "party": "BBB",
            "time": "2030-05-01T00:00:00Z",
            "kind": "explanation",
            "to": "AAA",
        },
        {
            "id": "s-1",
            "type": "response",
            "party": "AAA",
            "time": "2030-05-02T00:00:00Z",
            "request": "r-1",
            "decision": "answer",
        },
    ]
)

CSV = (
    "id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence,track_id\n"
    "o1,2030-05-01T00:00:00Z,16.3,48.2,s1,aerial,battle_tank,3,0.9,t1\n"
    "o2,2030-05-01T01:00:00Z,16.4,48.1,s2,satellite,troops,100,0.5,\n"
)
GEOJSON = json.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "o1",
                "geometry": {"type": "Point", "coordinates": [16.3, 48.2]},
                "properties": {
                    "time": "2030-05-01T00:00:00Z",
                    "sensor_id": "s1",
                    "sensor_kind": "aerial",
                    "object_class": "battle_tank",
                    "count": 3,
                    "confidence": 0.9,
                },
            }
        ],
    }
)


def _parquet_seed() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ["o1", "o2"],
            "time": pa.array([1_900_000_000_000, 1_900_000_360_000], pa.timestamp("ms", tz="UTC")),
            "lon": [16.3, 16.4],
            "lat": [48.2, 48.1],
            "sensor_id": ["s1", "s2"],
            "sensor_kind": ["aerial", "satellite"],
            "object_class": ["battle_tank", "troops"],
            "count": pa.array([3, 100], pa.int64()),
            "confidence": [0.9, 0.5],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


# ---- the doors -----------------------------------------------------------------------------


def fuzz_notes(t: Tally, n: int, _tmp: Path) -> None:
    verifiers = [new_verifier(LOG_VKEY), new_verifier(W_VKEY)]
    seed = SIGNED_CP.encode()

    @budget(n)
    @given(data=hostile_bytes(seed), text=mutated_text(SIGNED_CP))
    def run(data: bytes, text: str) -> None:
        t.run("notes", lambda: open_note(data, verifiers))
        t.run("notes", lambda: split_note(text))

    run()


def fuzz_keys(t: Tally, n: int, _tmp: Path) -> None:
    """Key names with tricks, under a key id computed for that very name (so only the name
    rule can refuse them), and key strings mutated."""
    pub = LOG_PUB

    @budget(n)
    @given(
        name=tricky("aut.cbmnet.test"),
        alg=st.sampled_from([ALG_ED25519, ALG_COSIGNATURE_V1]),
        vkey=mutated_text(LOG_VKEY),
        skey=mutated_text(LOG_SKEY),
    )
    def run(name: str, alg: int, vkey: str, skey: str) -> None:
        try:
            kid = key_id(name, alg, pub)
        except UnicodeEncodeError:  # a lone surrogate: no key id to compute
            kid = 0
        text = f"{name}+{kid:08x}+{b64(bytes([alg]) + pub)}"
        ok = t.run("keys", lambda: parse_verifier_key(text))
        if hidden_in(name) or any(c.isspace() for c in name):
            assert not ok, f"key name {name!r} was accepted"
        if ok:
            assert is_valid_name(name)
        t.run("keys", lambda: generate_key(name))
        t.run("keys", lambda: parse_verifier_key(vkey))
        t.run("keys", lambda: parse_signer_key(skey))

    run()


def fuzz_checkpoints(t: Tally, n: int, _tmp: Path) -> None:
    policy = parse_policy(POLICY)

    @budget(n)
    @given(body=mutated_text(CP_BODY), signed=mutated_text(SIGNED_CP))
    def run(body: str, signed: str) -> None:
        t.run("checkpoints", lambda: parse_checkpoint(body))
        t.run("checkpoints", lambda: verify_checkpoint(signed, policy))

    run()


def fuzz_proofs(t: Tally, n: int, _tmp: Path) -> None:
    policy = parse_policy(POLICY)
    head = PROOF.split("\n\n")[0]

    @budget(n)
    @given(
        proof=mutated_text(PROOF),
        add=mutated_text(ADD_CP),
        extra=st.sampled_from(["", "AAAA", "!!", b64(b"x" * 5000), b64(ENVELOPE)]),
    )
    def run(proof: str, add: str, extra: str) -> None:
        t.run("proofs", lambda: verify_entry_proof(proof, policy))
        t.run("proofs", lambda: parse_add_checkpoint(add))
        swapped = head.replace(head.split("\n")[1], "extra " + extra) + "\n\n" + SIGNED_CP
        t.run("proofs", lambda: verify_entry_proof(swapped, policy))

    run()


def fuzz_envelopes(t: Tally, n: int, _tmp: Path) -> None:
    seed = json.loads(ENVELOPE)

    @budget(n)
    @given(raw=hostile_bytes(ENVELOPE), doc=mutated_doc(seed), sig=mutated_doc(seed["signatures"][0]))
    def run(raw: bytes, doc: bytes, sig: bytes) -> None:
        t.run(
            "envelopes", lambda: dsse.verify(raw, [LOG_PUB, parse_verifier_key(PARTY_VKEY).public_key])
        )
        t.run("envelopes", lambda: dsse.parse(doc))
        whole = b'{"payload":"e30","payloadType":"x","signatures":[' + sig + b"]}"
        t.run("envelopes", lambda: dsse.parse(whole))

    run()


def fuzz_policies(t: Tally, n: int, _tmp: Path) -> None:
    words = st.sampled_from(
        [
            "log",
            "witness",
            "group",
            "quorum",
            "any",
            "all",
            "0",
            "1",
            "99",
            "none",
            "w1",
            "g",
            LOG_VKEY,
            W_VKEY,
            "#",
            "w1\u202e",
        ]
    )
    line = st.lists(words | st.text(max_size=10), min_size=1, max_size=5).map(" ".join)

    @budget(n)
    @given(text=mutated_text(POLICY), lines=st.lists(line, max_size=8))
    def run(text: str, lines: list[str]) -> None:
        t.run("policies", lambda: parse_policy(text))
        t.run("policies", lambda: parse_policy("\n".join(lines)))

    run()


def fuzz_acts(t: Tally, n: int, _tmp: Path) -> None:
    seeds = st.sampled_from(ACT_SEEDS)

    @budget(n)
    @given(data=st.data(), retype=st.sampled_from([None] * 8 + [*PAYLOAD_TYPES, "text/plain"]))
    def run(data: st.DataObject, retype: str | None) -> None:
        pt, seed = data.draw(seeds)
        pt = retype or pt
        payload = data.draw(mutated_doc(seed) | hostile_bytes(json.dumps(seed).encode()))
        ok = t.run("acts", lambda: read_act(pt, payload))
        if ok:
            doc = json.loads(payload)
            for fld in IDENTITY_FIELDS:
                v = doc.get(fld)
                if isinstance(v, str):
                    assert not hidden_in(v) and not v.endswith("\n"), (fld, v)
            for p in [doc.get("party"), *(doc.get("members") or [])]:
                if isinstance(p, str) and p != "secretariat":
                    assert PARTY_ID.fullmatch(p) and p.isascii(), p

    run()


def fuzz_agreements(t: Tally, n: int, _tmp: Path) -> None:
    @budget(n)
    @given(text=mutated_text(AGREEMENT) | st.sampled_from(YAML_HOSTILE), party=tricky("AAA"))
    def run(text: str, party: str) -> None:
        t.run("agreements", lambda: parse_agreement(text, "fuzz.yaml"))
        t.run("agreements", lambda: parse_agreement(AGREEMENT.replace("AAA", party), "fuzz.yaml"))

    run()


def fuzz_events(t: Tally, n: int, _tmp: Path) -> None:
    records = json.loads(EVENTS)

    @budget(n)
    @given(text=mutated_text(EVENTS), which=st.integers(0, len(records) - 1), data=st.data())
    def run(text: str, which: int, data: st.DataObject) -> None:
        t.run("events", lambda: load_events_text(text, "fuzz.json"))
        one = data.draw(mutated_doc(records[which]))
        others = [json.dumps(r) for i, r in enumerate(records) if i != which]
        lines = "\n".join([*others, one.decode("utf-8", "surrogateescape")])
        t.run("events", lambda: load_events_text(lines, "fuzz.jsonl"))

    run()


def fuzz_observations(t: Tally, n: int, tmp: Path) -> None:
    parquet = _parquet_seed()
    geo_feature = json.loads(GEOJSON)["features"][0]["properties"]
    seeds = {"csv": CSV.encode(), "geojson": GEOJSON.encode(), "parquet": parquet}

    def read(path: Path, data: bytes) -> None:
        path.write_bytes(data)
        total_rows(open_observations(path))

    @budget(n)
    @given(fmt=st.sampled_from(sorted(seeds)), data=st.data())
    def run(fmt: str, data: st.DataObject) -> None:
        raw = data.draw(hostile_bytes(seeds[fmt]))
        t.run("observations", lambda: read(tmp / f"obs.{fmt}", raw))
        if fmt == "geojson":  # structure-aware: one feature's properties mutated
            props = data.draw(mutated_doc(geo_feature)).decode("utf-8", "surrogateescape")
            doc = GEOJSON.replace(json.dumps(geo_feature), props)
            raw = doc.encode("utf-8", "surrogatepass")
            t.run("observations", lambda: read(tmp / "props.geojson", raw))
        elif fmt == "csv":  # one row's cell replaced
            row = data.draw(st.integers(1, 2))
            col = data.draw(st.integers(0, 9))
            cell = data.draw(st.sampled_from(TRICKS + RAW_JSON[3:10] + ['"', '""', ",", "1e400"]))
            lines = CSV.split("\n")
            cells = lines[row].split(",")
            cells[col] = cell
            lines[row] = ",".join(cells)
            raw = "\n".join(lines).encode("utf-8", "surrogatepass")
            t.run("observations", lambda: read(tmp / "cell.csv", raw))

    run()


# ---- the hub door --------------------------------------------------------------------------


def table_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    finally:
        conn.close()


@contextmanager
def fuzz_hub(tmp: Path) -> Any:
    from tests.hubkit import running_hub

    db = tmp / "log.db"
    hub_settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=1e6)
    with running_hub(f"sqlite:///{db}", tmp, settings=hub_settings) as th:
        th.register("AUT", "BEL")
        yield th, db


def _registry_seed() -> dict[str, Any]:
    """A registration the state would accept, for a party of the agreement not yet registered."""
    _, vkey = generate_key("che.cbmnet.test")
    _, enc = generate_encryption_key()
    return {
        "act": "party.register",
        "party": "CHE",
        "name": "Swiss Confederation",
        "agreements": [AG],
        "signing_key": vkey,
        "encryption_key": enc,
    }


FIXED_HUB_BODIES = [
    b"x" * (dsse.MAX_ENVELOPE_BYTES + 5_000),  # oversize
    b"[" * 300_000 + b"]" * 300_000,  # deep nesting, and oversize
    b'{"payload":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"payload":"' + b"\xff\xfe" * 10 + b'","payloadType":"x","signatures":[{"sig":"AA"}]}',
    b'{"payload":"e30","payloadType":"x","signatures":[{"sig":"AA","keyid":' + b"9" * 5_000 + b"}]}",
    b'{"payload":"e30","payloadType":"\\ud800","signatures":[{"sig":"AA"}]}',
    ENVELOPE.replace(b'"sig":"', b'"sig":"AAAA'),  # a signature that does not verify
]


def fuzz_hub_acts(t: Tally, n: int, tmp: Path) -> None:
    with fuzz_hub(tmp) as (th, db):
        aut = th.keys["AUT"].signer
        sec = th.secretariat.signer_key
        register = _registry_seed()
        event = dict(ACT_SEEDS[3][1], id="fz-1")
        request = dict(ACT_SEEDS[4][1], id="fz-2")
        kinds = st.sampled_from(["raw", "register", "event", "request", "vkey", "retype"])

        def check(body: bytes) -> None:
            before, size = table_counts(db), th.hub.log.size()
            parties = set(th.hub.state.parties)

            def submit() -> None:
                r = httpx.post(
                    f"{th.url}/v1/acts",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                t.statuses[r.status_code] += 1
                if r.status_code >= 500:
                    t.http_5xx += 1
                    raise AssertionError(f"{r.status_code} for {body[:200]!r}: {r.text[:200]}")
                if r.status_code >= 400:
                    assert set(r.json()) == {"error", "message"} and r.json()["message"]
                    raise FormatError(r.json()["message"])  # refused: counted as such

            ok = t.run("hub", submit)
            if not ok:
                if table_counts(db) != before or th.hub.log.size() != size:
                    t.state_changed += 1
                    raise AssertionError(f"a refused input changed the store: {body[:200]!r}")
                assert set(th.hub.state.parties) == parties
            for pid, p in th.hub.state.parties.items():  # nobody registered under a disguise
                assert PARTY_ID.fullmatch(pid) and pid.isascii(), pid
                assert not hidden_in(p.name), p.name

        for body in FIXED_HUB_BODIES:  # the hostile classics, every run
            check(body)

        @budget(n)
        @given(kind=kinds, data=st.data())
        def run(kind: str, data: st.DataObject) -> None:
            if kind == "raw":
                body = data.draw(
                    hostile_bytes(ENVELOPE)
                    | st.sampled_from([b"x" * (dsse.MAX_ENVELOPE_BYTES + 5000), b"[" * 300_000])
                )
            elif kind == "vkey":  # a signing key whose name hides a trick, key id correct
                name = data.draw(tricky("che.cbmnet.test").filter(lambda s: "+" not in s))
                pub = parse_verifier_key(register["signing_key"]).public_key
                try:
                    kid = key_id(name, ALG_ED25519, pub)
                except UnicodeEncodeError:
                    kid = 0
                doc = dict(register, signing_key=f"{name}+{kid:08x}+{b64(bytes([1]) + pub)}")
                body = dsse.sign(PT_REGISTRY, json.dumps(doc).encode("utf-8", "surrogatepass"), [sec])
            else:
                pt, seed, key = {
                    "register": (PT_REGISTRY, register, sec),
                    "event": (PT_EVENT, event, aut),
                    "request": (PT_EVENT, request, aut),
                    "retype": (data.draw(st.sampled_from(PAYLOAD_TYPES)), event, aut),
                }[kind]
                payload = data.draw(mutated_doc(seed, {"party": "AUT" if key is aut else "CHE"}))
                body = dsse.sign(pt, payload, [key])
            check(body)

        run()


DOORS: dict[str, Callable[[Tally, int, Path], None]] = {
    "notes": fuzz_notes,
    "keys": fuzz_keys,
    "checkpoints": fuzz_checkpoints,
    "proofs": fuzz_proofs,
    "envelopes": fuzz_envelopes,
    "policies": fuzz_policies,
    "acts": fuzz_acts,
    "agreements": fuzz_agreements,
    "events": fuzz_events,
    "observations": fuzz_observations,
    "hub": fuzz_hub_acts,
}
CI_EXAMPLES = {"observations": 150, "hub": 150, "agreements": 150}
"""Examples per door here; the rest run 300 (bench/fuzz.py runs many more)."""


@pytest.mark.parametrize("door", sorted(DOORS))
def test_bad_input_at_every_door(door: str) -> None:
    t = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        DOORS[door](t, CI_EXAMPLES.get(door, 300), Path(tmp))
    assert t.crashes == [] and t.http_5xx == 0 and t.state_changed == 0
    assert t.tried[door] > 0 and t.rejected[door] > 0
    if door == "hub":  # hostile input got past the envelope to the act reader and the state
        assert t.statuses[400] and t.statuses[413], t.statuses


# ---- regressions: what the fuzzing found ----------------------------------------------------


def _act(pt: str, seed: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**seed, **changes}).encode()


@pytest.mark.parametrize(
    ("seed", "fld", "value"),
    [
        (3, "party", "AUT\n"),  # `$` matched before a trailing newline
        (3, "id", "act-1\n"),  # an event id rendering like another
        (3, "agreement", AG + "\n"),
        (5, "statement", "ab" * 32 + "\n"),
        (6, "channel", "aut-bel\n"),
        (8, "sha256", "00" * 32 + "\n"),
        (0, "party", "AUT\u202e"),
        (0, "party", "\u0410UT"),  # Cyrillic A
        (0, "name", "Republic of Austria\u202e"),
        (0, "name", "Aus\u200btria"),
        (0, "name", "Austria\ufeff"),
        (0, "name", "Austria\x85"),
        (0, "signing_key", "aut\u202e.cbmnet.test" + PARTY_VKEY[len("aut.cbmnet.test") :]),
    ],
)
def test_tricky_identities_are_refused_with_the_field(seed: int, fld: str, value: str) -> None:
    pt, doc = ACT_SEEDS[seed]
    with pytest.raises(FormatError, match=fld):
        read_act(pt, _act(pt, doc, **{fld: value}))


@pytest.mark.parametrize("name", ["جمهورية مصر العربية", "भारत गणराज्य", "Österreich", "Ελλάδα", "中国"])
def test_display_names_may_be_in_any_script(name: str) -> None:
    for form in (unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)):
        assert read_act(PT_REGISTRY, _act(PT_REGISTRY, ACT_SEEDS[0][1], name=form)).doc["name"] == form


@pytest.mark.parametrize("trick", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u00ad", "\x85"])
def test_key_names_with_format_or_control_characters_are_refused(trick: str) -> None:
    name = f"aut{trick}.cbmnet.test"
    assert not is_valid_name(name)
    with pytest.raises(FormatError, match="key name"):
        generate_key(name)
    pub = LOG_PUB
    vkey = f"{name}+{key_id(name, ALG_ED25519, pub):08x}+{b64(bytes([ALG_ED25519]) + pub)}"
    with pytest.raises(FormatError, match="invalid key name"):
        parse_verifier_key(vkey)
    assert is_valid_name("ключ.example") and is_valid_name("e\u0301.example")  # scripts are fine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]", "refers to itself"),
        ("&a {x: *a}", "refers to itself"),
        (YAML_HOSTILE[2], "aliases expanded"),
    ],
)
def test_agreement_alias_loops_and_bombs_are_refused(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_agreement(text, "bomb.yaml")


def test_a_registration_in_disguise_changes_nothing(tmp_path: Path) -> None:
    """RLO, a trailing newline or a Cyrillic letter in a party id, or a RLO in the
    display name: 400, and the store is as it was."""
    with fuzz_hub(tmp_path) as (th, db):
        register = _registry_seed()
        for changes in (
            {"party": "CHE\u202e"},
            {"party": "CHE\n"},
            {"party": "\u0421HE"},
            {"name": "Swiss\u202e Confederation"},
            {"name": "Swiss\u200b Confederation"},
        ):
            before, size = table_counts(db), th.hub.log.size()
            body = dsse.sign(
                PT_REGISTRY, _act(PT_REGISTRY, register, **changes), [th.secretariat.signer_key]
            )
            r = httpx.post(
                f"{th.url}/v1/acts", content=body, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 400, (changes, r.text)
            assert table_counts(db) == before and th.hub.log.size() == size
        assert set(th.hub.state.parties) == {"AUT", "BEL"}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[16.3, 48.2]", "[1" + "0" * 400 + ", 48.2]", "'lon': is out of range"),
        ('"confidence": 0.9', '"confidence": 1' + "0" * 400, "'confidence': is out of range"),
        ('"count": 3', '"count": -1' + "0" * 400, "'count': a huge negative is not an integer >= 1"),
    ],
)
def test_geojson_numbers_past_float_or_int64_are_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Were OverflowError (bench/fuzz.py found them): a JSON integer of 400 digits."""
    path = tmp_path / "big.geojson"
    path.write_text(GEOJSON.replace(old, new))
    with pytest.raises(FormatError, match=message):
        total_rows(open_observations(path))


def test_a_csv_header_past_the_field_limit_is_refused(tmp_path: Path) -> None:
    """Was _csv.Error: a quoted header name longer than the csv module's field limit."""
    path = tmp_path / "wide.csv"
    path.write_text('"' + "A" * 300_000 + '"\n')
    with pytest.raises(FormatError, match="header"):
        total_rows(open_observations(path))
