"""The hub verbs as a user runs them: a real hub on loopback, exit codes, one-line errors."""

from __future__ import annotations

import json
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hubcli_helpers import cli, ok, serve_process
from tests.hubkit import TestHub, running_hub

pytestmark = pytest.mark.timeout(180)

IP = "india-pakistan-missile-tests-2005"
VD = "vienna-document-2011"


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _keys(out: Path, *parties: str) -> None:
    """Signer (+ witness cosigner) and X25519 keys per party, the way an operator makes them."""
    for p in parties:
        ok("keys", "generate", "--name", f"{p.lower()}.example", "--out", str(out))
        ok("keys", "generate", "--name", f"recovery.{p.lower()}.example", "--out", str(out))
        ok("keys", "hpke", "--name", p, "--out", str(out))


def _register(hub: str, keys: Path, sec_key: Path, party: str, agreement: str) -> dict[str, Any]:
    r = ok(
        "party",
        "register",
        "--hub",
        hub,
        "--key",
        str(sec_key),
        "--party",
        party,
        "--name",
        f"State {party}",
        "--agreement",
        agreement,
        "--signing-key",
        str(keys / f"{party.lower()}.example.vkey"),
        "--encryption-key",
        str(keys / f"{party}.hpke.pub"),
        "--witness-key",
        str(keys / f"{party.lower()}.example.cosigner.vkey"),
        "--recovery-key",
        str(keys / f"recovery.{party.lower()}.example.vkey"),
        "--contact",
        f"poc=verification centre of {party}",
    )
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def _as(hub: str, keys: Path, party: str) -> dict[str, str | None]:
    """The environment a party's operator would export."""
    return {
        "CBMNET_HUB": hub,
        "CBMNET_PARTY": party,
        "CBMNET_KEY": str(keys / f"{party.lower()}.example.key"),
        "CBMNET_HPKE": str(keys / f"{party}.hpke"),
    }


def test_keys_hpke_writes_an_owner_only_pair(tmp_path: Path) -> None:
    r = ok("keys", "hpke", "--name", "IND", "--out", str(tmp_path / "k"))
    priv, pub = tmp_path / "k/IND.hpke", tmp_path / "k/IND.hpke.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub.read_text().strip() in r.stdout
    again = cli("keys", "hpke", "--name", "IND", "--out", str(tmp_path / "k"))
    assert again.exit_code == 2 and "not overwriting" in again.stderr


