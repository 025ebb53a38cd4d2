"""compute_atc and iter_atc: the entry points every backend shares.

The pipeline is the same for both backends: normalise the input to a
(symbols × bars) float64 array, validate it (spec section 8), apply the NaN
policy, then run the per-row cores of :mod:`cpu_fallback.kernels` — compiled
by Numba for the CPU or by numba.cuda for the GPU — over blocks of symbols.
Only the last step differs between backends.

Blocks are consecutive symbols sized by :mod:`gpu_trend.memory` to fit the
working-memory budget. The whole universe is validated (in slices of the
same budget) before any block runs; each block then applies the NaN policy
to its rows and writes its results into row slices of the outputs
(:func:`compute_atc`) or into arrays of its own (:func:`iter_atc`). Symbols
never interact, so the results do not depend on the blocks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import memory
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

def as_config(config) -> ATCConfig:
    """An ATCConfig from None (the defaults), an ATCConfig or a mapping of its fields."""
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
    # Read-only input (pandas copy-on-write) would make Numba compile a second
    # specialisation of the cores, costing seconds; a copy costs milliseconds.
    if not (arr.flags.c_contiguous and getattr(arr.flags, "writeable", True)):
        arr = arr.copy(order="C")
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


def _input_error(what, hole, cls, src, s, t, starts, symbols, index):
    name = symbols[s]
    if hole:
        msg = (f"{what} is NaN at {_label(index, t)}, inside its history (first valid close at "
               f"{_label(index, int(starts[s]))}); pass nan_policy='ffill' to carry the last "
               f"close or 'pine' for the script's NaN semantics")
    elif what == "close":
        msg = f"close must be a finite price > 0, got {float(cls[s, t])!r} at {_label(index, t)}"
    else:
        msg = f"source must be finite, got {float(src[s, t])!r} at {_label(index, t)}"
    return ATCInputError(f"symbol {name!r}: {msg}", symbol=name, bar=t)


def validate_inputs(cls, src, cfg, symbols, index):
    """Raise for the first symbol with a bad value (spec section 8); return the listing bars.

    The first symbol (in row order) with any problem is reported, and within
    it the first of: a close that is not a finite price > 0, an infinite
    source, then (``nan_policy="raise"``) a NaN close or source inside its
    history. Reporting by symbol makes the error the same whether the
    universe is checked whole or in slices of rows.

    Parameters
    ----------
    cls, src : arrays (S, T) float64, NumPy or CuPy
        ``src`` is ``cls`` itself when no separate source was given.
    cfg : ATCConfig
    symbols : sequence of str
        Names of these rows (a slice passes its slice of the universe's
        names, so messages name the global symbol).
    index : pandas.Index or None
        Bar labels for the messages.

    Returns
    -------
    starts : (S,) int64 NumPy
        Each symbol's first valid close (T if none).

    Raises
    ------
    ATCInputError
    """
    xp = _xp(cls)
    same = src is cls
    n_sym, n_bars = cls.shape
    valid = ~xp.isnan(cls)
    starts = _listing_bars(xp, valid)

    def in_history():
        return xp.arange(n_bars)[None, :] >= starts[:, None]

    # (what, is a hole, mask): one mask at a time, in priority order, so the peak stays at a
    # few bool arrays.
    checks = [("close", False, lambda: valid & ~((cls > 0) & xp.isfinite(cls)))]
    if not same:
        checks.append(("source", False, lambda: xp.isinf(src)))
    if cfg.nan_policy == "raise":
        checks.append(("close", True, lambda: in_history() & ~valid))
        if not same:
            checks.append(("source", True, lambda: in_history() & xp.isnan(src)))
    found = None
    for what, hole, make in checks:
        mask = make()
        rows = mask.any(axis=1)
        if bool(rows.any()):
            s = int(xp.argmax(rows))
            if found is None or s < found[2]:
                found = (what, hole, s, int(xp.argmax(mask[s])))
        del mask
    if found is not None:
        raise _input_error(*found[:2], cls, src, *found[2:], starts, symbols, index)
    return np.asarray(_host(starts), dtype=np.int64)


def _listing_bars(xp, valid):
    """Each row's first valid bar (its listing); the row length where it has none."""
    n_sym, n_bars = valid.shape
    if n_bars == 0:
        return xp.zeros(n_sym, dtype=xp.int64)
    return xp.where(valid.any(axis=1), xp.argmax(valid, axis=1), n_bars)


