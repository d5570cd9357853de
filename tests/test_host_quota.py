"""The host's own question before it answers a request: would refusing it be a finding?

``GET /v1/quota?agreement=A&request=ID`` answers the host of the request (and the
secretariat), counted as the engine judges a refusal: at the request's time, on the planned
visit, on the entries the host may read. Anyone else is told no such request is addressed
to them, in the same words whether the request exists or not. Real hub on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cbmnet.compliance.quota import WHOLE_RECORD
from cbmnet.errors import NotFoundError
from cbmnet.hub.service import HubSettings
from tests.hubcli_helpers import cli, ok
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"
HOST = "DEU"
VISITORS = ("FRA", "POL", "ITA", "NLD")
FAST = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)


@pytest.fixture
def th(tmp_path: Path) -> Iterator[TestHub]:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as hub:
        hub.register(HOST, *VISITORS)
        yield hub


def _request(th: TestHub, visitor: str, rid: str) -> None:
    with th.client(visitor) as c:
        c.event({"agreement": VD, "id": rid, "type": "request", "kind": "inspection", "to": HOST})


def _answer(th: TestHub, rid: str, decision: str) -> None:
    with th.client(HOST) as deu:
        deu.event(
            {"agreement": VD, "id": f"{rid}-r", "type": "response", "request": rid, "decision": decision}
        )


def _refused_within_quota(th: TestHub) -> set[str]:
    with th.client() as sec:
        rep = sec.obligations(VD)
    return {
        s
        for f in rep["findings"]
        if f["code"] == "quota.refusal_within_quota"
        for s in f["subjects"]
        if not s.endswith("-r")
    }


def test_the_host_learns_whether_a_refusal_would_be_a_finding_as_the_engine_judges_it(
    th: TestHub,
) -> None:
    for visitor in VISITORS[:3]:
        rid = f"insp-{visitor.lower()}"
        _request(th, visitor, rid)
        with th.client(HOST) as deu:
            got = deu.request_quota(VD, rid)
        assert got["obliged"] is True and got["exhausted"] is False, got
        assert (got["host"], got["requester"], got["request_kind"]) == (HOST, visitor, "inspection")
        assert got["basis"] == f"entries readable by {HOST}" and got["caveat"] is None, got
        _answer(th, rid, "accept")
    # The fourth inspection of the year: the quota of three is spent, a refusal is lawful.
    _request(th, "NLD", "insp-nld")
    with th.client(HOST) as deu:
        fourth = deu.request_quota(VD, "insp-nld")
    assert fourth["exhausted"] is True and fourth["obliged"] is False, fourth
    assert fourth["remaining_for_host"] == 0
    with th.client() as sec:
        assert sec.request_quota(VD, "insp-nld")["basis"] == WHOLE_RECORD
    _answer(th, "insp-nld", "refuse")
    assert _refused_within_quota(th) == set()


def test_a_refusal_the_answer_called_obliged_is_the_engines_finding(th: TestHub) -> None:
    _request(th, "FRA", "insp-fra")
    with th.client(HOST) as deu:
        assert deu.request_quota(VD, "insp-fra")["obliged"] is True
    _answer(th, "insp-fra", "refuse")
    assert _refused_within_quota(th) == {"insp-fra"}


def test_no_one_but_the_host_learns_of_a_request_through_it(th: TestHub) -> None:
    _request(th, "FRA", "insp-fra")
    said = set()
    for party, rid in [
        ("FRA", "insp-fra"),
        ("POL", "insp-fra"),
        ("POL", "insp-none"),
        (HOST, "insp-none"),
    ]:
        with th.client(party) as c, pytest.raises(NotFoundError) as err:
            c.request_quota(VD, rid)
        said.add(str(err.value).replace(party, "X").replace(rid, "R"))
    assert len(said) == 1, said  # the same words, whether the request exists or not


def test_request_and_host_are_not_asked_together(th: TestHub) -> None:
    with th.client("FRA") as c:
        for params in [
            {"agreement": VD, "request": "r", "host": HOST},
            {"agreement": VD, "request": "r", "kind": "inspection"},
            {"agreement": VD, "host": HOST},
            {"agreement": VD},
        ]:
            r = httpx.get(
                f"{th.url}/v1/quota", params=params, headers={"Authorization": f"Bearer {c.token()}"}
            )
            assert r.status_code == 400, (params, r.text)
            assert r.json()["message"].startswith("quota: "), r.text


def test_cbmnet_quota_asks_both_questions_from_the_command_line(th: TestHub, tmp_path: Path) -> None:
    _request(th, "FRA", "insp-fra")
    keys = {}
    for p in (HOST, "FRA"):
        keys[p] = tmp_path / f"{p}.key"
        keys[p].write_text(th.keys[p].signer + "\n")
    env = {"CBMNET_HUB": th.url, "CBMNET_PARTY": HOST, "CBMNET_KEY": str(keys[HOST])}
    got = json.loads(ok("quota", "--agreement", VD, "--request", "insp-fra", env=env).stdout)
    assert (got["requester"], got["obliged"]) == ("FRA", True)
    fra = {**env, "CBMNET_PARTY": "FRA", "CBMNET_KEY": str(keys["FRA"])}
    ask = json.loads(
        ok("quota", "--agreement", VD, "--host", "POL", "--kind", "inspection", env=fra).stdout
    )
    assert (ask["host"], ask["requester"], ask["obliged"]) == ("POL", "FRA", True)
    bad = cli("quota", "--agreement", VD, "--request", "insp-fra", "--host", HOST, env=env)
    assert bad.exit_code == 2 and "quota: give either --request" in bad.stderr
    hidden = cli("quota", "--agreement", VD, "--request", "insp-fra", env=fra)
    assert hidden.exit_code != 0 and "no request 'insp-fra'" in hidden.stderr
