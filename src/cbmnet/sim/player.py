"""Play a plan against a hub, each party signing with its own key, paced by ``speed``.

The secretariat registers the parties (their keys generated into a folder, or reused from
it), then every step is sent through :class:`HubClient` at ``t0 + day * 86400 / speed``:
the hub stamps wall-clock integration times, so pacing is all the compression needs.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbmnet.acts.model import PT_ACK, PT_HOTLINE
from cbmnet.communication import hotline
from cbmnet.communication.hotline import generate_encryption_key
from cbmnet.ledger import dsse
from cbmnet.ledger.note import generate_key, parse_signer_key
from cbmnet.party.client import HubClient, Identity
from cbmnet.sim.scenarios import Plan, Step

Say = Callable[[str], None]


@dataclass
class Summary:
    """What was sent (by kind, and every act's payload in order) and what must follow."""

    acts: Counter[str] = field(default_factory=Counter)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    indices: dict[str, int] = field(default_factory=dict)
    """Event, hotline message and ``channel:`` ids -> log index."""
    quotas: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Party:
    identity: Identity
    vkey: str
    enc_public: str
    witness_key: str
    folder: Path
    """Where its keys live; its witness keeps its state there too."""


def _keys(folder: Path, party: str) -> _Party:
    """A party's signer, X25519 and witness keys from ``folder``, generated when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"{party}.json"
    if f.exists():
        doc = json.loads(f.read_text())
    else:
        host = f"{party.lower()}.exercise.cbmnet.example"
        skey, vkey = generate_key(host)
        ep, eq = generate_encryption_key()
        wkey, _ = generate_key(f"witness.{host}")
        doc = {"signer": skey, "vkey": vkey, "enc_private": ep, "enc_public": eq, "witness": wkey}
        f.touch(mode=0o600)
        f.write_text(json.dumps(doc, indent=1) + "\n")
    ident = Identity(party, doc["signer"], doc["enc_private"])
    return _Party(ident, doc["vkey"], doc["enc_public"], doc["witness"], folder)


def play(
    plan: Plan,
    url: str,
    secretariat: Identity,
    keys_dir: Path,
    *,
    speed: float = 86400.0,
    say: Say | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Register the plan's parties, then send each step on its simulated day."""
    out = Summary(expected=list(plan.expected))
    note = say or (lambda _m: None)
    keys = {q: _keys(keys_dir, q) for q in plan.parties}
    clients: dict[str, HubClient] = {"secretariat": HubClient(url, secretariat)}
    try:
        sec = clients["secretariat"]
        served = set(sec.info()["agreements"])
        agreements = [a for a in plan.agreements if a in served]
        if plan.agreements[0] not in served:
            from cbmnet.errors import NotFoundError

            raise NotFoundError(f"the hub at {url} does not serve {plan.agreements[0]!r}")
        known = {p["id"] for p in sec.parties()}
        for q, k in keys.items():
            if q in known:
                continue
            doc = {
                "act": "party.register",
                "party": q,
                "name": plan.names.get(q, f"State {q}") + " (EXERCISE)",
                "agreements": agreements,
                "signing_key": k.vkey,
                "encryption_key": k.enc_public,
                "witness_key": parse_signer_key(k.witness_key).cosigner_verifier_key,
                "contact": {"poc": f"EXERCISE verification centre of {q}"},
                "exercise": True,
            }
            _record(out, "party.register", doc, sec.act("application/vnd.cbmnet.registry+json", doc))
        note(f"secretariat registered {len(keys)} parties for {', '.join(agreements)}")
        for q, k in keys.items():
            clients[q] = HubClient(url, k.identity)
        t0 = time.monotonic()
        steps = [s for s in plan.steps if s.doc.get("agreement", agreements[0]) in served]
        for i, step in enumerate(steps):
            wait = t0 + step.day * 86400.0 / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            _play_step(step, clients, keys, out, note)
            if progress is not None:
                progress(i + 1, len(steps))
    finally:
        for c in clients.values():
            c.close()
    return out


def _record(out: Summary, kind: str, doc: dict[str, Any], receipt: dict[str, Any]) -> None:
    out.acts[kind] += 1
    out.payloads.append(doc)
    key = doc.get("id")
    if kind == "channel.open":
        key = f"channel:{doc['channel']}"
    if isinstance(key, str) and kind != "ack":
        out.indices[key] = int(receipt["index"])


def _play_step(
    step: Step, clients: dict[str, HubClient], keys: dict[str, _Party], out: Summary, say: Say
) -> None:
    c = clients[step.actor]
    d = dict(step.doc)
    if step.kind == "event":
        doc = {"party": step.actor, **d}
        _record(
            out,
            f"event.{d['type']}",
            doc,
            c.act("application/vnd.cbmnet.event+json", doc, proof=False),
        )
    elif step.kind == "ack":
        index = out.indices[d["ref"]]
        env = dsse.parse(json.dumps(c.entry(index)["envelope"]).encode())
        doc = {
            "act": "ack",
            "entry": index,
            "party": step.actor,
            "statement": env.statement_digest().hex(),
            "exercise": True,
        }
        _record(out, "ack", doc, c.act(PT_ACK, doc, proof=False))
    elif step.kind == "channel":
        doc = {"act": "channel.open", "party": step.actor, **d, "exercise": True}
        _record(out, "channel.open", doc, c.act(PT_HOTLINE, doc, proof=False))
    elif step.kind == "hotline":
        members = c.member_keys(d["channel"])
        assert c.identity is not None
        bind = hotline.info(c.info()["origin"], d["channel"], d["id"], step.actor)
        doc = {
            "act": "hotline.message",
            "party": step.actor,
            "channel": d["channel"],
            "id": d["id"],
            "precedence": d["precedence"],
            "exercise": True,
            "suite": hotline.SUITE_NAME,
            "ciphertexts": hotline.seal(d["text"].encode(), members, bind),
        }
        receipt = c.submit(c.sign(PT_HOTLINE, doc), proof=False)
        # Ciphertexts are random per send: the plaintext is the record's content.
        _record(
            out,
            "hotline.message",
            {**{k: v for k, v in doc.items() if k != "ciphertexts"}, "text": d["text"]},
            receipt,
        )
    elif step.kind == "inspection":
        req = d["request"]
        quota = c.quota(req["agreement"], d["host"], req["kind"])
        out.quotas.append({"request": req["id"], **quota})
        doc = {"party": step.actor, **req}
        _record(out, "event.request", doc, c.act("application/vnd.cbmnet.event+json", doc, proof=False))
        host = clients[d["host"]]
        if d["policy"] == "auto":  # the host decides on its own reading of its quota
            quota = host.request_quota(req["agreement"], req["id"])
            out.quotas.append({"request": req["id"], "asked_by": "host", **quota})
        accept = d["policy"] == "accept" or (d["policy"] == "auto" and quota.get("obliged"))
        answer = {
            "party": d["host"],
            "agreement": req["agreement"],
            "id": f"{req['id']}-r",
            "type": "response",
            "request": req["id"],
            "decision": "accept" if accept else "refuse",
            "exercise": True,
            "body": "EXERCISE EXERCISE EXERCISE. "
            + ("Inspection accepted." if accept else f"Refused: {quota.get('reason') or 'declined'}."),
        }
        _record(
            out,
            "event.response",
            answer,
            host.act("application/vnd.cbmnet.event+json", answer, proof=False),
        )
        say(
            f"{step.actor} asked {d['host']} for an inspection "
            f"(obliged: {quota.get('obliged')}): {answer['decision']}"
        )
    elif step.kind == "observations":
        data = d["csv"].encode()
        r = c.submit_observations(d["agreement"], d["batch"], data, "csv", exercise=True)
        out.acts["observations.batch"] += 1
        out.payloads.append(
            {"act": "observations.batch", "party": step.actor, "batch": d["batch"], "csv": d["csv"]}
        )
        out.indices[d["batch"]] = int(r["index"])
        rows = data.count(b"\n") - 1
        say(f"{step.actor} submitted observations {d['batch']} ({rows} rows)")
    elif step.kind == "witness":
        _witness(c, [keys[q] for q in d["parties"]], out, say)
    else:  # pragma: no cover - plans are built here
        raise ValueError(f"unknown step kind {step.kind!r}")


def _witness(c: HubClient, parties: list[_Party], out: Summary, say: Say) -> None:
    """Each party's witness checks the log grew consistently and cosigns its checkpoint."""
    from cbmnet.party.witness import Witness, witness_hub
    from cbmnet.store import open_store

    vkey = c.info()["log_vkey"]
    for k in parties:
        store = open_store(f"sqlite:///{k.folder / f'witness-{k.identity.party}.db'}", create=True)
        try:
            with HubClient(c.url) as anon:
                r = witness_hub(anon, Witness(store, k.witness_key, [vkey]))
            out.acts["witness.cosign"] += 1
            say(f"witness of {k.identity.party} cosigned size {r.size}")
        finally:
            store.close()
