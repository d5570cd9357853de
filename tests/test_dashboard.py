"""The dashboard over a real hub on loopback (SQLite): sign-in by token, pages cut to the
caller, the .ics feed, the archive's exports, escaping.

What an operator relies on: a sign-in link works once its key signed the challenge and
stops when the key is revoked; no page or export shows another pair's private exchange.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import icalendar
import pytest

from cbmnet.acts.model import PT_EVENT, PT_REGISTRY
from cbmnet.hub.deps import COOKIE
from cbmnet.hub.service import HubSettings
from cbmnet.hub.web.dashboard import ics_feed
from tests.browserkit import session_cookie
from tests.hubkit import AGREEMENTS, TestHub, party_keys, running_hub
from tests.test_hub_api import Api, activity, event
from tests.test_verify_js import run_js

SECRET = "req-secret-9"
EVIL = "<script>alert(1)</script>"
PAGES = (
    "/dashboard",
    "/dashboard/deadlines",
    "/dashboard/deadlines.ics",
    "/dashboard/archive",
    "/dashboard/archive.csv",
    "/dashboard/archive.json",
    "/dashboard/log",
)


@dataclass
class World:
    th: TestHub
    api: Api
    revoked_session: str
    """DNK's dashboard session, opened before its key was revoked."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("dash")
    # Page after page in a row: lift the per-party evaluation budget (tested on its own below).
    fast = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)
    with running_hub(f"sqlite:///{tmp / 'log.db'}", tmp, settings=fast) as th:
        api = Api(th)
        try:
            th.register("AUT", "BEL", "CHE", "DNK")
            th.keys["FIN"] = k = party_keys("FIN")
            with th.client() as sec:
                sec.register(
                    {
                        "party": "FIN",
                        "name": EVIL,
                        "agreements": list(AGREEMENTS),
                        "signing_key": k.vkey,
                        "encryption_key": k.enc_public,
                        "witness_key": k.witness_vkey,
                        "contact": {"poc": EVIL},
                    }
                )
            aut_act = activity("AUT", "act-1", "2030-05-01T00:00:00Z", "2030-05-10T00:00:00Z")
            api.act(api.sign("AUT", PT_EVENT, aut_act))
            request = event("AUT", SECRET, "request", kind="explanation", to="BEL")
            api.act(api.sign("AUT", PT_EVENT, request))
            revoked = api.session("DNK")
            revoke = {
                "act": "key.revoke",
                "party": "DNK",
                "by": "recovery",
                "key": th.keys["DNK"].vkey,
            }
            api.act(api.sign("DNK/recovery", PT_REGISTRY, revoke))
            yield World(th, api, revoked)
        finally:
            api.close()


@contextmanager
def session(w: World, party: str | None) -> Iterator[httpx.Client]:
    """A browser-like client, signed in through the sign-in link when ``party`` is given."""
    with httpx.Client(base_url=w.th.url, timeout=30, follow_redirects=False) as http:
        yield signed_in(w, http, party)


def signed_in(w: World, http: httpx.Client, party: str | None) -> httpx.Client:
    """Sign in as a browser does: open the link with a one-time code, post its form."""
    if party is not None:
        code = w.api.signin_code(party).json()["code"]
        page = http.get("/dashboard/login", params={"code": code})
        assert page.status_code == 200 and f"Sign in as {party}" in page.text, page.text
        r = http.post("/dashboard/login", data={"code": code}, headers={"Origin": w.th.url})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dashboard"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    return http


def test_sign_in_link_sets_cookie_and_pages_render(world: World) -> None:
    with session(world, "AUT") as http:
        want = {
            "/dashboard": (
                "Overview",
                "Registered parties",
                "Timeliness",
                "vienna-document-2011",
                '<svg class="spark"',
                'aria-label="Timeliness, month by month: ',
            ),
            "/dashboard/deadlines": ("Deadlines", "pending", "act-1"),
            "/dashboard/archive": ("Notifications and exchanges", "act-1", "/dashboard/entries/"),
            "/dashboard/log": ("Checkpoint", "cosignature"),
        }
        for path, needles in want.items():
            r = http.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"].startswith("text/html")
            assert "no-store" in r.headers["cache-control"]
            for n in needles:
                assert n in r.text, (path, n)
        css = http.get("/dashboard/static/dashboard.css")
        assert css.status_code == 200 and "focus-visible" in css.text
        assert css.headers["content-type"].startswith("text/css")
        # Only files of the static folder, of known types: no way out of it.
        for bad in (
            "../service.py",
            "..%2fservice.py",
            "%2e%2e/dashboard.py",
            ".hidden.js",
            "templates/base.html",
            "nosuch.js",
            "x" * 300 + ".js",
        ):
            assert http.get(f"/dashboard/static/{bad}").status_code == 404, bad
        # Signing out clears the cookie; the pages then refuse.
        out = http.post("/dashboard/logout", headers={"Origin": world.th.url})
        assert out.status_code == 303
        assert http.get("/dashboard").status_code == 401


