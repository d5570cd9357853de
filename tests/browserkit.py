"""A real browser for dashboard tests: Playwright (Python) driving Debian's chromium.

Also the dashboard's sign-in, as a party's software and a browser do it: a one-time code
from ``POST /v1/auth/signin-code``, posted by the sign-in page's form for a session cookie.

Nothing is downloaded: Playwright's own browser builds are never used, only the
system's ``chromium`` (``.ci/run`` installs it). Without it the browser tests skip
locally with the reason and fail in CI, where skipping would hide a broken dashboard.
Screenshots go to ``build/screenshots/`` as test artefacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.hub.deps import COOKIE

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # a closed network: no phoning home
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The system chromium, or skip (locally) / fail (CI) saying why."""
    found = os.environ.get("CBMNET_CHROMIUM") or shutil.which("chromium")
    if not found:
        msg = "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(msg + " (in CI the browser tests must run)")
        pytest.skip(msg)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium per test module, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - it is a test dependency
        if os.environ.get("CI"):
            pytest.fail("playwright (Python) is not installed")
        pytest.skip("playwright (Python) is not installed")
    exe = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page PNG under build/screenshots (kept by CI as an artefact)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = SHOTS / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    return out


def signin_code(url: str, token: str) -> str:
    """A one-time sign-in code for the party whose API token this is."""
    r = httpx.post(f"{url}/v1/auth/signin-code", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return str(r.json()["code"])


def session_cookie(url: str, token: str) -> str:
    """A dashboard session (the cookie's value) for the party whose API token this is."""
    r = httpx.post(
        f"{url}/dashboard/login", data={"code": signin_code(url, token)}, headers={"Origin": url}
    )
    assert r.status_code == 303, r.text
    return r.cookies[COOKIE]


def sign_in(page: Any, url: str, token: str) -> None:
    """Open a sign-in link in the browser and press its button, as an operator does."""
    page.goto(f"{url}/dashboard/login?code={signin_code(url, token)}")
    with page.expect_navigation():
        page.click("form[action='/dashboard/login'] button[type=submit]")
