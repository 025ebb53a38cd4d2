"""The outputs of the engine, declared once.

Every per-bar output is one :class:`Output` in :data:`OUTPUTS`. From this
table come the arrays a block allocates (:func:`allocate`), the GPU's
time-major scratch and its views (:meth:`Output.time_major_shape`,
:meth:`Output.symbol_major`), the planner's byte count
(:func:`bytes_per_symbol_bar`) and the array fields of
:class:`~gpu_trend.results.ATCResult`. Adding an output means adding a row
here and writing it in the cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cores import N_FAMILIES, N_SIGNALS


@dataclass(frozen=True)
class Output:
    """One per-bar output.

    Attributes
    ----------
    name : str
        Attribute of :class:`~gpu_trend.results.ATCResult` and key of the
        block output dicts.
    width : int
        Series per symbol: 1 gives (S, T) arrays, 6 (families) or 54
        (members) give (S, width, T).
    dtype : numpy dtype
    members_only : bool
        Present only with ``members=True``.
    doc : str
        One line for the result's docstring.
    """

    name: str
    width: int
    dtype: type
    members_only: bool
    doc: str

    def shape(self, n_symbols: int, n_bars: int) -> tuple:
        """Symbol-major shape: (S, T) or (S, width, T)."""
        return (n_symbols, n_bars) if self.width == 1 else (n_symbols, self.width, n_bars)

    def time_major_shape(self, n_symbols: int, n_bars: int) -> tuple:
        """The GPU's layout, (T, S) or (width, T, S): a warp's symbols are adjacent in memory."""
        return (n_bars, n_symbols) if self.width == 1 else (self.width, n_bars, n_symbols)

    def symbol_major(self, time_major):
        """A symbol-major view of an array in :meth:`time_major_shape`."""
        return time_major.T if self.width == 1 else time_major.transpose(2, 0, 1)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


OUTPUTS = (
    Output("average_signal", 1, np.float64, False, "Average_Signal A (spec 7.3)."),
    Output("family_signals", N_FAMILIES, np.float64, False,
           "Layer-1 family signals X_k, in FAMILIES order."),
    Output("family_equities", N_FAMILIES, np.float64, False, "Layer-2 equities S_k."),
    Output("direction", 1, np.float64, False,
           "NaN until the first threshold crossing, then +1 / -1."),
    Output("long_events", 1, np.bool_, False, "Long arrows (spec 7.4)."),
    Output("short_events", 1, np.bool_, False, "Short arrows (spec 7.4)."),
    Output("member_ma", N_SIGNALS, np.float64, True,
           "The 54 member moving averages, family-major, spec section-2 order."),
    Output("member_signal", N_SIGNALS, np.float64, True, "The 54 member signals q."),
    Output("member_equity", N_SIGNALS, np.float64, True, "The 54 Layer-1 equities E."),
)

def selected(members: bool) -> tuple:
    """The outputs a call returns: all of them with ``members``, else the non-member ones."""
    return tuple(o for o in OUTPUTS if members or not o.members_only)


def allocate(xp, n_symbols: int, n_bars: int, members: bool) -> dict:
    """Uninitialised symbol-major outputs of a block (the cores write every element)."""
    return {o.name: xp.empty(o.shape(n_symbols, n_bars), dtype=o.dtype)
            for o in selected(members)}


def bytes_per_symbol_bar(members: bool) -> int:
    """Bytes of one symbol's outputs per bar."""
    return sum(o.width * o.itemsize for o in selected(members))
