"""The hotline console over a real hub on loopback: what each member sees, the live
WebSocket, and (in Debian's chromium) acknowledging with the key loaded into the page.

What an operator relies on: the deadline shown is the agreement's for that precedence;
the countdown stops when its own acknowledgement is logged; a missed deadline is marked
"no answer" from the hub's logged statement; a stranger to the channel sees nothing of it;
the acknowledgement is the party's own signed act, bound to the very message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from cbmnet.hub.deps import COOKIE
from cbmnet.ledger.dsse import pae
from tests.browserkit import screenshot, session_cookie, sign_in
from tests.hubkit import TestHub, running_hub

FLASH_MS = 10 * 60_000


@dataclass
class Clock:
    ms: int

    def __call__(self) -> int:
        return self.ms


@dataclass
class World:
    th: TestHub
    clock: Clock
    flash: int
    routine: int
    tokens: dict[str, str]
    sessions: dict[str, str]
    """Dashboard session cookies, one per party, opened with its token."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hotline-console")
    clock = Clock(1_900_000_000_000)
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp, clock=clock) as th:
        th.register("DEU", "FRA", "POL", "ITA")
        with th.client("DEU") as deu:
            opened = deu.open_channel("deu-fra-pol", "vienna-document-2011", ["DEU", "FRA", "POL"])
        for p in ("FRA", "POL"):
            with th.client(p) as c:
                c.ack(opened["index"])
        with th.client("DEU") as deu:
            flash = deu.send("deu-fra-pol", "flash-1", "flash", "EXERCISE troops at the line")["index"]
            routine = deu.send("deu-fra-pol", "routine-1", "routine", "weekly contact")["index"]
        tokens = {}
        for p in ("DEU", "FRA", "POL", "ITA"):
            with th.client(p) as c:
                tokens[p] = c.token()
        with th.client() as sec:
            tokens["secretariat"] = sec.token()
        sessions = {p: session_cookie(th.url, t) for p, t in tokens.items()}
        yield World(th, clock, flash, routine, tokens, sessions)


def view(w: World, party: str) -> dict[str, Any]:
    r = httpx.get(
        f"{w.th.url}/dashboard/hotline.json", headers={"Cookie": f"{COOKIE}={w.sessions[party]}"}
    )
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def by_index(doc: dict[str, Any], index: int) -> dict[str, Any]:
    found = [m for m in doc["messages"] if m["index"] == index]
    assert len(found) == 1, doc["messages"]
    return found[0]


def test_members_see_deadlines_from_precedence_and_strangers_see_nothing(world: World) -> None:
    fra = view(world, "FRA")
    flash = by_index(fra, world.flash)
    routine = by_index(fra, world.routine)
    assert flash["precedence"] == "flash" and flash["from"] == "DEU"
    # The agreement's hotline terms: FLASH 10 minutes, ROUTINE 6 hours, from integration.
    assert flash["deadline_ms"] - flash["sent_ms"] == FLASH_MS
    assert routine["deadline_ms"] - routine["sent_ms"] == 6 * 3_600_000
    assert set(flash["waiting"]) == {"FRA", "POL"} and flash["may_ack"]
    # The envelope shown is the logged one: its statement is what an ack must name.
    got = world.th.hub.state.entries[world.flash].statement.hex()
    env = flash["envelope"]
    assert hashlib.sha256(pae(env["payloadType"], base64.b64decode(env["payload"]))).hexdigest() == got
    # The sender may not acknowledge its own message.
    assert not by_index(view(world, "DEU"), world.flash)["may_ack"]
    # ITA is no member: no channel, no message (nor its envelope) on the page or the JSON.
    ita = view(world, "ITA")
    assert ita["channels"] == [] and ita["messages"] == []
    page = httpx.get(
        f"{world.th.url}/dashboard/hotline", headers={"Cookie": f"{COOKIE}={world.sessions['ITA']}"}
    )
    assert page.status_code == 200 and "deu-fra-pol" not in page.text and "flash-1" not in page.text
    # The secretariat reads every channel.
    assert by_index(view(world, "secretariat"), world.flash)["channel"] == "deu-fra-pol"
    # Not signed in: the sign-in page, never data.
    assert httpx.get(f"{world.th.url}/dashboard/hotline.json").status_code == 401


