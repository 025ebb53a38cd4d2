"""ATC on a Dask cluster: universes split by symbols, computed where the data is.

``pip install -e ".[dask]"`` (CPU workers) or ``".[dask-cuda]"`` (one worker per GPU). This
package imports Dask; ``import gpu_trend`` does not import it.

* :func:`compute_atc` over a Dask array (symbols × bars), a Dask DataFrame (wide:
  time × symbols; long: symbol, time, close, …) or a list or glob of Parquet/CSV files (one
  partition per file, read on the workers: the client sends paths, not data). The time axis
  is one block per task; tasks hold blocks of symbols and run the ordinary engine, with the
  caller's memory budget resolved on each worker. NumPy blocks give NumPy results, CuPy
  blocks CuPy results. Results are lazy until computed, and equal one local call bit for
  bit.
* :func:`scan` ranks such a universe: each partition is scanned on a worker, the client
  ranks the tables. Staleness and the union calendar are measured against the whole
  universe's times. ``state=`` makes warm scans with one state file per partition, next to
  its data file or in a directory, updated in parallel.
* :func:`sweep` runs :func:`gpu_trend.sweep.sweep` on each partition: lazy ``latest()`` and
  ``summary()`` tables.
* :func:`rmm_options`: ``dask_cuda.LocalCUDACluster`` settings for an RMM pool per GPU worker,
  sized from a memory budget, in which the engine plans its own.
"""

from __future__ import annotations

import os

import numpy as np

from ..arrays import is_cupy
from ..calendars import check_calendar
from ..engine import ATCInputError, as_config
from .arrays import DaskATCResult, one_time_block, symbol_names
from .budget import budget_spec
from .partitions import (PartitionedATCResult, Partitions, from_blocks, from_files,
                         from_long_frame, table_files)
from .rmm_pool import rmm_options
from .scan import scan_partitions
from .sweep import DaskSweep

__all__ = ["compute_atc", "scan", "sweep", "partitions", "rmm_options", "DaskATCResult",
           "PartitionedATCResult", "DaskSweep", "Partitions"]


def _kind(data, read_options=None) -> str:
    """"array", "wide", "long", "files" or "partitions"."""
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(data, Partitions):
        return "partitions"
    if isinstance(data, da.Array):
        return "array"
    if isinstance(data, dd.DataFrame):
        names = {str(c).strip().lower() for c in data.columns}
        mapped = "symbol" in ((read_options or {}).get("columns") or {})
        # The reader's rule (gpu_trend.io): a long table is one with a symbol column.
        long = mapped or names & {"symbol", "ticker", "asset", "instrument", "code"}
        return "long" if long else "wide"
    if isinstance(data, (str, os.PathLike, list, tuple)):
        return "files"
    raise TypeError(f"expected a dask array, a dask DataFrame, files (a path, glob or list) "
                    f"or Partitions, got {type(data).__name__}")


def _check_prices(frame, what: str) -> None:
    """Every column of a wide Dask DataFrame holds numbers (its dtypes, read on the client)."""
    import pandas as pd

    for col, dtype in frame.dtypes.items():
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ATCInputError(f"{what}: column {col!r} holds {dtype}, not prices",
                                symbol=str(col))


