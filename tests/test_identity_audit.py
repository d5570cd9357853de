"""The party side of "identity only its holder changes" (issue 12, docs/adr/0007).

The hub refuses the secretariat's change of a party's keys (tests/test_identity.py). Here
the hub is modified: it appends the change behind its own admission, as an operator with
the database could. Every party re-checks the registry with the hub's own rule
(``cbmnet.acts.registry``), so the change is caught by name, a pinned client refuses the
keys it installs, and the party that caught it hands a third party a document that
verifies with the log's key alone. Real hubs over HTTP on 127.0.0.1, SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cbmnet.acts.model import PT_EVENT, PT_REGISTRY
from cbmnet.acts.state import act_json
from cbmnet.errors import FormatError, VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.ledger.tlogproof import format_proof, parse_proof
from cbmnet.log.evidence import unauthorised_key_change, verify_unauthorised_key_change
from cbmnet.party.audit import audit_hub, key_change_evidence
from cbmnet.party.client import HubClient, Identity, Pins
from tests.hubcli_helpers import cli
from tests.hubkit import ORIGIN, PartyKeys, TestHub, party_keys, running_hub
from tests.test_malicious_hub import _cosign, _witnesses

AG = "vienna-document-2011"
UNILATERAL = (
    r"entry {idx}: key.rotate of 'DEU' is not signed by DEU's current key, its recovery key or "
    r"a quorum: a unilateral key change"
)


def _rotation(by: str, new: PartyKeys, **extra: Any) -> dict[str, Any]:
    return {
        "act": "key.rotate",
        "party": "DEU",
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
        "size": {"troops": 100},
    }


def _force(th: TestHub, signer: str, doc: dict[str, Any]) -> int:
    """The modified hub: append a registry act straight to its log, skipping ``HubState.check``."""
    env = dsse.sign(PT_REGISTRY, act_json(doc), [signer])
    (receipt,) = th.hub.log.append_verified([dsse.verify(env, [parse_signer_key(signer).public_key])])
    th.hub.sync()
    return receipt.index


def test_the_secretariats_rotation_of_deu_is_refused_and_a_forced_one_caught_by_every_party(
    store_url: str, tmp_path: Path
) -> None:
    """Issue 12's "done when". The secretariat's rotation of DEU's keys is refused over
    HTTP. The modified hub then logs it anyway ("by": "DEU", signed with the secretariat's
    key), folds it, and lets the secretariat speak as DEU; the witnesses, who check only
    that the log grows, cosign. Caught: FRA's and the secretariat's audits name the entry
    and the rule; DEU's audit is refused its own key, and says so; FRA's pinned client
    will not seal to the keys the change installs. FRA's evidence document verifies with
    the log's key alone; a doctored one does not. An anonymous auditor is served no entry
    bytes, so it sees no registry act: the document is what it checks.
    """
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        ws = _witnesses(tmp_path, th, "DEU", "FRA", "POL")
        vkey = th.hub.log.vkey
        sec = th.secretariat.signer_key
        with th.client("DEU") as deu:
            deu.event(_activity("before"))
        _cosign(th.url, ws)
        for p in ("DEU", "FRA"):
            with th.client(p) as c:
                audit_hub(c, vkey)

        # 1. The hub refuses it over HTTP, whichever "by" the secretariat writes.
        mine = party_keys("DEU")  # keys the secretariat made and holds
        size = th.hub.log.size()
        with th.client() as s:
            for by, code in (("secretariat", "400"), ("DEU", "422"), ("recovery", "422")):
                with pytest.raises((FormatError, VerificationError), match=f"hub answered {code}"):
                    s.submit(dsse.sign(PT_REGISTRY, act_json(_rotation(by, mine)), [sec]))
        assert th.hub.log.size() == size

        # 2. The modified hub logs it anyway; its state takes the new key as DEU's.
        idx = _force(th, sec, _rotation("DEU", mine, witness_key=mine.witness_vkey))
        with HubClient(th.url, Identity("DEU", mine.signer, mine.enc_private)) as fake:
            as_deu = fake.event(_activity("spoken-by-the-secretariat"))["index"]
        assert as_deu == idx + 1
        # DEU's real witness is no longer DEU's for this hub; FRA's and POL's cosign.
        with pytest.raises(VerificationError, match="no signature by a known key"):
            _cosign(th.url, {"DEU": ws["DEU"]})
        _cosign(th.url, {p: ws[p] for p in ("FRA", "POL")})

        # 3. Every party's audit fails, naming the entry.
        unilateral = UNILATERAL.format(idx=idx)
        for who in ("FRA", None):  # None: the secretariat
            with th.client(who) as c, pytest.raises(VerificationError, match=unilateral):
                audit_hub(c, vkey)
        with th.client("DEU") as deu, pytest.raises(VerificationError, match=r"refuses DEU's key"):
            audit_hub(deu, vkey)  # locked out by the change it never made
        with HubClient(th.url) as anon:
            report = audit_hub(anon, vkey)  # leaf hashes and checkpoints only
            assert report.entries_checked == 0 and not report.cosigners_mapped
        pins = Pins.load(str(tmp_path / "hubkeys" / "hub.json"))
        with (
            HubClient(th.url, th.keys["FRA"].identity(), pins=pins) as fra,
            pytest.raises(VerificationError, match=rf"registry {unilateral}"),
        ):
            fra.event({**_request("q-1", "DEU"), "body": "for DEU only"}, seal=True)

        # 4. FRA's evidence, re-checked by a third party holding the log's key only.
        with th.client("FRA") as fra:
            found = key_change_evidence(fra, vkey)
        assert found is not None and (found.party, found.index) == ("DEU", idx)
        doc = json.loads(found.to_json())
        ev = verify_unauthorised_key_change(doc, vkey)
        assert (ev.party, ev.index, ev.finding) == ("DEU", idx, found.finding)
        assert re.match(unilateral, ev.finding), ev.finding
        assert ev.checkpoint.size > idx and ev.origin == ORIGIN
        # The document holds DEU's registration and the offending rotation, each proven.
        indexes = [parse_proof(p).index for p in doc["entries"]]
        assert indexes[-1] == idx and 0 in indexes  # DEU registered first
        # The secretariat's own audit builds the same document.
        with th.client() as s:
            again = key_change_evidence(s, vkey)
        assert again is not None and again.index == idx

        _doctored_documents_are_refused(doc, vkey, th)


def _request(eid: str, to: str) -> dict[str, Any]:
    return {"agreement": AG, "id": eid, "type": "request", "kind": "explanation", "to": to}


def _doctored_documents_are_refused(doc: dict[str, Any], vkey: str, th: TestHub) -> None:
    entries = list(doc["entries"])
    # Another log's key: nothing is signed by it.
    _, other = generate_key(ORIGIN)
    with pytest.raises(VerificationError, match="not signed by the log"):
        verify_unauthorised_key_change(doc, other)
    # DEU's registration left out: the re-fold has no key history to judge by.
    without = [e for e in entries if parse_proof(e).index != 0]
    with pytest.raises(FormatError, match="registration of 'DEU' is missing"):
        verify_unauthorised_key_change({**doc, "entries": without}, vkey)
    # An entry's bytes changed: its inclusion proof no longer leads to the root.
    b = parse_proof(entries[-1])
    assert b.extra is not None
    forged = bytearray(b.extra)
    forged[-3] ^= 1
    bad = format_proof(b.__class__(b.index, b.proof, b.checkpoint, bytes(forged)))
    with pytest.raises(VerificationError, match="does not lead to the root"):
        verify_unauthorised_key_change({**doc, "entries": [*entries[:-1], bad]}, vkey)
    # The index and party must name the last entry.
    with pytest.raises(FormatError, match="must name the last entry"):
        verify_unauthorised_key_change({**doc, "index": doc["index"] - 1}, vkey)
    # An honest entry in the accused place (FRA's registration): nothing to show.
    honest = [e for e in entries if parse_proof(e).index in (0, 1)]
    with pytest.raises((VerificationError, FormatError)):
        verify_unauthorised_key_change({**doc, "entries": honest, "index": 1, "party": "FRA"}, vkey)
    assert unauthorised_key_change(honest, vkey, th.hub.secretariat_vkey) is None
    # A secretariat key other than the one that signed the registrations.
    _, fake_sec = generate_key("secretariat.cbmnet.test")
    with pytest.raises(FormatError, match="not signed by the secretariat"):
        verify_unauthorised_key_change({**doc, "secretariat_vkey": fake_sec}, vkey)


@pytest.mark.parametrize(
    "case",
    ["secretariat", "quorum", "recovery-by-signing-key", "reused-key", "copied-witness"],
)
def test_each_registry_rule_a_modified_hub_breaks_fails_the_audit_by_name(
    tmp_path: Path, case: str
) -> None:
    """Each rule of acts/registry.py, broken by an entry the modified hub logs: the audit
    names the entry, the party and the rule, and the evidence document shows it. A logged
    "by": "secretariat" (which ``read_act`` now refuses, and the hub keeps as an opaque
    entry only the secretariat reads) fails the secretariat's audit by name, no crash."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        vkey = th.hub.log.vkey
        deu, new = th.keys["DEU"], party_keys("DEU")
        auditor: str | None = "FRA"
        if case == "secretariat":
            idx = _force(th, th.secretariat.signer_key, _rotation("secretariat", new))
            auditor, words = None, r'is signed "by": "secretariat"'
        elif case == "quorum":  # signed with the new key, no approval logged
            idx = _force(th, new.signer, _rotation("quorum", new))
            words = r"breaks the registry rules: .*by quorum needs 2 approvals"
        elif case == "recovery-by-signing-key":  # a thief holding the signing key
            idx = _force(th, deu.signer, _rotation("DEU", new, recovery_key=new.recovery_vkey))
            words = r"breaks the registry rules: .*only the recovery key itself"
        elif case == "reused-key":
            idx = _force(th, deu.signer, _rotation("DEU", th.keys["FRA"]))
            words = r"breaks the registry rules: .*that key was used before"
        else:
            idx = _force(th, deu.signer, _rotation("DEU", new, witness_key=th.keys["FRA"].witness_vkey))
            words = r"breaks the registry rules: .*witness key is registered already"
        with (
            th.client(auditor) as c,
            pytest.raises(VerificationError, match=rf"entry {idx}: key.rotate of 'DEU' {words}"),
        ):
            audit_hub(c, vkey)
        with th.client(auditor) as c:
            found = key_change_evidence(c, vkey)
        assert found is not None and found.index == idx
        ev = verify_unauthorised_key_change(found.to_json(), vkey)
        assert ev.party == "DEU" and ev.finding == found.finding


