"""A party's (or the secretariat's) client of a cbmnet hub: sign locally, send, verify.

The client never sends a private key anywhere. It signs acts and auth challenges itself,
checks the receipts the hub returns (the inclusion proof against the log's key it
pinned), and decrypts hotline bodies with its own X25519 key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from cbmnet.acts.model import PT_ACK, PT_EVENT, PT_HOTLINE, PT_REGISTRY, SECRETARIAT
from cbmnet.acts.state import act_json
from cbmnet.communication import hotline
from cbmnet.errors import (
    AuthError,
    CbmnetError,
    ConflictError,
    ForbiddenError,
    FormatError,
    NotFoundError,
    RateLimitedError,
    StoreError,
    TooLargeError,
    VerificationError,
)
from cbmnet.hub.auth import signed_message
from cbmnet.ledger import dsse
from cbmnet.ledger.note import parse_signer_key
from cbmnet.ledger.policy import single_log_policy
from cbmnet.ledger.tlogproof import verify_entry_proof

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


class HubClient:
    def __init__(self, url: str, identity: Identity | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None
        self._info: dict[str, Any] | None = None

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
        if self._info is None:
            self._info = self._request("GET", "/v1/hub", auth=False).json()
        return self._info

    def token(self) -> str:
        """Sign the hub's challenge with our key; the token lasts minutes, not a session."""
        if self._token is None:
            if self.identity is None:
                raise AuthError("no identity: give a party id and its key")
            ch = self._request(
                "POST", "/v1/auth/challenge", auth=False, json={"party": self.identity.party}
            )
            doc = ch.json()
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

    def event(self, doc: Mapping[str, Any], *, proof: bool = True) -> dict[str, Any]:
        """Submit an events-v1 event (notification, exchange, request, response …)."""
        assert self.identity is not None
        return self.act(PT_EVENT, {"party": self.identity.party, **doc}, proof=proof)

    def ack(self, index: int) -> dict[str, Any]:
        assert self.identity is not None
        return self.act(PT_ACK, {"act": "ack", "entry": index, "party": self.identity.party})

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

    def entry(self, index: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/entries/{index}").json())

    def status(self, index: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/entries/{index}/status").json())

    def parties(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/parties").json()["parties"])

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

    def member_keys(self, channel: str) -> dict[str, bytes]:
        ch = next((c for c in self.channels() if c["id"] == channel), None)
        if ch is None:
            raise NotFoundError(
                f"no hotline channel {channel!r} open to {self.identity and self.identity.party}"
            )
        keys = {p["id"]: base64.b64decode(p["encryption_key"]) for p in self.parties()}
        return {m: keys[m] for m in ch["members"]}

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
        sender = next((p for p in self.parties() if p["id"] == doc["party"]), None)
        if sender is None:
            raise VerificationError(f"hotline message from {doc['party']!r}, who is not registered")
        # The key that was the sender's when the message was logged, even if rotated since.
        at = item["index"]
        keys = [
            base64.b64decode(k["key"])
            for k in sender["key_history"]
            if k["since"] <= at and (k["until"] is None or at < k["until"])
        ]
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


__all__ = ["SECRETARIAT", "HubClient", "Identity"]
