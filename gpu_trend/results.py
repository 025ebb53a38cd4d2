"""The result container of :func:`gpu_trend.compute_atc`."""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from .arrays import namespace, to_host
from .config import FAMILIES, N_FAMILIES, ATCConfig, member_names
from .outputs import OUTPUTS


def _bars_since(events) -> np.ndarray:
    """Bars since the last True along the last axis, at the last bar (NaN if never).

    Computed where ``events`` lives (NumPy or CuPy); only the result comes back to the host.
    """
    xp = namespace(events)
    n = events.shape[-1]
    hit = events.any(axis=-1)
    last = n - 1 - xp.argmax(events[..., ::-1], axis=-1)
    return to_host(xp.where(hit, (n - 1 - last).astype(np.float64), np.nan))


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
        The bar labels (time when the input was a pandas object).
    config : ATCConfig
    backend : str
        "cpu" or "gpu": where it was computed.
    start_bar : (S,) int64 NumPy
        Each symbol's first valid close (its bar 0); T if it has none.
    first_full_bar : (S,) int64 NumPy
        First bar on which all 54 MAs are valid; −1 if never within T.
    warnings : tuple of str
        Warnings the computation raised.
    """

    symbols: list
    index: pd.Index
    config: ATCConfig
    backend: str
    start_bar: np.ndarray
    first_full_bar: np.ndarray
    warnings: tuple = field(default_factory=tuple)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def n_bars(self) -> int:
        return len(self.index)

    def member_names(self) -> list:
        """Labels of the 54 members (``"EMA_28"``, ...), matching axis 1 of the member arrays."""
        return member_names(self.config)

    def latest(self) -> pd.DataFrame:
        """One row per symbol describing its last bar.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``symbol``; columns ``time``, ``average_signal``,
            ``direction``, the six family signals (named by family),
            ``bars_since_long`` and ``bars_since_short`` (NaN if never).
        """
        n_sym = self.n_symbols
        if self.n_bars:
            time = [self.index[-1]] * n_sym
            avg = to_host(self.average_signal[:, -1])
            direction = to_host(self.direction[:, -1])
            fam = to_host(self.family_signals[:, :, -1])
            since_long = _bars_since(self.long_events)
            since_short = _bars_since(self.short_events)
        else:
            time = [None] * n_sym
            avg = direction = since_long = since_short = np.full(n_sym, np.nan)
            fam = np.full((n_sym, N_FAMILIES), np.nan)
        data = {"time": time, "average_signal": avg, "direction": direction}
        for k, name in enumerate(FAMILIES):
            data[name] = fam[:, k]
        data["bars_since_long"] = since_long
        data["bars_since_short"] = since_short
        return pd.DataFrame(data, index=pd.Index(self.symbols, name="symbol"))

    def to_pandas(self) -> pd.DataFrame:
        """Long table indexed by (symbol, time) with every per-bar output.

        Columns: ``average_signal``, ``direction``, ``long_event``,
        ``short_event``, ``<FAMILY>_Signal`` and ``<FAMILY>_S`` for the six
        families, and with members also one column per member output.
        """
        s, t = self.n_symbols, self.n_bars
        idx = pd.MultiIndex.from_product([self.symbols, self.index],
                                         names=["symbol", self.index.name or "time"])
        cols = {
            "average_signal": to_host(self.average_signal).reshape(-1),
            "direction": to_host(self.direction).reshape(-1),
            "long_event": to_host(self.long_events).reshape(-1),
            "short_event": to_host(self.short_events).reshape(-1),
        }
        fs, fe = to_host(self.family_signals), to_host(self.family_equities)
        for k, name in enumerate(FAMILIES):
            cols[f"{name}_Signal"] = fs[:, k].reshape(-1)
            cols[f"{name}_S"] = fe[:, k].reshape(-1)
        if self.member_ma is not None:
            names = self.member_names()
            for label, arr in (("ma", self.member_ma), ("signal", self.member_signal),
                               ("equity", self.member_equity)):
                arr = to_host(arr)
                for j, name in enumerate(names):
                    cols[f"{name}_{label}"] = arr[:, j].reshape(-1)
        return pd.DataFrame(cols, index=idx) if s * t else pd.DataFrame(cols, index=idx[:0])

    def to_cudf(self):
        """:meth:`to_pandas` as a cuDF DataFrame (needs the ``cudf`` extra)."""
        try:
            import cudf
        except ImportError as exc:
            raise ImportError("to_cudf() needs cuDF: install gpu-trend[cudf]") from exc
        return cudf.from_pandas(self.to_pandas())
