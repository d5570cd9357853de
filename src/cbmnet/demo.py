"""``make demo``: a witnessed log of signed CBM acts, built and checked end to end.

Until the hub and dashboard land, the demo plays a short India-Pakistan style exchange on
a local SQLite log: each party signs its acts with its own key, the log integrates them
and signs checkpoints, each party's witness cosigns only what is consistent with what it
saw before, and a receipt is verified offline under a "both witnesses" policy. It then
shows what tampering looks like to an audit. Everything lands in ``demo-data/``.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

from cbmnet.errors import VerificationError
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.ledger.policy import parse_policy
from cbmnet.ledger.tlogproof import format_add_checkpoint, format_proof, verify_entry_proof
from cbmnet.log.audit import audit_log
from cbmnet.log.service import TransparencyLog
from cbmnet.log.witness import Witness
from cbmnet.store import open_store

EVENT_TYPE = "application/vnd.cbmnet.event+json"
ORIGIN = "hub.cbmnet.example/log"


def _event(**fields: object) -> bytes:
    return json.dumps(fields, sort_keys=True).encode()


def main(out: Path = Path("demo-data")) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "keys").mkdir(parents=True)
    say = print

    def key(name: str) -> str:
        skey, vkey = generate_key(name)
        (out / "keys" / f"{name.replace('/', '_')}.vkey").write_text(vkey + "\n")
        return skey

    log_key = key(ORIGIN)
    parties = {p: key(f"{p.lower()}.cbmnet.example") for p in ("IND", "PAK")}
    witnesses = {p: key(f"witness.{p.lower()}.cbmnet.example") for p in ("IND", "PAK")}
    pubs = [parse_signer_key(k).public_key for k in parties.values()]

    db = out / "log.db"
    tlog = TransparencyLog.create(open_store(f"sqlite:///{db}", create=True), log_key)
    say(f"log {tlog.origin} on SQLite at {db}")
    say(f"  log key {tlog.vkey}")

    acts = [
        (
            "IND",
            _event(
                id="IND-N-001",
                type="notification",
                party="IND",
                form="prior_notification",
                activity="IND-EX-07",
                agreement="IN-PK-1991-exercises",
                to=["PAK"],
            ),
        ),
        (
            "PAK",
            _event(
                id="PAK-R-001",
                type="response",
                party="PAK",
                request="IND-N-001",
                decision="answer",
                reason="received",
            ),
        ),
        (
            "PAK",
            _event(
                id="PAK-Q-001",
                type="request",
                party="PAK",
                kind="explanation",
                to="IND",
                activity="IND-EX-07",
            ),
        ),
        (
            "IND",
            _event(
                id="IND-R-002",
                type="response",
                party="IND",
                request="PAK-Q-001",
                decision="answer",
                reason="routine annual exercise, 35 km from the border",
            ),
        ),
    ]
    cosigners = {p: parse_signer_key(k).cosigner_verifier_key for p, k in witnesses.items()}
    wits = {
        p: Witness(open_store(f"sqlite:///{out / f'witness-{p}.db'}", create=True), k, [tlog.vkey])
        for p, k in witnesses.items()
    }
    held = dict.fromkeys(wits, 0)
    for n, (party, payload) in enumerate(acts, start=1):
        envelope = dsse.sign(EVENT_TYPE, payload, [parties[party]])
        r = tlog.append(envelope, pubs)
        say(f"{party} signs {json.loads(payload)['id']}: logged as entry {r.index}")
        if n % 2 == 0:
            cp = tlog.checkpoint()
            for p, w in wits.items():
                lines = w.add_checkpoint(format_add_checkpoint(tlog.witness_request(held[p])))
                tlog.add_cosignatures(cp.size, lines, [cosigners[p]])
                held[p] = cp.size
            say(f"checkpoint of size {cp.size} signed by the log, cosigned by both witnesses")

    again = tlog.append(dsse.sign(EVENT_TYPE, acts[0][1], [parties["IND"]]), pubs)
    say(f"resubmitting IND-N-001 returns entry {again.index} (duplicate: {again.duplicate})")

    policy_text = (
        f"log {tlog.vkey}\n"
        + "".join(f"witness {p} {v}\n" for p, v in cosigners.items())
        + "group parties all IND PAK\nquorum parties\n"
    )
    (out / "policy.txt").write_text(policy_text)
    proof = format_proof(tlog.proof_bundle(2))
    (out / "entry-2.tlog-proof").write_text(proof)
    got = verify_entry_proof(proof, parse_policy(policy_text))
    say(
        f"offline receipt for entry 2: integrated {got.entry.integrated_at}, "
        f"cosigned by {', '.join(sorted(got.agreed.cosigned_by))}"
    )
    report = audit_log(tlog.store, tlog.vkey)
    say(f"audit: {report.size} entries, {report.checkpoints} checkpoints, all consistent")
    tlog.store.close()

    # Tamper on a copy, behind the log's back: make PAK's answer say "refused".
    copy = out / "tampered.db"
    shutil.copy(db, copy)
    con = sqlite3.connect(copy)
    row = con.execute("SELECT envelope FROM log_entries WHERE idx = 1").fetchone()
    doc = json.loads(row[0])
    said = base64.b64decode(doc["payload"]).replace(b"received", b"refused")
    doc["payload"] = base64.b64encode(said).decode()
    con.execute(
        "UPDATE log_entries SET envelope = ? WHERE idx = 1",
        (json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),),
    )
    con.commit()
    con.close()
    try:
        audit_log(open_store(f"sqlite:///{copy}"))
        say("tampered copy: audit passed (this would be a bug)")
    except VerificationError as e:
        say(f"tampered copy {copy}: {e}")

    say("")
    say("Try it yourself:")
    say(f"  .venv/bin/cbmnet log info --db sqlite:///{db}")
    say(f"  .venv/bin/cbmnet log verify-proof {out}/entry-2.tlog-proof --policy {out}/policy.txt")
    say(f"  .venv/bin/cbmnet log audit --db sqlite:///{db}")
    say(f"  .venv/bin/cbmnet log audit --db sqlite:///{copy}")
    say("The hub, its dashboard and the simulated scenario come with the next issues.")


if __name__ == "__main__":
    main()
