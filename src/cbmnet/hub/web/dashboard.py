"""The dashboard: server-rendered pages over the same Hub reads the JSON API uses.

Why here and not in app.py: the pages are a second face of the same rules. Every page
resolves the party from a session cookie (``deps.who``: a session, never an API token,
bound like a token to a key still active in the log, and revoked by signing out), then asks
the Hub methods that already cut what they return to that party; nothing on a page is
computed from entries the caller may not read.

Each page is a route of ``router`` that reaches the hub through ``deps.hub_from(request)``;
the hotline console (``web.hotline``) and the map (``web.maps``) have routers of their own.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import icalendar
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cbmnet.acts.model import SECRETARIAT
from cbmnet.acts.state import Entry
from cbmnet.agreements.model import Quota
from cbmnet.compliance.timeutil import format_time, parse_time
from cbmnet.errors import AuthError, ForbiddenError, NotFoundError
from cbmnet.hub import auth
from cbmnet.hub.deps import evaluating, hub_from, limits_of, who
from cbmnet.hub.service import Hub
from cbmnet.hub.web import i18n
from cbmnet.hub.web.charts import Sparkline, sparkline
from cbmnet.hub.web.i18n import gettext
from cbmnet.hub.web.render import add_signin_routes, render, static_path
from cbmnet.hub.web.witness import registry_policy, verdict
from cbmnet.ledger.tlogproof import format_proof

PAGE = 100
MAX_PAGE = 1000
QUOTA_KINDS = ("inspection", "evaluation", "observation_flight")
ARCHIVE_FIELDS = (
    "index",
    "integrated_at",
    "author",
    "kind",
    "agreement",
    "form",
    "event_id",
    "ref",
    "exercise",
)

DEADLINES_PAGE = 500
"""Obligations on one deadlines page; the rest are a "next" link (and the .ics feed)."""
DEADLINE_VIEWS: dict[str, tuple[str, ...]] = {
    "open": ("pending", "missed"),
    "pending": ("pending",),
    "missed": ("missed",),
    "late": ("late",),
    "met": ("met",),
    "all": ("pending", "missed", "late", "met"),
}
TREND_MONTHS = 12
"""The overview's sparklines cover the last year, month by month."""


def trends(months: list[str], rows: list[dict[str, Any]]) -> dict[str, Sparkline]:
    """Sparklines of one party's indicator rows: timeliness, checks passed, open findings."""
    by_month = {r["month"]: r for r in rows}

    def pick(get: Any) -> list[float | None]:
        return [get(by_month[m]) if m in by_month else None for m in months]

    return {
        "timeliness": sparkline(pick(lambda r: r["timeliness"]["share"]), months, lo=0.0, hi=1.0),
        "checks": sparkline(
            pick(lambda r: r["responsiveness"]["checks"]["share"]), months, lo=0.0, hi=1.0
        ),
        "findings": sparkline(
            pick(lambda r: float(r["compliance"]["open"]["total"])), months, lo=0.0, fmt="{:.0f}"
        ),
    }


def key_spans(keys: Iterable[Any]) -> list[str]:
    """Each signing key's span in the log: a revoked key shows the index from which acts
    signed with it are refused (a stolen key's boundary); earlier acts stand."""
    out = []
    for n, k in enumerate(keys, start=1):
        if k.until is None:
            out.append(gettext("key %(n)s: signs from entry %(since)s") % {"n": n, "since": k.since})
        elif k.revoked:
            text = gettext(
                "key %(n)s: REVOKED at entry %(until)s (signed entries %(since)s to %(last)s)"
            )
            out.append(text % {"n": n, "until": k.until, "since": k.since, "last": k.until - 1})
        else:
            text = gettext(
                "key %(n)s: retired at entry %(until)s (signed entries %(since)s to %(last)s)"
            )
            out.append(text % {"n": n, "until": k.until, "since": k.since, "last": k.until - 1})
    return out


