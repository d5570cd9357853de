"""The acts a hub logs, read from a DSSE payload with no state at hand.

Each act is a JSON object under one of five payload types. Reading checks shape, sizes
and vocabulary and names the field at fault; what depends on earlier acts (is the party
registered, does the request exist) is :mod:`cbmnet.acts.state`'s job.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from cbmnet.communication.hotline import PRECEDENCES, SUITE_NAME
from cbmnet.compliance.events import parse_event
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import FormatError, TooLargeError
from cbmnet.ledger.note import check_public_key, parse_verifier_key

PT_REGISTRY = "application/vnd.cbmnet.registry+json"
PT_EVENT = "application/vnd.cbmnet.event+json"
PT_ACK = "application/vnd.cbmnet.ack+json"
PT_HOTLINE = "application/vnd.cbmnet.hotline+json"
PT_HUB = "application/vnd.cbmnet.hub+json"
PT_OBSERVATIONS = "application/vnd.cbmnet.observations+json"
PAYLOAD_TYPES = (PT_REGISTRY, PT_EVENT, PT_ACK, PT_HOTLINE, PT_HUB, PT_OBSERVATIONS)

OBSERVATION_FORMATS = ("csv", "geojson", "parquet")
MAX_BATCH_BYTES = 64 << 20
"""One batch of sensor observations, as uploaded beside its logged act."""

SECRETARIAT = "secretariat"
"""The author id of the hub operator's own acts (registrations, communication checks)."""
HUB = "hub"
"""The author id of what the hub service states itself (a missed deadline)."""

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BODY_CHARS = 64 * 1024
MAX_CIPHERTEXT_CHARS = 32 * 1024
MAX_MEMBERS = 200
MAX_CONTACT_FIELDS = 20

PARTY_ID = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}\Z")
LOCAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
CHANNEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")

REGISTRY_ACTS = ("party.register", "key.rotate", "key.revoke", "key.approve")
KEY_CHANGERS = ("recovery", "quorum")
"""Besides the party itself, who may sign a change of its keys (docs/adr/0007); never the
secretariat."""
HOTLINE_ACTS = ("channel.open", "hotline.message")
HUB_ACTS = ("hotline.no_answer", "obligation.overdue", "check.result")


@dataclass(frozen=True)
class Act:
    """One act as read: ``author`` is who must have signed it (a party id, SECRETARIAT, HUB)."""

    payload_type: str
    kind: str
    author: str
    doc: dict[str, Any]


