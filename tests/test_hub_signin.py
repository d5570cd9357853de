"""Regressions from the adversarial test of a demo hub: sign-in that could be replayed,
and a dashboard sign-in link that was the API bearer token itself. Each test failed on the
code before its fix. Two hub processes on one database are two ``Hub`` objects with their
own servers: they share nothing but the store."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from cbmnet.acts.signin import signed_message
from cbmnet.hub.app import create_app
from cbmnet.hub.deps import COOKIE
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import Hub, HubKeys, HubSettings
from cbmnet.ledger.note import parse_signer_key
from tests.hubkit import TestHub, running_hub


@contextmanager
def second_process(th: TestHub, tmp: Path) -> Iterator[str]:
    """Another hub process on the same database: its own Hub, state and server."""
    hub = Hub(th.hub.url, HubKeys.load(tmp / "hubkeys"), HubSettings(sweep_s=3600, checkpoint_s=3600))
    server = ServerThread(create_app(hub, run_duties=False))
    try:
        yield server.start()
    finally:
        server.stop()
        hub.close()


def signed_challenge(th: TestHub, party: str) -> dict[str, str]:
    """The body of POST /v1/auth/token: a fresh challenge signed with ``party``'s key."""
    doc = httpx.post(th.url + "/v1/auth/challenge", json={"party": party}).json()
    key = parse_signer_key(th.keys[party].signer).private_key
    sig = key.sign(signed_message(doc["origin"], doc["challenge"]))
    return {"challenge": doc["challenge"], "signature": base64.b64encode(sig).decode()}


def test_a_signed_challenge_is_redeemed_once_on_any_process(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, second_process(th, tmp_path) as other:
        th.register("DEU")
        body = signed_challenge(th, "DEU")
        assert httpx.post(th.url + "/v1/auth/token", json=body).status_code == 200
        for url in (th.url, other):  # replayed on the same process, then on another
            r = httpx.post(url + "/v1/auth/token", json=body)
            assert r.status_code == 401, r.text
            assert "challenge: already used; ask for a new one" in r.json()["message"]
        # Two processes redeeming one challenge at the same moment: exactly one succeeds.
        for _ in range(3):
            body = signed_challenge(th, "DEU")
            with ThreadPoolExecutor(2) as pool:
                got = sorted(
                    pool.map(
                        lambda u, b=body: httpx.post(u + "/v1/auth/token", json=b).status_code,
                        (th.url, other),
                    )
                )
            assert got == [200, 401]
        # A fresh challenge still works; a badly signed one spends nothing.
        body = signed_challenge(th, "DEU")
        bad = {**body, "signature": base64.b64encode(bytes(64)).decode()}
        assert httpx.post(other + "/v1/auth/token", json=bad).status_code == 401
        assert httpx.post(other + "/v1/auth/token", json=body).status_code == 200


def code_for(th: TestHub, token: str) -> str:
    r = httpx.post(th.url + "/v1/auth/signin-code", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["party"] == "DEU"
    return str(r.json()["code"])


def post_code(url: str, code: str, **headers: str) -> httpx.Response:
    return httpx.post(url + "/dashboard/login", data={"code": code}, headers=headers)


def test_the_sign_in_link_is_a_one_time_code_not_the_api_token(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, second_process(th, tmp_path) as other:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token()
        # The old link, with the bearer token in it, signs nobody in.
        r = httpx.get(th.url + "/dashboard/login", params={"token": token})
        assert r.status_code == 200 and "set-cookie" not in r.headers
        assert "Sign in as" not in r.text
        # No code without a valid token.
        assert httpx.post(th.url + "/v1/auth/signin-code").status_code == 401
        code = code_for(th, token)
        assert code.count(".") == 1 and token not in code
        # A code is not an API token.
        assert (
            httpx.get(th.url + "/v1/inbox", headers={"Authorization": f"Bearer {code}"}).status_code
            == 401
        )
        # The link shows a page whose form posts the code; the page has no script at all.
        page = httpx.get(th.url + "/dashboard/login", params={"code": code})
        assert page.status_code == 200 and "Sign in as DEU" in page.text
        assert '<form method="post" action="/dashboard/login">' in page.text
        assert "<script" not in page.text and "script-src" not in page.headers["content-security-policy"]
        assert "set-cookie" not in page.headers
        signed = post_code(th.url, code, Origin=th.url)
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        cookie = signed.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/dashboard" in cookie
        )
        session = signed.cookies[COOKIE]
        assert session != token
        dash = httpx.get(th.url + "/dashboard/archive", headers={"Cookie": f"{COOKIE}={session}"})
        assert dash.status_code == 200 and "Signed in as <strong>DEU</strong>" in dash.text
        # The cookie is not an API token either.
        r = httpx.get(th.url + "/v1/inbox", headers={"Authorization": f"Bearer {session}"})
        assert r.status_code == 401
        # The code was spent: on this process and on another one.
        for url in (th.url, other):
            again = post_code(url, code, Origin=url)
            assert again.status_code == 401 and "already used" in again.text
            assert "set-cookie" not in again.headers or COOKIE + '=""' in again.headers["set-cookie"]


def test_cross_site_sign_in_and_sign_out_are_refused(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token()
        code = code_for(th, token)
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": th.url + ".evil.example"},
            {"Referer": "https://evil.example/page"},
            {"Referer": th.url + ".evil.example/dashboard"},
            {},  # neither: not from this site's own page
        ):
            r = post_code(th.url, code, **headers)
            assert r.status_code == 403, (headers, r.text)
            assert "only from this site's own pages" in html.unescape(r.text)
            assert "set-cookie" not in r.headers
        # None of them spent the code: the same one works from the site's own page.
        signed = post_code(th.url, code, Referer=th.url + "/dashboard/login?code=x")
        assert signed.status_code == 303
        session = {"Cookie": f"{COOKIE}={signed.cookies[COOKIE]}"}
        # A foreign page cannot sign the browser out (nor revoke its session).
        out = httpx.post(
            th.url + "/dashboard/logout", headers={**session, "Origin": "https://evil.example"}
        )
        assert out.status_code == 403
        assert httpx.get(th.url + "/dashboard/archive", headers=session).status_code == 200
        assert httpx.get(th.url + "/dashboard/logout", headers=session).status_code == 405


def test_sign_out_revokes_the_session_on_every_process(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, second_process(th, tmp_path) as other:
        th.register("DEU")
        with th.client("DEU") as deu:
            token = deu.token()
        signed = post_code(th.url, code_for(th, token), Origin=th.url)
        kept = {"Cookie": f"{COOKIE}={signed.cookies[COOKIE]}"}  # a copy of the cookie
        for url in (th.url, other):
            assert httpx.get(url + "/dashboard/archive", headers=kept).status_code == 200
        out = httpx.post(th.url + "/dashboard/logout", headers={**kept, "Origin": th.url})
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
        assert f'{COOKIE}=""' in out.headers["set-cookie"]
        for url in (th.url, other):
            r = httpx.get(url + "/dashboard/archive", headers=kept)
            assert r.status_code == 401 and "signed out" in r.text
        # Signing in again opens a new session.
        again = post_code(th.url, code_for(th, token), Origin=th.url)
        fresh = {"Cookie": f"{COOKIE}={again.cookies[COOKIE]}"}
        assert httpx.get(other + "/dashboard/archive", headers=fresh).status_code == 200
