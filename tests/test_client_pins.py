"""A pinned client trusts its pins and the log's signed registry, not what the hub says:
a registry act counts once a majority of the registered parties' witnesses cosigned a
checkpoint holding it, and only if the party's own key history allows it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from cbmnet.acts.model import PT_REGISTRY
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.errors import VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import parse_verifier_key
from cbmnet.party.client import HubClient, Identity, Pins
from tests.hubkit import party_keys, running_hub
from tests.test_malicious_hub import _cosign, _witnesses

AG = "vienna-document-2011"


def _pins(tmp_path: Path) -> Pins:
    return Pins.load(str(tmp_path / "hubkeys" / "hub.json"))


def test_pinned_client_ignores_keys_the_hub_substitutes(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        pins = _pins(tmp_path)
        with th.client("DEU") as deu:
            deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA"])
        _cosign(th.url, _witnesses(tmp_path, th, "DEU", "FRA"))  # the registrations witnessed
        real = base64.b64decode(th.keys["FRA"].enc_public)
        # A dishonest operator swaps FRA's encryption key in what the hub serves.
        _, evil = generate_encryption_key()
        th.hub.state.parties["FRA"].encryption_key = base64.b64decode(evil)
        with th.client("DEU") as trusting:
            assert trusting.member_keys("deu-fra")["FRA"] == base64.b64decode(evil)
        with HubClient(th.url, th.keys["DEU"].identity(), pins=pins) as pinned:
            assert pinned.member_keys("deu-fra")["FRA"] == real
            r = pinned.send("deu-fra", "m1", "flash", "for FRA's eyes only")
        with HubClient(th.url, th.keys["FRA"].identity(), pins=pins) as fra:
            assert fra.read_hotline(fra.entry(r["index"])) == "for FRA's eyes only"


def test_a_client_refuses_a_hub_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        doc = json.loads((tmp_path / "hubkeys" / "hub.json").read_text())
        other = Pins(doc["origin"], doc["log_vkey"], th.keys["DEU"].vkey)  # wrong secretariat
        with (
            HubClient(th.url, th.keys["DEU"].identity(), pins=other) as c,
            pytest.raises(VerificationError, match="not the pinned hub"),
        ):
            c.inbox()
        with HubClient(th.url, th.keys["DEU"].identity(), pins=_pins(tmp_path)) as c:
            assert c.inbox()["items"]


def test_a_forged_registry_act_is_refused_by_a_pinned_client(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        _cosign(th.url, ws)
        # The hub lists a registration whose signature does not verify: the pinned client
        # reads registry acts from their inclusion proofs, not from the listing.
        orig = th.hub.envelope

        def forged(index: int) -> bytes:
            raw = orig(index)
            if index == 1:
                doc = json.loads(raw)
                doc["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
                return json.dumps(doc).encode()
            return raw

        th.hub.envelope = forged  # type: ignore[method-assign]
        with HubClient(th.url, th.keys["DEU"].identity(), pins=_pins(tmp_path)) as c:
            assert c.registry()["FRA"].encryption_key == base64.b64decode(th.keys["FRA"].enc_public)
        # A modified hub logs a registration the secretariat never signed (behind admission),
        # and the witnesses cosign the tree: still refused, by the registry's rule.
        intruder = party_keys("POL")
        doc = {
            "act": "party.register",
            "party": "POL",
            "name": "State POL",
            "agreements": [AG],
            "signing_key": intruder.vkey,
            "encryption_key": intruder.enc_public,
        }
        env = dsse.sign(PT_REGISTRY, json.dumps(doc, sort_keys=True).encode(), [intruder.signer])
        pol = parse_verifier_key(intruder.vkey).public_key
        idx = th.hub.log.append_verified([dsse.verify(env, [pol])])[0].index
        _cosign(th.url, ws)
        with (
            HubClient(th.url, th.keys["DEU"].identity(), pins=_pins(tmp_path)) as c,
            pytest.raises(
                VerificationError,
                match=rf"registry entry {idx}: party.register of 'POL' is not signed by the secretariat",
            ),
        ):
            c.registry()


def _rotation(new_signer: Any, party: str = "FRA") -> dict[str, Any]:
    return {
        "act": "key.rotate",
        "party": party,
        "by": party,
        "signing_key": new_signer.vkey,
        "encryption_key": new_signer.enc_public,
    }


def test_a_key_change_counts_for_a_pinned_client_once_a_witness_majority_cosigned_it(
    store_url: str, tmp_path: Path
) -> None:
    """FRA rotates its signing and encryption keys. Until a majority of the three parties'
    witnesses cosigned a checkpoint holding the rotation, DEU's pinned client refuses to
    seal to FRA or to check FRA's hotline messages, naming the entry and what is missing;
    the hub's unpinned word is used at once. After the second witness's round, DEU seals
    to FRA's new key and FRA (with its new key) opens it."""
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        ws = _witnesses(tmp_path, th, "DEU", "FRA", "POL")
        with th.client("DEU") as deu:
            deu.open_channel("deu-fra", AG, ["DEU", "FRA"])
        with th.client("FRA") as fra:
            fra.ack(fra.entries(kind="channel.open")["items"][0]["index"])
        _cosign(th.url, ws)
        pins = _pins(tmp_path)
        with HubClient(th.url, th.keys["DEU"].identity(), pins=pins) as deu:
            old = deu.member_keys("deu-fra")["FRA"]
            assert old == base64.b64decode(th.keys["FRA"].enc_public)

        new = party_keys("FRA")
        with th.client("FRA") as fra:
            r = fra.act(PT_REGISTRY, _rotation(new))["index"]
        refused = (
            rf"FRA's key change at entry {r} is not yet cosigned by a quorum of witnesses "
            r"\(2 of 3 needed\); run the witnesses or wait"
        )
        with HubClient(th.url, th.keys["DEU"].identity(), pins=pins) as deu:
            with pytest.raises(VerificationError, match=refused):
                deu.member_keys("deu-fra")
            with pytest.raises(VerificationError, match=refused):
                deu.send("deu-fra", "m1", "flash", "to FRA")
            assert deu.registry()["FRA"].encryption_key == old  # the witnessed history stands
        with th.client("DEU") as trusting:  # no pins: the hub's word, at once
            assert trusting.member_keys("deu-fra")["FRA"] == base64.b64decode(new.enc_public)

        _cosign(th.url, {"DEU": ws["DEU"]})  # one witness of three: not yet a majority
        with (
            HubClient(th.url, th.keys["DEU"].identity(), pins=pins) as deu,
            pytest.raises(VerificationError, match=refused),
        ):
            deu.member_keys("deu-fra")

        _cosign(th.url, {"POL": ws["POL"]})  # two of three
        with HubClient(th.url, th.keys["DEU"].identity(), pins=pins) as deu:
            assert deu.member_keys("deu-fra")["FRA"] == base64.b64decode(new.enc_public)
            assert [(k, s, u) for k, s, u in deu.registry()["FRA"].history] == [
                (parse_verifier_key(th.keys["FRA"].vkey).public_key, 1, r),
                (parse_verifier_key(new.vkey).public_key, r, None),
            ]
            sent = deu.send("deu-fra", "m1", "flash", "to FRA's new key")
        me = Identity("FRA", new.signer, new.enc_private)
        with HubClient(th.url, me, pins=pins) as fra:
            assert fra.read_hotline(fra.entry(sent["index"])) == "to FRA's new key"


def test_a_new_party_is_sealed_to_only_once_witnessed(tmp_path: Path) -> None:
    """A registration is a registry act like the others: a pinned client does not seal to
    a party whose registration the witnesses have not yet cosigned."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        _cosign(th.url, ws)
        th.register("POL")
        with HubClient(th.url, th.keys["DEU"].identity(), pins=_pins(tmp_path)) as deu:
            event = {
                "agreement": AG,
                "id": "q-1",
                "type": "request",
                "kind": "explanation",
                "to": "POL",
                "body": "why?",
            }
            with pytest.raises(
                VerificationError,
                match=r"POL's registration at entry 2 is not yet cosigned by a quorum of witnesses "
                r"\(2 of 3 needed\)",
            ):
                deu.event(event, seal=True)
            _cosign(th.url, ws)  # DEU's and FRA's witnesses: 2 of the 3 registered
            assert deu.event(event, seal=True)["index"] == 3
