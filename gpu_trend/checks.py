"""The per-symbol input check (spec section 8), and the one wording of its findings.

:func:`check_symbols` looks at every symbol's closes (and source) once and
returns, for each symbol, what is wrong with it first and on which bar. Its
callers decide what a finding means to them: the engine raises
:class:`~gpu_trend.engine.ATCInputError` for the first symbol at fault, the
readers of :mod:`gpu_trend.io` reject symbols, and the scanner skips them;
all three word the finding with :func:`describe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .arrays import namespace, to_host

#: Finding kinds, in the order they are looked for within one symbol.
OK, BAD_CLOSE, BAD_SOURCE, CLOSE_HOLE, SOURCE_HOLE, NO_DATA = range(6)

#: Largest accepted |price|: the window sums multiply prices by up to ℓ² (about 1e10 at the
#: longest windows) and must stay far from float64's 1.8e308, without a check in the kernels.
MAX_PRICE = 1e100

#: Findings that stop a computation (a symbol without any close computes as all-NaN).
ERRORS = (BAD_CLOSE, BAD_SOURCE, CLOSE_HOLE, SOURCE_HOLE)

#: The category a finding is filed under in skip and reject reasons.
CATEGORY = {BAD_CLOSE: "invalid prices", BAD_SOURCE: "invalid prices",
            CLOSE_HOLE: "missing data", SOURCE_HOLE: "missing data", NO_DATA: "no data"}


@dataclass(frozen=True)
class SymbolChecks:
    """What :func:`check_symbols` found, one entry per symbol (host arrays).

    Attributes
    ----------
    kind : (S,) int8
        ``OK``, one of :data:`ERRORS`, or ``NO_DATA``.
    bar : (S,) int64
        Bar of the finding (−1 for ``OK`` and ``NO_DATA``).
    value : (S,) float64
        The offending close or source (NaN for holes and where nothing is wrong).
    start : (S,) int64
        Each symbol's first valid close, its listing bar (T if it has none).
    """

    kind: np.ndarray
    bar: np.ndarray
    value: np.ndarray
    start: np.ndarray

    def first_error(self):
        """Row of the first symbol whose finding is an error, or None."""
        rows = np.flatnonzero(np.isin(self.kind, ERRORS))
        return int(rows[0]) if len(rows) else None


def listing_bars(xp, valid):
    """Each row's first valid bar (its listing); the row length where it has none."""
    n_sym, n_bars = valid.shape
    if n_bars == 0:
        return xp.zeros(n_sym, dtype=xp.int64)
    return xp.where(valid.any(axis=1), xp.argmax(valid, axis=1), n_bars)


def check_symbols(close, source=None, *, nan_policy: str = "raise") -> SymbolChecks:
    """Check every symbol's inputs; the arrays stay where they are (NumPy or CuPy).

    Within one symbol the first finding in this order is reported: a close
    that is not a finite price > 0 (at most :data:`MAX_PRICE`), an infinite
    (or beyond :data:`MAX_PRICE`) source, then (only with
    ``nan_policy="raise"``) a NaN close or source inside its history (from
    its first valid close on), or (``"skip"``, whose closes have no holes
    left) a NaN source on a bar; a symbol with no valid close is ``NO_DATA``.

    Parameters
    ----------
    close : (S, T) float64 array
    source : (S, T) float64 array, optional
        A separate MA input; None or ``close`` itself when there is none.
    nan_policy : str
        Holes are findings only under ``"raise"``.

    Returns
    -------
    SymbolChecks
    """
    xp = namespace(close)
    separate = source is not None and source is not close
    n_sym, n_bars = close.shape
    valid = ~xp.isnan(close)
    start = listing_bars(xp, valid)
    kind = xp.where(start >= n_bars, NO_DATA, OK).astype(xp.int8)
    bar = xp.full(n_sym, -1, dtype=xp.int64)

    def in_history():
        return xp.arange(n_bars)[None, :] >= start[:, None]

    # One mask at a time, in priority order, so the peak stays at a few bool arrays.
    checks = [(BAD_CLOSE, lambda: valid & ~((close > 0) & (close <= MAX_PRICE)))]
    if separate:
        checks.append((BAD_SOURCE, lambda: xp.abs(source) > MAX_PRICE))
    if nan_policy == "raise":
        checks.append((CLOSE_HOLE, lambda: in_history() & ~valid))
    if separate and nan_policy in ("raise", "skip"):
        checks.append((SOURCE_HOLE, lambda: in_history() & xp.isnan(source)))
    for code, make in checks:
        mask = make()
        new = mask.any(axis=1) & ((kind == OK) | (kind == NO_DATA))
        if n_bars:
            bar = xp.where(new, xp.argmax(mask, axis=1), bar)
        kind = xp.where(new, code, kind).astype(xp.int8)
        del mask
    at = xp.maximum(bar, 0)[:, None]
    value = xp.full(n_sym, xp.nan)
    if n_bars:
        value = xp.where(kind == BAD_CLOSE, xp.take_along_axis(close, at, axis=1)[:, 0], value)
        if separate:
            value = xp.where(kind == BAD_SOURCE, xp.take_along_axis(source, at, axis=1)[:, 0],
                             value)
    return SymbolChecks(kind=to_host(kind), bar=to_host(bar), value=to_host(value),
                        start=to_host(start).astype(np.int64))


