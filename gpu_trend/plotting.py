"""Charts of one symbol's ATC, the way a TradingView user reads the indicator.

The upper panel shows the price — candles coloured by Average_Signal when open/high/low are
known, otherwise a close line coloured the same way — with the six family moving averages at
their base length (one colour per family; solid while the family signal is positive, dotted
while it is not) and the long / short arrows.  The lower panel shows Average_Signal with the
long and short thresholds.  Legends sit in a margin right of the panels, off the data.

The time axis is the symbol's own calendar: one step per bar of that symbol (from its first
valid close to its last bar), never the union of the universe's timestamps, so a monthly
symbol in a daily universe or one whose data ended early is drawn without gaps or flat tails.

matplotlib is imported only when a chart is drawn (install the ``plot`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .arrays import to_host
from .files import write_atomically
from .config import FAMILIES, N_MEMBERS, ATCConfig

__all__ = ["plot"]

_UP, _DOWN = "#1b9e4b", "#d62728"
# One hue per family.  Six overlapping 1-px lines can only be told apart by colour: dash
# patterns (the old encoding) restart on every bar-to-bar segment, vanish once bars are a few
# pixels wide and cannot be matched to a legend swatch.  The hues avoid the green / red / grey
# that mean "trend" everywhere else on the chart (candles, arrows, signal panel).
_FAMILY_COLORS = {
    "EMA": "#1f77b4",   # blue
    "HMA": "#ff7f0e",   # orange
    "WMA": "#9467bd",   # purple
    "DEMA": "#17becf",  # cyan
    "LSMA": "#e377c2",  # pink
    "KAMA": "#8c564b",  # brown
}
# Each family's trend is its line style, drawn per run of bars (so the pattern flows along
# the run instead of restarting every bar): solid while its signal is > 0, dotted otherwise.
_TREND_UP_STYLE, _TREND_DOWN_STYLE = "solid", (0, (1, 1.6))
_FAMILY_LW = 1.4
_FIGSIZE = (12.0, 7.0)
_DPI = 100
# Pixels kept free right of the legends, and between an axes and its legend (points).
_MARGIN_PX = 6
_LEGEND_PAD = 0.8  # in font sizes: matplotlib's borderaxespad


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'gpu-trend[plot]'") from None
    import matplotlib.colors as mcolors

    return mcolors


_FIELDS = ("close", "open", "high", "low")


def _universe_column(data: Any, symbol: str):
    """(universe, column number of `symbol`), with the reader's reason if it was rejected."""
    from .io import Universe, read_universe

    uni = data if isinstance(data, Universe) else read_universe(data)
    if symbol not in uni.close.columns:
        if symbol in uni.rejected:
            raise ValueError(f"symbol {symbol!r} was rejected by the reader: "
                             f"{uni.rejected[symbol]}")
        names = uni.symbols
        shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
        raise KeyError(f"symbol {symbol!r} is not in the data ({len(names)} symbols: {shown})")
    return uni, int(uni.close.columns.get_loc(symbol))


def _columns(uni: Any, symbol: str, rows: Any = slice(None)) -> dict[str, pd.Series]:
    """Close (and open/high/low when all are known) of `symbol`, at `rows` of the universe."""
    out = {"close": uni.close[symbol].iloc[rows]}
    if uni.open is not None and uni.high is not None and uni.low is not None:
        for name in _FIELDS[1:]:
            out[name] = getattr(uni, name)[symbol].iloc[rows]
    return out


def _symbol_data(uni: Any, j: int) -> dict[str, pd.Series]:
    """Close (and open/high/low when known) of symbol `j` on its own bars.

    Its own bars are the universe's :meth:`~gpu_trend.io.Universe.bar_mask` rows for it —
    not the union of every symbol's times, where another symbol's timestamp would show as a
    gap — from its first valid close on (earlier rows have nothing to draw or compute).
    """
    symbol = uni.symbols[j]
    own = np.flatnonzero(uni.bar_mask()[:, j])
    close = uni.close[symbol].to_numpy(dtype=float)[own]
    valid = ~np.isnan(close)
    if not valid.any():
        raise ValueError(f"symbol {symbol!r} has no valid close")
    return _columns(uni, symbol, own[int(np.argmax(valid)):])


