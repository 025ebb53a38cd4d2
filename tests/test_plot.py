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


# --------------------------------------------------------------------------------------------
# Own calendars: a monthly symbol and one whose data ended early, in a daily universe
# --------------------------------------------------------------------------------------------
def _walk(rng, n, scale):
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0005, scale, n)))


@pytest.fixture(scope="module")
def mixed():
    """A long table read into a Universe: daily, monthly, and daily ending a year early."""
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2019-01-01", "2021-06-30")
    calendars = {"DAILY": days,
                 "MONTHLY": pd.date_range("2012-01-31", "2021-06-30", freq="ME"),
                 "EARLY": days[days <= "2020-06-30"]}
    frames = []
    for sym, times in calendars.items():
        close = _walk(rng, len(times), 0.05 if sym == "MONTHLY" else 0.015)
        open_ = close * np.exp(rng.normal(0.0, 0.004, len(times)))
        frames.append(pd.DataFrame({
            "symbol": sym, "time": times, "open": open_,
            "high": np.maximum(open_, close) * 1.01, "low": np.minimum(open_, close) * 0.99,
            "close": close}))
    uni = gpu_trend.read_universe(pd.concat(frames, ignore_index=True))
    return uni, {s: pd.DatetimeIndex(t) for s, t in calendars.items()}


def _signal_line(fig):
    return next(line for line in fig.axes[1].lines if line.get_label() == "Average_Signal")


def _time_labels(fig, n):
    """The x-axis label of each plotted bar position 0 … n-1."""
    fmt = fig.axes[1].xaxis.get_major_formatter()
    return [fmt(float(x), 0) for x in range(n)]


@pytest.mark.parametrize("last", [60, None])
def test_monthly_symbol_is_drawn_on_its_own_calendar(mixed, tmp_path, last):
    uni, own = mixed
    months = own["MONTHLY"]
    assert len(uni.index) > 3 * len(months)  # the union calendar is mostly other symbols' days
    fig = plot(uni, "MONTHLY", last=last, out=tmp_path / "m.png", backend="cpu")
    shown = months if last is None else months[-last:]
    n = len(shown)
    assert len(_signal_line(fig).get_xdata()) == n
    assert fig.axes[0].get_xlim() == pytest.approx((-1, n))
    # One x position per monthly bar, labelled with exactly its own times, and no gaps.
    assert _time_labels(fig, n) == list(shown.strftime("%Y-%m-%d"))
    bodies = [p for p in fig.axes[0].patches if p.__class__.__name__ == "Rectangle"]
    assert len(bodies) == n
    assert all(np.isfinite(p.get_height()) and np.isfinite(p.get_y()) for p in bodies)
    ticks = [t.get_text() for t in fig.axes[1].get_xticklabels() if t.get_text()]
    assert ticks and set(ticks) <= set(shown.strftime("%Y-%m-%d"))


def test_early_ending_symbol_stops_at_its_last_bar(mixed, tmp_path):
    uni, own = mixed
    early = own["EARLY"]
    assert early[-1] < uni.index[-1]
    fig = plot(uni, "EARLY", out=tmp_path / "e.png", backend="cpu")
    labels = _time_labels(fig, 300)
    assert labels[-1] == early[-1].strftime("%Y-%m-%d")
    assert labels == list(early[-300:].strftime("%Y-%m-%d"))
    assert len(_signal_line(fig).get_xdata()) == 300
    # No flat tail: the last candle is the symbol's own last bar.
    bodies = [p for p in fig.axes[0].patches if p.__class__.__name__ == "Rectangle"]
    o, c = uni.open["EARLY"].loc[early[-1]], uni.close["EARLY"].loc[early[-1]]
    assert bodies[-1].get_y() == pytest.approx(min(o, c))
    assert bodies[-1].get_y() + bodies[-1].get_height() == pytest.approx(max(o, c))


@pytest.mark.parametrize("members", [True, False])
def test_packed_result_plots_like_the_data(mixed, tmp_path, members):
    uni, own = mixed
    res = gpu_trend.compute_atc(uni, members=members, backend="cpu")
    assert res.positions is not None  # packed: each symbol's bars right-aligned
    for sym in ("MONTHLY", "EARLY"):
        plot(uni, sym, out=tmp_path / "data.png", backend="cpu")
        fig = plot(res, sym, data=uni, out=tmp_path / "result.png", backend="cpu")
        n = min(300, len(own[sym]))
        assert _time_labels(fig, n) == list(own[sym][-n:].strftime("%Y-%m-%d"))
        assert (tmp_path / "data.png").read_bytes() == (tmp_path / "result.png").read_bytes()


