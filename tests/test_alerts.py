"""Alerts that reach people (issue 15, item 5): a real SMTP server (aiosmtpd) and a real
webhook receiver on loopback, a real hub.

What a verification centre relies on: an act addressed to it is mailed and posted within
seconds of its commit; the alert says what came and links to it, never its text; the
webhook's body is signed with the hub key it pinned; a failing receiver is retried; only
the party's own subscription and delivery log are its to see and change; nobody is told of
what it may not read.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cbmnet.acts.model import PT_EVENT
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError
from cbmnet.hub.alerts import KINDS, DeliveryRefused, public_address, read_subscription, signed_text
from cbmnet.hub.service import HubSettings
from cbmnet.ledger.note import parse_verifier_key
from tests.hubcli_helpers import free_port
from tests.hubkit import TestHub, running_hub

VD = "vienna-document-2011"
SECRET = "TEXT THAT MUST NOT LEAVE THE HUB"


class Mailbox:
    """aiosmtpd's handler: every message received, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            msg = message_from_bytes(envelope.content, policy=policy.default)
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, rcpt: str) -> list[Any]:
        with self.lock:
            return [m for r, m in self.messages if rcpt in r]


@dataclass
class Hooks:
    """A webhook receiver: records each POST; fails the first ``fail`` of them with 500."""

    fail: int = 0
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _receiver(hooks: Hooks) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with hooks.lock:
                hooks.posts.append((dict(self.headers.items()), body))
                failing = hooks.fail > 0
                hooks.fail -= 1 if failing else 0
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@dataclass
class World:
    th: TestHub
    mail: Mailbox
    hooks: Hooks
    hook_url: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    mail = Mailbox()
    port = free_port()
    smtp = Controller(mail, hostname="127.0.0.1", port=port)
    smtp.start()
    hooks = Hooks()
    server = _receiver(hooks)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    settings = HubSettings(
        sweep_s=3600,
        checkpoint_s=3600,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="alerts@hub.cbmnet.test",
        public_url="https://hub.cbmnet.test",
        alerts_allow_private=True,  # the receiver is on loopback
    )
    try:
        with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th:
            th.register("DEU", "FRA", "POL")
            yield World(th, mail, hooks, f"http://127.0.0.1:{server.server_address[1]}/cbmnet")
    finally:
        server.shutdown()
        server.server_close()
        smtp.stop()


def _subscribe(w: World, party: str, doc: dict[str, Any]) -> httpx.Response:
    with w.th.client(party) as c:
        token = c.token()
    return httpx.put(
        f"{w.th.url}/v1/alerts", content=json.dumps(doc), headers={"Authorization": f"Bearer {token}"}
    )


def _get(w: World, party: str, path: str) -> dict[str, Any]:
    with w.th.client(party) as c:
        r = httpx.get(f"{w.th.url}{path}", headers={"Authorization": f"Bearer {c.token()}"})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _request(w: World, asker: str, rid: str, to: str) -> dict[str, Any]:
    doc = {
        "agreement": VD,
        "id": rid,
        "type": "request",
        "party": asker,
        "kind": "explanation",
        "to": to,
        "body": SECRET,
    }
    with w.th.client(asker) as c:
        receipt: dict[str, Any] = c.submit(c.sign(PT_EVENT, doc))
    return receipt


def _delivered(w: World, party: str) -> list[dict[str, Any]]:
    return [i for i in _get(w, party, "/v1/alerts/log")["items"] if i["status"] == "delivered"]