def test_serve_as_a_process_end_to_end(tmp_path: Path) -> None:
    """hub init, cbmnet serve (a real process), register, submit, inbox, ack, status, hotline."""
    keys = tmp_path / "keys"
    ok("keys", "generate", "--name", "secretariat.example", "--out", str(keys))
    _keys(keys, "IND", "PAK")
    init = ok(
        "hub",
        "init",
        "--data",
        str(tmp_path / "data"),
        "--origin",
        "hub.example/log",
        "--secretariat",
        str(keys / "secretariat.example.vkey"),
        "--agreement",
        IP,
    )
    log_vkey = next(
        line.split(": ", 1)[1]
        for line in init.stdout.splitlines()
        if line.startswith("log verifier key")
    )
    assert stat.S_IMODE((tmp_path / "data/keys/log.key").stat().st_mode) == 0o600
    # Relative --data, resolved in the server's working directory.
    with serve_process(
        ["--data", "data", "--sweep-seconds", "3600"], tmp_path / "serve.log", tmp_path
    ) as (
        url,
        proc,
    ):
        sec_key = keys / "secretariat.example.key"
        assert _register(url, keys, sec_key, "IND", IP)["party"] == "IND"
        _register(url, keys, sec_key, "PAK", IP)
        ind, pak = _as(url, keys, "IND"), _as(url, keys, "PAK")
        listed = json.loads(ok("parties", env=ind).stdout)
        assert [p["id"] for p in listed] == ["IND", "PAK"]

        event = {
            "agreement": IP,
            "id": "n1",
            "type": "notification",
            "form": "launch_notification",
            "window_start": "2028-05-01T00:00:00Z",
            "window_end": "2028-05-06T00:00:00Z",
            "body": "Flight test of a surface-to-surface ballistic missile.",
        }
        (tmp_path / "n1.json").write_text(json.dumps(event))
        proof = tmp_path / "n1.tlog-proof"
        sub = json.loads(
            ok("submit", str(tmp_path / "n1.json"), "--proof-out", str(proof), env=ind).stdout
        )
        assert sub["duplicate"] is False and sub["proof"] == str(proof)
        # The receipt's proof verifies offline, author included.
        checked = ok(
            "log",
            "verify-proof",
            str(proof),
            "--vkey",
            log_vkey,
            "--author",
            str(keys / "ind.example.vkey"),
        )
        assert f"entry {sub['index']} of hub.example/log" in checked.stdout

        items = _lines(ok("inbox", "--agreement", IP, env=pak).stdout)
        assert [(i["index"], i["event_id"], i["author"]) for i in items] == [(sub["index"], "n1", "IND")]
        assert "envelope" not in items[0]
        with_env = _lines(ok("inbox", "--agreement", IP, "--envelopes", env=pak).stdout)
        assert with_env[0]["envelope"]["payloadType"] == "application/vnd.cbmnet.event+json"

        acked = json.loads(ok("ack", str(sub["index"]), env=pak).stdout)
        st = json.loads(ok("status", str(sub["index"]), env=ind).stdout)
        assert st["addressees"]["PAK"]["acknowledged_by_entry"] == acked["index"]
        assert st["addressees"]["PAK"]["delivered_ms"] is not None

        ok(
            "hotline",
            "open",
            "ind-pak",
            "--agreement",
            IP,
            "--member",
            "IND",
            "--member",
            "PAK",
            env=ind,
        )
        sent = json.loads(
            ok("hotline", "send", "ind-pak", "--precedence", "flash", "Launch in T-10.", env=ind).stdout
        )
        assert len(sent["id"]) == 32
        heard = _lines(
            ok(
                "hotline", "listen", "--after", str(sent["index"] - 1), "--count", "1", "--ack", env=pak
            ).stdout
        )
        assert heard[0]["kind"] == "hotline.message" and heard[0]["text"] == "Launch in T-10."
        assert isinstance(heard[0]["ack"], int)
        st = json.loads(ok("status", str(sent["index"]), env=ind).stdout)
        assert st["addressees"]["PAK"]["acknowledged_by_entry"] == heard[0]["ack"]
        # The sender reads its own traffic back, and does not acknowledge it.
        own = _lines(
            ok(
                "hotline", "listen", "--after", str(sent["index"] - 1), "--count", "1", "--ack", env=ind
            ).stdout
        )
        assert own[0]["text"] == "Launch in T-10." and "ack" not in own[0]

        report = json.loads(ok("obligations", "--agreement", IP, env=ind).stdout)
        assert report["agreement"] == IP and "findings" in report

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    logged = _lines((tmp_path / "serve.log").read_text())
    assert any(d.get("event") == "serving" for d in logged)
    assert any(d.get("event") == "request" and d.get("path") == "/v1/acts" for d in logged)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[TestHub, Path]]:
    """A running hub (SQLite) with RUS and USA registered through the CLI."""
    keys = tmp_path / "keys"
    _keys(keys, "RUS", "USA")
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as h:
        sec_key = keys / "secretariat.key"
        sec_key.write_text(h.secretariat.signer_key + "\n")
        for p in ("RUS", "USA"):
            _register(h.url, keys, sec_key, p, VD)
        yield h, keys


def _exchange(i: str) -> dict[str, Any]:
    return {
        "agreement": VD,
        "id": i,
        "type": "exchange",
        "form": "annual_military_information",
        "period": "2028",
    }


