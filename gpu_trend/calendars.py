"""Every symbol on its own calendar.

A symbol's bars are its own timestamps: a time that exists only in other
symbols' calendars is not one of its bars. The engine still computes on one
(symbols × bars) tensor, so each symbol's own bars are packed to the right:
its last bar sits in the tensor's last column, and the columns before its
first bar are padding (NaN), exactly as for a symbol listed later. A
symbol's values therefore depend on its own bars alone, and are the same bits
whether it is computed alone or inside any universe.

``positions`` maps the packed tensor back to time: ``positions[s, t]`` is
the row of the input's time index holding bar ``t`` of symbol ``s`` (−1 for
padding).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .arrays import namespace, to_host

#: How a universe's symbols are put on bars: each on its own timestamps, or all on the union
#: of every symbol's timestamps (where another symbol's time is a missing close).
CALENDARS = ("own", "union")


def span_mask(valid, listed=None):
    """True from each row's first to its last True: the bars of a symbol whose data may begin
    late and end early, when nothing else says which cells are bars (a wide table).

    Empty cells between are holes in its history (``nan_policy``), not missing bars.
    ``listed`` (S,) marks rows whose symbol is listed already (an update's): their bars
    start at the first column, so leading empty cells are holes too.
    """
    xp = namespace(valid)
    seen = xp.cumsum(valid, axis=1)
    started = seen > 0 if listed is None else (seen > 0) | xp.asarray(listed)[:, None]
    return started & (seen < seen[:, -1:] + valid)


def check_calendar(calendar: str, nan_policy: str) -> None:
    """Refuse an unknown calendar, and ``nan_policy="skip"`` on the union grid."""
    if calendar not in CALENDARS:
        raise ValueError(f"calendar must be one of {CALENDARS}, got {calendar!r}")
    if calendar == "union" and nan_policy == "skip":
        raise ValueError("nan_policy='skip' puts each symbol on its own bars: it needs "
                         "calendar='own'")


def bar_cells(valid, is_bar=None, *, nan_policy: str, calendar: str):
    """Which cells of a (S, T) grid are bars of their symbol; None when every cell is.

    Parameters
    ----------
    valid : (S, T) bool
        Cells with a close.
    is_bar : (S, T) bool, optional
        What the input says (a Universe's rows); None for a bare grid, whose symbols'
        bars then run from their first close to their last (:func:`span_mask`) where
        any ends early.
    nan_policy, calendar : str
        ``"skip"`` drops every empty cell; ``"union"`` makes every cell a bar.
    """
    check_calendar(calendar, nan_policy)
    if calendar == "union":
        return None
    if nan_policy == "skip":
        return valid if is_bar is None else namespace(valid).asarray(is_bar) & valid
    if is_bar is None and ends_early(valid):
        return span_mask(valid)
    return is_bar


def ends_early(valid) -> bool:
    """Whether some row with data has an empty last cell (its data ends before the others')."""
    return valid.shape[1] > 0 and bool((valid.any(axis=1) & ~valid[:, -1]).any())


def right_align(is_bar, *arrays):
    """Pack each row's bars to the right.

    Parameters
    ----------
    is_bar : (S, T) bool array, NumPy or CuPy
        Which cells are bars of their row's symbol.
    *arrays : (S, T) float64 arrays of the same type
        Values on the input grid (close, source, volume, ...).

    Returns
    -------
    aligned : list of (S, T') float64 arrays
        The bars of each row, in order, ending in column T' − 1, NaN before;
        T' is the largest number of bars of any row.
    positions : (S, T') int64 NumPy
        Input column of each packed cell; −1 for padding.
    """
    xp = namespace(is_bar, *arrays)
    # The bookkeeping is done on the host (a CuPy mask comes down at one byte a cell); only
    # the values are moved where they live.
    mask = is_bar if xp is np else to_host(is_bar)
    n_sym = mask.shape[0]
    counts = mask.sum(axis=1)
    width = int(counts.max()) if n_sym else 0
    rows, cols = np.nonzero(mask)
    # The k-th bar of row s (k from 0) goes to column width − counts[s] + k.
    dest = (width - counts)[rows] + np.cumsum(mask, axis=1)[rows, cols] - 1
    positions = np.full((n_sym, width), -1, dtype=np.int64)
    positions[rows, dest] = cols
    if xp is not np:
        rows, cols, dest = xp.asarray(rows), xp.asarray(cols), xp.asarray(dest)
    aligned = []
    for arr in arrays:
        out = xp.full((n_sym, width), xp.nan)
        out[rows, dest] = arr[rows, cols]
        aligned.append(out)
    return aligned, positions


def times_of(index: pd.Index, positions_row: np.ndarray) -> pd.Index:
    """The times of one symbol's bars (padding left out)."""
    return index.take(positions_row[positions_row >= 0])


def last_times(index: pd.Index, positions: np.ndarray | None, n_symbols: int,
               has_bars=None) -> list:
    """Each symbol's last bar time (None for a symbol without bars).

    Without `positions` (every symbol's bar t is ``index[t]``) a symbol's last bar is the
    last row, if it has bars at all: `has_bars` (S,) bool says which (default: all), so that
    a symbol without data gets None whatever the other symbols of the input are.
    """
    if not len(index):
        return [None] * n_symbols
    if positions is None:
        if has_bars is None:
            return [index[-1]] * n_symbols
        return [index[-1] if h else None for h in np.asarray(has_bars)]
    last = positions[:, -1] if positions.shape[1] else np.full(n_symbols, -1)
    times = index.take(np.maximum(last, 0)).tolist()
    return [t if p >= 0 else None for t, p in zip(times, last.tolist())]
