"""An operator's path through the dashboard in Debian's chromium, over a real hub.

Signs in with the link ``cbmnet dashboard login`` prints (and its page's button), reads
the overview (with its trend charts), moves by the navigation with the keyboard, downloads the .ics feed,
opens an entry from the archive and verifies it in the browser (WebCrypto), and sees the
witness verdict on the log page. Screenshots land in build/screenshots/.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cbmnet.acts.model import PT_EVENT
from cbmnet.cli.main import app as cli
from cbmnet.party.client import HubClient
from cbmnet.party.witness import Witness, witness_hub
from cbmnet.store import open_store
from tests.browserkit import screenshot
from tests.hubkit import TestHub, running_hub
from tests.test_hub_api import activity


@dataclass
class World:
    th: TestHub
    notified: int
    link: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("browser")
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp) as th:
        th.register("AUT", "BEL")
        with th.client("AUT") as aut:
            doc = activity("AUT", "ex-1", "2030-05-01T00:00:00Z", "2030-05-10T00:00:00Z")
            notified = aut.act(PT_EVENT, {**doc, "exercise": True})["index"]
        with th.client("BEL") as bel:
            bel.ack(notified)
        for p in ("AUT", "BEL"):
            store = open_store(f"sqlite:///{tmp / f'w-{p}.db'}", create=True)
            try:
                with HubClient(th.url) as c:
                    witness_hub(c, Witness(store, th.keys[p].witness_signer, [th.hub.log.vkey]))
            finally:
                store.close()
        # The sign-in link exactly as the CLI prints it for BEL's operator.
        key = tmp / "bel.key"
        key.write_text(th.keys["BEL"].signer)
        out = CliRunner().invoke(
            cli, ["dashboard", "login", "--hub", th.url, "--party", "BEL", "--key", str(key)]
        )
        assert out.exit_code == 0, out.output
        link = next(w for w in out.output.split() if "/dashboard/login?code=" in w)
        yield World(th, notified, link)


def test_operator_path_through_the_dashboard(world: World, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(world.link)  # the sign-in page: its button posts the one-time code
        with page.expect_navigation():
            page.click("form[action='/dashboard/login'] button[type=submit]")
        assert page.url.endswith("/dashboard")
        assert "Signed in as" in page.text_content("header") and "BEL" in page.text_content("header")
        # The overview: indicators with their parts and trend lines drawn as SVG.
        assert page.locator("svg.spark").count() >= 3
        label = page.locator("svg.spark").first.get_attribute("aria-label") or ""
        assert label.startswith("Timeliness, month by month: ")
        screenshot(page, "overview")
        # Keyboard: the skip link comes first, then the navigation.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "/dashboard"

        # Deadlines and the calendar feed a verification centre subscribes to.
        page.click("nav >> text=Deadlines")
        page.wait_for_url("**/dashboard/deadlines")
        screenshot(page, "deadlines")
        with page.expect_download() as dl:
            page.click("text=Calendar feed (.ics)")
        feed = Path(dl.value.path()).read_bytes().decode()
        assert feed.startswith("BEGIN:VCALENDAR\r\n") and "END:VCALENDAR" in feed

        # The archive: the EXERCISE mark, then verify the entry in the browser.
        page.click("nav >> text=Notifications and exchanges")
        row = page.locator("tr", has=page.locator(f'a[href="/dashboard/verify/{world.notified}"]'))
        assert "EXERCISE" in (row.text_content() or "")
        with page.expect_download() as env_dl:
            row.locator(f'a[href="/dashboard/entries/{world.notified}/envelope"]').click()
        assert Path(env_dl.value.path()).read_bytes() == world.th.hub.envelope(world.notified)
        row.locator(f'a[href="/dashboard/verify/{world.notified}"]').click()
        result = page.locator("#verify-result")
        page.wait_for_function(
            "() => /verified/i.test(document.getElementById('verify-result').textContent)"
            " && !/Checking/.test(document.getElementById('verify-result').textContent)"
        )
        assert "ok" in (result.get_attribute("class") or "")
        assert not (result.text_content() or "").startswith("NOT")
        screenshot(page, "verify")

        # The same page on a tampered proof says NOT verified (the check is really made).
        proof = page.text_content("#verify-proof") or ""
        lines = proof.split("\n")
        entry_line = next(i for i, ln in enumerate(lines) if ln and not ln.startswith(("c2sp", "index")))
        raw = bytearray(base64.b64decode(lines[entry_line]))
        raw[-2] ^= 1
        lines[entry_line] = base64.b64encode(bytes(raw)).decode()
        verdict = page.evaluate(
            "async t => (await cbmnetVerify.verifyProofText(t, document.getElementById('verify-vkey')"
            ".textContent.trim())).ok",
            "\n".join(lines),
        )
        assert verdict is False

        # The log: checkpoints with both witnesses' cosignatures and the policy's verdict.
        page.click("nav >> text=Log")
        assert "Verdict: meets the majority quorum: 2 of 2" in (page.text_content("main") or "")
        screenshot(page, "log")
        assert errors == []
    finally:
        context.close()
