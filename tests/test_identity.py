"""Identity only its holder can change (docs/adr/0007), against a real hub over HTTP.

The attack this file replays (issue 12, hole 1): a malicious secretariat rotated PAK's
keys with ``"by": "secretariat"``, then spoke and read as PAK. Each route the secretariat
could take to another party's identity is tried here and must be refused, while the
party itself keeps every way to change, revoke and recover its keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.acts.model import PT_EVENT, PT_REGISTRY
from cbmnet.ledger.dsse import sign as dsse_sign
from cbmnet.ledger.note import _verifier_text, parse_signer_key, parse_verifier_key
from tests.hubkit import PartyKeys, TestHub, party_keys, running_hub

AG = "vienna-document-2011"


def _signed(signer: str, doc: dict[str, Any]) -> bytes:
    import json

    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return dsse_sign(PT_REGISTRY, payload, [parse_signer_key(signer).private_key])


def _post(th: TestHub, envelope: bytes) -> httpx.Response:
    return httpx.post(
        f"{th.url}/v1/acts", content=envelope, headers={"Content-Type": "application/json"}, timeout=30
    )


def _size(th: TestHub) -> int:
    return int(httpx.get(f"{th.url}/healthz", timeout=30).json()["log_size"])


def _rotation(party: str, by: str, new: PartyKeys, **extra: Any) -> dict[str, Any]:
    return {
        "act": "key.rotate",
        "party": party,
        "by": by,
        "signing_key": new.vkey,
        "encryption_key": new.enc_public,
        **extra,
    }


def _activity(eid: str) -> dict[str, Any]:
    return {
        "agreement": AG,
        "id": eid,
        "type": "activity",
        "start": "2030-09-01T00:00:00Z",
        "end": "2030-09-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 1000},
    }


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[TestHub]:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL", "AUT")
        yield th


def test_the_secretariat_cannot_become_a_party(hub: TestHub) -> None:
    """Every way the secretariat could sign a change of PAK's — here DEU's — keys is refused,
    and nothing reaches the log."""
    th, sec = hub, hub.secretariat.signer_key
    mine = party_keys("DEU")  # keys the secretariat made and holds
    size = _size(th)
    attempts = [
        # The hole itself: a rotation "by" the secretariat.
        (_rotation("DEU", "secretariat", mine), 400, "never changes their keys"),
        # Posing as the party, as its recovery, or as a quorum, with the secretariat's key.
        (_rotation("DEU", "DEU", mine), 422, "no valid signature"),
        (_rotation("DEU", "recovery", mine), 422, "no valid signature"),
        # A revocation, to lock the real DEU out.
        (
            {"act": "key.revoke", "party": "DEU", "by": "secretariat", "key": th.keys["DEU"].vkey},
            400,
            "by",
        ),
        (
            {"act": "key.revoke", "party": "DEU", "by": "recovery", "key": th.keys["DEU"].vkey},
            422,
            "no valid signature",
        ),
        # Replacing DEU's witness, to cosign as DEU.
        (_rotation("DEU", "DEU", mine, witness_key=mine.witness_vkey), 422, "no valid signature"),
    ]
    for doc, status, words in attempts:
        r = _post(th, _signed(sec, doc))
        assert r.status_code == status, (doc, r.text)
        assert words in r.json()["message"], (doc, r.text)
    # A "quorum" rotation signed with the new key the secretariat holds: no approvals.
    r = _post(th, _signed(mine.signer, _rotation("DEU", "quorum", mine)))
    assert r.status_code == 403 and "needs 2 approvals" in r.json()["message"], r.text
    # Nor can the secretariat approve: it is no party.
    approve = {"act": "key.approve", "party": "secretariat", "for": "DEU", "signing_key": mine.vkey}
    assert _post(th, _signed(sec, approve)).status_code == 400
    assert _size(th) == size
    # DEU is untouched: its own key still signs, the secretariat's still does not.
    with th.client("DEU") as deu:
        deu.event(_activity("still-mine"))
        (me,) = [p for p in deu.parties() if p["id"] == "DEU"]
        assert len(me["key_history"]) == 1 and me["witness_key"] == th.keys["DEU"].witness_vkey


def test_the_party_rotates_with_its_key_and_recovers_with_its_recovery_key(hub: TestHub) -> None:
    th = hub
    old = th.keys["DEU"]
    new = party_keys("DEU")
    assert _post(th, _signed(old.signer, _rotation("DEU", "DEU", new))).status_code == 201
    # A thief holding the signing key cannot change the recovery key (it would lock the owner out).
    thief_recovery = party_keys("DEU")
    r = _post(
        th,
        _signed(
            new.signer, _rotation("DEU", "DEU", party_keys("DEU"), recovery_key=thief_recovery.vkey)
        ),
    )
    assert r.status_code == 403 and "only the recovery key" in r.json()["message"], r.text
    # The owner, with its offline recovery key, takes its identity back from a thief that
    # rotated the signing key, and replaces the recovery key too.
    after_theft = party_keys("DEU")
    assert _post(th, _signed(new.signer, _rotation("DEU", "DEU", after_theft))).status_code == 201
    restored = party_keys("DEU")
    doc = _rotation("DEU", "recovery", restored, recovery_key=restored.recovery_vkey)
    assert _post(th, _signed(old.recovery_signer, doc)).status_code == 201
    th.keys["DEU"] = restored
    with th.client("DEU") as deu:
        deu.event(_activity("after-recovery"))
        (me,) = [p for p in deu.parties() if p["id"] == "DEU"]
        assert [k["until"] is None for k in me["key_history"]] == [False, False, False, True]
    # The thief's key signs nothing more; the old recovery key is spent.
    assert (
        _post(th, _signed(after_theft.signer, _rotation("DEU", "DEU", party_keys("DEU")))).status_code
        == 403
    )
    r = _post(th, _signed(old.recovery_signer, _rotation("DEU", "recovery", party_keys("DEU"))))
    assert r.status_code == 422


def test_a_party_that_lost_both_keys_is_recovered_by_a_quorum_of_the_others(hub: TestHub) -> None:
    th = hub
    new = party_keys("DEU")
    want = _rotation("DEU", "quorum", new)
    proposal = {k: v for k, v in want.items() if k in ("signing_key", "encryption_key")}

    def approve(by: str, reason: str = "checked by phone", **keys: str) -> httpx.Response:
        doc = {"act": "key.approve", "party": by, "for": "DEU", "reason": reason, **proposal, **keys}
        return _post(th, _signed(th.keys[by].signer, doc))

    # Quorum: a majority of the three others (2), never fewer than two.
    assert approve("FRA").status_code == 201
    assert approve("FRA", reason="again").status_code == 409  # once per approver
    # An approval of other keys does not count toward these.
    assert approve("POL", witness_key=new.witness_vkey).status_code == 201
    r = _post(th, _signed(new.signer, want))
    assert r.status_code == 403 and "needs 2 approvals" in r.json()["message"], r.text
    assert "the log holds 1 (FRA)" in r.json()["message"]
    # The party cannot approve itself; the rotation must be signed by the new key itself.
    self_doc = {"act": "key.approve", "party": "DEU", "for": "DEU", **proposal}
    assert _post(th, _signed(th.keys["DEU"].signer, self_doc)).status_code == 400
    assert approve("AUT").status_code == 201
    assert _post(th, _signed(th.keys["FRA"].signer, want)).status_code == 422
    assert _post(th, _signed(new.signer, want)).status_code == 201
    new.recovery_signer, new.recovery_vkey = th.keys["DEU"].recovery_signer, th.keys["DEU"].recovery_vkey
    th.keys["DEU"] = new
    with th.client("DEU") as deu:
        deu.event(_activity("recovered"))


def test_a_bilateral_rival_alone_cannot_recover_the_other(tmp_path: Path) -> None:
    """With two parties, the only other is the rival: a quorum of one is refused."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        mine = party_keys("DEU")
        doc = {"act": "key.approve", "party": "FRA", "for": "DEU", "signing_key": mine.vkey}
        assert _post(th, _signed(th.keys["FRA"].signer, doc)).status_code == 201
        r = _post(th, _signed(mine.signer, _rotation("DEU", "quorum", mine) | {"encryption_key": None}))
        assert r.status_code == 403 and "needs 2 approvals" in r.json()["message"], r.text