def test_no_cookie_bad_token_and_revoked_key_are_refused(world: World) -> None:
    with httpx.Client(base_url=world.th.url, timeout=30, follow_redirects=False) as http:
        explain = http.get("/dashboard/login")
        assert explain.status_code == 200 and "no passwords" in explain.text
        for path in PAGES:
            r = http.get(path)
            assert r.status_code == 401, path
            assert "Sign in" in r.text
        assert http.get("/dashboard/login", params={"code": "x.y"}).status_code == 401
        r = http.post("/dashboard/login", data={"code": "x.y"}, headers={"Origin": world.th.url})
        assert r.status_code == 401
        assert COOKIE not in http.cookies
        for path in PAGES:
            r = http.get(path, headers={"Cookie": f"{COOKIE}={world.revoked_session}"})
            assert r.status_code == 401, path
            assert "no longer active" in r.text


def test_private_request_shows_only_to_its_pair(world: World) -> None:
    for party, sees in (("AUT", True), ("BEL", True), ("CHE", False), ("FIN", False)):
        with session(world, party) as http:
            seen = {}
            for path in PAGES:
                r = http.get(path)
                assert r.status_code == 200, (party, path, r.text)
                seen[path] = SECRET in r.text
            assert seen["/dashboard/archive"] is sees, party
            assert seen["/dashboard/archive.json"] is sees, party
            if not sees:
                assert not any(seen.values()), (party, seen)


