"""A party's national mirror (issue 16, item 2): it keeps a checkpoint only after checking
every leaf, entry and root itself; bad tiles keep nothing; a split view is kept as evidence
and stops it; it serves what it holds with the hub stopped, cosigned by its own key.

The upstream in most tests is a plain log served read-only (the mirror's own app over a
``TransparencyLog``): it answers the same tile and log reads as a hub, and lets a test
build two forks of one log under one key. The last tests follow a real hub.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbmnet.acts.model import PT_EVENT
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import AuthError, FormatError, VerificationError
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import HubSettings
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, new_verifier, open_note, parse_signer_key
from cbmnet.log.service import TransparencyLog
from cbmnet.mirror.app import create_mirror_app
from cbmnet.mirror.follow import Follower, SplitViewError, describe, page_summary
from cbmnet.store import open_store
from cbmnet.store.sql import Store
from tests.hubkit import running_hub

PT = "application/vnd.cbmnet.event+json"
FAST = HubSettings(sweep_s=3600, checkpoint_s=3600, writes_per_s=10_000, party_writes_per_s=10_000)
VD = "vienna-document-2011"


def _grow(tlog: TransparencyLog, author: str, lo: int, hi: int, tag: str = "") -> None:
    pub = parse_signer_key(author).public_key
    envs = [dsse.sign(PT, json.dumps({"n": i, "tag": tag}).encode(), [author]) for i in range(lo, hi)]
    tlog.append_batch(envs, [pub])
    tlog.checkpoint()


@contextmanager
def _served(store: Store, *, entries: bool = True) -> Iterator[str]:
    with ServerThread(create_mirror_app(store, serve_entries=entries)) as server:
        yield server.url


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[TransparencyLog, str, str, str]]:
    """A plain log (its signer key, an author key) served on loopback."""
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    author, _ = generate_key("party.test/AAA")
    store = open_store(f"sqlite:///{tmp_path / 'up.db'}", create=True)
    tlog = TransparencyLog.create(store, skey)
    with _served(store) as url:
        yield tlog, url, vkey, author
    store.close()


def _mirror(tmp_path: Path, url: str, vkey: str, name: str = "mirror") -> tuple[Follower, Store, str]:
    mkey, _ = generate_key(f"mirror.{name}.test")
    store = open_store(f"sqlite:///{tmp_path / (name + '.db')}", create=True)
    return Follower(store, url, vkey, mirror_key=mkey), store, mkey


def test_the_mirror_keeps_what_checks_out_and_cosigns_it(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tlog, url, vkey, author = upstream
    _grow(tlog, author, 0, 300)  # a full tile and a partial one
    f, store, mkey = _mirror(tmp_path, url, vkey)
    got = f.step()
    assert (got.size, got.added, got.entries) == (300, 300, 300)
    assert TransparencyLog(store).root_at(300) == tlog.root_at(300)
    _grow(tlog, author, 300, 700)
    assert f.step().added == 400 and f.step().added == 0  # nothing new: nothing fetched twice
    assert store.log_state()[0] == 700
    # Every entry is the upstream's, byte for byte.
    assert [TransparencyLog(store).entry_bytes(i) for i in (0, 299, 699)] == [
        tlog.entry_bytes(i) for i in (0, 299, 699)
    ]
    # The mirror's checkpoint carries the log's signature and the mirror's cosignature.
    with _served(store) as murl:
        text = httpx.get(f"{murl}/v1/tlog/checkpoint").text
        state = httpx.get(f"{murl}/v1/mirror").json()
    cosigner = new_verifier(parse_signer_key(mkey).cosigner_verifier_key)
    assert open_note(text, [new_verifier(vkey)]).text.splitlines()[1] == "700"
    assert open_note(text, [cosigner]).signatures[0].timestamp
    assert state["size"] == 700 and state["following"] and state["split_view"] is None


def test_bad_tiles_keep_nothing_and_the_next_round_tries_again(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tlog, url, vkey, author = upstream
    _grow(tlog, author, 0, 10)
    f, store, _ = _mirror(tmp_path, url, vkey)
    f.step()
    _grow(tlog, author, 10, 20)
    # The upstream's store serves a wrong leaf hash for entry 15.
    db = tlog.store.url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        good = conn.execute("SELECT hash FROM log_nodes WHERE level = 0 AND idx = 15").fetchone()[0]
        conn.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 15")
    with pytest.raises(VerificationError, match="entry 15: its bytes do not hash to its leaf"):
        f.step()
    assert store.log_state()[0] == 10 and f.stopped() is None
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE log_nodes SET hash = ? WHERE level = 0 AND idx = 15", (good,))
    assert f.step().size == 20


def test_a_split_view_is_kept_as_evidence_and_stops_the_mirror(tmp_path: Path) -> None:
    """Two forks of one log under one key: the mirror follows the first, then is shown the
    second. It keeps both signed checkpoints, stops, and says so."""
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    author, _ = generate_key("party.test/AAA")
    forks = []
    for name in ("a", "b"):
        store = open_store(f"sqlite:///{tmp_path / (name + '.db')}", create=True)
        tlog = TransparencyLog.create(store, skey)
        _grow(tlog, author, 0, 9, tag=name)
        forks.append(tlog)
    _grow(forks[1], author, 9, 12, tag="b")
    store_b = forks[1].store
    with _served(forks[0].store) as url_a, _served(store_b) as url_b:
        f, mstore, _ = _mirror(tmp_path, url_a, vkey)
        assert f.step().size == 9
        f_b = Follower(mstore, url_b, vkey)
        with pytest.raises(SplitViewError, match="does not extend the mirror's of size 9"):
            f_b.step()
        with pytest.raises(SplitViewError, match="stopped following"):
            f.step()  # stopped for good, whichever hub it asks
        with _served(mstore) as murl:
            state = httpx.get(f"{murl}/v1/mirror").json()
    assert not state["following"] and state["size"] == 9
    evidence = state["split_view"]
    held = open_note(evidence["held"], [new_verifier(vkey)]).text.splitlines()
    seen = open_note(evidence["seen"], [new_verifier(vkey)]).text.splitlines()
    assert (held[1], seen[1]) == ("9", "12") and held[2] != seen[2]  # both signed by the log


def test_a_checkpoint_of_a_size_it_holds_with_another_root_is_a_split_view(tmp_path: Path) -> None:
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    author, _ = generate_key("party.test/AAA")
    stores = []
    for name in ("a", "b"):
        store = open_store(f"sqlite:///{tmp_path / (name + '.db')}", create=True)
        _grow(TransparencyLog.create(store, skey), author, 0, 4, tag=name)
        stores.append(store)
    with _served(stores[0]) as url_a, _served(stores[1]) as url_b:
        f, mstore, _ = _mirror(tmp_path, url_a, vkey)
        f.step()
        with pytest.raises(SplitViewError, match="size 4 has another root"):
            Follower(mstore, url_b, vkey).step()


def test_another_logs_checkpoint_or_a_mirror_of_another_origin_is_refused(
    upstream, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tlog, url, _vkey, author = upstream
    _grow(tlog, author, 0, 3)
    _, other = generate_key("log.cbmnet.test/tlog")  # same name, another key
    f, store, _ = _mirror(tmp_path, url, other)
    with pytest.raises(VerificationError):
        f.step()
    assert store.log_state()[0] == 0
    _, elsewhere = generate_key("elsewhere.test/log")
    with pytest.raises(Exception, match=r"mirrors 'log\.cbmnet\.test/tlog'"):
        Follower(store, url, elsewhere)


# ---- following a real hub --------------------------------------------------------------------


def _acts(th, n: int, prefix: str) -> None:  # type: ignore[no-untyped-def]
    with th.client("AUT") as aut:
        for i in range(n):
            doc = {"agreement": VD, "id": f"{prefix}-{i}", "type": "request", "party": "AUT"}
            aut.submit(
                aut.sign(PT_EVENT, {**doc, "kind": "explanation", "to": "BEL" if i % 2 else "CZE"})
            )
    th.hub.checkpoint_if_grown()


def test_a_mirror_of_a_hub_keeps_its_partys_entries_and_serves_with_the_hub_stopped(
    tmp_path: Path,
) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 30, "a")
        vkey = th.hub.log.vkey
        bel = th.client("BEL")
        store = open_store(f"sqlite:///{tmp_path / 'bel-mirror.db'}", create=True)

        def token(fresh: bool) -> str:
            if fresh:
                bel.forget_token()
            return bel.token()

        f = Follower(store, th.url, vkey, token=token)
        size = f.step().size
        assert size == th.hub.rlog.latest_checkpoint().size
        readable = th.hub.views.readable_indices("BEL", list(range(size)))
        held = {r.idx for r in store.iter_entries()}
        assert held == readable and 0 < len(held) < size  # BEL's, never CZE's private requests
        bel.close()
    # The hub is gone; the mirror answers from its own copy; its party's entries only
    # with --serve-entries, and then only on this machine.
    with _served(store, entries=False) as murl:
        leaves = httpx.get(f"{murl}/v1/log/leaves", params={"start": 0, "limit": 1000}).json()["leaves"]
        assert len(leaves) == size and not any("entry" in x for x in leaves)
    with _served(store) as murl:
        r = httpx.get(f"{murl}/v1/log/consistency", params={"old": 3, "new": size})
        assert r.status_code == 200 and r.json()["proof"]
        leaves = httpx.get(f"{murl}/v1/log/leaves", params={"start": 0, "limit": 1000}).json()["leaves"]
        assert len(leaves) == size and {x["index"] for x in leaves if "entry" in x} == held
    store.close()


def test_cbmnet_mirror_follows_a_hub_within_seconds_and_stops_on_term(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 5, "a")
        keyfile = tmp_path / "bel.key"
        keyfile.write_text(th.keys["BEL"].identity().signer_key + "\n")
        env = {**os.environ, "CBMNET_LANG": "en"}
        args = [
            sys.executable, "-m", "cbmnet.cli.main", "mirror", "--hub", th.url, "--log", th.hub.log.vkey,
            "--db", f"sqlite:///{tmp_path / 'm.db'}", "--party", "BEL", "--key", str(keyfile),
            "--port", "0", "--every", "0.1",
        ]  # fmt: skip
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = None
            deadline = time.monotonic() + 30
            while url is None and time.monotonic() < deadline:
                line = proc.stderr.readline() if proc.stderr else ""
                if '"mirroring"' in line:
                    url = json.loads(line)["url"]
            assert url, "the mirror did not start"
            _acts(th, 10, "b")
            want = th.hub.rlog.latest_checkpoint().size
            deadline = time.monotonic() + 30
            state: dict[str, object] = {}
            while time.monotonic() < deadline:
                state = httpx.get(f"{url}/v1/mirror").json()
                if state["checkpoint_size"] == want:
                    break
                time.sleep(0.1)
            assert state["checkpoint_size"] == want and state["following"]
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err


def test_gos_tile_reader_reads_the_mirror_with_the_hub_stopped(tlogtiles: Path, tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 300, "a")  # past one tile
        vkey = th.hub.log.vkey
        store = open_store(f"sqlite:///{tmp_path / 'anon-mirror.db'}", create=True)
        mkey, _ = generate_key("mirror.anon.test")
        size = Follower(store, th.url, vkey, mirror_key=mkey).step().size
    with _served(store) as murl:
        got = subprocess.run([str(tlogtiles), murl, vkey], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    # An anonymous mirror holds hashes only: every inclusion still verifies.
    assert doc["size"] == size and doc["inclusion_verified"] == size and doc["entries_read"] == 0
    store.close()


def test_an_anonymous_audit_of_the_mirror_passes_with_the_hub_stopped(tmp_path: Path) -> None:
    """`cbmnet log audit --hub MIRROR` recomputes every root and checks every cosignature
    from the mirror alone, as it does from the hub."""
    from cbmnet.party.audit import audit_hub
    from cbmnet.party.client import HubClient

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 20, "a")
        vkey = th.hub.log.vkey
        store = open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True)
        Follower(store, th.url, vkey, mirror_key=generate_key("mirror.a.test")[0]).step()
        _acts(th, 5, "b")
        Follower(store, th.url, vkey).step()
    with _served(store) as murl, HubClient(murl, None) as anon:
        report = audit_hub(anon, vkey)
    assert report.size == store.log_state()[0] and report.checkpoints >= 2
    store.close()


def test_a_bundle_costs_one_bounded_read_however_long_the_log(upstream) -> None:  # type: ignore[no-untyped-def]
    """The review's finding: a one-entry bundle at the start of a long log read every entry
    after it. Now one SELECT of at most the bundle's width."""
    from cbmnet.log.tiles import entry_bundle

    tlog, _url, _vkey, author = upstream
    _grow(tlog, author, 0, 1500)
    store = tlog.store
    calls: list[str] = []
    real = store._execute

    def counting(sql: str, params: Any = ()) -> Any:
        calls.append(sql)
        return real(sql, params)

    store._execute = counting  # type: ignore[method-assign]
    try:
        one = entry_bundle(store, 1500, 0, 1, lambda ix: set(ix))
        full = entry_bundle(store, 1500, 1, 256, lambda ix: set(ix))
    finally:
        store._execute = real  # type: ignore[method-assign]
    assert len(one) == 2 + len(tlog.entry_bytes(0)) and len(full) > 256 * 2
    assert len([c for c in calls if "FROM log_entries" in c]) == 2