def _from_result(result: Any, symbol: str) -> dict[str, Any] | None:
    """The plotted outputs of `symbol` from an ATCResult, or None if members are missing.

    The arrays are packed (each symbol's own bars right-aligned, see
    :mod:`gpu_trend.calendars`), so the symbol's bars are the last ``len(result.times(i))``
    columns; they are taken from its first valid close (``start_bar``) on, with their own
    times as ``"index"``.
    """
    if result.member_ma is None:
        return None
    try:
        i = list(result.symbols).index(symbol)
    except ValueError:
        raise KeyError(f"symbol {symbol!r} is not in the result") from None

    n_bars = result.n_bars
    times = result.times(i)
    first = n_bars - len(times)  # packed column of its first own bar (0 on a shared index)
    start = first
    if getattr(result, "start_bar", None) is not None:
        start = max(first, int(result.start_bar[i]))
    if start >= n_bars:
        raise ValueError(f"symbol {symbol!r} has no valid close in the result")
    sl = slice(start, None)
    return {
        "average_signal": to_host(result.average_signal[i])[sl],
        "family_signals": to_host(result.family_signals[i])[:, sl],
        "base_ma": to_host(result.member_ma[i])[::N_MEMBERS][:, sl],
        "long_events": to_host(result.long_events[i])[sl],
        "short_events": to_host(result.short_events[i])[sl],
        "direction": to_host(result.direction[i])[sl],
        "index": times[start - first:],
    }


def _compute(close: pd.Series, config: ATCConfig | None, backend: str) -> tuple[dict, ATCConfig]:
    """ATC of one symbol's own bars (`close`, indexed by its own times)."""
    from .engine import compute_atc
    from .io import Universe

    name = str(close.name)
    frame = close.to_frame(name)
    # Every row is one of its bars, a NaN close included: as a one-symbol Universe the engine
    # sees exactly the bars the whole universe had for it (a trailing row with an empty close
    # stays a bar, as a hole, where a bare Series would read it as the data having ended), so
    # the chart matches a result computed on the whole universe.
    uni = Universe(close=frame, present=pd.DataFrame(True, index=frame.index,
                                                     columns=frame.columns))
    res = compute_atc(uni, config, backend=backend, members=True)
    return _from_result(res, name), res.config


def _on_times(prices: dict[str, pd.Series], times: pd.Index, symbol: str
              ) -> dict[str, pd.Series]:
    """`prices` at `times` (the bars the ATC series cover), so that bar k is bar k of both."""
    rows = prices["close"].index.get_indexer(times)
    if (rows < 0).any():
        missing = times[rows < 0]
        raise ValueError(f"the result has {len(missing)} bar(s) of {symbol!r} not in the data "
                         f"(first {missing[0]}): pass the data the result was computed from")
    return {name: s.iloc[rows] for name, s in prices.items()}


def _segments(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pts = np.column_stack([x, y])
    return np.stack([pts[:-1], pts[1:]], axis=1)


def _runs(x: np.ndarray, y: np.ndarray, up: np.ndarray) -> tuple[list, list]:
    """The polyline of `y` cut into runs of segments with the same `up` state.

    Segment k joins bars k and k + 1 and takes the state of bar k + 1 (the bar it leads to).
    Returns (polylines, states).
    """
    if len(x) < 2:
        return [], []
    seg_up = np.asarray(up[1:], dtype=bool)
    cuts = np.flatnonzero(seg_up[1:] != seg_up[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(seg_up)]])
    lines = [np.column_stack([x[a:b + 1], y[a:b + 1]]) for a, b in zip(starts, ends)]
    return lines, [bool(seg_up[a]) for a in starts]


def _time_formatter(index: pd.Index):
    from matplotlib.ticker import FuncFormatter

    if isinstance(index, pd.DatetimeIndex):
        daily = len(index) < 2 or (index.normalize() == index).all()
        fmt = "%Y-%m-%d" if daily else "%Y-%m-%d\n%H:%M"
        labels = index.strftime(fmt)
    else:
        labels = [str(v) for v in index]

    def label(x, _pos):
        i = int(round(x))
        return labels[i] if 0 <= i < len(labels) else ""

    return FuncFormatter(label)