def test_ics_feed_is_rfc5545_with_one_event_per_pending_obligation(world: World) -> None:
    with session(world, "AUT") as http:
        r = http.get("/dashboard/deadlines.ics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/calendar")
    raw = r.content
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")[:-1]
    assert all(len(ln) <= 75 for ln in lines)
    unfolded = raw.decode().replace("\r\n ", "").split("\r\n")[:-1]
    assert unfolded[0] == "BEGIN:VCALENDAR" and unfolded[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in unfolded and any(u.startswith("PRODID:") for u in unfolded)
    begins = [i for i, u in enumerate(unfolded) if u == "BEGIN:VEVENT"]
    ends = [i for i, u in enumerate(unfolded) if u == "END:VEVENT"]
    assert len(begins) == len(ends) and all(b < e for b, e in zip(begins, ends, strict=True))
    pending = [
        o
        for ag in AGREEMENTS
        for o in world.api.ok("/v1/obligations", "AUT", params={"agreement": ag})["obligations"]
        if o["party"] == "AUT" and o["status"] == "pending"
    ]
    assert pending and len(begins) == len(pending)
    for b, e in zip(begins, ends, strict=True):
        props = {u.split(":", 1)[0] for u in unfolded[b + 1 : e]}
        assert {"UID", "DTSTAMP", "DTSTART", "SUMMARY"} <= props
    uids = [u for u in unfolded if u.startswith("UID:")]
    assert len(set(uids)) == len(uids)
    dtstart = {u.removeprefix("DTSTART:") for u in unfolded if u.startswith("DTSTART:")}
    assert all(len(d) == 16 and d.endswith("Z") and d[8] == "T" for d in dtstart)


def test_ics_text_is_escaped_and_folded() -> None:
    """Escaping and folding are the library's: checked on the bytes (RFC 5545 §§3.1,
    3.3.11) and by reading the feed back with the library's own parser."""
    ob = {
        "id": "x:1",
        "party": "AUT",
        "provision": "p, with; odd\\chars " + "é" * 100,
        "kind": "notification",
        "due": "2030-01-01T00:00:00Z",
        "subjects": ["a", "b"],
        "agreement": "ag",
    }
    text = ics_feed("hub.test/log", "AUT", [ob], 0)
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    unfolded = text.replace("\r\n ", "")
    assert "SUMMARY:AUT due: p\\, with\\; odd\\\\chars " in unfolded
    assert "DTSTART:20300101T000000Z\r\n" in text
    assert "DTSTAMP:19700101T000000Z\r\n" in text
    event = icalendar.Calendar.from_ical(text).walk("VEVENT")[0]
    assert str(event["summary"]) == f"AUT due: {ob['provision']} (notification)"
    assert str(event["uid"]) == "ag/x:1@hub.test/log"


def test_csv_and_json_exports_match_the_archive(world: World) -> None:
    with session(world, "BEL") as http:
        items = http.get("/dashboard/archive.json").json()["items"]
        api_items = world.api.items("/v1/entries", "BEL")
        assert [i["index"] for i in items] == [i["index"] for i in api_items if i["agreement"]]
        rows = list(csv.DictReader(io.StringIO(http.get("/dashboard/archive.csv").text)))
        assert [int(r["index"]) for r in rows] == [i["index"] for i in items]
        for r, i in zip(rows, items, strict=True):
            assert r["event_id"] == (i["event_id"] or "") and r["author"] == i["author"]
            assert r["receipt_url"] == f"/v1/entries/{i['index']}/proof"
        page = http.get("/dashboard/archive").text
        for i in items:
            assert f'href="/dashboard/entries/{i["index"]}/envelope"' in page
            assert f'href="/dashboard/entries/{i["index"]}/proof"' in page
        # One click away with the session cookie: the logged envelope and its receipt.
        first = items[0]["index"]
        env = http.get(f"/dashboard/entries/{first}/envelope")
        assert env.status_code == 200 and "attachment" in env.headers["content-disposition"]
        assert env.content == world.th.hub.envelope(first)
        proof = http.get(f"/dashboard/entries/{first}/proof")
        assert proof.status_code == 200 and proof.text.startswith("c2sp.org/tlog-proof")
        assert http.get("/dashboard/entries/999999/proof").status_code == 404
        assert http.get("/dashboard/entries/x/envelope").status_code == 404
        # Free-text search: a case-blind substring of the event id (or form, kind, author).
        hits = http.get("/dashboard/archive.json", params={"q": SECRET.upper()[:8]}).json()["items"]
        assert [i["event_id"] for i in hits] == [SECRET]
        assert http.get("/dashboard/archive.json", params={"q": "no-such-thing"}).json()["items"] == []
        page_q = http.get("/dashboard/archive", params={"q": SECRET}).text
        assert 'name="q" type="search" value="req-secret-9"' in page_q
        # Filters apply to the page and both exports alike.
        mine = http.get("/dashboard/archive.json", params={"party": "AUT", "kind": "request"}).json()
        assert [i["event_id"] for i in mine["items"]] == [SECRET]
        one = list(
            csv.DictReader(
                io.StringIO(
                    http.get("/dashboard/archive.csv", params={"party": "AUT", "kind": "request"}).text
                )
            )
        )
        assert [r["event_id"] for r in one] == [SECRET]
        # The envelope and receipt links answer with the caller's bearer token.
        idx = mine["items"][0]["index"]
        assert json.loads(world.api.get(f"/v1/entries/{idx}", "BEL").text)["event_id"] == SECRET


def test_untrusted_text_is_escaped(world: World) -> None:
    with session(world, "CHE") as http:
        page = http.get("/dashboard").text
        assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        r = http.get("/dashboard/archive", params={"form": '"><script>x()</script>'})
        assert r.status_code == 200
        assert "<script>x()" not in r.text and "&lt;script&gt;x()" in r.text


def test_secretariat_sees_the_aggregate(world: World) -> None:
    with session(world, "secretariat") as http:
        page = http.get("/dashboard").text
        assert "all parties" in page
        for p in ("AUT", "BEL", "CHE"):
            assert f"<td>{p}</td>" in page
        assert SECRET in http.get("/dashboard/archive").text


def test_cli_prints_a_sign_in_link_that_works(tmp_path: Path) -> None:
    from tests.hubcli_helpers import cli

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        key = tmp_path / "DEU.key"
        key.write_text(th.keys["DEU"].signer + "\n")
        r = cli(
            "dashboard",
            "login",
            env={"CBMNET_HUB": th.url, "CBMNET_PARTY": "DEU", "CBMNET_KEY": str(key)},
        )
        assert r.exit_code == 0, r.output
        link = r.stdout.strip()
        assert link.startswith(th.url + "/dashboard/login?code=")
        with httpx.Client() as http:
            page = http.get(link)
            assert page.status_code == 200 and "Sign in as DEU" in page.text
            code = parse_qs(urlsplit(link).query)["code"][0]
            r = http.post(
                th.url + "/dashboard/login",
                data={"code": code},
                headers={"Origin": th.url},
                follow_redirects=True,
            )
            assert r.status_code == 200 and "Signed in as <strong>DEU</strong>" in r.text


# ---- inspections and quotas; verify an entry in the browser ---------------------------------

VD = "vienna-document-2011"


def _row(page: str, host: str) -> str:
    """The quota table row of ``host`` (first table of the page: inspections)."""
    start = page.index(f"<td>{host}</td>")
    return page[start : page.index("</tr>", start)]


def test_quotas_page_shows_the_hubs_numbers_and_only_readable_requests(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000)
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=settings) as th:
        th.register("DEU", "FRA", "POL", "ITA")
        api = Api(th)
        try:
            for who in ("FRA", "POL"):
                with th.client(who) as c:
                    c.event(
                        {"agreement": VD, "id": f"insp-{who}", "type": "request",
                         "kind": "inspection", "to": "DEU", "team_size": 4}
                    )  # fmt: skip
            with th.client("DEU") as deu:
                deu.event(
                    {"agreement": VD, "id": "ok-FRA", "type": "response", "request": "insp-FRA",
                     "decision": "accept"}
                )  # fmt: skip
            with th.client("FRA") as fra:
                to_deu = fra.quota(VD, "DEU", "inspection")
                to_pol = fra.quota(VD, "POL", "inspection")
            assert to_deu["exhausted"] and to_deu["remaining_for_requester"] == 0
            assert to_pol["obliged"] and to_pol["remaining_for_host"] == 3
            w = World(th, api, "")
            with session(w, "FRA") as http:
                r = http.get("/dashboard/quotas")
                assert r.status_code == 200, r.text
                page = r.text
            assert "Inspections and quotas" in page and 'href="/dashboard/quotas"' in page
            deu_row = _row(page, "DEU")
            used = 3 - to_deu["remaining_for_host"]
            assert f'<meter min="0" max="3" value="{used}"' in deu_row
            assert f"<td>{to_deu['remaining_for_host']}</td>" in deu_row
            assert "<td>0</td>" in deu_row and "exhausted" in deu_row
            assert to_deu["reason"] in html.unescape(deu_row)
            pol_row = _row(page, "POL")
            assert '<meter min="0" max="3" value="0"' in pol_row and "obliged" in pol_row
            # Its own request and its answer; POL's request to DEU is not FRA's to read.
            assert "insp-FRA" in page and "answered: accept" in page
            assert "insp-POL" not in page
            with session(w, "POL") as http:
                pol = http.get("/dashboard/quotas").text
            assert "insp-POL" in pol and "pending" in pol and "insp-FRA" not in pol
            with session(w, "DEU") as http:
                host = http.get("/dashboard/quotas").text
            assert "insp-FRA" in host and "insp-POL" in host  # both were sent to DEU
            with session(w, "ITA") as http:
                ita = http.get("/dashboard/quotas").text
            assert "insp-FRA" not in ita and "insp-POL" not in ita and "No requests." in ita
        finally:
            api.close()