class _Junk(Follower):
    """A follower whose hub answers one path with junk (the review's false split view)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.junk: dict[str, bytes] = {}

    def _get(self, path: str, limit: int, *, auth: bool = False) -> bytes:
        for prefix, body in self.junk.items():
            if path.startswith(prefix):
                return body
        return super()._get(path, limit, auth=auth)


def test_a_bad_leaf_and_no_proof_is_a_bad_answer_not_a_split_view(tmp_path: Path) -> None:
    """The hub serves a wrong leaf hash for an entry the party cannot read and junk for the
    consistency proof: the mirror reads the hub's leaves itself, finds they do not hash to
    the signed root, keeps nothing and goes on following."""
    skey, vkey = generate_key("log.cbmnet.test/tlog")
    author, _ = generate_key("party.test/AAA")
    store = open_store(f"sqlite:///{tmp_path / 'up.db'}", create=True)
    tlog = TransparencyLog.create(store, skey)
    _grow(tlog, author, 0, 10)
    with _served(store, entries=False) as url:
        mstore = open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True)
        f = _Junk(mstore, url, vkey)
        f.junk = {"/v1/log/consistency": b'{"proof": ["x"]}'}
        f.step()
        _grow(tlog, author, 10, 20)
        with sqlite3.connect(tlog.store.url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 15")
        with pytest.raises(VerificationError, match="tiles do not hash to its checkpoint of size 20"):
            f.step()
        assert f.stopped() is None and mstore.log_state()[0] == 10


def test_junk_from_the_hub_is_a_named_error_not_a_dead_follower(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cbmnet.errors import FormatError

    tlog, url, vkey, author = upstream
    _grow(tlog, author, 0, 5)
    f = _Junk(open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True), url, vkey)
    f.junk = {"/v1/hub": b"[" * 60_000}
    with pytest.raises(FormatError, match="not JSON"):
        f.step()


def test_no_line_in_the_mirrors_name_is_kept_and_a_later_key_cosigns(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tlog, url, vkey, author = upstream
    _grow(tlog, author, 0, 5)
    mkey, _ = generate_key("mirror.bel.test")
    cosigner = parse_signer_key(mkey).cosigner_verifier_key
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    Follower(store, url, vkey).step()  # kept before the mirror had its key
    f = _Junk(store, url, vkey, mirror_key=mkey)
    f.step()  # nothing new: the latest is cosigned now
    text = httpx.get(f"{url}/v1/tlog/checkpoint").text
    name = cosigner.split("+")[0]
    forged = f"— {name} " + base64.b64encode(b"\x00" * 4 + b"\x01" * 72).decode() + "\n"
    _grow(tlog, author, 5, 8)
    f.junk = {"/v1/tlog/checkpoint": (httpx.get(f"{url}/v1/tlog/checkpoint").text + forged).encode()}
    f.step()
    with _served(store) as murl:
        served = httpx.get(f"{murl}/v1/tlog/checkpoint").text
        first = httpx.get(f"{murl}/v1/log/checkpoints").json()["checkpoints"][0]["note"]
    assert open_note(served, [new_verifier(cosigner)]).signatures  # the mirror's own verifies
    assert forged not in served and text.splitlines()[1] == "5"
    assert open_note(first, [new_verifier(cosigner)]).signatures  # cosigned when the key came


def test_a_round_is_bounded_and_walks_the_hubs_checkpoints(
    upstream, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import cbmnet.mirror.follow as follow

    monkeypatch.setattr(follow, "MAX_ROUND_LEAVES", 100)
    tlog, url, vkey, author = upstream
    for lo, hi in ((0, 50), (50, 150), (150, 250), (250, 300)):
        _grow(tlog, author, lo, hi)
    f, store, _ = _mirror(tmp_path, url, vkey)
    sizes = []
    while True:
        got = f.step()
        sizes.append(got.size)
        if not got.behind:
            break
    assert sizes == [50, 150, 250, 300]
    # A hub whose next checkpoint is beyond a round: refused, nothing kept, not a split.
    _grow(tlog, author, 300, 500)
    with pytest.raises(VerificationError, match="more than one round verifies"):
        f.step()
    assert store.log_state()[0] == 300 and f.stopped() is None


# ---- a party's tools pointed at its mirror (the hub stopped) ------------------------------


@contextmanager
def _party_mirror(store: Store, party: str, signer: str) -> Iterator[str]:
    app = create_mirror_app(store, party=party, party_key=parse_signer_key(signer).public_key)
    with ServerThread(app) as server:
        yield server.url


def _follow_as(th, store: Store, party: str) -> Follower:  # type: ignore[no-untyped-def]
    client = th.client(party)

    def token(fresh: bool) -> str:
        if fresh:
            client.forget_token()
        return str(client.token())

    return Follower(store, th.url, th.hub.log.vkey, party=party, token=token, answers_every=0)


def test_a_partys_cli_reads_its_mirror_with_the_hub_stopped(tmp_path: Path, store_url: str) -> None:
    """On either backend of the mirror's own store (the hub's is SQLite)."""
    from cbmnet.acts.signin import mirror_origin, signed_message
    from cbmnet.ledger.policy import single_log_policy
    from cbmnet.ledger.tlogproof import verify_entry_proof
    from cbmnet.party.client import HubClient
    from tests.hubcli_helpers import cli, ok

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 30, "a")
        store = open_store(store_url, create=True)
        f = _follow_as(th, store, "BEL")
        size = f.step().size
        readable = sorted(th.hub.views.readable_indices("BEL", list(range(size))))
        with th.client("BEL") as bel:
            hub_view = bel.obligations(VD)
            hub_items = list(bel.iter_entries())
        keys = th.keys
        vkey = th.hub.log.vkey
        hub_url = th.url
        # A signature over a mirror's challenge never signs anyone in to the hub.
        with _party_mirror(store, "BEL", keys["BEL"].signer) as murl:
            ch = httpx.post(f"{murl}/v1/auth/challenge", json={"party": "BEL"}).json()
            assert ch["origin"] == mirror_origin(th.hub.log.origin)
            sig = parse_signer_key(keys["BEL"].signer).private_key.sign(
                signed_message(ch["origin"], ch["challenge"])
            )
            body = {"challenge": ch["challenge"], "signature": base64.b64encode(sig).decode()}
            assert httpx.post(f"{hub_url}/v1/auth/token", json=body).status_code == 401
            hub_ch = httpx.post(f"{hub_url}/v1/auth/challenge", json={"party": "BEL"}).json()
            sig = parse_signer_key(keys["BEL"].signer).private_key.sign(
                signed_message(hub_ch["origin"], hub_ch["challenge"])
            )
            body = {"challenge": hub_ch["challenge"], "signature": base64.b64encode(sig).decode()}
            assert httpx.post(f"{murl}/v1/auth/token", json=body).status_code == 401
    assert len(readable) == len(hub_items) and 0 < len(readable) < size
    (tmp_path / "bel.key").write_text(keys["BEL"].signer)
    (tmp_path / "cze.key").write_text(keys["CZE"].signer)
    with _party_mirror(store, "BEL", keys["BEL"].signer) as murl:
        env = {"CBMNET_HUB": murl, "CBMNET_PARTY": "BEL", "CBMNET_KEY": str(tmp_path / "bel.key")}
        lines = ok("inbox", "--all", "--envelopes", env=env).stdout.splitlines()
        got = [json.loads(x) for x in lines]
        assert [x["index"] for x in got] == [i["index"] for i in hub_items if i["author"] != "BEL"]
        for mine, theirs in zip(got, [i for i in hub_items if i["author"] != "BEL"], strict=True):
            assert mine["envelope"] == theirs["envelope"] and mine["kind"] == theirs["kind"]
        seen = json.loads(ok("obligations", "--agreement", VD, env=env).stdout)
        assert seen["mirror"]["answered_by"] == "hub" and seen["mirror"]["log_size_then"] == size
        assert seen["obligations"] == hub_view["obligations"]
        assert seen["findings"] == hub_view["findings"]
        # The mirror cannot recompute: another time is refused by name, not answered wrongly.
        r = cli("obligations", "--agreement", VD, "--as-of", "2027-01-01T00:00:00Z", env=env)
        assert r.exit_code != 0 and "as_of" in r.stderr
        # Acts go to the hub: a mirror refuses them by name and logs nothing.
        r = cli("ack", str(readable[-1]), env=env)
        assert r.exit_code != 0 and "read-only" in r.stderr
        assert store.log_state()[0] == size
        # What needs the whole record is the hub's alone, and the refusal says so.
        r = cli("quota", "--agreement", VD, "--host", "AUT", "--kind", "inspection", env=env)
        assert r.exit_code != 0 and "only the hub does" in r.stderr
        # Its proof verifies under the log's key, from the mirror's own tree.
        with HubClient(murl, keys["BEL"].identity()) as c:
            got_proof = verify_entry_proof(c.proof(readable[-1]), single_log_policy(vkey))
            assert got_proof.index == readable[-1]
        # CZE, another State, cannot sign in to BEL's mirror.
        r = cli("inbox", env={**env, "CBMNET_PARTY": "CZE", "CBMNET_KEY": str(tmp_path / "cze.key")})
        assert r.exit_code != 0 and "not signed by an active key" in r.stderr
        anon = httpx.get(f"{murl}/v1/entries")
        assert anon.status_code == 401
    store.close()


def test_the_partys_dashboard_page_on_its_mirror_in_chromium(tmp_path: Path, browser: Any) -> None:
    from tests.browserkit import screenshot, sign_in
    from tests.hubkit import activity_event

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 6, "a")
        with th.client("AUT") as aut:
            for i in range(3):
                aut.event(activity_event(i, "AUT"))
        store = open_store(f"sqlite:///{tmp_path / 'bel-mirror.db'}", create=True)
        f = _follow_as(th, store, "BEL")
        f.step()
        with th.client("BEL") as bel:
            hub_view = bel.obligations(VD)
            inbox = [i for i in bel.iter_entries() if i["author"] != "BEL"]
        keys = th.keys
    pending = [o for o in hub_view["obligations"] if o["status"] == "pending"]
    assert pending and inbox
    with _party_mirror(store, "BEL", keys["BEL"].signer) as murl:
        from cbmnet.party.client import HubClient

        with HubClient(murl, keys["BEL"].identity()) as c:
            token = c.token()
        page = browser.new_page()
        try:
            sign_in(page, murl, token)
            assert page.url.endswith("/dashboard")
            assert page.inner_text("h1") == "National mirror"
            section = page.locator("section", has=page.locator("h3", has_text=VD))
            assert section.locator("table").first.locator("tbody tr").count() == min(200, len(pending))
            rows = page.locator("main > table").last.locator("tbody tr")
            assert rows.count() == min(50, len(inbox))
            assert rows.first.locator("td").first.inner_text() == str(inbox[-1]["index"])
            first = section.locator("table").first.locator("tbody tr").first.locator("td").nth(1)
            assert first.inner_text() == "BEL"  # its own deadlines first
            screenshot(page, "mirror-page")
            page.goto(f"{murl}/dashboard/lang?to=fr&back=/dashboard")
            assert page.inner_text("h1") == "Miroir national"
            screenshot(page, "mirror-page-fr")
            with page.expect_navigation():
                page.click("form.signout button")
            page.goto(f"{murl}/dashboard")
            assert "Miroir national" not in page.inner_text("main")
        finally:
            page.close()
    store.close()


def test_an_entry_too_long_for_a_bundle_is_kept_from_its_description(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        doc = {"agreement": VD, "id": "long-1", "type": "request", "party": "AUT"}
        with th.client("AUT") as aut:
            got = aut.event({**doc, "kind": "explanation", "to": "BEL", "body": "x" * 60_000})
        long = got["index"]
        assert len(th.hub.rstore.get_entry(long).envelope) > 0xFFFF  # type: ignore[union-attr]
        _acts(th, 4, "a")
        store = open_store(f"sqlite:///{tmp_path / 'bel.db'}", create=True)
        f = _follow_as(th, store, "BEL")
        f.step()
        # The bundle withholds it (too long for its uint16); the description carries it, and
        # it is kept only because it hashes to the leaf the signed tree holds.
        held = store.get_entry(long)
        assert held is not None and held.envelope == th.hub.rstore.get_entry(long).envelope  # type: ignore[union-attr]
        assert json.loads(store.mirror_item(long) or "{}")["author"] == "AUT"
        # CZE's mirror holds neither the entry nor its description.
        cze = open_store(f"sqlite:///{tmp_path / 'cze.db'}", create=True)
        _follow_as(th, cze, "CZE").step()
        assert cze.get_entry(long) is None and cze.mirror_item(long) is None
        assert cze.log_state()[0] == store.log_state()[0]
        cze.close()
    store.close()


def test_a_hub_that_misdescribes_entries_is_named_and_the_mirror_goes_on(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        _acts(th, 6, "a")
        store = open_store(f"sqlite:///{tmp_path / 'bel.db'}", create=True)
        f = _follow_as(th, store, "BEL")
        real = f._get
        lied: list[int] = []

        def lying(path: str, limit: int, *, auth: bool = False) -> bytes:
            body = real(path, limit, auth=auth)
            if path.startswith("/v1/entries?"):
                doc = json.loads(body)
                for it in doc["items"]:
                    if it["author"] == "AUT" and not lied:
                        it["author"] = "CZE"  # as if CZE had asked BEL
                        lied.append(it["index"])
                    elif it["author"] == "AUT" and len(lied) == 1:
                        it["agreement"] = "some-other-treaty"  # and of another treaty
                        it["integrated_at"] = "2020-01-01T00:00:00Z"
                        lied.append(it["index"])
                    elif it["author"] == "AUT" and len(lied) == 2:
                        it["integrated_ms"] += 1  # a time its leaf does not prove
                        it["envelope"]["payload"] = it["envelope"]["payload"][::-1]
                        lied.append(it["index"])
                body = json.dumps(doc).encode()
            return body

        f._get = lying  # type: ignore[method-assign]
        f.step()  # named, not stuck: everything else is described, the answers fetched
        first, second, third = lied
        one = json.loads(store.mirror_item(first) or "{}")
        assert one["author"] == "AUT" and "author" in one["disputed"]
        two = json.loads(store.mirror_item(second) or "{}")
        assert two["agreement"] == VD and "agreement" in two["disputed"]
        held = store.get_entry(second)
        assert held is not None and two["integrated_at"] == format_time(held.integrated_ms)
        three = json.loads(store.mirror_item(third) or "{}")  # it held the real one
        assert (
            "another entry" in three["disputed"]
            and three["integrated_ms"] == store.get_entry(third).integrated_ms
        )  # type: ignore[union-attr]
        errors = describe(store, private=True)["set_aside"]
        assert isinstance(errors, list) and len(errors) == 3
        assert store.mirror_answer(f"/v1/obligations?agreement={VD}") is not None
        assert describe(store)["last_error"] is False  # the public view names nothing
        # The hub's readable entries after the lies are all described.
        readable = th.hub.views.readable_indices("BEL", list(range(store.log_state()[0])))
        assert {i for i, _t in store.mirror_items(-1, 1000)} == readable
    store.close()


def test_a_store_keeps_one_partys_entries(tmp_path: Path) -> None:
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        store = open_store(f"sqlite:///{tmp_path / 'bel.db'}", create=True)
        _follow_as(th, store, "BEL").step()
        with pytest.raises(FormatError, match=r"keeps 'BEL'\'s entries, not 'CZE'\'s"):
            _follow_as(th, store, "CZE")
        with pytest.raises(FormatError, match="one store per party"):
            create_mirror_app(store, party="CZE", party_key=b"k" * 32)
    store.close()


def test_the_page_shows_a_junk_answer_of_the_hub_without_failing(tmp_path: Path) -> None:
    """The hub's answers reach the mirror unverified: a page built on them must not break."""
    from cbmnet.mirror.follow import HUB_INFO
    from cbmnet.party.client import HubClient, Identity
    from tests.browserkit import session_cookie

    signer, _ = generate_key("bel.cbmnet.test")
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    _skey, log_vkey = generate_key("hub.cbmnet.test/log")
    Follower(store, "http://127.0.0.1:9", log_vkey)  # pins the log, as `cbmnet mirror` does
    store.set_meta(HUB_INFO, json.dumps({"origin": "hub.cbmnet.test/log", "log_vkey": log_vkey}))
    parties = {"parties": [{"id": "BEL", "agreements": [VD, 7, "x" * 500]}, "junk"]}
    store.put_mirror_answer("/v1/parties", 1, 0, json.dumps(parties))
    dues: list[Any] = [[], {}, 1e300, 10**20, True, "not a time"]
    junk = {
        "agreement": VD,
        "obligations": [5, *({"status": "pending", "due": d, "party": "BEL"} for d in dues)],
        "findings": [1, {"party": "<b>X</b>", "due": []}],
    }
    path = f"/v1/obligations?agreement={VD}"
    store.put_mirror_answer(path, 1, 0, json.dumps(junk))
    store.put_mirror_answer("page:" + path, 1, 0, json.dumps(page_summary(junk, "BEL")))
    with _party_mirror(store, "BEL", signer) as murl:
        with HubClient(murl, Identity("BEL", signer)) as c:
            token = c.token()
        cookie = session_cookie(murl, token)
        r = httpx.get(f"{murl}/dashboard", cookies={"cbmnet_session": cookie})
        assert r.status_code == 200 and "&lt;b&gt;X&lt;/b&gt;" in r.text and VD in r.text
        # Junk before sign-in is a named 400, never a traceback.
        for body in (b"junk", b'{"party": 5}', b"{}", b'{"challenge": "x"}'):
            for route in ("challenge", "token"):
                r = httpx.post(f"{murl}/v1/auth/{route}", content=body)
                assert r.status_code == 400 and r.json()["error"] == "bad_input", (route, body)
        # Sign-in steps are limited per address: a flood is told to slow down.
        url = f"{murl}/v1/auth/challenge"
        codes = [httpx.post(url, json={"party": "BEL"}).status_code for _ in range(120)]
        assert 429 in codes and codes[0] == 200
        time.sleep(2.5)  # the bucket refills
        # The registry as the hub last showed it no longer lists the key (revoked): refused.
        gone = {"parties": [{"id": "BEL", "agreements": [VD], "signing_keys": ["AAAA"]}]}
        store.put_mirror_answer("/v1/parties", 2, 0, json.dumps(gone))
        with HubClient(murl, Identity("BEL", signer)) as c, pytest.raises(AuthError, match="not signed"):
            c.token()
    store.close()