def apply_nan_policy(cls, src, cfg):
    """``(cls, src)`` after the NaN policy; the inputs themselves unless "ffill" fills holes.

    Expects validated input (:func:`validate_inputs`). Rows are independent,
    so applying it to a chunk of rows gives those rows of the whole.
    """
    if cfg.nan_policy != "ffill":
        return cls, src
    xp = _xp(cls)
    same = src is cls
    n_bars = cls.shape[1]
    valid = ~xp.isnan(cls)
    starts = _listing_bars(xp, valid)
    in_history = xp.arange(n_bars)[None, :] >= starts[:, None]
    if bool((in_history & ~valid).any()):
        cls = _ffill(xp, cls, valid)
    del valid
    if same:
        return cls, cls
    src_holes = in_history & xp.isnan(src)
    if bool(src_holes.any()):
        # A source hole on the listing bar has nothing to carry: use that close.
        at_start = xp.arange(n_bars)[None, :] == starts[:, None]
        src = xp.where(at_start & xp.isnan(src), cls, src)
        src = _ffill(xp, src, ~xp.isnan(src))
    return cls, src


def prepare_inputs(cls, src, cfg, symbols, index):
    """Validate prices and apply the NaN policy.

    Returns
    -------
    cls, src : arrays (S, T) float64, same type as the input
    starts : (S,) int64 NumPy, each symbol's first valid close (T if none)
    """
    starts = validate_inputs(cls, src, cfg, symbols, index)
    cls, src = apply_nan_policy(cls, src, cfg)
    return cls, src, starts


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


def run_cpu_block(cls, src, starts, params, members, out=None):
    """Run the Numba cores on host arrays.

    Parameters
    ----------
    cls, src : (S, T) float64 NumPy
    starts : (S,) int64
    params : dict
        From :func:`kernel_params`.
    members : bool
    out : dict of arrays, optional
        C-contiguous destinations shaped like :func:`allocate_outputs`'s
        (e.g. row slices of the universe's outputs); allocated when None.

    Returns
    -------
    dict
        ``out``, or the newly allocated outputs.
    """
    from cpu_fallback.kernels import run_cpu

    n_sym, n_bars = cls.shape
    if out is None:
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
# one call: setup, plan, blocks
# ----------------------------------------------------------------------------

def _copied_bytes(arr, original) -> int:
    """Bytes normalising allocated for ``arr`` (0 when it is a view of the caller's array)."""
    if isinstance(original, np.ndarray):
        return 0 if np.may_share_memory(arr, original) else arr.nbytes
    if is_cupy_array(original):
        import cupy
        return 0 if cupy.may_share_memory(arr, original) else arr.nbytes
    return arr.nbytes  # pandas, cuDF and sequences are always converted


