"""Alerts: each party's own subscription (e-mail, webhooks) and its delivery log.

Set with the party's token: only the party changes where it is alerted. The log shows
only the caller's own alerts.
"""

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from cbmnet.errors import FormatError, TooLargeError
from cbmnet.hub.alerts import read_subscription
from cbmnet.hub.deps import Caller, HubDep, limited

router = APIRouter(tags=["alerts"])

MAX_SUBSCRIPTION_BYTES = 16 * 1024
LOG_ROWS = 100


@router.put("/v1/alerts")
async def put_alerts(party: Caller, request: Request, hub: HubDep) -> dict[str, Any]:
    """Replace the caller's subscription: ``{"emails": [...], "webhooks": [...], "kinds":
    [...], "agreements": [...], "precedence": "routine"}``. Alerts start from now."""
    limited(request, party)
    body = await request.body()
    if len(body) > MAX_SUBSCRIPTION_BYTES:
        raise TooLargeError(f"an alert subscription is at most {MAX_SUBSCRIPTION_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FormatError("alert subscription: not JSON") from None
    sub = read_subscription(
        party,
        doc,
        agreements=hub.views.agreements_of(party),
        allow_private=hub.settings.alerts_allow_private,
        since_index=hub.views.log_size(),
        since_ms=hub.clock(),
    )
    await run_in_threadpool(hub.alerts.subscribe, sub, party)
    return {**sub.to_json(), "subscribed": True}


@router.delete("/v1/alerts")
async def delete_alerts(party: Caller, request: Request, hub: HubDep) -> dict[str, Any]:
    """Stop alerting the caller (what is queued still goes out)."""
    limited(request, party)
    await run_in_threadpool(hub.alerts.subscribe, None, party)
    return {"party": party, "subscribed": False}


@router.get("/v1/alerts")
def get_alerts(party: Caller, hub: HubDep) -> dict[str, Any]:
    """The caller's subscription (``subscribed``: false when it has none)."""
    sub = hub.alerts.subscription_of(party)
    if sub is None:
        return {"party": party, "subscribed": False}
    return {**sub.to_json(), "subscribed": True}


@router.get("/v1/alerts/log")
def alert_log(party: Caller, hub: HubDep) -> dict[str, Any]:
    """The caller's latest alerts and their delivery, newest first."""
    return {"items": hub.alerts.log_of(party, LOG_ROWS)}
