"""A party's (or the secretariat's) client of a cbmnet hub: sign locally, send, verify.

The client never sends a private key anywhere. It signs acts and auth challenges itself,
checks the receipts the hub returns (the inclusion proof against the log's key it
pinned), and decrypts hotline bodies with its own X25519 key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from bisect import bisect_right
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from cbmnet.acts.model import (
    PT_ACK,
    PT_EVENT,
    PT_HOTLINE,
    PT_OBSERVATIONS,
    PT_REGISTRY,
    REGISTRY_ACTS,
    SECRETARIAT,
    Act,
    read_act,
)
from cbmnet.acts.registry import Registry, majority_policy_text
from cbmnet.acts.signin import mirror_origin, signed_message
from cbmnet.acts.state import act_json
from cbmnet.communication import hotline
from cbmnet.errors import (
    AuthError,
    CbmnetError,
    ConflictError,
    ForbiddenError,
    FormatError,
    NotFoundError,
    PolicyError,
    RateLimitedError,
    StoreError,
    TooLargeError,
    VerificationError,
)
from cbmnet.ledger import dsse
from cbmnet.ledger.checkpoint import Checkpoint
from cbmnet.ledger.merkle import verify_consistency
from cbmnet.ledger.note import parse_signer_key, parse_verifier_key
from cbmnet.ledger.policy import parse_policy, single_log_policy, verify_checkpoint
from cbmnet.ledger.tlogproof import verify_entry_proof
from cbmnet.log.evidence import unreadable_act

_BY_STATUS: dict[int, type[CbmnetError]] = {
    400: FormatError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: VerificationError,
    429: RateLimitedError,
}


def _raise_for(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    cls = _BY_STATUS.get(r.status_code, StoreError)
    if r.status_code == 409 and r.headers.get("content-type", "").startswith("text/x.tlog.size"):
        text = r.text.strip()
        size = int(text) if text.isdigit() and len(text) < 20 else None
        raise ConflictError(f"hub answered 409: its latest size is {text[:40]}", current_size=size)
    msg = r.text[:500]
    try:
        doc = r.json()
        if isinstance(doc, dict) and doc.get("message"):
            msg = str(doc["message"])
    except ValueError:
        pass
    raise cls(f"hub answered {r.status_code}: {msg}")


@dataclass
class Identity:
    """Who the client acts as: a party id (or ``secretariat``) and its signer key."""

    party: str
    signer_key: str
    encryption_key: str | None = None
    """Base64 X25519 private key, to open hotline bodies."""

    @property
    def public_key(self) -> bytes:
        return parse_signer_key(self.signer_key).public_key


@dataclass(frozen=True)
class Pins:
    """What a party knows of its hub from outside the hub (``hub.json`` from the secretariat).

    With pins, the client trusts nothing the hub says about itself or about keys: the
    hub's identity must match, and party keys come from registry acts verified under the
    pinned secretariat key, not from the hub's ``/v1/parties`` answer.
    """

    origin: str
    log_vkey: str
    secretariat_vkey: str

    @classmethod
    def load(cls, path: str) -> Pins:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            return cls(str(doc["origin"]), str(doc["log_vkey"]), str(doc["secretariat_vkey"]))
        except OSError as e:
            raise FormatError(f"{path}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise FormatError(f"{path}: not a hub pin file ({e!r})") from None


@dataclass
class _Keys:
    history: list[tuple[bytes, int, int | None]]
    """(key, since index, until index or None)."""
    encryption_key: bytes


class HubClient:
    def __init__(
        self,
        url: str,
        identity: Identity | None = None,
        *,
        timeout: float = 30.0,
        pins: Pins | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self.pins = pins
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None
        self._info: dict[str, Any] | None = None
        self._pending: dict[str, tuple[int, str]] = {}
        """Party -> (index, why): a registration or key change not yet witnessed."""
        self._proofs: dict[int, tuple[bytes, Checkpoint]] = {}
        """Registry entries read from a verified inclusion proof: envelope, its checkpoint."""
        self._agreed: tuple[int, Checkpoint | None] = (-1, None)
        """(seq before it, the newest checkpoint found cosigned by a witness majority)."""
        self._consistent: set[tuple[int, bytes, int, bytes]] = set()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        try:
            r = self._http.request(method, path, headers=headers, **kw)
            if r.status_code == 401 and auth and self._token is not None:
                self._token = None  # expired: sign a new challenge once
                headers["Authorization"] = f"Bearer {self.token()}"
                r = self._http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as e:
            raise StoreError(f"cannot reach the hub at {self.url}: {e}") from None
        _raise_for(r)
        return r

    def info(self) -> dict[str, Any]:
        """The hub's identity; with pins, refused unless it is the pinned one."""
        if self._info is None:
            info = self._request("GET", "/v1/hub", auth=False).json()
            if self.pins is not None:
                for fld in ("origin", "log_vkey", "secretariat_vkey"):
                    if info.get(fld) != getattr(self.pins, fld):
                        raise VerificationError(
                            f"the hub at {self.url} is not the pinned hub: its {fld} differs"
                        )
            self._info = info
        return self._info

    def forget_token(self) -> None:
        """The next ``token()`` signs a new challenge (the hub refused the last one: expired)."""
        self._token = None

    def token(self) -> str:
        """Sign the hub's challenge with our key; the token lasts minutes, not a session."""
        if self._token is None:
            if self.identity is None:
                raise AuthError("no identity: give a party id and its key")
            ch = self._request(
                "POST", "/v1/auth/challenge", auth=False, json={"party": self.identity.party}
            )
            doc = ch.json()
            # Sign only a challenge for this hub's log (a rogue hub cannot relay another's).
            challenge = doc.get("challenge")
            info = self.info()
            # A mirror signs its party in under its own name, which no hub accepts.
            origin = mirror_origin(info["origin"]) if info.get("mirror") is True else info["origin"]
            if doc.get("origin") != origin or not (
                isinstance(challenge, str) and len(challenge) < 1024 and challenge.count(".") == 1
            ):
                raise VerificationError("the hub's challenge is not one for its own log; not signing")
            key = parse_signer_key(self.identity.signer_key).private_key
            sig = key.sign(signed_message(doc["origin"], doc["challenge"]))
            r = self._request(
                "POST",
                "/v1/auth/token",
                auth=False,
                json={"challenge": doc["challenge"], "signature": base64.b64encode(sig).decode()},
            )
            self._token = r.json()["token"]
        assert self._token is not None
        return self._token

    # ---- acts -----------------------------------------------------------------------------

    def sign(self, payload_type: str, doc: Mapping[str, Any]) -> bytes:
        if self.identity is None:
            raise AuthError("no identity to sign with")
        return dsse.sign(payload_type, act_json(doc), [self.identity.signer_key])

    def submit(self, envelope: bytes, *, proof: bool = True) -> dict[str, Any]:
        """Send a signed act; with ``proof``, check the receipt's proof against the log key."""
        r = self._request(
            "POST",
            "/v1/acts",
            auth=False,
            params={"proof": str(proof).lower()},
            content=envelope,
            headers={"Content-Type": "application/json"},
        )
        receipt: dict[str, Any] = r.json()
        if proof:
            self.verify_receipt(receipt, envelope)
        return receipt

    def verify_receipt(self, receipt: Mapping[str, Any], envelope: bytes) -> None:
        """The proof must show our very act at the receipt's index under the log's key."""
        got = verify_entry_proof(receipt["tlog_proof"], single_log_policy(self.info()["log_vkey"]))
        if got.index != receipt["index"]:
            raise VerificationError("receipt: the proof is for another index")
        sent = dsse.parse(envelope)
        logged = dsse.parse(got.entry.envelope)
        if logged.statement_digest() != sent.statement_digest():
            raise VerificationError("receipt: the logged act is not the act sent")

    def act(self, payload_type: str, doc: Mapping[str, Any], *, proof: bool = True) -> dict[str, Any]:
        return self.submit(self.sign(payload_type, doc), proof=proof)

    def register(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """(Secretariat) log a party's registration: id, name, keys, contact."""
        return self.act(PT_REGISTRY, {"act": "party.register", **doc})

    def event(self, doc: Mapping[str, Any], *, proof: bool = True, seal: bool = False) -> dict[str, Any]:
        """Submit an events-v1 event (notification, exchange, request, response …).

        ``seal``: the event's ``body`` is sealed (HPKE) to each of its readers (a request,
        its response, a notification with ``to``), so the hub stores ciphertext only.
        """
        assert self.identity is not None
        out = {"party": self.identity.party, **doc}
        if seal:
            out = self._seal_body(out)
        return self.act(PT_EVENT, out, proof=proof)

    def event_readers(self, doc: Mapping[str, Any]) -> list[str]:
        """Who may read an event about to be sent (the hub's rule, acts/state.py)."""
        assert self.identity is not None
        me = self.identity.party
        if doc.get("type") == "request":
            return sorted({me, str(doc["to"])})
        if doc.get("type") == "response":
            req = next(
                (
                    i
                    for i in self.iter_entries(agreement=doc["agreement"], kind="request")
                    if i.get("event_id") == doc.get("request")
                ),
                None,
            )
            if req is None:
                raise NotFoundError(f"no request {doc.get('request')!r} this party may read")
            asked = json.loads(base64.b64decode(req["envelope"]["payload"]))
            return sorted({me, str(asked["party"]), str(asked["to"])})
        to = doc.get("to")
        if doc.get("type") == "notification" and isinstance(to, list) and to and to != ["*"]:
            return sorted({me, *map(str, to)})
        raise FormatError(
            "only an event for some parties (request, response, notification with to) is sealed"
        )

    def _seal_body(self, doc: dict[str, Any]) -> dict[str, Any]:
        body = doc.pop("body", None)
        if not isinstance(body, str):
            raise FormatError("nothing to seal: the event has no 'body' text")
        readers = self.event_readers(doc)
        reg = self.registry()
        self.keys_of(reg, readers)
        assert self.identity is not None
        bind = hotline.body_info(self.info()["origin"], doc["agreement"], doc["id"], self.identity.party)
        cts = hotline.seal(body.encode(), {p: reg[p].encryption_key for p in readers}, bind)
        return {**doc, "sealed_body": {"suite": hotline.SUITE_NAME, "ciphertexts": cts}}

    def read_body(self, item: Mapping[str, Any]) -> str | None:
        """An event's body: as sent, or opened with our X25519 key when sealed to us."""
        doc = json.loads(base64.b64decode(item["envelope"]["payload"]))
        if isinstance(doc.get("body"), str):
            return str(doc["body"])
        sealed = doc.get("sealed_body")
        if not isinstance(sealed, dict):
            return None
        if self.identity is None or self.identity.encryption_key is None:
            raise AuthError("no X25519 key to open sealed bodies with")
        ct = sealed.get("ciphertexts", {}).get(self.identity.party)
        if ct is None:
            raise VerificationError(f"the body is not sealed to {self.identity.party!r}")
        bind = hotline.body_info(self.info()["origin"], doc["agreement"], doc["id"], doc["party"])
        key = hotline.private_key(self.identity.encryption_key, "encryption key")
        return hotline.open_sealed(ct, key, bind).decode()

    def ack(self, index: int) -> dict[str, Any]:
        """Acknowledge entry ``index``, naming its statement: the ack binds to that very act."""
        assert self.identity is not None
        env = dsse.parse(json.dumps(self.entry(index)["envelope"]).encode())
        return self.act(
            PT_ACK,
            {
                "act": "ack",
                "entry": index,
                "party": self.identity.party,
                "statement": env.statement_digest().hex(),
            },
        )

    def communication_checks(
        self, agreement: str, parties: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """(Secretariat) send a signed communication check to each party's contact point."""
        import uuid

        targets = parties or [p["id"] for p in self.parties() if agreement in p["agreements"]]
        run = uuid.uuid4().hex[:8]
        return [
            self.event(
                {
                    "agreement": agreement,
                    "id": f"check-{run}-{p}",
                    "type": "request",
                    "kind": "communication_check",
                    "to": p,
                    "body": "Communication check: please acknowledge by answering this request.",
                },
                proof=False,
            )
            for p in targets
        ]

    def submit_observations(
        self, agreement: str, batch: str, data: bytes, fmt: str, **meta: Any
    ) -> dict[str, Any]:
        """Sign a batch's SHA-256 and shape, log it, then upload the rows beside it."""
        assert self.identity is not None
        doc = {
            "act": "observations.batch",
            "party": self.identity.party,
            "agreement": agreement,
            "batch": batch,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "format": fmt,
            **{k: v for k, v in meta.items() if v is not None},
        }
        receipt = self.act(PT_OBSERVATIONS, doc)
        self._request(
            "PUT",
            f"/v1/observations/{receipt['index']}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return receipt

    def fetch_observations(self, index: int) -> tuple[dict[str, Any], bytes]:
        """A batch's signed statement and its rows, checked against each other."""
        item = self.entry(index)
        raw = json.dumps(item["envelope"]).encode()
        env = dsse.parse(raw)
        act = read_act(env.payload_type, env.payload)
        if act.payload_type != PT_OBSERVATIONS:
            raise FormatError(f"entry {index} is not an observations batch")
        # The provider's signature, under the key it held when the batch was logged.
        if act.author == SECRETARIAT:
            keys_then = [parse_verifier_key(self.info()["secretariat_vkey"]).public_key]
        else:
            reg = self.registry()
            self.keys_of(reg, [act.author], index)
            history = reg[act.author].history
            keys_then = [
                k for k, since, until in history if since <= index and (until is None or index < until)
            ]
        dsse.verify(raw, keys_then)
        data = self._request("GET", f"/v1/observations/{index}").content
        if hashlib.sha256(data).hexdigest() != act.doc["sha256"] or len(data) != act.doc["bytes"]:
            raise VerificationError(
                f"batch {index}: the rows served are not the rows its provider signed"
            )
        return act.doc, data

    # ---- reading --------------------------------------------------------------------------

    def inbox(self, **params: Any) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/inbox", params=_clean(params)).json())

    def entries(self, **params: Any) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/entries", params=_clean(params)).json())

    def iter_inbox(self, **params: Any) -> Iterator[dict[str, Any]]:
        after = params.pop("after", -1)
        while True:
            page = self.inbox(after=after, **params)
            yield from page["items"]
            if not page["items"]:
                return
            after = page["next"]

    def iter_entries(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every entry we may read (filters as ``/v1/entries``), page by page; marks nothing."""
        after = params.pop("after", -1)
        while True:
            page = self.entries(after=after, **params)
            yield from page["items"]
            if not page["items"]:
                return
            after = page["next"]

    def entry(self, index: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/entries/{index}").json())

    def proof(self, index: int) -> str:
        """The hub's c2sp.org/tlog-proof of entry ``index`` (unverified: see ``verify_entry_proof``)."""
        return self._request("GET", f"/v1/entries/{index}/proof").text

    def status(self, index: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/entries/{index}/status").json())

    def parties(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/parties").json()["parties"])

    def indicators(self, agreement: str, as_of: str | None = None) -> dict[str, Any]:
        """Confidence indicators per party and month, from what we may read."""
        params = _clean({"agreement": agreement, "as_of": as_of})
        return dict(self._request("GET", "/v1/indicators", params=params).json())

    def quota(self, agreement: str, host: str, kind: str, **when: str | None) -> dict[str, Any]:
        """Would ``host`` be obliged to accept our request of ``kind`` (eta/until optional)?"""
        params = _clean({"agreement": agreement, "host": host, "kind": kind, **when})
        return dict(self._request("GET", "/v1/quota", params=params).json())

    def request_quota(self, agreement: str, request: str) -> dict[str, Any]:
        """As the host of ``request``: would refusing it be a finding (is it within quota)?"""
        params = {"agreement": agreement, "request": request}
        return dict(self._request("GET", "/v1/quota", params=params).json())

    def obligations(self, agreement: str, as_of: str | None = None) -> dict[str, Any]:
        return dict(
            self._request(
                "GET", "/v1/obligations", params=_clean({"agreement": agreement, "as_of": as_of})
            ).json()
        )

    # ---- hotline --------------------------------------------------------------------------

    def open_channel(self, channel: str, agreement: str, members: list[str]) -> dict[str, Any]:
        assert self.identity is not None
        return self.act(
            PT_HOTLINE,
            {
                "act": "channel.open",
                "party": self.identity.party,
                "channel": channel,
                "agreement": agreement,
                "members": members,
            },
        )

    def channels(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/channels").json()["channels"])

    def hotline_envelope(
        self, channel: str, message_id: str, precedence: str, text: str, members: Mapping[str, bytes]
    ) -> bytes:
        """Seal ``text`` to every member's X25519 key and sign the message."""
        assert self.identity is not None
        bind = hotline.info(self.info()["origin"], channel, message_id, self.identity.party)
        return self.sign(
            PT_HOTLINE,
            {
                "act": "hotline.message",
                "party": self.identity.party,
                "channel": channel,
                "id": message_id,
                "precedence": precedence,
                "suite": hotline.SUITE_NAME,
                "ciphertexts": hotline.seal(text.encode(), members, bind),
            },
        )

    def registry(self) -> dict[str, _Keys]:
        """Party keys over time, as far as the witnesses have agreed to them.

        With pins, nothing the hub says about keys is taken on its word: each registry act
        is read from an inclusion proof under the pinned log key and folded with
        ``cbmnet.acts.registry`` (the hub's own rule: a key change is signed by the party's
        current key, its recovery key, or the new key after a quorum of approvals), and is
        used only once a checkpoint holding it is cosigned by a majority of the registered
        parties' witnesses (the policy the log page shows). A party whose registration or
        key change is not yet so cosigned is held in ``pending`` and refused by name by
        every method that would seal to it or check its signature.

        Without pins, the hub's ``/v1/parties`` answer is taken as it is: the log key and
        the secretariat key then come from the hub too, so a hub that lies could also serve
        a registry, checkpoints and cosignatures of its own making, and checking them
        would only look like trust. Pin the hub (``Pins``) to rely on keys.
        """
        if self.pins is None:
            self._pending = {}
            return {
                p["id"]: _Keys(
                    [(base64.b64decode(k["key"]), k["since"], k["until"]) for k in p["key_history"]],
                    base64.b64decode(p["encryption_key"]),
                )
                for p in self.parties()
            }
        acts = [(i, self._registry_act(i)) for i in self._registry_indexes()]
        info = self.info()
        sec = parse_verifier_key(self.pins.secretariat_vkey).public_key
        quorums = dict(info.get("key_recovery_quorums") or {})
        reg = Registry(sec, parse_verifier_key(info["hub_vkey"]).public_key, quorums)
        seen: list[tuple[int, list[tuple[str, str]]]] = [(0, [])]
        """(size, the policy's witnesses of the tree of that size), growing."""
        for idx, (act, raw) in acts:
            why = reg.fault(idx, act, raw)
            if why is not None:
                raise VerificationError(f"registry {why}")
            reg.apply(act, idx)
            seen.append((idx + 1, reg.policy_witnesses()))
        agreed = self._agreed_size(seen)
        folded = Registry(sec, reg.hub_key, quorums)
        self._pending = {}
        need = len(seen[-1][1]) // 2 + 1 if seen[-1][1] else 0
        for idx, (act, _) in acts:
            if idx < agreed:
                self._proven_in(idx, agreed)
                folded.apply(act, idx)
            elif act.kind != "key.approve":  # an approval changes no key by itself
                pid = str(act.doc["party"])
                what = "registration" if act.kind == "party.register" else "key change"
                self._pending.setdefault(
                    pid,
                    (
                        idx,
                        f"{pid}'s {what} at entry {idx} is not yet cosigned by a quorum of "
                        f"witnesses ({need} of {len(seen[-1][1])} needed); run the witnesses or wait",
                    ),
                )
        return {
            p.id: _Keys([(k.public, k.since, k.until) for k in p.keys], p.encryption_key)
            for p in folded.parties.values()
        }

    def keys_of(self, reg: Mapping[str, _Keys], parties: Sequence[str], at: int | None = None) -> None:
        """Refuse, by name, parties ``registry()`` could not vouch for (at index ``at``,
        when given: a change logged after it does not matter)."""
        for p in parties:
            pend = self._pending.get(p)
            if pend is not None and (at is None or pend[0] <= at):
                raise VerificationError(pend[1])
        missing = [p for p in parties if p not in reg]
        if missing:
            raise VerificationError(f"no verified registration for {', '.join(missing)}")

    def _registry_indexes(self) -> list[int]:
        out: set[int] = set()
        for kind in REGISTRY_ACTS:
            out.update(int(i["index"]) for i in self.iter_entries(kind=kind, limit=1000))
        return sorted(out)

    def _registry_act(self, index: int) -> tuple[Act, bytes]:
        """The registry act at ``index``, read from its inclusion proof under the pinned log
        key (not from the hub's listing); the proof's checkpoint is kept."""
        got = self._proofs.get(index)
        if got is None:
            assert self.pins is not None
            text = self.proof(index)
            ve = verify_entry_proof(text, single_log_policy(self.pins.log_vkey))
            if ve.index != index:
                raise VerificationError(f"the hub's proof of entry {index} is for entry {ve.index}")
            got = self._proofs[index] = (ve.entry.envelope, ve.agreed.checkpoint)
        raw = got[0]
        env = dsse.parse(raw)
        try:
            act = read_act(env.payload_type, env.payload)
        except CbmnetError as e:
            raise VerificationError(unreadable_act(index, env.payload_type, env.payload, e)) from e
        if act.payload_type != PT_REGISTRY:
            raise VerificationError(f"entry {index}, listed as a registry act, is not one")
        return act, raw

    def _agreed_size(self, seen: Sequence[tuple[int, list[tuple[str, str]]]]) -> int:
        """The size of the newest checkpoint a majority of the witnesses registered in its
        own tree cosigned (0: none yet). Checkpoints before the last one found are not
        fetched again."""
        assert self.pins is not None
        sizes = [s for s, _ in seen]
        for item in reversed(self.checkpoints(after=self._agreed[0])):
            note, size = str(item["note"]), int(item["size"])
            if self._agreed[1] is not None and size <= self._agreed[1].size:
                break
            named = seen[bisect_right(sizes, size) - 1][1]
            text, _ = majority_policy_text(self.pins.log_vkey, named)
            try:
                agreed = verify_checkpoint(note, parse_policy(text))
            except PolicyError:
                continue
            self._agreed = (int(item["seq"]) - 1, agreed.checkpoint)
            break
        return self._agreed[1].size if self._agreed[1] is not None else 0

    def _proven_in(self, index: int, size: int) -> None:
        """Entry ``index`` (proven under some log-signed checkpoint) is in the agreed tree:
        the two checkpoints are consistent (one extends the other)."""
        a = self._agreed[1]
        assert a is not None and a.size == size
        cp = self._proofs[index][1]
        pair = (cp.size, cp.root_hash, a.size, a.root_hash)
        if (cp.size, cp.root_hash) == (a.size, a.root_hash) or pair in self._consistent:
            return
        old, new = sorted([cp, a], key=lambda c: c.size)
        proof = [base64.b64decode(h) for h in self.consistency(old.size, new.size)]
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
        self._consistent.add(pair)

    def member_keys(self, channel: str) -> dict[str, bytes]:
        ch = next((c for c in self.channels() if c["id"] == channel), None)
        if ch is None:
            raise NotFoundError(
                f"no hotline channel {channel!r} open to {self.identity and self.identity.party}"
            )
        reg = self.registry()
        self.keys_of(reg, ch["members"])
        return {m: reg[m].encryption_key for m in ch["members"]}

    def send(
        self, channel: str, message_id: str, precedence: str, text: str, *, proof: bool = True
    ) -> dict[str, Any]:
        env = self.hotline_envelope(channel, message_id, precedence, text, self.member_keys(channel))
        return self.submit(env, proof=proof)

    def read_hotline(self, item: Mapping[str, Any]) -> str:
        """Check the sender's signature and open our ciphertext of a pushed hotline message."""
        if self.identity is None or self.identity.encryption_key is None:
            raise AuthError("no X25519 key to open hotline bodies with")
        env = item["envelope"]
        doc = json.loads(base64.b64decode(env["payload"]))
        reg = self.registry()
        at = item["index"]
        self.keys_of(reg, [doc["party"]], at)
        sender = reg[doc["party"]]
        # The key that was the sender's when the message was logged, even if rotated since.
        keys = [k for k, since, until in sender.history if since <= at and (until is None or at < until)]
        dsse.verify(json.dumps(env).encode(), keys)
        bind = hotline.info(self.info()["origin"], doc["channel"], doc["id"], doc["party"])
        key = hotline.private_key(self.identity.encryption_key, "encryption key")
        return hotline.open_sealed(doc["ciphertexts"][self.identity.party], key, bind).decode()

    async def stream(self, after: int = -1) -> AsyncGenerator[dict[str, Any], None]:
        """Everything addressed to us after ``after``, then live (store and forward)."""
        import websockets

        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        uri = f"{ws_url}/v1/stream?after={after}"
        async with websockets.connect(
            uri, additional_headers={"Authorization": f"Bearer {self.token()}"}, max_size=4 << 20
        ) as ws:
            async for msg in ws:
                yield json.loads(msg)

    # ---- the log --------------------------------------------------------------------------

    def checkpoint(self) -> str:
        return self._request("GET", "/v1/log/checkpoint", auth=False).text

    def witness_request(self, old: int) -> str:
        return self._request("GET", "/v1/log/witness", auth=False, params={"old": old}).text

    def add_cosignatures(self, size: int, lines: str) -> dict[str, Any]:
        return dict(
            self._request(
                "POST", "/v1/log/cosignatures", auth=False, params={"size": size}, content=lines
            ).json()
        )

    def checkpoints(self, after: int = -1) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self._request(
                "GET", "/v1/log/checkpoints", auth=False, params={"after": after}
            ).json()
            if not page["checkpoints"]:
                return out
            out += page["checkpoints"]
            after = page["checkpoints"][-1]["seq"]

    def leaves(
        self, start: int = 0, limit: int = 1000, *, with_entries: bool = True
    ) -> list[dict[str, Any]]:
        auth = with_entries and self.identity is not None
        return list(
            self._request(
                "GET", "/v1/log/leaves", auth=auth, params={"start": start, "limit": limit}
            ).json()["leaves"]
        )

    def consistency(self, old: int, new: int) -> list[str]:
        return list(
            self._request(
                "GET", "/v1/log/consistency", auth=False, params={"old": old, "new": new}
            ).json()["proof"]
        )


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


__all__ = ["SECRETARIAT", "HubClient", "Identity", "Pins"]
