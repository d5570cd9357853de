"""Inspections, reports and observers over a real hub: quotas told before a request is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cbmnet.errors import ForbiddenError, NotFoundError
from cbmnet.hub.service import HubSettings
from tests.hubkit import running_hub

VD = "vienna-document-2011"


def _request(rid: str, host: str, **extra: Any) -> dict[str, Any]:
    return {"agreement": VD, "id": rid, "type": "request", "kind": "inspection", "to": host, **extra}


def test_inspection_quota_is_told_before_the_request_and_enforced_after(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=settings) as th:
        th.register("DEU", "FRA", "POL", "ITA", "BEL")
        with th.client("DEU") as deu:
            for who in ("FRA", "POL", "ITA"):
                with th.client(who) as c:
                    # Each requester counts only what it may read (ADR 0006): the others'
                    # accepted visits are private to them and DEU, so it is told so in words.
                    before = c.quota(VD, "DEU", "inspection")
                    assert before["obliged"] and not before["exhausted"]
                    assert before["remaining_for_host"] == 3
                    assert before["basis"] == f"entries readable by {who}"
                    assert f"not shown to {who}" in before["caveat"]
                    c.event(_request(f"insp-{who}", "DEU", team_size=4))
                deu.event(
                    {
                        "agreement": VD,
                        "id": f"ok-{who}",
                        "type": "response",
                        "request": f"insp-{who}",
                        "decision": "accept",
                    }
                )
            with th.client("BEL") as bel:
                # BEL sees none of them: obliged as far as it can see, with the caveat ...
                fourth = bel.quota(VD, "DEU", "inspection")
                assert fourth["obliged"] and fourth["remaining_for_host"] == 3
                assert "not shown to BEL" in fourth["caveat"]
                bel.event(_request("insp-BEL", "DEU", team_size=4))
            # ... and the engine, on the whole record, holds no refusal against DEU.
            deu.event(
                {
                    "agreement": VD,
                    "id": "no-BEL",
                    "type": "response",
                    "request": "insp-BEL",
                    "decision": "refuse",
                    "reason": "quota for the year is spent",
                }
            )
            with th.client() as sec:
                codes = [f["code"] for f in sec.obligations(VD)["findings"]]
                assert "quota.refusal_within_quota" not in codes
            with th.client("FRA") as fra:
                again = fra.quota(VD, "DEU", "inspection")
                assert again["exhausted"] and again["remaining_for_requester"] == 0
                # The inspecting state reports on its own visit, naming the request.
                fra.event(
                    {
                        "agreement": VD,
                        "id": "rep-FRA",
                        "type": "notification",
                        "form": "inspection_report",
                        "request": "insp-FRA",
                        "body": "Entry 0600Z, left 1800Z; nothing unusual.",
                    }
                )
            # Only a side of the visit reports on it; to others the request does not exist.
            no_event = "field 'request': no event 'insp-FRA' you may refer to in"
            with th.client("BEL") as bel, pytest.raises(NotFoundError, match=no_event):
                bel.event(
                    {
                        "agreement": VD,
                        "id": "rep-x",
                        "type": "notification",
                        "form": "inspection_report",
                        "request": "insp-FRA",
                    }
                )


def test_an_observer_invitation_is_accepted_by_an_invited_state(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as deu, th.client("FRA") as fra:
            deu.event(
                {
                    "agreement": VD,
                    "id": "big-1",
                    "type": "activity",
                    "start": "2027-09-01T00:00:00Z",
                    "end": "2027-09-05T00:00:00Z",
                    "category": "land",
                    "size": {"troops": 14000},
                }
            )
            deu.event(
                {
                    "agreement": VD,
                    "id": "inv-1",
                    "type": "notification",
                    "form": "observation_invitation",
                    "activity": "big-1",
                }
            )
            r = fra.event(
                {
                    "agreement": VD,
                    "id": "yes-1",
                    "type": "response",
                    "request": "inv-1",
                    "decision": "accept",
                }
            )
            # The inviting state sees the acceptance.
            assert deu.entry(r["index"])["event_id"] == "yes-1"
            with pytest.raises(ForbiddenError):  # nobody accepts its own invitation
                deu.event(
                    {
                        "agreement": VD,
                        "id": "yes-2",
                        "type": "response",
                        "request": "inv-1",
                        "decision": "accept",
                    }
                )


def test_indicators_count_only_what_the_caller_may_read(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        with (
            th.client("FRA") as fra,
            th.client("DEU") as deu,
            th.client("POL") as pol,
            th.client() as sec,
        ):
            fra.event(
                {"agreement": VD, "id": "why", "type": "request", "kind": "explanation", "to": "DEU"}
            )
            deu.event(
                {
                    "agreement": VD,
                    "id": "because",
                    "type": "response",
                    "request": "why",
                    "decision": "answer",
                }
            )

            def deu_row(view: dict[str, Any]) -> dict[str, Any]:
                return dict([r for r in view["rows"] if r["party"] == "DEU"][-1])

            for reader in (fra, sec):  # a side of the consultation, and the secretariat
                row = deu_row(reader.indicators(VD))
                assert row["responsiveness"]["reaction"]["answers"] == 1
                assert row["reciprocity"]["FRA"]["gives"]["answers"] == 1
            outsider = deu_row(pol.indicators(VD))
            assert outsider["responsiveness"]["reaction"]["sample"] == 0
            assert outsider["reciprocity"] == {}
