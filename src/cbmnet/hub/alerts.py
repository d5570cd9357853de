"""Alerts that reach people: e-mail and signed webhooks when something needs the party.

A national centre is not watching a dashboard at 03:00 when a FLASH message or a 24-hour
inspection request arrives. Each party may subscribe (``PUT /v1/alerts``, its own token:
only its holder changes it) to alerts by kind, agreement and hotline precedence, delivered
by e-mail (SMTP) and by webhook (POST, signed with the hub key, retried with backoff).

An alert names what happened and links to it; it never carries a body, sealed or not:
whoever reads the mailbox or runs the webhook learns that something came, not what it says.
Alerts are derived from committed entries (and from the engine's report, for deadlines and
findings), each under a key that makes it go out once, whichever hub process derived it
(``hub_alert_outbox``). Delivery is recorded there too: the dashboard's delivery log.

The hub reaches out only where the operator allows: webhooks to ``https`` URLs (``http``
and private addresses only with ``alerts_allow_private``, for a closed network or a test),
e-mail only through the configured SMTP relay.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import smtplib
import socket
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from cbmnet.acts.model import PT_EVENT, PT_HOTLINE, PT_HUB
from cbmnet.communication.hotline import PRECEDENCES
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time, parse_time
from cbmnet.errors import FormatError
from cbmnet.store.sql import AlertRow, Store

if TYPE_CHECKING:
    from cbmnet.hub.service import Hub

log = logging.getLogger("cbmnet.alerts")

KINDS = ("addressed", "hotline", "no_answer", "overdue", "due_7d", "due_24h", "finding")
"""``addressed``: a new event the party may read (a notification, request, answer …);
``hotline``: a hotline message on its channels; ``no_answer``: the hub logged that the
party did not acknowledge in time; ``overdue``: the hub logged an obligation of the party
overdue; ``due_7d`` / ``due_24h``: an obligation of the party falls due within 7 days /
24 hours; ``finding``: the engine finds against the party."""
MAX_EMAILS = 5
MAX_WEBHOOKS = 3
MAX_TARGET_CHARS = 512
MAX_ATTEMPTS = 10
META_CURSOR = "alerts_cursor"
"""The log size up to which entries were looked at for alerts (store meta)."""
MAX_BACKLOG = 10_000
DEADLINES_EVERY_S = 60.0
"""How often deadlines and findings are looked at for alerts (each alert goes out once)."""
LEASE_MS = 120_000
"""How long a claimed alert is this process's to send before another may try it."""
CLAIM = 8
SENDERS = 4
"""Alerts claimed per round, and sent at once: a slow receiver holds one sender."""
KEEP_MS = 90 * MS_PER_DAY
"""Delivered and abandoned alerts are kept this long in the delivery log."""
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\Z"
)
"""An address with a domain of two labels at least (no ``%`` routing, no bare host)."""
CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
"""A form or kind as alerts name it; anything else a filer wrote is not repeated."""
_RANK = {p: i for i, p in enumerate(reversed(PRECEDENCES))}
"""routine 0 < priority < immediate < flash."""


@dataclass(frozen=True)
class Subscription:
    party: str
    emails: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset(KINDS)
    agreements: frozenset[str] = frozenset()
    """Empty: every agreement the party is bound by."""
    precedence: str = "routine"
    """The lowest hotline precedence alerted."""
    since_index: int = 0
    since_ms: int = 0
    """Entries before this index, and findings due before this time, are not alerted: a
    new subscription does not replay the past."""

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "emails": list(self.emails),
            "webhooks": list(self.webhooks),
            "kinds": sorted(self.kinds),
            "agreements": sorted(self.agreements),
            "precedence": self.precedence,
            "since_index": self.since_index,
            "since_ms": self.since_ms,
        }

    def wants(self, kind: str, agreement: str | None) -> bool:
        return kind in self.kinds and (
            not self.agreements or agreement is None or agreement in self.agreements
        )