def _wide_as_array(frame, *, members, memory_limit, inputs=1):
    """A wide Dask DataFrame (time × symbols) as (symbols × bars) blocks, its names and times.

    The times (the index) come to the client, the prices do not.
    """
    import pandas as pd

    _check_prices(frame, "close")
    times = pd.Index(frame.index.compute())
    close = frame.to_dask_array(lengths=True).T
    n_sym = close.shape[0]
    # A block of symbols per thread of the cluster.
    close = close.rechunk({0: max(-(-n_sym // _total_threads()), 1), 1: -1})
    return one_time_block(close, members=members, memory_limit=memory_limit, inputs=inputs), \
        [str(c) for c in frame.columns], times


def _as_blocks(data, kind, symbols, members, memory_limit, inputs=1) -> tuple:
    """(blocks of symbols × whole histories, names, times or None) of a Dask array or wide
    Dask DataFrame."""
    if kind == "wide":
        return _wide_as_array(data, members=members, memory_limit=memory_limit, inputs=inputs)
    arr = one_time_block(data, members=members, memory_limit=memory_limit, inputs=inputs)
    return arr, symbol_names(symbols, arr.shape[0]), None


def _source_blocks(source, close, kind, blocks, times):
    """`source` in the blocks of `blocks` (close's, from :func:`_as_blocks`), so that they pair
    up task by task: a Dask array of close's shape, or a wide Dask DataFrame with close's
    columns (in any order) and times (partitioned in any way)."""
    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd

    if kind == "array":
        if not isinstance(source, da.Array):
            raise ATCInputError(f"source must be a Dask array like close, got "
                                f"{type(source).__name__}")
        src = source[None, :] if source.ndim == 1 else source
    else:
        if not isinstance(source, dd.DataFrame):
            raise ATCInputError(f"source must be a wide Dask DataFrame like close, got "
                                f"{type(source).__name__}")
        names, want = [str(c) for c in source.columns], [str(c) for c in close.columns]
        if sorted(names) != sorted(want):
            missing, extra = sorted(set(want) - set(names)), sorted(set(names) - set(want))
            raise ATCInputError(f"source's columns are not close's symbols: missing "
                                f"{missing[:5]}, extra {extra[:5]}")
        source = source[[source.columns[names.index(c)] for c in want]]
        _check_prices(source, "source")
        src_times = pd.Index(source.index.compute())
        if not src_times.equals(times):
            diff = times.symmetric_difference(src_times)
            where = (f"e.g. {diff[0]} is in one and not the other" if len(diff) else
                     "they are in another order")
            raise ATCInputError(f"source's times are not close's: {where}")
        src = source.to_dask_array(lengths=True).T
    if src.shape != blocks.shape:
        raise ATCInputError(f"source has shape {src.shape}, close has {blocks.shape}")
    if src.dtype.kind not in "fiu":
        raise ATCInputError(f"source must be numeric, got dtype {src.dtype}")
    if is_cupy(src._meta) != is_cupy(blocks._meta):
        raise ATCInputError("close and source must both have NumPy blocks or both CuPy "
                            "blocks")
    return src.astype(np.float64).rechunk(blocks.chunks)


def _total_threads() -> int:
    """Threads of the current ``distributed`` client's workers, else this machine's CPUs."""
    try:
        from distributed import get_client

        return sum(get_client().nthreads().values())
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def partitions(data, *, read_options=None, split_row_groups=False) -> Partitions:
    """The partitions of symbols of `data`: files (a path, glob, directory or list: one
    partition each, or with `split_row_groups` one per row group of a long Parquet file)
    or a long Dask DataFrame (one per partition; shuffled by symbol first when a symbol's
    rows are in two of them). Each is read on a worker by :func:`gpu_trend.read_universe`
    with `read_options`."""
    opts = dict(read_options or {})
    kind = _kind(data, opts)
    _check_split(kind, split_row_groups)
    if kind == "partitions":
        return data
    if kind == "files":
        return from_files(table_files(data), opts, split_row_groups=split_row_groups)
    if kind == "long":
        return from_long_frame(data, opts)
    raise TypeError("partitions() takes files or a long Dask DataFrame; a Dask array or wide "
                    "DataFrame is split into blocks of symbols by compute_atc and scan")


def _check_split(kind, split_row_groups) -> None:
    if split_row_groups and kind != "files":
        what = {"array": "a Dask array", "wide": "a wide Dask DataFrame",
                "long": "a long Dask DataFrame", "partitions": "Partitions"}[kind]
        raise ValueError(f"split_row_groups is for Parquet files, not {what}")


def compute_atc(close, config=None, *, source=None, backend="auto", members=False,
                symbols=None, memory_limit=None, calendar="own", read_options=None,
                split_row_groups=False):
    """:func:`gpu_trend.compute_atc` on a Dask cluster (or Dask's local schedulers), lazily.

    Parameters
    ----------
    close : dask.array.Array, dask.dataframe.DataFrame, path, glob, list of paths or Partitions
        * a Dask array (symbols × bars), NumPy or CuPy blocks: rechunked to one block along
          time, keeping its blocks of symbols unless their input and outputs would not fit
          the per-worker budget;
        * a wide Dask DataFrame (time × symbols): its times come to the client, its prices
          are turned into blocks of symbols on the workers;
        * a long Dask DataFrame (symbol, time, close, …) or files (Parquet or CSV, any shape
          :func:`gpu_trend.read_universe` reads; one partition per file): each partition is
          read into a Universe on a worker. A symbol must be in one file (or row group); a
          long frame's symbol column is read at once to check that each symbol is in one
          partition (else the frame is shuffled by symbol).
    config, backend, members, calendar
        As for :func:`gpu_trend.compute_atc`.
    source : dask.array.Array or dask.dataframe.DataFrame, optional
        The input of the 54 moving averages, as for :func:`gpu_trend.compute_atc`: for a
        Dask array, a Dask array of the same shape (any chunks); for a wide Dask DataFrame,
        one with the same columns (any order) and times (any partitions). It is rechunked
        like close, so that each task gets the same rows of both. Files and long frames
        have none: :func:`gpu_trend.read_universe` reads no source column.
    symbols : sequence of str, optional
        Names of a Dask array's rows.
    memory_limit : int or str, optional
        The budget of each task's engine call, resolved on its worker (``"50%"`` is of that
        worker's available memory); default: this process's
        :func:`gpu_trend.set_memory_limit` setting, else each worker's own default. On the
        CPU it also caps the symbols of a block (their input and outputs must fit it).
    read_options : mapping, optional
        Keyword arguments of :func:`gpu_trend.read_universe`, for files and long frames.
    split_row_groups : bool, default False
        Files: one partition per row group of each long Parquet file (one with a symbol
        column), read on a worker with pyarrow, instead of one per file; a symbol's rows
        must then be in one row group (else the same DataError as for two files). Wide and
        one-symbol files stay one partition each (their row groups are slices of time).
        The client reads each file's footer to count its row groups.

    Returns
    -------
    DaskATCResult
        For a Dask array or wide Dask DataFrame: the outputs as lazy Dask arrays,
        ``latest()`` as a lazy Dask DataFrame, ``compute()`` → :class:`ATCResult`.
    PartitionedATCResult
        For files and long Dask DataFrames: ``latest()`` and ``to_dask_dataframe()`` lazy,
        ``compute()`` → one :class:`ATCResult` on the union of the partitions' times.

    Raises
    ------
    gpu_trend.memory.MemoryBudgetError
        One symbol's whole history does not fit the per-worker budget.
    ATCInputError, gpu_trend.io.DataError
        As in one process, from the task that meets the bad symbol or file; a `source` that
        is not close's shape, symbols or times, on the client.
    TypeError
        `source` with files or a long Dask DataFrame.
    """
    cfg = as_config(config)
    check_calendar(calendar, cfg.nan_policy)
    kind = _kind(close, read_options)
    _check_split(kind, split_row_groups)
    if kind in ("array", "wide"):
        arr, names, times = _as_blocks(close, kind, symbols, members, memory_limit,
                                       inputs=1 if source is None else 2)
        src = None if source is None else _source_blocks(source, close, kind, arr, times)
        return DaskATCResult(arr, cfg, names, times, source=src, backend=backend,
                             members=members, memory_limit=memory_limit, calendar=calendar)
    if source is not None:
        raise TypeError("source= goes with a Dask array or a wide Dask DataFrame of closes: "
                        "files and long frames are read by gpu_trend.read_universe, which "
                        "reads no source column")
    parts = partitions(close, read_options=read_options, split_row_groups=split_row_groups)
    return PartitionedATCResult(parts, cfg, backend=backend, members=members,
                                memory_limit=budget_spec(memory_limit), calendar=calendar)


def scan(universe, config=None, *, symbols=None, read_options=None, state=None,
         compute_options=None, split_row_groups=False, **options):
    """:func:`gpu_trend.scan` on a Dask cluster: every partition is scanned on a worker.

    Parameters
    ----------
    universe : files (path, glob, directory, list), long or wide Dask DataFrame, Dask array
        As for :func:`compute_atc`. A Dask array's or wide frame's blocks are scanned as
        :func:`gpu_trend.scan` scans a wide DataFrame.
    config, read_options
        As for :func:`gpu_trend.scan`.
    symbols : sequence of str, optional
        Names of a Dask array's rows.
    state : True or path of a directory, optional
        Warm scans on the cluster: each partition's :class:`~gpu_trend.ATCState` is kept
        next to its data file (``True``: ``DATA.parquet.atc-state.npz``) or in the directory
        (created if needed), on a filesystem the workers share; each worker updates its
        partitions' states in parallel. The partitions must keep their symbols from one run
        to the next (files do; row groups need not, so not with `split_row_groups`).
    compute_options : mapping, optional
        Keyword arguments of ``dask.compute`` (``retries=``, ``scheduler=``, …).
    split_row_groups : bool, default False
        As for :func:`compute_atc`.
    **options
        The other arguments of :func:`gpu_trend.scan` (``min_bars``, ``min_price``,
        ``min_dollar_volume``, ``min_signal``, ``top``, ``max_age``, ``calendar``,
        ``backend``, ``memory_limit`` — resolved on each worker — …).

    Returns
    -------
    ScanResult
        The same tables as one :func:`gpu_trend.scan` of the whole universe. ``elapsed``'s
        load, filter and compute are summed over the partitions (worker seconds); ``rank``
        and ``total`` are the client's.
    """
    if split_row_groups and state is not None and state is not False:
        raise ValueError("state= keeps each partition's state from one run to the next, and a "
                         "file written again may group its rows otherwise: warm scans read "
                         "files whole (split_row_groups=False)")
    opts = {"fields": ("close", "volume"), **dict(read_options or {})}
    options["memory_limit"] = budget_spec(options.get("memory_limit"))
    parts = _symbol_partitions(universe, symbols, opts, options["memory_limit"],
                               split_row_groups=split_row_groups)
    return scan_partitions(parts, config, state=state, compute_options=compute_options,
                           **options)


def _symbol_partitions(data, symbols, read_options, memory_limit, *, read=True,
                       split_row_groups=False) -> Partitions:
    """Partitions of any input: an array's or wide frame's blocks of symbols as wide tables
    (read into Universes when `read`), else :func:`partitions`."""
    kind = _kind(data, read_options)
    if kind not in ("array", "wide"):
        return partitions(data, read_options=read_options, split_row_groups=split_row_groups)
    _check_split(kind, split_row_groups)
    arr, names, times = _as_blocks(data, kind, symbols, False, memory_limit)
    rows = np.cumsum((0,) + arr.chunks[0])
    return from_blocks(arr, [names[a:b] for a, b in zip(rows[:-1], rows[1:])], times,
                       read_options if read else None)


def sweep(close, grid, *, symbols=None, backend="auto", memory_limit=None, read_options=None,
          split_row_groups=False):
    """:func:`gpu_trend.sweep.sweep` on a cluster: one sweep per partition of symbols.

    Parameters
    ----------
    close
        As for :func:`compute_atc`.
    grid
        As for :func:`gpu_trend.sweep.sweep` (checked on the client).
    symbols, backend, memory_limit, read_options, split_row_groups
        As for :func:`compute_atc` (the budget is resolved on each worker).

    Returns
    -------
    DaskSweep
        ``latest()`` and ``summary(cost, by="symbol")`` as lazy Dask DataFrames,
        ``summary(cost, by="config")`` aggregated on the client.
    """
    spec = budget_spec(memory_limit)
    parts = _symbol_partitions(close, symbols, dict(read_options or {}), spec, read=False,
                               split_row_groups=split_row_groups)
    return DaskSweep(parts.universes, grid, backend=backend, memory_limit=spec)
