"""Labelled tensors: an :class:`~gpu_trend.results.ATCResult` as an ``xarray.Dataset``.

The dataset wraps the result's arrays without copying them, so CuPy arrays
stay on the device (xarray holds any array that implements NumPy's array
protocols) and every variable is the result's array itself. The bar axis is
the result's: each symbol's bars packed to the right, its last bar in the
last column (:mod:`gpu_trend.calendars`). Where that axis is one stretch of
the time index for every symbol, it is labelled with those times; otherwise
each symbol's own times are a 2-D coordinate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import FAMILIES
from .cores import N_FAMILIES, N_SIGNALS
from .outputs import OUTPUTS

#: The dimensions between ``symbol`` and ``time`` of an output, by its width.
_DIMS = {1: (), N_FAMILIES: ("family",), N_SIGNALS: ("member",)}


def to_xarray(res):
    """The outputs of `res` as one ``xarray.Dataset``; see :meth:`ATCResult.to_xarray`."""
    try:
        import xarray as xr
    except ImportError as exc:
        raise ImportError("to_xarray() needs xarray: install gpu-trend[xarray]") from exc
    data_vars = {}
    for o in OUTPUTS:
        arr = getattr(res, o.name)
        if arr is not None:
            dims = ("symbol", *_DIMS[o.width], "time")
            data_vars[o.name] = xr.Variable(dims, arr, attrs={"description": o.doc})
    coords = {"symbol": pd.Index(res.symbols, name="symbol"),
              "family": pd.Index(FAMILIES, name="family")}
    if res.member_ma is not None:
        coords["member"] = pd.Index(res.member_names(), name="member")
    shared = _shared_times(res.index, res.positions, res.n_bars)
    if shared is not None:
        coords["time"] = shared.rename("time")
    else:
        coords["bar_time"] = (("symbol", "time"), _own_times(res.index, res.positions))
    attrs = {"backend": res.backend, "config": repr(res.config)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _shared_times(index: pd.Index, positions: np.ndarray | None, n_bars: int):
    """The times of the bar axis when bar t of every symbol is the same row of `index`: the
    last `n_bars` rows (padding before a later listing included); None otherwise."""
    offset = len(index) - n_bars
    if positions is not None:
        bar = np.broadcast_to(np.arange(offset, len(index)), positions.shape)
        listed = positions >= 0
        if not np.array_equal(positions[listed], bar[listed]):
            return None
    return index[offset:]


def _own_times(index: pd.Index, positions: np.ndarray) -> np.ndarray:
    """(S, T) each symbol's bar times (:meth:`ATCResult.times`), missing in the padding."""
    times = pd.Series(index.take(np.maximum(positions, 0).ravel()))
    return times.where(positions.ravel() >= 0).to_numpy().reshape(positions.shape)