def test_submit_signed_inbox_pages_and_key_rotation(hub: tuple[TestHub, Path], tmp_path: Path) -> None:
    h, keys = hub
    rus, usa = _as(h.url, keys, "RUS"), _as(h.url, keys, "USA")
    for i in ("x1", "x2", "x3"):
        (tmp_path / f"{i}.json").write_text(json.dumps(_exchange(i)))
        ok("submit", str(tmp_path / f"{i}.json"), env=rus)
    # One page of two, a hint on stderr; --all follows the pages.
    first = cli("inbox", "--agreement", VD, "--limit", "2", env=usa)
    assert first.exit_code == 0 and len(_lines(first.stdout)) == 2 and "--after" in first.stderr
    every = _lines(ok("inbox", "--agreement", VD, "--limit", "2", "--all", env=usa).stdout)
    assert [i["event_id"] for i in every] == ["x1", "x2", "x3"]
    assert _lines(ok("inbox", "--author", "USA", env=rus).stdout) == []

    # A DSSE envelope signed elsewhere (here: by `cbmnet envelope sign`) goes in as is.
    payload = json.dumps({**_exchange("x4"), "party": "USA"})
    env_text = ok(
        "envelope",
        "sign",
        "--key",
        str(keys / "usa.example.key"),
        "--type",
        "application/vnd.cbmnet.event+json",
        input=payload,
    ).stdout
    (tmp_path / "x4.dsse.json").write_text(env_text)
    r = json.loads(ok("submit", "--signed", str(tmp_path / "x4.dsse.json"), "--hub", h.url).stdout)
    again = json.loads(ok("submit", "--signed", str(tmp_path / "x4.dsse.json"), "--hub", h.url).stdout)
    assert again["index"] == r["index"] and again["duplicate"] is True

    # USA rotates its own key; the old one no longer logs in (exit 3), the new one does.
    ok("keys", "generate", "--name", "usa2.example", "--out", str(keys))
    ok("party", "rotate", "--signing-key", str(keys / "usa2.example.vkey"), env=usa)
    old = cli("parties", env=usa)
    assert old.exit_code == 3 and old.stderr.startswith("error: ")
    usa2 = {**usa, "CBMNET_KEY": str(keys / "usa2.example.key")}
    listed = {p["id"]: p for p in json.loads(ok("parties", env=usa2).stdout)}
    assert len(listed["USA"]["signing_keys"]) == 1
    # The secretariat cannot revoke it (only the party changes its keys: ADR 0007) ...
    sec = {"CBMNET_HUB": h.url, "CBMNET_PARTY": "USA", "CBMNET_KEY": str(keys / "secretariat.key")}
    refused = cli(
        "party", "revoke", "--by", "secretariat", "--revoke", str(keys / "usa2.example.vkey"), env=sec
    )
    _one_line_error(refused, 2, "'by'", "never changes their keys")
    assert cli("parties", env=usa2).exit_code == 0
    # ... USA does, with its offline recovery key (the key was stolen): nothing signed by it
    # is accepted any more; a new key, installed with the same recovery key, works.
    recovery = {**usa, "CBMNET_KEY": str(keys / "recovery.usa.example.key")}
    revoke = ("party", "revoke", "--by", "recovery", "--revoke", str(keys / "usa2.example.vkey"))
    ok(*revoke, "--reason", "stolen", env=recovery)
    assert cli("parties", env=usa2).exit_code == 3
    ok("keys", "generate", "--name", "usa3.example", "--out", str(keys))
    ok(
        "party",
        "rotate",
        "--by",
        "recovery",
        "--signing-key",
        str(keys / "usa3.example.vkey"),
        env=recovery,
    )
    usa3 = {**usa, "CBMNET_KEY": str(keys / "usa3.example.key")}
    listed = {p["id"]: p for p in json.loads(ok("parties", env=usa3).stdout)}
    assert [k["revoked"] for k in listed["USA"]["key_history"]] == [False, True, False]
    # Two parties: the rival alone can never recover USA (a quorum is at least two).
    ok("keys", "generate", "--name", "usa4.example", "--out", str(keys))
    new4 = str(keys / "usa4.example.vkey")
    ok("party", "approve", "--for", "USA", "--signing-key", new4, env=rus)
    quorum = {**usa, "CBMNET_KEY": str(keys / "usa4.example.key")}
    _one_line_error(
        cli("party", "rotate", "--by", "quorum", "--signing-key", new4, env=quorum),
        3,
        "needs 2 approvals",
    )


