"""The result container of :func:`gpu_trend.compute_atc`."""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from . import calendars, display, labelled
from .arrays import namespace, to_host
from .config import FAMILIES, N_FAMILIES, ATCConfig, member_names
from .outputs import OUTPUTS


def _bars_since(events) -> np.ndarray:
    """Bars since the last True along the last axis, at the last bar (NaN if never).

    Computed where ``events`` lives (NumPy or CuPy); only the result comes back to the host.
    """
    xp = namespace(events)
    n = events.shape[-1]
    if not n:
        return np.full(events.shape[:-1], np.nan)
    hit = events.any(axis=-1)
    last = n - 1 - xp.argmax(events[..., ::-1], axis=-1)
    return to_host(xp.where(hit, (n - 1 - last).astype(np.float64), np.nan))


def _nullable_int(values) -> pd.arrays.IntegerArray:
    """Whole numbers with NaN as <NA>: what tables and files show for a direction or a count."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def latest_table(symbols, times, last, since, index=None) -> pd.DataFrame:
    """The :meth:`ATCResult.latest` table from each symbol's last bar time (None: no bar),
    last values ((S, 8): Average_Signal, direction, six family signals) and bars since its
    last long and short event ((S, 2), NaN if never). With the time `index`, a table whose
    symbols have no bar at all gets the missing-time type a column with times would (NaN for
    bar numbers, NaT for datetimes), so that tables of chunks concatenate like one table."""
    times = list(times)
    if index is not None and len(index) and times and all(t is None for t in times):
        times = index[:1].where(np.zeros(1, dtype=bool)).repeat(len(times)).array
    data = {"time": times, "average_signal": last[:, 0],
            "direction": _nullable_int(last[:, 1])}
    for k, name in enumerate(FAMILIES):
        data[name] = last[:, 2 + k]
    data["bars_since_long"] = _nullable_int(since[:, 0])
    data["bars_since_short"] = _nullable_int(since[:, 1])
    return pd.DataFrame(data, index=pd.Index(symbols, name="symbol"))


def _with_outputs(cls):
    """Give ``cls`` one array attribute per declared output, then make it a frozen dataclass.

    The outputs and their documentation come from :data:`gpu_trend.outputs.OUTPUTS`.
    """
    for o in OUTPUTS:
        cls.__annotations__[o.name] = "Any"
        setattr(cls, o.name, None)
    cls.__doc__ = cls.__doc__.rstrip() + "\n" + "".join(
        f"    {o.name} : {'(S, T)' if o.width == 1 else f'(S, {o.width}, T)'} "
        f"{np.dtype(o.dtype).name}{' or None' if o.members_only else ''}\n        {o.doc}\n"
        for o in OUTPUTS) + "\n    Outputs that may be None are there with ``members=True``.\n"
    return dataclass(frozen=True)(cls)


@_with_outputs
class ATCResult:
    """ATC outputs for a universe, every array shaped (symbols, ..., bars).

    Arrays are NumPy when the input was on the host and CuPy when it was a
    CuPy array. Bars before a symbol's first valid close are NaN (False for
    the events).

    Attributes
    ----------
    symbols : list of str
    index : pandas.Index
        The input's time labels (bar numbers for an array).
    positions : (S, T) int64 NumPy or None
        With each symbol on its own calendar (a :class:`~gpu_trend.io.Universe`,
        or ``nan_policy="skip"``): the row of ``index`` holding bar t of symbol
        s, its bars packed to the right (its last bar in the last column), −1
        for the padding before its first bar. None when every symbol's bar t is
        ``index[t]``. :meth:`times` gives one symbol's own times.
    config : ATCConfig
    backend : str
        "cpu" or "gpu": where it was computed.
    start_bar : (S,) int64 NumPy
        Each symbol's first valid close (its bar 0); T if it has none.
    first_full_bar : (S,) int64 NumPy
        First bar on which all 54 MAs are valid; −1 if never within T.
    warnings : tuple of str
        Warnings the computation raised.
    state : ATCState or None
        With ``return_state=True`` (and from :func:`gpu_trend.update_atc`): where
        every symbol's recurrences stand after its last bar.
    since_before : (S, 2) float64 NumPy or None
        From :func:`gpu_trend.update_atc`: bars since each symbol's last long and
        short event before these bars (NaN if none), for :meth:`latest`.
    """

    symbols: list
    index: pd.Index
    positions: np.ndarray | None
    config: ATCConfig
    backend: str
    start_bar: np.ndarray
    first_full_bar: np.ndarray
    warnings: tuple = field(default_factory=tuple)
    state: object = None
    since_before: np.ndarray | None = None

    def __repr__(self) -> str:
        return display.atc_result_repr(self)

    def _repr_html_(self) -> str:
        return display.atc_result_html(self)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def n_bars(self) -> int:
        """Length of the bar axis of the arrays."""
        return self.average_signal.shape[-1]

    def member_names(self) -> list:
        """Labels of the 54 members (``"EMA_28"``, ...), matching axis 1 of the member arrays."""
        return member_names(self.config)

    def times(self, symbol) -> pd.Index:
        """The times of one symbol's own bars (by name or row), in order.

        With each symbol on its own calendar these are that symbol's bars only;
        on a shared calendar, the whole index.
        """
        row = symbol if isinstance(symbol, (int, np.integer)) else self.symbols.index(str(symbol))
        if self.positions is None:
            return self.index
        return calendars.times_of(self.index, self.positions[row])

    def bars_since_events(self) -> tuple:
        """Bars since each symbol's last long and short event, at its last bar (NaN if never).

        For an update (:func:`gpu_trend.update_atc`), events before its new bars count
        too: ``since_before`` carries them on.
        """
        since = [_bars_since(self.long_events), _bars_since(self.short_events)]
        if self.since_before is not None:
            own = (self.n_bars if self.positions is None
                   else (self.positions >= 0).sum(axis=1))
            for k in range(2):
                since[k] = np.where(np.isnan(since[k]), self.since_before[:, k] + own, since[k])
        return tuple(since)

    def latest(self) -> pd.DataFrame:
        """One row per symbol describing its own last bar.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``symbol``; columns ``time`` (the symbol's last bar),
            ``average_signal``, ``direction`` (+1 / −1, <NA> before the first
            threshold crossing), the six family signals (named by family),
            ``bars_since_long`` and ``bars_since_short`` (<NA> if never).
        """
        return latest_table(self.symbols,
                            calendars.last_times(self.index, self.positions, self.n_symbols,
                                                 self.start_bar < self.n_bars),
                            self.last_values(), np.stack(self.bars_since_events(), axis=1),
                            self.index)

    def last_values(self) -> np.ndarray:
        """(S, 8) NumPy: each symbol's Average_Signal, direction and six family signals on
        the last column (its last bar; NaN where there is none)."""
        if not self.n_bars:
            return np.full((self.n_symbols, 2 + N_FAMILIES), np.nan)
        return np.column_stack([to_host(self.average_signal[:, -1]),
                                to_host(self.direction[:, -1]),
                                to_host(self.family_signals[:, :, -1])])

    def to_pandas(self) -> pd.DataFrame:
        """Long table indexed by (symbol, time) with every per-bar output.

        Each symbol's rows are its own bars (with each symbol on its own
        calendar, the padding before its first bar is left out). Columns:
        ``average_signal``, ``direction`` (nullable integer), ``long_event``,
        ``short_event``, ``<FAMILY>_Signal`` and ``<FAMILY>_S`` for the six
        families, and with members also one column per member output.
        """
        n_sym, n_bars = self.n_symbols, self.n_bars
        if self.positions is None:
            keep = np.ones((n_sym, n_bars), dtype=bool)
            times = np.tile(np.arange(len(self.index)), n_sym)
        else:
            keep = self.positions >= 0
            times = self.positions[keep]
        rows = np.repeat(np.arange(n_sym), keep.sum(axis=1))
        idx = pd.MultiIndex.from_arrays(
            [pd.Index(self.symbols, dtype=object).take(rows), self.index.take(times)],
            names=["symbol", self.index.name or "time"])

        def series(arr):
            return to_host(arr)[keep]

        cols = {
            "average_signal": series(self.average_signal),
            "direction": _nullable_int(series(self.direction)),
            "long_event": series(self.long_events),
            "short_event": series(self.short_events),
        }
        fs, fe = to_host(self.family_signals), to_host(self.family_equities)
        for k, name in enumerate(FAMILIES):
            cols[f"{name}_Signal"] = series(fs[:, k])
            cols[f"{name}_S"] = series(fe[:, k])
        if self.member_ma is not None:
            names = self.member_names()
            for label, arr in (("ma", self.member_ma), ("signal", self.member_signal),
                               ("equity", self.member_equity)):
                arr = to_host(arr)
                for j, name in enumerate(names):
                    cols[f"{name}_{label}"] = series(arr[:, j])
        return pd.DataFrame(cols, index=idx)

    def to_cudf(self):
        """:meth:`to_pandas` as a cuDF DataFrame (needs the ``cudf`` extra)."""
        try:
            import cudf
        except ImportError as exc:
            raise ImportError("to_cudf() needs cuDF: install gpu-trend[cudf]") from exc
        return cudf.from_pandas(self.to_pandas())

    def to_xarray(self):
        """The outputs as an ``xarray.Dataset`` (needs the ``xarray`` extra).

        Dimensions ``symbol``, ``family``, ``member`` (with ``members=True``) and
        ``time``; one variable per output, each this result's array itself (no
        copy: CuPy arrays stay on the device). The ``time`` axis is the arrays'
        bar axis, each symbol's bars packed to the right: where bar t of every
        symbol is the same time (a shared calendar, later listings included) it
        is labelled with those times; otherwise the 2-D coordinate ``bar_time``
        (symbol, time) holds each symbol's own times (:meth:`times`), NaT before
        its first bar. Attributes ``backend`` and ``config``.

        Raises
        ------
        ImportError
            Without xarray, naming the extra to install.
        """
        return labelled.to_xarray(self)
