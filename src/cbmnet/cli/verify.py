"""``cbmnet reconcile``: observations against declarations, as ``cbmnet check`` does it.

Exit codes as ``check``: 0 no findings, 1 findings, 2 bad input (naming file, row or
record, and field). Errors are raised as the error tree and mapped to exit codes in
``cli.main`` only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cbmnet.cli.files import read_text
from cbmnet.cli.lang import findings_title
from cbmnet.errors import FormatError
from cbmnet.i18n import gettext as _

MAX_EVENTS_BYTES = 256 << 20


def _read_text(path: str) -> str:
    return read_text(path, MAX_EVENTS_BYTES)


def reconcile_verb(
    agreement: Annotated[str, typer.Option(help=_("A bundled agreement id or a file."))],
    events: Annotated[str, typer.Option(help=_("Declared events (JSON array or JSON Lines), or -."))],
    observations: Annotated[
        Path, typer.Option(help=_("Observations: .csv (header row), .geojson or .parquet."))
    ],
    as_of: Annotated[str | None, typer.Option("--as-of", help=_("RFC 3339 time; default: now."))] = None,
    fmt: Annotated[str, typer.Option("--format", help=_("json, table or geojson."))] = "json",
    settings: Annotated[
        Path | None,
        typer.Option(help=_("JSON file overriding reconciliation settings (docs/verification.md).")),
    ] = None,
) -> None:
    """Reconcile sensor observations with declared activities; exit 0 none, 1 findings, 2 bad input."""
    from cbmnet.agreements.loader import load_agreement, resolve_zones
    from cbmnet.compliance.events import load_events_text
    from cbmnet.compliance.timeutil import parse_time
    from cbmnet.geo import territory
    from cbmnet.verification import geojson
    from cbmnet.verification.observations import open_observations
    from cbmnet.verification.reconcile import reconcile
    from cbmnet.verification.settings import ReconcileSettings

    if fmt not in ("json", "table", "geojson"):
        raise FormatError("--format must be json, table or geojson")
    a = load_agreement(agreement)
    conf = ReconcileSettings.for_agreement(a)
    if settings is not None:
        try:
            doc = json.loads(_read_text(str(settings)))
        except ValueError as e:
            raise FormatError(f"{settings}: not JSON ({e})") from None
        conf = conf.override(doc, str(settings))
    evs = load_events_text(_read_text(events), events)
    source = open_observations(observations)
    when = parse_time(as_of, "--as-of") if as_of else time.time_ns() // 1_000_000
    report = reconcile(a, evs, source, when, resolve_zones(a), territory, conf)
    if fmt == "json":
        typer.echo(report.dumps(), nl=False)
    elif fmt == "geojson":
        typer.echo(geojson.dumps(report), nl=False)
    else:
        _table(report.to_json())
    if report.findings:
        raise typer.Exit(1)


def _table(doc: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    findings = doc["findings"]
    assert isinstance(findings, list)
    n = len(findings)
    t = Table(title=findings_title(doc["agreement"], doc["as_of"], n))
    columns = {
        "code": _("code"),
        "party": _("party"),
        "measure": _("measure"),
        "subjects": _("subjects"),
        "estimate": _("estimate"),
        "confidence": _("confidence"),
        "message": _("message"),
    }
    for col, header in columns.items():
        t.add_column(header, no_wrap=col in ("code", "party"))
    for f in findings:
        est = f.get("evidence", {}).get("estimate", {})
        t.add_row(
            f["code"],
            f["party"],
            f["measure"],
            ", ".join(f["subjects"]),
            ", ".join(f"{v:,} {k}" for k, v in est.items()),
            f"{f.get('confidence', 0):.3f}",
            f["message"],
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(t)
    console.print(_("observations: %(counts)s") % {"counts": json.dumps(doc["observations"])})


def add_verify_verbs(app: typer.Typer) -> None:
    """Register ``reconcile`` on the main app."""
    app.command(
        "reconcile",
        help=_(
            "Reconcile sensor observations with declared activities; exit 0 none, 1 findings,"
            " 2 bad input."
        ),
    )(reconcile_verb)
