"""Witnessing and auditing a hub over HTTP: a real hub on loopback, both store backends.

A party's witness cosigns the hub's checkpoints through ``/v1/log/witness`` and
``/v1/log/cosignatures``; an outside auditor recomputes every root from the leaf hashes the
hub serves and remembers the last checkpoint it verified. Then the hub's store is altered
behind its back (raw SQL on a connection of our own) or the hub is restarted on a forked
copy, and both must fail loudly, naming the index or size at fault.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cbmnet.cli import main as cli_main
from cbmnet.errors import ConflictError, FormatError, VerificationError
from cbmnet.hub.app import create_app
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import Hub, HubKeys, HubSettings
from cbmnet.ledger.checkpoint import format_checkpoint
from cbmnet.ledger.merkle import EMPTY_ROOT, consistency_ranges, leaf_hash, root_hash, split_range
from cbmnet.ledger.note import (
    generate_key,
    new_cosigner,
    new_signer,
    new_verifier,
    parse_verifier_key,
    sign_note,
)
from cbmnet.ledger.policy import parse_policy, verify_checkpoint
from cbmnet.party.audit import AuditState, TreeRoots, audit_hub, load_state, save_state, tree_roots
from cbmnet.party.client import HubClient
from cbmnet.party.witness import Witness, witness_hub
from cbmnet.store import open_store
from cbmnet.store.sql import WitnessRecord
from tests.hubkit import TestHub, running_hub

# ---- helpers --------------------------------------------------------------------------------


def _witness(tmp: Path, th: TestHub, party: str) -> Witness:
    """The party's witness, with a store of its own (SQLite: the witness is not the hub)."""
    store = open_store(f"sqlite:///{tmp / f'witness-{party}.db'}", create=True)
    return Witness(store, th.keys[party].witness_signer, [th.hub.log.vkey])


