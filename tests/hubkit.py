"""A real hub on loopback for tests: SQLite or PostgreSQL, parties with real keys."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbmnet.agreements.loader import bundled
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.hub.app import create_app
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import Hub, HubKeys, HubSettings, init_hub
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.party.client import HubClient, Identity

AGREEMENTS = ("vienna-document-2011", "osce-ict-cbm-2016")
ORIGIN = "hub.cbmnet.test/log"


@dataclass
class PartyKeys:
    party: str
    signer: str
    vkey: str
    enc_private: str
    enc_public: str
    witness_signer: str
    witness_vkey: str
    recovery_signer: str
    recovery_vkey: str
    """The key the party declared at registration and keeps offline (docs/adr/0007)."""

    def identity(self) -> Identity:
        return Identity(self.party, self.signer, self.enc_private)


def party_keys(party: str) -> PartyKeys:
    skey, vkey = generate_key(f"{party.lower()}.cbmnet.test")
    ep, eq = generate_encryption_key()
    wskey, _ = generate_key(f"witness.{party.lower()}.cbmnet.test")
    rskey, rvkey = generate_key(f"recovery.{party.lower()}.cbmnet.test")
    return PartyKeys(
        party, skey, vkey, ep, eq, wskey, parse_signer_key(wskey).cosigner_verifier_key, rskey, rvkey
    )


def init_test_hub(
    url: str, keys_dir: Path, agreements: tuple[str, ...] = AGREEMENTS
) -> tuple[HubKeys, Identity]:
    """A new hub's store and keys at ``url`` (``cbmnet hub init``), and its secretariat."""
    sec_skey, sec_vkey = generate_key("secretariat.cbmnet.test")
    keys = init_hub(
        url,
        keys_dir,
        origin=ORIGIN,
        secretariat_vkey=sec_vkey,
        agreements=[bundled(a) for a in agreements],
    )
    return keys, Identity("secretariat", sec_skey)


def activity_event(i: int, who: str) -> dict[str, Any]:
    """The ``i``-th of a stream of distinct Vienna Document activities (``id`` ``who-i``)."""
    return {
        "agreement": "vienna-document-2011",
        "id": f"{who}-{i}",
        "type": "activity",
        "start": "2027-09-01T00:00:00Z",
        "end": "2027-09-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 1000 + i},
    }


@dataclass
class ServedHub:
    """A hub in a process of its own (``cbmnet serve``): reached only over loopback."""

    url: str
    secretariat: Identity
    keys: dict[str, PartyKeys] = field(default_factory=dict)

    def client(self, party: str | None = None) -> HubClient:
        if party is None:
            return HubClient(self.url, self.secretariat)
        return HubClient(self.url, self.keys[party].identity())

    def register(self, *parties: str, agreements: tuple[str, ...] = AGREEMENTS) -> None:
        with self.client() as sec:
            for p in parties:
                k = self.keys[p] = party_keys(p)
                sec.register(
                    {
                        "party": p,
                        "name": f"State {p}",
                        "agreements": list(agreements),
                        "signing_key": k.vkey,
                        "encryption_key": k.enc_public,
                        "witness_key": k.witness_vkey,
                        "recovery_key": k.recovery_vkey,
                        "contact": {"poc": f"verification centre of {p}"},
                    }
                )


@dataclass
class TestHub(ServedHub):
    """A hub in this process, its state open to the test (``hub``)."""

    __test__ = False  # not a test class: a hub under test
    hub: Hub = field(kw_only=True)


@contextmanager
def running_hub(
    url: str,
    tmp: Path,
    *,
    settings: HubSettings | None = None,
    agreements: tuple[str, ...] = AGREEMENTS,
    **kw: Any,
) -> Iterator[TestHub]:
    keys, secretariat = init_test_hub(url, tmp / "hubkeys", agreements)
    hub = Hub(url, keys, settings or HubSettings(sweep_s=3600, checkpoint_s=3600), **kw)
    server = ServerThread(create_app(hub))
    try:
        server.start()
        yield TestHub(server.url, secretariat, hub=hub)
    finally:
        server.stop()
        hub.close()


@contextmanager
def served_hub(url: str, tmp: Path, *args: str) -> Iterator[ServedHub]:
    """``cbmnet serve`` on a new hub at ``url``: load measured from outside its process.

    A test that floods a hub from many threads of its own process would measure its own
    threads' share of the interpreter lock as much as the hub; a real hub has its own.
    """
    from tests.hubcli_helpers import serve_process

    _keys, secretariat = init_test_hub(url, tmp / "hubkeys")
    argv = ["--db", url, "--keys", str(tmp / "hubkeys"), "--sweep-seconds", "3600", *args]
    with serve_process(argv, tmp / "serve.log", tmp) as (base, _proc):
        yield ServedHub(base, secretariat)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
