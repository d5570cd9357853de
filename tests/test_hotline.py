"""Hotline over a real hub: end-to-end encryption, store and forward, and "no answer"."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cbmnet.acts.model import PT_HOTLINE
from cbmnet.errors import ConflictError, ForbiddenError, FormatError, VerificationError
from cbmnet.party.client import HubClient
from tests.hubkit import TestHub, running_hub

SECRET = "FLASH convoy at grid 4417, hold fire, acknowledge 7f3a9c"


async def _collect(
    client: HubClient, after: int, count: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    async def run() -> None:
        async for item in client.stream(after=after):
            out.append(item)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


def _raw_store_text(url: str) -> bytes:
    """Everything the store holds, as bytes: the SQLite files, or every row of every table."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        blobs = [p.read_bytes() for p in path.parent.glob(path.name + "*")]
        return b"".join(blobs)
    out = []
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()
        ]
        for t in tables:
            for row in conn.execute(f"SELECT * FROM {t}").fetchall():
                for v in row:
                    out.append(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode())
    return b"\n".join(out)


def _channel(th: TestHub) -> None:
    """DEU opens a channel; FRA and POL agree to it by acknowledging the opening."""
    th.register("DEU", "FRA", "POL")
    with th.client("DEU") as deu:
        opened = deu.open_channel("deu-fra-pol", "vienna-document-2011", ["DEU", "FRA", "POL"])
    for p in ("FRA", "POL"):
        with th.client(p) as c:
            c.ack(opened["index"])


def test_flash_to_offline_member_arrives_in_order_on_reconnect(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th:
        _channel(th)
        with th.client("DEU") as deu, th.client("FRA") as fra, th.client("POL") as pol:
            start = deu.entries()["next"]
            sent = []
            for i, prec in enumerate(["flash", "immediate", "routine"]):
                r = deu.send("deu-fra-pol", f"m{i}", prec, f"{SECRET} #{i}")
                sent.append(r["index"])
            assert sent == sorted(sent)
            # FRA was offline throughout: it reconnects from its cursor and gets all, in order.
            got = asyncio.run(_collect(fra, start, 3))
            assert [g["index"] for g in got] == sent
            assert [fra.read_hotline(g) for g in got] == [f"{SECRET} #{i}" for i in range(3)]
            assert json.loads(base64.b64decode(got[0]["envelope"]["payload"]))["precedence"] == "flash"
            # A reconnect from the middle gets only what came after.
            again = asyncio.run(_collect(fra, sent[0], 2))
            assert [g["index"] for g in again] == sent[1:]
            # The sender reads its own traffic back (it encrypted to itself as well).
            own = asyncio.run(_collect(deu, start, 3))
            assert deu.read_hotline(own[0]) == f"{SECRET} #0"
            # Pushes count as delivered; acknowledgement is a separate, signed act.
            pol.ack(sent[0])
            status = deu.status(sent[0])["addressees"]
            assert status["POL"]["acknowledged_by_entry"] is not None
            assert status["FRA"]["acknowledged_by_entry"] is None

            def fra_delivered() -> bool:
                return deu.status(sent[0])["addressees"]["FRA"]["delivered_ms"] is not None

            _wait(fra_delivered)
        # Nothing of the body in the clear anywhere in the store (files or rows).
        raw = _raw_store_text(store_url)
        assert SECRET.encode() not in raw
        assert base64.b64encode(SECRET.encode())[:24] not in raw


def _wait(cond: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_missed_acknowledgement_is_logged_as_no_answer(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th:
        _channel(th)
        with th.client("DEU") as deu, th.client("FRA") as fra, th.client("POL") as pol:
            r = deu.send("deu-fra-pol", "flash-1", "flash", SECRET)
            fra.ack(r["index"])
            # Nine minutes on: still within FLASH's ten; nothing to state.
            assert th.hub.sweep(now=r["integrated_ms"] + 9 * 60_000) == []
            logged = th.hub.sweep(now=r["integrated_ms"] + 11 * 60_000)
            assert len(logged) == 1
            entry = deu.entry(logged[0].index)
            assert entry["kind"] == "hotline.no_answer" and entry["author"] == "hub"
            doc = json.loads(base64.b64decode(entry["envelope"]["payload"]))
            assert doc["party"] == "POL" and doc["entry"] == r["index"] and doc["precedence"] == "flash"
            # Stated once, whoever sweeps again (another process would sign the same bytes).
            assert th.hub.sweep(now=r["integrated_ms"] + 20 * 60_000) == []
            # The silent member sees the evidence too; a stranger to the channel does not.
            assert pol.entry(logged[0].index)["ref"] == r["index"]
            # ROUTINE has six hours.
            r2 = deu.send("deu-fra-pol", "routine-1", "routine", "weekly check")
            assert th.hub.sweep(now=r2["integrated_ms"] + 5 * 3_600_000) == []
            assert len(th.hub.sweep(now=r2["integrated_ms"] + 6 * 3_600_000 + 1)) == 2


def test_hotline_rules(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL", "ITA")
        with th.client("DEU") as deu, th.client("ITA") as ita:
            first = deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA"])
            # The same signed act again is a replay: stored once, the original receipt.
            again = deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA"])
            assert again["duplicate"] and again["index"] == first["index"]
            with pytest.raises(ConflictError):
                deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA", "POL"])
            # A stranger may neither open a channel for others nor write into one.
            with pytest.raises(ForbiddenError):
                ita.open_channel("fra-pol", "vienna-document-2011", ["FRA", "POL"])
            keys = deu.member_keys("deu-fra")
            env = ita.hotline_envelope("deu-fra", "x1", "flash", "hello", keys)
            with pytest.raises(ForbiddenError):
                ita.submit(env)
            assert ita.channels() == []
            # Every member needs its ciphertext; plaintext fields are refused outright.
            partial = deu.sign(
                PT_HOTLINE,
                {
                    "act": "hotline.message",
                    "party": "DEU",
                    "channel": "deu-fra",
                    "id": "p1",
                    "precedence": "flash",
                    "suite": "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-128-GCM",
                    "ciphertexts": {"DEU": "AAAA"},
                },
            )
            with pytest.raises(FormatError, match="one ciphertext for each member"):
                deu.submit(partial)
            deu.send("deu-fra", "same-id", "priority", "one")
            with pytest.raises(ConflictError, match="used before"):
                deu.send("deu-fra", "same-id", "priority", "two")


def test_ciphertext_is_bound_to_sender_and_message(tmp_path: Path) -> None:
    """A ciphertext copied into another message (or under another sender) does not open."""
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as deu, th.client("FRA") as fra:
            deu.open_channel("deu-fra", "vienna-document-2011", ["DEU", "FRA"])
            r = deu.send("deu-fra", "orig", "flash", SECRET)
            item = fra.entry(r["index"])
            doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
            forged = fra.sign(PT_HOTLINE, {**doc, "party": "FRA", "id": "copy"})
            r2 = fra.submit(forged)
            copied = deu.entry(r2["index"])
            with pytest.raises(VerificationError):
                deu.read_hotline(copied)
            assert deu.read_hotline(item) == SECRET
