"""compute_atc: the one entry point every backend shares.

The pipeline is the same for both backends: normalise the input to a
(symbols × bars) float64 array, validate it (spec section 8), apply the NaN
policy, then run the per-row cores of :mod:`cpu_fallback.kernels` — compiled
by Numba for the CPU or by numba.cuda for the GPU — over every symbol at
once. Only the last step differs between backends.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .backend import is_cupy_array, resolve_backend
from .config import FAMILIES, ATCConfig, N_MEMBERS
from .results import ATCResult

N_SIGNALS = 6 * N_MEMBERS
GROWTH_WARN = 1.25


class ATCInputError(ValueError):
    """Invalid input data; ``symbol`` and ``bar`` name where (either may be None)."""

    def __init__(self, message, symbol=None, bar=None):
        super().__init__(message)
        self.symbol = symbol
        self.bar = bar


class ATCWarning(UserWarning):
    """The computation ran, but a parameter is outside the script's comfort zone."""


# ----------------------------------------------------------------------------
# input normalisation
# ----------------------------------------------------------------------------

def _as_config(config) -> ATCConfig:
    if config is None:
        return ATCConfig()
    if isinstance(config, ATCConfig):
        return config
    if isinstance(config, Mapping):
        return ATCConfig(**config)
    raise TypeError(f"config must be an ATCConfig or a mapping, got {type(config).__name__}")


def _cudf_frame_to_cupy(frame):
    # A wide cuDF frame stays on the device: columns -> CuPy matrix.
    return frame.to_cupy(dtype="float64").T


def _normalise(data, name, symbols=None, index=None):
    """(array (S, T) float64, symbols, index) from any supported input.

    The array is NumPy or CuPy; pandas/cuDF objects keep their labels.
    """
    mod = type(data).__module__.split(".")[0]
    if isinstance(data, pd.DataFrame):
        symbols = [str(c) for c in data.columns]
        index = data.index
        arr = data.to_numpy(dtype=np.float64, na_value=np.nan).T
    elif isinstance(data, pd.Series):
        symbols = [str(data.name) if data.name is not None else "0"]
        index = data.index
        arr = data.to_numpy(dtype=np.float64, na_value=np.nan)[None, :]
    elif mod == "cudf":
        if data.__class__.__name__ == "Series":
            data = data.to_frame(name=data.name if data.name is not None else "0")
        symbols = [str(c) for c in data.columns]
        index = data.index.to_pandas()
        arr = _cudf_frame_to_cupy(data)
    else:
        if is_cupy_array(data):
            import cupy as xp
        else:
            xp = np
            data = np.asarray(data)
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise ATCInputError(f"{name} must be 1-D (bars) or 2-D (symbols × bars), "
                                f"got shape {data.shape}")
        if data.dtype.kind not in "fiu":
            raise ATCInputError(f"{name} must be numeric, got dtype {data.dtype}")
        arr = xp.asarray(data, dtype=xp.float64)
    arr = arr if arr.flags.c_contiguous else arr.copy(order="C")
    n_sym, n_bars = arr.shape
    if symbols is None:
        symbols = [str(i) for i in range(n_sym)]
    if index is None:
        index = pd.RangeIndex(n_bars, name="bar")
    return arr, list(symbols), pd.Index(index)


def _xp(arr):
    if is_cupy_array(arr):
        import cupy
        return cupy
    return np


# ----------------------------------------------------------------------------
# validation and NaN policy
# ----------------------------------------------------------------------------

def _first_true(xp, mask):
    """(row, col) of the first True in row-major order of a 2-D mask."""
    flat = int(xp.argmax(mask.reshape(-1)))
    return divmod(flat, mask.shape[1])


def _label(index, bar):
    try:
        return f"bar {bar} ({index[bar]})"
    except Exception:
        return f"bar {bar}"


def _ffill(xp, arr, valid):
    """Forward-fill invalid entries of each row from the last valid one."""
    pos = xp.where(valid, xp.arange(arr.shape[1])[None, :], 0)
    try:
        pos = xp.maximum.accumulate(pos, axis=1)
    except (AttributeError, NotImplementedError, TypeError):  # older CuPy
        pos = xp.asarray(np.maximum.accumulate(_host(pos), axis=1))
    return xp.take_along_axis(arr, pos, axis=1)


def _host(x):
    return x.get() if is_cupy_array(x) else x


