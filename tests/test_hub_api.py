"""The hub's HTTP API, end to end over real HTTP on loopback, on SQLite and PostgreSQL.

What a party can rely on: its acts are logged once, with a receipt it verifies offline;
what it is owed shows up as met, missed or pending; it reads what is addressed to it and
nothing else; bad input is refused with a clear error and leaves the log untouched.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_REGISTRY
from cbmnet.acts.signin import signed_message
from cbmnet.acts.state import act_json
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import VerificationError
from cbmnet.hub.app import MAX_REQUEST_BYTES, create_app
from cbmnet.hub.service import HubSettings
from cbmnet.ledger import dsse
from cbmnet.ledger.note import (
    generate_key,
    new_cosigner,
    parse_signer_key,
    parse_verifier_key,
    split_note,
)
from cbmnet.ledger.policy import single_log_policy
from cbmnet.ledger.tlogproof import verify_entry_proof
from cbmnet.ledger.witness import cosignature_lines
from tests.conftest import pg_base_url, with_schema
from tests.hubkit import AGREEMENTS, TestHub, party_keys, running_hub

AG = "vienna-document-2011"
POINT = {"type": "Point", "coordinates": [16.37, 48.21]}
JSON = {"Content-Type": "application/json"}


# ---- helpers --------------------------------------------------------------------------------


class FakeClock:
    """The hub's clock (integration times, delivery records), moved by the test."""

    def __init__(self, at: str) -> None:
        self.ms = parse_time(at, "clock")

    def __call__(self) -> int:
        return self.ms

    def set(self, at: str) -> int:
        self.ms = parse_time(at, "clock")
        return self.ms


def signed(signer: str, payload_type: str, doc: Mapping[str, Any]) -> bytes:
    return dsse.sign(payload_type, act_json(doc), [signer])


def event(party: str, eid: str, etype: str, **fields: Any) -> dict[str, Any]:
    return {"agreement": AG, "id": eid, "type": etype, "party": party, **fields}


def activity(party: str, eid: str, start: str, end: str, troops: int = 10_000) -> dict[str, Any]:
    return event(
        party,
        eid,
        "activity",
        start=start,
        end=end,
        category="land",
        size={"troops": troops},
        location=POINT,
    )


def mint_token(http: httpx.Client, party: str, signer: str) -> httpx.Response:
    """Sign the hub's challenge for ``party`` with ``signer``; the answer of /v1/auth/token."""
    ch = http.post("/v1/auth/challenge", json={"party": party})
    assert ch.status_code == 200, ch.text
    doc = ch.json()
    sig = parse_signer_key(signer).private_key.sign(signed_message(doc["origin"], doc["challenge"]))
    return http.post(
        "/v1/auth/token",
        json={"challenge": doc["challenge"], "signature": base64.b64encode(sig).decode()},
    )


def envelope_bytes(item: Mapping[str, Any]) -> bytes:
    return json.dumps(item["envelope"], separators=(",", ":"), sort_keys=True).encode()


def payload_of(item: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(item["envelope"]["payload"]))
    return doc


