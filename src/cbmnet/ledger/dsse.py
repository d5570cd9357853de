"""DSSE v1 envelopes (secure-systems-lab/dsse): every act in cbmnet is one.

Signatures cover ``PAE(payloadType, payload)``, never the bare payload or the JSON, so the
envelope's JSON may be re-serialised (``canonical``) without touching what was signed.
``keyid`` is a hint only: verification tries every given key against every signature.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger.note import check_public_key, parse_signer_key

MAX_ENVELOPE_BYTES = 1 << 20
"""Largest envelope accepted (JSON bytes): sensor batches are logged by hash, not inline."""
MAX_SIGNATURES = 32
MAX_PAYLOAD_TYPE = 256


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope; after ``verify``, ``verified_keys`` lists the keys that signed."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]
    verified_keys: tuple[bytes, ...] = ()
    verified_signatures: tuple[Signature, ...] = ()
    """After ``verify``: the signatures that verified, one per key, in envelope order."""
    logged: bytes = field(default=b"", repr=False, compare=False)
    digest: bytes = field(default=b"", repr=False, compare=False)
    """After ``verify``: ``logged_form()`` and ``statement_digest()``, computed by the
    verifying thread so the log's one writer does not (issue 17: appends across cores)."""

    def canonical(self) -> bytes:
        """The one JSON form cbmnet writes: sorted keys, no spaces, standard base64."""
        return _dump(self.payload_type, self.payload, self.signatures)

    def logged_form(self) -> bytes:
        """What the log stores: the canonical form with only the signatures that verified.

        Unverified signatures (with keyid hints naming anyone) never enter the record.
        """
        if not self.verified_signatures:
            raise FormatError("DSSE envelope: not verified; nothing to log")
        return self.logged or _dump(self.payload_type, self.payload, self.verified_signatures)

    def statement_digest(self) -> bytes:
        """SHA-256 of the PAE: what the signatures cover, whoever signed it."""
        return self.digest or hashlib.sha256(pae(self.payload_type, self.payload)).digest()


def _dump(payload_type: str, payload: bytes, sigs: Sequence[Signature]) -> bytes:
    # Written out rather than json.dumps(sort_keys=True): the same bytes, three times
    # faster, and this runs on every append. Keys in sorted order, no spaces.
    signatures = ",".join(
        f'{{"keyid":{_json_str(s.keyid)},"sig":"{base64.b64encode(s.sig).decode()}"}}' for s in sigs
    )
    body = base64.b64encode(payload).decode()
    return (
        f'{{"payload":"{body}","payloadType":{_json_str(payload_type)},"signatures":[{signatures}]}}'
    ).encode()


_json_str: Any = json.encoder.encode_basestring


PrivateKeyLike = Ed25519PrivateKey | str | bytes
"""An Ed25519 private key, a note signer key string, or a raw 32-byte seed."""


def _private(key: PrivateKeyLike) -> tuple[Ed25519PrivateKey, str]:
    if isinstance(key, Ed25519PrivateKey):
        raw = key.public_key().public_bytes_raw()
        return key, hashlib.sha256(raw).hexdigest()[:16]
    if isinstance(key, str):
        k = parse_signer_key(key)
        # The note vkey's name+id is the natural hint; it is never trusted.
        return k.private_key, "+".join(k.verifier_key.split("+")[:2])
    if isinstance(key, bytes) and len(key) == 32:
        return _private(Ed25519PrivateKey.from_private_bytes(key))
    raise FormatError("DSSE signing key: expected an Ed25519 key, a signer key or a 32-byte seed")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FormatError(f"DSSE envelope: {what} is not valid Unicode (lone surrogate)") from e


def _check_type(payload_type: str) -> None:
    if not payload_type or len(_utf8(payload_type, "payloadType")) > MAX_PAYLOAD_TYPE:
        raise FormatError(f"DSSE payloadType must be 1..{MAX_PAYLOAD_TYPE} bytes")


def sign(payload_type: str, payload: bytes, private_keys: Sequence[PrivateKeyLike]) -> bytes:
    """Sign ``payload`` with each key; returns the envelope's JSON bytes."""
    _check_type(payload_type)
    if not private_keys:
        raise FormatError("DSSE: at least one signing key is needed")
    if len(private_keys) > MAX_SIGNATURES:
        raise FormatError(f"DSSE: at most {MAX_SIGNATURES} signatures")
    message = pae(payload_type, payload)
    sigs = []
    for k in private_keys:
        priv, hint = _private(k)
        sigs.append(Signature(hint, priv.sign(message)))
    return _dump(payload_type, payload, sigs)


