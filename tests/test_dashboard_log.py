"""The log page's witness verdict over a real hub: a checkpoint is relied on once a majority
of the registered parties' witnesses cosigned it, recomputed from the signatures.

What an operator relies on: the verdict changes only with real cosignatures by registered
witnesses; the policy shown is one ``cbmnet verify`` accepts and gives the same answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from cbmnet.client import HubClient
from cbmnet.hub.dashboard import COOKIE
from cbmnet.hub.dashboard_log import registry_policy, verdict
from cbmnet.ledger.note import new_cosigner
from cbmnet.ledger.policy import parse_policy, verify_checkpoint
from cbmnet.ledger.witness import cosignature_lines
from cbmnet.log.remote import witness_hub
from cbmnet.log.witness import Witness
from cbmnet.store import open_store
from tests.browserkit import session_cookie
from tests.hubkit import TestHub, party_keys, running_hub


def _witness(th: TestHub, party: str, tmp: Path) -> Witness:
    store = open_store(f"sqlite:///{tmp / f'witness-{party}.db'}", create=True)
    return Witness(store, th.keys[party].witness_signer, [th.hub.log.vkey])


def _latest_verdict(th: TestHub, token: str) -> str:
    """``token``: a dashboard session cookie."""
    r = httpx.get(f"{th.url}/dashboard/log", headers={"Cookie": f"{COOKIE}={token}"})
    assert r.status_code == 200, r.text
    found = re.findall(r"Verdict: ([^<]+)</strong>", r.text)
    assert found, r.text
    return found[0]  # latest first


def test_verdict_follows_real_cosignatures_of_registered_witnesses(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        with th.client("DEU") as c:
            token = session_cookie(th.url, c.token())
        assert _latest_verdict(th, token).startswith(
            "not yet relied on: 0 of 3 witnesses cosigned, 2 needed"
        )
        with HubClient(th.url) as client:
            witness_hub(client, _witness(th, "DEU", tmp_path))
            assert _latest_verdict(th, token).startswith("not yet relied on: 1 of 3")
            witness_hub(client, _witness(th, "FRA", tmp_path))
            served = client.checkpoint()
        assert _latest_verdict(th, token).startswith("meets the majority quorum: 2 of 3")
        page = httpx.get(f"{th.url}/dashboard/log", headers={"Cookie": f"{COOKIE}={token}"}).text
        assert "cosigned by DEU, FRA" in page
        # The policy on the page is a real tlog-policy that gives the same answer offline.
        text = re.search(r'<pre id="policy-text">([^<]+)</pre>', page)
        assert text is not None
        policy = parse_policy(text.group(1).replace("&#43;", "+"))
        assert verify_checkpoint(served, policy).cosigned_by == {"DEU", "FRA"}


def test_a_cosignature_by_an_unregistered_key_does_not_count(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as c:
            token = session_cookie(th.url, c.token())
        # ITA registers nothing: its witness key is not in the registry, so its
        # cosignature, even if the hub stored it, cannot move the verdict.
        stranger = party_keys("ITA")
        with HubClient(th.url) as client:
            witness_hub(client, _witness(th, "DEU", tmp_path))
            cp = client.checkpoint()
        body = cp.split("\n\n", 1)[0] + "\n"
        forged = cosignature_lines(body, new_cosigner(stranger.witness_signer)).strip().splitlines()
        seq = th.hub.rstore.latest_checkpoint()
        assert seq is not None
        with th.hub._state_lock:
            wp = registry_policy(th.hub.state, th.hub.log.vkey)
        v = verdict(seq.note, forged, wp)
        assert v["cosigned"] == [] and not v["ok"]
        assert str(v["text"]).startswith("not yet relied on: 0 of 2")
        assert _latest_verdict(th, token).startswith(
            "not yet relied on: 1 of 2 witnesses cosigned, 2 needed"
        )