def bar_label(index, bar: int, positions=None) -> str:
    """``"bar 33 (2024-02-19)"``, or ``"bar 33"`` when the bars carry no labels of their own.

    With ``positions`` (one symbol's row of :func:`gpu_trend.calendars.right_align`), ``bar``
    is a packed column: the label is its time and the number counts the symbol's own bars.
    """
    if positions is not None:
        own = bar - int((positions < 0).sum())
        pos = int(positions[bar]) if 0 <= bar < len(positions) else -1
        if own < 0:  # a column before the input's bars: an update's window from its state
            return "an earlier bar (in the state)"
        return f"bar {own}" if pos < 0 else f"bar {own} ({index[pos]})"
    if index is None or isinstance(index, pd.RangeIndex):
        return f"bar {bar}"
    try:
        return f"bar {bar} ({index[bar]})"
    except IndexError:
        return f"bar {bar}"


def describe(checks: SymbolChecks, row: int, index=None, *, shown=None, positions=None) -> str:
    """The finding of symbol ``row`` in words (without the symbol's name).

    Parameters
    ----------
    checks : SymbolChecks
    row : int
    index : pandas.Index, optional
        Bar labels (times) for the message.
    shown : str, optional
        How to show the offending value (e.g. the raw text of a non-numeric
        cell); defaults to the float's repr.
    positions : (T',) int array, optional
        The symbol's row of packed positions, when the checks ran on packed bars.
    """
    kind, bar = int(checks.kind[row]), int(checks.bar[row])
    if shown is None:
        shown = repr(float(checks.value[row]))
    at = bar_label(index, bar, positions)
    value = float(checks.value[row])
    huge = math.isfinite(value) and abs(value) > MAX_PRICE
    beyond = f" (prices beyond {MAX_PRICE:g} are refused: the window sums would overflow)"
    if kind == BAD_CLOSE:
        return f"close must be a finite price > 0, got {shown} at {at}{beyond if huge else ''}"
    if kind == BAD_SOURCE:
        return f"source must be finite, got {shown} at {at}{beyond if huge else ''}"
    if kind in (CLOSE_HOLE, SOURCE_HOLE):
        what = "close" if kind == CLOSE_HOLE else "source"
        return (f"{what} is NaN at {at}, inside its history (first valid close at "
                f"{bar_label(index, int(checks.start[row]), positions)}); pass nan_policy='skip' if that "
                f"cell is not a bar of this symbol (its own calendar), nan_policy='ffill' to "
                f"carry the last value or nan_policy='pine' for the script's NaN semantics")
    if kind == NO_DATA:
        return "no valid close"
    return "no problem found"


def reason(checks: SymbolChecks, row: int, index=None, *, shown=None, positions=None) -> str:
    """:func:`describe` prefixed with the finding's category (``"invalid prices: …"``)."""
    text = describe(checks, row, index, shown=shown, positions=positions)
    return f"{CATEGORY[int(checks.kind[row])]}: {text}"