def prepare_inputs(cls, src, cfg, symbols, index):
    """Validate prices and apply the NaN policy.

    Returns
    -------
    cls, src : arrays (S, T) float64, same type as the input
    starts : (S,) int64 NumPy, each symbol's first valid close (T if none)
    """
    xp = _xp(cls)
    same = src is cls
    n_sym, n_bars = cls.shape
    valid = ~xp.isnan(cls)
    has_any = valid.any(axis=1)
    starts = xp.where(has_any, xp.argmax(valid, axis=1), n_bars)

    bad = valid & ~((cls > 0) & xp.isfinite(cls))
    if bool(bad.any()):
        s, t = _first_true(xp, bad)
        value = float(cls[s, t])
        raise ATCInputError(f"symbol {symbols[s]!r}: close must be a finite price > 0, got "
                            f"{value!r} at {_label(index, t)}", symbol=symbols[s], bar=t)
    if not same:
        bad_src = xp.isinf(src)
        if bool(bad_src.any()):
            s, t = _first_true(xp, bad_src)
            raise ATCInputError(f"symbol {symbols[s]!r}: source must be finite, got "
                                f"{float(src[s, t])!r} at {_label(index, t)}",
                                symbol=symbols[s], bar=t)

    in_history = xp.arange(n_bars)[None, :] >= starts[:, None]
    holes = in_history & ~valid
    src_holes = None if same else in_history & xp.isnan(src)
    policy = cfg.nan_policy
    if policy == "raise":
        for what, mask in (("close", holes), ("source", src_holes)):
            if mask is not None and bool(mask.any()):
                s, t = _first_true(xp, mask)
                raise ATCInputError(
                    f"symbol {symbols[s]!r}: {what} is NaN at {_label(index, t)}, inside its "
                    f"history (first valid close at {_label(index, int(starts[s]))}); pass "
                    f"nan_policy='ffill' to carry the last close or 'pine' for the script's "
                    f"NaN semantics", symbol=symbols[s], bar=t)
    elif policy == "ffill":
        if bool(holes.any()):
            cls = _ffill(xp, cls, valid)
        if same:
            src = cls
        elif bool(src_holes.any()):
            # A source hole on the listing bar has nothing to carry: use that close.
            at_start = xp.arange(n_bars)[None, :] == starts[:, None]
            src = xp.where(at_start & xp.isnan(src), cls, src)
            src = _ffill(xp, src, ~xp.isnan(src))
    return cls, src, np.asarray(_host(starts), dtype=np.int64)


# ----------------------------------------------------------------------------
# parameters the cores take
# ----------------------------------------------------------------------------

def kernel_params(cfg: ATCConfig, n_bars: int) -> dict:
    """Host arrays and scalars the cores need, derived once per call."""
    lens = cfg.member_lengths()
    tau = np.arange(max(n_bars, 1), dtype=np.float64)
    growth = np.where(tau < cfg.cutout, 1.0, np.exp(cfg.lam * (tau - cfg.cutout)))
    return dict(
        growth=growth,
        lens=lens,
        weights=np.asarray(cfg.weights, dtype=np.float64),
        cutout=cfg.cutout,
        d=cfg.decay,
        tie=cfg.tie_rtol,
        th_long=cfg.long_threshold,
        th_short=cfg.short_threshold,
        dsrc=-1 if cfg.direction_source == "Average" else FAMILIES.index(cfg.direction_source),
        shift=cfg.strategy_view,
    )


def first_full_bars(cfg: ATCConfig, starts: np.ndarray, n_bars: int) -> np.ndarray:
    """First bar on which all 54 MAs are valid on clean data (−1 if never)."""
    lens = cfg.member_lengths()
    if (lens[FAMILIES.index("LSMA")] == 1).any():
        return np.full(starts.shape, -1, dtype=np.int64)  # linreg of 1 point is NaN
    warm = int(max(lens.max() - 1, 2 * lens[FAMILIES.index("DEMA")].max() - 2))
    first = starts + warm
    return np.where(first < n_bars, first, -1).astype(np.int64)


def allocate_outputs(xp, n_sym, n_bars, members):
    """Uninitialised output arrays for a block of symbols (the cores write every element)."""
    out = dict(
        average_signal=xp.empty((n_sym, n_bars)),
        family_signals=xp.empty((n_sym, 6, n_bars)),
        family_equities=xp.empty((n_sym, 6, n_bars)),
        direction=xp.empty((n_sym, n_bars)),
        long_events=xp.empty((n_sym, n_bars), dtype=bool),
        short_events=xp.empty((n_sym, n_bars), dtype=bool),
    )
    if members:
        for key in ("member_ma", "member_signal", "member_equity"):
            out[key] = xp.empty((n_sym, N_SIGNALS, n_bars))
    return out


