"""A pinned client trusts its pins and the log's signed registry, not what the hub says."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cbmnet.client import HubClient, Pins
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.errors import VerificationError
from tests.hubkit import running_hub


def _pins(tmp_path: Path) -> Pins:
    return Pins.load(str(tmp_path / "hubkeys" / "hub.json"))


def test_pinned_client_ignores_keys_the_hub_substitutes(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        pins = _pins(tmp_path)
        with th.client("DEU") as deu:
            deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA"])
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
        # The hub serves a registration whose signature does not verify under the pinned key.
        orig = th.hub.envelope

        def forged(index: int) -> bytes:
            raw = orig(index)
            if index == 1:
                doc = json.loads(raw)
                doc["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
                return json.dumps(doc).encode()
            return raw

        th.hub.envelope = forged  # type: ignore[method-assign]
        with (
            HubClient(th.url, th.keys["DEU"].identity(), pins=_pins(tmp_path)) as c,
            pytest.raises(VerificationError),
        ):
            c.registry()
