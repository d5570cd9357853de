"""Compliance: the engine's obligations and findings, and the confidence indicators.

Async, so that the token, the input and the budget are checked on the event loop before
anything queues; the work runs in the app's evaluation threads (``limits.Evaluations``).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cbmnet.hub.deps import Authorization, HubDep, Text, as_of_ms, limits_of, party_of, token_party

router = APIRouter(tags=["compliance"])


@router.get("/v1/obligations")
async def obligations(
    request: Request,
    hub: HubDep,
    agreement: Annotated[str, Query(max_length=128)],
    as_of: Text = None,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """The compliance engine over the log: obligations and findings the caller may read."""
    party, token = token_party(hub, authorization)
    at = as_of_ms(as_of, hub.clock())
    evaluations = limits_of(request).evaluations
    evaluations.take(party)  # each new as_of runs the engine over the whole agreement

    def work() -> dict[str, Any]:
        return hub.views.report_for(party_of(hub, token), agreement, at)

    return await evaluations.run(party, work)


@router.get("/v1/indicators")
async def confidence(
    request: Request,
    hub: HubDep,
    agreement: Annotated[str, Query(max_length=128)],
    as_of: Text = None,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """Timeliness, completeness, responsiveness, compliance and reciprocity, per party and
    month, with their parts, from what the caller may read (docs/indicators.md)."""
    party, token = token_party(hub, authorization)
    at = as_of_ms(as_of, hub.clock())
    evaluations = limits_of(request).evaluations
    evaluations.take(party)

    def work() -> dict[str, Any]:
        return hub.views.indicators_for(party_of(hub, token), agreement, at)

    return await evaluations.run(party, work)


Year = Annotated[int, Query(ge=1970, le=2199)]


@router.get("/v1/report")
async def annual_report(
    request: Request,
    hub: HubDep,
    agreement: Annotated[str, Query(max_length=128)],
    year: Year,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """The annual implementation report for ``year``: per party, obligations owed, met, late,
    missed, and findings, each with the events it counts (from what the caller may read),
    and the latest signed checkpoint (null while there is none). ``cbmnet report``
    recomputes it from the events."""
    party, token = token_party(hub, authorization)
    evaluations = limits_of(request).evaluations
    evaluations.take(party)
    now = hub.clock()

    return await evaluations.run(
        party, lambda: hub.annual_report(party_of(hub, token), agreement, year, now)
    )
