"""Verification: the rows of an observations batch, and the inspection quotas."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cbmnet.acts.model import MAX_BATCH_BYTES
from cbmnet.compliance.timeutil import parse_time
from cbmnet.errors import FormatError, TooLargeError
from cbmnet.hub.deps import (
    Authorization,
    Caller,
    EntryIndex,
    HubDep,
    Text,
    limited,
    limits_of,
    party_of,
    token_party,
)

router = APIRouter(tags=["verification"])


@router.put("/v1/observations/{index}")
async def put_observations(
    party: Caller, index: EntryIndex, request: Request, hub: HubDep
) -> dict[str, Any]:
    """Upload the rows of a logged observations batch (the bytes its provider signed)."""
    limited(request, party)
    data = await request.body()
    if len(data) > MAX_BATCH_BYTES:
        raise TooLargeError(f"a batch is at most {MAX_BATCH_BYTES} bytes")
    return await run_in_threadpool(hub.put_batch, party, index, data)


@router.get("/v1/observations/{index}", response_class=Response)
def get_observations(party: Caller, index: EntryIndex, hub: HubDep) -> Response:
    """The rows of a batch, byte for byte: check their SHA-256 against the logged act."""
    data = hub.get_batch(party, index)
    return Response(data, media_type="application/octet-stream")


@router.get("/v1/quota")
async def quota(
    http: Request,
    hub: HubDep,
    agreement: Annotated[str, Query(max_length=128)],
    host: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    eta: Text = None,
    until: Text = None,
    request: Text = None,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """Before asking ``host`` for an inspection, evaluation or flight: is its quota spent?
    Or, with ``request`` (the host only): would refusing that request be a finding?"""
    party, token = token_party(hub, authorization)
    if request is not None:
        if host is not None or kind is not None or eta is not None or until is not None:
            raise FormatError("quota: give either request, or host and kind (with eta, until)")
    elif host is None or kind is None:
        raise FormatError("quota: host and kind are required (or request, for the host)")
    eta_ms = parse_time(eta, "eta") if eta else None
    until_ms = parse_time(until, "until") if until else None
    evaluations = limits_of(http).evaluations
    evaluations.take(party)

    def work() -> dict[str, Any]:
        who = party_of(hub, token)
        if request is not None:
            return hub.views.quota_of_request(who, agreement, request)
        assert host is not None and kind is not None
        return hub.views.quota_for(who, agreement, host, kind, eta_ms=eta_ms, until_ms=until_ms)

    return await evaluations.run(party, work)
