"""Acts: submit a signed act (answered with a receipt), read the inbox and the entries the
caller may read, an entry's delivery status and proof; the channels the caller is in."""

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cbmnet.acts.state import Entry
from cbmnet.compliance.timeutil import format_time
from cbmnet.hub.deps import After, Caller, EntryFilters, EntryIndex, HubDep, Page, limited, limits_of
from cbmnet.hub.service import Hub
from cbmnet.ledger import dsse
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.merkle import leaf_hash
from cbmnet.ledger.tlogproof import format_proof

router = APIRouter()


class SignatureIn(BaseModel):
    keyid: str = Field(default="", max_length=256)
    sig: str = Field(max_length=256)


class EnvelopeIn(BaseModel):
    """A DSSE envelope (secure-systems-lab/dsse envelope.md)."""

    payload: str = Field(max_length=dsse.MAX_ENVELOPE_BYTES)
    payloadType: str = Field(max_length=dsse.MAX_PAYLOAD_TYPE)
    signatures: list[SignatureIn] = Field(min_length=1, max_length=dsse.MAX_SIGNATURES)


def item_json(e: Entry, envelope: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": e.index,
        "integrated_ms": e.ms,
        "integrated_at": format_time(e.ms),
        "author": e.author,
        "payload_type": e.payload_type,
        "kind": e.kind,
        "agreement": e.agreement,
        "form": e.form,
        "ref": e.ref,
        "event_id": e.event_id,
    }
    if envelope is not None:
        out["envelope"] = json.loads(envelope)
    return out


def entry_filter(q: EntryFilters) -> Callable[[Entry], bool]:
    """The filters of the inbox and entry lists (agreement, form, author, kind, time)."""

    def match(e: Entry) -> bool:
        return (
            (q.agreement is None or e.agreement == q.agreement)
            and (q.form is None or e.form == q.form)
            and (q.author is None or e.author == q.author)
            and (q.kind is None or e.kind == q.kind)
            and (q.since is None or e.ms >= q.since)
            and (q.until is None or e.ms < q.until)
        )

    return match


Filter = Annotated[Callable[[Entry], bool], Depends(entry_filter)]


@router.post("/v1/acts", status_code=201, tags=["acts"])
async def submit(body: EnvelopeIn, request: Request, hub: HubDep, proof: bool = True) -> JSONResponse:
    """Log a signed act; the answer is a receipt with an offline-verifiable proof."""
    limited(request, "")  # the submitter's address pays for every request, replays too
    # The author's budget is spent only by its proven, newly logged acts (Hub.submit):
    # a statement logged already is answered with its receipt before the budget or the
    # signature is looked at, so replaying a party's logged acts cannot drain its budget.
    raw = json.dumps(body.model_dump(), separators=(",", ":")).encode()
    receipt = await run_in_threadpool(hub.submit, raw, limits_of(request).party_writes)
    out: dict[str, Any] = {
        "index": receipt.index,
        "integrated_ms": receipt.integrated_ms,
        "integrated_at": format_time(receipt.integrated_ms),
        "duplicate": receipt.duplicate,
    }
    if proof:
        bundle = await run_in_threadpool(hub.receipt_bundle, receipt.index)
        assert bundle.extra is not None
        out["leaf_hash"] = b64(leaf_hash(bundle.extra))
        out["inclusion_proof"] = [b64(h) for h in bundle.proof]
        out["checkpoint"] = bundle.checkpoint
        out["tlog_proof"] = format_proof(bundle)
    return JSONResponse(out, status_code=200 if receipt.duplicate else 201)


def page(
    hub: Hub, party: str, inbox: bool, after: int, limit: int, match: Callable[[Entry], bool]
) -> dict[str, Any]:
    items = hub.views.entries_for(party, after=after, limit=limit, inbox=inbox, match=match)
    if inbox:
        hub.record_delivery(party, items)
    return {
        "items": [item_json(e, hub.envelope(e.index)) for e in items],
        "next": items[-1].index if items else after,
    }


@router.get("/v1/inbox", tags=["acts"])
def inbox(
    party: Caller, match: Filter, hub: HubDep, after: After = -1, limit: Page = 100
) -> dict[str, Any]:
    """What others addressed to the caller, oldest first; fetching marks it delivered."""
    return page(hub, party, True, after, limit, match)


@router.get("/v1/entries", tags=["acts"])
def entries(
    party: Caller, match: Filter, hub: HubDep, after: After = -1, limit: Page = 100
) -> dict[str, Any]:
    """Every entry the caller may read, its own included."""
    return page(hub, party, False, after, limit, match)


@router.get("/v1/entries/{index}", tags=["acts"])
def entry(party: Caller, index: EntryIndex, hub: HubDep) -> dict[str, Any]:
    e = hub.views.readable(party, index)
    return item_json(e, hub.envelope(index))


@router.get("/v1/entries/{index}/status", tags=["acts"])
def entry_status(party: Caller, index: EntryIndex, hub: HubDep) -> dict[str, Any]:
    """Per addressee: delivered (the hub's statement) and acknowledged (a signed act)."""
    return {"index": index, "addressees": hub.status(party, index)}


@router.get("/v1/entries/{index}/proof", tags=["acts"], response_class=PlainTextResponse)
def entry_proof(party: Caller, index: EntryIndex, hub: HubDep) -> str:
    """A c2sp.org/tlog-proof@v1 with the latest checkpoint covering the entry."""
    hub.views.readable(party, index)
    return format_proof(hub.receipt_bundle(index))


@router.get("/v1/channels", tags=["communication"])
def channels(party: Caller, hub: HubDep) -> dict[str, Any]:
    keep = ("id", "agreement", "members", "opened_at")
    return {"channels": [{k: c[k] for k in keep} for c in hub.views.channels_of(party)]}
