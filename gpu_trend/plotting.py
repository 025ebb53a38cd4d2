"""Charts of one symbol's ATC, the way a TradingView user reads the indicator.

The upper panel shows the price — candles coloured by Average_Signal when open/high/low are
known, otherwise a close line coloured the same way — with the six family moving averages at
their base length (green while the family signal is positive, red while negative) and the
long / short arrows.  The lower panel shows Average_Signal with the long and short thresholds.

matplotlib is imported only when a chart is drawn (install the ``plot`` extra).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .arrays import to_host
from .config import FAMILIES, N_MEMBERS, ATCConfig

__all__ = ["plot"]

_UP, _DOWN, _FLAT = "#1b9e4b", "#d62728", "#9e9e9e"
_FAMILY_STYLES = {
    "EMA": "solid",
    "HMA": (0, (6, 2)),
    "WMA": (0, (1, 1.5)),
    "DEMA": (0, (6, 2, 1, 2)),
    "LSMA": (0, (3, 1.5)),
    "KAMA": (0, (8, 2, 1, 2, 1, 2)),
}
_FIGSIZE = (12.0, 7.0)
_DPI = 100


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'gpu-trend[plot]'") from None
    import matplotlib.colors as mcolors

    return mcolors


def _symbol_data(data: Any, symbol: str) -> dict[str, pd.Series]:
    """Close (and open/high/low when known) of one symbol, from its first valid close on."""
    from .io import Universe, read_universe

    uni = data if isinstance(data, Universe) else read_universe(data)
    if symbol not in uni.close.columns:
        if symbol in uni.rejected:
            raise ValueError(f"symbol {symbol!r} was rejected by the reader: "
                             f"{uni.rejected[symbol]}")
        names = uni.symbols
        shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
        raise KeyError(f"symbol {symbol!r} is not in the data ({len(names)} symbols: {shown})")
    close = uni.close[symbol]
    valid = close.notna().to_numpy()
    if not valid.any():
        raise ValueError(f"symbol {symbol!r} has no valid close")
    start = int(np.argmax(valid))
    out = {"close": close.iloc[start:]}
    if uni.open is not None and uni.high is not None and uni.low is not None:
        for name in ("open", "high", "low"):
            out[name] = getattr(uni, name)[symbol].iloc[start:]
    return out


def _from_result(result: Any, symbol: str) -> dict[str, np.ndarray] | None:
    """The plotted outputs of `symbol` from an ATCResult, or None if members are missing."""
    if result.member_ma is None:
        return None
    try:
        i = list(result.symbols).index(symbol)
    except ValueError:
        raise KeyError(f"symbol {symbol!r} is not in the result") from None

    start = int(result.start_bar[i]) if getattr(result, "start_bar", None) is not None else 0
    sl = slice(start, None)
    return {
        "average_signal": to_host(result.average_signal[i])[sl],
        "family_signals": to_host(result.family_signals[i])[:, sl],
        "base_ma": to_host(result.member_ma[i])[::N_MEMBERS][:, sl],
        "long_events": to_host(result.long_events[i])[sl],
        "short_events": to_host(result.short_events[i])[sl],
        "direction": to_host(result.direction[i])[sl],
        "index": result.index[sl],
    }


def _compute(close: pd.Series, config: ATCConfig | None, backend: str) -> tuple[dict, ATCConfig]:
    from .engine import compute_atc

    res = compute_atc(close.rename(str(close.name)), config, backend=backend, members=True)
    return _from_result(res, str(close.name)), res.config


def _segments(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    pts = np.column_stack([x, y])
    return np.stack([pts[:-1], pts[1:]], axis=1)


def _trend_colors(values: np.ndarray) -> list[str]:
    return [_UP if v > 0 else _DOWN if v < 0 else _FLAT for v in values]


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

    Parameters
    ----------
    result_or_data : ATCResult, Universe, pandas.DataFrame, str or os.PathLike
        Either prices (anything :func:`gpu_trend.io.read_universe` reads) — ATC is then
        computed for `symbol` — or an :class:`~gpu_trend.ATCResult`.  A result holds no prices,
        so pass them as `data`; a result computed without ``members=True`` is recomputed for
        this one symbol (with its own config) to get the moving averages.
    symbol : str
        The symbol to draw.
    config : ATCConfig, optional
        Parameters when computing from prices (ignored for a result, which has its own).
    data : optional
        The prices a result was computed from (when `result_or_data` is a result).
    ax : matplotlib Axes or a pair of Axes, optional
        Where to draw: a pair (price, signal); a single Axes is split, the signal panel going
        below it.  Default: a new figure.
    out : str or os.PathLike, optional
        Save the figure there (PNG, SVG, PDF… by extension).
    last : int or None, default 300
        Show only the last `last` bars (None: the whole history).  The indicator is always
        computed on the whole history.
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
    fig, ax_price, ax_sig = _axes(ax, figsize, dpi, out)
    colors = _bar_colors(bars.avg, mcolors)
    top_y, bottom_y = _draw_price(ax_price, bars, colors)
    handles = _draw_families(ax_price, bars, cfg)
    handles += _draw_events(ax_price, bars, top_y, bottom_y)
    if title is None:
        title = _default_title(symbol, cfg, bars.avg, series["direction"])
    _label_price_panel(ax_price, handles, len(bars.x), title)
    _draw_signal(ax_sig, bars, cfg)
    if out is not None:
        fig.savefig(os.fspath(out), dpi=dpi)
    return fig


# --------------------------------------------------------------------------------------------
# the steps of plot(), in order
# --------------------------------------------------------------------------------------------
def _gather(
    result_or_data: Any, symbol: str, *, data: Any, config: ATCConfig | None, backend: str,
) -> tuple[dict[str, pd.Series], dict[str, Any], ATCConfig]:
    """The symbol's prices, its ATC series (taken from a result or computed) and the config."""
    from .results import ATCResult

    if not isinstance(result_or_data, ATCResult):
        prices = _symbol_data(result_or_data, symbol)
        return (prices, *_compute(prices["close"], config, backend))
    if data is None:
        raise ValueError("an ATCResult holds no prices: pass data= (the prices it was "
                         "computed from) to plot it")
    prices = _symbol_data(data, symbol)
    series = _from_result(result_or_data, symbol)
    if series is None:
        return (prices, *_compute(prices["close"], result_or_data.config, backend))
    return prices, series, result_or_data.config


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

    index = prices["close"].index[view]
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
    """Each family's base-length MA, green/red by its signal; returns the legend handles."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    handles = []
    for k, name in enumerate(FAMILIES):
        y = bars.ma[k]
        if np.isnan(y).all():
            continue
        ax.add_collection(LineCollection(
            _segments(bars.x, y), colors=_trend_colors(bars.fam[k][1:]), linewidths=1.1,
            linestyles=_FAMILY_STYLES[name], alpha=0.85, zorder=4))
        handles.append(Line2D([], [], color="#555555", lw=1.1, ls=_FAMILY_STYLES[name],
                              label=f"{name} {cfg.lengths[k]}"))
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


def _label_price_panel(ax: Any, handles: list, n_bars: int, title: str) -> None:
    """Legend, title and axes of the upper panel; its time labels are the signal panel's."""
    ax.set_xlim(-1, n_bars)
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.25)
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=4, framealpha=0.8)
    ax.tick_params(axis="x", labelbottom=False)
    ax.set_title(title, fontsize=10, loc="left")


def _draw_signal(ax: Any, bars: _Bars, cfg: ATCConfig) -> None:
    """The lower panel: Average_Signal, filled green above 0 and red below, and thresholds."""
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
    ax.legend(loc="lower left", fontsize=8, ncol=3, framealpha=0.8)
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
    """(figure, price axes, signal axes) from what the caller gave."""
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
        return fig, ax_price, ax_sig
    if isinstance(ax, (tuple, list)):
        if len(ax) != 2:
            raise ValueError("ax must be one Axes or a pair (price axes, signal axes)")
        return ax[0].figure, ax[0], ax[1]
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    sig = make_axes_locatable(ax).append_axes("bottom", size="33%", pad=0.1, sharex=ax)
    return ax.figure, ax, sig
