"""ATC over a Dask array (symbols × bars): one engine call per block of symbols.

The time axis is one block, so every task holds whole histories and runs the ordinary
:func:`gpu_trend.compute_atc` on its rows; symbols never interact, so the blocks' results are
the rows of one call on the whole universe. Blocks of NumPy arrays give NumPy outputs, blocks
of CuPy arrays CuPy outputs (computed on the worker's GPU).

With each symbol on its own calendar the engine packs a block's bars to the right, into as
many columns as its longest symbol has bars. The lazy arrays are padded on the left to the
input's width T so that blocks line up; :meth:`DaskATCResult.compute` drops the columns that
are padding for every symbol, which gives exactly the arrays of one local call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import engine, outputs
from ..arrays import is_cupy, namespace
from ..backend import resolve_backend
from ..config import N_FAMILIES
from ..results import ATCResult, latest_table
from .budget import budget_spec, rows_per_block, worker_budget


def symbol_names(symbols, n_rows: int) -> list:
    """Row names as :func:`gpu_trend.compute_atc` gives them: `symbols`, else "0", "1", …"""
    if symbols is None:
        return [str(i) for i in range(n_rows)]
    names = [symbols] if isinstance(symbols, str) else [str(s) for s in symbols]
    if len(names) != n_rows:
        raise engine.ATCInputError(f"symbols has {len(names)} names for {n_rows} rows of close")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise engine.ATCInputError(f"symbol {dup!r} appears {names.count(dup)} times; symbol "
                                   f"names must be unique", symbol=dup)
    return names


def one_time_block(x, *, members: bool, memory_limit, inputs: int = 1):
    """`x` as float64 (symbols × bars) with time in one block and blocks of symbols whose
    inputs (`inputs` rows per symbol: 2 with a separate source) and outputs fit the
    per-worker budget (smaller blocks are kept as they are).

    Raises MemoryBudgetError, naming the sizes, when one symbol's history does not fit.
    """
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise engine.ATCInputError(f"close must be 1-D (bars) or 2-D (symbols × bars), got "
                                   f"shape {x.shape}")
    if any(np.isnan(c) for c in x.shape):
        raise engine.ATCInputError("close has unknown chunk sizes: call "
                                   "close.compute_chunk_sizes() first")
    if x.dtype.kind not in "fiu":
        raise engine.ATCInputError(f"close must be numeric, got dtype {x.dtype}")
    n_sym, n_bars = x.shape
    rows = x.chunks[0]
    spec = budget_spec(memory_limit)
    # On a GPU the budget is device memory, which the client cannot see: only an explicit
    # size caps the blocks there.
    if not is_cupy(x._meta) or (spec is not None and not str(spec).strip().endswith("%")):
        cap = rows_per_block(max(n_sym, 1), n_bars, members, worker_budget(spec), inputs)
        if rows and max(rows) > cap:
            rows = cap
    return x.astype(np.float64).rechunk({0: rows, 1: -1})


def task_input(block, names, times):
    """A task's rows as the engine takes them: the block, or a wide frame on `times`."""
    if block is None or times is None:
        return block
    return pd.DataFrame(block.T, index=times, columns=names)


def padded_block(block, source, names, times, cfg, *, backend, members, memory_limit,
                 calendar):
    """One task: ATC of `block`'s rows (with `source`'s rows as the MA input when given; a
    wide frame on `times` when given) on the worker, as :func:`pad_result` puts it at the
    block's width."""
    res = engine.compute_atc(task_input(block, names, times), cfg,
                             source=task_input(source, names, times), backend=backend,
                             members=members, symbols=None if times is not None else names,
                             memory_limit=memory_limit, calendar=calendar)
    return pad_result(res, block.shape[1])


def pad_result(res: ATCResult, width: int, columns=None) -> dict:
    """`res` padded on the left to `width` columns, so that results of different widths line
    up (:func:`merged_rows` puts them together).

    Returns a dict of the outputs, ``positions`` ((S, width) int64, −1 for padding; where
    the engine had none, bar t is column t from the symbol's first close on), ``own``
    (whether the engine packed each symbol's bars), ``start_bar`` (in the padded columns),
    ``backend`` and ``warnings``. `columns` maps ``res.index`` rows to the rows of a larger
    index (a union of partitions' times).
    """
    shift = width - res.n_bars
    xp = namespace(res.average_signal)
    out = {}
    for o in outputs.selected(res.member_ma is not None):
        arr = getattr(res, o.name)
        if shift:
            pad = xp.full(arr.shape[:-1] + (shift,), False if o.dtype is np.bool_ else np.nan,
                          dtype=o.dtype)
            arr = xp.concatenate([pad, arr], axis=-1)
        out[o.name] = arr
    positions = res.positions
    if positions is None:
        cols = np.arange(res.n_bars)[None, :]
        positions = np.where(cols >= res.start_bar[:, None], cols, -1)
    if columns is not None:
        positions = np.where(positions >= 0, np.asarray(columns)[np.maximum(positions, 0)], -1)
    positions = np.concatenate([np.full((res.n_symbols, shift), -1), positions], axis=1)
    out.update(positions=positions.astype(np.int64), own=res.positions is not None,
               start_bar=res.start_bar + shift, backend=res.backend, warnings=res.warnings)
    return out


def latest_block(block, source, names, times, cfg, *, backend, memory_limit, calendar):
    """One task: the ``latest()`` rows of `block`, streamed through :func:`gpu_trend.iter_atc`
    so that the task holds no more than the budget's chunk of outputs at a time (on a GPU
    they stay on the device: only the table comes back, as in :func:`gpu_trend.scan`)."""
    frames = [r.latest() for r in engine.iter_atc(
        task_input(block, names, times), cfg, source=task_input(source, names, times),
        backend=backend, symbols=None if times is not None else names,
        memory_limit=memory_limit, calendar=calendar, on_device=resolve_backend(backend) == "gpu")]
    return pd.concat(frames) if frames else empty_latest()