def _one_line_error(r: Any, code: int, *words: str) -> None:
    assert r.exit_code == code, (r.exit_code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_bad_input_is_one_clear_line(hub: tuple[TestHub, Path], tmp_path: Path) -> None:
    h, keys = hub
    rus, usa = _as(h.url, keys, "RUS"), _as(h.url, keys, "USA")
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"agreement": ')
    _one_line_error(cli("submit", str(bad_json), env=rus), 2, "broken.json", "not JSON")
    no_type = tmp_path / "no-type.json"
    no_type.write_text(json.dumps({"agreement": VD, "id": "e1"}))
    _one_line_error(cli("submit", str(no_type), env=rus), 2, "no-type.json", "field 'type'")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**_exchange("e2"), "party": "USA"}))
    _one_line_error(cli("submit", str(other), env=rus), 2, "other.json", "field 'party'")
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps(_exchange("e4")))
    _one_line_error(
        cli("submit", str(fine), env={**rus, "CBMNET_KEY": str(tmp_path / "nope.key")}),
        2,
        "nope.key",
    )
    _one_line_error(cli("inbox", env={**rus, "CBMNET_HUB": None}), 2, "--hub")
    _one_line_error(
        cli("hotline", "send", "c", "hi", "--precedence", "urgent", env=rus), 2, "--precedence"
    )
    _one_line_error(
        cli(
            "party",
            "register",
            "--hub",
            h.url,
            "--key",
            str(keys / "secretariat.key"),
            "--party",
            "DEU",
            "--name",
            "x",
            "--agreement",
            VD,
            "--signing-key",
            str(keys / "RUS.hpke.pub"),
            "--encryption-key",
            str(keys / "RUS.hpke.pub"),
        ),
        2,
        "--signing-key",
        "RUS.hpke.pub",
    )
    # Signing as USA with RUS's key: the hub does not issue a token (exit 3).
    _one_line_error(cli("inbox", env={**usa, "CBMNET_KEY": rus["CBMNET_KEY"]}), 3)
    # RUS's own event: USA may not see its delivery status (exit 3); RUS may not ack it.
    (tmp_path / "e3.json").write_text(json.dumps(_exchange("e3")))
    idx = json.loads(ok("submit", str(tmp_path / "e3.json"), env=rus).stdout)["index"]
    _one_line_error(cli("status", str(idx), env=usa), 3, "author")
    _one_line_error(cli("ack", str(idx), env=rus), 2, "own act")
    # The same act again is a duplicate (exit 0); another act under the same event id is a
    # conflict with what the log holds (exit 1).
    assert json.loads(ok("submit", str(tmp_path / "e3.json"), env=rus).stdout)["duplicate"] is True
    (tmp_path / "e3.json").write_text(json.dumps({**_exchange("e3"), "period": "2029"}))
    _one_line_error(cli("submit", str(tmp_path / "e3.json"), env=rus), 1, "already has an event")
    # Nobody listening there.
    from tests.hubcli_helpers import free_port

    _one_line_error(
        cli("parties", env={**rus, "CBMNET_HUB": f"http://127.0.0.1:{free_port()}"}), 2, "cannot reach"
    )


def test_hub_init_and_serve_refuse_bad_input(tmp_path: Path) -> None:
    ok("keys", "generate", "--name", "secretariat.example", "--out", str(tmp_path / "k"))
    _one_line_error(
        cli(
            "hub",
            "init",
            "--data",
            str(tmp_path / "d"),
            "--origin",
            "hub.example/log",
            "--secretariat",
            str(tmp_path / "k/secretariat.example.key"),
            "--agreement",
            IP,
        ),
        2,
        "--secretariat",
    )
    _one_line_error(
        cli(
            "hub",
            "init",
            "--data",
            str(tmp_path / "d"),
            "--origin",
            "hub.example/log",
            "--secretariat",
            str(tmp_path / "k/secretariat.example.vkey"),
            "--agreement",
            "no-such-agreement",
        ),
        2,
        "no-such-agreement",
    )
    _one_line_error(cli("serve", "--data", str(tmp_path / "empty")), 2, "hub init")