def plot(
    result_or_data: Any,
    symbol: str,
    *,
    config: ATCConfig | None = None,
    data: Any = None,
    ax: Any = None,
    out: str | os.PathLike | None = None,
    last: int | None = 300,
    backend: str = "auto",
    title: str | None = None,
    figsize: tuple[float, float] = _FIGSIZE,
    dpi: int = _DPI,
):
    """Draw one symbol's ATC chart.

    The time axis is the symbol's own calendar: one step per bar of that symbol, from its
    first valid close to its last bar, whatever other timestamps the universe holds.

    Parameters
    ----------
    result_or_data : ATCResult, Universe, pandas.DataFrame, str or os.PathLike
        Either prices (anything :func:`gpu_trend.io.read_universe` reads) — ATC is then
        computed on `symbol`'s own bars (:meth:`gpu_trend.io.Universe.bar_mask`) — or an
        :class:`~gpu_trend.ATCResult`.  A result holds no prices, so pass them as `data`; a
        result computed without ``members=True`` is recomputed for this one symbol (with its
        own config) to get the moving averages.
    symbol : str
        The symbol to draw.
    config : ATCConfig, optional
        Parameters when computing from prices (ignored for a result, which has its own).
    data : optional
        The prices a result was computed from (when `result_or_data` is a result); they are
        taken at the result's times of `symbol` (:meth:`gpu_trend.ATCResult.times`).
    ax : matplotlib Axes or a pair of Axes, optional
        Where to draw: a pair (price, signal); a single Axes is split, the signal panel going
        below it.  Default: a new figure.  The legends go right of the axes, outside them: a
        new figure keeps a margin for them; in the caller's axes they may need room there.
    out : str or os.PathLike, optional
        Save the figure there (PNG, SVG, PDF… by extension).  A new figure is saved at
        exactly `figsize` × `dpi`; a figure of the caller's is saved with
        ``bbox_inches="tight"`` so that the legends outside the axes are in the file.
    last : int or None, default 300
        Show only the last `last` bars of the symbol (None: its whole history).  The
        indicator is always computed on the whole history.
    backend : {"auto", "cpu", "gpu"}
        Where to compute, when computing.
    title : str, optional
        Figure title; default: the symbol and the parameters.
    figsize : (float, float), default (12, 7)
        Size in inches of a new figure.
    dpi : int, default 100
        Resolution of a new figure and of the saved file (12 × 7 in at 100 dpi = 1200 × 700 px).

    Returns
    -------
    matplotlib.figure.Figure
    """
    mcolors = _require_matplotlib()
    symbol = str(symbol)
    prices, series, cfg = _gather(result_or_data, symbol, data=data, config=config,
                                  backend=backend)
    bars = _visible_bars(prices, series, symbol, last)
    fig, ax_price, ax_sig, grid = _axes(ax, figsize, dpi, out)
    colors = _bar_colors(bars.avg, mcolors)
    top_y, bottom_y = _draw_price(ax_price, bars, colors)
    handles = _draw_families(ax_price, bars, cfg)
    handles += _draw_events(ax_price, bars, top_y, bottom_y)
    if title is None:
        title = _default_title(symbol, cfg, bars.avg, series["direction"])
    _label_price_panel(ax_price, handles, len(bars.x), title)
    _draw_signal(ax_sig, bars, cfg)
    if grid is not None:
        _reserve_legend_margin(fig, grid, (ax_price, ax_sig))
    if out is not None:
        # Our own figure already holds its legends; the caller's may not (its layout is theirs).
        # Atomically, so a failed save never leaves half an image; the temporary file's name
        # does not end in the format, so matplotlib is told it.
        write_atomically(out, lambda tmp: fig.savefig(
            tmp, format=Path(out).suffix.lstrip(".").lower(), dpi=dpi,
            bbox_inches=None if grid is not None else "tight"))
    return fig


