"""C2SP signed notes (c2sp.org/signed-note) and Ed25519 cosignatures (c2sp.org/tlog-cosignature).

Keys use the text encodings of Go's ``golang.org/x/mod/sumdb/note`` so that the log's and
the witnesses' keys can be handed to outside tools unchanged:

* verifier key: ``name+hexid+base64(type || public key)``
* signer key:   ``PRIVATE+KEY+name+hexid+base64(type || seed)``
* key id:       ``SHA-256(name || 0x0A || type || public key)[:4]``

One Ed25519 signer key serves both roles: as a note signer (type 0x01) and, through
``new_cosigner``, as a cosigner (type 0x04), whose key id and verifier key differ, so a
verifier of the one never accepts the other's signatures.
"""

from __future__ import annotations

import hashlib
import struct
import time as _time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger.encoding import b64, unb64

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100
"""Signature lines read from one note; the spec asks verifiers to accept at least 16."""
MAX_NOTE_BYTES = 1 << 20

_SIG_PREFIX = "\u2014 "  # em dash, space


_P = 2**255 - 19
_SMALL_ORDER_Y = frozenset(
    {
        0,
        1,
        _P - 1,
        # y of the points of order 8 (libsodium's blocklist; checked in tests/test_note.py)
        int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
            "little",
        ),
        int.from_bytes(
            bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            "little",
        ),
    }
)


def check_public_key(raw: bytes, what: str) -> None:
    """Refuse Ed25519 public keys of small order or in non-canonical encoding.

    Under such a key a signature can verify for any message (the identity point accepts
    R = identity, S = 0), so whoever registered it could deny its acts and anyone could
    forge them.
    """
    if len(raw) != 32:
        raise FormatError(f"{what}: an Ed25519 public key is 32 bytes")
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P or y in _SMALL_ORDER_Y:
        raise FormatError(f"{what}: a weak Ed25519 key (small order or non-canonical)")


def is_valid_name(name: str) -> bool:
    """Key names: non-empty, no whitespace, no '+', no control or format characters.

    Format characters (Unicode category Cf: bidi overrides, zero-width spaces and joiners,
    the BOM) are refused too, so that no key name can render like another.
    """
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name)
    )


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """``SHA-256(name || "\\n" || alg || public key)[:4]`` as a big-endian integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _verifier_text(name: str, alg: int, public_key: bytes) -> str:
    return f"{name}+{key_id(name, alg, public_key):08x}+{b64(bytes([alg]) + public_key)}"


def generate_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key: ``(signer key, verifier key)`` in the note encodings."""
    if not is_valid_name(name):
        raise FormatError(
            f"key name {name!r}: must be non-empty, without spaces, '+', control or format characters"
        )
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    pub = _raw_public(private)
    kid = key_id(name, ALG_ED25519, pub)
    skey = f"PRIVATE+KEY+{name}+{kid:08x}+{b64(bytes([ALG_ED25519]) + seed)}"
    return skey, _verifier_text(name, ALG_ED25519, pub)


