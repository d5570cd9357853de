"""Observation batches through the hub: signed at the source, hash in the log, rows beside."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from cbmnet.errors import ConflictError, ForbiddenError, FormatError, VerificationError
from tests.hubkit import running_hub

VD = "vienna-document-2011"
ROWS = (
    b"id,time,lon,lat,sensor_id,sensor_kind,object_class,count,confidence\n"
    b"o1,2027-09-01T06:00:00Z,13.40,52.50,sat-7,satellite,battle_tank,12,0.9\n"
)


def test_a_batch_is_logged_by_hash_and_checked_when_fetched(store_url: str, tmp_path: Path) -> None:
    with running_hub(store_url, tmp_path) as th:
        th.register("DEU", "FRA")
        with th.client("DEU") as deu, th.client("FRA") as fra:
            r = deu.submit_observations(VD, "b-1", ROWS, "csv", rows=1)
            meta, data = fra.fetch_observations(r["index"])
            assert data == ROWS and meta["sha256"] == hashlib.sha256(ROWS).hexdigest()
            # The same id again is refused; the rows cannot be swapped after the fact.
            with pytest.raises(ConflictError):
                deu.submit_observations(VD, "b-1", ROWS + b"x", "csv")
            token = deu.token()
            put = httpx.put(
                f"{th.url}/v1/observations/{r['index']}",
                content=ROWS.replace(b"12", b"99"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert put.status_code == 422 and "not the" in put.json()["message"]
            assert fra.fetch_observations(r["index"])[1] == ROWS
            # Only the provider uploads; a served batch that does not match its hash is caught.
            env = deu.sign(
                "application/vnd.cbmnet.observations+json",
                {
                    "act": "observations.batch",
                    "party": "DEU",
                    "agreement": VD,
                    "batch": "b-2",
                    "sha256": hashlib.sha256(ROWS).hexdigest(),
                    "bytes": len(ROWS),
                    "format": "csv",
                },
            )
            r2 = deu.submit(env)
            with pytest.raises(ForbiddenError):
                fra._request("PUT", f"/v1/observations/{r2['index']}", content=ROWS)
            th.hub.rstore.put_batch(
                r2["index"], ROWS.replace(b",12,", b",13,")
            )  # the operator, behind the API
            with pytest.raises(VerificationError, match="not the rows its provider signed"):
                fra.fetch_observations(r2["index"])


def test_cli_submits_and_fetches_a_batch(tmp_path: Path) -> None:
    from tests.hubcli_helpers import cli

    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU", "FRA")
        keys = tmp_path / "k"
        keys.mkdir()
        for p in ("DEU", "FRA"):
            (keys / f"{p}.key").write_text(th.keys[p].signer + "\n")
        rows = tmp_path / "sat-pass-7.csv"
        rows.write_bytes(ROWS)
        env = {"CBMNET_HUB": th.url, "CBMNET_PARTY": "DEU", "CBMNET_KEY": str(keys / "DEU.key")}
        r = cli("observations", "submit", str(rows), "--agreement", VD, env=env)
        assert r.exit_code == 0, r.output
        index = json.loads(r.stdout)["index"]
        out = tmp_path / "fetched.csv"
        fra = {**env, "CBMNET_PARTY": "FRA", "CBMNET_KEY": str(keys / "FRA.key")}
        r = cli("observations", "fetch", str(index), "--out", str(out), env=fra)
        assert r.exit_code == 0, r.output
        assert out.read_bytes() == ROWS and json.loads(r.stdout)["batch"] == "sat-pass-7"
        bad = tmp_path / "rows.txt"
        bad.write_text("x")
        r = cli("observations", "submit", str(bad), "--agreement", VD, env=env)
        assert r.exit_code == 2 and "name it .csv" in r.output and "Traceback" not in r.output


def test_a_batch_with_a_bad_row_is_named_and_never_stored(tmp_path: Path) -> None:
    from tests.hubcli_helpers import cli

    bad = ROWS + b"o2,2027-09-01T06:05:00Z,13.41,52.51,sat-7,satellite,battle_tank,0,0.9\n"
    with running_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path) as th:
        th.register("DEU")
        with th.client("DEU") as deu:
            size = deu.entries()["next"]
            with pytest.raises(FormatError, match=r"batch \d+.*row 2.*'count'"):
                deu.submit_observations(VD, "b-bad", bad, "csv")
            # The act was logged (the provider signed it) but no row of the file was kept.
            index = deu.entries()["next"]
            assert index == size + 1
            assert th.hub.rstore.get_batch(index) is None
        key = tmp_path / "DEU.key"
        key.write_text(th.keys["DEU"].signer + "\n")
        f = tmp_path / "bad.csv"
        f.write_bytes(bad)
        env = {"CBMNET_HUB": th.url, "CBMNET_PARTY": "DEU", "CBMNET_KEY": str(key)}
        before = th.hub.sync()
        r = cli("observations", "submit", str(f), "--agreement", VD, env=env)
        assert r.exit_code == 2 and "'count'" in r.output and "Traceback" not in r.output
        assert th.hub.sync() == before  # refused before anything was signed or sent
