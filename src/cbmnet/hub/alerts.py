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
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from cbmnet.acts.model import PT_EVENT, PT_HOTLINE, PT_HUB
from cbmnet.communication.hotline import PRECEDENCES
from cbmnet.compliance.timeutil import MS_PER_DAY, format_time
from cbmnet.errors import CbmnetError, FormatError
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
LEASE_MS = 60_000
"""How long a claimed alert is this process's to send before another may try it."""
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
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
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FormatError(f"{where}: an https:// URL")
    if parts.username or parts.password:
        raise FormatError(f"{where}: no user or password in the URL (the body is signed instead)")
    if allow_private:
        return url
    if parts.scheme != "https":
        raise FormatError(f"{where}: an https:// URL (this hub does not send alerts in clear)")
    host = parts.hostname
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (ip is not None and (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved))
    ):
        raise FormatError(f"{where}: {host!r} is a private address; this hub sends only to public ones")
    return url


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
        return Alert(
            key,
            party,
            "hotline",
            agreement,
            ms,
            f"{prec.upper()} hotline message from {author} on {doc.get('channel')}",
            "/dashboard/hotline",
            {"entry": index, "from": author, "channel": doc.get("channel"), "precedence": prec},
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
            f"an obligation of {party} is overdue: {doc.get('provision', '')} (logged by the hub)",
            "/dashboard/inbox", {"entry": index},
        )  # fmt: skip
    if payload_type == PT_EVENT and author != party:
        what = doc.get("form") or doc.get("kind") or doc.get("type")
        return Alert(
            key,
            party,
            "addressed",
            agreement,
            ms,
            f"{str(what).replace('_', ' ')} ({doc.get('type')}) from {author} under {agreement}",
            f"/dashboard/archive?agreement={agreement}",
            {"entry": index, "from": author, "event": doc.get("id"), "type": doc.get("type")},
        )
    return None


def deadline_alerts(party: str, agreement: str, report: dict[str, Any], now: int) -> list[Alert]:
    """Obligations of ``party`` falling due within 7 days and within 24 hours; findings
    against it. Keys name the obligation or finding, so each goes out once."""
    out = []
    for o in report["obligations"]:
        if o["party"] != party or o["status"] != "pending":
            continue
        left = _ms(o["due"]) - now
        for kind, within in (("due_24h", MS_PER_DAY), ("due_7d", 7 * MS_PER_DAY)):
            if 0 < left <= within:
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
    for f in report["findings"]:
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
    from cbmnet.compliance.timeutil import parse_time

    return parse_time(text, "due")


def _sign(hub_key: Any, keyid: str, body: bytes) -> str:
    return f'keyid="{keyid}", ed25519="{base64.b64encode(hub_key.private_key.sign(body)).decode()}"'


class AlertDesk:
    """Derives alerts from the committed log and the engine, queues them, delivers them."""

    def __init__(self, hub: Hub, store: Store, send_mail: Callable[[EmailMessage], None] | None = None):
        self.hub = hub
        self.store = store
        s = hub.settings
        self.public_url = s.public_url.rstrip("/")
        self._send_mail = send_mail or self._smtp
        self._subs: dict[str, Subscription] = {}
        self._subs_at = -1.0
        self._cursor: int | None = None
        self._stored: str | None = None
        self._next_deadlines = 0.0
        self.lock = threading.Lock()

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
        self._next_deadlines = 0.0  # a new subscriber hears of its deadlines at once

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
        self._cursor = committed
        if subs and time.monotonic() >= self._next_deadlines:
            self._next_deadlines = time.monotonic() + DEADLINES_EVERY_S
            for party, sub in subs.items():
                for ag in self.hub.views.agreements_of(party):
                    if (
                        not sub.wants("due_7d", ag)
                        and not sub.wants("due_24h", ag)
                        and not sub.wants("finding", ag)
                    ):
                        continue
                    try:
                        rep = self.hub.views.report_for(party, ag, now)
                    except CbmnetError as e:
                        log.warning("alerts: no report of %s for %s: %s", ag, party, e)
                        continue
                    for a in deadline_alerts(party, ag, rep, now):
                        if a.kind == "finding" and (
                            a.facts["due"] is None or _ms(a.facts["due"]) < sub.since_ms
                        ):
                            continue
                        if sub.wants(a.kind, ag):
                            alerts.append(a)
        new = self._queue(alerts, subs, now)
        if self._stored != str(committed):
            self.store.set_meta(META_CURSOR, str(committed))  # after the queue: none lost
            self._stored = str(committed)
        return new

    def _entry_alerts(self, index: int, subs: dict[str, Subscription]) -> list[Alert]:
        e, readers = self.hub.views.entry_readers(index, list(subs))
        if not readers:
            return []
        doc: dict[str, Any] = {}
        if e.payload_type in (PT_HOTLINE, PT_HUB, PT_EVENT):
            env = json.loads(self.hub.cached_envelope(index) or self.hub.envelope(index))
            doc = json.loads(base64.b64decode(env["payload"]))
        agreement = e.agreement or doc.get("agreement")
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
        """Send what is due; answers how many went out."""
        sent = 0
        for row in self.store.claim_alerts(now, LEASE_MS, 50):
            try:
                if row.channel == "email":
                    self._email(row)
                else:
                    self._post(row)
            except (OSError, smtplib.SMTPException, httpx.HTTPError, DeliveryRefused) as e:
                attempts = row.attempts + 1
                retry = (
                    None
                    if attempts >= MAX_ATTEMPTS
                    else self.hub.clock() + min(3_600_000, 2_000 * 2**attempts)
                )
                self.store.settle_alert(row.key, delivered_ms=None, error=str(e)[:300], retry_ms=retry)
                log.warning(
                    "alert %s to %s not delivered (attempt %d): %s", row.key, row.target, attempts, e
                )
                continue
            self.store.settle_alert(row.key, delivered_ms=self.hub.clock(), error=None, retry_ms=None)
            sent += 1
        return sent

    def _email(self, row: AlertRow) -> None:
        body = json.loads(row.payload)
        msg = EmailMessage()
        msg["From"] = self.hub.settings.smtp_from
        msg["To"] = row.target
        msg["Subject"] = f"[cbmnet {body['party']}] {body['summary']}"[:200]
        msg["X-Cbmnet-Alert"] = row.key[:200]
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
        self._send_mail(msg)

    def _smtp(self, msg: EmailMessage) -> None:
        s = self.hub.settings
        if not s.smtp_host:
            raise DeliveryRefused("this hub has no SMTP relay configured (cbmnet serve --smtp)")
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)

    def _post(self, row: AlertRow) -> None:
        body = row.payload.encode()
        key = self.hub.hub_signer
        headers = {
            "Content-Type": "application/json",
            "Cbmnet-Signature": _sign(key, self.hub.hub_vkey, body),
            "Cbmnet-Alert": row.key[:200],
        }
        r = httpx.post(row.target, content=body, headers=headers, timeout=5.0, follow_redirects=False)
        if not 200 <= r.status_code < 300:
            raise DeliveryRefused(f"HTTP {r.status_code}")

    # ---- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Derive and deliver every half second until ``stop``."""
        while not stop.is_set():
            try:
                now = self.hub.clock()
                self.derive(now)
                self.deliver(now)
            except CbmnetError as e:
                log.warning("alerts: %s", e)
            stop.wait(0.5)


class DeliveryRefused(Exception):
    """The receiving end answered, but not with success."""
