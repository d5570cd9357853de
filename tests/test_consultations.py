"""Consultations (Vienna Document Ch. III) and communication checks, over a real hub."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cbmnet.compliance.timeutil import format_time
from tests.hubkit import running_hub

VD = "vienna-document-2011"
ICT = "osce-ict-cbm-2016"
HOUR = 3_600_000


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Obligations by their first subject (the request they answer)."""
    return {o["subjects"][0]: o for o in report["obligations"] if o["subjects"]}


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(item["envelope"]["payload"])))


def test_explanation_then_meeting_are_tracked_like_any_obligation(
    store_url: str, tmp_path: Path
) -> None:
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        with th.client("DEU") as deu, th.client("FRA") as fra, th.client("POL") as pol:
            deu.event(
                {
                    "agreement": VD,
                    "id": "unusual-1",
                    "type": "activity",
                    "start": "2027-03-01T00:00:00Z",
                    "end": "2027-03-04T00:00:00Z",
                    "category": "land",
                    "size": {"troops": 5000},
                }
            )
            req = fra.event(
                {
                    "agreement": VD,
                    "id": "why-1",
                    "type": "request",
                    "kind": "explanation",
                    "to": "DEU",
                    "activity": "unusual-1",
                    "body": "Please explain the concentration near the border.",
                }
            )
            t0 = req["integrated_ms"]
            pending = _by_id(fra.obligations(VD, format_time(t0 + HOUR)))
            assert pending["why-1"]["status"] == "pending" and pending["why-1"]["party"] == "DEU"
            deu.event(
                {
                    "agreement": VD,
                    "id": "because-1",
                    "type": "response",
                    "request": "why-1",
                    "decision": "answer",
                }
            )
            meet = fra.event(
                {"agreement": VD, "id": "meet-1", "type": "request", "kind": "meeting", "to": "DEU"}
            )
            later = format_time(meet["integrated_ms"] + 49 * HOUR)
            view = _by_id(fra.obligations(VD, later))
            assert view["why-1"]["status"] == "met" and view["why-1"]["met_by"] == "because-1"
            assert view["meet-1"]["status"] == "missed"
            # The request was between FRA and DEU: POL sees neither it nor what it owes.
            assert "why-1" not in _by_id(pol.obligations(VD, later))
            findings = [
                f for f in fra.obligations(VD, later)["findings"] if f["subjects"][:1] == ["meet-1"]
            ]
            assert [f["code"] for f in findings] == ["reply.missing"]
            # The hub states the overdue meeting in the log, once.
            logged = th.hub.sweep(now=meet["integrated_ms"] + 49 * HOUR)
            kinds = [fra.entry(r.index) for r in logged if r.index is not None]
            overdue = [k for k in kinds if _payload(k).get("subjects") == ["meet-1"]]
            assert len(overdue) == 1 and _payload(overdue[0])["party"] == "DEU"
            again = th.hub.sweep(now=meet["integrated_ms"] + 50 * HOUR)
            assert all(_payload(fra.entry(r.index)).get("subjects") != ["meet-1"] for r in again)


def test_communication_checks_pass_or_miss_and_the_result_is_logged(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client() as sec, th.client("DEU") as deu, th.client("FRA") as fra:
            sent = sec.communication_checks(ICT)
            assert len(sent) == 2
            checks = {i["event_id"]: i for i in deu.inbox(kind="request")["items"]}
            assert len(checks) == 1  # DEU sees its own check only
            (check_id,) = checks
            deu.event(
                {
                    "agreement": ICT,
                    "id": "pong-1",
                    "type": "response",
                    "request": check_id,
                    "decision": "answer",
                }
            )
            t = max(r["integrated_ms"] for r in sent) + 25 * HOUR
            logged = th.hub.sweep(now=t)
            results = {}
            for r in logged:
                item = fra.entry(r.index)
                if item["kind"] == "check.result":
                    p = _payload(item)
                    results[p["party"]] = p["result"]
            assert results == {"DEU": "passed", "FRA": "missed"}
            # Results are public to the agreement's parties: they feed the indicators.
            assert {i["form"] for i in deu.entries(kind="check.result")["items"]} == {"passed", "missed"}
            assert not [
                r for r in th.hub.sweep(now=t + HOUR) if fra.entry(r.index)["kind"] == "check.result"
            ]