def test_server_rendered_page_works_without_script(world: World) -> None:
    page = httpx.get(
        f"{world.th.url}/dashboard/hotline", headers={"Cookie": f"{COOKIE}={world.sessions['POL']}"}
    )
    assert page.status_code == 200
    text = page.text
    assert "FLASH" in text and "ROUTINE" in text and f"cbmnet ack {world.flash}" in text
    assert '<script src="/dashboard/static/hotline.js"></script>' in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in text  # no inline script: the CSP would refuse it


def test_live_stream_says_changed_and_refuses_strangers(world: World) -> None:
    ws_url = world.th.url.replace("http://", "ws://") + "/dashboard/hotline/stream"
    # Without the cookie, or from another site's page: refused before any data flows.
    with pytest.raises(InvalidStatus):
        ws_connect(ws_url, open_timeout=10).close()
    with pytest.raises(InvalidStatus):
        ws_connect(
            ws_url,
            open_timeout=10,
            additional_headers={
                "Cookie": f"{COOKIE}={world.sessions['POL']}",
                "Origin": "http://evil.example",
            },
        ).close()
    with ws_connect(
        ws_url, open_timeout=10, additional_headers={"Cookie": f"{COOKIE}={world.sessions['POL']}"}
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with world.th.client("DEU") as deu:
            deu.send("deu-fra-pol", "priority-1", "priority", "a question")
        assert json.loads(ws.recv(timeout=10))["type"] == "changed"


def test_missed_deadline_is_marked_no_answer_from_the_logged_statement(world: World) -> None:
    with world.th.client("DEU") as deu:
        r = deu.send("deu-fra-pol", "flash-late", "flash", "answer please")
    with world.th.client("FRA") as fra:
        fra.ack(r["index"])
    before = by_index(view(world, "DEU"), r["index"])
    assert before["waiting"] == ["POL"] and before["no_answer"] == []
    world.th.hub.sweep(now=r["integrated_ms"] + FLASH_MS + 1)
    after = by_index(view(world, "DEU"), r["index"])
    assert after["no_answer"] == ["POL"] and after["waiting"] == []
    assert set(after["acks"]) == {"FRA"}
    page = httpx.get(
        f"{world.th.url}/dashboard/hotline", headers={"Cookie": f"{COOKIE}={world.sessions['DEU']}"}
    )
    assert "NO ANSWER: POL" in page.text


def test_browser_acknowledges_with_the_loaded_key_and_the_countdown_stops(
    world: World, browser: Any, tmp_path: Path
) -> None:
    th = world.th
    # The hub's clock is the test's: keep it near real time so the page's countdown runs.
    with th.client("DEU") as deu:
        sent = deu.send("deu-fra-pol", "flash-browser", "flash", "EXERCISE: confirm receipt")
    index = sent["index"]
    key_file = tmp_path / "pol.key"
    key_file.write_text(th.keys["POL"].signer + "\n")
    wrong_key = tmp_path / "fra.key"
    wrong_key.write_text(th.keys["FRA"].signer + "\n")
    page = browser.new_page()
    try:
        sign_in(page, th.url, world.tokens["POL"])
        page.goto(f"{th.url}/dashboard/hotline")
        row = page.locator(f'tr[data-index="{index}"]')
        countdown = row.locator(".countdown")
        page.wait_for_function(
            'i => /left|overdue/.test(document.querySelector(`tr[data-index="${i}"] .countdown`)'
            "?.textContent || '')",
            arg=index,
        )
        assert countdown.get_attribute("data-state") == "running"
        button = row.locator("button.ack")
        assert button.is_disabled()  # no key loaded yet
        # Another party's key is refused in the page, before anything is signed.
        page.set_input_files("#hl-key", str(wrong_key))
        page.wait_for_function(
            "() => /not loaded/.test(document.getElementById('hl-key-status').textContent)"
        )
        assert "not an active signing key of POL" in page.text_content("#hl-key-status")
        # The hotline key opens POL's own copy of each message in the page.
        hpke_file = tmp_path / "POL.hpke"
        hpke_file.write_text(th.keys["POL"].enc_private + "\n")
        wrong_hpke = tmp_path / "FRA.hpke"
        wrong_hpke.write_text(th.keys["FRA"].enc_private + "\n")
        page.set_input_files("#hl-hpke", str(wrong_hpke))
        page.wait_for_function(
            "() => /not loaded:/.test(document.getElementById('hl-hpke-status').textContent)"
        )
        assert "not the hotline key POL registered" in page.text_content("#hl-hpke-status")
        assert row.locator("td.body").text_content() == "sealed"
        page.set_input_files("#hl-hpke", str(hpke_file))
        page.wait_for_function(
            'i => document.querySelector(`tr[data-index="${i}"] td.body`)?.textContent'
            " === 'EXERCISE: confirm receipt'",
            arg=index,
        )
        page.set_input_files("#hl-key", str(key_file))
        page.wait_for_function(
            "() => /loaded:/.test(document.getElementById('hl-key-status').textContent)"
        )
        screenshot(page, "hotline-before-ack")
        row.locator("button.ack").click()
        page.wait_for_function(
            "i => /stopped: acknowledged/.test(document.querySelector("
            "`tr[data-index=\"${i}\"] .countdown`)?.textContent || '')",
            arg=index,
        )
        frozen = countdown.text_content()
        page.wait_for_timeout(1500)
        assert countdown.text_content() == frozen  # stopped: it no longer ticks
        assert countdown.get_attribute("data-state") == "stopped"
        screenshot(page, "hotline-after-ack")
        # The logged ack is POL's own signed act naming this very message.
        ack_index = th.hub.state.acks[(index, "POL")]
        with th.client("DEU") as deu:
            ack = deu.entry(ack_index)
        doc = json.loads(base64.b64decode(ack["envelope"]["payload"]))
        assert doc == {
            "act": "ack",
            "entry": index,
            "party": "POL",
            "statement": th.hub.state.entries[index].statement.hex(),
        }
        assert ack["author"] == "POL"
        assert re.fullmatch(r"[a-z0-9.]+\+[0-9a-f]{8}", ack["envelope"]["signatures"][0]["keyid"])
        # DEU's console, live: POL's acknowledgement appears without a reload.
        deu_page = browser.new_page()
        try:
            sign_in(deu_page, th.url, world.tokens["DEU"])
            deu_page.goto(f"{th.url}/dashboard/hotline")
            deu_row = deu_page.locator(f'tr[data-index="{index}"]')
            deu_page.wait_for_function(
                'i => /POL at/.test(document.querySelector(`tr[data-index="${i}"]`)?.textContent'
                " || '')",
                arg=index,
            )
            assert "waiting for FRA" in (deu_row.text_content() or "")
            with th.client("FRA") as fra:
                fra.ack(index)
            deu_page.wait_for_function(
                "i => /stopped: all acknowledged/.test(document.querySelector("
                "`tr[data-index=\"${i}\"] .countdown`)?.textContent || '')",
                arg=index,
                timeout=15_000,
            )
        finally:
            deu_page.close()
    finally:
        page.close()


def test_browser_sends_a_sealed_signed_message_every_member_opens(
    world: World, browser: Any, tmp_path: Path
) -> None:
    """POL composes a FLASH in its console: sealed in the page to each member, signed with
    POL's key; the hub stores ciphertexts only, and DEU's and FRA's clients open it after
    checking POL's signature."""
    th = world.th
    key_file = tmp_path / "pol.key"
    key_file.write_text(th.keys["POL"].signer + "\n")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    text = "FLASH from the browser: confirm the line is open. Привет, مرحبا"
    try:
        sign_in(page, th.url, world.tokens["POL"])
        page.goto(f"{th.url}/dashboard/hotline")
        page.wait_for_function("() => /Live/.test(document.getElementById('hl-live').textContent)")
        assert page.is_disabled("#hl-send")  # no key loaded
        page.select_option("#hl-channel", "deu-fra-pol")
        page.select_option("#hl-precedence", "flash")
        page.wait_for_function(
            "() => /within 10 minutes/.test(document.getElementById('hl-within').textContent)"
        )
        page.fill("#hl-text", text)
        page.set_input_files("#hl-key", str(key_file))
        page.wait_for_function("() => !document.getElementById('hl-send').disabled")
        screenshot(page, "hotline-compose")
        page.click("#hl-send")
        page.wait_for_function(
            "() => /Sent: entry/.test(document.getElementById('hl-send-status').textContent)"
        )
        sent = int(re.search(r"entry (\d+)", page.text_content("#hl-send-status") or "").group(1))  # type: ignore[union-attr]
    finally:
        page.close()
    assert errors == []
    with th.client("DEU") as deu:
        item = deu.entry(sent)
        assert item["author"] == "POL"
        doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
        assert doc["precedence"] == "flash" and set(doc["ciphertexts"]) == {"DEU", "FRA", "POL"}
        assert text not in json.dumps(item)  # ciphertexts only
        assert deu.read_hotline(item) == text
    with th.client("FRA") as fra:
        assert fra.read_hotline(fra.entry(sent)) == text