def empty_latest() -> pd.DataFrame:
    """A ``latest()`` table without rows (the meta of the lazy tables)."""
    return latest_table([], [], np.empty((0, 2 + N_FAMILIES)), np.empty((0, 2)))


class DaskATCResult:
    """The lazy result of :func:`gpu_trend.dask.compute_atc` on a Dask array.

    Every output of :class:`~gpu_trend.results.ATCResult` is an attribute holding a Dask
    array, (S, T) or (S, width, T), chunked like the (rechunked) input along symbols and in
    one block along time, NumPy or CuPy like the input's blocks; nothing runs until it is
    computed. T is the input's width: with each symbol on its own calendar the first columns
    may be padding (NaN, False) for every symbol, which :meth:`compute` drops.

    Attributes
    ----------
    symbols : list of str
    index : pandas.Index
        The times of the input's columns (bar numbers for an array).
    config : ATCConfig
    members : bool
    positions : dask array (S, T) int64
        Input column of each bar (−1 for padding); see :attr:`ATCResult.positions`.
    start_bar : dask array (S,) int64
        Each symbol's first valid close, in columns of the padded width.
    blocks : list of dask.delayed.Delayed
        One task per block of symbols, returning its outputs: the graph the arrays share.
    """

    def __init__(self, close, cfg, names, times, *, source=None, backend, members,
                 memory_limit, calendar):
        import dask
        import dask.array as da

        n_bars = close.shape[1]
        self.symbols, self.config, self.members = names, cfg, members
        self.index = pd.RangeIndex(n_bars, name="bar") if times is None else times
        self._close = close
        # `source` is chunked like `close`: its blocks pair up with close's.
        self._sources = ([None] * len(close.chunks[0]) if source is None
                         else list(source.to_delayed().ravel()))
        self._opts = dict(backend=backend, memory_limit=budget_spec(memory_limit),
                          calendar=calendar)
        rows = np.cumsum((0,) + close.chunks[0])
        self._names = [names[a:b] for a, b in zip(rows[:-1], rows[1:])]
        # The times go into the graph once, not once per task.
        self._times = None if times is None else dask.delayed(times)
        self.blocks = [dask.delayed(padded_block, pure=True)(
            b, src, part, self._times, cfg, members=members, **self._opts)
            for b, src, part in zip(close.to_delayed().ravel(), self._sources, self._names)]
        xp = namespace(close._meta)

        def stacked(key, shape_of, dtype, xp=xp):
            empty = xp.empty((0,) * len(shape_of(0)), dtype=dtype)
            return da.concatenate([da.from_delayed(blk[key], shape_of(len(part)), dtype=dtype,
                                                   meta=empty)
                                   for blk, part in zip(self.blocks, self._names)], axis=0)

        for o in outputs.OUTPUTS:
            setattr(self, o.name, None if o.members_only and not members else
                    stacked(o.name, lambda s, o=o: o.shape(s, n_bars), o.dtype))
        self.positions = stacked("positions", lambda s: (s, n_bars), np.int64, np)
        self.start_bar = stacked("start_bar", lambda s: (s,), np.int64, np)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return (f"DaskATCResult({self.n_symbols} symbols × {len(self.index)} bars, "
                f"{len(self.blocks)} blocks, members={self.members})")

    def latest(self):
        """The ``latest()`` table as a lazy ``dask.dataframe`` (one partition per block).

        Each task streams its block through :func:`gpu_trend.iter_atc` under the budget and
        returns its rows only; it does not reuse the arrays' tasks.
        """
        import dask
        import dask.dataframe as dd

        parts = [dask.delayed(latest_block, pure=True)(b, src, part, self._times, self.config,
                                                       **self._opts)
                 for b, src, part in zip(self._close.to_delayed().ravel(), self._sources,
                                         self._names)]
        return dd.from_delayed(parts, meta=empty_latest(), verify_meta=False)

    def compute(self, **kwargs) -> ATCResult:
        """Run the blocks and gather an :class:`ATCResult` equal to one local
        :func:`gpu_trend.compute_atc` call (keyword arguments go to ``dask.compute``)."""
        import dask

        got = dask.compute(*self.blocks, **kwargs)
        return merged_rows(got, self.symbols, self.index, self.config, self.members)


def merged_rows(blocks, names, index, cfg, members) -> ATCResult:
    """One ATCResult from padded blocks of rows (:func:`padded_block`), as one call gives it:
    the columns that are padding for every symbol dropped."""
    xp = namespace(blocks[0]["average_signal"])
    out = {o.name: xp.concatenate([b[o.name] for b in blocks])
           for o in outputs.selected(members)}
    start = np.concatenate([b["start_bar"] for b in blocks]).astype(np.int64)
    positions = None
    if any(b["own"] for b in blocks):
        positions = np.concatenate([b["positions"] for b in blocks])
        width = int((positions >= 0).sum(axis=1).max(initial=0))
        cut = positions.shape[1] - width
        positions = positions[:, cut:]
        out = {k: v[..., cut:] for k, v in out.items()}
        start = start - cut
    width = out["average_signal"].shape[1]
    caught = tuple(dict.fromkeys(w for b in blocks for w in b["warnings"]))
    return ATCResult(symbols=list(names), index=index, positions=positions, config=cfg,
                     backend=blocks[0]["backend"], start_bar=start,
                     first_full_bar=engine.first_full_bars(cfg, start, width),
                     warnings=caught, **out)

