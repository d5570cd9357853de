"""The log, for witnesses and auditors: checkpoints, proofs, leaves, cosignatures."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from cbmnet.errors import CbmnetError, ConflictError, FormatError, TooLargeError
from cbmnet.hub.deps import After, HubDep, MaybeCaller, Page, Size, limited
from cbmnet.ledger.encoding import b64
from cbmnet.ledger.entry import encode_entry
from cbmnet.ledger.merkle import leaf_hash
from cbmnet.ledger.tlogproof import format_add_checkpoint

router = APIRouter(tags=["log"])


@router.get("/v1/log/checkpoint", response_class=PlainTextResponse)
def checkpoint(hub: HubDep) -> str:
    """The latest checkpoint with every cosignature collected (c2sp.org/tlog-checkpoint)."""
    return hub.rlog.signed_checkpoint(hub.rlog.latest_checkpoint())


@router.get("/v1/log/checkpoints")
def checkpoints(hub: HubDep, after: After = -1, limit: Page = 100) -> dict[str, Any]:
    return {"checkpoints": hub.rlog.listed_checkpoints(after, limit)}


@router.get("/v1/log/consistency")
def consistency(hub: HubDep, old: Size, new: Size) -> dict[str, Any]:
    return {"old": old, "new": new, "proof": [b64(h) for h in hub.rlog.consistency_proof(old, new)]}


@router.get("/v1/log/leaves")
def leaves(
    party: MaybeCaller,
    hub: HubDep,
    start: Size = 0,
    limit: Page = 1000,
) -> dict[str, Any]:
    """Leaf hashes for anyone; the entry itself only where the caller may read it."""
    hub.sync()
    out: list[dict[str, Any]] = []
    for row in hub.rstore.iter_entries(after=start - 1, chunk=limit):
        if len(out) >= limit:
            break
        data = encode_entry(row.integrated_ms, row.envelope)
        item: dict[str, Any] = {"index": row.idx, "leaf_hash": b64(leaf_hash(data))}
        if party is not None:
            try:
                hub.views.readable(party, row.idx)
                item["entry"] = b64(data)
            except CbmnetError:
                pass
        out.append(item)
    return {"leaves": out}


@router.get("/v1/log/witness", response_class=PlainTextResponse)
def witness_request(hub: HubDep, old: Size = 0) -> Response:
    """The tlog-witness add-checkpoint body from the witness's last cosigned size."""
    latest = hub.rlog.latest_checkpoint()
    if old > latest.size:
        return Response(str(latest.size) + "\n", status_code=409, media_type="text/x.tlog.size")
    return PlainTextResponse(format_add_checkpoint(hub.rlog.witness_request(old)))


@router.post("/v1/log/cosignatures")
async def cosign(request: Request, hub: HubDep, size: Size) -> dict[str, Any]:
    """Store a party witness's cosignature lines for the checkpoint of ``size``."""
    limited(request, "")
    raw = await request.body()
    if len(raw) > 64 * 1024:
        raise TooLargeError("cosignature lines: at most 64 KiB")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise FormatError("cosignature lines: not UTF-8") from None
    vkeys = hub.views.witness_keys()
    if not vkeys:
        raise ConflictError("no party has registered a witness key")
    lines = list(dict.fromkeys(ln for ln in text.splitlines() if ln.strip()))
    if len(lines) > len(vkeys):
        raise FormatError(f"at most one cosignature line per registered witness ({len(vkeys)})")
    text = "\n".join(lines) + "\n"
    stored = await run_in_threadpool(hub.rlog.add_cosignatures, size, text, vkeys)
    return {"size": size, "stored": stored}