def _b64any(value: object, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not, as DSSE requires verifiers to accept."""
    if not isinstance(value, str):
        raise FormatError(f"DSSE envelope: {what} must be a base64 string")
    try:  # the common case, standard and padded, in one C call
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    s = value
    if "-" in s or "_" in s:
        if "+" in s or "/" in s:
            raise FormatError(f"DSSE envelope: {what} mixes base64 alphabets")
        s = s.replace("-", "+").replace("_", "/")
    s = s.rstrip("=")
    if len(s) % 4 == 1:
        raise FormatError(f"DSSE envelope: {what} is not valid base64")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"DSSE envelope: {what} is not valid base64") from e


_CANONICAL = re.compile(
    rb'\{"payload":"([A-Za-z0-9+/]*={0,2})","payloadType":"([^"\\\x00-\x1f]{1,256})",'
    rb'"signatures":\[\{"keyid":"([^"\\\x00-\x1f]{0,256})","sig":"([A-Za-z0-9+/]*={0,2})"\}\]\}'
)
"""An envelope in the one form cbmnet writes (``canonical``), with one signature and no
JSON escape anywhere: the form every act reaches the log's writer in."""


def _parse_canonical(raw: bytes) -> tuple[Envelope, bool] | None:
    """The envelope ``parse`` reads from ``raw``, if ``raw`` has the one form cbmnet
    writes, without building its JSON document first (a third of an append's own work
    besides verifying; issue 17), and whether ``raw`` is byte for byte its ``canonical``
    form. None: the general reading decides. No escapes and no control characters, so
    each string is its bytes read as UTF-8."""
    m = _CANONICAL.fullmatch(raw)
    if m is None:
        return None
    try:
        ptype, keyid = m[2].decode(), m[3].decode()
        payload = binascii.a2b_base64(m[1], strict_mode=True)
        sig = binascii.a2b_base64(m[4], strict_mode=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return None  # the general reading names what is wrong
    _check_type(ptype)
    exact = base64.b64encode(payload) == m[1] and base64.b64encode(sig) == m[4]
    return Envelope(ptype, payload, (Signature(keyid, sig),)), exact


def parse(envelope: bytes | str) -> Envelope:
    """Parse an envelope's JSON strictly; no signature is checked."""
    raw = envelope.encode() if isinstance(envelope, str) else envelope
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise FormatError(f"DSSE envelope: larger than {MAX_ENVELOPE_BYTES} bytes")
    fast = _parse_canonical(raw)
    if fast is not None:
        return fast[0]
    try:
        doc: Any = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge integers
        raise FormatError(f"DSSE envelope: not JSON ({e})") from e
    if not isinstance(doc, dict):
        raise FormatError("DSSE envelope: must be a JSON object")
    for key in ("payload", "payloadType", "signatures"):
        if key not in doc:
            raise FormatError(f"DSSE envelope: missing field {key!r}")
    ptype = doc["payloadType"]
    if not isinstance(ptype, str):
        raise FormatError("DSSE envelope: payloadType must be a string")
    _check_type(ptype)
    payload = _b64any(doc["payload"], "payload")
    sigs_doc = doc["signatures"]
    if not isinstance(sigs_doc, list) or not sigs_doc:
        raise FormatError("DSSE envelope: signatures must be a non-empty list")
    if len(sigs_doc) > MAX_SIGNATURES:
        raise FormatError(f"DSSE envelope: more than {MAX_SIGNATURES} signatures")
    sigs = []
    for i, s in enumerate(sigs_doc):
        if not isinstance(s, dict) or "sig" not in s:
            raise FormatError(f"DSSE envelope: signature {i} has no 'sig'")
        keyid = s.get("keyid", "")
        if not isinstance(keyid, str) or len(keyid) > 256:
            raise FormatError(f"DSSE envelope: signature {i} keyid must be a short string")
        _utf8(keyid, f"signature {i} keyid")
        sigs.append(Signature(keyid, _b64any(s["sig"], f"signature {i}")))
    return Envelope(ptype, payload, tuple(sigs))


@functools.lru_cache(maxsize=1024)
def _public(key: bytes) -> Ed25519PublicKey:
    if not isinstance(key, bytes) or len(key) != 32:
        raise FormatError("DSSE verification key: expected a raw 32-byte Ed25519 public key")
    check_public_key(key, "DSSE verification key")
    return Ed25519PublicKey.from_public_bytes(key)


def _verified_by(
    env: Envelope, public_keys: Sequence[bytes], message: bytes | None = None
) -> tuple[tuple[bytes, ...], tuple[Signature, ...]]:
    message = message or pae(env.payload_type, env.payload)
    good: list[bytes] = []
    sigs: list[int] = []
    for raw in dict.fromkeys(public_keys) if len(public_keys) > 1 else public_keys:
        pub = _public(raw)
        for n, s in enumerate(env.signatures):
            if len(s.sig) != 64 or n in sigs:
                continue
            try:
                pub.verify(s.sig, message)
            except InvalidSignature:
                continue
            good.append(raw)
            sigs.append(n)
            break
    return tuple(good), tuple(env.signatures[n] for n in sorted(sigs))


def verify(envelope: bytes | str, public_keys: Sequence[bytes]) -> Envelope:
    """Parse and verify: succeeds when any signature verifies under any given key."""
    return verify_threshold(envelope, public_keys, 1)


def verify_threshold(envelope: bytes | str, public_keys: Sequence[bytes], threshold: int) -> Envelope:
    """Succeeds when at least ``threshold`` distinct given keys each verify a signature.

    For acts several parties must make together ("k of these n"); each key counts once,
    however many signatures it made (TUF's rule).
    """
    if threshold < 1:
        raise FormatError("DSSE threshold must be at least 1")
    raw = envelope.encode() if isinstance(envelope, str) else envelope
    fast = _parse_canonical(raw) if len(raw) <= MAX_ENVELOPE_BYTES else None
    env, exact = fast if fast is not None else (parse(raw), False)
    message = pae(env.payload_type, env.payload)
    good, sigs = _verified_by(env, public_keys, message)
    if len(good) < threshold:
        if threshold == 1:
            raise VerificationError("DSSE envelope: no signature verifies under the given keys")
        raise VerificationError(f"DSSE envelope: {len(good)} of the required {threshold} keys signed")
    # Its one signature verified and ``raw`` is its canonical form: that is what is logged.
    logged = raw if exact and len(sigs) == 1 else _dump(env.payload_type, env.payload, sigs)
    object.__setattr__(env, "verified_keys", good)  # env is ours alone: fill in, not copy
    object.__setattr__(env, "verified_signatures", sigs)
    object.__setattr__(env, "logged", logged)
    object.__setattr__(env, "digest", hashlib.sha256(message).digest())
    return env
