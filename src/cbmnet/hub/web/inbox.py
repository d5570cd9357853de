"""The inbox as a work queue: what the party must answer or file, soonest first; and the
party's alerts (its subscription and their delivery log).

Each row is an obligation the engine puts on the caller (cut to what it may read, as on
every page), with the event it concerns and a button that opens the form meeting it,
prefilled (``/dashboard/file?form=…&request=…``): accept, refuse or answer a request; the
quota a refusal would be judged against, where the agreement sets one (ADR 0006: counted
on what the host may read). Below, each request the party made or received is shown as a
thread with its answers and the reports naming it, in log order.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cbmnet.acts.model import SECRETARIAT
from cbmnet.agreements.forms import answering_form, forms_of
from cbmnet.agreements.model import Quota
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import CbmnetError
from cbmnet.hub.deps import evaluating, hub_from, limits_of, who
from cbmnet.hub.service import Hub
from cbmnet.hub.web.i18n import N_, gettext
from cbmnet.hub.web.render import render

router = APIRouter()

DECISIONS = ((N_("Accept"), "accept"), (N_("Refuse"), "refuse"), (N_("Answer"), "answer"))
MAX_ROWS = 500
"""Rows of the work queue on one page (the soonest); the deadlines page has them all."""


def work_queue(hub: Hub, party: str, agreement: str, now: int) -> dict[str, Any]:
    """One agreement's open obligations of ``party`` with their forms, and its threads."""
    rep = hub.views.report_for(party, agreement, now)
    docs = {d["id"]: d for d in hub.views.readable_events(party, agreement)}
    forms = forms_of(hub.agreements[agreement])
    quota_kinds = {m.request_kind for m in hub.agreements[agreement].measures if isinstance(m, Quota)}
    rows = []
    for o in rep["obligations"]:
        if o["party"] != party or o["status"] not in ("pending", "missed"):
            continue
        subject = docs.get(o["subjects"][0]) if o["subjects"] else None
        row: dict[str, Any] = {**o, "subject": subject, "actions": [], "quota": None}
        found = answering_form(forms, o["id"])
        if found is not None and subject is not None:
            form, slot = found
            base = {"agreement": agreement, "form": form.id, slot: subject["id"]}
            if form.id == "response":
                row["actions"] = [
                    (label, {}, "/dashboard/file?" + urlencode({**base, "decision": decision}))
                    for label, decision in DECISIONS
                ]
                if subject.get("type") == "request" and subject.get("kind") in quota_kinds:
                    try:
                        row["quota"] = hub.views.quota_of_request(party, agreement, subject["id"])
                    except CbmnetError:
                        row["quota"] = None
            else:
                row["actions"] = [(form.title, form.title_args, "/dashboard/file?" + urlencode(base))]
        rows.append(row)
    replies: dict[str, list[dict[str, Any]]] = {}
    for r in docs.values():
        if r["type"] != "request" and isinstance(r.get("request"), str):
            replies.setdefault(r["request"], []).append(r)
    asked = [
        d
        for d in docs.values()
        if d["type"] == "request" and party in (SECRETARIAT, d["party"], d.get("to"))
    ]
    asked.sort(key=lambda d: d["log_index"], reverse=True)
    threads: list[dict[str, Any]] = [
        {"request": d, "replies": sorted(replies.get(d["id"], ()), key=lambda r: r["log_index"])}
        for d in asked
    ]
    del threads[MAX_ROWS:]
    return {"agreement": agreement, "rows": rows, "threads": threads}


@router.get("/dashboard/inbox", include_in_schema=False)
def inbox(request: Request) -> Response:
    """The caller's work queue across its agreements, soonest deadline first."""
    party = evaluating(request)
    hub = hub_from(request)
    now = hub.clock()
    run = limits_of(request).evaluations.call
    queues = [
        run(party, partial(work_queue, hub, party, ag, now)) for ag in hub.views.agreements_of(party)
    ]
    rows = sorted(
        ({**r, "agreement": q["agreement"]} for q in queues for r in q["rows"]),
        key=lambda r: (r["due"], r["agreement"], r["id"]),
    )
    for r in rows:  # in this thread: the page's language is this request's
        r["actions"] = [
            (msg, gettext(msg) % args if args else gettext(msg), href)
            for msg, args, href in r["actions"]
        ]
    return render(
        "inbox.html",
        party=party,
        rows=rows[:MAX_ROWS],
        more=max(0, len(rows) - MAX_ROWS),
        threads=[(q["agreement"], t) for q in queues for t in q["threads"]],
        as_of=format_time(now),
    )


@router.get("/dashboard/alerts", include_in_schema=False)
def alerts_page(request: Request) -> Response:
    """The caller's alert subscription and its delivery log (set with ``cbmnet alerts``)."""
    party = who(request)
    hub = hub_from(request)
    sub = hub.alerts.subscription_of(party)
    return render(
        "alerts.html",
        party=party,
        subscription=sub.to_json() if sub is not None else None,
        log=hub.alerts.log_of(party, 100),
        as_of=format_time(hub.clock()),
    )