def test_a_quorum_rotation_with_its_approvals_and_a_recovery_pass_every_audit(tmp_path: Path) -> None:
    """No false alarm: DEU recovers with its recovery key, then (both keys lost) by a
    quorum of FRA's and POL's approvals; every audit passes and no evidence is made."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        vkey = th.hub.log.vkey
        first = party_keys("DEU")
        with HubClient(th.url, Identity("DEU", th.keys["DEU"].recovery_signer)) as owner:
            owner.act(PT_REGISTRY, _rotation("recovery", first, recovery_key=first.recovery_vkey))
        second = party_keys("DEU")
        keys = {
            "signing_key": second.vkey,
            "encryption_key": second.enc_public,
            "recovery_key": second.recovery_vkey,
        }
        for p in ("FRA", "POL"):
            with th.client(p) as c:
                c.act(PT_REGISTRY, {"act": "key.approve", "party": p, "for": "DEU", **keys})
        with HubClient(th.url, Identity("DEU", second.signer)) as deu:
            deu.act(PT_REGISTRY, _rotation("quorum", second, recovery_key=second.recovery_vkey))
            deu.act(PT_EVENT, {"party": "DEU", **_activity("back")})
        th.keys["DEU"] = second
        for p in ("DEU", "FRA", None):
            with th.client(p) as c:
                report = audit_hub(c, vkey)
                assert key_change_evidence(c, vkey) is None
        assert [at for who, at in report.key_ends if who == "DEU"] == [3, 6]


def test_cbmnet_log_audit_writes_the_evidence_document(tmp_path: Path) -> None:
    """``cbmnet log audit --hub ... --evidence FILE``: exit 1 with the audit's finding, and
    the document written for a third party, which verifies with the log's key alone."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        idx = _force(th, th.secretariat.signer_key, _rotation("DEU", party_keys("DEU")))
        logv, fkey, out = tmp_path / "log.vkey", tmp_path / "fra.key", tmp_path / "ev.json"
        logv.write_text(th.hub.log.vkey)
        fkey.write_text(th.keys["FRA"].signer)
        base = ["log", "audit", "--hub", th.url, "--vkey", str(logv), "--party", "FRA"]
        r = cli(*base, "--key", str(fkey), "--evidence", str(out))
        assert r.exit_code == 1, r.output
        assert re.search(UNILATERAL.format(idx=idx), r.stderr) and f"written to {out}" in r.stderr
        ev = verify_unauthorised_key_change(out.read_text(), th.hub.log.vkey)
        assert (ev.party, ev.index) == ("DEU", idx)
        r = cli("log", "audit", "--db", f"sqlite:///{tmp_path / 'hub.db'}", "--evidence", str(out))
        assert r.exit_code == 2 and "give its --hub URL" in r.stderr