def _int(raw: str | None, default: int, lo: int, hi: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return max(lo, min(hi, value))


def _text(raw: str | None) -> str | None:
    return raw[:128] if raw else None


# ---- iCalendar (RFC 5545) ------------------------------------------------------------------


def _utc(iso: str) -> datetime:
    return datetime.fromtimestamp(parse_time(iso, "due") / 1000, tz=UTC)


def ics_feed(origin: str, party: str, obligations: Iterable[dict[str, Any]], now_ms: int) -> str:
    """A VCALENDAR with one VEVENT per obligation, UIDs stable so calendars update in place.
    Written by the ``icalendar`` library (escaping, folding at 75 octets, UTC times)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//cbmnet//dashboard//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"cbmnet deadlines of {party}")
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    for o in obligations:
        event = icalendar.Event()
        event.add("uid", f"{o['agreement']}/{o['id']}@{origin}")
        event.add("dtstamp", stamp)
        event.add("dtstart", _utc(o["due"]))
        event.add("summary", f"{o['party']} due: {o['provision']} ({o['kind']})")
        subjects = ", ".join(o["subjects"])
        event.add("description", f"{o['agreement']} obligation {o['id']}; subjects: {subjects}")
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    return bytes(cal.to_ical()).decode()


# ---- the pages -----------------------------------------------------------------------------

router = APIRouter()


@router.get("/dashboard/static/{name:path}", include_in_schema=False)
def static_file(name: str) -> Response:
    """The dashboard's own files and the vendored libraries (``make assets``), from one folder.

    A route, not a mount, so that it sits in the route table the authorisation test walks.
    """
    found = static_path(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    path, media_type = found
    return Response(
        path.read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def obligations_of(hub: Hub, party: str, now: int) -> list[dict[str, Any]]:
    """The caller's own obligations (the secretariat: everyone's), by due date."""
    out: list[dict[str, Any]] = []
    for ag in hub.views.agreements_of(party):
        rep = hub.views.report_for(party, ag, now)
        out += [
            {**o, "agreement": ag}
            for o in rep["obligations"]
            if party == SECRETARIAT or o["party"] == party
        ]
    return sorted(out, key=lambda o: (o["due"], o["agreement"], o["id"]))


def archive_rows(hub: Hub, party: str, request: Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    q = request.query_params
    filters = {k: _text(q.get(k)) for k in ("q", "agreement", "form", "party", "kind")}
    after = _int(q.get("after"), -1, -1, 2**62)
    limit = _int(q.get("limit"), PAGE, 1, MAX_PAGE)
    needle = filters["q"].casefold() if filters["q"] else None

    def found(e: Entry) -> bool:
        """Free text: a case-blind substring of the event id, form, kind or author."""
        assert needle is not None
        return any(
            needle in v.casefold() for v in (e.event_id, e.form, e.kind, e.author) if v is not None
        )

    def match(e: Entry) -> bool:
        return (
            e.agreement is not None
            and (filters["agreement"] is None or e.agreement == filters["agreement"])
            and (filters["form"] is None or e.form == filters["form"])
            and (filters["party"] is None or e.author == filters["party"])
            and (filters["kind"] is None or e.kind == filters["kind"])
            and (needle is None or found(e))
        )

    items = hub.views.entries_for(party, after=after, limit=limit, match=match, author=filters["party"])
    rows = [
        {
            "index": e.index,
            "integrated_at": format_time(e.ms),
            "author": e.author,
            "kind": e.kind,
            "agreement": e.agreement,
            "form": e.form,
            "event_id": e.event_id,
            "ref": e.ref,
            "exercise": e.exercise,
            "envelope_url": f"/v1/entries/{e.index}",
            "receipt_url": f"/v1/entries/{e.index}/proof",
        }
        for e in items
    ]
    nxt = items[-1].index if len(items) == limit else None
    return rows, {"filters": filters, "limit": limit, "after": after, "next": nxt}


def open_session(hub: Hub, code: str) -> tuple[str, str, int]:
    """(party, session, expiry) for a sign-in code, spent here once on any process."""
    now = int(time.time())
    party, key = auth.redeem_signin(
        hub.token_secret, code, now, lambda n, until: hub.rstore.spend_nonce(n, until, now)
    )
    hub.sync()
    if not hub.views.key_active(party, key):
        raise AuthError(f"the key this code was issued to is no longer active for {party!r}")
    session, exp = auth.issue_session(hub.token_secret, party, key, now, hub.settings.token_ttl_s)
    return party, session, exp


@dataclass(frozen=True)
class _HubSignIn:
    """The hub as the sign-in pages' desk (``render.add_signin_routes``)."""

    hub: Hub

    @property
    def secret(self) -> bytes:
        return self.hub.token_secret

    def open_session(self, code: str) -> tuple[str, str, int]:
        return open_session(self.hub, code)

    def revoke(self, nonce: str, exp: int) -> None:
        self.hub.rstore.spend_nonce(nonce, exp, int(time.time()))