def assert_error(r: httpx.Response, status: int, code: str, *needles: str) -> str:
    """A clear JSON error: exactly {"error": code, "message": text}, the text naming ``needles``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    doc = r.json()
    assert set(doc) == {"error", "message"}, doc
    assert doc["error"] == code, doc
    message = doc["message"]
    assert isinstance(message, str) and message
    for n in needles:
        assert n in message, (n, message)
    return message


@dataclass
class Api:
    """Raw HTTP to a running hub, with tokens minted the way any party's software would."""

    th: TestHub
    http: httpx.Client = field(init=False)
    tokens: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.th.url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def token(self, party: str) -> str:
        if party not in self.tokens:
            r = mint_token(self.http, party, self.signer(party))
            assert r.status_code == 200, r.text
            assert r.json()["party"] == party
            self.tokens[party] = r.json()["token"]
        return self.tokens[party]

    def signin_code(self, party: str) -> httpx.Response:
        return self.http.post("/v1/auth/signin-code", headers=self.auth(party))

    def session(self, party: str) -> str:
        """A dashboard session, signed in the way a browser is: a one-time code, posted."""
        if party not in self.sessions:
            code = self.signin_code(party)
            assert code.status_code == 200, code.text
            r = self.http.post(
                "/dashboard/login",
                data={"code": code.json()["code"]},
                headers={"Origin": self.th.url},
            )
            assert r.status_code == 303, r.text
            self.sessions[party] = r.cookies["cbmnet_session"]
        return self.sessions[party]

    def auth(self, party: str | None) -> dict[str, str]:
        return {} if party is None else {"Authorization": f"Bearer {self.token(party)}"}

    def get(self, path: str, party: str | None = None, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.auth(party), **kw)

    def ok(self, path: str, party: str | None = None, **kw: Any) -> Any:
        r = self.get(path, party, **kw)
        assert r.status_code == 200, (path, party, r.status_code, r.text)
        return r.json()

    def submit(self, envelope: bytes | Iterator[bytes], **kw: Any) -> httpx.Response:
        headers = {**JSON, **kw.pop("headers", {})}
        return self.http.post("/v1/acts", content=envelope, headers=headers, **kw)

    def act(self, envelope: bytes) -> dict[str, Any]:
        r = self.submit(envelope)
        assert r.status_code == 201, r.text
        receipt: dict[str, Any] = r.json()
        assert receipt["duplicate"] is False
        return receipt

    def signer(self, party: str) -> str:
        if party == "secretariat":
            return self.th.secretariat.signer_key
        if party.endswith("/recovery"):  # a party's offline recovery key (docs/adr/0007)
            return self.th.keys[party.removesuffix("/recovery")].recovery_signer
        return self.th.keys[party].signer

    def sign(self, party: str, payload_type: str, doc: Mapping[str, Any]) -> bytes:
        return signed(self.signer(party), payload_type, doc)

    def size(self) -> int:
        return int(self.ok("/healthz")["log_size"])

    def items(self, path: str, party: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged listing (``/v1/entries``, ``/v1/inbox``)."""
        out: list[dict[str, Any]] = []
        after = -1
        while True:
            page = self.ok(path, party, params={**params, "after": after, "limit": 50})
            if not page["items"]:
                return out
            out += page["items"]
            after = page["next"]

    def public_key(self, party: str) -> bytes:
        return parse_signer_key(self.th.keys[party].signer).public_key


@contextmanager
def api_for(th: TestHub) -> Iterator[Api]:
    api = Api(th)
    try:
        yield api
    finally:
        api.close()


def check_receipt(receipt: Mapping[str, Any], sent: bytes, log_vkey: str) -> None:
    """Offline: the proof verifies under the log's key alone and holds the very act sent."""
    got = verify_entry_proof(receipt["tlog_proof"], single_log_policy(log_vkey))
    assert got.index == receipt["index"]
    assert got.entry.integrated_ms == receipt["integrated_ms"]
    assert got.entry.envelope == sent
    # The proof is worth something: another log's key does not accept it.
    _, other_vkey = generate_key("hub.cbmnet.test/log")
    with pytest.raises(VerificationError):
        verify_entry_proof(receipt["tlog_proof"], single_log_policy(other_vkey))


# ---- end to end -----------------------------------------------------------------------------


def test_notify_acknowledge_verify_offline_and_comply(store_url: str, tmp_path: Path) -> None:
    clock = FakeClock("2027-03-01T00:00:00Z")
    with running_hub(store_url, tmp_path, clock=clock) as th, api_for(th) as api:
        info = api.ok("/v1/hub")
        th.register("AUT", "BEL", "CHE")

        # Registrations are the secretariat's own signed acts, readable by every party.
        regs = api.items("/v1/entries", "CHE", kind="party.register")
        assert [(i["author"], i["form"]) for i in regs] == [
            ("secretariat", "AUT"),
            ("secretariat", "BEL"),
            ("secretariat", "CHE"),
        ]
        sec_key = parse_verifier_key(info["secretariat_vkey"]).public_key
        for item in regs:
            dsse.verify(envelope_bytes(item), [sec_key])
        parties = {p["id"]: p for p in api.ok("/v1/parties", "BEL")["parties"]}
        assert sorted(parties) == ["AUT", "BEL", "CHE"]
        assert parties["AUT"]["signing_keys"] == [base64.b64encode(api.public_key("AUT")).decode()]

        # AUT declares an activity, then notifies it 60 days ahead (42 are required).
        env_act = api.sign(
            "AUT", PT_EVENT, activity("AUT", "act-1", "2027-05-01T00:00:00Z", "2027-05-10T00:00:00Z")
        )
        check_receipt(api.act(env_act), env_act, info["log_vkey"])
        clock.set("2027-03-02T00:00:00Z")
        env_n1 = api.sign(
            "AUT",
            PT_EVENT,
            event("AUT", "n-1", "notification", form="prior_notification", activity="act-1"),
        )
        rec_n1 = api.act(env_n1)
        check_receipt(rec_n1, env_n1, info["log_vkey"])
        n1 = rec_n1["index"]

        def status() -> dict[str, Any]:
            doc: dict[str, Any] = api.ok(f"/v1/entries/{n1}/status", "AUT")
            assert doc["index"] == n1
            addressees: dict[str, Any] = doc["addressees"]
            return addressees

        nothing = {"delivered_ms": None, "acknowledged_by_entry": None, "acknowledged_ms": None}
        assert status() == {"BEL": nothing, "CHE": nothing}

        acks: dict[str, dict[str, Any]] = {}
        for n, party in enumerate(("BEL", "CHE")):
            # The party fetches its inbox: the hub records delivery, nothing more.
            fetched = clock.set(f"2027-03-0{3 + 2 * n}T00:00:00Z")
            inbox = api.items("/v1/inbox", party, kind="notification")
            assert [i["index"] for i in inbox] == [n1]
            item = inbox[0]
            assert (item["author"], item["event_id"], item["form"]) == (
                "AUT",
                "n-1",
                "prior_notification",
            )
            # It is AUT's very act, verifiable under the key the registry holds for AUT.
            aut_keys = [base64.b64decode(k) for k in parties["AUT"]["signing_keys"]]
            assert dsse.verify(envelope_bytes(item), aut_keys).payload == dsse.parse(env_n1).payload
            assert status()[party] == {**nothing, "delivered_ms": fetched}

            # Then it acknowledges, with an act it signs: a statement of its own.
            clock.set(f"2027-03-0{4 + 2 * n}T00:00:00Z")
            env_ack = api.sign(party, PT_ACK, {"act": "ack", "entry": n1, "party": party})
            acks[party] = api.act(env_ack)
            check_receipt(acks[party], env_ack, info["log_vkey"])
            assert status()[party] == {
                "delivered_ms": fetched,
                "acknowledged_by_entry": acks[party]["index"],
                "acknowledged_ms": acks[party]["integrated_ms"],
            }
            assert acks[party]["integrated_ms"] > fetched
        # Acknowledging twice is refused; the first acknowledgement stands.
        size = api.size()
        again = api.submit(api.sign("BEL", PT_ACK, {"act": "ack", "entry": n1, "party": "BEL", "n": 2}))
        assert_error(again, 409, "conflict", f"entry {acks['BEL']['index']}")
        assert api.size() == size

        # Each ack goes to the sender, not to the other addressee.
        aut_inbox = [i["index"] for i in api.items("/v1/inbox", "AUT", kind="ack")]
        assert aut_inbox == [acks["BEL"]["index"], acks["CHE"]["index"]]
        che_all = {i["index"] for i in api.items("/v1/entries", "CHE")}
        assert acks["BEL"]["index"] not in che_all and acks["CHE"]["index"] in che_all

        # Compliance as of 1 April 2027: the prior notification is met (sent 2 March, due 20
        # March); the 2027 annual calendar that had to list act-1 (due 15 November 2026) never
        # came, so that obligation is missed.
        as_of = "2027-04-01T00:00:00Z"
        for viewer in ("AUT", "BEL", "CHE"):
            rep = api.ok("/v1/obligations", viewer, params={"agreement": AG, "as_of": as_of})
            assert rep["agreement"] == AG and rep["as_of"] == as_of
            obs = {o["id"]: o for o in rep["obligations"]}
            met = obs["notification-land:AUT:act-1"]
            assert (met["status"], met["met_by"], met["party"]) == ("met", "n-1", "AUT")
            assert met["due"] == "2027-03-20T00:00:00Z"
            missed = obs["calendar-land:AUT:act-1:2027"]
            assert (missed["status"], missed["met_by"], missed["party"]) == ("missed", None, "AUT")
            codes = {(f["code"], f["party"], tuple(f["subjects"])) for f in rep["findings"]}
            assert ("calendar.missing", "AUT", ("act-1",)) in codes
            assert not any(c.startswith("notification.") for c, _, _ in codes)

        # The hub states each missed obligation of its registered parties once, signed.
        registered = {"AUT", "BEL", "CHE"}
        expected = {
            (ag, o["id"])
            for ag in AGREEMENTS
            for o in api.ok("/v1/obligations", "secretariat", params={"agreement": ag, "as_of": as_of})[
                "obligations"
            ]
            if o["status"] == "missed" and o["party"] in registered
        }
        assert (AG, "calendar-land:AUT:act-1:2027") in expected
        size = api.size()
        logged = th.hub.sweep(parse_time(as_of, "as_of"))
        assert len(logged) == len(expected)
        assert api.size() == size + len(logged)
        hub_key = parse_verifier_key(info["hub_vkey"]).public_key
        overdue = api.items("/v1/entries", "BEL", kind="obligation.overdue")
        assert sorted(i["index"] for i in overdue) == sorted(r.index for r in logged)
        stated = set()
        for item in overdue:
            assert item["author"] == "hub"
            dsse.verify(envelope_bytes(item), [hub_key])
            doc = payload_of(item)
            stated.add((doc["agreement"], doc["obligation"]))
            if doc["obligation"] == "calendar-land:AUT:act-1:2027":
                assert (doc["party"], doc["subjects"]) == ("AUT", ["act-1"])
        assert stated == expected
        # Once: sweeping again, now or a day later, adds nothing.
        assert th.hub.sweep(parse_time(as_of, "as_of")) == []
        assert th.hub.sweep(parse_time("2027-04-02T00:00:00Z", "as_of")) == []
        assert api.size() == size + len(logged)


# ---- observers' reports ---------------------------------------------------------------------


def test_an_invited_state_reports_on_the_invitation_the_inviting_state_cannot(
    store_url: str, tmp_path: Path
) -> None:
    """``observer_terms`` judges each observer's report by the invitation it names in
    ``request``: the hub logs such a report from an invited State, so no finding of a
    missing report can stand against one the hub refused to log."""
    clock = FakeClock("2027-03-01T00:00:00Z")
    with running_hub(store_url, tmp_path, clock=clock) as th, api_for(th) as api:
        th.register("AUT", "BEL", "CZE")
        api.act(
            api.sign(
                "AUT", PT_EVENT, activity("AUT", "act-1", "2027-05-01T00:00:00Z", "2027-05-10T00:00:00Z")
            )
        )
        to_bel = event("AUT", "inv-1", "notification", form="observation_invitation", activity="act-1")
        api.act(api.sign("AUT", PT_EVENT, {**to_bel, "to": ["BEL"]}))
        api.act(
            api.sign(
                "BEL", PT_EVENT, event("BEL", "yes-1", "response", request="inv-1", decision="accept")
            )
        )
        clock.set("2027-05-20T00:00:00Z")
        report = event(
            "BEL", "or-1", "notification", form="observer_report", request="inv-1", activity="act-1"
        )
        report.pop("activity")
        logged = api.act(api.sign("BEL", PT_EVENT, report))
        assert logged["index"] > 0
        size = api.size()
        # The inviting State is no observer of its own activity.
        own = event("AUT", "or-2", "notification", form="observer_report", request="inv-1")
        assert_error(api.submit(api.sign("AUT", PT_EVENT, own)), 403, "forbidden", "'inv-1'")
        # A State not invited cannot read the invitation: answered as if there were none.
        other = event("CZE", "or-3", "notification", form="observer_report", request="inv-1")
        assert_error(api.submit(api.sign("CZE", PT_EVENT, other)), 404, "not_found", "'inv-1'")
        # A report naming an activity (neither a request nor an invitation) is bad input.
        wrong = event("BEL", "or-4", "notification", form="observer_report", request="act-1")
        assert_error(
            api.submit(api.sign("BEL", PT_EVENT, wrong)),
            400,
            "bad_input",
            "is not a request or invitation",
        )
        assert api.size() == size


# ---- amendments -----------------------------------------------------------------------------


def test_amendments_correct_and_withdraw_by_the_author_only(store_url: str, tmp_path: Path) -> None:
    clock = FakeClock("2027-03-01T00:00:00Z")
    with running_hub(store_url, tmp_path, clock=clock) as th, api_for(th) as api:
        th.register("AUT", "BEL")
        api.act(
            api.sign(
                "AUT", PT_EVENT, activity("AUT", "act-1", "2027-05-01T00:00:00Z", "2027-05-10T00:00:00Z")
            )
        )
        api.act(
            api.sign(
                "AUT", PT_EVENT, activity("AUT", "act-2", "2027-05-15T00:00:00Z", "2027-05-20T00:00:00Z")
            )
        )
        clock.set("2027-03-02T00:00:00Z")
        n1_doc = event("AUT", "n-1", "notification", form="prior_notification", activity="act-1")
        n1 = api.act(api.sign("AUT", PT_EVENT, n1_doc))["index"]
        # n-2 was sent under the wrong form: it is no prior notification of act-2.
        n2_doc = event("AUT", "n-2", "notification", form="observation_invitation", activity="act-2")
        n2 = api.act(api.sign("AUT", PT_EVENT, n2_doc))["index"]

        as_of = "2027-04-15T00:00:00Z"  # past both deadlines (20 March and 3 April)

        def prior(viewer: str = "BEL") -> dict[str, tuple[str, str | None]]:
            rep = api.ok("/v1/obligations", viewer, params={"agreement": AG, "as_of": as_of})
            return {
                o["id"]: (o["status"], o["met_by"])
                for o in rep["obligations"]
                if o["id"].startswith("notification-land:")
            }

        assert prior() == {
            "notification-land:AUT:act-1": ("met", "n-1"),
            "notification-land:AUT:act-2": ("missed", None),
        }

        # Only the author amends: BEL can neither correct nor withdraw AUT's notification,
        # and is answered as if there were none (the answer never names an author).
        size = api.size()
        for action in ("correct", "withdraw"):
            forged = event(
                "BEL",
                f"bel-{action}",
                "notification",
                form="prior_notification",
                activity="act-1",
                amends={"id": "n-1", "action": action},
            )
            r = api.submit(api.sign("BEL", PT_EVENT, forged))
            msg = assert_error(r, 404, "not_found")
            assert msg == f"event 'bel-{action}', field 'amends': no event 'n-1' you may amend in {AG!r}"
        # Nor can BEL pass its amendment off as AUT's.
        forged = event(
            "AUT",
            "n-1-w",
            "notification",
            form="prior_notification",
            amends={"id": "n-1", "action": "withdraw"},
        )
        assert_error(api.submit(api.sign("BEL", PT_EVENT, forged)), 422, "verification_failed", "'AUT'")
        assert api.size() == size

        # AUT corrects n-2 before its deadline (3 April); the correction stands in the
        # original's place, under its id ...
        clock.set("2027-03-20T00:00:00Z")
        fix = event(
            "AUT",
            "n-2-fix",
            "notification",
            form="prior_notification",
            activity="act-2",
            amends={"id": "n-2", "action": "correct"},
        )
        fixed = api.act(api.sign("AUT", PT_EVENT, fix))["index"]
        # ... and withdraws n-1.
        clock.set("2027-04-11T00:00:00Z")
        wd = event(
            "AUT",
            "n-1-wd",
            "notification",
            form="prior_notification",
            activity="act-1",
            amends={"id": "n-1", "action": "withdraw"},
        )
        withdrawn = api.act(api.sign("AUT", PT_EVENT, wd))["index"]
        for viewer in ("AUT", "BEL"):
            assert prior(viewer) == {
                "notification-land:AUT:act-1": ("missed", None),
                "notification-land:AUT:act-2": ("met", "n-2"),
            }

        # The originals stay in the log, unchanged; each amendment points at its original.
        for index, doc in ((n1, n1_doc), (n2, n2_doc)):
            item = api.ok(f"/v1/entries/{index}", "BEL")
            assert payload_of(item) == doc
            proof = api.get(f"/v1/entries/{index}/proof", "BEL")
            assert proof.status_code == 200
            assert (
                verify_entry_proof(proof.text, single_log_policy(api.ok("/v1/hub")["log_vkey"])).index
                == index
            )
        assert api.ok(f"/v1/entries/{fixed}", "BEL")["ref"] == n2
        assert api.ok(f"/v1/entries/{withdrawn}", "BEL")["ref"] == n1

        # What cannot be amended is refused with the reason, and nothing is logged.
        size = api.size()
        again = event(
            "AUT",
            "n-1-wd2",
            "notification",
            form="prior_notification",
            amends={"id": "n-1", "action": "withdraw"},
        )
        assert_error(
            api.submit(api.sign("AUT", PT_EVENT, again)), 409, "conflict", "'n-1' was withdrawn already"
        )
        ghost = event(
            "AUT",
            "n-9-fix",
            "notification",
            form="prior_notification",
            amends={"id": "n-9", "action": "correct"},
        )
        assert_error(api.submit(api.sign("AUT", PT_EVENT, ghost)), 404, "not_found", "'amends'", "'n-9'")
        other_type = event(
            "AUT",
            "n-2-ex",
            "exchange",
            form="annual_military_information",
            period="2028",
            amends={"id": "n-2", "action": "correct"},
        )
        assert_error(
            api.submit(api.sign("AUT", PT_EVENT, other_type)), 400, "bad_input", "type 'notification'"
        )
        bad_action = event(
            "AUT",
            "n-2-x",
            "notification",
            form="prior_notification",
            amends={"id": "n-2", "action": "erase"},
        )
        assert_error(
            api.submit(api.sign("AUT", PT_EVENT, bad_action)), 400, "bad_input", "'amends'", "'action'"
        )
        assert api.size() == size


# ---- authorization --------------------------------------------------------------------------

WHO = ("author", "addressee", "outsider", "anonymous", "revoked")
PARTY = {"author": "AUT", "addressee": "BEL", "outsider": "CHE", "revoked": "DNK"}
WS_REFUSED = 403
"""A WebSocket the hub closes before accepting: the server answers the handshake with 403."""
WS_NOBODY = {"anonymous": WS_REFUSED, "revoked": WS_REFUSED}


@dataclass
class World:
    """Four parties; AUT asked BEL a private question; DNK's key was revoked after it got a token."""

    api: Api
    private: int
    private_id: str
    channel: str
    marker: int
    cp_size: int
    cosignature: str
    batch: int = -1
    """An observations batch AUT logged (rows uploaded): evidence for the whole agreement."""
    ids: Iterator[int] = field(default_factory=itertools.count)

    def party(self, who: str) -> str | None:
        return PARTY.get(who)

    def headers(self, who: str) -> dict[str, str]:
        p = self.party(who)
        return {} if p is None else {"Authorization": f"Bearer {self.api.tokens[p]}"}

    def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        return self.api.http.get(path, headers=self.headers(who), params=params)

    def fresh_activity(self, party: str) -> dict[str, Any]:
        return activity(party, f"m-{next(self.ids)}", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")


def build_world(th: TestHub) -> World:
    api = Api(th)
    th.register("AUT", "BEL", "CHE", "DNK")
    for p in PARTY.values():
        api.token(p)  # DNK's token is minted before its key is revoked, and works till then
        api.session(p)  # and so is its dashboard session
        assert api.get("/v1/parties", p).status_code == 200
    private_id = "req-x"
    private = api.act(
        api.sign("AUT", PT_EVENT, event("AUT", private_id, "request", kind="explanation", to="BEL"))
    )["index"]
    with th.client("AUT") as aut:
        aut.open_channel("aut-bel", AG, ["AUT", "BEL"])
        batch = aut.submit_observations(AG, "sat-pass-1", BATCH_ROWS, "csv")["index"]
    revoke = {
        "act": "key.revoke",
        "party": "DNK",
        "by": "recovery",
        "key": th.keys["DNK"].vkey,
        "reason": "compromised",
    }
    api.act(api.sign("DNK/recovery", PT_REGISTRY, revoke))
    marker = api.act(
        api.sign(
            "AUT", PT_EVENT, activity("AUT", "marker", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")
        )
    )["index"]
    body, _ = split_note(api.http.get("/v1/log/checkpoint").text)
    cp_size = int(body.splitlines()[1])
    cosig = cosignature_lines(body, new_cosigner(th.keys["AUT"].witness_signer))
    return World(api, private, private_id, "aut-bel", marker, cp_size, cosig, batch)


Probe = Callable[[World, str], tuple[int, bool | None]]
"""Make the request as ``who``: (status, whether the private entry showed) or None if moot."""


def _status(path: str, **params: Any) -> Probe:
    def probe(w: World, who: str) -> tuple[int, bool | None]:
        return w.get(who, path, **params).status_code, None

    return probe


def _listing(path: str) -> Probe:
    def probe(w: World, who: str) -> tuple[int, bool | None]:
        r = w.get(who, path, limit=1000)
        if r.status_code != 200:
            return r.status_code, None
        return 200, w.private in [i["index"] for i in r.json()["items"]]

    return probe


def _entry(suffix: str) -> Probe:
    def probe(w: World, who: str) -> tuple[int, bool | None]:
        r = w.get(who, f"/v1/entries/{w.private}{suffix}")
        return r.status_code, None if r.status_code == 401 else r.status_code == 200

    return probe


BATCH_ROWS = (
    b"id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence\n"
    b"o1,2027-09-01T06:00:00Z,16.37,48.21,sat-1,satellite,acv,4,0.8\n"
)


def p_batch_get(w: World, who: str) -> tuple[int, bool | None]:
    return w.get(who, f"/v1/observations/{w.batch}").status_code, None


def p_batch_put(w: World, who: str) -> tuple[int, bool | None]:
    r = w.api.http.put(f"/v1/observations/{w.batch}", content=BATCH_ROWS, headers=w.headers(who))
    return r.status_code, None


def p_channels(w: World, who: str) -> tuple[int, bool | None]:
    r = w.get(who, "/v1/channels")
    if r.status_code != 200:
        return r.status_code, None
    return 200, w.channel in [c["id"] for c in r.json()["channels"]]


def p_obligations(w: World, who: str) -> tuple[int, bool | None]:
    r = w.get(who, "/v1/obligations", agreement=AG)
    if r.status_code != 200:
        return r.status_code, None
    rep = r.json()
    return 200, any(w.private_id in x["subjects"] for x in rep["obligations"] + rep["findings"])


def p_leaves(w: World, who: str) -> tuple[int, bool | None]:
    r = w.get(who, "/v1/log/leaves")
    if r.status_code != 200:
        return r.status_code, None
    leaves = r.json()["leaves"]
    assert [x["index"] for x in leaves] == list(range(len(leaves)))  # every leaf hash, for anyone
    return 200, any("entry" in x for x in leaves if x["index"] == w.private)


def p_tile(w: World, who: str) -> tuple[int, bool | None]:
    """Hash tiles for anyone (they reveal no entry); the entry bundle holding the private
    request carries its bytes only for a party that may read it (zero-length otherwise)."""
    from cbmnet.ledger.tiles import encode_index, parse_bundle, tile_width

    size = w.api.size()
    width = tile_width(0, 0, size)
    suffix = "" if width == 256 else f".p/{width}"
    hashes = w.get(who, f"/v1/tlog/tile/0/{encode_index(0)}{suffix}")
    if hashes.status_code != 200:
        return hashes.status_code, None
    assert len(hashes.content) == 32 * width
    r = w.get(who, f"/v1/tlog/tile/entries/{encode_index(0)}{suffix}")
    if r.status_code != 200:
        return r.status_code, None
    entries = parse_bundle(r.content, width)
    return 200, entries[w.private] is not None


def p_acts(w: World, who: str) -> tuple[int, bool | None]:
    """Writing needs no token: the signature decides. Each caller tries what it might."""
    api = w.api
    if who in ("author", "anonymous"):  # AUT's own act, with its token or without one
        env = api.sign("AUT", PT_EVENT, w.fresh_activity("AUT"))
    elif who in ("addressee", "outsider"):  # acknowledge the private request
        p = PARTY[who]
        env = api.sign(p, PT_ACK, {"act": "ack", "entry": w.private, "party": p})
    else:  # DNK signs with its revoked key
        env = api.sign("DNK", PT_EVENT, w.fresh_activity("DNK"))
    r = api.submit(env, headers=w.headers(who))
    return r.status_code, None


def p_challenge(w: World, who: str) -> tuple[int, bool | None]:
    r = w.api.http.post(
        "/v1/auth/challenge", json={"party": w.party(who) or "AUT"}, headers=w.headers(who)
    )
    return r.status_code, None


def p_token(w: World, who: str) -> tuple[int, bool | None]:
    keys = w.api.th.keys
    http = w.api.http
    if who in ("author", "addressee", "revoked"):  # its own challenge, signed with its own key
        p = PARTY[who]
        r = mint_token(http, p, keys[p].signer)
    elif who == "outsider":  # CHE signs a challenge issued for AUT
        r = mint_token(http, "AUT", keys["CHE"].signer)
    else:  # no key at all: a signature of zeros
        ch = http.post("/v1/auth/challenge", json={"party": "AUT"}).json()
        r = http.post(
            "/v1/auth/token",
            json={"challenge": ch["challenge"], "signature": base64.b64encode(bytes(64)).decode()},
        )
    if r.status_code == 200:
        assert r.json()["party"] == PARTY[who]
    return r.status_code, None


def p_cosignatures(w: World, who: str) -> tuple[int, bool | None]:
    r = w.api.http.post(
        "/v1/log/cosignatures",
        params={"size": w.cp_size},
        content=w.cosignature,
        headers=w.headers(who),
    )
    if r.status_code == 200:
        assert r.json() == {"size": w.cp_size, "stored": 1}
    return r.status_code, None


def _ws_url(w: World, path: str) -> str:
    return w.api.th.url.replace("http://", "ws://", 1) + path


def p_stream(w: World, who: str) -> tuple[int, bool | None]:
    try:
        with ws_connect(
            _ws_url(w, "/v1/stream"), additional_headers=w.headers(who), open_timeout=10
        ) as ws:
            seen: list[int] = []
            while w.marker not in seen:  # the public marker comes after the private entry
                seen.append(json.loads(ws.recv(timeout=10))["index"])
            return 101, w.private in seen
    except InvalidStatus as e:
        return e.response.status_code, None


def p_echo(w: World, who: str) -> tuple[int, bool | None]:
    token = w.api.tokens.get(w.party(who) or "", "")
    try:
        with ws_connect(_ws_url(w, f"/v1/echo?token={token}"), open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"
            return 101, None
    except InvalidStatus as e:
        return e.response.status_code, None


def p_dash_hotline_stream(w: World, who: str) -> tuple[int, bool | None]:
    p = w.party(who)
    cookie = {} if p is None else {"Cookie": f"cbmnet_session={w.api.session(p)}"}
    try:
        with ws_connect(
            _ws_url(w, "/dashboard/hotline/stream"), open_timeout=10, additional_headers=cookie
        ) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            return 101, None
    except InvalidStatus as e:
        return e.response.status_code, None


def _page(path: str) -> Probe:
    """A dashboard page with the sign-in cookie: (status, whether the private request showed)."""

    def probe(w: World, who: str) -> tuple[int, bool | None]:
        p = w.party(who)
        cookie = {} if p is None else {"Cookie": f"cbmnet_session={w.api.session(p)}"}
        r = w.api.http.get(path, headers=cookie)
        return r.status_code, (w.private_id in r.text) if r.status_code == 200 else None

    return probe


def _dash_entry(path: str) -> Probe:
    """A dashboard page about the private entry (``{i}`` is its index): a refusal must not
    show it either."""

    def probe(w: World, who: str) -> tuple[int, bool | None]:
        p = w.party(who)
        cookie = {} if p is None else {"Cookie": f"cbmnet_session={w.api.session(p)}"}
        r = w.api.http.get(path.format(i=w.private), headers=cookie)
        return r.status_code, None if r.status_code == 401 else w.private_id in r.text

    return probe


def _dash_blob(path: str) -> Probe:
    """A download of the private entry (envelope or receipt): seen if it decodes to that entry."""

    def probe(w: World, who: str) -> tuple[int, bool | None]:
        p = w.party(who)
        cookie = {} if p is None else {"Cookie": f"cbmnet_session={w.api.session(p)}"}
        r = w.api.http.get(path.format(i=w.private), headers=cookie)
        if r.status_code == 401:
            return 401, None
        if r.status_code != 200:
            return r.status_code, w.private_id in r.text
        if path.endswith("/proof"):
            env = verify_entry_proof(r.text, single_log_policy(w.api.th.hub.log.vkey)).entry.envelope
        else:
            env = r.content
        payload = base64.b64decode(json.loads(env)["payload"])
        return 200, w.private_id in payload.decode()

    return probe


def p_signin_code(w: World, who: str) -> tuple[int, bool | None]:
    r = w.api.http.post("/v1/auth/signin-code", headers=w.headers(who))
    if r.status_code == 200:
        assert r.json()["party"] == w.party(who)
    return r.status_code, None


def _code(w: World, who: str) -> str | None:
    """A fresh sign-in code of the caller's party; the revoked party cannot get one."""
    p = w.party(who)
    if p is None:
        return None
    r = w.api.http.post("/v1/auth/signin-code", headers=w.headers(who))
    return str(r.json()["code"]) if r.status_code == 200 else "forged.code"


def p_dash_login_page(w: World, who: str) -> tuple[int, bool | None]:
    code = _code(w, who)
    params = {} if code is None else {"code": code}
    return w.api.http.get("/dashboard/login", params=params).status_code, None


def p_dash_login(w: World, who: str) -> tuple[int, bool | None]:
    code = _code(w, who)
    data = {} if code is None else {"code": code}
    r = w.api.http.post("/dashboard/login", data=data, headers={"Origin": w.api.th.url})
    return r.status_code, None


def p_dash_logout(w: World, who: str) -> tuple[int, bool | None]:
    r = w.api.http.post("/dashboard/logout", headers={**w.headers(who), "Origin": w.api.th.url})
    return r.status_code, None


def p_dash_dry_run(w: World, who: str) -> tuple[int, bool | None]:
    """A dry run of a fresh activity of the caller's: judged over what it may read, so the
    private request never shows in the answer."""
    p = w.party(who)
    headers = {"Content-Type": "application/json"}
    if p is not None:
        headers["Cookie"] = f"cbmnet_session={w.api.session(p)}"
    draft = w.fresh_activity(p or "AUT")
    r = w.api.http.post(
        "/dashboard/file/dry-run", params={"agreement": AG}, content=json.dumps(draft), headers=headers
    )
    return r.status_code, (w.private_id in r.text) if r.status_code == 200 else None


def p_alerts(method: str, path: str = "/v1/alerts") -> Probe:
    """A party's own alert subscription: set, read or removed with its own token only."""

    def probe(w: World, who: str) -> tuple[int, bool | None]:
        doc = {"emails": [f"watch@{(w.party(who) or 'x').lower()}.example"], "kinds": ["hotline"]}
        r = w.api.http.request(
            method,
            path,
            headers=w.headers(who),
            content=json.dumps(doc) if method == "PUT" else None,
        )
        return r.status_code, (w.private_id in r.text) if r.status_code == 200 else None

    return probe


def p_report(w: World, who: str) -> tuple[int, bool | None]:
    """The annual report of the year the private request's answer falls due in."""
    r = w.get(who, "/v1/report", agreement=AG, year=_this_year(w))
    return r.status_code, (w.private_id in r.text) if r.status_code == 200 else None


def _this_year(w: World) -> int:
    from cbmnet.compliance.timeutil import year_of

    return year_of(w.api.th.hub.clock() + 2 * 86_400_000)


def _everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(WHO, status)


PARTIES_ONLY = {"author": 200, "addressee": 200, "outsider": 200, "anonymous": 401, "revoked": 401}
SEEN_BY_BOTH = {"author": True, "addressee": True, "outsider": False}
SEEN_BY_ADDRESSEE = {"author": False, "addressee": True, "outsider": False}
SEEN_BY_NOBODY = {"author": False, "addressee": False, "outsider": False}
NOT_FOR_OUTSIDERS = {"author": 200, "addressee": 200, "outsider": 403, "anonymous": 401, "revoked": 401}

MATRIX: dict[tuple[str, str], tuple[Probe, dict[str, int], dict[str, bool]]] = {
    # Public by design: the service, the log's checkpoints, proofs and leaf hashes, the docs.
    ("GET", "/healthz"): (_status("/healthz"), _everyone(200), {}),
    ("GET", "/v1/hub"): (_status("/v1/hub"), _everyone(200), {}),
    ("GET", "/v1/log/checkpoint"): (_status("/v1/log/checkpoint"), _everyone(200), {}),
    ("GET", "/v1/log/checkpoints"): (_status("/v1/log/checkpoints"), _everyone(200), {}),
    ("GET", "/v1/log/consistency"): (_status("/v1/log/consistency", old=1, new=3), _everyone(200), {}),
    ("GET", "/v1/log/witness"): (_status("/v1/log/witness", old=0), _everyone(200), {}),
    ("POST", "/v1/log/cosignatures"): (p_cosignatures, _everyone(200), {}),
    # Leaf hashes for anyone; the entry only where the token's party may read it. A token
    # presented is checked: a revoked one is refused, not read as anonymous.
    ("GET", "/v1/log/leaves"): (
        p_leaves,
        {**_everyone(200), "revoked": 401},
        {**SEEN_BY_BOTH, "anonymous": False},
    ),
    # C2SP tlog-tiles: hash tiles for anyone; an entry bundle carries what its caller may
    # read (the private request: its two sides only), like the leaves above.
    ("GET", "/v1/tlog/checkpoint"): (_status("/v1/tlog/checkpoint"), _everyone(200), {}),
    ("GET", "/v1/tlog/tile/{path:path}"): (
        p_tile,
        {**_everyone(200), "revoked": 401},
        {**SEEN_BY_BOTH, "anonymous": False},
    ),
    ("GET", "/openapi.json"): (_status("/openapi.json"), _everyone(200), {}),
    ("GET", "/docs"): (_status("/docs"), _everyone(200), {}),
    ("GET", "/docs/oauth2-redirect"): (_status("/docs/oauth2-redirect"), _everyone(200), {}),
    ("GET", "/redoc"): (_status("/redoc"), _everyone(200), {}),
    # Identity: anyone asks for a challenge; only a party's active key earns a token.
    ("POST", "/v1/auth/challenge"): (p_challenge, _everyone(200), {}),
    ("POST", "/v1/auth/token"): (
        p_token,
        {"author": 200, "addressee": 200, "outsider": 401, "anonymous": 401, "revoked": 401},
        {},
    ),
    ("POST", "/v1/auth/signin-code"): (p_signin_code, PARTIES_ONLY, {}),
    ("GET", "/v1/parties"): (_status("/v1/parties"), PARTIES_ONLY, {}),
    # Acts: no token needed, the signature decides; revoked: 403; acknowledging what is not
    # addressed to you: 404, as for an entry that does not exist (no existence oracle).
    ("POST", "/v1/acts"): (
        p_acts,
        {"author": 201, "addressee": 201, "outsider": 404, "anonymous": 201, "revoked": 403},
        {},
    ),
    ("GET", "/v1/inbox"): (_listing("/v1/inbox"), PARTIES_ONLY, SEEN_BY_ADDRESSEE),
    ("GET", "/v1/entries"): (_listing("/v1/entries"), PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/v1/entries/{index}"): (_entry(""), NOT_FOR_OUTSIDERS, SEEN_BY_BOTH),
    ("GET", "/v1/entries/{index}/proof"): (_entry("/proof"), NOT_FOR_OUTSIDERS, SEEN_BY_BOTH),
    # Delivery status is the sender's (and the secretariat's) alone.
    ("GET", "/v1/entries/{index}/status"): (
        _entry("/status"),
        {"author": 200, "addressee": 403, "outsider": 403, "anonymous": 401, "revoked": 401},
        {"author": True, "addressee": False, "outsider": False},
    ),
    ("GET", "/v1/channels"): (p_channels, PARTIES_ONLY, SEEN_BY_BOTH),
    # Observation batches are evidence for the whole agreement; only their provider uploads.
    ("GET", "/v1/observations/{index}"): (p_batch_get, PARTIES_ONLY, {}),
    ("PUT", "/v1/observations/{index}"): (
        p_batch_put,
        {"author": 200, "addressee": 403, "outsider": 403, "anonymous": 401, "revoked": 401},
        {},
    ),
    ("GET", "/v1/obligations"): (p_obligations, PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/v1/indicators"): (_status("/v1/indicators", agreement=AG), PARTIES_ONLY, {}),
    # Quota status: for the agreement's parties (all four are Vienna Document states here).
    # Alerts: each party's own subscription and delivery log, by its token.
    ("PUT", "/v1/alerts"): (p_alerts("PUT"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/v1/alerts"): (p_alerts("GET"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("DELETE", "/v1/alerts"): (p_alerts("DELETE"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/v1/alerts/log"): (p_alerts("GET", "/v1/alerts/log"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/v1/report"): (p_report, PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/v1/quota"): (
        _status("/v1/quota", agreement=AG, host="AUT", kind="inspection"),
        PARTIES_ONLY,
        {},
    ),
    # Dashboard: a one-time code from the API becomes a session cookie (not an API token),
    # bound to the key like a token and checked the same way (401 page).
    ("GET", "/dashboard/login"): (p_dash_login_page, {**_everyone(200), "revoked": 401}, {}),
    ("POST", "/dashboard/login"): (
        p_dash_login,
        {"author": 303, "addressee": 303, "outsider": 303, "anonymous": 401, "revoked": 401},
        {},
    ),
    ("POST", "/dashboard/logout"): (p_dash_logout, _everyone(303), {}),
    # The language switch: a cookie and a way back, for anyone (it reads nothing).
    ("GET", "/dashboard/lang"): (_status("/dashboard/lang", to="fr"), _everyone(303), {}),
    ("GET", "/dashboard/static/{name:path}"): (
        _status("/dashboard/static/dashboard.css"),
        _everyone(200),
        {},
    ),
    ("GET", "/dashboard"): (_page("/dashboard"), PARTIES_ONLY, SEEN_BY_ADDRESSEE),
    ("GET", "/dashboard/deadlines"): (_page("/dashboard/deadlines"), PARTIES_ONLY, SEEN_BY_ADDRESSEE),
    ("GET", "/dashboard/deadlines.ics"): (
        _page("/dashboard/deadlines.ics"),
        PARTIES_ONLY,
        SEEN_BY_ADDRESSEE,
    ),
    ("GET", "/dashboard/archive"): (_page("/dashboard/archive"), PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/dashboard/archive.csv"): (_page("/dashboard/archive.csv"), PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/dashboard/archive.json"): (_page("/dashboard/archive.json"), PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/dashboard/log"): (_page("/dashboard/log"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/dashboard/quotas"): (_page("/dashboard/quotas"), PARTIES_ONLY, SEEN_BY_NOBODY),
    # The map draws located events and findings: the private request has no location.
    ("GET", "/dashboard/map"): (_page("/dashboard/map"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/dashboard/map.json"): (_page("/dashboard/map.json"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/dashboard/hotline"): (_page("/dashboard/hotline"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/dashboard/hotline.json"): (_page("/dashboard/hotline.json"), PARTIES_ONLY, SEEN_BY_NOBODY),
    # The officer's forms: the pickers list the private request for its two parties only.
    ("GET", "/dashboard/file"): (_page("/dashboard/file"), PARTIES_ONLY, SEEN_BY_NOBODY),
    ("GET", "/dashboard/file.json"): (
        _page(f"/dashboard/file.json?agreement={AG}"),
        PARTIES_ONLY,
        SEEN_BY_BOTH,
    ),
    ("POST", "/dashboard/file/dry-run"): (p_dash_dry_run, PARTIES_ONLY, SEEN_BY_NOBODY),
    # The work queue: the addressee owes the answer, the author follows the thread.
    ("GET", "/dashboard/inbox"): (_page("/dashboard/inbox"), PARTIES_ONLY, SEEN_BY_BOTH),
    ("GET", "/dashboard/alerts"): (_page("/dashboard/alerts"), PARTIES_ONLY, SEEN_BY_NOBODY),
    # The annual report counts the private request for its two parties only.
    ("GET", "/dashboard/report"): (
        _page(f"/dashboard/report?agreement={AG}"),
        PARTIES_ONLY,
        SEEN_BY_BOTH,
    ),
    ("GET", "/dashboard/report.pdf"): (
        _page(f"/dashboard/report.pdf?agreement={AG}"),
        PARTIES_ONLY,
        SEEN_BY_NOBODY,  # compressed: its figures are the page's
    ),
    ("WS", "/dashboard/hotline/stream"): (
        p_dash_hotline_stream,
        {**dict.fromkeys(("author", "addressee", "outsider"), 101), **WS_NOBODY},
        {},
    ),
    # The archive's one-click envelope and receipt: only an entry the caller may read.
    ("GET", "/dashboard/entries/{index}/envelope"): (
        _dash_blob("/dashboard/entries/{i}/envelope"),
        NOT_FOR_OUTSIDERS,
        SEEN_BY_BOTH,
    ),
    ("GET", "/dashboard/entries/{index}/proof"): (
        _dash_blob("/dashboard/entries/{i}/proof"),
        NOT_FOR_OUTSIDERS,
        SEEN_BY_BOTH,
    ),
    # Verify in the browser: only an entry the caller may read (its proof carries the entry).
    ("GET", "/dashboard/verify/{index}"): (
        _dash_entry("/dashboard/verify/{i}"),
        NOT_FOR_OUTSIDERS,
        SEEN_BY_BOTH,
    ),
    ("GET", "/dashboard/verify"): (
        _dash_entry("/dashboard/verify?index={i}"),
        NOT_FOR_OUTSIDERS,
        SEEN_BY_BOTH,
    ),
    ("WS", "/v1/stream"): (
        p_stream,
        {
            "author": 101,
            "addressee": 101,
            "outsider": 101,
            "anonymous": WS_REFUSED,
            "revoked": WS_REFUSED,
        },
        SEEN_BY_BOTH,
    ),
    ("WS", "/v1/echo"): (
        p_echo,
        {
            "author": 101,
            "addressee": 101,
            "outsider": 101,
            "anonymous": WS_REFUSED,
            "revoked": WS_REFUSED,
        },
        {},
    ),
}


def route_keys(th: TestHub) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, from its route table (HEAD goes with GET)."""
    out: set[tuple[str, str]] = set()
    for r in create_app(th.hub, run_duties=False).routes:
        if isinstance(r, WebSocketRoute):
            out.add(("WS", r.path))
        elif isinstance(r, Route):
            out |= {(m, r.path) for m in r.methods or () if m != "HEAD"}
        else:  # pragma: no cover - a mount or another kind of route: it needs a row too
            out.add(("?", repr(r)))
    return out


def test_authorization_matrix(store_url: str, tmp_path: Path) -> None:
    # Each party calls some twenty evaluating routes in a row: the per-party budget of
    # evaluations (tested in test_flood.py) is lifted, or the matrix would read its 429s.
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, evaluations_per_s=1000.0)
    with running_hub(store_url, tmp_path, settings=settings) as th:
        w = build_world(th)
        try:
            # A route added without a row here fails this test.
            assert route_keys(th) == set(MATRIX)
            wrong = []
            for (method, path), (probe, statuses, sees) in MATRIX.items():
                for who in WHO:
                    got = probe(w, who)
                    want = (statuses[who], sees.get(who))
                    if got != want:
                        wrong.append(f"{method} {path} as {who}: got {got}, want {want}")
            assert not wrong, "\n".join(wrong)
        finally:
            w.api.close()


# ---- revocation -----------------------------------------------------------------------------


def test_revoked_key_loses_tokens_and_signing_at_once(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, api_for(th) as api:
        th.register("AUT", "DNK")
        api.ok("/v1/entries", "DNK")  # the token works while the key is active
        token = api.tokens["DNK"]
        signed_before = api.sign(
            "DNK", PT_EVENT, activity("DNK", "early", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")
        )
        revoke = {"act": "key.revoke", "party": "DNK", "by": "recovery", "key": th.keys["DNK"].vkey}
        api.act(api.sign("DNK/recovery", PT_REGISTRY, revoke))
        size = api.size()

        # The token minted before the revocation stops working on every party route.
        for path in ("/v1/entries", "/v1/inbox", "/v1/parties", "/v1/channels"):
            assert_error(api.get(path, "DNK"), 401, "unauthorized", "no longer active", "'DNK'")
        r = api.http.get(
            "/v1/obligations", params={"agreement": AG}, headers={"Authorization": f"Bearer {token}"}
        )
        assert_error(r, 401, "unauthorized")
        with (
            pytest.raises(InvalidStatus) as refused,
            ws_connect(th.url.replace("http", "ws", 1) + f"/v1/stream?token={token}", open_timeout=10),
        ):
            pass
        assert refused.value.response.status_code == WS_REFUSED
        # The revoked key earns no new token.
        assert_error(mint_token(api.http, "DNK", th.keys["DNK"].signer), 401, "unauthorized", "'DNK'")
        # Nothing it signs is logged any more, whenever it was signed.
        after = api.sign(
            "DNK", PT_EVENT, activity("DNK", "late", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")
        )
        for env in (signed_before, after):
            assert_error(api.submit(env), 403, "forbidden", "revoked", "'DNK'")
        assert_error(
            api.submit(api.sign("DNK", PT_ACK, {"act": "ack", "entry": 0, "party": "DNK"})),
            403,
            "forbidden",
        )
        assert api.size() == size

        # The revocation is of a key, not of the party: DNK installs a new one with its
        # offline recovery key (the secretariat cannot: docs/adr/0007).
        fresh = party_keys("DNK")
        rotate = {"act": "key.rotate", "party": "DNK", "by": "recovery", "signing_key": fresh.vkey}
        api.act(api.sign("DNK/recovery", PT_REGISTRY, rotate))
        fresh.recovery_signer = th.keys["DNK"].recovery_signer  # the offline key stays
        fresh.recovery_vkey = th.keys["DNK"].recovery_vkey
        th.keys["DNK"] = fresh
        del api.tokens["DNK"]
        api.ok("/v1/entries", "DNK")
        api.act(
            api.sign(
                "DNK", PT_EVENT, activity("DNK", "late", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z")
            )
        )
        # The old token stays dead, and the old key stays revoked.
        r = api.http.get("/v1/entries", headers={"Authorization": f"Bearer {token}"})
        assert_error(r, 401, "unauthorized")
        assert_error(api.submit(after), 403, "forbidden")


# ---- confidentiality --------------------------------------------------------------------------


def test_a_party_never_reads_what_is_not_addressed_to_it(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, api_for(th) as api:
        th.register("AUT", "BEL", "CHE")
        req = api.act(
            api.sign("AUT", PT_EVENT, event("AUT", "req-1", "request", kind="explanation", to="BEL"))
        )
        resp = api.act(
            api.sign(
                "BEL", PT_EVENT, event("BEL", "resp-1", "response", request="req-1", decision="answer")
            )
        )
        with th.client("AUT") as aut, th.client("BEL") as bel:
            opened = aut.open_channel("aut-bel", AG, ["AUT", "BEL"])
            msg = aut.send("aut-bel", "m-1", "flash", "between the two of us")
            hack = bel.ack(msg["index"])
        note = api.act(
            api.sign(
                "AUT",
                PT_EVENT,
                event("AUT", "n-to-bel", "notification", form="regulation_notice", to=["BEL"]),
            )
        )
        private = {r["index"] for r in (req, resp, opened, msg, hack, note)}
        marker = api.act(
            api.sign(
                "AUT",
                PT_EVENT,
                activity("AUT", "public", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"),
            )
        )["index"]

        # The two parties concerned read all of it (the test can see a leak if there is one).
        for p in ("AUT", "BEL"):
            assert private <= {i["index"] for i in api.items("/v1/entries", p)}
        assert private - {hack["index"]} - {resp["index"]} <= {
            i["index"] for i in api.items("/v1/inbox", "BEL")
        }

        # CHE reads none of it, by any route.
        size = api.size()
        che_entries = {i["index"] for i in api.items("/v1/entries", "CHE")}
        assert marker in che_entries and not private & che_entries
        assert not private & {i["index"] for i in api.items("/v1/inbox", "CHE")}
        for kind in ("request", "response", "hotline.message", "channel.open", "ack", "notification"):
            assert not api.items("/v1/entries", "CHE", kind=kind)
        assert not api.items("/v1/entries", "CHE", author="AUT", agreement=AG, kind="request")
        for i in sorted(private):
            for suffix in ("", "/proof"):
                assert_error(
                    api.get(f"/v1/entries/{i}{suffix}", "CHE"), 403, "forbidden", f"entry {i}", "'CHE'"
                )
            assert_error(api.get(f"/v1/entries/{i}/status", "CHE"), 403, "forbidden")
        leaves = api.ok("/v1/log/leaves", "CHE")["leaves"]
        assert [x["index"] for x in leaves] == list(range(size))  # leaf hashes are public ...
        assert {x["index"] for x in leaves if "entry" in x} == set(
            range(size)
        ) - private  # ... entries not
        assert "aut-bel" not in [c["id"] for c in api.ok("/v1/channels", "CHE")["channels"]]
        rep = api.ok("/v1/obligations", "CHE", params={"agreement": AG})
        assert "req-1" not in json.dumps(rep) and "n-to-bel" not in json.dumps(rep)
        assert "req-1" in json.dumps(api.ok("/v1/obligations", "AUT", params={"agreement": AG}))
        with ws_connect(
            th.url.replace("http", "ws", 1) + "/v1/stream",
            additional_headers=api.auth("CHE"),
            open_timeout=10,
        ) as ws:
            streamed: list[int] = []
            while marker not in streamed:
                streamed.append(json.loads(ws.recv(timeout=10))["index"])
        assert not private & set(streamed)

        # Nor can CHE act on it: acknowledge, answer, or write to the channel. What it may
        # not read is answered as what does not exist (tests/test_event_rules.py).
        for i in (req["index"], msg["index"]):
            env = api.sign("CHE", PT_ACK, {"act": "ack", "entry": i, "party": "CHE"})
            text = assert_error(api.submit(env), 404, "not_found")
            want = f"acknowledgement of entry {i}, field 'entry': no entry {i} you may acknowledge"
            assert text == want
        env = api.sign(
            "CHE", PT_EVENT, event("CHE", "resp-2", "response", request="req-1", decision="refuse")
        )
        text = assert_error(api.submit(env), 404, "not_found")
        assert text == f"event 'resp-2', field 'request': no event 'req-1' you may refer to in {AG!r}"
        with th.client("CHE") as che:
            keys = {p["id"]: base64.b64decode(p["encryption_key"]) for p in che.parties()}
            env = che.hotline_envelope(
                "aut-bel", "m-2", "flash", "let me in", {"AUT": keys["AUT"], "BEL": keys["BEL"]}
            )
        assert_error(api.submit(env), 403, "forbidden", "not a member")
        assert api.size() == size


def test_the_hub_does_not_broadcast_an_overdue_reply_to_a_private_request(tmp_path: Path) -> None:
    clock = FakeClock("2027-03-01T00:00:00Z")
    with (
        running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, clock=clock) as th,
        api_for(th) as api,
    ):
        th.register("AUT", "BEL", "CHE")
        api.act(
            api.sign("AUT", PT_EVENT, event("AUT", "req-1", "request", kind="explanation", to="BEL"))
        )
        # BEL never answers; 48 h later the hub states the missed reply.
        logged = th.hub.sweep(parse_time("2027-03-05T00:00:00Z", "now"))
        assert [payload_of(api.ok(f"/v1/entries/{r.index}", "AUT"))["subjects"] for r in logged] == [
            ["req-1"]
        ]
        # The compliance view keeps the obligation from CHE; the log must too.
        rep = api.ok("/v1/obligations", "CHE", params={"agreement": AG, "as_of": "2027-03-05T00:00:00Z"})
        assert "req-1" not in json.dumps(rep)
        che = api.items("/v1/entries", "CHE", kind="obligation.overdue")
        assert che == [], [payload_of(i) for i in che]


# ---- replay -----------------------------------------------------------------------------------


def test_the_same_envelope_twice_is_stored_once(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th, api_for(th) as api:
        th.register("AUT", "BEL")
        env = api.sign("AUT", PT_EVENT, event("AUT", "n-1", "notification", form="regulation_notice"))
        size = api.size()
        # The first time in chunks, with no Content-Length (a streaming client): logged.
        first = api.submit(iter([env[:100], env[100:]]))
        assert first.status_code == 201, first.text
        assert first.json()["duplicate"] is False
        assert api.size() == size + 1
        size += 1
        # Sent again (a retry, or a replay by whoever copied it), with or without a proof.
        for params in ({}, {"proof": "false"}):
            again = api.submit(env, params=params)
            assert again.status_code == 200, again.text
            doc = again.json()
            assert doc["duplicate"] is True
            assert (doc["index"], doc["integrated_ms"]) == (
                first.json()["index"],
                first.json()["integrated_ms"],
            )
            assert api.size() == size
        assert "tlog_proof" in api.submit(env).json()
        assert [i["event_id"] for i in api.items("/v1/inbox", "BEL", kind="notification")] == ["n-1"]
        # The same act with its JSON written differently is still the same statement.
        parsed = json.loads(env)
        reordered = json.dumps({k: parsed[k] for k in reversed(list(parsed))}, indent=1).encode()
        doc = api.submit(reordered).json()
        assert doc["duplicate"] is True and doc["index"] == first.json()["index"]
        assert api.size() == size


# ---- bad input --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def quiet_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One hub for the bad-input cases, which must leave it as they found it."""
    tmp = tmp_path_factory.mktemp("quiet")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'log.db'}"
    else:
        base = pg_base_url()
        schema = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = with_schema(base, schema)
    try:
        with running_hub(url, tmp) as th, api_for(th) as api:
            th.register("AUT", "BEL")
            yield api
    finally:
        if schema is not None:
            with psycopg.connect(pg_base_url(), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _env(api: Api, doc: Mapping[str, Any], payload_type: str = PT_EVENT, **changes: Any) -> bytes:
    """AUT's signature over ``doc``, with envelope fields then changed as given."""
    raw = json.loads(api.sign("AUT", payload_type, doc))
    raw.update(changes)
    return json.dumps(raw).encode()


def _chunks(total: int) -> Iterator[bytes]:
    prefix = b'{"payloadType":"x","signatures":[{"sig":"AAAA"}],"payload":"'
    yield prefix
    sent = len(prefix)
    while sent < total:
        yield b"A" * 65536
        sent += 65536
    yield b'"}'


N1 = event("AUT", "n-1", "notification", form="prior_notification")
BAD_INPUT: dict[str, tuple[Callable[[Api], httpx.Response], int, str, tuple[str, ...]]] = {
    "malformed JSON": (
        lambda a: a.submit(b'{"payload": "e30=", "payloadType": '),
        400,
        "bad_input",
        ("body", "JSON"),
    ),
    "JSON not an object": (lambda a: a.submit(b"[1, 2]"), 400, "bad_input", ("body",)),
    "no signatures": (lambda a: a.submit(_env(a, N1, signatures=[])), 400, "bad_input", ("signatures",)),
    "signature not base64": (
        lambda a: a.submit(_env(a, N1, signatures=[{"keyid": "", "sig": "@@@"}])),
        400,
        "bad_input",
        ("signature 0", "base64"),
    ),
    "payload not base64": (
        lambda a: a.submit(_env(a, N1, payload="%%%")),
        400,
        "bad_input",
        ("payload",),
    ),
    "wrong payloadType": (
        lambda a: a.submit(_env(a, N1, "application/json")),
        400,
        "bad_input",
        ("payloadType", "application/json"),
    ),
    "payload not JSON": (
        lambda a: a.submit(dsse.sign(PT_EVENT, b"not json", [a.th.keys["AUT"].signer])),
        400,
        "bad_input",
        ("payload is not JSON",),
    ),
    "event missing a field": (
        lambda a: a.submit(_env(a, {k: v for k, v in N1.items() if k != "form"})),
        400,
        "bad_input",
        ("'n-1'", "'form'", "missing"),
    ),
    "event with a bad field": (
        lambda a: a.submit(_env(a, {**N1, "to": "BEL"})),
        400,
        "bad_input",
        ("'to'",),
    ),
    "ack without an entry": (
        lambda a: a.submit(_env(a, {"act": "ack", "party": "AUT"}, PT_ACK)),
        400,
        "bad_input",
        ("'entry'",),
    ),
    "unknown agreement": (
        lambda a: a.submit(_env(a, {**N1, "agreement": "no-such-treaty"})),
        404,
        "not_found",
        ("'no-such-treaty'",),
    ),
    "unknown author": (
        lambda a: a.submit(_env(a, {**N1, "party": "ZZZ"})),
        403,
        "forbidden",
        ("'ZZZ'", "not a registered party"),
    ),
    "unknown addressee": (
        lambda a: a.submit(_env(a, {**N1, "to": ["DEU"]})),
        404,
        "not_found",
        ("'to'", "'DEU'"),
    ),
    "request to an unknown party": (
        lambda a: a.submit(_env(a, event("AUT", "r-1", "request", kind="explanation", to="DEU"))),
        404,
        "not_found",
        ("'to'", "'DEU'"),
    ),
    "reference to an unknown activity": (
        lambda a: a.submit(_env(a, {**N1, "activity": "act-404"})),
        404,
        "not_found",
        ("'activity'", "'act-404'"),
    ),
    "ack of an entry the log does not hold": (
        lambda a: a.submit(_env(a, {"act": "ack", "entry": 10**9, "party": "AUT"}, PT_ACK)),
        404,
        "not_found",
        ("entry 1000000000",),
    ),
    "signed as another party": (
        lambda a: a.submit(_env(a, {**N1, "party": "BEL"})),
        422,
        "verification_failed",
        ("'BEL'", "signature"),
    ),
    "a party registering itself": (
        lambda a: a.submit(
            _env(
                a,
                {
                    "act": "party.register",
                    "party": "FRA",
                    "name": "x",
                    "agreements": [AG],
                    "signing_key": generate_key("fra")[1],
                    "encryption_key": party_keys("FRA").enc_public,
                },
                PT_REGISTRY,
            )
        ),
        422,
        "verification_failed",
        ("'secretariat'",),
    ),
    "too large (Content-Length)": (
        lambda a: a.submit(b"{" + b" " * MAX_REQUEST_BYTES + b"}"),
        413,
        "too_large",
        (str(MAX_REQUEST_BYTES),),
    ),
    "too large (chunked, no Content-Length)": (
        lambda a: a.submit(_chunks(MAX_REQUEST_BYTES + 65536)),
        413,
        "too_large",
        (str(MAX_REQUEST_BYTES),),
    ),
    "too large query value": (
        lambda a: a.get("/v1/entries", "AUT", params={"kind": "k" * 200}),
        400,
        "bad_input",
        ("kind",),
    ),
    "bad query value": (
        lambda a: a.get("/v1/entries", "AUT", params={"since": "yesterday"}),
        400,
        "bad_input",
        ("since", "'yesterday'"),
    ),
    "negative index": (lambda a: a.get("/v1/entries/-1", "AUT"), 400, "bad_input", ("index",)),
    "unknown agreement's obligations": (
        lambda a: a.get("/v1/obligations", "AUT", params={"agreement": "nope"}),
        404,
        "not_found",
        ("'nope'",),
    ),
    "forged token": (
        lambda a: a.http.get("/v1/entries", headers={"Authorization": "Bearer e30.AAAA"}),
        401,
        "unauthorized",
        ("token",),
    ),
    "cosignature lines that are not": (
        lambda a: a.http.post("/v1/log/cosignatures", params={"size": 1}, content=b"hello\n"),
        400,
        "bad_input",
        ("em dash",),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_clearly_and_logs_nothing(quiet_hub: Api, case: str) -> None:
    api = quiet_hub
    send, status, code, needles = BAD_INPUT[case]
    size = api.size()
    assert_error(send(api), status, code, *needles)
    assert api.size() == size


# ---- rate limiting ----------------------------------------------------------------------------


def test_writes_are_rate_limited_with_retry_after(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=1.0)
    with (
        running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th,
        api_for(th) as api,
    ):
        keys = party_keys("AUT")
        register = api.sign(
            "secretariat",
            PT_REGISTRY,
            {
                "act": "party.register",
                "party": "AUT",
                "name": "State AUT",
                "agreements": [AG],
                "signing_key": keys.vkey,
                "encryption_key": keys.enc_public,
            },
        )
        size = api.size()
        # A burst of twice the rate passes; the next write is refused, and not logged.
        statuses = []
        for _ in range(2):
            statuses.append(api.http.post("/v1/auth/challenge", json={"party": "AUT"}).status_code)
        limited = api.submit(register)
        assert statuses == [200, 200]
        assert_error(limited, 429, "rate_limited")
        retry = int(limited.headers["Retry-After"])
        assert 1 <= retry <= 2
        assert api.size() == size
        # Reads are not writes: they go through.
        for _ in range(5):
            api.ok("/healthz")
        # Honouring Retry-After is enough.
        time.sleep(retry)
        assert api.submit(register).status_code == 201
        assert api.size() == size + 1


def test_a_slow_write_rate_still_admits_writes_and_says_how_long_to_wait(tmp_path: Path) -> None:
    settings = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=0.2)
    with (
        running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, settings=settings) as th,
        api_for(th) as api,
    ):
        first = api.http.post("/v1/auth/challenge", json={"party": "AUT"})
        assert first.status_code == 200, first.text
        second = api.http.post("/v1/auth/challenge", json={"party": "AUT"})
        assert_error(second, 429, "rate_limited")
        # One write per 5 s: waiting 1 s would not do.
        assert 4 <= int(second.headers["Retry-After"]) <= 5
