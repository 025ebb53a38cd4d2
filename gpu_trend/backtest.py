"""The calibration summary: the strategy that follows ATC's direction, bar by bar.

The rules (the script's "strategy view"):

* **Position.** The position held over bar t (from the close of bar t−1 to the close of
  bar t) is the direction on bar t−1: long (+1), short (−1), or flat (0) while the direction
  is undefined (before the first threshold crossing). A signal is therefore acted on at the
  close of the bar that gives it and earns from the next bar on.
* **Returns.** The strategy's return over bar t is ``position × (c_t / c_{t−1} − 1)``, on
  the symbol's own bars (its first bar has none). A bar without a return (a NaN close under
  ``nan_policy="pine"``) earns 0.
* **Trades and costs.** Every change of position is a trade: the first entry and every
  reversal. ``cost`` is a fraction of equity paid per unit of position traded, on the bar
  the position changes: an entry pays ``cost``, a reversal (long to short) ``2 × cost``
  (it leaves one position and takes the other). Nothing is paid at the end: open positions
  are valued at the last close.
* **Equity** starts at 1 and compounds ``(1 + return) × (1 − cost × |Δposition|)``; a bar
  that loses everything (a short through a price more than doubling) leaves it at 0.
* **Metrics.** ``total_return`` = final equity − 1; ``annualised_return`` =
  (final equity)^(1 / years) − 1 with ``years`` from the symbol's first to its last bar
  time (NaN without a time index); ``max_drawdown`` = the largest fall from a running peak
  (the start counts as one), as a fraction of the peak; ``trades``; ``time_in_market`` =
  the fraction of the symbol's bars with a return on which a position is held.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Per-(configuration, symbol) columns of the summary, in order.
METRICS = ("total_return", "annualised_return", "max_drawdown", "trades", "time_in_market")
YEAR = pd.Timedelta(days=365.25)


def bar_returns(close: np.ndarray) -> np.ndarray:
    """(S, T − 1): ``c_t / c_{t−1} − 1`` of bars 1..T−1, 0 where either close is NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = close[:, 1:] / close[:, :-1] - 1.0
    return np.where(np.isnan(r), 0.0, r)


def strategy_metrics(returns: np.ndarray, direction: np.ndarray, start_bar: np.ndarray,
                     years: np.ndarray, cost: float = 0.0) -> dict:
    """The metrics of the module's rules for every symbol.

    Parameters
    ----------
    returns : (S, T − 1) float64
        :func:`bar_returns` of the closes.
    direction : (S, T) float64
        +1 / −1, NaN while undefined (before a symbol's first bar too).
    start_bar : (S,) int64
        Each symbol's first bar (T if none).
    years : (S,) float64
        Span of each symbol's bars in years; NaN where unknown.
    cost : float
        Fraction of equity per unit of position traded.

    Returns
    -------
    dict of (S,) arrays
        One per name in :data:`METRICS`.
    """
    n_sym, n_bars = direction.shape
    position = np.nan_to_num(direction[:, :-1], nan=0.0)
    before = np.concatenate([np.zeros((n_sym, 1)), position[:, :-1]], axis=1)
    turnover = np.abs(position - before)
    factor = np.maximum(1.0 + position * returns, 0.0) * (1.0 - cost * turnover)
    equity = np.cumprod(factor, axis=1)
    final = equity[:, -1] if n_bars > 1 else np.ones(n_sym)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=1)
    drawdown = (1.0 - equity / peak).max(axis=1, initial=0.0)
    held = (n_bars - 1 - start_bar).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        in_market = np.where(held > 0, (position != 0).sum(axis=1) / held, np.nan)
        annual = np.where(years > 0, final ** (1.0 / years) - 1.0, np.nan)
    return {"total_return": final - 1.0, "annualised_return": annual,
            "max_drawdown": drawdown, "trades": (turnover > 0).sum(axis=1),
            "time_in_market": in_market}


def symbol_years(index: pd.Index, positions, start_bar: np.ndarray) -> np.ndarray:
    """(S,) years from each symbol's first bar time to its last; NaN without a time index."""
    n_sym = len(start_bar)
    if not isinstance(index, pd.DatetimeIndex) or not len(index):
        return np.full(n_sym, np.nan)
    n_bars = positions.shape[1] if positions is not None else len(index)
    has = start_bar < n_bars
    first = np.where(has, start_bar, n_bars - 1) if n_bars else start_bar
    if positions is not None:
        rows = np.arange(n_sym)
        first_row, last_row = positions[rows, first], positions[rows, -1]
    else:
        first_row, last_row = first, np.full(n_sym, len(index) - 1)
    span = (index[last_row] - index[first_row]) / YEAR
    return np.where(has, np.asarray(span, dtype=np.float64), np.nan)


def aggregate(per_symbol: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration from the per-(configuration, symbol) table.

    Means over the symbols that have bars of every metric, ``worst_drawdown`` (the largest
    ``max_drawdown``), ``positive`` (the fraction of those symbols with a total return above
    0) and ``symbols`` (how many).
    """
    rows = per_symbol[per_symbol["time_in_market"].notna()]
    grouped = rows.groupby(level="config", sort=True)
    table = grouped[list(METRICS)].mean()
    table["worst_drawdown"] = grouped["max_drawdown"].max()
    table["positive"] = grouped["total_return"].agg(lambda r: float((r > 0).mean()))
    table["symbols"] = grouped.size()
    return table.reindex(per_symbol.index.get_level_values("config").unique())
