"""The hotline console: the caller's channels, each message's precedence, its deadline and
who acknowledged it, live over a WebSocket.

Why the acknowledge button signs in the browser: an acknowledgement is a party's signed
act, and the hub never holds a party's key. The operator loads the party's signing key
into the page (it stays in the page's memory, never sent); ``hotline.js`` computes the
message's statement digest itself from the envelope, signs the ``ack`` act with WebCrypto
Ed25519 and posts the DSSE envelope to ``/v1/acts`` like any client. Message bodies are
HPKE ciphertext to each member; the operator may load the party's X25519 key too, and
``hpke.js`` opens the party's own ciphertext in the page (``cbmnet hotline listen`` does
the same on the command line).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cbmnet.acts.model import PT_ACK
from cbmnet.agreements.forms import span
from cbmnet.communication.hotline import PRECEDENCES
from cbmnet.compliance.timeutil import format_time, parse_duration
from cbmnet.errors import CbmnetError
from cbmnet.hub.deps import COOKIE, hub_from, session_of, who
from cbmnet.hub.service import Hub
from cbmnet.hub.wakeup import woken_by_appends
from cbmnet.hub.web.i18n import N_, gettext
from cbmnet.hub.web.render import render

MAX_MESSAGES = 100
"""The console shows the latest messages; older ones stay in the archive and the log."""
DEFAULT_WITHIN_MS = 6 * 3_600_000
"""A channel of an agreement without hotline terms: the routine target (as the state fold)."""

UI = {
    "key_loaded": N_("Key %(key)s of %(party)s loaded: %(purpose)s"),
    "key_not_loaded": N_("Key not loaded: %(error)s"),
    "key_purpose": N_("acknowledgements and messages are signed in this page."),
    "stopped_acked": N_("stopped: acknowledged at %(time)s"),
    "stopped_no_answer": N_("stopped: NO ANSWER logged"),
    "stopped_all": N_("stopped: all acknowledged"),
    "left": N_("%(time)s left"),
    "overdue_by": N_("overdue by %(time)s"),
    "not_opened": N_("not opened: %(error)s"),
    "sealed": N_("sealed"),
    "acked_at": N_("%(party)s at %(time)s"),
    "no_answer": N_("NO ANSWER: %(party)s"),
    "waiting": N_("waiting for %(parties)s"),
    "acknowledge": N_("Acknowledge %(index)s"),
    "ack_title": N_("Sign and log an acknowledgement"),
    "load_key_first": N_("Load your signing key first"),
    "signing": N_("Signing…"),
    "acknowledged": N_("Acknowledged (entry %(index)s)"),
    "ack_refused": N_("Acknowledgement of entry %(index)s refused: %(error)s"),
    "no_messages": N_("No messages on your channels."),
    "no_ciphertext": N_("no ciphertext for %(party)s"),
    "session_ended": N_("Your session ended: sign in again."),
    "live": N_("Live."),
    "refresh_failed": N_("Refresh failed: %(error)s"),
    "reconnecting": N_("Reconnecting…"),
    "hpke_too_long": N_("a hotline key file is one short line"),
    "hpke_not_registered": N_("this is not the hotline key %(party)s registered"),
    "hpke_loaded": N_("Hotline key loaded: your copy of each message is opened in this page."),
    "hpke_not_loaded": N_("Hotline key not loaded: %(error)s"),
    "ack_within": N_("acknowledge within %(span)s"),
    "load_to_send": N_("Load your signing key to send."),
    "sealed_to": N_("Sealed to %(n)s members, signed as %(party)s."),
    "too_long": N_("at most %(n)s bytes of text"),
    "no_member_key": N_("no hotline key registered for %(parties)s"),
    "sealing": N_("Sealing and signing…"),
    "sent": N_("Sent: entry %(index)s, logged %(time)s."),
    "not_sent": N_("Not sent (your text is kept): %(error)s"),
    "load_failed": N_("Could not load the console: %(error)s"),
}
"""The words hotline.js writes itself, in the reader's language (the page's ``data-ui``);
``%(name)s`` is filled in the page. hotline.js keeps the English of each as its fallback."""


class _Messages:
    """Hotline messages' parsed payloads (the read model indexes which entries they are).

    Entries never change once logged, so a parsed payload is kept for good (bounded: the
    latest ``4 * MAX_MESSAGES``).
    """

    def __init__(self) -> None:
        self.docs: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def doc(self, hub: Hub, index: int) -> dict[str, Any]:
        with self.lock:
            got = self.docs.get(index)
        if got is not None:
            return got
        env = hub.cached_envelope(index) or hub.envelope(index)
        parsed = json.loads(env)
        doc: dict[str, Any] = json.loads(base64.b64decode(parsed["payload"]))
        out = {"doc": doc, "payload": parsed["payload"], "payload_type": parsed["payloadType"]}
        with self.lock:
            self.docs[index] = out
            if len(self.docs) > 4 * MAX_MESSAGES:
                for k in sorted(self.docs)[: len(self.docs) - 4 * MAX_MESSAGES]:
                    del self.docs[k]
        return out


def hotline_view(hub: Hub, index: _Messages, party: str, now_ms: int) -> dict[str, Any]:
    """What the console shows ``party``: its channels and their latest messages.

    Everything here is derived from the log (acks, ``hotline.no_answer`` statements) and
    the agreement's hotline terms, so a member can recompute it from its own copy.
    """
    channels = []
    for c in hub.views.channels_of(party):
        terms = hub.agreements[c["agreement"]].hotline if c["agreement"] in hub.agreements else None
        member_keys = {}
        for m in c["members"]:
            key = hub.views.encryption_key(m)
            if key is not None:
                member_keys[m] = base64.b64encode(key).decode()
        channels.append(
            {
                **{k: c[k] for k in ("id", "agreement", "members", "accepted")},
                # What the console seals each member's copy to (the CLI checks these keys
                # against the log's registry under pinned keys; the page takes the hub's).
                "member_keys": member_keys,
                "ack_within": {p: span(getattr(terms, p)) for p in PRECEDENCES} if terms else {},
            }
        )
    rows = [(r.row, r.terms) for r in hub.views.hotline_rows(party, MAX_MESSAGES)]
    keys = [base64.b64encode(k).decode() for k in hub.views.signing_keys(party)]
    enc = hub.views.encryption_key(party)
    hpke = base64.b64encode(enc).decode() if enc is not None else None
    messages = []
    for row, terms in rows:
        got = index.doc(hub, row["index"])
        doc = got["doc"]
        precedence = str(doc.get("precedence"))
        within = parse_duration(getattr(terms, precedence), "hotline") if terms else DEFAULT_WITHIN_MS
        deadline = row["sent_ms"] + within
        messages.append(
            {
                **row,
                "id": doc.get("id"),
                "precedence": precedence,
                "deadline_ms": deadline,
                "deadline": format_time(deadline),
                "exercise": doc.get("exercise") is True,
                "envelope": {"payloadType": got["payload_type"], "payload": got["payload"]},
            }
        )
    return {
        "party": party,
        "now_ms": now_ms,
        "now": format_time(now_ms),
        "origin": hub.log.origin,
        "ack_payload_type": PT_ACK,
        "signing_keys": keys,
        "encryption_key": hpke,
        "channels": channels,
        "messages": messages,
    }


router = APIRouter()
MESSAGES_LOCK = threading.Lock()


def messages_of(request: Request) -> _Messages:
    """The app's index of hotline messages (one per app, as its hub), made on first use."""
    state = request.app.state
    with MESSAGES_LOCK:
        index: _Messages | None = getattr(state, "hotline_messages", None)
        if index is None:
            index = state.hotline_messages = _Messages()
    return index


