"""``make demo``: a hub on SQLite, two parties and a secretariat playing a short scenario.

Until the dashboard and the simulator land (issue 6), the demo plays an India-Pakistan
exchange over real HTTP and WebSocket on loopback: the secretariat registers both states;
India declares an exercise and notifies it, Pakistan acknowledges with a signed act;
Pakistan notifies a missile-test window; a FLASH hotline message, end-to-end encrypted,
is pushed to Pakistan and acknowledged; both parties' witnesses cosign the log over HTTP;
a receipt is verified offline under a "both witnesses" policy; an outside audit
recomputes the log; a tampered copy is caught. Then the hub keeps serving (its URL and
API docs printed) until Ctrl-C, so the CLI can be tried against it. Everything lands in
``demo-data/``. ``--once`` (or ``CBMNET_DEMO_EXIT=1``) stops after the scenario.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cbmnet.agreements.loader import bundled
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.errors import VerificationError
from cbmnet.hub.app import create_app
from cbmnet.hub.server import ServerThread
from cbmnet.hub.service import Hub, HubSettings, init_hub
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.ledger.policy import parse_policy
from cbmnet.ledger.tlogproof import verify_entry_proof
from cbmnet.log.audit import audit_log
from cbmnet.party.audit import audit_hub
from cbmnet.party.client import HubClient, Identity
from cbmnet.party.witness import Witness, witness_hub
from cbmnet.store import open_store

ORIGIN = "hub.cbmnet.example/log"
AGREEMENTS = ("india-pakistan-military-exercises-1991", "india-pakistan-missile-tests-2005")
EXERCISES, MISSILES = AGREEMENTS
SIMULATED = ("vienna-document-2011", "osce-ict-cbm-2016")
"""Served too: the simulator plays a Vienna Document exercise among five States on them."""


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(path: Path, text: str, private: bool = False) -> Path:
    path.write_text(text + "\n")
    if private:
        path.chmod(0o600)
    return path


def main(out: Path = Path("demo-data"), *, once: bool = False, port: int = 8000) -> None:
    once = once or os.environ.get("CBMNET_DEMO_EXIT") == "1" or "--once" in sys.argv[1:]
    if out.exists():
        shutil.rmtree(out)
    keys = out / "keys"
    keys.mkdir(parents=True)
    say = print

    sec_skey, sec_vkey = generate_key("secretariat.cbmnet.example")
    _write(keys / "secretariat.key", sec_skey, private=True)
    parties: dict[str, dict[str, str]] = {}
    for p in ("IND", "PAK"):
        skey, vkey = generate_key(f"{p.lower()}.cbmnet.example")
        wkey, _ = generate_key(f"witness.{p.lower()}.cbmnet.example")
        epriv, epub = generate_encryption_key()
        parties[p] = {"skey": skey, "vkey": vkey, "wkey": wkey, "epriv": epriv, "epub": epub}
        _write(keys / f"{p}.key", skey, private=True)
        _write(keys / f"{p}.vkey", vkey)
        _write(keys / f"{p}.hpke", epriv, private=True)
        _write(keys / f"witness-{p}.key", wkey, private=True)

    url = f"sqlite:///{out / 'hub.db'}"
    hub_keys = init_hub(
        url,
        keys / "hub",
        origin=ORIGIN,
        secretariat_vkey=sec_vkey,
        agreements=[bundled(a) for a in (*AGREEMENTS, *SIMULATED)],
    )
    hub = Hub(url, hub_keys, HubSettings(sweep_s=5, checkpoint_s=1))
    try:
        server = ServerThread(create_app(hub), port=port)
    except OSError:
        server = ServerThread(create_app(hub), port=0)  # 8000 is taken: any free port
    base = server.start()
    say(f"hub {ORIGIN} serving {', '.join((*AGREEMENTS, *SIMULATED))} at {base}")
    say(f"  data in {out}/ (reset at every run; SQLite {out / 'hub.db'})")
    try:
        _scenario(base, hub, out, sec_skey, parties, say)
        vd_party, vd_key = _exercise(base, out, sec_skey, say)
        say("")
        say(f"The hub is running at {base}  (API: {base}/docs, {base}/openapi.json)")
        from cbmnet.cli.hub import signin_link

        with HubClient(base, Identity("PAK", parties["PAK"]["skey"])) as pak:
            say(f"Dashboard, sign in as PAK (one use, within a minute): {signin_link(pak)}")
        with HubClient(base, Identity("secretariat", sec_skey)) as sec:
            say(f"  ... as the secretariat (the aggregate view): {signin_link(sec)}")
        say("  a fresh link any time: .venv/bin/cbmnet dashboard login  (with the environment below)")
        say(
            f"File an act from the browser: 'File an act' ({base}/dashboard/file). As PAK, pick"
            f" {EXERCISES}, load {keys}/PAK.key, declare an exercise, then its notice: the page"
            " says which deadline it meets or misses before you sign."
        )
        with HubClient(base, Identity(vd_party, vd_key.read_text().strip())) as vd:
            say(f"  Vienna Document, as {vd_party} (load {vd_key}): {signin_link(vd)}")
        say(
            f"  pages: Overview, Deadlines (.ics), Map, Notifications and exchanges, Hotline,"
            f" Inspections and quotas, Log; on Hotline, load {keys}/PAK.key (to acknowledge)"
            f" and {keys}/PAK.hpke (to open messages): keys stay in the page"
        )
        say("Try, in another terminal:")
        say(f"  export CBMNET_HUB={base} CBMNET_PARTY=PAK \\")
        say(f"         CBMNET_KEY={keys}/PAK.key CBMNET_HPKE={keys}/PAK.hpke \\")
        say(f"         CBMNET_PINS={keys}/hub/hub.json")
        say("  .venv/bin/cbmnet inbox")
        say(f"  .venv/bin/cbmnet obligations --agreement {EXERCISES}")
        say("  .venv/bin/cbmnet hotline listen --ack   # as IND: cbmnet hotline send ind-pak ...")
        say(f"  .venv/bin/cbmnet log audit --hub {base} --vkey {keys}/hub/log.vkey")
        say(
            f"  .venv/bin/cbmnet mirror --log {keys}/hub/log.vkey --db sqlite:///demo-data/pak-mirror.db"
            " --port 8100 &   # PAK's own verified copy (docs/adr/0012)"
        )
        say(
            "  CBMNET_HUB=http://127.0.0.1:8100 .venv/bin/cbmnet inbox   # from the mirror,"
            " with the hub stopped too; and dashboard login"
        )
        if once:
            return
        say("Ctrl-C stops the hub.")
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly on TERM as on Ctrl-C
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        server.stop()
        hub.close()


def _exercise(base: str, out: Path, sec_skey: str, say: Any) -> tuple[str, Path]:
    """The Vienna Document scenario of ``cbmnet simulate``, every record marked EXERCISE.

    Answers its first participating State and that State's signer key file, written for
    the browser (the simulator keeps its keys as JSON), so the walkthrough can go on in
    the dashboard's forms."""
    from rich.console import Console
    from rich.progress import Progress

    from cbmnet.sim import build, play

    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    plan = build("vienna-document", 1, parties=5, days=20, anchor_ms=int(day.timestamp() * 1000))
    say("")
    among = ", ".join(plan.parties)
    say(f"EXERCISE: the Vienna Document scenario among {among} ({len(plan.steps)} steps)")
    with Progress(console=Console(), transient=True) as bar:
        task = bar.add_task("simulating", total=len(plan.steps))
        summary = play(
            plan,
            base,
            Identity("secretariat", sec_skey),
            out / "keys" / "exercise",
            speed=4_000_000.0,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    acts = sum(summary.acts.values())
    say(f"  {acts} acts logged; findings it was built to produce: {len(summary.expected)}")
    first = plan.parties[0]
    folder = out / "keys" / "exercise"
    signer = json.loads((folder / f"{first}.json").read_text())["signer"]
    key_file = _write(folder / f"{first}.key", signer, private=True)
    return first, key_file


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _scenario(
    base: str, hub: Hub, out: Path, sec_skey: str, parties: dict[str, dict[str, str]], say: Any
) -> None:
    with HubClient(base, Identity("secretariat", sec_skey)) as sec:
        for p, k in parties.items():
            sec.register(
                {
                    "party": p,
                    "name": {"IND": "Republic of India", "PAK": "Islamic Republic of Pakistan"}[p],
                    "agreements": list(AGREEMENTS),
                    "signing_key": k["vkey"],
                    "encryption_key": k["epub"],
                    "witness_key": parse_signer_key(k["wkey"]).cosigner_verifier_key,
                    "contact": {"poc": f"{p} verification centre"},
                }
            )
        say("secretariat registered IND and PAK (keys, HPKE keys, witness keys, contact points)")

    ind = HubClient(base, Identity("IND", parties["IND"]["skey"], parties["IND"]["epriv"]))
    pak = HubClient(base, Identity("PAK", parties["PAK"]["skey"], parties["PAK"]["epriv"]))
    try:
        now = datetime.now(UTC)
        start = now + timedelta(days=75)
        ind.event(
            {
                "agreement": EXERCISES,
                "id": "ind-ex-1",
                "type": "activity",
                "start": _iso(start),
                "end": _iso(start + timedelta(days=6)),
                "category": "land",
                "formation": "corps",
                "size": {"troops": 45000},
                "location": {"type": "Point", "coordinates": [74.9, 31.2]},
            }
        )
        note = ind.event(
            {
                "agreement": EXERCISES,
                "id": "ind-notice-1",
                "type": "notification",
                "form": "exercise_notice",
                "activity": "ind-ex-1",
                "body": "Corps-level exercise near Amritsar, 45,000 troops.",
            }
        )
        (out / "ind-notice-1.tlog-proof").write_text(note["tlog_proof"])
        say(f"IND notified corps exercise ind-ex-1: entry {note['index']} at {note['integrated_at']}")
        seen = [i for i in pak.inbox(agreement=EXERCISES)["items"] if i["event_id"] == "ind-notice-1"]
        ack = pak.ack(seen[0]["index"])
        st = ind.status(note["index"])["addressees"]["PAK"]
        say(f"PAK: delivered at {st['delivered_ms']} ms (the hub's word),")
        say(f"     acknowledged by signed entry {ack['index']} (PAK's word)")

        window = now + timedelta(days=4)
        launch = pak.event(
            {
                "agreement": MISSILES,
                "id": "pak-launch-1",
                "type": "notification",
                "form": "launch_notification",
                "window_start": _iso(window),
                "window_end": _iso(window + timedelta(days=3)),
                "impact": {
                    "type": "Polygon",
                    "coordinates": [
                        [[62.5, 21.0], [63.5, 21.0], [63.5, 22.0], [62.5, 22.0], [62.5, 21.0]]
                    ],
                },
                "body": "Surface-to-surface ballistic missile test, impact area in the Arabian Sea.",
            }
        )
        say(f"PAK notified a launch window: entry {launch['index']}")

        opened = ind.open_channel("ind-pak", EXERCISES, ["IND", "PAK"])
        pak.ack(opened["index"])  # PAK agrees to the channel: its deadlines now bind PAK
        latency = asyncio.run(_flash(ind, pak, say))
        say(f"FLASH hotline message, HPKE-sealed to both members, pushed to PAK in {latency:.1f} ms")
        report = ind.obligations(EXERCISES)
        owed = [o for o in report["obligations"] if o["party"] == "IND"]
        say(f"compliance view (IND): {[(o['id'], o['status']) for o in owed]}")
    finally:
        ind.close()
        pak.close()

    # Each party's witness cosigns what it checked: consistent with what it cosigned before.
    hub.checkpoint_if_grown()
    vkeys = [hub.log.vkey]
    cosigners = []
    for p, k in parties.items():
        store = open_store(f"sqlite:///{out / f'witness-{p}.db'}", create=True)
        try:
            with HubClient(base) as c:
                r = witness_hub(c, Witness(store, k["wkey"], vkeys))
            say(f"witness of {p} cosigned size {r.size}")
        finally:
            store.close()
        cosigners.append((p, parse_signer_key(k["wkey"]).cosigner_verifier_key))
    policy_text = (
        f"log {hub.log.vkey}\n"
        + "".join(f"witness {p} {v}\n" for p, v in cosigners)
        + "group both all IND PAK\nquorum both\n"
    )
    _write(out / "policy.txt", policy_text.rstrip("\n"))
    with HubClient(base, Identity("IND", parties["IND"]["skey"])) as ind_reader:
        proof = ind_reader._request("GET", f"/v1/entries/{note['index']}/proof").text
    (out / "ind-notice-1.tlog-proof").write_text(proof)
    verified = verify_entry_proof(proof, parse_policy(policy_text))
    say(f"receipt of entry {verified.index} verified offline under 'both witnesses' ({out}/policy.txt)")

    with HubClient(base, Identity("PAK", parties["PAK"]["skey"])) as auditor:
        rep = audit_hub(auditor, hub.log.vkey, out / "audit-state-PAK.json")
    say(
        f"PAK's outside audit: {rep.size} entries, {rep.checkpoints} checkpoints and "
        f"{rep.cosignatures} cosignatures recomputed and verified; the {rep.entries_checked} "
        "entries PAK may read checked against their authors' keys"
    )

    # Tamper with a copy behind the hub's back: PAK's acknowledgement now says another entry.
    copy = out / "tampered.db"
    shutil.copy(out / "hub.db", copy)
    for extra in ("-wal", "-shm"):
        if (out / f"hub.db{extra}").exists():
            shutil.copy(out / f"hub.db{extra}", out / f"tampered.db{extra}")
    con = sqlite3.connect(copy)
    row = con.execute("SELECT envelope FROM log_entries WHERE idx = ?", (ack["index"],)).fetchone()
    doc = json.loads(row[0])
    said = base64.b64decode(doc["payload"]).replace(b'"entry":', b'"entry":1')
    doc["payload"] = base64.b64encode(said).decode()
    con.execute(
        "UPDATE log_entries SET envelope = ? WHERE idx = ?",
        (json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), ack["index"]),
    )
    con.commit()
    con.close()
    tampered = open_store(f"sqlite:///{copy}")
    try:
        audit_log(tampered)
        say("tampered copy: audit passed (this would be a bug)")
    except VerificationError as e:
        say(f"tampered copy {copy}: {e}")
    finally:
        tampered.close()


async def _flash(ind: HubClient, pak: HubClient, say: Any) -> float:
    after = pak.entries()["next"]
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def listen() -> None:
        async for item in pak.stream(after=after):
            if item["kind"] == "hotline.message":
                got.set_result(time.perf_counter())
                text = pak.read_hotline(item)
                pak.ack(item["index"])
                say(f"PAK decrypted: {text!r} and acknowledged it")
                return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    sent = time.perf_counter()
    await asyncio.to_thread(
        ind.send,
        "ind-pak",
        "flash-1",
        "flash",
        "FLASH: unscheduled launch detected, is it yours?",
        proof=False,
    )
    arrived = await asyncio.wait_for(got, 10)
    await asyncio.wait_for(task, 10)
    return (arrived - sent) * 1000


if __name__ == "__main__":
    main()