class _Fields:
    def __init__(self, doc: dict[str, Any], what: str) -> None:
        self.doc = doc
        self.what = what

    def fail(self, fld: str, msg: str) -> FormatError:
        return FormatError(f"{self.what}, field {fld!r}: {msg}")

    def str_(self, fld: str, pattern: re.Pattern[str] | None = None, limit: int = 256) -> str:
        v = self.doc.get(fld)
        if v is None:
            raise self.fail(fld, "missing")
        if not isinstance(v, str) or not v:
            raise self.fail(fld, "must be a non-empty string")
        if len(v) > limit:
            raise self.fail(fld, f"longer than {limit} characters")
        if pattern is not None and not pattern.match(v):
            raise self.fail(fld, f"{v[:40]!r} does not match {pattern.pattern}")
        return v

    def opt_str(self, fld: str, pattern: re.Pattern[str] | None = None, limit: int = 256) -> str | None:
        return None if self.doc.get(fld) is None else self.str_(fld, pattern, limit)

    def enum(self, fld: str, allowed: tuple[str, ...]) -> str:
        v = self.str_(fld)
        if v not in allowed:
            raise self.fail(fld, f"{v[:40]!r} is not one of {', '.join(allowed)}")
        return v

    def index(self, fld: str) -> int:
        v = self.doc.get(fld)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
            raise self.fail(fld, "must be a log index (an integer >= 0)")
        return v

    def parties(self, fld: str, minimum: int = 1) -> tuple[str, ...]:
        v = self.doc.get(fld)
        if not isinstance(v, list) or not minimum <= len(v) <= MAX_MEMBERS:
            raise self.fail(fld, f"must be a list of {minimum} to {MAX_MEMBERS} party ids")
        for p in v:
            if not isinstance(p, str) or not PARTY_ID.match(p):
                raise self.fail(fld, f"{str(p)[:40]!r} is not a party id")
        if len(set(v)) != len(v):
            raise self.fail(fld, "lists a party twice")
        return tuple(v)

    def signing_key(self, fld: str) -> bytes:
        """A party's Ed25519 key as a note verifier key (``name+id+base64``)."""
        text = self.str_(fld, limit=512)
        try:
            vk = parse_verifier_key(text)
        except FormatError as e:
            raise self.fail(fld, str(e)) from None
        if vk.alg != 0x01:
            raise self.fail(fld, "must be an Ed25519 (type 0x01) verifier key")
        return vk.public_key

    def encryption_key(self, fld: str) -> bytes:
        text = self.str_(fld, limit=64)
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raise self.fail(fld, "not standard base64") from None
        if len(raw) != 32 or raw == bytes(32):
            raise self.fail(fld, "must be a 32-byte X25519 public key")
        return raw


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise TooLargeError(f"{what}: payload of {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, absurd nesting or numbers
        raise FormatError(f"{what}: payload is not JSON ({str(e)[:200]})") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{what}: payload must be a JSON object")
    return doc


def read_act(payload_type: str, payload: bytes) -> Act:
    """Read and check one act's payload; the author is who it says must have signed."""
    if payload_type not in PAYLOAD_TYPES:
        raise FormatError(f"payloadType {payload_type[:80]!r} is not one of {', '.join(PAYLOAD_TYPES)}")
    what = payload_type.removeprefix("application/vnd.cbmnet.").removesuffix("+json") + " act"
    doc = _json_object(payload, what)
    f = _Fields(doc, what)
    if payload_type == PT_EVENT:
        return _read_event(doc, f)
    kind = f.str_("act", limit=64)
    f.what = f"{what} {kind!r}"
    if payload_type == PT_REGISTRY:
        return _read_registry(kind, doc, f)
    if payload_type == PT_ACK:
        if kind != "ack":
            raise f.fail("act", "must be 'ack'")
        f.index("entry")
        f.opt_str("statement", re.compile(r"^[0-9a-f]{64}\Z"))
        return Act(payload_type, kind, f.str_("party", PARTY_ID), doc)
    if payload_type == PT_HOTLINE:
        return _read_hotline(kind, doc, f)
    if payload_type == PT_OBSERVATIONS:
        return _read_observations(kind, doc, f)
    if kind not in HUB_ACTS:
        raise f.fail("act", f"is not one of {', '.join(HUB_ACTS)}")
    return Act(payload_type, kind, HUB, doc)


def _read_registry(kind: str, doc: dict[str, Any], f: _Fields) -> Act:
    if kind not in REGISTRY_ACTS:
        raise f.fail("act", f"is not one of {', '.join(REGISTRY_ACTS)}")
    party = f.str_("party", PARTY_ID)
    if kind == "party.register":
        _shown_text(f, "name", f.str_("name", limit=200))
        agreements = doc.get("agreements")
        if not isinstance(agreements, list) or not 1 <= len(agreements) <= 50:
            raise f.fail("agreements", "must be a list of 1 to 50 agreement ids")
        for a in agreements:
            if not isinstance(a, str) or not re.match(r"^[a-z0-9][a-z0-9-]{0,127}\Z", a):
                raise f.fail("agreements", f"{str(a)[:40]!r} is not an agreement id")
        check_public_key(f.signing_key("signing_key"), f"{f.what}, field 'signing_key'")
        f.encryption_key("encryption_key")
        if doc.get("witness_key") is not None:
            _cosigner_key(f)
        if doc.get("recovery_key") is not None:
            _recovery_key(f, doc)
        contact = doc.get("contact", {})
        if not isinstance(contact, dict) or len(contact) > MAX_CONTACT_FIELDS:
            raise f.fail("contact", f"must be an object of at most {MAX_CONTACT_FIELDS} fields")
        for k, v in contact.items():
            if not isinstance(v, str) or len(k) > 64 or len(v) > 500:
                raise f.fail("contact", f"field {k[:40]!r} must be a string of at most 500 characters")
        return Act(PT_REGISTRY, kind, SECRETARIAT, doc)
    if kind == "key.approve":
        # Another party vouches for the exact keys a party that lost both of its keys
        # installs by quorum; the approver is the author.
        target = f.str_("for", PARTY_ID)
        if target == party:
            raise f.fail("for", "a party does not approve its own recovery")
        _new_keys(f, doc)
        f.opt_str("reason", limit=1000)
        return Act(PT_REGISTRY, kind, party, doc)
    by = f.str_("by")
    if by == SECRETARIAT:
        raise f.fail(
            "by",
            "the secretariat registers parties but never changes their keys; the party "
            "signs with its current key, its recovery key, or after a quorum of approvals",
        )
    allowed = (party, *KEY_CHANGERS) if kind == "key.rotate" else (party, KEY_CHANGERS[0])
    if by not in allowed:
        raise f.fail("by", f"must be one of {', '.join(map(repr, allowed))}")
    if kind == "key.rotate":
        _new_keys(f, doc)
    else:
        f.signing_key("key")
        f.opt_str("reason", limit=1000)
    # The party is the author whichever key signed: the registry says which keys may.
    return Act(PT_REGISTRY, kind, party, doc)


def _new_keys(f: _Fields, doc: dict[str, Any]) -> None:
    """The keys a rotation (or an approval of one) installs: signing, and optionally the rest."""
    check_public_key(f.signing_key("signing_key"), f"{f.what}, field 'signing_key'")
    if doc.get("encryption_key") is not None:
        f.encryption_key("encryption_key")
    if doc.get("witness_key") is not None:
        _cosigner_key(f)
    if doc.get("recovery_key") is not None:
        _recovery_key(f, doc)


def _recovery_key(f: _Fields, doc: dict[str, Any]) -> None:
    key = f.signing_key("recovery_key")
    check_public_key(key, f"{f.what}, field 'recovery_key'")
    if doc.get("signing_key") is not None and key == f.signing_key("signing_key"):
        raise f.fail("recovery_key", "must differ from the signing key (it is kept offline)")


def _shown_text(f: _Fields, fld: str, v: str) -> None:
    """Text people read (a display name): any script, but no control or format characters.

    Bidi overrides, zero-width characters and other Cc/Cf code points make one name render
    like another (or reorder what follows it); lone surrogates are not Unicode at all.
    """
    for i, c in enumerate(v):
        if unicodedata.category(c) in ("Cc", "Cf", "Cs"):
            raise f.fail(fld, f"control or format character U+{ord(c):04X} at position {i}")


def _cosigner_key(f: _Fields) -> None:
    text = f.str_("witness_key", limit=512)
    try:
        vk = parse_verifier_key(text)
    except FormatError as e:
        raise f.fail("witness_key", str(e)) from None
    if vk.alg != 0x04:
        raise f.fail("witness_key", "must be a cosigner (type 0x04) verifier key")


def _sealed(sealed: Any, f: _Fields) -> None:
    """``{"suite": ..., "ciphertexts": {party: base64}}``: the body sealed to each reader."""
    if not isinstance(sealed, dict) or set(sealed) != {"suite", "ciphertexts"}:
        raise f.fail("sealed_body", 'must be {"suite": ..., "ciphertexts": {party: base64}}')
    if sealed["suite"] != SUITE_NAME:
        raise f.fail("sealed_body", f"suite must be {SUITE_NAME!r}")
    cts = sealed["ciphertexts"]
    if not isinstance(cts, dict) or not 1 <= len(cts) <= MAX_MEMBERS:
        raise f.fail("sealed_body", f"ciphertexts: 1 to {MAX_MEMBERS} {{party: base64}}")
    for p, ct in cts.items():
        if p != SECRETARIAT and not PARTY_ID.match(p):
            raise f.fail("sealed_body", f"ciphertexts: {p[:40]!r} is not a party id")
        if not isinstance(ct, str) or not 0 < len(ct) <= MAX_CIPHERTEXT_CHARS:
            raise f.fail("sealed_body", f"{p[:40]!r}: a base64 string of at most {MAX_CIPHERTEXT_CHARS}")
        try:
            base64.b64decode(ct, validate=True)
        except ValueError:
            raise f.fail("sealed_body", f"{p[:40]!r}: not standard base64") from None


def _read_event(doc: dict[str, Any], f: _Fields) -> Act:
    f.what = "event"
    f.str_("agreement", re.compile(r"^[a-z0-9][a-z0-9-]{0,127}\Z"))
    f.str_("id", LOCAL_ID)
    f.what = f"event {doc['id']!r}"
    party = f.str_("party")
    if party != SECRETARIAT and not PARTY_ID.match(party):
        raise f.fail("party", f"{party[:40]!r} is not a party id")
    f.opt_str("body", limit=MAX_BODY_CHARS)
    if doc.get("sealed_body") is not None:
        if "body" in doc:
            raise f.fail("sealed_body", "an event carries a body or a sealed body, not both")
        _sealed(doc["sealed_body"], f)
    amends = doc.get("amends")
    if amends is not None:
        if not isinstance(amends, dict):
            raise f.fail("amends", 'must be {"id": ..., "action": "correct" | "withdraw"}')
        g = _Fields(amends, f"{f.what}, field 'amends'")
        g.str_("id", LOCAL_ID)
        g.enum("action", ("correct", "withdraw"))
    # The hub sets ``time`` to the log's integration time; any value sent is replaced.
    probe = dict(doc)
    probe["time"] = format_time(0)
    parse_event(probe, f.what)
    return Act(PT_EVENT, str(doc["type"]), party, doc)


def _read_hotline(kind: str, doc: dict[str, Any], f: _Fields) -> Act:
    if kind not in HOTLINE_ACTS:
        raise f.fail("act", f"is not one of {', '.join(HOTLINE_ACTS)}")
    party = f.str_("party")
    if party != SECRETARIAT and not PARTY_ID.match(party):
        raise f.fail("party", f"{party[:40]!r} is not a party id")
    f.str_("channel", CHANNEL_ID)
    if kind == "channel.open":
        f.str_("agreement")
        f.parties("members", minimum=2)
        return Act(PT_HOTLINE, kind, party, doc)
    f.str_("id", LOCAL_ID)
    f.enum("precedence", PRECEDENCES)
    if f.str_("suite") != SUITE_NAME:
        raise f.fail("suite", f"must be {SUITE_NAME!r}")
    cts = doc.get("ciphertexts")
    if not isinstance(cts, dict) or not 1 <= len(cts) <= MAX_MEMBERS:
        raise f.fail("ciphertexts", "must be an object {party: base64 HPKE ciphertext}")
    for p, ct in cts.items():
        if not isinstance(ct, str) or not 0 < len(ct) <= MAX_CIPHERTEXT_CHARS:
            raise f.fail("ciphertexts", f"{p[:40]!r}: a base64 string of at most {MAX_CIPHERTEXT_CHARS}")
        try:
            base64.b64decode(ct, validate=True)
        except ValueError:
            raise f.fail("ciphertexts", f"{p[:40]!r}: not standard base64") from None
    if "body" in doc or "text" in doc:
        raise f.fail("body", "a hotline message carries ciphertext only")
    return Act(PT_HOTLINE, kind, party, doc)


def _read_observations(kind: str, doc: dict[str, Any], f: _Fields) -> Act:
    """A provider's signed statement about one batch of observations: its hash and shape.

    The rows travel beside the act (uploaded after it); the log holds the SHA-256, so
    anyone can check a batch they fetch against what its provider signed.
    """
    if kind != "observations.batch":
        raise f.fail("act", "must be 'observations.batch'")
    party = f.str_("party")
    if party != SECRETARIAT and not PARTY_ID.match(party):
        raise f.fail("party", f"{party[:40]!r} is not a party id")
    f.str_("agreement", re.compile(r"^[a-z0-9][a-z0-9-]{0,127}\Z"))
    f.str_("batch", LOCAL_ID)
    f.str_("sha256", re.compile(r"^[0-9a-f]{64}\Z"))
    f.enum("format", OBSERVATION_FORMATS)
    size = doc.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BATCH_BYTES:
        raise f.fail("bytes", f"must be the file's size, 1 to {MAX_BATCH_BYTES}")
    rows = doc.get("rows")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise f.fail("rows", "must be a row count >= 0")
    for fld in ("start", "end"):
        if doc.get(fld) is not None:
            f.str_(fld, limit=40)
    return Act(PT_OBSERVATIONS, kind, party, doc)
