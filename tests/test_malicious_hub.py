"""A malicious hub operator (issue 7): what it does, how the parties catch it, what they hold.

Every test runs a real hub on loopback (both store backends where a fork is cheap) and has
the operator attack it the way an operator could: raw SQL on the hub's own database, a
filter in front of the hub's HTTP answers, a copy of the database served to some parties,
a clock set back, a stolen party key. Each ends with the evidence a party gets and checks
that a third party can verify it offline with public keys only: the log's verifier key,
the parties' witness keys and, for an act's author, that party's signing key.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cbmnet.acts.model import PT_EVENT, PT_REGISTRY, read_act
from cbmnet.agreements.loader import bundled
from cbmnet.errors import AuthError, ForbiddenError, FormatError, NotFoundError, VerificationError
from cbmnet.hub import auth
from cbmnet.hub.app import create_app
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import Hub, HubKeys, HubSettings, init_hub
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import format_checkpoint
from cbmnet.ledger.entry import decode_entry, encode_entry
from cbmnet.ledger.merkle import inclusion_proof, root_hash
from cbmnet.ledger.note import generate_key, new_signer, parse_verifier_key, sign_note
from cbmnet.ledger.policy import Policy, parse_policy
from cbmnet.ledger.tlogproof import ProofBundle, format_proof, verify_entry_proof
from cbmnet.log.evidence import (
    backdated_entry,
    rewritten_entry,
    split_view_from_checkpoints,
    split_view_from_proofs,
    verify_backdated_entry,
    verify_rewritten_entry,
    verify_split_view,
)
from cbmnet.party.audit import audit_hub
from cbmnet.party.client import HubClient, Identity, Pins
from cbmnet.party.witness import Witness, witness_hub
from cbmnet.store import open_store
from tests.conftest import pg_base_url, with_schema
from tests.hubkit import AGREEMENTS, ORIGIN, TestHub, running_hub

AG = "vienna-document-2011"
HOUR_MS = 3_600_000

# ---- helpers --------------------------------------------------------------------------------


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Raw SQL on a connection of our own: what an operator with database access can do."""
    s = open_store(url)
    try:
        return s._execute(sql, params)
    finally:
        s.close()


def _witnesses(tmp: Path, th: TestHub, *parties: str) -> dict[str, Witness]:
    """Each party's witness, with a store of its own (the witness is not the hub)."""
    return {
        p: Witness(
            open_store(f"sqlite:///{tmp / f'witness-{p}-{uuid.uuid4().hex[:6]}.db'}", create=True),
            th.keys[p].witness_signer,
            [th.hub.log.vkey],
        )
        for p in parties
    }


def _cosign(url: str, witnesses: dict[str, Witness], *, timestamp: int | None = None) -> None:
    """One witnessing round by every witness, against the hub at ``url``."""
    with HubClient(url) as anon:
        for w in witnesses.values():
            witness_hub(anon, w, timestamp=timestamp)


def _policy(log_vkey: str, witness_vkeys: dict[str, str]) -> Policy:
    """A tlog-policy written from public keys only: the log, and all the parties' witnesses."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {p} {v}" for p, v in sorted(witness_vkeys.items())]
    lines += [f"group parties all {' '.join(sorted(witness_vkeys))}", "quorum parties"]
    return parse_policy("\n".join(lines) + "\n")


def _public_policy(th: TestHub, *parties: str) -> Policy:
    return _policy(th.hub.log.vkey, {p: th.keys[p].witness_vkey for p in parties})


def _proof(client: HubClient, index: int) -> str:
    """The hub's tlog-proof of ``index`` under the latest checkpoint covering it (cosigned)."""
    return client._request("GET", f"/v1/entries/{index}/proof").text


def _served_entry(client: HubClient, index: int) -> bytes:
    """The leaf data the hub serves for ``index`` (to a caller that may read it)."""
    (item,) = client.leaves(index, 1)
    assert item["index"] == index
    return base64.b64decode(item["entry"])


def _request(eid: str, to: str) -> dict[str, Any]:
    return {"agreement": AG, "id": eid, "type": "request", "kind": "explanation", "to": to}


def _activity(eid: str) -> dict[str, Any]:
    return {
        "agreement": AG,
        "id": eid,
        "type": "activity",
        "start": "2030-09-01T00:00:00Z",
        "end": "2030-09-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 100},
    }


