"""The log page's witness verdict over a real hub: a checkpoint is relied on once a majority
of the registered parties' witnesses cosigned it, recomputed from the signatures.

What an operator relies on: the verdict changes only with real cosignatures by registered
witnesses; the policy shown is one ``cbmnet verify`` accepts and gives the same answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from cbmnet.acts.model import PT_REGISTRY
from cbmnet.acts.state import act_json
from cbmnet.hub.deps import COOKIE
from cbmnet.hub.web.witness import registry_policy, verdict
from cbmnet.ledger import dsse
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.note import ALG_COSIGNATURE_V1, key_id, new_cosigner, parse_verifier_key
from cbmnet.ledger.policy import parse_policy, verify_checkpoint
from cbmnet.ledger.witness import cosignature_lines
from cbmnet.party.client import HubClient
from cbmnet.party.witness import Witness, witness_hub
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
        wp = registry_policy(th.hub.views.policy_witnesses(), th.hub.log.vkey)
        v = verdict(seq.note, forged, wp)
        assert v["cosigned"] == [] and not v["ok"]
        assert str(v["text"]).startswith("not yet relied on: 0 of 2")
        assert _latest_verdict(th, token).startswith(
            "not yet relied on: 1 of 2 witnesses cosigned, 2 needed"
        )


def test_a_witness_key_two_parties_named_counts_once_and_the_page_works(tmp_path: Path) -> None:
    """Hole 8 on a log written before witness keys were unique: POL's registration names
    DEU's witness key, and NOR's names DEU's key under another name (same public key). The
    hub refuses such registrations now; here they are appended behind its admission, as an
    older hub logged them. The page answers 200 to everyone and the key counts once, for
    DEU, which registered it first: the policy has two witnesses (DEU, FRA), two needed."""
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        deu_witness = th.keys["DEU"].witness_vkey
        public = parse_verifier_key(deu_witness).public_key
        wire = bytes([ALG_COSIGNATURE_V1]) + public
        renamed = f"copy.deu+{key_id('copy.deu', ALG_COSIGNATURE_V1, public):08x}+{b64(wire)}"
        assert parse_verifier_key(renamed).public_key == public and renamed != deu_witness
        sec = parse_verifier_key(th.hub.secretariat_vkey).public_key
        for pid, wkey in (("POL", deu_witness), ("NOR", renamed)):
            k = th.keys[pid] = party_keys(pid)
            doc = {
                "act": "party.register",
                "party": pid,
                "name": f"State {pid}",
                "agreements": ["vienna-document-2011"],
                "signing_key": k.vkey,
                "encryption_key": k.enc_public,
                "witness_key": wkey,
            }
            env = dsse.sign(PT_REGISTRY, act_json(doc), [th.secretariat.signer_key])
            th.hub.log.append_verified([dsse.verify(env, [sec])])
        th.hub.sync()
        wp = registry_policy(th.hub.views.policy_witnesses(), th.hub.log.vkey)
        assert wp.witnesses == ("DEU", "FRA") and wp.threshold == 2
        for party in ("DEU", "FRA", "POL", "NOR"):
            with th.client(party) as c:
                cookie = session_cookie(th.url, c.token())
            assert _latest_verdict(th, cookie).startswith("not yet relied on: 0 of 2")
        with HubClient(th.url) as client:
            witness_hub(client, _witness(th, "DEU", tmp_path))
        assert _latest_verdict(th, cookie).startswith("not yet relied on: 1 of 2")
