"""``cbmnet simulate``: play a bundled exercise scenario against a hub (also a load generator).

Errors are raised as the error tree and mapped to exit codes in ``cli.main`` only.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cbmnet.errors import FormatError
from cbmnet.i18n import gettext as _


def simulate_verb(
    scenario: Annotated[str, typer.Option(help=_("vienna-document or india-pakistan."))],
    hub: Annotated[str, typer.Option(envvar="CBMNET_HUB", help=_("The hub's base URL."))],
    secretariat_key: Annotated[
        Path,
        typer.Option("--secretariat-key", help=_("The secretariat's signer key (registers parties).")),
    ],
    seed: Annotated[int, typer.Option(help=_("Same seed, same acts."))] = 1,
    days: Annotated[int, typer.Option(help=_("Simulated days to play."))] = 14,
    speed: Annotated[float, typer.Option(help=_("Simulated seconds per real second."))] = 86400.0,
    parties: Annotated[
        int | None, typer.Option(help=_("How many parties (the agreement's first N)."))
    ] = None,
    keys: Annotated[
        Path | None, typer.Option(help=_("Folder for the parties' keys (default: a temporary one)."))
    ] = None,
) -> None:
    """Play a scenario through the hub's API; every record is marked EXERCISE."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from cbmnet.party.client import Identity
    from cbmnet.sim import build, play

    if speed <= 0:
        raise FormatError("--speed must be > 0")
    try:
        sec_key = secretariat_key.read_text().strip()
    except OSError as e:
        raise FormatError(f"{secretariat_key}: {e.strerror}") from None
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        plan = build(scenario, seed, parties=parties, days=days, anchor_ms=int(day.timestamp() * 1000))
    except ValueError as e:
        raise FormatError(str(e)) from None
    console = Console()
    # EXERCISE is the marking every record carries: it stays as it is, in every language.
    console.print(
        "[bold]EXERCISE[/bold] "
        + _(
            "%(scenario)s seed %(seed)s: %(parties)s parties (%(names)s), %(steps)s steps "
            "over %(days)s days at speed %(speed)s"
        )
        % {
            "scenario": plan.scenario,
            "seed": seed,
            "parties": len(plan.parties),
            "names": ", ".join(plan.parties),
            "steps": len(plan.steps),
            "days": days,
            "speed": f"{speed:g}",
        }
    )
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as bar:
        task = bar.add_task(_("playing"), total=len(plan.steps))
        summary = play(
            plan,
            hub,
            Identity("secretariat", sec_key),
            keys or Path(tmp),
            speed=speed,
            say=lambda m: bar.console.print(f"  {m}"),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    t = Table(title=_("acts submitted"))
    t.add_column(_("kind"))
    t.add_column(_("count"), justify="right")
    for kind, n in sorted(summary.acts.items()):
        t.add_row(kind, str(n))
    console.print(t)
    f = Table(title=_("findings expected"))
    for header in (_("code"), _("party"), _("agreement"), _("subject")):
        f.add_column(header)
    for want in summary.expected:
        f.add_row(want["code"], want["party"], want["agreement"], want["subject"])
    console.print(f)


def add_simulate_verb(app: typer.Typer) -> None:
    """Register ``simulate`` on the main app."""
    app.command(
        "simulate", help=_("Play a scenario through the hub's API; every record is marked EXERCISE.")
    )(simulate_verb)