def _wait(what: Any, timeout: float = 10.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")


def test_an_act_addressed_to_a_party_is_mailed_and_posted_signed_without_its_text(world: World) -> None:
    w = world
    r = _subscribe(
        w, "DEU", {"emails": ["watch@deu.example"], "webhooks": [w.hook_url], "kinds": ["addressed"]}
    )
    assert r.status_code == 200, r.text
    receipt = _request(w, "FRA", "FRA-why-1", "DEU")
    committed = receipt["integrated_ms"]
    mails = _wait(lambda: w.mail.to("watch@deu.example"))
    posts = _wait(lambda: list(w.hooks.posts))
    msg = mails[0]
    assert "explanation (request) from FRA" in msg["Subject"]
    text = msg.get_content()
    assert "https://hub.cbmnet.test/dashboard/" in text
    assert SECRET not in msg.as_string()
    headers, body = posts[0]
    assert SECRET.encode() not in body
    doc = json.loads(body)
    assert doc["kind"] == "addressed" and doc["event"] == "FRA-why-1" and doc["party"] == "DEU"
    # Signed with the hub key a party pins (GET /v1/hub), over the alert's key, its target,
    # the time it was sent and the body: a replay elsewhere or an altered body does not verify.
    vkey = httpx.get(f"{w.th.url}/v1/hub").json()["hub_vkey"]
    sig = headers["Cbmnet-Signature"]
    assert f'keyid="{vkey}"' in sig
    raw = base64.b64decode(sig.split('ed25519="', 1)[1].rstrip('"'))
    pub = Ed25519PublicKey.from_public_bytes(parse_verifier_key(vkey).public_key)
    key, sent = headers["Cbmnet-Alert"], int(headers["Cbmnet-Sent"])
    assert key.startswith("entry:") and key.endswith(f"|webhook|{w.hook_url}")
    pub.verify(raw, signed_text(key, w.hook_url, sent, body))
    for forged in (
        signed_text(key, "https://elsewhere.example/", sent, body),
        signed_text(key, w.hook_url, sent + 1, body),
        signed_text(key, w.hook_url, sent, body.replace(b"FRA-why-1", b"FRA-why-2")),
        body,
    ):
        with pytest.raises(InvalidSignature):
            pub.verify(raw, forged)
    # Delivered within seconds of the commit, and the log says so.
    log = _wait(
        lambda: [i for i in _get(w, "DEU", "/v1/alerts/log")["items"] if i["status"] == "delivered"]
    )
    assert {i["channel"] for i in log} == {"email", "webhook"}
    for i in log:
        assert parse_time(i["delivered"], "delivered") - committed <= 5_000, i
    # The dashboard's delivery log says the same, to DEU only.
    from tests.browserkit import session_cookie

    with w.th.client("DEU") as c:
        page = httpx.get(
            f"{w.th.url}/dashboard/alerts",
            headers={"Cookie": f"cbmnet_session={session_cookie(w.th.url, c.token())}"},
        ).text
    assert "watch@deu.example" in page and "delivered" in page and SECRET not in page
    # FRA, the author, is told nothing of its own act; POL, not addressed, nothing either.
    assert _get(w, "FRA", "/v1/alerts/log")["items"] == []


def test_nobody_is_alerted_of_what_it_may_not_read(world: World) -> None:
    w = world
    for p in ("DEU", "POL"):
        assert _subscribe(w, p, {"emails": [f"watch@{p.lower()}.example"]}).status_code == 200
    _request(w, "FRA", "FRA-private-1", "POL")  # FRA asks POL: DEU may not read it
    _wait(lambda: w.mail.to("watch@pol.example"))
    time.sleep(1.5)  # the loop runs every half second: DEU's alert would have come
    assert w.mail.to("watch@deu.example") == []
    assert _get(w, "DEU", "/v1/alerts/log")["items"] == []


def test_a_failing_webhook_is_retried_and_the_log_shows_each_attempt(world: World) -> None:
    w = world
    w.hooks.fail = 1
    assert _subscribe(w, "DEU", {"webhooks": [w.hook_url], "kinds": ["addressed"]}).status_code == 200
    _request(w, "FRA", "FRA-why-3", "DEU")
    failed = _wait(lambda: [i for i in _get(w, "DEU", "/v1/alerts/log")["items"] if i["attempts"] >= 1])
    assert failed[0]["status"] == "queued" and failed[0]["last_error"] == "HTTP 500"
    # The retry comes after a backoff (4 s after the first failure).
    done = _wait(
        lambda: [i for i in _get(w, "DEU", "/v1/alerts/log")["items"] if i["status"] == "delivered"],
        timeout=15,
    )
    assert done[0]["attempts"] == 2
    assert len(w.hooks.posts) == 2 and w.hooks.posts[0][1] == w.hooks.posts[1][1]


def test_a_deadline_within_a_week_is_alerted_once(world: World) -> None:
    """FRA asks DEU to explain (VD11 Ch. III: an answer within 48 hours), then DEU subscribes:
    the answer's deadline is alerted (not the request itself: it came before)."""
    w = world
    _request(w, "FRA", "FRA-why-4", "DEU")
    duty = {"emails": ["duty@deu.example"], "kinds": ["due_7d", "due_24h"]}
    assert _subscribe(w, "DEU", duty).status_code == 200
    mails = _wait(lambda: w.mail.to("duty@deu.example"))
    assert "due " in mails[0]["Subject"] and "Ch. III" in mails[0]["Subject"]
    time.sleep(1.5)
    assert len(w.mail.to("duty@deu.example")) == 1  # once, not every round


def test_a_subscription_is_the_partys_own_and_checked_field_by_field(world: World) -> None:
    w = world
    bad = [
        ({"emails": ["not an address"]}, "'emails'[0]"),
        ({"emails": ["a@b.example"], "kinds": ["everything"]}, "'kinds'"),
        ({"emails": ["a@b.example"], "agreements": ["open-skies-1992"]}, "'agreements'"),
        ({"emails": ["a@b.example"], "precedence": "urgent"}, "'precedence'"),
        ({"emails": ["a@b.example"], "webhooks": ["ftp://x.example/"]}, "'webhooks'[0]"),
        ({}, "at least one"),
        ({"emails": ["a@b.example"], "extra": 1}, "'extra'"),
    ]
    for doc, named in bad:
        r = _subscribe(w, "DEU", doc)
        assert r.status_code == 400, (doc, r.text)
        assert named in r.json()["message"], (doc, r.json()["message"])
    assert _get(w, "DEU", "/v1/alerts") == {"party": "DEU", "subscribed": False}
    assert _subscribe(w, "DEU", {"emails": ["a@deu.example"]}).status_code == 200
    assert _get(w, "DEU", "/v1/alerts")["emails"] == ["a@deu.example"]
    assert _get(w, "FRA", "/v1/alerts") == {"party": "FRA", "subscribed": False}  # not DEU's
    r = httpx.put(f"{w.th.url}/v1/alerts", content=json.dumps({"emails": ["x@y.example"]}))
    assert r.status_code == 401


def test_webhooks_to_private_addresses_need_the_operators_leave() -> None:
    """Without ``alerts_allow_private`` the hub posts only to public https URLs: a party
    cannot make it reach into the operator's own network."""
    args: dict[str, Any] = {"agreements": [VD], "since_index": 0, "since_ms": 0}
    for url in (
        "http://hooks.example/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://localhost/x",
        "https://169.254.169.254/latest",
        "https://user:pw@hooks.example/x",
        "https://100.64.1.1/x",
        "https://localhost./x",
        "https://hooks.example:22/x",
        "https://[::1",
        "https://a..b/",
        "https://hooks.example/x y",
    ):
        with pytest.raises(FormatError, match=r"'webhooks'\[0\]"):
            read_subscription("DEU", {"webhooks": [url]}, allow_private=False, **args)
    sub = read_subscription(
        "DEU", {"webhooks": ["https://hooks.example/x"]}, allow_private=False, **args
    )  # type: ignore[arg-type]
    assert sub.webhooks == ("https://hooks.example/x",) and sub.kinds == frozenset(KINDS)


def test_the_outbox_sends_each_alert_once_across_processes(store_url: str) -> None:
    """On both backends: an alert derived twice (two hub processes) is queued once; two
    claimants never both take it; a failure is retried at its time, then given up."""
    from cbmnet.store import open_store

    a, b = open_store(store_url, create=True), open_store(store_url)
    try:
        row = (
            "entry:7:DEU|email|x@deu.example",
            "DEU",
            "email",
            "x@deu.example",
            '{"kind": "addressed"}',
            1000,
        )
        assert a.queue_alerts([row]) == 1
        assert b.queue_alerts([row]) == 0  # the other process derived the same alert
        first = a.claim_alerts(1000, 60_000, 10)
        assert [r.key for r in first] == [row[0]]
        assert b.claim_alerts(1000, 60_000, 10) == []  # leased to a
        assert not b.settle_alert(
            row[0], first[0].lease + 1, delivered_ms=2000, error=None, retry_ms=None
        )
        assert a.settle_alert(row[0], first[0].lease, delivered_ms=None, error="HTTP 500", retry_ms=5000)
        assert b.claim_alerts(4999, 60_000, 10) == []
        again = b.claim_alerts(5000, 60_000, 10)
        assert [(r.key, r.attempts) for r in again] == [(row[0], 1)]
        assert b.settle_alert(row[0], again[0].lease, delivered_ms=None, error="refused", retry_ms=None)
        assert a.claim_alerts(10**12, 60_000, 10) == []
        (logged,) = a.alert_log("DEU", 10)
        assert (
            logged["status"] == "failed"
            and logged["attempts"] == 2
            and logged["last_error"] == "refused"
        )
        assert a.alert_log("FRA", 10) == []
        a.put_alert_subscription("DEU", '{"x": 1}')
        assert b.alert_subscriptions() == {"DEU": '{"x": 1}'}
        b.put_alert_subscription("DEU", None)
        assert a.alert_subscriptions() == {}
    finally:
        a.close()
        b.close()


def test_the_command_line_subscribes_shows_and_stops(world: World, tmp_path: Path) -> None:
    from tests.hubcli_helpers import cli, ok

    key = tmp_path / "deu.key"
    key.write_text(world.th.keys["DEU"].signer + "\n")
    env = {"CBMNET_HUB": world.th.url, "CBMNET_PARTY": "DEU", "CBMNET_KEY": str(key)}
    got = json.loads(
        ok(
            "alerts", "subscribe", "--email", "cli@deu.example", "--kind", "hotline",
            "--precedence", "flash", env=env,
        ).stdout
    )  # fmt: skip
    assert got["emails"] == ["cli@deu.example"] and got["kinds"] == ["hotline"]
    assert json.loads(ok("alerts", "show", env=env).stdout)["precedence"] == "flash"
    bad = cli("alerts", "subscribe", "--email", "cli@deu.example", "--kind", "gossip", env=env)
    assert bad.exit_code == 2 and "'kinds'" in bad.stderr
    assert json.loads(ok("alerts", "stop", env=env).stdout)["subscribed"] is False


def test_entries_committed_while_no_hub_ran_are_alerted_after_the_restart(tmp_path: Path) -> None:
    """The cursor is kept in the store: hub A (its alerts loop driven by hand) looks at the
    log, then a request is logged and A stops before looking again; hub B, started on the
    same store, alerts it."""
    from cbmnet.agreements.loader import bundled
    from cbmnet.hub.app import create_app
    from cbmnet.hub.server import ServerThread
    from cbmnet.hub.service import Hub, init_hub
    from cbmnet.ledger.note import generate_key
    from cbmnet.party.client import HubClient, Identity
    from tests.hubkit import ORIGIN, party_keys

    url = f"sqlite:///{tmp_path / 'log.db'}"
    sec_skey, sec_vkey = generate_key("secretariat.cbmnet.test")
    keys = init_hub(
        url, tmp_path / "k", origin=ORIGIN, secretariat_vkey=sec_vkey, agreements=[bundled(VD)]
    )
    a = Hub(url, keys, HubSettings(sweep_s=3600, checkpoint_s=3600))
    server = ServerThread(create_app(a, run_duties=False))  # no alerts thread: driven here
    server.start()
    try:
        deu, fra = party_keys("DEU"), party_keys("FRA")
        with HubClient(server.url, Identity("secretariat", sec_skey)) as sec:
            for k in (deu, fra):
                sec.register({"party": k.party, "name": k.party, "agreements": [VD],
                              "signing_key": k.vkey, "encryption_key": k.enc_public,
                              "witness_key": k.witness_vkey})  # fmt: skip
        with HubClient(server.url, deu.identity()) as c:
            c._request(
                "PUT", "/v1/alerts", json={"emails": ["later@deu.example"], "kinds": ["addressed"]}
            )
        a.alerts.derive(a.clock())  # A has looked at the log as it stands
        with HubClient(server.url, fra.identity()) as c:
            doc = {"agreement": VD, "id": "FRA-while-down", "type": "request", "party": "FRA",
                   "kind": "explanation", "to": "DEU"}  # fmt: skip
            c.submit(c.sign(PT_EVENT, doc))
    finally:
        server.stop()
        a.close()  # A stops without looking again
    b = Hub(url, keys, HubSettings(sweep_s=3600, checkpoint_s=3600))
    try:
        assert b.alerts.derive(b.clock()) == 1
        (row,) = b.alerts.log_of("DEU", 10)
        assert row["kind"] == "addressed" and "from FRA" in row["summary"]
        assert b.alerts.derive(b.clock()) == 0  # once
    finally:
        b.close()


def test_a_name_is_checked_again_when_the_hub_sends() -> None:
    """Whatever a name resolves to at send time must be public: numeric spellings of
    loopback and names that resolve into the operator's network are refused then."""
    for host in ("127.1", "2130706433", "0x7f000001", "localhost"):
        with pytest.raises(DeliveryRefused, match=r"non-public|not resolved"):
            public_address(host, 443)


def test_a_filers_text_never_reaches_a_subject_line_nor_stops_the_alerts(world: World) -> None:
    w = world
    assert (
        _subscribe(w, "DEU", {"emails": ["watch@deu.example"], "kinds": ["addressed"]}).status_code
        == 200
    )
    with w.th.client("FRA") as fra:
        doc = {"agreement": VD, "id": "FRA-odd-1", "type": "notification", "party": "FRA",
               "form": "x\r\nBcc: someone@else.example", "to": ["DEU"]}  # fmt: skip
        fra.submit(fra.sign(PT_EVENT, doc))
    _request(w, "FRA", "FRA-why-after", "DEU")
    mails = _wait(lambda: len(w.mail.to("watch@deu.example")) >= 2 and w.mail.to("watch@deu.example"))
    subjects = [m["Subject"] for m in mails]
    assert any("notification (notification) from FRA" in x for x in subjects), subjects
    assert not any("Bcc" in x for x in subjects) and all("Bcc" not in m.as_string() for m in mails)
    assert not w.mail.to("someone@else.example")
