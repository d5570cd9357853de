"""The annual implementation report on the dashboard: HTML, and a PDF download.

The same figures as ``GET /v1/report`` and ``cbmnet report`` (``compliance.annual``), cut to
what the signed-in party may read; the PDF is ``cbmnet.reports.annual_pdf``.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cbmnet.compliance.timeutil import format_time, year_of
from cbmnet.hub.deps import evaluating, hub_from, limits_of
from cbmnet.hub.web.render import render
from cbmnet.reports import annual_pdf

router = APIRouter()

MaybeAgreement = Annotated[str | None, Query(max_length=128)]
MaybeYear = Annotated[int | None, Query(ge=1970, le=2199)]
AgreementId = Annotated[str, Query(max_length=128)]


@router.get("/dashboard/report", include_in_schema=False)
def report_page(request: Request, agreement: MaybeAgreement = None, year: MaybeYear = None) -> Response:
    """One agreement's year, per party; links to the PDF and to each counted entry."""
    party = evaluating(request)
    hub = hub_from(request)
    now = hub.clock()
    agreements = hub.views.agreements_of(party)
    chosen = agreement if agreement in agreements else (agreements[0] if agreements else None)
    year = year or year_of(now)
    doc = None
    if chosen is not None:
        run = limits_of(request).evaluations.call
        doc = run(party, partial(hub.annual_report, party, chosen, year, now))
    return render(
        "report.html",
        party=party,
        agreements=agreements,
        agreement=chosen,
        year=year,
        years=list(range(year_of(now), year_of(now) - 6, -1)),
        doc=doc,
        as_of=format_time(now),
    )


@router.get("/dashboard/report.pdf", include_in_schema=False)
def report_pdf(
    request: Request, agreement: Annotated[str, Query(max_length=128)], year: MaybeYear = None
) -> Response:
    party = evaluating(request)
    hub = hub_from(request)
    now = hub.clock()
    year = year or year_of(now)
    run = limits_of(request).evaluations.call
    doc = run(party, partial(hub.annual_report, party, agreement, year, now))
    pdf = annual_pdf(doc, checkpoint=doc["checkpoint"])
    name = f"cbmnet-{agreement}-{year}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
