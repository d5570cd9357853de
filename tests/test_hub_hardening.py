"""Regressions from the security review: each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from cbmnet.errors import StoreError
from cbmnet.hub.service import HubSettings
from cbmnet.party.client import HubClient, Identity
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"


def _activity(eid: str) -> dict[str, Any]:
    return {
        "agreement": VD,
        "id": eid,
        "type": "activity",
        "start": "2027-09-01T00:00:00Z",
        "end": "2027-09-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 1000},
    }


def _ws_url(th: TestHub, path: str, token: str, after: int = -1) -> str:
    return th.url.replace("http://", "ws://") + f"{path}?token={token}&after={after}"


def test_an_open_stream_ends_when_the_key_is_revoked(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        recovery = Identity("DEU", th.keys["DEU"].recovery_signer)
        with th.client("DEU") as deu, th.client("FRA") as fra, HubClient(th.url, recovery) as owner:
            token = deu.token()

            async def run() -> tuple[list[str], int | None]:
                seen: list[str] = []
                async with websockets.connect(_ws_url(th, "/v1/stream", token, after=1)) as ws:
                    await asyncio.to_thread(fra.event, _activity("before"))
                    seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["event_id"])
                    await asyncio.to_thread(
                        owner.act,
                        "application/vnd.cbmnet.registry+json",
                        {
                            "act": "key.revoke",
                            "party": "DEU",
                            "by": "recovery",
                            "key": th.keys["DEU"].vkey,
                        },
                    )
                    await asyncio.to_thread(fra.event, _activity("after"))
                    try:
                        while True:
                            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["event_id"])
                    except websockets.ConnectionClosed as e:
                        return seen, e.rcvd.code if e.rcvd else None

            seen, code = asyncio.run(run())
            assert seen == ["before"] and code == 4401


def test_binary_frames_do_not_leak_stream_handlers(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token()
            before = th.hub.listener_count

            async def run() -> None:
                for _ in range(5):
                    async with websockets.connect(_ws_url(th, "/v1/stream", token, after=10**9)) as ws:
                        await ws.send(b"\x00\x01binary")
                        await asyncio.sleep(0.05)

            asyncio.run(run())
            deadline = time.monotonic() + 10
            while th.hub.listener_count > before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert th.hub.listener_count == before


def test_a_failed_commit_is_never_shown_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as deu, th.client("FRA") as fra:
            store = th.hub.wstore
            real = store.insert_nodes
            shown: list[list[int]] = []

            def failing(rows: Any) -> None:
                # While the doomed act is admitted (in memory) but not committed, a reader looks.
                shown.append([e.index for e in th.hub.views.entries_for("FRA", after=-1, limit=100)])
                raise StoreError("disk on fire")

            monkeypatch.setattr(store, "insert_nodes", failing)
            with pytest.raises(StoreError):
                deu.event(_activity("phantom"))
            monkeypatch.setattr(store, "insert_nodes", real)
            assert shown == [[0, 1]]  # the two registrations, not the phantom at 2
            r = deu.event(_activity("real"))
            assert r["index"] == 2
            items = fra.entries()["items"]
            assert [i["event_id"] for i in items] == [None, None, "real"]

            async def first_pushed() -> str:
                async for item in fra.stream(after=1):
                    return str(item["event_id"])
                return ""

            assert asyncio.run(asyncio.wait_for(first_pushed(), 10)) == "real"


def test_hostile_tokens_and_payloads_are_client_errors(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token()
            body = token.partition(".")[0]
            for bad in (f"{body}.\u00e9\u00e9", "x" * 10, f"{body}.{'A' * 43}"):
                hdr = f"Bearer {bad}".encode()  # raw bytes: a hostile client sends anything
                r = httpx.get(th.url + "/v1/inbox", headers={b"Authorization": hdr})
                assert r.status_code == 401, (bad, r.text)
                assert r.json()["error"] == "unauthorized"
            r = httpx.post(
                th.url + "/v1/auth/token", json={"challenge": "e30.\u00e9", "signature": "AAAA"}
            )
            assert r.status_code == 401
            deep = "[" * 100_000 + "]" * 100_000
            huge = '{"act": "ack", "party": "DEU", "entry": ' + "9" * 5000 + "}"
            for payload in (deep, huge):
                env = deu.sign(
                    "application/vnd.cbmnet.ack+json", {"act": "ack", "party": "DEU", "entry": 0}
                )
                doc = json.loads(env)
                doc["payload"] = base64.b64encode(payload.encode()).decode()
                r = httpx.post(th.url + "/v1/acts", json=doc)
                assert r.status_code == 400, r.text
                assert "not JSON" in r.json()["message"]


def test_obligations_only_for_the_agreements_parties_and_rate_limited(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=0.5)
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=settings) as th:
        th.register("DEU")
        th.register("RUS", agreements=("osce-ict-cbm-2016",))
        with th.client("DEU") as deu, th.client("RUS") as rus:
            from cbmnet.errors import ForbiddenError, RateLimitedError

            with pytest.raises(ForbiddenError, match="not registered for"):
                rus.obligations(VD)
            deu.obligations(VD)
            with pytest.raises(RateLimitedError):
                deu.obligations(VD, "2027-01-01T00:00:00Z")


def test_one_cosignature_line_per_registered_witness(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        th.hub.checkpoint_if_grown()
        size = th.hub.rlog.latest_checkpoint().size
        lines = "".join(
            f"\u2014 nobody{i}.test {base64.b64encode(bytes(76)).decode()}\n" for i in range(50)
        )
        r = httpx.post(th.url + f"/v1/log/cosignatures?size={size}", content=lines)
        assert r.status_code == 400 and "at most one cosignature line" in r.json()["message"]
        # The same line fifty times is one line: checked once (and refused: nobody's key).
        one = f"\u2014 nobody.test {base64.b64encode(bytes(76)).decode()}\n"
        r = httpx.post(th.url + f"/v1/log/cosignatures?size={size}", content=one * 50)
        assert r.status_code in (400, 422), r.text