def test_the_hubs_keys_are_kept_only_for_the_pinned_log(tmp_path: Path) -> None:
    """A hub that names another origin in /v1/hub would make its party sign for another
    name (HubClient reads the origin there): refused, as another log key is."""
    _skey, vkey = generate_key("hub.cbmnet.test/log")
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    f = Follower(store, "http://127.0.0.1:9", vkey)
    with pytest.raises(VerificationError, match="another origin"):
        f._keep_info(json.dumps({"origin": "evil.example/log", "log_vkey": vkey}).encode())
    with pytest.raises(VerificationError, match="another log key"):
        f._keep_info(json.dumps({"origin": "hub.cbmnet.test/log", "log_vkey": "x"}).encode())
    f._keep_info(json.dumps({"origin": "hub.cbmnet.test/log", "log_vkey": vkey}).encode())
    store.close()


def test_what_an_act_states_is_what_the_hub_files(tmp_path: Path) -> None:
    """``stated_fields`` (what a mirror checks the hub's description against) agrees with
    the hub's own entries, for every kind of act a party makes."""
    from cbmnet.acts.model import read_act
    from cbmnet.acts.state import stated_fields
    from tests.hubkit import activity_event

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, settings=FAST) as th:
        th.register("AUT", "BEL", "CZE")
        with th.client("AUT") as aut, th.client("BEL") as bel:
            act = activity_event(1, "AUT")
            aut.event(act)
            aut.event(
                {
                    **act,
                    "id": "AUT-1c",
                    "size": {"troops": 9},
                    "amends": {"id": "AUT-1", "action": "correct"},
                }
            )
            req = {
                "agreement": VD,
                "id": "r-1",
                "type": "request",
                "party": "AUT",
                "kind": "explanation",
            }
            asked = aut.event({**req, "to": "BEL"})
            bel.event({"agreement": VD, "id": "r-1-a", "type": "response", "party": "BEL",
                       "request": "r-1", "decision": "answer"})  # fmt: skip
            bel.ack(asked["index"])
            aut.open_channel("aut-bel", VD, ["AUT", "BEL"])
            bel.ack(th.hub.rlog.size() - 1)
            aut.send("aut-bel", "m-1", "routine", "hello")
        th.hub.sync()
        size = th.hub.rlog.size()
        kinds = set()
        for i in range(size):
            e = th.hub.views.committed_entry(i)
            env = dsse.parse(th.hub.envelope(i))
            stated = stated_fields(read_act(env.payload_type, env.payload))
            kinds.add(e.kind)
            for name, value in stated.items():
                assert getattr(e, name) == value, (i, e.kind, name)
        assert {
            "party.register",
            "activity",
            "request",
            "response",
            "ack",
            "channel.open",
            "hotline.message",
        } <= kinds
