"""The hub starts from a snapshot of its folded state exactly as from the full fold, and
starts by the full fold from any snapshot that is not its own (docs/adr/0009)."""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmnet.acts import snapshot
from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HOTLINE, PT_REGISTRY, SECRETARIAT
from cbmnet.acts.state import HubState, act_json
from cbmnet.agreements.loader import bundled
from cbmnet.communication.hotline import SUITE_NAME
from cbmnet.errors import CbmnetError, FormatError, VerificationError
from cbmnet.hub.service import Hub, HubSettings, init_hub
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.store import open_store
from tests.hubkit import AGREEMENTS, ORIGIN, party_keys
from tests.test_acts import ACTIVITY, VD, Book

T0 = 1_800_000_000_000
CT = base64.b64encode(b"opaque").decode()


class Traffic:
    """A hub on ``url`` and signers for its secretariat and parties, acts submitted directly."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.sec, sec_vkey = generate_key("secretariat.cbmnet.test")
        self.keys = init_hub(
            url,
            tmp / "hubkeys",
            origin=ORIGIN,
            secretariat_vkey=sec_vkey,
            agreements=[bundled(a) for a in AGREEMENTS],
        )
        self.now = [T0]
        self.signers: dict[str, str] = {SECRETARIAT: self.sec}
        self.hub = self.start()

    def start(self) -> Hub:
        return Hub(
            self.url, self.keys, HubSettings(sweep_s=3600, checkpoint_s=3600), clock=lambda: self.now[0]
        )

    def act(self, author: str, pt: str, doc: dict[str, Any]) -> int:
        self.now[0] += 60_000
        env = dsse.sign(pt, act_json(doc), [parse_signer_key(self.signers[author]).private_key])
        return self.hub.submit(env).index

    def register(self, *parties: str) -> None:
        for p in parties:
            k = party_keys(p)
            self.signers[p] = k.signer
            self.act(
                SECRETARIAT,
                PT_REGISTRY,
                {
                    "act": "party.register",
                    "party": p,
                    "name": f"State {p}",
                    "agreements": list(AGREEMENTS),
                    "signing_key": k.vkey,
                    "encryption_key": k.enc_public,
                    "witness_key": k.witness_vkey,
                    "recovery_key": k.recovery_vkey,
                },
            )

    def event(self, party: str, doc: dict[str, Any]) -> int:
        return self.act(party, PT_EVENT, {"agreement": VD, "party": party, **doc})

    def some(self, tag: str) -> None:
        """A bit of everything: events public and private, amendments, a channel, messages,
        acknowledgements, and what the hub's sweep states about them."""
        a = self.event("DEU", {**ACTIVITY, "id": f"DEU-{tag}a"})
        self.event("DEU", {**ACTIVITY, "id": f"DEU-{tag}b"})
        self.event("FRA", {"id": f"FRA-{tag}r", "type": "request", "kind": "explanation", "to": "DEU"})
        self.event(
            "DEU",
            {
                **ACTIVITY,
                "id": f"DEU-{tag}c",
                "size": {"troops": 9000},
                "amends": {"id": f"DEU-{tag}a", "action": "correct"},
            },
        )
        self.event(
            "DEU",
            {**ACTIVITY, "id": f"DEU-{tag}w", "amends": {"id": f"DEU-{tag}b", "action": "withdraw"}},
        )
        self.act("FRA", PT_ACK, {"act": "ack", "party": "FRA", "entry": a})
        ch = f"c-{tag}"
        opened = self.act(
            SECRETARIAT,
            PT_HOTLINE,
            {
                "act": "channel.open",
                "party": SECRETARIAT,
                "channel": ch,
                "agreement": VD,
                "members": ["DEU", "FRA", "POL"],
            },
        )
        self.act("POL", PT_ACK, {"act": "ack", "party": "POL", "entry": opened})
        for i, precedence in enumerate(("immediate", "flash")):
            msg = self.act(
                "DEU",
                PT_HOTLINE,
                {
                    "act": "hotline.message",
                    "party": "DEU",
                    "channel": ch,
                    "id": f"m{i}",
                    "precedence": precedence,
                    "suite": SUITE_NAME,
                    "ciphertexts": {"DEU": CT, "FRA": CT, "POL": CT},
                },
            )
            self.act("FRA", PT_ACK, {"act": "ack", "party": "FRA", "entry": msg})
        self.now[0] += 86_400_000
        self.hub.sweep(self.now[0])  # POL never answered the first: the hub says so


