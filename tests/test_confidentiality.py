"""Restricted notifications and hotline messages are ciphertext to everyone but their
readers: a third party, and the hub's own database and log, hold no plaintext.

The check is a search: every byte of the store (SQLite files with their journal, or every
row of every PostgreSQL table) and every line the hub logged, for the known plaintexts.
A control run logs an unsealed body the same way and finds it, so the search can fail.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cbmnet.errors import ForbiddenError, FormatError, NotFoundError
from tests.hubkit import TestHub, running_hub
from tests.test_hotline import _raw_store_text

AG = "vienna-document-2011"
REQUEST_SECRET = "Explain the armour seen at grid 4711, EXERCISE"
REPLY_SECRET = "Bridging drill of 3rd brigade, EXERCISE"
NOTICE_SECRET = "Observers welcome at Camp Nord, EXERCISE"
HOTLINE_SECRET = "FLASH: stand down the battery, EXERCISE"
SECRETS = (REQUEST_SECRET, REPLY_SECRET, NOTICE_SECRET, HOTLINE_SECRET)


@contextmanager
def hub_log(path: Path) -> Iterator[Path]:
    """The hub's request log (logger ``cbmnet.hub``) written to ``path`` while it runs."""
    handler = logging.FileHandler(path)
    logger = logging.getLogger("cbmnet.hub")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
        handler.close()


def _variants(text: str) -> list[bytes]:
    """The plaintext as it could sit in a store: raw UTF-8, JSON-escaped, or inside base64
    (a signed payload is) at any of the three byte alignments: the inner part of its
    encoding does not depend on what comes before or after it."""
    raw = text.encode()
    inside = [base64.b64encode(b"\0" * k + raw)[4:-4] for k in range(3)]
    return [raw, json.dumps(text).encode()[1:-1], *inside]


def _found(text: str, haystack: bytes) -> bool:
    return any(v in haystack for v in _variants(text))


def _exchange(th: TestHub) -> dict[str, int]:
    th.register("DEU", "FRA", "POL")
    out: dict[str, int] = {}
    with th.client("DEU") as deu:
        request = {"agreement": AG, "id": "q-1", "type": "request", "kind": "explanation", "to": "FRA"}
        out["request"] = deu.event({**request, "body": REQUEST_SECRET}, seal=True)["index"]
        notice = {
            "agreement": AG,
            "id": "n-1",
            "type": "notification",
            "form": "observation_invitation",
            "to": ["FRA"],
        }
        out["notice"] = deu.event({**notice, "body": NOTICE_SECRET}, seal=True)["index"]
        out["channel"] = deu.open_channel("deu-fra", AG, ["DEU", "FRA"])["index"]
    with th.client("FRA") as fra:
        fra.ack(out["channel"])
        reply = {"agreement": AG, "id": "r-1", "type": "response", "request": "q-1"}
        out["reply"] = fra.event({**reply, "decision": "answer", "body": REPLY_SECRET}, seal=True)[
            "index"
        ]
    with th.client("DEU") as deu:
        out["hotline"] = deu.send("deu-fra", "m-1", "flash", HOTLINE_SECRET)["index"]
    return out


def test_sealed_bodies_and_hotline_are_ciphertext_to_all_but_their_readers(
    store_url: str, tmp_path: Path
) -> None:
    with hub_log(tmp_path / "hub.log") as log_path, running_hub(store_url, tmp_path) as th:
        idx = _exchange(th)
        # The readers open what is theirs.
        with th.client("FRA") as fra:
            assert fra.read_body(fra.entry(idx["request"])) == REQUEST_SECRET
            assert fra.read_body(fra.entry(idx["notice"])) == NOTICE_SECRET
            assert fra.read_hotline(fra.entry(idx["hotline"])) == HOTLINE_SECRET
        with th.client("DEU") as deu:
            assert deu.read_body(deu.entry(idx["reply"])) == REPLY_SECRET
            assert deu.read_body(deu.entry(idx["request"])) == REQUEST_SECRET  # its own copy
        # A third party gets none of them, by any route.
        with th.client("POL") as pol:
            listed = {i["index"] for i in pol.iter_entries()}
            assert not listed & set(idx.values())
            for i in idx.values():
                with pytest.raises((ForbiddenError, NotFoundError)):
                    pol.entry(i)
            leaves = {item["index"]: item for item in pol.leaves(0, 1000)}
            assert all("entry" not in leaves[i] for i in idx.values())
        # The hub's own database and log: no plaintext in any form.
        store = _raw_store_text(store_url)
        logged = log_path.read_bytes()
        assert logged, "the hub logged nothing: the log search would prove nothing"
        for secret in SECRETS:
            assert not _found(secret, store), secret
            assert not _found(secret, logged), secret


