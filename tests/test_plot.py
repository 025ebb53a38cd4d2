"""gpu_trend.plotting: the chart is drawn, saved at the expected size, from every input form."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

import gpu_trend  # noqa: E402
from gpu_trend.demo import demo_universe  # noqa: E402
from gpu_trend.plotting import plot  # noqa: E402


def png_size(path) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), read without matplotlib."""
    with open(path, "rb") as fh:
        data = fh.read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def uni():
    return demo_universe(6, 400, seed=1, late_listing_fraction=0.0)


def test_png_of_the_default_size(tmp_path, uni):
    out = tmp_path / "chart.png"
    fig = plot(uni, uni.symbols[0], out=out, backend="cpu")
    assert out.stat().st_size > 20_000  # a real chart, not an empty canvas
    assert png_size(out) == (1200, 700)
    price_ax, signal_ax = fig.axes[:2]
    assert signal_ax.get_ylim() == pytest.approx((-1.08, 1.08))
    # Six MA line collections plus the candle wicks, and the signal panel's threshold lines.
    assert len(price_ax.collections) >= 7
    levels = sorted(line.get_ydata()[0] for line in signal_ax.lines[:3])
    assert levels == pytest.approx([-0.1, 0.0, 0.1])
    assert uni.symbols[0] in price_ax.get_title(loc="left")


def test_custom_size_config_and_close_only_data(tmp_path, uni):
    out = tmp_path / "small.png"
    cfg = gpu_trend.ATCConfig(long_threshold=0.3, short_threshold=-0.2, robustness="Wide")
    plot(uni.close, uni.symbols[1], config=cfg, out=out, figsize=(8, 5), dpi=100, last=None,
         backend="cpu")
    assert png_size(out) == (800, 500)
    assert out.stat().st_size > 10_000


def test_pixels_carry_the_trend_colours(tmp_path, uni):
    import matplotlib.image as mpimg

    out = tmp_path / "colours.png"
    plot(uni, uni.symbols[2], out=out, backend="cpu")
    img = mpimg.imread(out)[..., :3]
    green = (img[..., 1] > 0.5) & (img[..., 0] < 0.35) & (img[..., 2] < 0.45)
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.35) & (img[..., 2] < 0.35)
    assert green.sum() > 500 and red.sum() > 500


def test_from_a_result_with_and_without_members(tmp_path, uni):
    sym = uni.symbols[3]
    with_members = gpu_trend.compute_atc(uni.close, members=True, backend="cpu")
    plot(with_members, sym, data=uni, out=tmp_path / "a.png")
    without = gpu_trend.compute_atc(uni.close, backend="cpu")
    plot(without, sym, data=uni, out=tmp_path / "b.png")
    # Same chart either way: the members are recomputed when missing.
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with pytest.raises(ValueError, match="holds no prices"):
        plot(without, sym)


def test_into_existing_axes(uni):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    price, signal = fig.subplots(2, 1)
    assert plot(uni, uni.symbols[0], ax=(price, signal), backend="cpu") is fig
    assert len(price.collections) >= 7 and len(signal.lines) >= 4

    fig2 = Figure(figsize=(6, 4))
    single = fig2.add_subplot(111)
    plot(uni, uni.symbols[0], ax=single, backend="cpu")
    assert len(fig2.axes) == 2  # the signal panel was added below


def test_later_listing_and_events_drawn(tmp_path):
    u = demo_universe(30, 500, seed=4, late_listing_fraction=0.5)
    late = [s for s in u.symbols if u.close[s].isna().iloc[0]][0]
    fig = plot(u, late, out=tmp_path / "late.png", last=None, backend="cpu")
    n_valid = int(u.close[late].notna().sum())
    price_ax = fig.axes[0]
    assert price_ax.get_xlim() == pytest.approx((-1, n_valid))
    res = gpu_trend.compute_atc(u.close[[late]], backend="cpu")
    n_events = int(res.long_events.sum() + res.short_events.sum())
    markers = sum(len(c.get_offsets()) for c in price_ax.collections
                  if c.__class__.__name__ == "PathCollection")
    assert markers == n_events


def test_errors(uni, tmp_path):
    with pytest.raises(KeyError, match="'NOPE' is not in the data"):
        plot(uni, "NOPE", out=tmp_path / "x.png")
    with pytest.raises(ValueError, match="last"):
        plot(uni, uni.symbols[0], last=1, out=tmp_path / "x.png")
    bad = pd.DataFrame({"A": [1.0, 2.0, np.nan]}, index=pd.RangeIndex(3))
    bad.iloc[:, 0] = np.nan
    with pytest.raises(ValueError, match="rejected|no valid close"):
        plot(bad, "A", out=tmp_path / "x.png")