def _webhook(url: object, i: int, allow_private: bool) -> str:
    where = f"alert subscription, field 'webhooks'[{i}]"
    if not isinstance(url, str) or not 0 < len(url) <= MAX_TARGET_CHARS:
        raise FormatError(f"{where}: a URL of at most {MAX_TARGET_CHARS} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
        if host:
            host.encode("idna")
        httpx.URL(url)
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise FormatError(f"{where}: not a URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise FormatError(f"{where}: an https:// URL")
    if parts.username or parts.password:
        raise FormatError(f"{where}: no user or password in the URL (the body is signed instead)")
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url):
        raise FormatError(f"{where}: no spaces or control characters")
    if allow_private:
        return url
    if parts.scheme != "https":
        raise FormatError(f"{where}: an https:// URL (this hub does not send alerts in clear)")
    if port not in (None, 443, 8443):
        raise FormatError(f"{where}: port 443 or 8443 only")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if (
        host.rstrip(".") == "localhost"
        or host.rstrip(".").endswith(".localhost")
        or (ip is not None and not ip.is_global)
    ):
        raise FormatError(
            f"{where}: {host!r} is not a public address; this hub sends only to public ones"
        )
    return url


def public_address(host: str, port: int) -> str:
    """The address to connect to for ``host``: resolved now, and every address it resolves
    to must be public (a name pointing into the operator's network, or rebound to it since
    it was subscribed, is refused at send time). Raises ``DeliveryRefused``."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise DeliveryRefused("unreachable (name not resolved)") from e
    addrs = [str(info[4][0]) for info in infos]
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_global for a in addrs):
        raise DeliveryRefused("refused: the name resolves to a non-public address")
    return addrs[0]


def read_subscription(
    party: str,
    doc: Any,
    *,
    agreements: Sequence[str],
    allow_private: bool,
    since_index: int,
    since_ms: int,
) -> Subscription:
    """A party's subscription from its JSON, every field checked and named when wrong."""
    if not isinstance(doc, dict):
        raise FormatError("alert subscription: must be a JSON object")
    unknown = set(doc) - {"emails", "webhooks", "kinds", "agreements", "precedence"}
    if unknown:
        raise FormatError(f"alert subscription: unknown field {sorted(unknown)[0][:40]!r}")

    def strings(name: str, limit: int) -> list[Any]:
        v = doc.get(name, [])
        if not isinstance(v, list) or len(v) > limit:
            raise FormatError(f"alert subscription, field {name!r}: a list of at most {limit}")
        return v

    emails = strings("emails", MAX_EMAILS)
    for i, e in enumerate(emails):
        if not isinstance(e, str) or len(e) > 254 or not EMAIL.match(e):
            raise FormatError(f"alert subscription, field 'emails'[{i}]: not an e-mail address")
    hooks = [_webhook(u, i, allow_private) for i, u in enumerate(strings("webhooks", MAX_WEBHOOKS))]
    kinds = strings("kinds", len(KINDS)) if "kinds" in doc else list(KINDS)
    for k in kinds:
        if k not in KINDS:
            raise FormatError(
                f"alert subscription, field 'kinds': {str(k)[:40]!r} is not one of {', '.join(KINDS)}"
            )
    chosen = strings("agreements", 50)
    for a in chosen:
        if a not in agreements:
            raise FormatError(
                f"alert subscription, field 'agreements': {str(a)[:60]!r} is not one of yours"
            )
    precedence = doc.get("precedence", "routine")
    if precedence not in PRECEDENCES:
        raise FormatError(f"alert subscription, field 'precedence': one of {', '.join(PRECEDENCES)}")
    if not emails and not hooks:
        raise FormatError("alert subscription: give at least one of 'emails' and 'webhooks'")
    return Subscription(
        party,
        tuple(dict.fromkeys(emails)),
        tuple(dict.fromkeys(hooks)),
        frozenset(kinds),
        frozenset(chosen),
        precedence,
        since_index,
        since_ms,
    )


def load_subscription(party: str, text: str) -> Subscription:
    """A stored subscription (written by ``Subscription.to_json``)."""
    d = json.loads(text)
    return Subscription(
        party,
        tuple(d["emails"]),
        tuple(d["webhooks"]),
        frozenset(d["kinds"]),
        frozenset(d["agreements"]),
        d["precedence"],
        int(d["since_index"]),
        int(d["since_ms"]),
    )


@dataclass(frozen=True)
class Alert:
    """What one party is told, and the key that makes it go out once."""

    key: str
    party: str
    kind: str
    agreement: str | None
    at_ms: int
    summary: str
    link: str
    facts: dict[str, Any] = field(default_factory=dict)

    def payload(self, hub: str) -> dict[str, Any]:
        return {
            "hub": hub,
            "party": self.party,
            "kind": self.kind,
            "agreement": self.agreement,
            "at": format_time(self.at_ms),
            "summary": self.summary,
            "link": self.link,
            **self.facts,
        }


def entry_alert(
    party: str,
    index: int,
    ms: int,
    payload_type: str,
    kind: str,
    author: str,
    agreement: str | None,
    doc: dict[str, Any],
) -> Alert | None:
    """What a committed entry tells ``party`` (who may read it), if anything. Never the
    body: kinds, ids, parties, precedence and times only."""
    key = f"entry:{index}:{party}"
    if payload_type == PT_HOTLINE and kind == "hotline.message":
        prec = str(doc.get("precedence"))
        prec = prec if prec in PRECEDENCES else "routine"
        return Alert(
            key,
            party,
            "hotline",
            agreement,
            ms,
            f"{prec.upper()} hotline message from {author} on {_code(doc.get('channel'), 'a channel')}",
            "/dashboard/hotline",
            {
                "entry": index,
                "from": author,
                "channel": _code(doc.get("channel"), None),
                "precedence": prec,
            },
        )
    if payload_type == PT_HUB and kind == "hotline.no_answer" and doc.get("party") == party:
        return Alert(
            key, party, "no_answer", agreement, ms,
            f"no acknowledgement from {party} of hotline entry {doc.get('entry')} in time",
            "/dashboard/hotline", {"entry": index, "message_entry": doc.get("entry")},
        )  # fmt: skip
    if payload_type == PT_HUB and kind == "obligation.overdue" and doc.get("party") == party:
        return Alert(
            key, party, "overdue", agreement, ms,
            f"an obligation of {party} is overdue (logged by the hub)",
            "/dashboard/inbox", {"entry": index},
        )  # fmt: skip
    if payload_type == PT_EVENT and author != party:
        kind_of = _code(doc.get("type"), None) or "event"
        what = _code(doc.get("form"), None) or _code(doc.get("kind"), None) or kind_of
        return Alert(
            key,
            party,
            "addressed",
            agreement,
            ms,
            f"{what.replace('_', ' ')} ({kind_of}) from {author} under {agreement}",
            f"/dashboard/archive?agreement={quote(str(agreement), safe='')}",
            {"entry": index, "from": author, "event": doc.get("id"), "type": kind_of},
        )
    return None


def _code(value: object, default: str | None) -> str | None:
    """``value`` if it is a code of the format's vocabulary (lower case, digits, ``_``, ``-``,
    ``.``), else ``default``: a filer's free text never reaches a subject line."""
    text = str(value) if value is not None else ""
    return text if re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", text) else default


def deadline_alerts(
    party: str,
    agreement: str,
    report: dict[str, Any],
    now: int,
    kinds: frozenset[str] = frozenset(KINDS),
) -> list[Alert]:
    """Obligations of ``party`` falling due within 24 hours (else within 7 days), as far
    as ``kinds`` asks; findings against it. Keys name the obligation or finding, so each
    goes out once."""
    out = []
    for o in report["obligations"]:
        if o["party"] != party or o["status"] != "pending":
            continue
        left = _ms(o["due"]) - now
        for kind, within in (("due_24h", MS_PER_DAY), ("due_7d", 7 * MS_PER_DAY)):
            if kind in kinds and 0 < left <= within:
                out.append(
                    Alert(
                        f"{kind}:{agreement}:{o['id']}",
                        party,
                        kind,
                        agreement,
                        now,
                        f"due {o['due']}: {o['kind'].replace('_', ' ')} ({o['provision']})",
                        "/dashboard/inbox",
                        {"obligation": o["id"], "due": o["due"], "provision": o["provision"]},
                    )
                )
                break
    for f in report["findings"] if "finding" in kinds else ():
        if f["party"] != party:
            continue
        ident = hashlib.sha256(
            json.dumps([f["code"], f["provision"], f["subjects"], f["due"], f.get("period")]).encode()
        ).hexdigest()[:32]
        out.append(
            Alert(
                f"finding:{agreement}:{party}:{ident}",
                party,
                "finding",
                agreement,
                now,
                f"{f['severity']} {f['code']} against {party} ({f['provision']})",
                "/dashboard/deadlines",
                {
                    "code": f["code"],
                    "provision": f["provision"],
                    "due": f["due"],
                    "severity": f["severity"],
                },
            )
        )
    return out


def _ms(text: str) -> int:
    return parse_time(text, "due")


def signed_text(key: str, target: str, sent_ms: int, body: bytes) -> bytes:
    """What a webhook signature covers: the alert's key, where it was sent and when, then
    the body. A receiver that checks all four cannot be fed a replay, another receiver's
    alert, or anything else the hub key signs (DSSE and notes have other prefixes)."""
    return f"cbmnet-alert/v1\n{key}\n{target}\n{sent_ms}\n".encode() + body


class AlertDesk:
    """Derives alerts from the committed log and the engine, queues them, delivers them."""

    def __init__(self, hub: Hub, store: Store) -> None:
        self.hub = hub
        self.store = store
        s = hub.settings
        self.public_url = s.public_url.rstrip("/")
        self._subs: dict[str, Subscription] = {}
        self._subs_at = -1.0
        self._cursor: int | None = None
        self._stored: str | None = None
        self._next_deadlines = 0.0
        self._fresh: set[str] = set()
        """Parties that just subscribed: their deadlines are looked at in the next round."""
        self._next_prune = 0.0
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="cbmnet-alert-send")

    # ---- subscriptions -----------------------------------------------------------------

    def subscriptions(self) -> dict[str, Subscription]:
        now = time.monotonic()
        if now - self._subs_at > 2.0:
            self._subs = {
                p: load_subscription(p, t) for p, t in self.store.alert_subscriptions().items()
            }
            self._subs_at = now
        return self._subs

    def subscription_of(self, party: str) -> Subscription | None:
        text = self.store.alert_subscriptions().get(party)
        return None if text is None else load_subscription(party, text)

    def log_of(self, party: str, limit: int) -> list[dict[str, Any]]:
        """The party's alerts as the dashboard and the API show them (times as text)."""
        out = []
        for r in self.store.alert_log(party, limit):
            body = json.loads(r["payload"])
            done = r["delivered_ms"]
            out.append(
                {
                    "created": format_time(r["created_ms"]),
                    "kind": body.get("kind"),
                    "summary": body.get("summary"),
                    "link": body.get("link"),
                    "channel": r["channel"],
                    "target": r["target"],
                    "attempts": r["attempts"],
                    "status": r["status"],
                    "last_error": r["last_error"],
                    "delivered": format_time(done) if done is not None else None,
                    "delay_ms": done - r["created_ms"] if done is not None else None,
                }
            )
        return out

    def subscribe(self, sub: Subscription | None, party: str) -> None:
        self.store.put_alert_subscription(party, None if sub is None else json.dumps(sub.to_json()))
        self._subs_at = -1.0
        self._fresh.add(party)  # a new subscriber hears of its deadlines at once

    # ---- deriving ------------------------------------------------------------------------

    def derive(self, now: int) -> int:
        """Queue the alerts of entries committed since the last call (and, every minute,
        of deadlines and findings); answers how many were new."""
        subs = self.subscriptions()
        committed = self.hub.committed
        if self._cursor is None:
            # Where the last process stopped: entries committed while no hub ran are
            # alerted after a restart, up to MAX_BACKLOG of them (older news is stale).
            stored = self.store.get_meta(META_CURSOR)
            start = int(stored) if stored is not None and stored.isdigit() else committed
            if committed - start > MAX_BACKLOG:
                log.warning("alerts: %d entries since the last run; alerting the last %d",
                            committed - start, MAX_BACKLOG)  # fmt: skip
                start = committed - MAX_BACKLOG
            self._cursor = min(start, committed)
            self._stored = stored
        alerts: list[Alert] = []
        if subs and committed > self._cursor:
            for index in range(self._cursor, committed):
                alerts += self._entry_alerts(index, subs)
        new = self._queue(alerts, subs, now)
        # Only once they are queued does the cursor move: a failure above retries them.
        self._cursor = committed
        if self._stored != str(committed):
            self.store.set_meta(META_CURSOR, str(committed))
            self._stored = str(committed)
        due = time.monotonic() >= self._next_deadlines
        parties = list(subs) if due else [p for p in self._fresh if p in subs]
        self._fresh.clear()
        if due:
            self._next_deadlines = time.monotonic() + DEADLINES_EVERY_S
        for party in parties:
            try:
                new += self._queue(self._deadline_alerts(party, subs[party], now), subs, now)
            except Exception:  # one party's report must not stop the others' alerts
                log.exception("alerts: deadlines of %s not looked at", party)
        return new

    def _deadline_alerts(self, party: str, sub: Subscription, now: int) -> list[Alert]:
        out = []
        for ag in self.hub.views.agreements_of(party):
            wanted = frozenset(k for k in ("due_7d", "due_24h", "finding") if sub.wants(k, ag))
            if not wanted:
                continue
            rep = self.hub.views.report_for(party, ag, now)
            for a in deadline_alerts(party, ag, rep, now, wanted):
                if a.kind == "finding" and (
                    a.facts["due"] is None or _ms(a.facts["due"]) < sub.since_ms
                ):
                    continue
                out.append(a)
        return out

    def _entry_alerts(self, index: int, subs: dict[str, Subscription]) -> list[Alert]:
        e, readers = self.hub.views.entry_readers(index, list(subs))
        if not readers:
            return []
        doc: dict[str, Any] = {}
        if e.payload_type in (PT_HOTLINE, PT_HUB, PT_EVENT):
            env = json.loads(self.hub.cached_envelope(index) or self.hub.envelope(index))
            doc = json.loads(base64.b64decode(env["payload"]))
        agreement = e.agreement or _code(doc.get("agreement"), None)
        if agreement is None and doc.get("channel") is not None:
            agreement = self.hub.views.channel_agreement(str(doc.get("channel")))
        out = []
        for party in sorted(readers):
            sub = subs[party]
            if index < sub.since_index:
                continue
            a = entry_alert(party, index, e.ms, e.payload_type, e.kind, e.author, agreement, doc)
            if a is None or not sub.wants(a.kind, agreement):
                continue
            if a.kind == "hotline" and _RANK.get(a.facts["precedence"], 0) < _RANK[sub.precedence]:
                continue
            out.append(a)
        return out

    def _queue(self, alerts: Iterable[Alert], subs: dict[str, Subscription], now: int) -> int:
        rows = []
        origin = self.hub.log.origin
        for a in alerts:
            sub = subs[a.party]
            body = a.payload(origin)
            if self.public_url:
                body["link"] = self.public_url + a.link
            text = json.dumps(body, sort_keys=True)
            rows += [(f"{a.key}|email|{m}", a.party, "email", m, text, now) for m in sub.emails]
            rows += [(f"{a.key}|webhook|{u}", a.party, "webhook", u, text, now) for u in sub.webhooks]
        return self.store.queue_alerts(rows)

    # ---- delivering ----------------------------------------------------------------------

    def deliver(self, now: int) -> int:
        """Send what is due, a few at a time in parallel (one slow receiver holds one
        sender, not everyone's alerts); answers how many went out."""
        rows = self.store.claim_alerts(now, LEASE_MS, CLAIM)
        return sum(self._senders.map(self._send, rows))

    def _send(self, row: AlertRow) -> int:
        try:
            if row.channel == "email":
                self._email(row)
            else:
                self._post(row)
        except Exception as e:  # whatever a receiver or an address does, the row is settled
            attempts = row.attempts + 1
            retry = (
                None
                if attempts >= MAX_ATTEMPTS
                else self.hub.clock() + min(3_600_000, 2_000 * 2**attempts)
            )
            reason = _why(e)
            self.store.settle_alert(row.key, row.lease, delivered_ms=None, error=reason, retry_ms=retry)
            where = (
                urlsplit(row.target).hostname if row.channel == "webhook" else row.target.split("@")[-1]
            )
            log.warning("alert %s to %s not delivered (attempt %d): %s", row.key.split("|")[0], where,
                        attempts, reason)  # fmt: skip
            return 0
        self.store.settle_alert(
            row.key, row.lease, delivered_ms=self.hub.clock(), error=None, retry_ms=None
        )
        return 1

    def _email(self, row: AlertRow) -> None:
        body = json.loads(row.payload)
        msg = EmailMessage()
        msg["From"] = self.hub.settings.smtp_from
        msg["To"] = row.target
        msg["Subject"] = _header(f"[cbmnet {body['party']}] {body['summary']}")
        msg["X-Cbmnet-Alert"] = _header(row.key)
        lines = [
            body["summary"],
            "",
            f"Hub: {body['hub']}",
            f"Agreement: {body.get('agreement') or '-'}",
            f"At: {body['at']}",
            f"Open: {body['link']}",
            "",
            "The content is not in this message: sign in to the dashboard to read it.",
        ]
        msg.set_content("\n".join(lines))
        self._smtp(msg)

    def _smtp(self, msg: EmailMessage) -> None:
        s = self.hub.settings
        if not s.smtp_host:
            raise DeliveryRefused("refused: this hub has no SMTP relay (cbmnet serve --smtp)")
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)

    def _post(self, row: AlertRow) -> None:
        body = row.payload.encode()
        sent = self.hub.clock()
        sig = self.hub.hub_signer.private_key.sign(signed_text(row.key, row.target, sent, body))
        headers = {
            "Content-Type": "application/json",
            "Cbmnet-Alert": _header(row.key),
            "Cbmnet-Sent": str(sent),
            "Cbmnet-Signature": f'keyid="{self.hub.hub_vkey}", ed25519="{_b64(sig)}"',
        }
        url, extensions = row.target, {}
        if not self.hub.settings.alerts_allow_private:
            # Connect to the address just checked, not to whatever the name resolves to
            # next: the TLS name and Host stay the subscribed ones.
            parts = urlsplit(row.target)
            host = parts.hostname or ""
            port = parts.port or 443
            ip = public_address(host, port)
            netloc = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
            extensions = {"sni_hostname": host}
        with (
            httpx.Client(timeout=httpx.Timeout(5.0), follow_redirects=False) as http,
            http.stream("POST", url, content=body, headers=headers, extensions=extensions) as r,
        ):
            status = r.status_code  # the body is not read: a slow one holds nothing
        if not 200 <= status < 300:
            raise DeliveryRefused(f"HTTP {status}")

    # ---- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Derive and deliver every half second until ``stop``; nothing a party sends or
        subscribes stops the loop (it logs and goes on)."""
        try:
            while not stop.is_set():
                try:
                    now = self.hub.clock()
                    self.derive(now)
                    self.deliver(now)
                    if time.monotonic() >= self._next_prune:
                        self._next_prune = time.monotonic() + 3600
                        self.store.prune_alerts(now - KEEP_MS)
                except Exception:
                    log.exception("alerts: round failed; next in a second")
                    stop.wait(1.0)
                stop.wait(0.5)
        finally:
            self._senders.shutdown(wait=True, cancel_futures=True)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _header(text: str) -> str:
    """One line for a mail or HTTP header: control and line-separator characters become
    spaces, at most 200 characters."""
    clean = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    return clean[:200]


def _why(e: BaseException) -> str:
    """What the delivery log says of a failure: a class, not the receiver's words (which
    would make the log a probe of what answers where)."""
    if isinstance(e, DeliveryRefused):
        return str(e)
    if isinstance(e, httpx.TimeoutException | TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return "refused by the mail relay"
    if isinstance(e, smtplib.SMTPException):
        return "mail relay error"
    if isinstance(e, httpx.ConnectError | ConnectionError):
        return "unreachable"
    return "failed"


class DeliveryRefused(Exception):
    """The receiving end answered, but not with success."""
