"""The hub's state as a pure fold of acts: who may sign, who may read, and replay."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict
from typing import Any

import pytest

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HOTLINE, PT_HUB, PT_REGISTRY, read_act
from cbmnet.acts.state import HubState, act_json
from cbmnet.agreements.loader import bundled
from cbmnet.communication.hotline import SUITE_NAME, generate_encryption_key
from cbmnet.errors import CbmnetError, ConflictError, ForbiddenError, FormatError, NotFoundError
from cbmnet.ledger.dsse import pae
from cbmnet.ledger.note import generate_key, parse_signer_key

VD = "vienna-document-2011"


class Book:
    """A state plus the log it was folded from: (payload type, payload) per index."""

    def __init__(self) -> None:
        self.sec = generate_key("secretariat.test")[0]
        self.hub = generate_key("hub.test")[0]
        self.state = HubState({VD: bundled(VD)}, _pub(self.sec), _pub(self.hub))
        self.log: list[tuple[str, bytes, int]] = []
        self.keys: dict[str, str] = {}
        self.ms = 1_800_000_000_000

    def act(self, pt: str, doc: dict[str, Any], signer: str) -> int:
        payload = act_json(doc)
        act = read_act(pt, payload)
        self.state.check(act, [_pub(signer)])
        self.ms += 1000
        idx = self.state.size
        self.state.apply(act, idx, self.ms, hashlib.sha256(pae(pt, payload)).digest())
        self.log.append((pt, payload, self.ms))
        return idx

    def register(self, party: str) -> str:
        skey, vkey = generate_key(f"{party.lower()}.test")
        self.keys[party] = skey
        self.act(
            PT_REGISTRY,
            {
                "act": "party.register",
                "party": party,
                "name": party,
                "agreements": [VD],
                "signing_key": vkey,
                "encryption_key": generate_encryption_key()[1],
            },
            self.sec,
        )
        return skey

    def event(self, party: str, doc: dict[str, Any], signer: str | None = None) -> int:
        return self.act(PT_EVENT, {"agreement": VD, "party": party, **doc}, signer or self.keys[party])

    def replay(self) -> HubState:
        st = HubState({VD: bundled(VD)}, _pub(self.sec), _pub(self.hub))
        for i, (pt, payload, ms) in enumerate(self.log):
            st.apply_logged(i, ms, pt, payload)
        return st


def _pub(skey: str) -> bytes:
    return parse_signer_key(skey).public_key


ACTIVITY = {
    "id": "a1",
    "type": "activity",
    "start": "2027-09-01T00:00:00Z",
    "end": "2027-09-03T00:00:00Z",
    "category": "land",
    "size": {"troops": 14000},
}


def test_only_the_secretariat_registers_and_keys_rotate_and_revoke() -> None:
    b = Book()
    deu = b.register("DEU")
    with pytest.raises(ForbiddenError):  # a party cannot enrol another, nor itself
        b.act(
            PT_REGISTRY,
            {
                "act": "party.register",
                "party": "FRA",
                "name": "FRA",
                "agreements": [VD],
                "signing_key": generate_key("fra.test")[1],
                "encryption_key": generate_encryption_key()[1],
            },
            deu,
        )
    with pytest.raises(FormatError, match="not a party to"):
        b.act(
            PT_REGISTRY,
            {
                "act": "party.register",
                "party": "IND",
                "name": "India",
                "agreements": [VD],
                "signing_key": generate_key("ind.test")[1],
                "encryption_key": generate_encryption_key()[1],
            },
            b.sec,
        )
    b.event("DEU", ACTIVITY)
    new_skey, new_vkey = generate_key("deu2.test")
    # The party rotates its own key; from then on only the new key signs for it.
    b.act(PT_REGISTRY, {"act": "key.rotate", "party": "DEU", "by": "DEU", "signing_key": new_vkey}, deu)
    with pytest.raises(ForbiddenError, match="not an active key"):
        b.event("DEU", {**ACTIVITY, "id": "a2"}, deu)
    b.event("DEU", {**ACTIVITY, "id": "a2"}, new_skey)
    # A retired key can never come back.
    with pytest.raises(ConflictError, match="used before"):
        b.act(
            PT_REGISTRY,
            {
                "act": "key.rotate",
                "party": "DEU",
                "by": "DEU",
                "signing_key": parse_signer_key(deu).verifier_key,
            },
            new_skey,
        )
    # Revoked (a compromise): nothing signed by it is admitted any more.
    b.act(PT_REGISTRY, {"act": "key.revoke", "party": "DEU", "by": "DEU", "key": new_vkey}, new_skey)
    assert b.state.signing_keys("DEU") == []
    with pytest.raises(ForbiddenError):
        b.event("DEU", {**ACTIVITY, "id": "a3"}, new_skey)


def test_readers_are_the_addressees() -> None:
    b = Book()
    for p in ("DEU", "FRA", "POL"):
        b.register(p)
    act = b.event("DEU", ACTIVITY)
    note = b.event(
        "DEU", {"id": "n1", "type": "notification", "form": "prior_notification", "activity": "a1"}
    )
    req = b.event(
        "FRA", {"id": "r1", "type": "request", "kind": "explanation", "to": "DEU", "activity": "a1"}
    )
    resp = b.event("DEU", {"id": "s1", "type": "response", "request": "r1", "decision": "answer"})
    to_fra = b.event("DEU", {"id": "n2", "type": "notification", "form": "flight_notice", "to": ["FRA"]})
    st = b.state
    for i in (0, 1, 2, act, note):
        assert all(st.may_read(p, st.entries[i]) for p in ("DEU", "FRA", "POL"))
    for i in (req, resp, to_fra):
        assert st.may_read("DEU", st.entries[i]) and st.may_read("FRA", st.entries[i])
        assert not st.may_read("POL", st.entries[i])
        assert st.may_read("secretariat", st.entries[i])
    assert list(st.visible("POL")) == [0, 1, 2, act, note]
    assert list(st.visible("FRA", after=note)) == [req, resp, to_fra]
    # Only the addressee answers a request; only readers refer to events, and what one
    # may not read is answered as what does not exist.
    with pytest.raises(NotFoundError) as hidden:
        b.event("POL", {"id": "s2", "type": "response", "request": "r1", "decision": "refuse"})
    assert str(hidden.value) == (
        "event 's2', field 'request': no event 'r1' you may refer to in 'vienna-document-2011'"
    )
    with pytest.raises(NotFoundError) as missing:
        b.event("POL", {"id": "s2", "type": "response", "request": "zz", "decision": "refuse"})
    assert str(missing.value) == str(hidden.value).replace("'r1'", "'zz'")
    with pytest.raises(ConflictError, match="already has an event"):
        b.event("POL", {**ACTIVITY})
    # Acknowledgements: of what one may read, once, never one's own.
    b.act(PT_ACK, {"act": "ack", "party": "FRA", "entry": note}, b.keys["FRA"])
    with pytest.raises(ConflictError, match="already acknowledged"):
        b.act(PT_ACK, {"act": "ack", "party": "FRA", "entry": note, "x": 1}, b.keys["FRA"])
    with pytest.raises(NotFoundError, match=f"field 'entry': no entry {req} you may acknowledge"):
        b.act(PT_ACK, {"act": "ack", "party": "POL", "entry": req}, b.keys["POL"])
    with pytest.raises(FormatError, match="own act"):
        b.act(PT_ACK, {"act": "ack", "party": "DEU", "entry": note}, b.keys["DEU"])


def test_amendments_keep_the_original_and_change_what_the_engine_reads() -> None:
    b = Book()
    b.register("DEU")
    b.register("FRA")
    b.event("DEU", ACTIVITY)
    b.event(
        "DEU",
        {
            "id": "a2",
            "type": "activity",
            **{k: v for k, v in ACTIVITY.items() if k not in ("id", "type")},
        },
    )
    first_time = b.state.events(VD)[0]["time"]
    b.event(
        "DEU",
        {
            **ACTIVITY,
            "id": "a1-c1",
            "size": {"troops": 9000},
            "amends": {"id": "a1", "action": "correct"},
        },
    )
    b.event("DEU", {**ACTIVITY, "id": "a2-w", "amends": {"id": "a2", "action": "withdraw"}})
    with pytest.raises(NotFoundError, match="field 'amends': no event 'a1' you may amend in"):
        b.event("FRA", {**ACTIVITY, "id": "x", "amends": {"id": "a1", "action": "withdraw"}})
    with pytest.raises(ConflictError, match="withdrawn already"):
        b.event("DEU", {**ACTIVITY, "id": "a2-w2", "amends": {"id": "a2", "action": "withdraw"}})
    events = b.state.events(VD)
    assert [e["id"] for e in events] == ["a1"]
    # A change of substance counts from when it was made: nothing is backdated.
    correction_time = b.state.events(VD)[0]["corrected_at"]
    assert events[0]["size"] == {"troops": 9000} and events[0]["time"] == correction_time != first_time
    assert len(b.state.entries) == 6  # two registrations, two declarations, two amendments
    # A corrigendum of the text alone keeps the original's time.
    b.event(
        "DEU",
        {
            **ACTIVITY,
            "id": "a1-c2",
            "size": {"troops": 9000},
            "body": "typo fixed",
            "amends": {"id": "a1", "action": "correct"},
        },
    )
    assert b.state.events(VD)[0]["time"] == correction_time


def test_amendments_cannot_retarget_or_orphan() -> None:
    b = Book()
    for p in ("DEU", "FRA", "POL"):
        b.register(p)
    b.event("DEU", ACTIVITY)
    b.event("DEU", {"id": "n1", "type": "notification", "form": "prior_notification", "activity": "a1"})
    b.event("FRA", {"id": "r1", "type": "request", "kind": "explanation", "to": "DEU"})
    # A request cannot be redirected to a third party after the fact.
    with pytest.raises(FormatError, match="field 'to'"):
        b.event(
            "FRA",
            {
                "id": "r1-c",
                "type": "request",
                "kind": "explanation",
                "to": "POL",
                "amends": {"id": "r1", "action": "correct"},
            },
        )
    # The activity cannot be withdrawn while a live notification refers to it ...
    with pytest.raises(ConflictError, match="n1 still refer"):
        b.event("DEU", {**ACTIVITY, "id": "a1-w", "amends": {"id": "a1", "action": "withdraw"}})
    b.event(
        "DEU",
        {
            "id": "n1-w",
            "type": "notification",
            "form": "prior_notification",
            "amends": {"id": "n1", "action": "withdraw"},
        },
    )
    b.event("DEU", {**ACTIVITY, "id": "a1-w", "amends": {"id": "a1", "action": "withdraw"}})
    # ... and nothing new may refer to a withdrawn event.
    with pytest.raises(NotFoundError, match="withdrawn"):
        b.event(
            "DEU", {"id": "n2", "type": "notification", "form": "prior_notification", "activity": "a1"}
        )
    assert [e["id"] for e in b.state.events(VD)] == ["r1"]


def test_hotline_pending_acknowledgements_and_no_answer() -> None:
    b = Book()
    for p in ("DEU", "FRA", "POL"):
        b.register(p)
    opened = b.act(
        PT_HOTLINE,
        {
            "act": "channel.open",
            "party": "DEU",
            "channel": "c1",
            "agreement": VD,
            "members": ["DEU", "FRA", "POL"],
        },
        b.keys["DEU"],
    )
    # Members agree to the channel by acknowledging its opening; only then are they held
    # to its deadlines. ITA never agreed to anything here.
    for p in ("FRA", "POL"):
        b.act(PT_ACK, {"act": "ack", "party": p, "entry": opened}, b.keys[p])
    ct = base64.b64encode(b"opaque").decode()
    msg = b.act(
        PT_HOTLINE,
        {
            "act": "hotline.message",
            "party": "DEU",
            "channel": "c1",
            "id": "m1",
            "precedence": "immediate",
            "suite": SUITE_NAME,
            "ciphertexts": {"DEU": ct, "FRA": ct, "POL": ct},
        },
        b.keys["DEU"],
    )
    sent = b.state.entries[msg].ms
    assert b.state.unanswered(sent + 29 * 60_000) == []
    b.act(PT_ACK, {"act": "ack", "party": "FRA", "entry": msg}, b.keys["FRA"])
    due = b.state.unanswered(sent + 31 * 60_000)
    assert [d["party"] for d in due] == ["POL"] and due[0]["precedence"] == "immediate"
    b.act(PT_HUB, due[0], b.hub)
    assert b.state.unanswered(sent + 31 * 60_000) == []
    with pytest.raises(ConflictError):  # stated once
        b.act(PT_HUB, {**due[0], "note": "again"}, b.hub)
    with pytest.raises(ForbiddenError):  # only the hub states it
        b.act(PT_HUB, due[0], b.keys["DEU"])


def test_nobody_is_silent_on_a_channel_it_never_agreed_to() -> None:
    b = Book()
    for p in ("DEU", "FRA", "POL"):
        b.register(p)
    ct = base64.b64encode(b"opaque").decode()

    def open_and_send(opener: str, signer: str, channel: str) -> int:
        b.act(
            PT_HOTLINE,
            {
                "act": "channel.open",
                "party": opener,
                "channel": channel,
                "agreement": VD,
                "members": ["DEU", "FRA", "POL"],
            },
            signer,
        )
        return b.act(
            PT_HOTLINE,
            {
                "act": "hotline.message",
                "party": "DEU",
                "channel": channel,
                "id": "m",
                "precedence": "flash",
                "suite": SUITE_NAME,
                "ciphertexts": {"DEU": ct, "FRA": ct, "POL": ct},
            },
            b.keys["DEU"],
        )

    unsolicited = open_and_send("DEU", b.keys["DEU"], "spam")
    later = b.state.entries[unsolicited].ms + 3_600_000
    assert [d for d in b.state.unanswered(later) if d["entry"] == unsolicited] == []
    # A channel the secretariat set up (an agreed hotline) holds every member.
    official = open_and_send("secretariat", b.sec, "official")
    assert sorted(
        d["party"] for d in b.state.unanswered(later + 3_600_000) if d["entry"] == official
    ) == [
        "FRA",
        "POL",
    ]
    # An acknowledgement naming another act's statement is refused.
    with pytest.raises(ConflictError, match="statement differs"):
        b.act(
            PT_ACK,
            {"act": "ack", "party": "FRA", "entry": official, "statement": "00" * 32},
            b.keys["FRA"],
        )


def test_replaying_the_log_rebuilds_the_same_state() -> None:
    b = Book()
    for p in ("DEU", "FRA"):
        b.register(p)
    b.event("DEU", ACTIVITY)
    b.event("FRA", {"id": "r1", "type": "request", "kind": "explanation", "to": "DEU"})
    b.act(
        PT_HOTLINE,
        {
            "act": "channel.open",
            "party": "FRA",
            "channel": "c1",
            "agreement": VD,
            "members": ["DEU", "FRA"],
        },
        b.keys["FRA"],
    )
    b.act(PT_ACK, {"act": "ack", "party": "FRA", "entry": 2}, b.keys["FRA"])
    again = b.replay()
    assert again.entries == b.state.entries
    assert {k: asdict(v) for k, v in again.parties.items()} == {
        k: asdict(v) for k, v in b.state.parties.items()
    }
    assert again.channels == b.state.channels and again.acks == b.state.acks
    assert again.events(VD) == b.state.events(VD)
    for p in ("DEU", "FRA", "secretariat"):
        assert list(again.visible(p)) == list(b.state.visible(p))


@pytest.mark.parametrize(
    ("pt", "doc", "field"),
    [
        (PT_EVENT, {"agreement": VD, "id": "n", "party": "DEU", "type": "notification"}, "form"),
        (
            PT_EVENT,
            {"agreement": "Not An Id", "id": "n", "party": "DEU", "type": "activity"},
            "agreement",
        ),
        (PT_ACK, {"act": "ack", "party": "DEU", "entry": -1}, "entry"),
        (
            PT_HOTLINE,
            {"act": "channel.open", "party": "DEU", "channel": "c", "agreement": VD, "members": ["DEU"]},
            "members",
        ),
        (PT_REGISTRY, {"act": "key.rotate", "party": "DEU", "by": "FRA", "signing_key": "x"}, "by"),
        (PT_HUB, {"act": "obligation.forgiven"}, "act"),
    ],
)
def test_bad_acts_name_the_field(pt: str, doc: dict[str, Any], field: str) -> None:
    with pytest.raises(CbmnetError, match=f"'{field}'"):
        read_act(pt, act_json(doc))


def test_hotline_messages_carry_no_plaintext() -> None:
    doc = {
        "act": "hotline.message",
        "party": "DEU",
        "channel": "c1",
        "id": "m1",
        "precedence": "flash",
        "suite": SUITE_NAME,
        "ciphertexts": {"DEU": "AAAA"},
        "body": "in the clear",
    }
    with pytest.raises(FormatError, match="ciphertext only"):
        read_act(PT_HOTLINE, act_json(doc))
