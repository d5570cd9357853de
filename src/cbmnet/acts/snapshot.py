"""The hub's folded state as bytes, so a hub starts without refolding its whole log.

A snapshot is ``header || body || tag``: the header names the format, the log size the
state was folded to, the log's Merkle root at that size and a digest of the agreements
and keys the fold ran under; the body is the state's plain data (``HubState.plain``),
pickled; the tag is an HMAC-SHA256 over all of it. ``load`` checks the tag before it reads
anything else, so only a holder of the key (``snapshot_key``: derived from the hub's
private key, which lives in its key folder, not in the database) can hand bytes to the
unpickler; and that unpickler builds only the classes the state holds
(``SNAPSHOT_CLASSES``), so even a leaked key buys no code execution. Whether the root is
the log's is for the caller to check (it holds the log). Pure: no I/O. docs/adr/0009.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import pickle
import struct
from collections.abc import Mapping
from typing import Any

from cbmnet.acts.state import SNAPSHOT_CLASSES, HubState
from cbmnet.agreements.model import Agreement
from cbmnet.errors import CbmnetError, FormatError, VerificationError

MAGIC = b"cbmnet hub-state\n"
VERSION = 1
KEY_LABEL = b"cbmnet hub-state snapshot v1"
PROTOCOL = 5
_FIXED = struct.Struct(">HQ32s32sH")
"""version, size, root, context digest, length of the agreement ids."""
_TAG = 32

_ALLOWED: dict[tuple[str, str], type] = {(c.__module__, c.__qualname__): c for c in SNAPSHOT_CLASSES}
_ALLOWED |= {("builtins", "set"): set, ("builtins", "frozenset"): frozenset}


def snapshot_key(hub_private_key_raw: bytes) -> bytes:
    """The snapshot key: the hub's private key, never stored beside what it protects."""
    return hmac.new(hub_private_key_raw, KEY_LABEL, hashlib.sha256).digest()


def context_digest(agreements: Mapping[str, Agreement], secretariat_key: bytes, hub_key: bytes) -> bytes:
    """What the fold depended on besides the log: a state folded under other agreements
    (or keys) is not this hub's, however well signed."""
    doc = {
        "agreements": {aid: agreements[aid].model_dump(mode="json") for aid in sorted(agreements)},
        "secretariat_key": secretariat_key.hex(),
        "hub_key": hub_key.hex(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).digest()


def dump(state: HubState, root: bytes, key: bytes) -> bytes:
    """The snapshot of ``state``, naming ``root`` as the log's root at ``state.size``."""
    if len(root) != 32:
        raise FormatError("hub-state snapshot: a Merkle root is 32 bytes")
    ids = ",".join(sorted(state.agreements)).encode()
    context = context_digest(state.agreements, state.secretariat_key, state.hub_key)
    head = MAGIC + _FIXED.pack(VERSION, state.size, root, context, len(ids)) + ids
    body = pickle.dumps(state.plain(), protocol=PROTOCOL)
    mac = hmac.new(key, head, hashlib.sha256)
    mac.update(body)
    return head + body + mac.digest()


def load(
    blob: bytes,
    key: bytes,
    *,
    agreements: Mapping[str, Agreement],
    secretariat_key: bytes,
    hub_key: bytes,
) -> tuple[HubState, bytes]:
    """The state a snapshot holds, and the log root it names at ``state.size``.

    Raises VerificationError for a tag that does not verify under ``key`` (another hub's
    key, or bytes altered) or a fold under other agreements or keys; FormatError for
    anything else malformed. Nothing is unpickled before the tag verified.
    """
    if len(blob) < len(MAGIC) + _FIXED.size + _TAG or not blob.startswith(MAGIC):
        raise FormatError("hub-state snapshot: not a cbmnet hub-state snapshot")
    view = memoryview(blob)
    want = hmac.new(key, view[:-_TAG], hashlib.sha256).digest()
    if not hmac.compare_digest(want, blob[-_TAG:]):
        raise VerificationError(
            "hub-state snapshot: its HMAC does not verify under this hub's key "
            "(made by another hub key, or altered since)"
        )
    version, size, root, context, n_ids = _FIXED.unpack_from(blob, len(MAGIC))
    if version != VERSION:
        raise FormatError(f"hub-state snapshot: format version {version}, this cbmnet reads {VERSION}")
    start = len(MAGIC) + _FIXED.size + n_ids
    ids = bytes(view[len(MAGIC) + _FIXED.size : start]).decode(errors="replace")
    if context != context_digest(agreements, secretariat_key, hub_key):
        ours = ",".join(sorted(agreements))
        raise VerificationError(
            f"hub-state snapshot: folded under agreements {ids or '(none)'} with other terms or "
            f"keys than this hub's ({ours}): not this hub's state"
        )
    try:
        plain = _Unpickler(io.BytesIO(view[start:-_TAG])).load()
        state = HubState.from_plain(plain, agreements, secretariat_key, hub_key)
    except CbmnetError:
        raise
    except Exception as e:  # a well-signed body this cbmnet cannot read: never a crash
        raise FormatError(f"hub-state snapshot: body unreadable: {type(e).__name__}: {e}") from None
    if state.size != size:
        raise FormatError(f"hub-state snapshot: header says {size} entries, body holds {state.size}")
    return state, root


class _Unpickler(pickle.Unpickler):
    """Builds the state's own classes and refuses every other global by name."""

    def find_class(self, module: str, name: str) -> Any:
        cls = _ALLOWED.get((module, name))
        if cls is None:
            raise FormatError(
                f"hub-state snapshot: refers to {module}.{name}, which a hub state never holds"
            )
        return cls