@dataclass(frozen=True)
class SignerKey:
    """A parsed signer key: its name and Ed25519 private key."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return _raw_public(self.private_key)

    @property
    def verifier_key(self) -> str:
        """The type-0x01 verifier key (note signatures, DSSE)."""
        return _verifier_text(self.name, ALG_ED25519, self.public_key)

    @property
    def cosigner_verifier_key(self) -> str:
        """The type-0x04 verifier key of the same key acting as a cosigner."""
        return _verifier_text(self.name, ALG_COSIGNATURE_V1, self.public_key)


def parse_signer_key(skey: str) -> SignerKey:
    """Parse ``PRIVATE+KEY+name+hexid+base64(0x01 || seed)``; checks the key id."""
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise FormatError("signer key: expected PRIVATE+KEY+name+hexid+base64")
    _, _, name, hexid, data = parts
    if not is_valid_name(name):
        raise FormatError(f"signer key: invalid key name {name!r}")
    raw = unb64(data, "signer key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise FormatError("signer key: expected an Ed25519 seed (type 0x01, 32 bytes)")
    private = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if _parse_hexid(hexid, "signer key") != key_id(name, ALG_ED25519, _raw_public(private)):
        raise FormatError(f"signer key {name}: key id does not match the key")
    return SignerKey(name, private)


def _parse_hexid(hexid: str, what: str) -> int:
    if len(hexid) != 8 or any(c not in "0123456789abcdef" for c in hexid):
        raise FormatError(f"{what}: key id must be 8 lowercase hex digits, got {hexid!r}")
    return int(hexid, 16)


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key."""

    name: str
    key_id: int
    alg: int
    public_key: bytes

    @property
    def text(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64(bytes([self.alg]) + self.public_key)}"


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse ``name+hexid+base64(type || public key)``; only types 0x01 and 0x04."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise FormatError("verifier key: expected name+hexid+base64")
    name, hexid, data = parts
    if not is_valid_name(name):
        raise FormatError(f"verifier key: invalid key name {name!r}")
    kid = _parse_hexid(hexid, "verifier key")
    raw = unb64(data, "verifier key")
    if not raw:
        raise FormatError("verifier key: empty key data")
    alg = raw[0]
    if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
        raise FormatError(f"verifier key {name}: unsupported signature type 0x{alg:02x}")
    if len(raw) != 33:
        raise FormatError(f"verifier key {name}: an Ed25519 public key is 32 bytes")
    check_public_key(raw[1:], f"verifier key {name}")
    if kid != key_id(name, alg, raw[1:]):
        raise FormatError(f"verifier key {name}: key id does not match the key")
    return VerifierKey(name, kid, alg, raw[1:])


class Signer(Protocol):
    """Something that can add a signature line to a note."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def sign(self, text: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks one key's signatures; returns the cosignature time, if any."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> int: ...
    def verify(self, text: bytes, sig: bytes) -> tuple[bool, int | None]: ...


@dataclass(frozen=True)
class Ed25519NoteSigner:
    """Type 0x01: a plain Ed25519 signature over the note text."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey

    def sign(self, text: bytes) -> bytes:
        return self.private_key.sign(text)


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: a header with the time, then the checkpoint body."""
    return b"cosignature/v1\ntime %d\n" % timestamp + text


@dataclass(frozen=True)
class CosignatureSigner:
    """Type 0x04: timestamped Ed25519 cosignature; signature = u64 BE time || Ed25519 sig."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey
    timestamp: int | None = None

    def sign(self, text: bytes) -> bytes:
        t = int(_time.time()) if self.timestamp is None else self.timestamp
        if not 0 <= t < 1 << 63:
            raise FormatError(f"cosignature time {t} is out of range")
        return struct.pack(">Q", t) + self.private_key.sign(cosignature_message(text, t))


def new_signer(skey: str) -> Ed25519NoteSigner:
    """An Ed25519 note signer (type 0x01) from a signer key."""
    k = parse_signer_key(skey)
    return Ed25519NoteSigner(k.name, key_id(k.name, ALG_ED25519, k.public_key), k.private_key)


def new_cosigner(skey: str, timestamp: int | None = None) -> CosignatureSigner:
    """A cosignature/v1 signer (type 0x04) from an Ed25519 signer key.

    ``timestamp`` fixes the time it signs (tests); otherwise each signature takes the clock.
    """
    k = parse_signer_key(skey)
    kid = key_id(k.name, ALG_COSIGNATURE_V1, k.public_key)
    return CosignatureSigner(k.name, kid, k.private_key, timestamp)


@dataclass(frozen=True)
class Ed25519Verifier:
    """Verifies type 0x01 or type 0x04 signatures of one key."""

    name: str
    key_id: int
    alg: int
    public_key: bytes

    def verify(self, text: bytes, sig: bytes) -> tuple[bool, int | None]:
        pub = Ed25519PublicKey.from_public_bytes(self.public_key)
        try:
            if self.alg == ALG_COSIGNATURE_V1:
                if len(sig) != 8 + 64:
                    return False, None
                (t,) = struct.unpack(">Q", sig[:8])
                if t >= 1 << 63:
                    return False, None
                pub.verify(sig[8:], cosignature_message(text, t))
                return True, t
            if len(sig) != 64:
                return False, None
            pub.verify(sig, text)
            return True, None
        except InvalidSignature:
            return False, None

    @property
    def verifier_key(self) -> str:
        return _verifier_text(self.name, self.alg, self.public_key)