add_signin_routes(router, lambda request: _HubSignIn(hub_from(request)))


@router.get("/dashboard/lang", include_in_schema=False)
def choose_language(to: str = "en", back: str = "/dashboard") -> Response:
    """Set this browser's dashboard language (a cookie) and go back to the page it came from
    (only a page of this dashboard: never a redirect elsewhere)."""
    lang = to if to in i18n.LANGUAGES else i18n.DEFAULT
    target = (
        back if back.startswith("/dashboard") and "//" not in back and "\\" not in back else "/dashboard"
    )
    resp = RedirectResponse(target[:512], status_code=303)
    resp.set_cookie(
        i18n.COOKIE, lang, max_age=365 * 86400, path="/dashboard", httponly=True, samesite="strict"
    )
    return resp


@router.get("/dashboard", include_in_schema=False)
def overview(request: Request) -> Response:
    party = evaluating(request)
    hub = hub_from(request)
    now = hub.clock()
    parties = [(p.id, p.name, key_spans(p.keys)) for p in hub.views.parties()]
    indicators: list[dict[str, Any]] = []
    for ag in hub.views.agreements_of(party):
        doc = limits_of(request).evaluations.call(
            party, partial(hub.views.indicators_for, party, ag, now, last=TREND_MONTHS, own=True)
        )
        latest = doc["months"][-1] if doc["months"] else None
        recent = doc["months"][-TREND_MONTHS:]
        series: dict[str, list[dict[str, Any]]] = {}
        for r in doc["rows"]:
            if r["month"] in recent:
                series.setdefault(r["party"], []).append(r)
        indicators += [
            {**r, "agreement": ag, "trend": trends(recent, series.get(r["party"], []))}
            for r in doc["rows"]
            if r["month"] == latest and (party == SECRETARIAT or r["party"] == party)
        ]
    obs = limits_of(request).evaluations.call(party, partial(obligations_of, hub, party, now))
    return render(
        "overview.html",
        party=party,
        agreements=sorted(hub.agreements),
        parties=parties,
        indicators=indicators,
        due=[o for o in obs if o["status"] == "pending"][:20],
        overdue=[o for o in obs if o["status"] == "missed"][-20:],
        as_of=format_time(now),
    )


@router.get("/dashboard/deadlines", include_in_schema=False)
def deadlines(request: Request) -> Response:
    """A timeline of obligations by month, open ones first by default, a page at a time
    (the secretariat's whole year is tens of thousands: never one page of them all)."""
    party = evaluating(request)
    hub = hub_from(request)
    q = request.query_params
    status = q.get("status") or "open"
    if status not in DEADLINE_VIEWS:
        status = "open"
    who_owes = _text(q.get("party"))
    ag = _text(q.get("agreement"))
    obs = limits_of(request).evaluations.call(party, partial(obligations_of, hub, party, hub.clock()))
    counts = dict.fromkeys(("pending", "missed", "late", "met"), 0)
    for o in obs:
        counts[o["status"]] = counts.get(o["status"], 0) + 1
    wanted = DEADLINE_VIEWS[status]
    sel = [
        o
        for o in obs
        if o["status"] in wanted
        and (who_owes is None or o["party"] == who_owes)
        and (ag is None or o["agreement"] == ag)
    ]
    offset = _int(q.get("offset"), 0, 0, max(0, len(sel) - 1))
    page = sel[offset : offset + DEADLINES_PAGE]
    months: list[tuple[str, list[dict[str, Any]]]] = []
    for o in page:
        m = str(o["due"])[:7]
        if not months or months[-1][0] != m:
            months.append((m, []))
        months[-1][1].append(o)
    nxt = offset + DEADLINES_PAGE if offset + DEADLINES_PAGE < len(sel) else None
    return render(
        "deadlines.html",
        party=party,
        months=months,
        counts=counts,
        shown=len(page),
        total=len(sel),
        offset=offset,
        next=nxt,
        filters={"status": status, "party": who_owes or "", "agreement": ag or ""},
        views=list(DEADLINE_VIEWS),
        agreements=hub.views.agreements_of(party),
    )


