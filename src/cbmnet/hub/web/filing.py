"""The officer's desk: forms for every act a party files, derived from the agreement.

The page lists the forms of ``agreements.forms`` for each agreement the party is bound by;
``static/file.js`` renders the chosen one, asks the hub for a dry run as the officer types
(the deadline this act meets or misses, what it starts, the findings it would add or
clear), then builds the event, signs it as a DSSE envelope in the browser with the key the
officer loads (docs/adr/0004: the key never leaves the page) and posts it to ``/v1/acts``
like any client. The receipt (a tlog-proof) comes back to be saved.

The dry run checks the draft exactly as ``/v1/acts`` would (``ReadModel.check_draft``), so
a wrong value is refused in the page with the hub's own words, before anything is signed.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cbmnet.acts.model import MAX_BATCH_BYTES, MAX_PAYLOAD_BYTES, PT_EVENT, SECRETARIAT
from cbmnet.agreements.forms import forms_of
from cbmnet.compliance.timeutil import format_time
from cbmnet.errors import FormatError, TooLargeError
from cbmnet.hub.deps import evaluating, hub_from, limits_of, who
from cbmnet.hub.web import i18n
from cbmnet.hub.web.i18n import N_, gettext
from cbmnet.hub.web.maps import vendor_ready
from cbmnet.hub.web.render import render

router = APIRouter()

UI = {
    "key_loaded": N_("Key %(key)s of %(party)s loaded: %(purpose)s"),
    "key_not_loaded": N_("Key not loaded: %(error)s"),
    "key_purpose": N_("acts are signed in this page."),
    "required": N_("(required)"),
    "choose": N_("— choose —"),
    "none": N_("— none —"),
    "event_id": N_("Event id (unique in the agreement's log)"),
    "meets": N_("Meets"),
    "starts": N_("Starts"),
    "concerns": N_("Concerns (left open)"),
    "adds": N_("Findings it would add"),
    "clears": N_("Findings it would clear"),
    "nothing": N_("Accepted by the hub; it meets no deadline and changes no finding."),
    "nothing_to_choose": N_("Nothing to choose from yet."),
    "pick_point": N_("Click a point"),
    "pick_area": N_("Draw an area (click its corners)"),
    "pick_close": N_("Close the area"),
    "pick_clear": N_("Clear"),
    "serves": N_("The measures it serves"),
    "under_hour": N_("under an hour"),
    "n_days": N_("%(n)s days"),
    "n_hours": N_("%(n)s hours"),
    "due_at": N_("due %(time)s"),
    "owes": N_("%(party)s owes %(what)s"),
    "met_on_time": N_("met on time"),
    "met_late": N_("met, %(late)s late"),
    "overdue": N_("already %(late)s overdue"),
    "past_due": N_("open, %(late)s past due (judged at the period's end)"),
    "pending": N_("pending"),
    "obs_done": N_("Logged at entry %(index)s and stored: %(bytes)s bytes."),
    "not_sent": N_("Not sent"),
    "amend_label": N_("This act"),
    "amend_new": N_("is new"),
    "amend_correct": N_("corrects %(id)s"),
    "amend_withdraw": N_("withdraws %(id)s"),
}
"""The page script's own words, in the reader's language (file.js reads them from file.json)."""

AgreementId = Annotated[str, Query(max_length=128)]
MaybeAgreement = Annotated[str | None, Query(max_length=128)]


@router.get("/dashboard/file", include_in_schema=False)
def file_page(request: Request, agreement: MaybeAgreement = None) -> Response:
    """The forms of each agreement the caller is bound by; file.js renders the chosen one."""
    party = who(request)
    hub = hub_from(request)
    agreements = hub.views.agreements_of(party)
    chosen = agreement if agreement in agreements else (agreements[0] if agreements else None)
    lang = i18n.CURRENT.get()
    forms = [f.to_json(gettext, lang) for f in forms_of(hub.agreements[chosen])] if chosen else []
    return render(
        "file.html",
        scripts=True,
        party=party,
        agreements=agreements,
        agreement=chosen,
        forms=forms,
        as_of=format_time(hub.clock()),
        assets=vendor_ready(),
    )


@router.get("/dashboard/file.json", include_in_schema=False)
def file_json(request: Request, agreement: AgreementId) -> Response:
    """One agreement's forms for the caller, and what its pickers offer (cut to the caller)."""
    party = who(request)
    hub = hub_from(request)
    choices = hub.views.filing(party, agreement)
    doc = {
        "party": party,
        "agreement": agreement,
        "forms": [f.to_json(gettext, i18n.CURRENT.get()) for f in forms_of(hub.agreements[agreement])],
        "ui": {k: gettext(v) for k, v in UI.items()},
        "choices": choices,
        "signing_keys": [] if party == SECRETARIAT else [_b64(k) for k in hub.views.signing_keys(party)],
        "payload_type": PT_EVENT,
        "origin": hub.log.origin,
        "max_batch_bytes": MAX_BATCH_BYTES,
        "now_ms": hub.clock(),
    }
    return JSONResponse(doc, headers={"Cache-Control": "no-store"})


@router.post("/dashboard/file/dry-run", include_in_schema=False)
async def dry_run(request: Request, agreement: AgreementId) -> Response:
    """What the draft in the body would do if sent now; 4xx with the hub's words if it
    would be refused. Reads only: nothing is logged, nothing is signed."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        # A form of another site cannot post JSON without a preflight this hub refuses.
        raise FormatError("a draft is sent as application/json")
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > MAX_PAYLOAD_BYTES:
        raise TooLargeError(f"a draft is at most {MAX_PAYLOAD_BYTES} bytes, with its Content-Length")
    party = await run_in_threadpool(evaluating, request)
    body = await request.body()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise TooLargeError(f"a draft is at most {MAX_PAYLOAD_BYTES} bytes")
    hub = hub_from(request)
    out = await limits_of(request).evaluations.run(
        party, partial(hub.views.dry_run, party, agreement, body, hub.clock())
    )
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