def _pub(th: TestHub, party: str) -> bytes:
    return parse_verifier_key(th.keys[party].vkey).public_key


# ---- 1. rewriting an old entry --------------------------------------------------------------


@pytest.mark.parametrize("what", ["payload", "integration time"])
def test_a_rewritten_entry_is_caught_and_the_receipt_proves_it(
    store_url: str, tmp_path: Path, what: str
) -> None:
    """The operator changes a logged entry's bytes in the database, after the witnesses
    cosigned the tree holding it: the payload of DEU's request to FRA (keeping DEU's
    signature), or its integration time (moved 10 days earlier: the time is inside the
    leaf, ADR 0001). The stored Merkle nodes are left alone, so the hub's signed roots and
    the witnesses' consistency proofs still agree; what changes is what the hub serves.

    Caught by: FRA's audit (it reads the entry: its signature, or its time against the
    entry before it, fails) and by any anonymous audit (the leaf hashes served no longer
    give the signed roots, nor the root the auditor remembered). DEU's evidence: the
    receipt it kept, a tlog-proof under a checkpoint both witnesses cosigned, which
    verifies offline under the log key and the witness keys and shows other bytes at
    that index than the hub serves now; the hub cannot prove what it serves.
    """
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        vkey = th.hub.log.vkey
        state = tmp_path / "fra-audit.json"
        with th.client("DEU") as deu:
            sent = deu.sign(PT_EVENT, {"party": "DEU", **_request("why-1", "FRA")})
            idx = deu.submit(sent)["index"]
            deu.event(_activity("later"))  # the rewritten entry is not the last one
            _cosign(th.url, ws)
            receipt = _proof(deu, idx)  # kept by DEU: the entry under a cosigned checkpoint
            before = _served_entry(deu, idx)
        policy = _public_policy(th, "DEU", "FRA")
        assert verify_entry_proof(receipt, policy).agreed.cosigned_by == {"DEU", "FRA"}
        assert rewritten_entry(receipt, before, policy) is None  # honest: nothing to report
        with th.client("FRA") as fra:
            assert audit_hub(fra, vkey, state).entries_checked == 4

        # The attack: raw SQL on the hub's database.
        if what == "payload":
            (row,) = _sql(store_url, "SELECT envelope FROM log_entries WHERE idx = ?", (idx,))
            env = json.loads(bytes(row[0]))
            doc = json.loads(base64.b64decode(env["payload"]))
            doc["kind"] = "meeting"
            env["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
            forged = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
            _sql(store_url, "UPDATE log_entries SET envelope = ? WHERE idx = ?", (forged, idx))
            fra_sees = rf"entry {idx}: its envelope does not verify under any signing key"
        else:
            _sql(
                store_url,
                "UPDATE log_entries SET integrated_ms = integrated_ms - ? WHERE idx = ?",
                (240 * HOUR_MS, idx),
            )
            fra_sees = rf"entry {idx}: integrated at .*, before entry {idx - 1} \(backdated"

        # Detection by the parties' audits.
        with th.client("FRA") as fra, pytest.raises(VerificationError, match=fra_sees):
            audit_hub(fra, vkey, state)
        with HubClient(th.url) as anon:
            with pytest.raises(VerificationError, match=r"split view or rewritten history.*size 4"):
                audit_hub(anon, vkey, state)
            with pytest.raises(VerificationError, match=r"signed root .* differs from the root"):
                audit_hub(anon, vkey)
        with th.client("DEU") as deu:
            served = _served_entry(deu, idx)
            # The hub cannot prove the bytes it serves now in the tree the witnesses cosigned.
            with pytest.raises(VerificationError, match="does not lead to the root"):
                verify_entry_proof(_proof(deu, idx), policy)

        # DEU's evidence, re-checked by a third party holding public keys only.
        found = rewritten_entry(receipt, served, policy)
        assert found is not None
        third_party = _policy(
            vkey, {"FRA": th.keys["FRA"].witness_vkey, "DEU": th.keys["DEU"].witness_vkey}
        )
        ev = verify_rewritten_entry(json.loads(found.to_json()), third_party)
        assert ev.index == idx and ev.logged.agreed.cosigned_by == {"DEU", "FRA"}
        logged, now = ev.logged.entry, decode_entry(ev.served)
        # What the log holds is DEU's very act, signed by DEU's key; what is served is not.
        assert dsse.parse(logged.envelope).statement_digest() == dsse.parse(sent).statement_digest()
        dsse.verify(logged.envelope, [_pub(th, "DEU")])
        if what == "payload":
            with pytest.raises(VerificationError):
                dsse.verify(now.envelope, [_pub(th, "DEU")])
        else:
            assert now.envelope == logged.envelope
            assert logged.integrated_ms - now.integrated_ms == 240 * HOUR_MS
        with pytest.raises(VerificationError, match="bytes served are the bytes logged"):
            verify_rewritten_entry(
                {**json.loads(found.to_json()), "served": base64.b64encode(before).decode()}, third_party
            )


# ---- 2. dropping an entry from one party's view ---------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class HideFrom:
    """The operator's filter in front of the hub: entry ``index`` vanishes for ``party``.

    Dropped from ``/v1/inbox`` and ``/v1/entries``, 404 for ``/v1/entries/{index}`` (and its
    proof); with ``strip_leaves`` its bytes are also left out of ``/v1/log/leaves`` (the
    leaf hash must stay, or every root would break). The hub underneath is honest.
    """

    def __init__(self, app: ASGIApp, hub: Hub, party: str) -> None:
        self.app, self.hub, self.party = app, hub, party
        self.index: int | None = None
        self.strip_leaves = False

    def _caller(self, scope: MutableMapping[str, Any]) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value.startswith(b"Bearer "):
                try:
                    return auth.read_token(self.hub.token_secret, value[7:].decode(), int(time.time()))[
                        0
                    ]
                except Exception:
                    return None
        return None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        idx = self.index
        if scope["type"] != "http" or idx is None or self._caller(scope) != self.party:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in (f"/v1/entries/{idx}", f"/v1/entries/{idx}/proof"):
            body = json.dumps({"error": "not_found", "message": f"the log has no entry {idx}"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if path not in ("/v1/inbox", "/v1/entries", "/v1/log/leaves"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            doc = json.loads(body)
            if path == "/v1/log/leaves":
                for item in doc["leaves"]:
                    if item["index"] == idx and self.strip_leaves:
                        item.pop("entry", None)
            else:
                doc["items"] = [i for i in doc["items"] if i["index"] != idx]
            body = json.dumps(doc).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def _filtered_hub(url: str, tmp: Path, party: str) -> Iterator[tuple[TestHub, HideFrom]]:
    """``tests.hubkit.running_hub``, with the operator's filter in front of the app."""
    sec_skey, sec_vkey = generate_key("secretariat.cbmnet.test")
    keys = init_hub(
        url,
        tmp / "hubkeys",
        origin=ORIGIN,
        secretariat_vkey=sec_vkey,
        agreements=[bundled(a) for a in AGREEMENTS],
    )
    hub = Hub(url, keys, HubSettings(sweep_s=3600, checkpoint_s=3600))
    hide = HideFrom(create_app(hub), hub, party)
    server = ServerThread(hide)
    try:
        server.start()
        yield TestHub(server.url, Identity("secretariat", sec_skey), hub=hub), hide
    finally:
        server.stop()
        hub.close()


def _readable_but_unlisted(client: HubClient) -> list[int]:
    """A party's cross-check: entries it may read (bytes in the leaves) that its listing omits."""
    readable = {item["index"] for item in client.leaves(0, 1000) if "entry" in item}
    listed: set[int] = set()
    after = -1
    while page := client.entries(after=after)["items"]:
        listed |= {i["index"] for i in page}
        after = page[-1]["index"]
    return sorted(readable - listed)


def test_an_entry_hidden_from_its_addressee_is_proven_by_the_senders_receipt(
    store_url: str, tmp_path: Path
) -> None:
    """The operator drops DEU's request to FRA from everything FRA is served: its inbox,
    its listing, the entry and its proof (404), and finally the entry's bytes in the leaves
    (only the leaf hash stays; without it no root would match). FRA is never told, so the
    record would show FRA as silent.

    Caught by: while the leaves still carry the bytes, FRA's audit (which checks the
    leaves it may read against its listing) names the hidden index. Once the bytes are stripped too,
    FRA alone cannot tell (its audit passes: an unreadable leaf is normal) and the evidence
    is DEU's receipt, shown to FRA: a tlog-proof under a checkpoint FRA's own witness
    cosigned, of an act signed by DEU and addressed to FRA. It verifies offline with the
    log key, FRA's witness key and DEU's signing key; the omission is the hub's.
    """
    with _filtered_hub(store_url, tmp_path, "FRA") as (th, hide):
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        vkey = th.hub.log.vkey
        with th.client("DEU") as deu:
            sent = deu.sign(PT_EVENT, {"party": "DEU", **_request("why-1", "FRA")})
            idx = deu.submit(sent)["index"]
            hide.index = idx
            deu.event(_activity("public"))  # an entry FRA is shown
            _cosign(th.url, ws)
            receipt = _proof(deu, idx)  # DEU's copy, under the cosigned checkpoint

        with th.client("FRA") as fra:
            assert idx not in [i["index"] for i in fra.iter_inbox()]
            assert idx not in [i["index"] for i in fra.entries()["items"]]
            assert idx + 1 in [i["index"] for i in fra.entries()["items"]]
            with pytest.raises(NotFoundError):
                fra.entry(idx)
            # FRA's cross-check finds the entry while its bytes are still in the leaves,
            # and so does FRA's own audit.
            assert _readable_but_unlisted(fra) == [idx]
            with pytest.raises(VerificationError, match=f"entry {idx} is readable by this party"):
                audit_hub(fra, vkey)
            hide.strip_leaves = True
            assert _readable_but_unlisted(fra) == []
            report = audit_hub(fra, vkey)  # the tree is intact: the audit sees nothing wrong
            assert report.size == idx + 2 and report.checkpoint_size == idx + 2

        # DEU hands its receipt to FRA. FRA checks it offline against its own witness.
        fra_policy = _policy(vkey, {"FRA": th.keys["FRA"].witness_vkey})
        got = verify_entry_proof(receipt, fra_policy)
        assert got.index == idx and got.agreed.cosigned_by == {"FRA"}
        held = ws["FRA"].store.witness_latest(ORIGIN)
        assert held is not None and (held.size, held.root_hash) == (
            got.agreed.checkpoint.size,
            got.agreed.checkpoint.root_hash,
        )
        dsse.verify(got.entry.envelope, [_pub(th, "DEU")])
        env = dsse.parse(got.entry.envelope)
        act = read_act(env.payload_type, env.payload)
        assert (act.author, act.doc["to"], act.doc["id"]) == ("DEU", "FRA", "why-1")
        assert env.statement_digest() == dsse.parse(sent).statement_digest()


def test_the_addressees_own_audit_catches_an_entry_dropped_from_its_listing(tmp_path: Path) -> None:
    """The operator drops DEU's request from FRA's inbox and listing only; FRA's own audit
    catches it: an entry the leaves serve FRA must be in FRA's listing."""
    with _filtered_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, "FRA") as (th, hide):
        th.register("DEU", "FRA")
        with th.client("DEU") as deu:
            hide.index = deu.event(_request("why-1", "FRA"))["index"]
        with th.client("FRA") as fra:
            assert _readable_but_unlisted(fra) == [hide.index]
            with pytest.raises(VerificationError):
                audit_hub(fra, th.hub.log.vkey)


# ---- 3. a split view ------------------------------------------------------------------------


@contextmanager
def _fork(url: str, tmp: Path) -> Iterator[str]:
    """A copy of the hub's store as it is now: the operator's second history starts here."""
    if url.startswith("sqlite:///"):
        fork = tmp / "fork.db"
        src, dst = sqlite3.connect(url.removeprefix("sqlite:///")), sqlite3.connect(fork)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        yield f"sqlite:///{fork}"
        return
    base = pg_base_url()
    (schema,) = _sql(url, "SELECT current_schema()")[0]
    fork_schema = "f_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {fork_schema}")
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (t,) in tables:
            conn.execute(f"CREATE TABLE {fork_schema}.{t} (LIKE {schema}.{t} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {fork_schema}.{t} SELECT * FROM {schema}.{t}")
    try:
        yield with_schema(base, fork_schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {fork_schema} CASCADE")


def test_a_split_view_is_proven_by_two_signed_checkpoints(store_url: str, tmp_path: Path) -> None:
    """The operator copies its database at size 2 and runs a second hub on the copy with
    the same log key: DEU is served the original, FRA the fork. Each history grows by two
    registrations, each witness cosigns the tree it is shown, and every checkpoint of
    either hub is validly signed, so each audit alone passes.

    Caught when the witnesses gossip their checkpoints: two notes signed by the log key,
    same origin, same size, two roots (``same-size``). When the sizes differ the notes say
    nothing alone; each party then fetches from its hub a proof of the first index where
    their leaf hashes part, and two valid inclusion proofs of two leaves at one index
    (``divergent-leaf``) are the evidence. Either document verifies offline with the log's
    key only. An honest pair (one tree, or the shared prefix proven by both hubs) is not
    reported. DEU's witness, pointed at the fork, refuses it too.
    """
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        _cosign(th.url, ws)
        vkey = th.hub.log.vkey
        stack = ExitStack()
        fork_url = stack.enter_context(_fork(store_url, tmp_path))
        forked = Hub(fork_url, HubKeys.load(tmp_path / "hubkeys"), HubSettings(3600, 3600))
        server = ServerThread(create_app(forked))
        try:
            server.start()
            fth = TestHub(server.url, th.secretariat, dict(th.keys), hub=forked)
            th.register("POL", "CZE")
            fth.register("NOR", "SWE")
            _cosign(th.url, {"DEU": ws["DEU"]})
            _cosign(fth.url, {"FRA": ws["FRA"]})
            deu_held, fra_held = (ws[p].store.witness_latest(ORIGIN) for p in ("DEU", "FRA"))
            assert deu_held is not None and fra_held is not None
            assert deu_held.size == fra_held.size == 4 and deu_held.root_hash != fra_held.root_hash
            # Each audit alone passes: both histories are validly signed.
            with th.client("DEU") as deu, fth.client("FRA") as fra:
                assert audit_hub(deu, vkey).checkpoint_size == 4
                assert audit_hub(fra, vkey).checkpoint_size == 4

            # Gossip: the witnesses compare the checkpoints they cosigned.
            same = split_view_from_checkpoints(deu_held.note, fra_held.note, vkey)
            assert same is not None and (same.reason, same.size, same.origin) == ("same-size", 4, ORIGIN)
            checked = verify_split_view(same.to_json(), vkey)  # the log's key, nothing else
            assert checked.size == 4

            # The fork grows on: sizes differ, the notes alone prove nothing.
            fth.register("POL")
            _cosign(fth.url, {"FRA": ws["FRA"]})
            fra_held = ws["FRA"].store.witness_latest(ORIGIN)
            assert fra_held is not None and fra_held.size == 5
            assert split_view_from_checkpoints(deu_held.note, fra_held.note, vkey) is None
            with HubClient(th.url) as a, HubClient(fth.url) as b:
                la = [i["leaf_hash"] for i in a.leaves(0, 10)]
                lb = [i["leaf_hash"] for i in b.leaves(0, 10)]
            first = next(i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y)
            assert first == 2
            with th.client("DEU") as deu, fth.client("FRA") as fra:
                diverge = split_view_from_proofs(_proof(deu, first), _proof(fra, first), vkey)
                assert diverge is not None and (diverge.reason, diverge.size) == ("divergent-leaf", 2)
                assert verify_split_view(json.loads(diverge.to_json()), vkey).size == 2
                # No false positive: the shared prefix is proven alike by both hubs.
                assert split_view_from_proofs(_proof(deu, 1), _proof(fra, 1), vkey) is None
                # DEU's witness, shown the fork, refuses to cosign it.
                with pytest.raises(VerificationError, match=r"consistency proof does not lead"):
                    witness_hub(fra, ws["DEU"])

            # No false positive: both witnesses cosigning one honest hub.
            honest = _witnesses(tmp_path, th, "DEU", "FRA")
            _cosign(th.url, honest)
            a_, b_ = (honest[p].store.witness_latest(ORIGIN) for p in ("DEU", "FRA"))
            assert a_ is not None and b_ is not None
            assert split_view_from_checkpoints(a_.note, b_.note, vkey) is None
            assert split_view_from_checkpoints(deu_held.note, a_.note, vkey) is None  # 4 and 4, one root
            with pytest.raises(VerificationError, match="consistent: no split view"):
                verify_split_view({**json.loads(same.to_json()), "second": a_.note}, vkey)
            # A note not signed by the log's key is no evidence at all.
            _, other = generate_key(ORIGIN)
            with pytest.raises(VerificationError, match="not signed by the log"):
                verify_split_view(same.to_json(), other)
        finally:
            server.stop()
            forked.close()
            stack.close()


# ---- 4. backdating an integration time ------------------------------------------------------


@contextmanager
def _hub_with_clock(url: str, tmp: Path) -> Iterator[tuple[TestHub, list[int]]]:
    """A hub whose clock the operator sets: ``now[0]`` in Unix milliseconds."""
    now = [(int(time.time()) - 3 * 3600) * 1000]  # whole seconds, as cosignatures are
    with running_hub(url, tmp, clock=lambda: now[0]) as th:
        yield th, now


def test_an_entry_dated_before_a_cosigned_checkpoint_without_it_is_provable(
    store_url: str, tmp_path: Path
) -> None:
    """The operator sets the hub's clock back an hour: the witnesses cosigned the tree of
    size 2 at T + 1 h (their own clocks), then DEU's new act is integrated at T, the time
    of the entry before it (the log never goes below the previous entry's time, so the
    leaf is well formed and times never decrease). The act claims the log held it an hour
    before the witnesses saw a tree without it: a backdate that a deadline ("notified 42
    days ahead") would count.

    Evidence: the checkpoint of size 2 with the witnesses' timed cosignatures and a
    tlog-proof of the new entry (index 2): both verify offline with the log key and the
    witness keys, and the entry's time is earlier than the earliest cosignature minus the
    5 minutes of allowed skew. An entry integrated after the cosignature is not reported.
    """
    with _hub_with_clock(store_url, tmp_path) as (th, now):
        th.register("DEU", "FRA")
        t = now[0]
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        _cosign(th.url, ws, timestamp=(t + HOUR_MS) // 1000)
        with th.client("DEU") as deu:
            earlier = deu.checkpoint()  # size 2, cosigned by both at T + 1 h
            idx = deu.event(_activity("backdated"))["index"]  # the hub's clock still says T
            assert idx == 2
            _cosign(th.url, ws, timestamp=(t + HOUR_MS) // 1000 + 60)
            proof = _proof(deu, idx)
            policy = _public_policy(th, "DEU", "FRA")
            got = verify_entry_proof(proof, policy)  # the receipt alone looks fine
            assert got.entry.integrated_ms == t

            found = backdated_entry(proof, earlier, policy)
            assert found is not None and found.index == idx and found.backdated_by_ms == HOUR_MS
            ev = verify_backdated_entry(json.loads(found.to_json()), policy)
            assert ev.integrated_ms == t and ev.cosigned_ms == t + HOUR_MS

            # No false positive: the operator's clock is right again.
            now[0] = t + HOUR_MS + 1000
            honest = deu.event(_activity("on-time"))["index"]
            _cosign(th.url, ws, timestamp=(t + HOUR_MS) // 1000 + 120)
            assert backdated_entry(_proof(deu, honest), earlier, policy) is None
            with pytest.raises(VerificationError, match="not dated before"):
                verify_backdated_entry(
                    {**json.loads(found.to_json()), "proof": _proof(deu, honest)}, policy
                )


def test_the_audit_catches_an_entry_dated_before_a_cosigned_checkpoint_without_it(
    tmp_path: Path,
) -> None:
    """Same attack as above; the parties' audit catches it on its own: no entry may be
    dated before a registered witness's cosignature of a tree that did not hold it."""
    with _hub_with_clock(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as (th, now):
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        _cosign(th.url, ws, timestamp=(now[0] + HOUR_MS) // 1000)
        with th.client("DEU") as deu:
            deu.event(_activity("backdated"))
            _cosign(th.url, ws, timestamp=(now[0] + HOUR_MS) // 1000 + 60)
        with th.client("FRA") as fra, pytest.raises(VerificationError):
            audit_hub(fra, th.hub.log.vkey)


# ---- 5. a stolen key ------------------------------------------------------------------------


def test_a_revoked_key_signs_nothing_more_and_what_it_signed_before_stands(
    store_url: str, tmp_path: Path
) -> None:
    """DEU's signing key is stolen. The secretariat revokes it with a ``key.revoke`` act at
    log index R; the thief keeps signing as DEU.

    The hub refuses the thief's acts (403, "revoked"), even one signed before R, and gives
    the stolen key no token (401). The boundary is public: ``/v1/parties`` lists the key
    with ``until`` = R and ``revoked``, and a pinned client folds the same span from the
    registry acts it verifies under the secretariat key. What DEU signed before R stands:
    its receipt still verifies offline and FRA's audit passes. An operator who logs a
    thief's act behind the hub's admission is caught by the audit (the key signs for
    entries up to R only).
    """
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        ws = _witnesses(tmp_path, th, "DEU", "FRA")
        vkey = th.hub.log.vkey
        stolen = Identity("DEU", th.keys["DEU"].signer)
        with HubClient(th.url, stolen) as deu:
            early = deu.event(_activity("before-theft"))["index"]
            signed_early = deu.sign(PT_EVENT, {"party": "DEU", **_activity("signed-before")})
        with HubClient(th.url, Identity("DEU", th.keys["DEU"].recovery_signer)) as owner:
            revoke = {
                "act": "key.revoke",
                "party": "DEU",
                "by": "recovery",
                "key": th.keys["DEU"].vkey,
                "reason": "compromised",
            }
            r = owner.act(PT_REGISTRY, revoke)["index"]
        _cosign(th.url, ws)

        with HubClient(th.url, stolen) as thief:
            with pytest.raises(ForbiddenError, match=r"hub answered 403: .*revoked.*'DEU'"):
                thief.event(_activity("after-theft"))
            with pytest.raises(ForbiddenError, match="revoked"):
                thief.submit(signed_early)
            with pytest.raises(AuthError, match="401"):
                thief.inbox()

        with th.client("FRA") as fra:
            (deu_doc,) = [p for p in fra.parties() if p["id"] == "DEU"]
            (k,) = deu_doc["key_history"]
            assert (k["since"], k["until"], k["revoked"]) == (0, r, True)
            assert base64.b64decode(k["key"]) == _pub(th, "DEU") and deu_doc["signing_keys"] == []
            report = audit_hub(fra, vkey)
            assert report.entries_checked == report.size == r + 1
            assert ("DEU", r) in report.key_ends  # the audit states the boundary too
            proof = _proof(fra, early)  # FRA may read DEU's activity (agreement-wide)
        with HubClient(
            th.url, th.keys["FRA"].identity(), pins=Pins.load(str(tmp_path / "hubkeys" / "hub.json"))
        ) as pinned:
            assert pinned.registry()["DEU"].history == [(_pub(th, "DEU"), 0, r)]
        got = verify_entry_proof(proof, _public_policy(th, "DEU", "FRA"))
        assert got.index == early < r
        dsse.verify(got.entry.envelope, [_pub(th, "DEU")])

        # The operator logs the thief's act behind the hub's admission: the audit refuses it.
        forged = dsse.sign(
            PT_EVENT,
            json.dumps({"party": "DEU", **_activity("smuggled")}, sort_keys=True).encode(),
            [stolen.signer_key],
        )
        th.hub.log.append_verified([dsse.verify(forged, [_pub(th, "DEU")])])
        with (
            th.client("FRA") as fra,
            pytest.raises(
                VerificationError, match=rf"entry {r + 1}: its author 'DEU' has no signing key"
            ),
        ):
            audit_hub(fra, vkey)


# ---- the evidence documents refuse what proves nothing --------------------------------------


def test_evidence_documents_refuse_malformed_or_mismatched_input() -> None:
    """Pure: no hub. A document of another type, an unknown reason, proofs of two indexes."""
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    signer = new_signer(skey)
    leaves = [encode_entry(1000 + i, b'{"n":%d}' % i) for i in range(3)]
    note = sign_note(format_checkpoint(signer.name, 3, root_hash(leaves)), signer)

    def proof(i: int) -> str:
        return format_proof(ProofBundle(i, inclusion_proof(leaves, i), note, leaves[i]))

    assert split_view_from_proofs(proof(1), proof(1), vkey) is None
    with pytest.raises(FormatError, match="compare one index"):
        split_view_from_proofs(proof(0), proof(1), vkey)
    bad = proof(1).replace(base64.b64encode(leaves[1]).decode(), base64.b64encode(leaves[0]).decode())
    with pytest.raises(VerificationError, match="first proof: inclusion proof"):
        split_view_from_proofs(bad, proof(1), vkey)
    with pytest.raises(FormatError, match="not a cbmnet/split-view/v1 document"):
        verify_split_view({"type": "cbmnet/rewritten-entry/v1"}, vkey)
    with pytest.raises(FormatError, match="unknown reason"):
        verify_split_view(
            {"type": "cbmnet/split-view/v1", "reason": "x", "first": note, "second": note}, vkey
        )
    with pytest.raises(FormatError, match="not JSON"):
        verify_split_view("{", vkey)