# --------------------------------------------------------------------------------------------
# the steps of plot(), in order
# --------------------------------------------------------------------------------------------
def _gather(
    result_or_data: Any, symbol: str, *, data: Any, config: ATCConfig | None, backend: str,
) -> tuple[dict[str, pd.Series], dict[str, Any], ATCConfig]:
    """The symbol's prices and its ATC series (taken from a result or computed), on the same
    bars, and the config."""
    from .results import ATCResult

    if not isinstance(result_or_data, ATCResult):
        uni, j = _universe_column(result_or_data, symbol)
        prices = _symbol_data(uni, j)
        series, cfg = _compute(prices["close"], config, backend)
        return _on_times(prices, series["index"], symbol), series, cfg
    if data is None:
        raise ValueError("an ATCResult holds no prices: pass data= (the prices it was "
                         "computed from) to plot it")
    uni, j = _universe_column(data, symbol)
    series = _from_result(result_or_data, symbol)
    if series is None:
        prices = _symbol_data(uni, j)
        series, cfg = _compute(prices["close"], result_or_data.config, backend)
        return _on_times(prices, series["index"], symbol), series, cfg
    # The whole column, not only the symbol's own bars: a result computed with
    # calendar="union" has bars at other symbols' times too, and is drawn as computed.
    times = _data_times(series["index"], result_or_data.index, uni.index)
    prices = _on_times(_columns(uni, symbol), times, symbol)
    series["index"] = times
    return prices, series, result_or_data.config


def _data_times(times: pd.Index, result_index: pd.Index, data_index: pd.Index) -> pd.Index:
    """`times` as labels of the data: a result computed from a bare array counts bars
    0, 1, … of the data it was given, so on a data index of that length they are its rows."""
    default = isinstance(result_index, pd.RangeIndex) and result_index.start == 0 \
        and result_index.step == 1
    if default and len(result_index) == len(data_index) and not data_index.equals(result_index):
        return data_index.take(np.asarray(times, dtype=np.int64))
    return times


class _Bars(NamedTuple):
    """The shown bars: positions, prices and the ATC outputs, all cut to the same window."""

    x: np.ndarray
    index: pd.Index
    close: np.ndarray
    ohlc: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # open, high, low when known
    avg: np.ndarray
    fam: np.ndarray
    ma: np.ndarray
    longs: np.ndarray
    shorts: np.ndarray


def _visible_bars(prices: dict[str, pd.Series], series: dict[str, Any], symbol: str,
                  last: int | None) -> _Bars:
    """The last `last` bars of everything drawn."""
    n = len(prices["close"])
    if len(series["average_signal"]) != n:
        raise ValueError(f"the result has {len(series['average_signal'])} bars for {symbol!r} "
                         f"but the data has {n}: pass the data the result was computed from")
    if last is not None and int(last) < 2:
        raise ValueError(f"last must be >= 2 bars, got {last!r}")
    view = slice(0 if last is None else max(0, n - int(last)), n)

    def shown(name: str) -> np.ndarray:
        return prices[name].to_numpy(dtype=float)[view]

    index = pd.Index(series["index"])[view]
    return _Bars(
        x=np.arange(len(index), dtype=float),
        index=index,
        close=shown("close"),
        ohlc=(shown("open"), shown("high"), shown("low")) if "open" in prices else None,
        avg=series["average_signal"][view],
        fam=series["family_signals"][:, view],
        ma=series["base_ma"][:, view],
        longs=series["long_events"][view].astype(bool),
        shorts=series["short_events"][view].astype(bool),
    )


def _bar_colors(avg: np.ndarray, mcolors: Any) -> np.ndarray:
    """RGBA per bar from Average_Signal: red at -1, grey at 0, green at +1; pale before it."""
    cmap = mcolors.LinearSegmentedColormap.from_list("atc", [_DOWN, "#b0b0b0", _UP])
    norm = mcolors.Normalize(-1.0, 1.0)
    colors = cmap(norm(np.nan_to_num(avg, nan=0.0)))
    colors[np.isnan(avg)] = mcolors.to_rgba("#cfcfcf")
    return colors