def test_witness_keys_are_unique(hub: TestHub) -> None:
    """Hole 8: FRA registering DEU's witness key as its own broke /dashboard/log for all
    (the page itself is tested in test_dashboard_log.py)."""
    th = hub
    fra_new = party_keys("FRA")
    doc = _rotation("FRA", "FRA", fra_new, witness_key=th.keys["DEU"].witness_vkey)
    r = _post(th, _signed(th.keys["FRA"].signer, doc))
    assert r.status_code == 409 and "witness key" in r.json()["message"], r.text
    # Nor at registration.
    with th.client() as sec:
        k = party_keys("ITA")
        with pytest.raises(Exception, match="409"):
            sec.register(
                {
                    "party": "ITA",
                    "name": "State ITA",
                    "agreements": [AG],
                    "signing_key": k.vkey,
                    "encryption_key": k.enc_public,
                    "witness_key": th.keys["POL"].witness_vkey,
                }
            )
    # Nor under another name: the same public key is the same witness.
    deu_witness = parse_verifier_key(th.keys["DEU"].witness_vkey)
    renamed = _verifier_text("other.name.test", deu_witness.alg, deu_witness.public_key)
    doc = _rotation("FRA", "FRA", fra_new, witness_key=renamed)
    r = _post(th, _signed(th.keys["FRA"].signer, doc))
    assert r.status_code == 409 and "witness key" in r.json()["message"], r.text
    # A party may keep its own witness key across a rotation.
    doc = _rotation("FRA", "FRA", fra_new, witness_key=th.keys["FRA"].witness_vkey)
    assert _post(th, _signed(th.keys["FRA"].signer, doc)).status_code == 201


def test_recovery_keys_never_serve_as_signing_keys(hub: TestHub) -> None:
    th = hub
    doc = _rotation("FRA", "FRA", party_keys("FRA"))
    doc["signing_key"] = th.keys["DEU"].recovery_vkey
    r = _post(th, _signed(th.keys["FRA"].signer, doc))
    assert r.status_code == 409 and "used before" in r.json()["message"], r.text


def test_an_event_act_is_never_signed_by_a_recovery_key(hub: TestHub) -> None:
    """The recovery key changes keys; it speaks for the party in nothing else."""
    import json

    th = hub
    payload = json.dumps({"party": "DEU", **_activity("by-recovery")}, sort_keys=True).encode()
    env = dsse_sign(PT_EVENT, payload, [parse_signer_key(th.keys["DEU"].recovery_signer).private_key])
    r = _post(th, env)
    assert r.status_code == 422 and "no valid signature" in r.json()["message"], r.text