class _Call:
    """One validated call: the universe as (S, T) arrays, where it runs, and its plan."""

    def __init__(self, close, config, source, backend, members, symbols):
        self.cfg = as_config(config)
        cls, names, index = _normalise(close, "close", symbols, None)
        if symbols is not None and len(names) != cls.shape[0]:
            raise ATCInputError(f"symbols has {len(names)} names for {cls.shape[0]} rows of close")
        copied = _copied_bytes(cls, close)
        if source is None:
            src = cls
        else:
            src, _, _ = _normalise(source, "source")
            if src.shape != cls.shape:
                raise ATCInputError(f"source has shape {src.shape}, close has {cls.shape}")
            if is_cupy_array(src) != is_cupy_array(cls):
                raise ATCInputError("close and source must both be host arrays or both CuPy "
                                    "arrays")
            copied += _copied_bytes(src, source)
        self.cls, self.src, self.names, self.index = cls, src, names, index
        self.copied = copied
        self.members = bool(members)
        self.on_device = is_cupy_array(cls)
        self.engine = resolve_backend(backend)
        self.simulated = False
        if self.engine == "gpu":
            from . import gpu
            self.simulated = gpu.simulated()

    @property
    def shape(self):
        return self.cls.shape

    def growth_warning(self, stacklevel):
        """Warn (once per call) when λ inflates the returns noticeably; returns the messages."""
        cfg, n_bars = self.cfg, self.shape[1]
        if n_bars and cfg.lam > 0:
            top = math.exp(cfg.lam * max(n_bars - 1 - cfg.cutout, 0))
            if top > GROWTH_WARN:
                msg = (f"la={cfg.la} grows returns by {top:.3g}x at the last bar (above "
                       f"{GROWTH_WARN}); the script only shows a warning here, results are "
                       f"computed")
                warnings.warn(msg, ATCWarning, stacklevel=stacklevel + 1)
                return (msg,)
        return ()

    def plan(self, memory_limit, *, streaming, chunk_symbols=None):
        """The :class:`memory.ChunkPlan` of this call.

        ``streaming``: each block allocates its outputs and the caller may still
        hold the previous block's (iter_atc); otherwise blocks write into the
        universe-sized outputs, which are the caller's, not working memory.
        """
        n_sym, n_bars = self.shape
        gpu_side = self.engine == "gpu" and not self.simulated
        host_fed = gpu_side and not self.on_device
        reserve = 0
        if gpu_side:
            memory.ensure_gpu_pool()
            if self.on_device and not streaming:
                reserve = _output_bytes(n_sym, n_bars, self.members)
        budget = memory.resolve_budget(memory_limit, "gpu" if gpu_side else "cpu",
                                       reserve=reserve)
        # Costs count only where the budget's memory is: the device on the GPU, RAM on the CPU.
        in_budget = (self.on_device == gpu_side) or self.simulated
        fixed = self.copied if in_budget else 0
        if self.engine == "gpu":
            # Host-fed: results are downloaded into host arrays through device temporaries.
            outputs = "host" if host_fed else ("allocated" if streaming else "inplace")
            input_copies = 2 if host_fed else 0
        else:
            # CPU on device input: each block is copied to the host and computed into host
            # arrays before going back to the device.
            outputs = "allocated" if streaming or self.on_device else "inplace"
            input_copies = 1 if self.on_device else 0
        separate = self.src is not self.cls
        max_len = int(self.cfg.member_lengths().max())
        compute = memory.compute_footprint(
            n_bars, n_symbols=n_sym, backend=self.engine, members=self.members,
            separate_source=separate, max_len=max_len, outputs=outputs,
            # Host-fed GPU blocks are filled on the host, outside the device budget.
            nan_policy="raise" if host_fed else self.cfg.nan_policy,
            held_outputs=1 if streaming and outputs == "allocated" else 0,
            input_copies=input_copies, n_threads=_cpu_threads(), fixed=fixed)
        validate = memory.validate_footprint(n_bars, n_symbols=n_sym, separate_source=separate,
                                             fixed=fixed)
        return memory.plan_chunks(n_sym, budget, compute, validate, chunk_symbols=chunk_symbols,
                                  max_chunk=None if gpu_side else memory.CPU_MAX_CHUNK)

    def validate(self, plan):
        """Validate the whole universe in slices; returns every symbol's first valid close."""
        n_sym = self.shape[0]
        starts = np.empty(n_sym, dtype=np.int64)
        step = plan.validate_symbols
        for a in range(0, n_sym, step):
            b = min(a + step, n_sym)
            cls = self.cls[a:b]
            src = cls if self.src is self.cls else self.src[a:b]
            starts[a:b] = validate_inputs(cls, src, self.cfg, self.names[a:b], self.index)
        return starts

    def rows(self, start, stop):
        cls = self.cls[start:stop]
        return cls, (cls if self.src is self.cls else self.src[start:stop])

    def blocks(self, plan, starts, make_out):
        """Yield ``(start, stop, outputs)`` block by block, splitting blocks that run out of
        memory; ``make_out(start, stop)`` gives the arrays a block writes into."""
        params = kernel_params(self.cfg, self.shape[1])
        members = self.members

        def fill(cls, src):
            return apply_nan_policy(cls, src, self.cfg)

        if self.engine == "gpu":
            from . import gpu
            compute, on_oom = gpu.block_runner(self.rows, starts, params, members, fill,
                                               make_out)
        else:
            def compute(start, stop, upcoming):
                cls, src = self.rows(start, stop)
                if not self.on_device:
                    cls, src = fill(cls, src)
                    return run_cpu_block(cls, src, starts[start:stop], params, members,
                                         out=make_out(start, stop))
                # Device input on the CPU backend: compute a host copy, send the results back.
                host_cls = _host(cls)
                cls, src = fill(host_cls, host_cls if src is cls else _host(src))
                out = make_out(start, stop)
                for key, arr in run_cpu_block(cls, src, starts[start:stop], params,
                                              members).items():
                    out[key][...] = _to_device(arr)
                return out
            on_oom = None
        yield from memory.run_chunks(self.shape[0], plan.chunk_symbols, compute, on_oom=on_oom)

    def result(self, out, start, stop, starts, caught):
        """The :class:`ATCResult` of symbols ``start:stop`` from their outputs."""
        return ATCResult(symbols=self.names[start:stop], index=self.index, config=self.cfg,
                         backend=self.engine, start_bar=starts[start:stop],
                         first_full_bar=first_full_bars(self.cfg, starts[start:stop],
                                                        self.shape[1]),
                         warnings=caught, **out)

    def output_module(self):
        """Array module of the results: CuPy for device input, NumPy otherwise."""
        return _xp(self.cls)