def _draw_price(ax: Any, bars: _Bars, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candles (or a close line) coloured per bar; returns the top and bottom of each bar."""
    from matplotlib.collections import LineCollection

    x, close = bars.x, bars.close
    if bars.ohlc is None:
        ax.add_collection(LineCollection(_segments(x, close), colors=colors[1:],
                                         linewidths=1.6, zorder=3))
        return close, close
    o, h, low = bars.ohlc
    wicks = np.stack([np.column_stack([x, low]), np.column_stack([x, h])], axis=1)
    ax.add_collection(LineCollection(wicks, colors=colors, linewidths=0.8, zorder=2))
    body_lo, body_hi = np.minimum(o, close), np.maximum(o, close)
    # A doji still needs a visible body.
    height = np.maximum(body_hi - body_lo, 1e-9 * np.nanmax(np.abs(close)))
    ax.bar(x, height, bottom=body_lo, width=0.7, color=colors, edgecolor=colors,
           linewidth=0.3, zorder=3)
    return h, low


def _draw_families(ax: Any, bars: _Bars, cfg: ATCConfig) -> list:
    """Each family's base-length MA in its own colour, solid while its signal is positive and
    dotted otherwise; returns the legend handles (one per family drawn, then the two styles).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    handles = []
    for k, name in enumerate(FAMILIES):
        y = bars.ma[k]
        if np.isnan(y).all():
            continue
        lines, up = _runs(bars.x, y, bars.fam[k] > 0)
        ax.add_collection(LineCollection(
            lines, colors=_FAMILY_COLORS[name], linewidths=_FAMILY_LW,
            linestyles=[_TREND_UP_STYLE if u else _TREND_DOWN_STYLE for u in up],
            alpha=0.9, zorder=4, label=f"{name} {cfg.lengths[k]}"))
        handles.append(Line2D([], [], color=_FAMILY_COLORS[name], lw=2.2,
                              label=f"{name} {cfg.lengths[k]}"))
    if handles:
        # The trend key, in a neutral grey: it applies to every family colour above.
        handles += [Line2D([], [], color="#555555", lw=_FAMILY_LW, ls=_TREND_UP_STYLE,
                           label="family signal > 0"),
                    Line2D([], [], color="#555555", lw=_FAMILY_LW, ls=_TREND_DOWN_STYLE,
                           label="family signal ≤ 0")]
    return handles


def _draw_events(ax: Any, bars: _Bars, top_y: np.ndarray, bottom_y: np.ndarray) -> list:
    """Long arrows under the bars, short arrows above, and the price axis's y range.

    Returns the legend handles of the arrows drawn.
    """
    from matplotlib.lines import Line2D

    # The y range follows the price only: KAMA starts at 0 and creeps up (spec 3), and its
    # warm-up must not squash the chart; lines outside the range are simply clipped.
    finite = np.concatenate([top_y[np.isfinite(top_y)], bottom_y[np.isfinite(bottom_y)]])
    span = (finite.max() - finite.min()) if finite.size else 1.0
    pad = 0.04 * (span if span > 0 else max(abs(finite.max()) if finite.size else 1.0, 1.0))
    handles = []
    for where, y, marker, color, label in ((bars.longs, bottom_y - pad, "^", _UP, "long"),
                                           (bars.shorts, top_y + pad, "v", _DOWN, "short")):
        if where.any():
            ax.scatter(bars.x[where], y[where], marker=marker, s=90, color=color,
                       edgecolor="black", linewidth=0.5, zorder=6)
            handles.append(Line2D([], [], marker=marker, color=color, ls="none", markersize=8,
                                  markeredgecolor="black", label=label))
    if finite.size:
        ax.set_ylim(finite.min() - 2.5 * pad, finite.max() + 2.5 * pad)
    return handles


def _outside_legend(ax: Any, **kwargs: Any):
    """A legend right of `ax`, its top level with the axes' top: outside the data area."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=_LEGEND_PAD,
                     fontsize=8, ncol=1, framealpha=0.9, **kwargs)


def _label_price_panel(ax: Any, handles: list, n_bars: int, title: str) -> None:
    """Legend, title and axes of the upper panel; its time labels are the signal panel's."""
    ax.set_xlim(-1, n_bars)
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.25)
    _outside_legend(ax, handles=handles)
    ax.tick_params(axis="x", labelbottom=False)
    ax.set_title(title, fontsize=10, loc="left")