def run_cpu_block(cls, src, starts, params, members):
    """Run the Numba cores on host arrays; returns the output dict."""
    from cpu_fallback.kernels import run_cpu

    n_sym, n_bars = cls.shape
    out = allocate_outputs(np, n_sym, n_bars, members)
    if members:
        mm, mg, me = out["member_ma"], out["member_signal"], out["member_equity"]
    else:
        mm = mg = me = np.empty((1, N_SIGNALS, 0))
    p = params
    run_cpu(src, cls, p["growth"], starts, p["lens"], p["weights"], p["cutout"],
            p["d"], p["tie"], p["th_long"], p["th_short"], p["dsrc"], p["shift"],
            out["family_signals"], out["family_equities"], out["average_signal"],
            out["direction"], out["long_events"], out["short_events"], members, mm, mg, me)
    return out


# ----------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------

def compute_atc(close, config=None, *, source=None, backend="auto", members=False,
                symbols=None):
    """Adaptive Trend Classification for every symbol at once.

    Parameters
    ----------
    close : array_like, pandas.DataFrame, pandas.Series, cupy.ndarray or cudf.DataFrame
        Closing prices, (symbols × bars) or one symbol's bars. A wide
        DataFrame has one column per symbol and time as its index. Leading
        NaNs mean the symbol was listed later: its bar 0 is its first valid
        close. A CuPy array (or cuDF frame) keeps the computation on the GPU.
    config : ATCConfig or mapping, optional
        Indicator parameters; defaults to the TradingView defaults.
    source : same type and shape as ``close``, optional
        Input of the 54 moving averages only (returns and crossovers always
        use ``close``).
    backend : {"auto", "cpu", "gpu"}
        See :func:`gpu_trend.resolve_backend`.
    members : bool
        Also return the 54 member MAs, signals and equities.
    symbols : sequence of str, optional
        Names for the rows of an array input.

    Returns
    -------
    ATCResult
        NumPy arrays for host input, CuPy arrays for CuPy/cuDF input.

    Raises
    ------
    ATCInputError
        Non-positive or infinite closes, or (``nan_policy="raise"``) a NaN
        inside a symbol's history; the message names the symbol and bar.
    BackendUnavailableError
        ``backend="gpu"`` on a machine without a usable CUDA device.
    """
    cfg = _as_config(config)
    cls, names, index = _normalise(close, "close", symbols, None)
    if symbols is not None and len(names) != cls.shape[0]:
        raise ATCInputError(f"symbols has {len(names)} names for {cls.shape[0]} rows of close")
    if source is None:
        src = cls
    else:
        src, _, _ = _normalise(source, "source")
        if src.shape != cls.shape:
            raise ATCInputError(f"source has shape {src.shape}, close has {cls.shape}")
        if is_cupy_array(src) != is_cupy_array(cls):
            raise ATCInputError("close and source must both be host arrays or both CuPy arrays")
    on_device = is_cupy_array(cls)
    engine = resolve_backend(backend)

    cls, src, starts = prepare_inputs(cls, src, cfg, names, index)
    n_sym, n_bars = cls.shape
    caught = []
    if n_bars and cfg.lam > 0:
        top = math.exp(cfg.lam * max(n_bars - 1 - cfg.cutout, 0))
        if top > GROWTH_WARN:
            msg = (f"la={cfg.la} grows returns by {top:.3g}x at the last bar (above "
                   f"{GROWTH_WARN}); the script only shows a warning here, results are computed")
            warnings.warn(msg, ATCWarning, stacklevel=2)
            caught.append(msg)
    params = kernel_params(cfg, n_bars)

    if engine == "gpu":
        from . import gpu
        out = gpu.run_gpu_block(cls, src, starts, params, members)
        if not on_device:
            out = {k: v.get() for k, v in out.items()}
    else:
        out = run_cpu_block(_host(cls), _host(src), starts, params, members)
        if on_device:
            import cupy
            out = {k: cupy.asarray(v) for k, v in out.items()}

    return ATCResult(symbols=names, index=index, config=cfg, backend=engine, start_bar=starts,
                     first_full_bar=first_full_bars(cfg, starts, n_bars),
                     warnings=tuple(caught), **out)