def full_fold(t: Traffic) -> HubState:
    """The state folded from every entry of the store, as a hub without a snapshot does."""
    store = open_store(t.url)
    try:
        state = HubState(
            t.hub.agreements,
            t.hub.state.secretariat_key,
            t.hub.state.hub_key,
        )
        for row in store.iter_entries():
            env = dsse.parse(row.envelope)
            state.apply_logged(row.idx, row.integrated_ms, env.payload_type, env.payload)
    finally:
        store.close()
    return state


def observed(state: HubState) -> dict[str, Any]:
    """What readers of the state see: parties, entries, channels, pending, acknowledgements,
    events per agreement, and who may read which entry."""
    readers = [*sorted(state.parties), SECRETARIAT, "NOBODY"]
    return {
        "size": state.size,
        "parties": {k: asdict(v) for k, v in state.parties.items()},
        "entries": [asdict(e) for e in state.entries],
        "channels": {k: asdict(v) for k, v in state.channels.items()},
        "pending": {k: asdict(v) for k, v in state.pending.items()},
        "acks": dict(state.acks),
        "events": {a: state.events(a) for a in state.agreements},
        "events_upto": {a: state.events(a, upto=state.size // 2) for a in state.agreements},
        "visible": {p: list(state.visible(p)) for p in readers},
        "may_read": {p: [state.may_read(p, e) for e in state.entries] for p in readers},
        "audience": [sorted(state.audience(e)) for e in state.entries],
        "unanswered": state.unanswered(T0 * 2),
        "sets": (state.no_answer, state.overdue, state.check_results, state.hotline_ids),
        "registry": (
            state.registry.approvals,
            state.registry.used_keys,
            state.registry.witnesses,
            state.registry.policy_witnesses(),
        ),
        "signing_keys": {p: state.signing_keys(p) for p in readers},
        "version": state.version,
    }


@pytest.fixture
def traffic(store_url: str, tmp_path: Path) -> Traffic:
    t = Traffic(store_url, tmp_path)
    t.register("DEU", "FRA", "POL")
    t.some("x")
    return t


def restarted(t: Traffic, caplog: pytest.LogCaptureFixture) -> tuple[Hub, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cbmnet.hub"):
        hub = t.start()
    return hub, caplog.text


def test_a_restart_from_the_snapshot_answers_as_the_full_fold(
    traffic: Traffic, caplog: pytest.LogCaptureFixture
) -> None:
    t = traffic
    size = t.hub.committed
    t.hub.close()  # writes the snapshot
    store = open_store(t.url)
    got = store.latest_snapshot()
    store.close()
    assert got is not None and got[0] == size
    t.hub, text = restarted(t, caplog)
    assert f"restored from its snapshot at {size} entries" in text
    assert t.hub.committed == size
    assert observed(t.hub.state) == observed(full_fold(t))
    # It goes on as any hub: new acts are admitted against the restored state.
    t.some("y")
    assert observed(t.hub.state) == observed(full_fold(t))
    t.hub.close()


def test_entries_logged_after_the_snapshot_are_folded_at_start(
    traffic: Traffic, caplog: pytest.LogCaptureFixture
) -> None:
    t = traffic
    assert t.hub.save_snapshot() is True
    assert t.hub.save_snapshot() is False  # not grown since
    early = t.hub.committed
    store = open_store(t.url)
    old = store.latest_snapshot()
    assert old is not None and old[0] == early
    t.some("y")
    assert t.hub.save_snapshot(grown=10_000) is False  # not grown that much
    t.hub.close()
    store.put_snapshot(*old)  # as if the process had died before its next snapshot
    store.close()
    t.hub, text = restarted(t, caplog)
    assert f"restored from its snapshot at {early} entries" in text
    assert t.hub.committed > early
    assert observed(t.hub.state) == observed(full_fold(t))
    t.hub.close()


class Evil:
    """Unpickles as a call to os.system."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch pwned",))


def _bad_blobs(t: Traffic, kind: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes, str]:
    """A snapshot the hub must refuse, and the words its warning must hold."""
    state, size = t.hub.state, t.hub.committed
    key = snapshot.snapshot_key(parse_signer_key(t.keys.hub_key).private_key.private_bytes_raw())
    root = t.hub.rlog.root_at(size)
    good = snapshot.dump(state, root, key)
    if kind == "flipped":
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0x01
        return size, bytes(bad), "HMAC does not verify"
    if kind == "wrong-key":
        other = snapshot.snapshot_key(os.urandom(32))
        return size, snapshot.dump(state, root, other), "HMAC does not verify"
    if kind == "wrong-root":
        return size, snapshot.dump(state, bytes(32), key), "not the log's"
    if kind == "other-agreements":
        narrow = HubState({VD: bundled(VD)}, state.secretariat_key, state.hub_key)
        return 0, snapshot.dump(narrow, t.hub.rlog.root_at(0), key), "not this hub's state"
    if kind == "past-the-log":
        return size + 1, good, "holds a state of size"
    assert kind == "os.system"
    with monkeypatch.context() as m:
        m.setattr(HubState, "plain", lambda self: [Evil()])
        blob = snapshot.dump(state, root, key)  # a valid HMAC: as if the key had leaked
    return size, blob, "system, which a hub state never holds"


@pytest.mark.parametrize(
    "kind", ["flipped", "wrong-key", "wrong-root", "other-agreements", "past-the-log", "os.system"]
)
def test_a_snapshot_not_this_hubs_is_refused_and_the_log_folded(
    traffic: Traffic,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    t = traffic
    monkeypatch.chdir(tmp_path)
    size, blob, why = _bad_blobs(t, kind, monkeypatch)
    t.hub.close()
    store = open_store(t.url)
    store.put_snapshot(size, blob)
    t.hub, text = restarted(t, caplog)
    assert "hub-state snapshot not used" in text and why in text, text
    assert "folding the whole log" in text and "restored" not in text
    assert not (tmp_path / "pwned").exists()
    assert observed(t.hub.state) == observed(full_fold(t))
    t.hub.close()  # and a good snapshot takes the bad one's place
    got = store.latest_snapshot()
    store.close()
    assert got is not None and got != (size, blob)
    t.hub, text = restarted(t, caplog)
    assert "restored from its snapshot" in text
    t.hub.close()


# ---- the format, without a hub ---------------------------------------------------------------


def _book() -> Book:
    b = Book()
    for p in ("DEU", "FRA"):
        b.register(p)
    b.event("DEU", ACTIVITY)
    b.event("FRA", {"id": "r1", "type": "request", "kind": "explanation", "to": "DEU"})
    return b


def _load(b: Book, blob: bytes, key: bytes) -> tuple[HubState, bytes]:
    return snapshot.load(
        blob,
        key,
        agreements=b.state.agreements,
        secretariat_key=b.state.secretariat_key,
        hub_key=b.state.hub_key,
    )


def test_load_names_what_is_wrong() -> None:
    b = _book()
    key = snapshot.snapshot_key(b"k" * 32)
    blob = snapshot.dump(b.state, b"\x07" * 32, key)
    state, root = _load(b, blob, key)
    assert root == b"\x07" * 32 and observed(state) == observed(b.state)
    with pytest.raises(FormatError, match="not a cbmnet hub-state snapshot"):
        _load(b, b"\x80\x05junk", key)
    with pytest.raises(VerificationError, match="HMAC does not verify"):
        _load(b, blob[:-1] + bytes([blob[-1] ^ 1]), key)
    with pytest.raises(VerificationError, match="HMAC does not verify"):
        _load(b, blob, snapshot.snapshot_key(b"j" * 32))
    with pytest.raises(FormatError, match="a Merkle root is 32 bytes"):
        snapshot.dump(b.state, b"short", key)
    assert snapshot.snapshot_key(b"k" * 32) != snapshot.snapshot_key(b"j" * 32)


def test_the_snapshot_key_is_not_the_hub_key_itself() -> None:
    raw = parse_signer_key(generate_key("hub.test")[0]).private_key.private_bytes_raw()
    assert snapshot.snapshot_key(raw) not in (raw, b"")


def _ops() -> st.SearchStrategy[list[tuple[str, int]]]:
    names = ["register", "activity", "request", "correct", "withdraw", "open", "message", "ack"]
    return st.lists(st.tuples(st.sampled_from(names), st.integers(0, 5)), max_size=25)


def _play(b: Book, ops: list[tuple[str, int]]) -> None:
    """Whatever of ``ops`` the state admits, in order (the rest is refused, as a hub would)."""
    activities: list[tuple[str, str]] = []
    for op, n in ops:
        parties = sorted(b.keys)
        if not parties and op != "register":
            continue
        who = parties[n % len(parties)] if parties else "DEU"
        try:
            if op == "register":
                b.register(["DEU", "FRA", "POL", "ITA"][n % 4])
            elif op == "activity":
                b.event(who, {**ACTIVITY, "id": f"{who}-a{len(b.log)}"})
                activities.append((who, f"{who}-a{len(b.log) - 1}"))
            elif op == "request":
                other = parties[(n + 1) % len(parties)]
                b.event(
                    who, {"id": f"{who}-r{n}", "type": "request", "kind": "explanation", "to": other}
                )
            elif op in ("correct", "withdraw") and activities:
                owner, target = activities[n % len(activities)]
                amends = {"id": target, "action": op}
                b.event(owner, {**ACTIVITY, "id": f"{owner}-{op}{len(b.log)}", "amends": amends})
            elif op == "open":
                doc = {"act": "channel.open", "party": SECRETARIAT, "channel": f"c{n}", "agreement": VD}
                b.act(PT_HOTLINE, {**doc, "members": parties}, b.sec)
            elif op == "message" and b.state.channels:
                ch = sorted(b.state.channels.values(), key=lambda c: c.id)[n % len(b.state.channels)]
                sender = ch.members[n % len(ch.members)]
                b.act(
                    PT_HOTLINE,
                    {
                        "act": "hotline.message",
                        "party": sender,
                        "channel": ch.id,
                        "id": f"m{len(b.log)}",
                        "precedence": "flash",
                        "suite": SUITE_NAME,
                        "ciphertexts": dict.fromkeys(ch.members, CT),
                    },
                    b.keys[sender],
                )
            elif op == "ack" and b.log:
                b.act(PT_ACK, {"act": "ack", "party": who, "entry": len(b.log) - 1 - n}, b.keys[who])
        except CbmnetError:
            continue


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops())
def test_dump_then_load_is_the_same_state(ops: list[tuple[str, int]]) -> None:
    b = Book()
    _play(b, ops)
    key = snapshot.snapshot_key(b"k" * 32)
    state, _ = _load(b, snapshot.dump(b.state, bytes(32), key), key)
    assert observed(state) == observed(b.state) == observed(b.replay())


def test_the_restored_registry_is_the_states_own() -> None:
    b = _book()
    key = snapshot.snapshot_key(b"k" * 32)
    b.state, _ = _load(b, snapshot.dump(b.state, bytes(32), key), key)
    assert b.state.parties is b.state.registry.parties
    b.register("POL")  # folded into the one registry the state reads
    assert "POL" in b.state.parties and b.state.signing_keys("POL")
    assert observed(b.state) == observed(b.replay())
