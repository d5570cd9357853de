"""The party side in one package: it never imports the hub, and its audit is a pure auditor.

The remote audit reads a hub only through ``HubReader``; here the reader is a small fake
hub kept in memory, built from real ledger entries (DSSE-signed registry acts, encoded
log entries, a log-signed checkpoint over their Merkle root): no HTTP, no store.
"""

from __future__ import annotations

import ast
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cbmnet.acts.model import PT_REGISTRY, SECRETARIAT
from cbmnet.acts.state import act_json
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.errors import VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import format_checkpoint, parse_checkpoint
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.entry import decode_entry, encode_entry
from cbmnet.ledger.merkle import consistency_proof, inclusion_proof, leaf_hash, root_hash
from cbmnet.ledger.note import generate_key, new_signer, sign_note, split_note
from cbmnet.ledger.tlogproof import ProofBundle, format_proof
from cbmnet.party.audit import HubReader, audit_hub

PARTY = Path(__file__).resolve().parents[1] / "src" / "cbmnet" / "party"
VD = "vienna-document-2011"
ORIGIN = "hub.test/log"


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            mod = node.module or ""
            names += [mod, *(f"{mod}.{a.name}" for a in node.names)]
    return names


def test_the_party_package_never_imports_the_hub() -> None:
    files = sorted(PARTY.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "client.py", "witness.py", "audit.py"}
    for f in files:
        bad = [n for n in _imports(f) if n == "cbmnet.hub" or n.startswith("cbmnet.hub.")]
        assert not bad, f"{f.name} imports the hub: {bad}"


@dataclass
class _Caller:
    party: str


class MemoryHub:
    """A hub's read API over a list of log entries held in memory (``HubReader``)."""

    def __init__(self) -> None:
        self.log_skey, self.log_vkey = generate_key(ORIGIN)
        self.sec_skey, self.sec_vkey = generate_key("secretariat.test")
        self.hub_vkey = generate_key("hub.test")[1]
        self.identity: _Caller | None = _Caller(SECRETARIAT)
        self.entries_data: list[bytes] = []
        """The entries as logged: what the checkpoints sign for."""
        self.served: dict[int, bytes] = {}
        """Entries the hub now serves in place of the logged ones (a rewrite)."""
        self.notes: list[str] = []
        self.ms = 1_800_000_000_000

    def register(self, party: str, name: str) -> None:
        doc = {
            "act": "party.register",
            "party": party,
            "name": name,
            "agreements": [VD],
            "signing_key": generate_key(f"{party.lower()}.test")[1],
            "encryption_key": generate_encryption_key()[1],
        }
        envelope = dsse.sign(PT_REGISTRY, act_json(doc), [self.sec_skey])
        self.ms += 1000
        self.entries_data.append(encode_entry(self.ms, envelope))

    def sign_checkpoint(self) -> None:
        size = len(self.entries_data)
        text = format_checkpoint(ORIGIN, size, root_hash(self.entries_data))
        self.notes.append(sign_note(text, new_signer(self.log_skey)))

    def _entry(self, i: int) -> bytes:
        return self.served.get(i, self.entries_data[i])

    # ---- HubReader ----

    def info(self) -> dict[str, Any]:
        return {
            "origin": ORIGIN,
            "log_vkey": self.log_vkey,
            "secretariat_vkey": self.sec_vkey,
            "hub_vkey": self.hub_vkey,
            "key_recovery_quorums": {},
        }

    def parties(self) -> list[dict[str, Any]]:
        return []

    def entries(self, **params: Any) -> dict[str, Any]:
        after, limit = int(params.get("after", -1)), int(params.get("limit", 100))
        idx = list(range(after + 1, len(self.entries_data)))[:limit]
        return {"items": [{"index": i} for i in idx], "next": idx[-1] if idx else after}

    def iter_entries(self, **params: Any) -> Iterator[dict[str, Any]]:
        for i in range(len(self.entries_data)):
            env = decode_entry(self._entry(i)).envelope
            doc = json.loads(dsse.parse(env).payload)
            if doc.get("act") == params.get("kind"):
                yield {"index": i, "envelope": json.loads(env)}

    def checkpoints(self) -> list[dict[str, Any]]:
        return [
            {"seq": n, "size": parse_checkpoint(split_note(note)[0]).size, "note": note}
            for n, note in enumerate(self.notes)
        ]

    def leaves(self, start: int, limit: int) -> list[dict[str, Any]]:
        out = []
        for i in range(start, min(start + limit, len(self.entries_data))):
            item = {"index": i, "leaf_hash": b64(leaf_hash(self.entries_data[i]))}
            if self.identity is not None:
                item["entry"] = b64(self._entry(i))
            out.append(item)
        return out

    def consistency(self, old: int, new: int) -> list[str]:
        return [b64(h) for h in consistency_proof(self.entries_data[:new], old)]

    def proof(self, index: int) -> str:
        note = self.notes[-1]
        path = inclusion_proof(self.entries_data, index)
        return format_proof(ProofBundle(index, path, note, self.entries_data[index]))


def _hub() -> MemoryHub:
    hub = MemoryHub()
    hub.register("DEU", "Germany")
    hub.register("FRA", "France")
    hub.sign_checkpoint()
    hub.register("POL", "Poland")
    hub.sign_checkpoint()
    return hub


def _rename(data: bytes, name: str) -> bytes:
    """The entry with its registration's name changed, its signature and time kept."""
    entry = decode_entry(data)
    env = json.loads(entry.envelope)
    doc = json.loads(base64.b64decode(env["payload"]))
    doc["name"] = name
    env["payload"] = base64.b64encode(act_json(doc)).decode()
    forged = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
    return encode_entry(entry.integrated_ms, forged)


def test_the_remote_audit_passes_an_honest_memory_hub(tmp_path: Path) -> None:
    hub = _hub()
    reader: HubReader = hub
    report = audit_hub(reader, hub.log_vkey, tmp_path / "audit.json")
    assert (report.size, report.entries_checked, report.checkpoints) == (3, 3, 2)
    assert report.checkpoint_size == 3 and report.uncovered == 0
    assert report.root_hash == root_hash(hub.entries_data)
    # The next run extends what it remembered (a consistency proof from size 3 to 4).
    hub.register("ITA", "Italy")
    hub.sign_checkpoint()
    again = audit_hub(hub, hub.log_vkey, tmp_path / "audit.json")
    assert (again.previous_size, again.checkpoint_size) == (3, 4)


def test_the_remote_audit_names_an_entry_rewritten_in_place() -> None:
    """The hub serves other bytes for entry 1 (FRA's registration renamed) under the leaf
    hash it signed for: the audit names entry 1."""
    hub = _hub()
    hub.served[1] = _rename(hub.entries_data[1], "Someone Else")
    with pytest.raises(VerificationError, match=r"^remote audit: entry 1: the leaf hash served"):
        audit_hub(hub, hub.log_vkey)


def test_the_remote_audit_names_a_rewritten_history() -> None:
    """The hub rewrites entry 1 with its leaf hash and signs new checkpoints over the
    rewritten tree: the registration's signature no longer holds, and the audit names
    entry 1 and the party."""
    hub = _hub()
    hub.entries_data[1] = _rename(hub.entries_data[1], "Someone Else")
    hub.notes.clear()
    hub.sign_checkpoint()
    with pytest.raises(VerificationError, match=r"^remote audit: entry 1: party.register of 'FRA'"):
        audit_hub(hub, hub.log_vkey)