def _secret_index(w: World) -> int:
    items = w.api.items("/v1/entries", "AUT", kind="request")
    return next(int(i["index"]) for i in items if i["event_id"] == SECRET)


def test_verify_page_only_for_a_readable_entry(world: World, tmp_path: Path) -> None:
    idx = _secret_index(world)
    with session(world, "CHE") as http:
        for path in (f"/dashboard/verify/{idx}", f"/dashboard/verify?index={idx}"):
            r = http.get(path)
            assert r.status_code == 403, r.text
            assert SECRET not in r.text and "tlog-proof@v1" not in r.text
            assert "verify.js" not in r.text
        assert http.get("/dashboard/verify/999999").status_code == 404
        assert http.get("/dashboard/verify").status_code == 400
    with session(world, "BEL") as http:
        r = http.get(f"/dashboard/verify/{idx}")
        assert r.status_code == 200, r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "unsafe-inline" not in r.headers["content-security-policy"]
        page = r.text
        assert '<script src="/dashboard/static/verify.js"></script>' in page
        assert SECRET in page and world.th.hub.log.vkey in page
        assert "where it does not" in page  # honest: the signature needs Ed25519 in WebCrypto
        proof = html.unescape(page.split('<pre id="verify-proof">', 1)[1].split("</pre>", 1)[0])
        assert proof.startswith("c2sp.org/tlog-proof@v1\nextra ") and f"\nindex {idx}\n" in proof
        same = http.get(f"/dashboard/verify?index={idx}")
        assert same.status_code == 200 and f"index {idx}" in same.text
        js = http.get("/dashboard/static/verify.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "crypto.subtle.digest" in js.text
        assert f'href="/dashboard/verify/{idx}"' in http.get("/dashboard/archive").text
        assert 'action="/dashboard/verify"' in http.get("/dashboard/log").text
    # What the page embeds is what the browser checks: verify.js accepts it as served.
    got = run_js(tmp_path, [], [{"text": proof, "vkey": world.th.hub.log.vkey}])["proofs"][0]
    assert got["ok"] and got["message"].startswith(f"verified: entry {idx} is in the tree"), got


def test_pages_that_evaluate_share_the_callers_evaluation_budget(tmp_path: Path) -> None:
    """The overview runs the engine: a party reloading it in a loop gets 429 with
    Retry-After, as from the API, while another party's pages still answer."""
    # A burst of one, then one every two seconds.
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=0.5)
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th:
        th.register("AUT", "BEL")
        with th.client("AUT") as a, th.client("BEL") as b:
            aut, bel = session_cookie(th.url, a.token()), session_cookie(th.url, b.token())
        with httpx.Client(base_url=th.url, timeout=30) as http:
            first = http.get("/dashboard", headers={"Cookie": f"{COOKIE}={aut}"})
            again = http.get("/dashboard/deadlines", headers={"Cookie": f"{COOKIE}={aut}"})
            assert first.status_code == 200
            assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1
            # Pages that do not evaluate, and other parties, are not held back.
            assert (
                http.get("/dashboard/archive", headers={"Cookie": f"{COOKIE}={aut}"}).status_code == 200
            )
            assert http.get("/dashboard", headers={"Cookie": f"{COOKIE}={bel}"}).status_code == 200