@router.get("/dashboard/deadlines.ics", include_in_schema=False)
def deadlines_ics(request: Request) -> Response:
    """The caller's pending obligations as a feed its own calendar subscribes to."""
    party = evaluating(request)
    hub = hub_from(request)
    now = hub.clock()
    obs = limits_of(request).evaluations.call(party, partial(obligations_of, hub, party, now))
    pending = [o for o in obs if o["status"] == "pending"]
    return Response(
        ics_feed(hub.log.origin, party, pending, now),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/dashboard/archive", include_in_schema=False)
def archive(request: Request) -> Response:
    party = who(request)
    rows, page = archive_rows(hub_from(request), party, request)
    return render("archive.html", party=party, rows=rows, page=page, fields=ARCHIVE_FIELDS)


@router.get("/dashboard/archive.csv", include_in_schema=False)
def archive_csv(request: Request) -> Response:
    party = who(request)
    rows, _ = archive_rows(hub_from(request), party, request)
    buf = io.StringIO()
    out = csv.DictWriter(buf, fieldnames=[*ARCHIVE_FIELDS, "envelope_url", "receipt_url"])
    out.writeheader()
    for r in rows:
        out.writerow({k: _cell(v) for k, v in r.items()})
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="archive.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/dashboard/archive.json", include_in_schema=False)
def archive_json(request: Request) -> Response:
    party = who(request)
    rows, page = archive_rows(hub_from(request), party, request)
    return JSONResponse({"items": rows, "next": page["next"]}, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/log", include_in_schema=False)
def log_page(request: Request) -> Response:
    """Checkpoints, latest first, each with the cosignatures witnesses sent for it."""
    party = who(request)
    hub = hub_from(request)
    limit = _int(request.query_params.get("limit"), 20, 1, 200)
    latest = hub.rstore.latest_checkpoint()
    top = latest.seq + 1 if latest else 0
    before = _int(request.query_params.get("before"), top, 0, top)
    cps = [c for c in hub.rstore.checkpoints_after(max(-1, before - limit - 1), limit) if c.seq < before]
    wp = registry_policy(hub.views.policy_witnesses(), hub.log.vkey)
    lines: dict[int, list[str]] = {}
    if cps:
        for cs in hub.rstore.cosignatures_between(cps[0].seq, cps[-1].seq):
            lines.setdefault(cs.checkpoint_seq, []).extend(cs.line.splitlines())
    rows: list[dict[str, Any]] = [
        {
            "seq": c.seq,
            "size": c.size,
            "created_at": format_time(c.created_ms),
            "note": c.note,
            "cosignatures": lines.get(c.seq, []),
            "verdict": verdict(c.note, lines.get(c.seq, []), wp),
        }
        for c in reversed(cps)
    ]
    older = rows[-1]["seq"] if rows and rows[-1]["seq"] > 0 else None
    return render("log.html", party=party, checkpoints=rows, older=older, limit=limit, policy=wp)


def verify_page(hub: Hub, party: str, index: int | None) -> Response:
    if index is None:
        return render("verify.html", 400, party=party, error="give an entry index", entry=None)
    try:
        e = hub.views.readable(party, index)
        proof = format_proof(hub.receipt_bundle(index))
    except (ForbiddenError, NotFoundError) as err:
        status = 403 if isinstance(err, ForbiddenError) else 404
        return render("verify.html", status, party=party, error=str(err)[:300], entry=None)
    entry = {
        "index": e.index,
        "author": e.author,
        "kind": e.kind,
        "agreement": e.agreement,
        "event_id": e.event_id,
        "integrated_at": format_time(e.ms),
    }
    return render(
        "verify.html",
        scripts=True,
        party=party,
        error=None,
        entry=entry,
        proof=proof,
        vkey=hub.log.vkey,
    )


@router.get("/dashboard/verify", include_in_schema=False)
def verify_form(request: Request) -> Response:
    """The log page's form: ``?index=N`` shows the same page as ``/dashboard/verify/N``."""
    party = who(request)
    raw = request.query_params.get("index")
    return verify_page(hub_from(request), party, _int(raw, -1, -1, 2**62) if raw else None)


@router.get("/dashboard/verify/{index}", include_in_schema=False)
def verify_entry(request: Request, index: str) -> Response:
    """One readable entry's tlog-proof and the log's key, checked by verify.js in the browser."""
    party = who(request)
    return verify_page(hub_from(request), party, _int(index, -1, -1, 2**62))


def readable_or_page(hub: Hub, party: str, raw: str) -> Response | int:
    index = _int(raw, -1, -1, 2**62)
    try:
        hub.views.readable(party, index)
    except (ForbiddenError, NotFoundError) as err:
        status = 403 if isinstance(err, ForbiddenError) else 404
        return Response(str(err)[:300], status_code=status, media_type="text/plain")
    return index


@router.get("/dashboard/entries/{index}/envelope", include_in_schema=False)
def entry_envelope(request: Request, index: str) -> Response:
    """The signed DSSE envelope exactly as logged, one click from the archive."""
    party = who(request)
    hub = hub_from(request)
    got = readable_or_page(hub, party, index)
    if isinstance(got, Response):
        return got
    return Response(
        hub.envelope(got),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="entry-{got}.dsse.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/dashboard/entries/{index}/proof", include_in_schema=False)
def entry_proof(request: Request, index: str) -> Response:
    """The entry's receipt: a tlog-proof that ``cbmnet verify`` checks offline."""
    party = who(request)
    hub = hub_from(request)
    got = readable_or_page(hub, party, index)
    if isinstance(got, Response):
        return got
    return Response(
        format_proof(hub.receipt_bundle(got)),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="entry-{got}.tlog-proof"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/dashboard/quotas", include_in_schema=False)
def quotas(request: Request) -> Response:
    """Per agreement with quota measures: what each host owes the caller, and its requests."""
    party = evaluating(request)
    hub = hub_from(request)
    run = limits_of(request).evaluations.call
    sections = [
        q
        for ag in hub.views.agreements_of(party)
        if (q := run(party, partial(quota_section, hub, party, ag))) is not None
    ]
    return render("quotas.html", party=party, sections=sections, as_of=format_time(hub.clock()))


def quota_section(hub: Hub, party: str, ag: str) -> dict[str, Any] | None:
    """One agreement's tables: each row is ``Hub.quota_for`` for the caller, as the API
    answers it (counted on what the caller may read, ADR 0006); nothing else is counted."""
    measures = [m for m in hub.agreements[ag].measures if isinstance(m, Quota)]
    kinds = [k for k in QUOTA_KINDS if any(m.request_kind == k for m in measures)]
    if not kinds:
        return None
    hosts = hub.views.hosts_for(party, ag)
    docs = hub.views.readable_events(party, ag)
    tables = []
    for kind in kinds:
        of_kind = [m for m in measures if m.request_kind == kind]
        rows = []
        if party != SECRETARIAT:
            for host in hosts:
                q = hub.views.quota_for(party, ag, host, kind)
                total = _first([_quota_total(m, host) for m in of_kind])
                left = q["remaining_for_host"]
                used = total - left if total is not None and left is not None else None
                rows.append({**q, "host": host, "total": total, "used": used})
        tables.append(
            {
                "kind": kind,
                "rows": rows,
                "requests": requests_of(party, docs, kind),
                "per_year": _first([_quota_total(m, None) for m in of_kind]),
            }
        )
    return {"agreement": ag, "tables": tables}


def requests_of(party: str, docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Requests of ``kind`` the caller made or was sent, with the answer it may read."""
    answers = {d.get("request"): d for d in docs if d.get("type") == "response" and d.get("request")}
    out = []
    for d in docs:
        if d.get("type") != "request" or d.get("kind") != kind:
            continue
        if party not in (SECRETARIAT, d.get("party"), d.get("to")):
            continue
        ans = answers.get(d["id"])
        decision = ans.get("decision") if ans else None
        out.append(
            {
                "id": d["id"],
                "from": d.get("party"),
                "to": d.get("to"),
                "time": d.get("time"),
                "index": d["log_index"],
                "state": f"answered: {decision}" if ans else "pending",
                # The page words the state in the reader's language (this runs in the
                # evaluation threads, outside the request's language).
                "answered": ans is not None,
                "decision": decision,
            }
        )
    return out


def _quota_total(m: Quota, host: str | None) -> int | None:
    """The host's yearly quota where the measure states it as a plain figure."""
    if m.per_units is not None or m.groups:
        return None
    return m.per_party.get(host, m.per_year) if host else m.per_year


def _first(values: list[int | None]) -> int | None:
    return next((v for v in values if v is not None), None)


def _cell(value: Any) -> str:
    """CSV cells: text as is, None empty; a leading formula character defused for spreadsheets."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not text.lstrip("-").isdigit() else text