@router.get("/dashboard/hotline", include_in_schema=False)
def hotline_page(request: Request) -> Response:
    """Rendered in full on the server (usable without script); hotline.js makes it live."""
    party = who(request)
    hub = hub_from(request)
    view = hotline_view(hub, messages_of(request), party, hub.clock())
    ui = {k: gettext(v) for k, v in UI.items()}
    return render("hotline.html", scripts=True, ui=ui, **view)


@router.get("/dashboard/hotline.json", include_in_schema=False)
def hotline_json(request: Request) -> Response:
    party = who(request)
    hub = hub_from(request)
    return JSONResponse(
        hotline_view(hub, messages_of(request), party, hub.clock()),
        headers={"Cache-Control": "no-store"},
    )


@router.websocket("/dashboard/hotline/stream")
async def hotline_stream(ws: WebSocket) -> None:
    """Says ``changed`` whenever the caller may read something new: the page refetches.

    Signed in by the dashboard cookie; a page of another site cannot open it (Origin
    must be this host's). An expired token or a revoked key ends it (close 4401).
    """
    origin = ws.headers.get("origin")
    host = ws.headers.get("host", "")
    if origin is not None and origin.split("://", 1)[-1] != host:
        await ws.close(code=4403, reason="cross-site WebSocket refused")
        return
    hub = hub_from(ws)
    token = ws.cookies.get(COOKIE, "")
    try:
        party, key, exp = await run_in_threadpool(session_of, hub, token)
    except CbmnetError as e:
        await ws.close(code=4401, reason=str(e)[:120])
        return
    await ws.accept()
    try:
        async with woken_by_appends(ws, hub, party) as w:
            await ws.send_text(json.dumps({"type": "hello", "now_ms": hub.clock()}))
            while not w.closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(w.wake.wait(), timeout=30)
                w.wake.clear()
                if w.closed.is_set():
                    break
                if time.time() > exp or not hub.views.key_active(party, key):
                    await ws.close(code=4401, reason="token expired or key no longer active")
                    return
                await ws.send_text(json.dumps({"type": "changed", "now_ms": hub.clock()}))
                await asyncio.sleep(0.05)  # a burst of entries is one refetch
    except (WebSocketDisconnect, RuntimeError):
        pass