def test_result_with_data_it_was_not_computed_from(mixed, tmp_path):
    res = gpu_trend.compute_atc(mixed[0], members=True, backend="cpu")
    other = mixed[0].close.copy()
    other.index = other.index + pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match="pass the data the result was computed from"):
        plot(res, "DAILY", data=other[["DAILY"]], out=tmp_path / "x.png")


def test_result_of_a_bare_array_uses_the_data_times(uni, tmp_path):
    sym = uni.symbols[2]
    res = gpu_trend.compute_atc(uni.close.to_numpy().T, members=True, symbols=uni.symbols,
                                backend="cpu")
    plot(uni, sym, out=tmp_path / "data.png", backend="cpu")
    plot(res, sym, data=uni, out=tmp_path / "array.png")
    assert (tmp_path / "data.png").read_bytes() == (tmp_path / "array.png").read_bytes()


# --------------------------------------------------------------------------------------------
# The legend: every family named, and off the data
# --------------------------------------------------------------------------------------------
def test_legend_tells_the_six_families_apart(uni, tmp_path):
    from matplotlib.colors import to_hex

    from gpu_trend.config import FAMILIES

    fig = plot(uni, uni.symbols[0], out=tmp_path / "l.png", backend="cpu")
    legend = fig.axes[0].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    for name in FAMILIES:
        assert f"{name} 28" in texts
    # Each family's legend swatch is the colour of its line on the chart, and all differ.
    swatches = {t.get_text(): to_hex(h.get_color())
                for t, h in zip(legend.get_texts(), legend.legend_handles)}
    lines = {c.get_label(): to_hex(c.get_edgecolor()[0]) for c in fig.axes[0].collections
             if c.get_label().split(" ")[0] in FAMILIES}
    assert len(lines) == 6
    assert {name: swatches[name] for name in lines} == lines
    assert len(set(lines.values())) == 6
    # The trend key says what solid and dotted mean.
    assert "family signal > 0" in texts and "family signal ≤ 0" in texts


@pytest.mark.parametrize("figsize", [(12, 7), (8, 5)])
def test_legends_are_outside_the_axes_and_inside_the_figure(uni, tmp_path, figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = tmp_path / "legend.png"
    cfg = gpu_trend.ATCConfig(long_threshold=0.25, short_threshold=-0.125)
    fig = plot(uni, uni.symbols[1], config=cfg, out=out, figsize=figsize, backend="cpu")
    assert png_size(out) == (figsize[0] * 100, figsize[1] * 100)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    figure_box = fig.bbox
    for ax in fig.axes[:2]:
        legend_box = ax.get_legend().get_window_extent(renderer)
        data_box = ax.get_window_extent(renderer)
        assert not legend_box.overlaps(data_box), (legend_box, data_box)
        assert legend_box.x0 >= data_box.x1
        # Entirely within the saved image.
        assert figure_box.x0 <= legend_box.x0 and legend_box.x1 <= figure_box.x1
        assert figure_box.y0 <= legend_box.y0 and legend_box.y1 <= figure_box.y1


def test_callers_axes_are_saved_with_their_legends(uni, tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    price, signal = fig.subplots(2, 1)
    out = tmp_path / "own_axes.png"
    plot(uni, uni.symbols[0], ax=(price, signal), out=out, backend="cpu")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend_box = price.get_legend().get_window_extent(renderer)
    assert legend_box.x0 >= price.get_window_extent(renderer).x1
    # The legend sticks out of the caller's 600-px-wide figure; the saved file keeps it.
    width, _ = png_size(out)
    assert width >= legend_box.x1 - price.get_window_extent(renderer).x0


def test_a_failed_save_leaves_no_partial_image(tmp_path, monkeypatch):
    import matplotlib.figure

    from gpu_trend.demo import demo_universe

    uni = demo_universe(n_symbols=3, n_bars=200, seed=1)
    target = tmp_path / "chart.png"
    target.write_bytes(b"previous complete image")

    def half_then_fail(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match=rf"cannot write {target}: No space left on device"):
        plot(uni, uni.symbols[0], out=target)
    assert target.read_bytes() == b"previous complete image"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]
