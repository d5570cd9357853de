"""The annual implementation report as a PDF (fpdf2), for the hub's download and the CLI.

The figures are ``compliance.annual``'s; this only lays them out: a title, the checkpoint
the figures rest on, one table of parties (owed, met, late, missed, pending, on time), and
per party its findings by code with the events counted. The core PDF fonts cover Latin-1
only, so other characters are written as ``?`` (agreement files and party ids are ASCII;
names in other scripts need an embedded font, a follow-up with the six languages).
"""

from __future__ import annotations

from typing import Any

from fpdf import FPDF

_COLUMNS = (("Party", 22), ("Owed", 16), ("Met", 16), ("Late", 16), ("Missed", 18), ("Pending", 18),
            ("On time", 20), ("Findings", 20))  # fmt: skip


def _latin1(text: str) -> str:
    return (
        text.replace("\u2013", "-").replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")
    )


def _para(pdf: FPDF, width: float, height: float, text: str) -> None:
    """A paragraph that leaves the cursor at the left margin of the next line."""
    pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT")


def annual_pdf(doc: dict[str, Any], *, checkpoint: str | None = None, compress: bool = True) -> bytes:
    """``doc`` (``compliance.annual.annual``) as a PDF; ``checkpoint``: the signed note
    the figures rest on, printed in full so a reader can check it."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_compression(compress)
    pdf.set_title(_latin1(f"Annual implementation report {doc['agreement']} {doc['year']}"))
    pdf.set_creator("cbmnet")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    _para(pdf, 0, 7, _latin1(f"Annual implementation report: {doc['agreement']}, {doc['year']}"))
    pdf.set_font("Helvetica", "", 9)
    _para(
        pdf,
        0,
        5,
        _latin1(
            f"As of {doc['as_of']}. Obligations by the year they fell due in, as the compliance "
            "engine states them; each figure lists the events it counts (reproduce with "
            f"'cbmnet report --agreement {doc['agreement']} --year {doc['year']}' over the log)."
        ),
    )
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 9)
    for name, width in _COLUMNS:
        pdf.cell(width, 6, name, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for r in doc["parties"]:
        share = "-" if r["on_time_share"] is None else f"{100 * r['on_time_share']:.0f}%"
        found = sum(f["count"] for f in r["findings"])
        values = (r["party"], r["owed"], r["met"], r["late"], r["missed"], r["pending"], share, found)
        for (_, width), v in zip(_COLUMNS, values, strict=True):
            pdf.cell(width, 6, _latin1(str(v)), border=1)
        pdf.ln()
    t = doc["totals"]
    pdf.set_font("Helvetica", "B", 9)
    totals = ("All", t["owed"], t["met"], t["late"], t["missed"], t["pending"], "", t["findings"])
    for (_, width), v in zip(_COLUMNS, totals, strict=True):
        pdf.cell(width, 6, str(v), border=1)
    pdf.ln(10)
    for r in doc["parties"]:
        if not r["findings"] and not r["events"]:
            continue
        pdf.set_font("Helvetica", "B", 10)
        _para(pdf, 0, 6, _latin1(r["party"]))
        pdf.set_font("Helvetica", "", 8)
        for status, ids in r["events"].items():
            _para(pdf, 0, 4, _latin1(f"{status}: {', '.join(ids)}"))
        for f in r["findings"]:
            _para(
                pdf,
                0,
                4,
                _latin1(f"{f['severity']} {f['code']} x{f['count']}: {', '.join(f['events'])}"),
            )
        if r["entries"]:
            _para(pdf, 0, 4, _latin1(f"log entries: {', '.join(map(str, r['entries']))}"))
        pdf.ln(2)
    if checkpoint:
        pdf.set_font("Courier", "", 7)
        _para(pdf, 0, 3.5, _latin1("The log checkpoint these figures rest on:\n" + checkpoint))
    return bytes(pdf.output())