def _draw_signal(ax: Any, bars: _Bars, cfg: ATCConfig) -> None:
    """The lower panel: Average_Signal, filled green above 0 and red below, and thresholds."""
    from matplotlib.ticker import MaxNLocator

    x, avg = bars.x, bars.avg
    ax.axhline(0.0, color="#777777", lw=0.8)
    ax.axhline(cfg.long_threshold, color=_UP, lw=0.9, ls="--",
               label=f"long threshold {cfg.long_threshold:g}")
    ax.axhline(cfg.short_threshold, color=_DOWN, lw=0.9, ls="--",
               label=f"short threshold {cfg.short_threshold:g}")
    ax.fill_between(x, 0, avg, where=avg > 0, color=_UP, alpha=0.35, interpolate=True,
                    linewidth=0)
    ax.fill_between(x, 0, avg, where=avg < 0, color=_DOWN, alpha=0.35, interpolate=True,
                    linewidth=0)
    ax.plot(x, avg, color="#222222", lw=1.0, label="Average_Signal")
    ax.set_ylim(-1.08, 1.08)
    ax.set_xlim(-1, len(x))
    ax.set_ylabel("Average_Signal")
    ax.grid(True, alpha=0.25)
    _outside_legend(ax)
    # Ticks on whole bars only: a tick between two bars would be labelled with a rounded,
    # repeated time (the x axis counts the symbol's own bars, not time).
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    ax.xaxis.set_major_formatter(_time_formatter(bars.index))
    ax.tick_params(axis="x", labelsize=8)


def _default_title(symbol: str, cfg: ATCConfig, avg: np.ndarray, direction: np.ndarray) -> str:
    """The symbol, the parameters, and the last bar's Average_Signal and direction."""
    last_a = avg[-1] if len(avg) else np.nan
    d = direction[-1] if len(direction) else np.nan
    dir_text = "none" if np.isnan(d) else ("long" if d > 0 else "short")
    return (f"{symbol} — ATC {cfg.robustness}, lengths {'/'.join(map(str, cfg.lengths))}, "
            f"La {cfg.la:g}, De {cfg.de:g}   ·   Average_Signal {last_a:+.3f}, "
            f"direction {dir_text}")


def _axes(ax: Any, figsize: tuple[float, float], dpi: int, out: Any):
    """(figure, price axes, signal axes, grid) from what the caller gave.

    `grid` is the GridSpec of a figure made here (whose right margin is ours to size for the
    legends), None for the caller's axes.
    """
    if ax is None:
        if out is not None:
            # A figure not registered with pyplot: nothing to close, no global state touched.
            from matplotlib.figure import Figure

            fig = Figure(figsize=figsize, dpi=dpi)
        else:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=figsize, dpi=dpi)
        gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.05,
                              left=0.07, right=0.98, top=0.95, bottom=0.09)
        ax_price = fig.add_subplot(gs[0])
        ax_sig = fig.add_subplot(gs[1], sharex=ax_price)
        return fig, ax_price, ax_sig, gs
    if isinstance(ax, (tuple, list)):
        if len(ax) != 2:
            raise ValueError("ax must be one Axes or a pair (price axes, signal axes)")
        return ax[0].figure, ax[0], ax[1], None
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    sig = make_axes_locatable(ax).append_axes("bottom", size="33%", pad=0.1, sharex=ax)
    return ax.figure, ax, sig, None


def _reserve_legend_margin(fig: Any, grid: Any, axes: tuple) -> None:
    """Narrow the panels of a figure made here so that their legends, right of them, fit in it.

    The legends' size is in points (their font), not in figure fractions, so the margin is
    measured rather than fixed: any figsize, dpi, threshold labels or set of entries fits, and
    the saved file keeps exactly figsize × dpi pixels (no ``bbox_inches="tight"`` cropping).
    """
    overhang = 0.0  # pixels from the panels' right edge to the legends' right edge
    for ax in axes:
        legend = ax.get_legend()
        if legend is not None:
            overhang = max(overhang, legend.get_window_extent().x1 - ax.get_window_extent().x1)
    if overhang <= 0:
        return
    right = (fig.bbox.width - overhang - _MARGIN_PX) / fig.bbox.width
    # Never squeeze the panels to nothing: a legend too wide for a tiny figure may then spill.
    grid.update(right=max(right, grid.left + 0.3))
    # GridSpec.update moves the axes of pyplot's figures only; a bare Figure's are moved here.
    for ax in axes:
        ax.set_position(ax.get_subplotspec().get_position(fig))
