"""Small server-drawn charts: SVG sparklines the templates embed, no script needed.

Why on the server: the pages must work without JavaScript and under a CSP that forbids
inline script; an SVG polyline is a few attributes. Every chart carries its numbers as
text (``aria-label`` and a visible caption), so nothing is shown only as a picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cbmnet.hub.web.i18n import gettext

WIDTH = 120
HEIGHT = 24
PAD = 2


@dataclass(frozen=True)
class Sparkline:
    lines: tuple[str, ...]
    """One SVG polyline (``x,y`` pairs) per run of months with data; gaps stay gaps."""
    dots: tuple[tuple[float, float], ...]
    """Isolated values (a month between two gaps) drawn as dots."""
    label: str
    """The series as text, oldest first: what a screen reader says."""
    width: int = WIDTH
    height: int = HEIGHT


def sparkline(
    values: Sequence[float | None],
    labels: Sequence[str],
    *,
    lo: float | None = None,
    hi: float | None = None,
    fmt: str = "{:.0%}",
) -> Sparkline:
    """One series; ``None`` is a month without data (a gap, said as "no data").

    ``lo``/``hi`` fix the scale (shares: 0..1) so two parties' lines compare; otherwise
    the series' own range is used.
    """
    if len(values) != len(labels):
        raise ValueError("one label per value")
    known = [v for v in values if v is not None]
    bottom = lo if lo is not None else (min(known) if known else 0.0)
    top = hi if hi is not None else (max(known) if known else 1.0)
    span = (top - bottom) or 1.0
    n = len(values)
    step = (WIDTH - 2 * PAD) / (n - 1) if n > 1 else 0.0

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD + i * step if n > 1 else WIDTH / 2
        y = HEIGHT - PAD - (min(max(v, bottom), top) - bottom) / span * (HEIGHT - 2 * PAD)
        return round(x, 1), round(y, 1)

    runs: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(xy(i, v))
    no_data = gettext("no data")
    text = ", ".join(
        f"{lab}: {no_data if v is None else fmt.format(v)}"
        for lab, v in zip(labels, values, strict=True)
    )
    return Sparkline(
        lines=tuple(" ".join(f"{x},{y}" for x, y in r) for r in runs if len(r) > 1),
        dots=tuple(r[0] for r in runs if len(r) == 1),
        label=text,
    )
