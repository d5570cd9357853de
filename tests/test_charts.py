"""Server-drawn sparklines: positions computed by hand, gaps kept, figures said as text."""

from __future__ import annotations

import pytest

from cbmnet.hub.web.charts import HEIGHT, PAD, WIDTH, sparkline


def test_positions_on_a_fixed_share_scale() -> None:
    sp = sparkline([0.0, 0.5, 1.0], ["2030-01", "2030-02", "2030-03"], lo=0.0, hi=1.0)
    # x runs PAD..WIDTH-PAD in equal steps; y: 0 at the bottom edge, 1 at the top edge.
    mid = (WIDTH - 2 * PAD) / 2 + PAD
    assert sp.lines == (f"{PAD}.0,{HEIGHT - PAD}.0 {mid:.1f},{HEIGHT / 2:.1f} {WIDTH - PAD}.0,{PAD}.0",)
    assert sp.dots == ()
    assert sp.label == "2030-01: 0%, 2030-02: 50%, 2030-03: 100%"


def test_gaps_split_the_line_and_lone_months_are_dots() -> None:
    months = ["m1", "m2", "m3", "m4", "m5"]
    sp = sparkline([0.2, 0.4, None, 0.9, None], months, lo=0.0, hi=1.0)
    assert len(sp.lines) == 1 and len(sp.lines[0].split()) == 2
    assert len(sp.dots) == 1  # m4 stands alone between two gaps
    assert "m3: no data" in sp.label and "m5: no data" in sp.label


def test_counts_use_their_own_range_and_out_of_range_values_are_clamped() -> None:
    sp = sparkline([3.0, 7.0], ["a", "b"], lo=0.0, fmt="{:.0f}")
    ys = [float(p.split(",")[1]) for p in sp.lines[0].split()]
    assert ys[1] == PAD and ys[0] == pytest.approx(HEIGHT - PAD - 3 / 7 * (HEIGHT - 2 * PAD), abs=0.05)
    assert sp.label == "a: 3, b: 7"
    clamped = sparkline([2.0], ["x"], lo=0.0, hi=1.0)
    assert clamped.dots == ((WIDTH / 2, float(PAD)),)
    empty = sparkline([None, None], ["a", "b"])
    assert empty.lines == () and empty.dots == ()
    with pytest.raises(ValueError):
        sparkline([1.0], [])