def _output_bytes(n_sym, n_bars, members):
    per_bar = memory.OUT_FLOATS * memory.F8 + memory.OUT_BOOLS
    if members:
        per_bar += memory.MEMBER_FLOATS * memory.F8
    return n_sym * n_bars * per_bar


def _to_device(arr):
    import cupy
    return cupy.asarray(arr)


def _cpu_threads() -> int:
    import numba
    return int(numba.get_num_threads())


# ----------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------

def compute_atc(close, config=None, *, source=None, backend="auto", members=False,
                symbols=None, memory_limit=None):
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
    memory_limit : int or str, optional
        Working-memory budget beyond the input and the returned arrays:
        bytes, ``"4GiB"``, ``"512MB"`` or ``"50%"`` (of available RAM on the
        CPU, of free device memory on the GPU). Defaults to
        :func:`gpu_trend.set_memory_limit`'s setting, the
        ``GPU_TREND_MEMORY_LIMIT`` environment variable, then a fraction of
        what is available; see :mod:`gpu_trend.memory`. The symbols are
        computed in chunks that fit it; the results do not depend on the
        chunking.

    Returns
    -------
    ATCResult
        NumPy arrays for host input, CuPy arrays for CuPy/cuDF input.

    Raises
    ------
    ATCInputError
        Non-positive or infinite closes, or (``nan_policy="raise"``) a NaN
        inside a symbol's history; the message names the symbol and bar.
        The whole universe is validated before anything is computed.
    BackendUnavailableError
        ``backend="gpu"`` on a machine without a usable CUDA device.
    gpu_trend.memory.MemoryBudgetError
        ``memory_limit`` cannot hold the work of a single symbol; the message
        says how many bytes are needed.
    MemoryError
        Memory ran out even for a one-symbol chunk (larger chunks are split
        and retried first, with a logged warning).
    """
    call = _Call(close, config, source, backend, members, symbols)
    plan = call.plan(memory_limit, streaming=False)
    starts = call.validate(plan)
    caught = call.growth_warning(stacklevel=2)
    n_sym, n_bars = call.shape
    out = allocate_outputs(call.output_module(), n_sym, n_bars, call.members)

    def rows_of(start, stop):
        return {k: v[start:stop] for k, v in out.items()}

    for _ in call.blocks(plan, starts, rows_of):
        pass
    return call.result(out, 0, n_sym, starts, caught)


def iter_atc(close, config=None, *, source=None, chunk_symbols=None, memory_limit=None,
             backend="auto", members=False, symbols=None):
    """ATC for a universe, one :class:`ATCResult` per chunk of consecutive symbols.

    For universes whose outputs need not all be held at once: reduce or write
    each chunk as it comes (e.g. keep ``res.latest()``). Every symbol's values
    equal those of one :func:`compute_atc` call on the whole universe.

    Parameters
    ----------
    close, config, source, backend, members, symbols
        As for :func:`compute_atc`.
    chunk_symbols : int, optional
        Symbols per chunk. By default the largest chunk that fits the budget
        (at most :data:`gpu_trend.memory.CPU_MAX_CHUNK` on the CPU); a given
        size is still capped by the budget.
    memory_limit : int or str, optional
        As for :func:`compute_atc`, with each chunk's outputs counted as
        working memory, twice: the chunk being computed and the previous
        one, which a ``for`` loop's variable still holds meanwhile.

    Yields
    ------
    ATCResult
        The next chunk's symbols, in order; arrays as for
        :func:`compute_atc`. A chunk that runs out of memory is split and
        retried, so later chunks may be smaller than planned.

    Raises
    ------
    ATCInputError
        As for :func:`compute_atc`, when iteration starts: the whole universe
        is validated before the first chunk is computed.
    """
    call = _Call(close, config, source, backend, members, symbols)
    plan = call.plan(memory_limit, streaming=True, chunk_symbols=chunk_symbols)
    starts = call.validate(plan)
    caught = call.growth_warning(stacklevel=2)
    n_bars = call.shape[1]
    xp_out = call.output_module()

    def fresh(start, stop):
        return allocate_outputs(xp_out, stop - start, n_bars, call.members)

    for start, stop, out in call.blocks(plan, starts, fresh):
        yield call.result(out, start, stop, starts, caught)