def test_deadlines_page_by_page_with_filters(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeline shows open obligations first, a page at a time, filterable by status and
    agreement; every obligation is reachable through the "next" links, none twice."""
    import re

    from cbmnet.hub.web import dashboard

    with session(world, "secretariat") as http:
        full = http.get("/dashboard/deadlines", params={"status": "all"}).text
        total = int(re.search(r"of (\d+), by due date", full).group(1))  # type: ignore[union-attr]
        assert total >= 3
        monkeypatch.setattr(dashboard, "DEADLINES_PAGE", 2)
        seen: list[str] = []
        url: str | None = "/dashboard/deadlines?status=all"
        while url is not None:
            page = http.get(url).text
            rows = re.findall(r'<tr class="status-(\w+)"><td><time datetime="([^"]+)">', page)
            assert 1 <= len(rows) <= 2, (url, page[-3000:])
            seen += [f"{s} {d}" for s, d in rows]
            nxt = re.search(r'href="(/dashboard/deadlines\?[^"]*offset=\d+)"', page)
            url = html.unescape(nxt.group(1)) if nxt else None
        assert len(seen) == total
        dues = [x.split()[1] for x in seen]
        assert dues == sorted(dues)
        missed = http.get("/dashboard/deadlines", params={"status": "missed"}).text
        assert 'class="status-pending"' not in missed
        none = http.get("/dashboard/deadlines", params={"agreement": "no-such"}).text
        assert "Nothing to show." in none
        odd = http.get("/dashboard/deadlines", params={"status": "<x>", "offset": "-5"})
        assert odd.status_code == 200 and "&lt;x&gt;" not in odd.text


def test_overview_shows_each_keys_span_and_a_revocation_boundary(world: World) -> None:
    """DNK's key was revoked (a stolen key): the overview says from which entry on acts
    signed with it are refused; the other parties' keys sign from their registration."""
    state = world.th.hub.state
    dnk = state.parties["DNK"].keys[0]
    assert dnk.revoked and dnk.until is not None
    with session(world, "AUT") as http:
        page = http.get("/dashboard").text
    assert f"key 1: REVOKED at entry {dnk.until} (signed entries {dnk.since} to {dnk.until - 1})" in page
    aut = state.parties["AUT"].keys[0]
    assert f"key 1: signs from entry {aut.since}" in page