def test_the_search_finds_an_unsealed_body(store_url: str, tmp_path: Path) -> None:
    """Control: the same search finds a body that was sent unsealed."""
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as deu:
            doc = {"agreement": AG, "id": "q-open", "type": "request", "kind": "explanation"}
            deu.event({**doc, "to": "FRA", "body": REQUEST_SECRET})
        assert _found(REQUEST_SECRET, _raw_store_text(store_url))
        assert not _found(HOTLINE_SECRET, _raw_store_text(store_url))


def test_a_sealed_body_must_go_to_exactly_its_readers(tmp_path: Path) -> None:
    """A body sealed to fewer (or other) parties than may read the event is refused, and so
    is a sealed body on an event every party reads; the client refuses to seal one."""
    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA", "POL")
        with th.client("DEU") as deu:
            base = {"agreement": AG, "id": "q-2", "type": "request", "kind": "explanation", "to": "FRA"}
            sealed = deu._seal_body({"party": "DEU", **base, "body": "x"})
            size = th.hub.committed
            cts = sealed["sealed_body"]["ciphertexts"]
            assert set(cts) == {"DEU", "FRA"}
            short = {
                **sealed,
                "sealed_body": {**sealed["sealed_body"], "ciphertexts": {"FRA": cts["FRA"]}},
            }
            with pytest.raises(FormatError, match="one ciphertext for each reader"):
                deu.act("application/vnd.cbmnet.event+json", short)
            extra = {**cts, "POL": cts["FRA"]}
            wide = {**sealed, "sealed_body": {**sealed["sealed_body"], "ciphertexts": extra}}
            with pytest.raises(FormatError, match="one ciphertext for each reader"):
                deu.act("application/vnd.cbmnet.event+json", wide)
            both = {**sealed, "body": "plain too"}
            with pytest.raises(FormatError, match="not both"):
                deu.act("application/vnd.cbmnet.event+json", both)
            public = {
                "agreement": AG,
                "id": "n-all",
                "type": "notification",
                "form": "observation_invitation",
                "sealed_body": sealed["sealed_body"],
            }
            with pytest.raises(FormatError, match="read by all"):
                deu.act("application/vnd.cbmnet.event+json", {"party": "DEU", **public})
            with pytest.raises(FormatError, match="only an event for some parties"):
                deu.event({**public, "id": "n-all-2", "body": "x"} | {"sealed_body": None}, seal=True)
            assert th.hub.committed == size  # nothing was logged by the refusals


def test_cli_submit_seal_and_inbox_opens_it(tmp_path: Path) -> None:
    """``cbmnet submit --seal`` seals the body; the addressee's ``cbmnet inbox`` opens it
    with its hotline key, and without the key says why instead of showing ciphertext."""
    from tests.hubcli_helpers import ok

    with running_hub(f"sqlite:///{tmp_path / 'log.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        files = {}
        for p in ("DEU", "FRA"):
            (tmp_path / f"{p}.key").write_text(th.keys[p].signer)
            (tmp_path / f"{p}.hpke").write_text(th.keys[p].enc_private)
            files[p] = {
                "CBMNET_HUB": th.url,
                "CBMNET_PARTY": p,
                "CBMNET_KEY": str(tmp_path / f"{p}.key"),
                "CBMNET_HPKE": str(tmp_path / f"{p}.hpke"),
            }
        doc = {"agreement": AG, "id": "q-cli", "type": "request", "kind": "explanation"}
        (tmp_path / "q.json").write_text(json.dumps({**doc, "to": "FRA", "body": REQUEST_SECRET}))
        ok("submit", str(tmp_path / "q.json"), "--seal", env=files["DEU"])
        assert not _found(REQUEST_SECRET, _raw_store_text(f"sqlite:///{tmp_path / 'log.db'}"))
        line = json.loads(ok("inbox", "--kind", "request", env=files["FRA"]).stdout.splitlines()[0])
        assert line["body"] == REQUEST_SECRET
        no_key = {**files["FRA"], "CBMNET_HPKE": None}
        line = json.loads(ok("inbox", "--kind", "request", env=no_key).stdout.splitlines()[0])
        assert "body" not in line and "no X25519 key" in line["body_error"]