def new_verifier(vkey: str) -> Ed25519Verifier:
    """A verifier for a vkey: 0x01 note signatures or 0x04 cosignatures, by its type byte."""
    k = parse_verifier_key(vkey)
    return Ed25519Verifier(k.name, k.key_id, k.alg, k.public_key)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: int
    signature: bytes
    timestamp: int | None = None
    """Cosignature time (type 0x04), None for plain signatures."""

    @property
    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {b64(self.key_id.to_bytes(4, 'big') + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A note whose signatures were checked: ``signatures`` holds the verified ones only."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()


def _check_text(text: str, what: str) -> None:
    if not text.endswith("\n"):
        raise FormatError(f"{what}: text must end with a newline")
    for i, c in enumerate(text):
        o = ord(c)
        if (o < 0x20 and c != "\n") or o == 0x7F:
            raise FormatError(f"{what}: control character U+{o:04X} at offset {i}")
        if 0xD800 <= o <= 0xDFFF:
            raise FormatError(f"{what}: not valid UTF-8 at offset {i}")


def sign_note(text: str, *signers: Signer) -> str:
    """Sign ``text`` with each signer, signature lines in the order given."""
    if not text:
        raise FormatError("note: empty text")
    _check_text(text, "note")
    if "\n\n" in text:
        raise FormatError("note: text must not contain a blank line")
    if not signers:
        raise FormatError("note: at least one signer is needed")
    raw = text.encode()
    lines = []
    for s in signers:
        if not is_valid_name(s.name):
            raise FormatError(f"note: invalid signer name {s.name!r}")
        lines.append(NoteSignature(s.name, s.key_id, s.sign(raw)).line)
    return text + "\n" + "".join(lines)


def split_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Parse a note into its text and signature lines, checking nothing but the syntax."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise FormatError(f"note: larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"note: not valid UTF-8 at byte {e.start}") from e
    if len(note) > MAX_NOTE_BYTES:
        raise FormatError(f"note: larger than {MAX_NOTE_BYTES} characters")
    _check_text(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise FormatError("note: no signature lines")
    sigs: list[NoteSignature] = []
    for n, line in enumerate(block[:-1].split("\n"), start=1):
        if n > MAX_SIGNATURES:
            raise FormatError(f"note: more than {MAX_SIGNATURES} signature lines")
        if not line.startswith(_SIG_PREFIX):
            raise FormatError(f"note: signature line {n} does not start with an em dash")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not is_valid_name(name) or not b64:
            raise FormatError(f"note: signature line {n} is malformed")
        raw = unb64(b64, f"note: signature line {n}")
        if len(raw) < 5:
            raise FormatError(f"note: signature line {n} is too short")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, sigs


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a note and verify its signatures by the known keys.

    Unknown signers are ignored (kept in ``Note.unverified``); a failing signature from a
    known key rejects the note; a note no known key verified is rejected; two verifiers
    with the same name and key id are ambiguous, an error if that key signed.
    """
    text, sigs = split_note(note)
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    raw = text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for s in sigs:
        vs = known.get((s.name, s.key_id))
        if not vs:
            if s not in unverified:
                unverified.append(s)
            continue
        if len(vs) > 1:
            raise FormatError(f"note: ambiguous verifiers for key {s.name}+{s.key_id:08x}")
        if (s.name, s.key_id) in seen:
            continue
        ok, ts = vs[0].verify(raw, s.signature)
        if not ok:
            raise VerificationError(f"note: invalid signature by {s.name}+{s.key_id:08x}")
        seen.add((s.name, s.key_id))
        verified.append(NoteSignature(s.name, s.key_id, s.signature, ts))
    if not verified:
        raise VerificationError("note: no signature by a known key")
    return Note(text, tuple(verified), tuple(unverified))