def _sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Raw SQL on a connection of our own: what an operator with database access can do."""
    s = open_store(url)
    try:
        return s._execute(sql, params)
    finally:
        s.close()


def _rewrite_envelope(url: str, idx: int) -> None:
    """Change what entry ``idx`` says (a registration's name), keeping its signature."""
    (row,) = _sql(url, "SELECT envelope FROM log_entries WHERE idx = ?", (idx,))
    env = json.loads(bytes(row[0]))
    doc = json.loads(base64.b64decode(env["payload"]))
    doc["name"] = "Someone Else"
    env["payload"] = base64.b64encode(json.dumps(doc).encode()).decode()
    forged = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
    _sql(url, "UPDATE log_entries SET envelope = ? WHERE idx = ?", (forged, idx))


def _forged_checkpoint(tmp: Path, size: int, root: bytes) -> str:
    """A checkpoint signed with the hub's own log key (as a forking operator could)."""
    log_key = HubKeys.load(tmp / "hubkeys").log_key
    signer = new_signer(log_key)
    return sign_note(format_checkpoint(signer.name, size, root), signer)


@pytest.fixture
def hub(store_url: str, tmp_path: Path) -> Iterator[TestHub]:
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        yield th


# ---- witnessing -----------------------------------------------------------------------------


def test_party_witnesses_cosign_over_http(hub: TestHub, tmp_path: Path) -> None:
    deu, fra = _witness(tmp_path, hub, "DEU"), _witness(tmp_path, hub, "FRA")
    vkey = hub.hub.log.vkey
    policy = parse_policy(
        f"log {vkey}\nwitness DEU {hub.keys['DEU'].witness_vkey}\n"
        f"witness FRA {hub.keys['FRA'].witness_vkey}\ngroup both all DEU FRA\nquorum both\n"
    )
    with HubClient(hub.url) as client:
        r1 = witness_hub(client, deu)
        assert (r1.origin, r1.old_size, r1.size, r1.stored) == (hub.hub.log.origin, 0, 2, 1)
        served = client.checkpoint()
        assert r1.cosignatures in served
        assert verify_checkpoint(served, parse_policy(f"log {vkey}\nquorum none\n")).checkpoint.size == 2
        r2 = witness_hub(client, fra)
        agreed = verify_checkpoint(client.checkpoint(), policy)
        assert agreed.cosigned_by == {"DEU", "FRA"}
        assert agreed.checkpoint.root_hash == r1.root_hash == r2.root_hash

        # More acts: the next round cosigns the bigger tree, from the size held.
        hub.register("POL")
        r3 = witness_hub(client, deu)
        assert (r3.old_size, r3.size) == (2, 3)
        assert deu.store.witness_latest(r3.origin) is not None
        deu_only = parse_policy(f"log {vkey}\nwitness DEU {hub.keys['DEU'].witness_vkey}\nquorum DEU\n")
        assert verify_checkpoint(client.checkpoint(), deu_only).checkpoint.size == 3
        # FRA catches up across the growth; a round without growth cosigns the same tree again.
        caught_up = witness_hub(client, fra)
        assert (caught_up.old_size, caught_up.size) == (2, 3)
        again = witness_hub(client, fra)
        assert (again.old_size, again.size, again.root_hash) == (3, 3, caught_up.root_hash)
        assert verify_checkpoint(client.checkpoint(), policy).checkpoint.size == 3


def test_witness_retries_once_when_its_state_moved(
    hub: TestHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _witness(tmp_path, hub, "DEU")
    with HubClient(hub.url) as client:
        witness_hub(client, w)
        hub.register("POL")
        # The round reads a stale "never cosigned": the witness answers 409 with size 2.
        real = w.store.witness_latest
        stale = [None]
        monkeypatch.setattr(
            w.store, "witness_latest", lambda origin: stale.pop() if stale else real(origin)
        )
        r = witness_hub(client, w)
        assert (r.old_size, r.size) == (2, 3)


def test_witness_ahead_of_the_hub_fails_loudly(hub: TestHub, tmp_path: Path) -> None:
    origin = hub.hub.log.origin
    latest = hub.hub.rlog.latest_checkpoint()
    assert latest.size == 2

    def witness_holding(name: str, size: int, root: bytes) -> Witness:
        w = Witness(
            open_store(f"sqlite:///{tmp_path / name}", create=True),
            hub.keys["DEU"].witness_signer,
            [hub.hub.log.vkey],
        )
        note = _forged_checkpoint(tmp_path, size, root)
        assert w.store.witness_replace(None, WitnessRecord(origin, size, root, note))
        return w

    with HubClient(hub.url) as client:
        # State from a longer log: the hub answers 409 text/x.tlog.size.
        longer = witness_holding("longer.db", 7, os.urandom(32))
        with pytest.raises(
            VerificationError, match=r"has size 2, smaller than size 7.*rolled its log back"
        ):
            witness_hub(client, longer)
        held = longer.store.witness_latest(origin)
        assert held is not None and held.size == 7
        # Another root for the very size cosigned: a split view, not a retry.
        other = witness_holding("other.db", 2, os.urandom(32))
        with pytest.raises(VerificationError, match=r"split view of .*different root for size 2"):
            witness_hub(client, other)
        # A smaller tree the hub's cannot extend: the consistency proof fails.
        forked = witness_holding("forked.db", 1, os.urandom(32))
        with pytest.raises(VerificationError, match=r"consistency proof does not lead to the"):
            witness_hub(client, forked)
        held = forked.store.witness_latest(origin)
        assert held is not None and held.size == 1
        # None of these reached the hub.
        assert hub.hub.rstore.cosignatures() == []


def test_client_reads_the_hubs_409_size(hub: TestHub) -> None:
    with HubClient(hub.url) as client, pytest.raises(ConflictError) as e:
        client.witness_request(7)
    assert e.value.current_size == 2


# ---- auditing -------------------------------------------------------------------------------


def test_audit_passes_on_an_honest_hub_and_remembers(hub: TestHub, tmp_path: Path) -> None:
    state = tmp_path / "audit" / "state.json"
    vkey = hub.hub.log.vkey
    with HubClient(hub.url) as client:
        witness_hub(client, _witness(tmp_path, hub, "DEU"))
    with hub.client() as sec:
        r = audit_hub(sec, vkey, state)
    assert (r.size, r.checkpoint_size, r.entries_checked, r.uncovered) == (2, 2, 2, 0)
    assert r.checkpoints == len(hub.hub.rstore.all_checkpoints())
    assert r.cosignatures == 1 and r.cosigners_mapped and r.previous_size is None
    saved = json.loads(state.read_text())
    assert saved["size"] == 2 and base64.b64decode(saved["root_hash"]) == r.root_hash
    assert not [p for p in state.parent.iterdir() if p.name != "state.json"]  # no temp left

    hub.register("POL", "CZE")
    with hub.client("DEU") as deu:  # a party reads every registry act (scope: all)
        r2 = audit_hub(deu, vkey, state)
    assert (r2.previous_size, r2.checkpoint_size, r2.entries_checked) == (2, 4, 4)
    with HubClient(hub.url) as anon:  # no identity: hashes only, cosigners not mapped
        r3 = audit_hub(anon, vkey, state)
    assert (r3.previous_size, r3.entries_checked, r3.cosigners_mapped) == (4, 0, False)
    assert r3.root_hash == r2.root_hash
    # A pinned key that is not the hub's: refused before anything else.
    _, other = generate_key(hub.hub.log.origin)
    with HubClient(hub.url) as anon, pytest.raises(VerificationError, match="not the pinned"):
        audit_hub(anon, other, state)


def test_audit_catches_a_rewritten_entry(hub: TestHub, store_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    vkey = hub.hub.log.vkey
    hub.register("POL")
    with HubClient(hub.url) as anon:
        audit_hub(anon, vkey, state)
    before = state.read_bytes()
    _rewrite_envelope(store_url, 1)

    # A reader of the entry: its signature no longer verifies (a registration: the secretariat's).
    with (
        hub.client() as sec,
        pytest.raises(
            VerificationError, match=r"entry 1: party.register of 'FRA' is not signed by the secretariat"
        ),
    ):
        audit_hub(sec, vkey, state)
    # Hashes only: the remembered tree is no longer the hub's.
    with HubClient(hub.url) as anon:
        with pytest.raises(VerificationError, match=r"split view or rewritten history.* size 3") as e:
            audit_hub(anon, vkey, state)
        assert json.loads(before)["root_hash"] in str(e.value)
        # Without memory: the first checkpoint whose signed root no longer matches, and where.
        cps = hub.hub.rstore.all_checkpoints()
        bad = next(c for c in cps if c.size > 1)
        lo = max((c.size for c in cps if c.seq < bad.seq), default=0)
        with pytest.raises(
            VerificationError, match=rf"checkpoint #{bad.seq} \(size {bad.size}\).*\[{lo}, {bad.size}\)"
        ):
            audit_hub(anon, vkey)
    assert state.read_bytes() == before  # a failed audit remembers nothing


def test_audit_catches_a_tampered_node_through_the_consistency_proof(
    hub: TestHub, store_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    vkey = hub.hub.log.vkey
    hub.register("POL")
    with HubClient(hub.url) as anon:
        assert audit_hub(anon, vkey, state).checkpoint_size == 3
        hub.register("CZE", "NOR", "SWE")
        # Leaves are served from the entries; only proofs use the stored nodes.
        level, idx = split_range(*consistency_ranges(3, 6)[0])[0]
        _sql(
            store_url,
            "UPDATE log_nodes SET hash = ? WHERE level = ? AND idx = ?",
            (os.urandom(32), level, idx),
        )
        with pytest.raises(
            VerificationError, match=r"consistency proof from size 3 \(remembered\) to size 6"
        ):
            audit_hub(anon, vkey, state)
        assert json.loads(state.read_text())["size"] == 3


def test_audit_refuses_a_cosignature_by_no_registered_witness(
    hub: TestHub, store_url: str, tmp_path: Path
) -> None:
    vkey = hub.hub.log.vkey
    cp = hub.hub.rlog.latest_checkpoint()
    stranger, _ = generate_key("witness.stranger.test")
    body = cp.note[: cp.note.index("\n\n") + 1]
    line = sign_note(body, new_cosigner(stranger))[len(body) + 1 :]
    _sql(
        store_url,
        "INSERT INTO log_cosignatures (checkpoint_seq, witness_vkey, line, timestamp)"
        " VALUES (?, ?, ?, ?)",
        (cp.seq, "stranger", line, 1),
    )
    with (
        hub.client("FRA") as fra,
        pytest.raises(
            VerificationError, match=rf"checkpoint #{cp.seq} .*witness\.stranger\.test.*no witness key"
        ),
    ):
        audit_hub(fra, vkey)
    with HubClient(hub.url) as anon:  # unmapped: the line parses, and that is all it can ask
        assert audit_hub(anon, vkey).cosignatures == 1


def test_a_forked_hub_fails_audit_and_witness(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    fork_db = tmp_path / "fork.db"
    state = tmp_path / "state.json"
    with running_hub(url, tmp_path) as th:
        th.register("DEU", "FRA")
        src, dst = sqlite3.connect(tmp_path / "hub.db"), sqlite3.connect(fork_db)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        th.register("POL", "CZE")
        vkey = th.hub.log.vkey
        w = _witness(tmp_path, th, "DEU")
        with th.client() as sec:
            witness_hub(sec, w)
            assert audit_hub(sec, vkey, state).checkpoint_size == 4
        secretariat, keys = th.secretariat, th.keys
    # The operator restarts on the copy taken at size 2 and logs other acts from there.
    forked = Hub(f"sqlite:///{fork_db}", HubKeys.load(tmp_path / "hubkeys"), HubSettings(3600, 3600))
    server = ServerThread(create_app(forked))
    try:
        server.start()
        fth = TestHub(server.url, secretariat, dict(keys), hub=forked)
        fth.register("NOR", "SWE")
        assert forked.rlog.latest_checkpoint().size == 4
        with fth.client() as sec:
            # Every checkpoint of the fork is validly signed: only memory shows the fork.
            assert audit_hub(sec, vkey).checkpoint_size == 4
            with pytest.raises(VerificationError, match=r"split view or rewritten history.*size 4"):
                audit_hub(sec, vkey, state)
            with pytest.raises(VerificationError, match=r"split view of .*size 4"):
                witness_hub(sec, w)
    finally:
        server.stop()
        forked.close()


# ---- the CLI --------------------------------------------------------------------------------


def test_cli_witness_and_remote_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with running_hub(url, tmp_path) as th:
        th.register("DEU")
        wkey, logv, seckey = tmp_path / "w.key", tmp_path / "log.vkey", tmp_path / "sec.key"
        wkey.write_text(th.keys["DEU"].witness_signer + "\n")
        logv.write_text(th.hub.log.vkey + "\n")
        seckey.write_text(th.secretariat.signer_key + "\n")
        wstate = f"sqlite:///{tmp_path / 'w.db'}"
        witness = ["witness", "--hub", th.url, "--key", str(wkey), "--log", str(logv), "--state", wstate]

        res = runner.invoke(cli_main.app, witness)
        assert res.exit_code == 0, res.output
        assert f"cosigned {th.hub.log.origin} size 1 " in res.output
        th.register("FRA")
        pauses: list[float] = []

        def pause(seconds: float) -> None:
            pauses.append(seconds)
            if len(pauses) == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(cli_main, "_pause", pause)
        res = runner.invoke(cli_main.app, [*witness, "--every", "0.5"])
        assert res.exit_code == 0, res.output
        assert res.output.count("cosigned") == 2 and "size 2 root" in res.output and pauses == [0.5, 0.5]

        audit = [
            "log",
            "audit",
            "--hub",
            th.url,
            "--vkey",
            str(logv),
            "--state",
            str(tmp_path / "a.json"),
        ]
        res = runner.invoke(cli_main.app, [*audit, "--party", "secretariat", "--key", str(seckey)])
        assert res.exit_code == 0, res.output
        assert "ok: hub.cbmnet.test/log: 2 leaves" in res.output and "2 entries read" in res.output
        res = runner.invoke(cli_main.app, audit)
        assert res.exit_code == 0, res.output
        assert "consistent with the checkpoint of size 2" in res.output
        assert "not matched to parties" in res.output
        # The local audit is unchanged without --hub.
        res = runner.invoke(cli_main.app, ["log", "audit", "--db", url, "--vkey", str(logv)])
        assert res.exit_code == 0 and res.output.startswith("ok: 2 entries"), res.output
        res = runner.invoke(cli_main.app, ["log", "audit", "--db", url, "--state", "x.json"])
        assert isinstance(res.exception, FormatError)
        res = runner.invoke(cli_main.app, ["log", "audit", "--hub", th.url])
        assert isinstance(res.exception, FormatError) and "--vkey" in str(res.exception)

        # A witness ahead of the hub: exit 1 through main's one mapping, no traceback.
        ahead = open_store(f"sqlite:///{tmp_path / 'ahead.db'}", create=True)
        root = os.urandom(32)
        ahead.witness_replace(
            None, WitnessRecord(th.hub.log.origin, 9, root, _forged_checkpoint(tmp_path, 9, root))
        )
        ahead.close()
        argv = [*witness[:-1], f"sqlite:///{tmp_path / 'ahead.db'}"]
        monkeypatch.setattr(sys, "argv", ["cbmnet", *argv])
        with pytest.raises(SystemExit) as exited:
            cli_main.main()
        assert exited.value.code == 1


def test_cli_maps_a_failed_audit_to_exit_1(
    hub: TestHub,
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logv = tmp_path / "log.vkey"
    logv.write_text(hub.hub.log.vkey)
    state = tmp_path / "a.json"
    argv = ["cbmnet", "log", "audit", "--hub", hub.url, "--vkey", str(logv), "--state", str(state)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as ok:
        cli_main.main()
    assert ok.value.code in (0, None)
    _rewrite_envelope(store_url, 0)
    with pytest.raises(SystemExit) as failed:
        cli_main.main()
    assert failed.value.code == 1
    err = capsys.readouterr().err
    assert "error: remote audit: split view or rewritten history" in err and "Traceback" not in err


# ---- the pure pieces ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.binary(max_size=8), max_size=70),
    data=st.data(),
)
def test_roots_recomputed_from_leaves_match_merkle(entries: list[bytes], data: st.DataObject) -> None:
    sizes = data.draw(st.sets(st.integers(0, len(entries))))
    got = tree_roots((leaf_hash(e) for e in entries), sizes)
    assert got == {s: root_hash(entries[:s]) for s in sizes}
    t = TreeRoots()
    for e in entries:
        t.add(leaf_hash(e))
    assert t.size == len(entries) and t.root() == root_hash(entries)
    assert TreeRoots().root() == EMPTY_ROOT


def test_state_file_roundtrip_and_refusals(tmp_path: Path) -> None:
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    signer, verifier = new_signer(skey), new_verifier(vkey)
    root = root_hash([b"a", b"b", b"c"])
    note = sign_note(format_checkpoint(signer.name, 3, root), signer)
    path = tmp_path / "s" / "state.json"
    assert load_state(path, verifier) is None
    st_ = AuditState(signer.name, vkey, 3, root, note)
    save_state(path, st_)
    assert load_state(path, verifier) == st_
    # A hand-edited size no longer matches the signed checkpoint.
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "size": 2}))
    with pytest.raises(FormatError, match="size or root differ"):
        load_state(path, verifier)
    path.write_text("{not json")
    with pytest.raises(FormatError, match=str(path)):
        load_state(path, verifier)
    # State kept for another log.
    save_state(path, st_)
    _, other_vkey = generate_key("log.cbmnet.test/tlog")
    with pytest.raises(FormatError, match="is for log"):
        load_state(path, new_verifier(other_vkey))
    assert ConflictError.exit_code == VerificationError.exit_code == 1


def test_audit_catches_an_act_signed_by_a_key_after_it_was_rotated_out(
    hub: TestHub, tmp_path: Path
) -> None:
    """The operator appends, behind the hub's admission, an act signed by DEU's old key."""
    from cbmnet.ledger import dsse

    old = hub.keys["DEU"].signer
    _, new_vkey = generate_key("deu2.cbmnet.test")
    with hub.client("DEU") as deu:
        deu.event(_activity_doc("before"))
        deu.act(
            "application/vnd.cbmnet.registry+json",
            {"act": "key.rotate", "party": "DEU", "by": "DEU", "signing_key": new_vkey},
        )
    with HubClient(hub.url, hub.keys["FRA"].identity()) as fra:
        audit_hub(fra, hub.hub.log.vkey)  # honest so far: the old key signed before the rotation
    forged = dsse.sign(
        "application/vnd.cbmnet.event+json",
        json.dumps({"party": "DEU", **_activity_doc("after")}, sort_keys=True).encode(),
        [old],
    )
    old_pub = parse_verifier_key(hub.keys["DEU"].vkey).public_key
    hub.hub.log.append_verified([dsse.verify(forged, [old_pub])])
    with (
        HubClient(hub.url, hub.keys["FRA"].identity()) as fra,
        pytest.raises(VerificationError, match="does not verify under any signing key"),
    ):
        audit_hub(fra, hub.hub.log.vkey)


def _activity_doc(eid: str) -> dict[str, Any]:
    return {
        "agreement": "vienna-document-2011",
        "id": eid,
        "type": "activity",
        "start": "2027-09-01T00:00:00Z",
        "end": "2027-09-02T00:00:00Z",
        "category": "land",
        "size": {"troops": 100},
    }
