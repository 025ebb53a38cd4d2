"""A universe split by symbols into partitions, each read into a Universe on a worker.

Partitions come from a list or glob of files (one partition per file, read by
:func:`gpu_trend.read_universe` on the worker: the client sends paths and gets results back,
never the data; or one per row group of a long Parquet file), from a long Dask DataFrame
(one partition per partition, each symbol's rows in one of them), or from the blocks of a Dask
array or wide Dask DataFrame.

Each symbol is computed on its own bars, so partitions are independent, except for what is
relative to the whole universe: the union calendar (``calendar="union"``), and the scanner's
staleness, which compares a symbol's last bar with the newest of the universe. Those come
from a *clock*: every partition's times and newest bar, merged in a tree on the workers.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import calendars, engine
from ..files import TABLE_SUFFIXES, table_kind
from ..io import FIELDS, DataError, Universe, read_universe
from ..results import ATCResult
from .arrays import empty_latest, merged_rows, pad_result

#: Partitions merged per task of the clock's tree.
CLOCK_FAN_IN = 8

#: Column added to a long frame's rows while it is shuffled by symbol (their original order).
_ORDER = "__gpu_trend_row__"


@dataclass(frozen=True)
class Partitions:
    """A universe split by symbols.

    Attributes
    ----------
    universes : list of dask.delayed.Delayed
        Each computes one partition's :class:`~gpu_trend.io.Universe`, on a worker.
    labels : list of str
        What each partition is, for messages: its file, or ``"partition 3"``.
    paths : list of pathlib.Path or None
        The file each partition is read from (None when it is not a file).
    """

    universes: list
    labels: list
    paths: list

    def __len__(self) -> int:
        return len(self.universes)


# ------------------------------------------------------------------------------------------
# making partitions
# ------------------------------------------------------------------------------------------
def table_files(data) -> list:
    """The files of `data`: a path, a glob pattern, a directory (its table files) or a list of
    these, in order; each one is a partition."""
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    files: list = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file()
                           and p.name.lower().endswith(tuple(TABLE_SUFFIXES)))
        elif any(c in str(item) for c in "*?["):
            found = [Path(p) for p in sorted(glob.glob(str(item)))]
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"no such file: {path}")
        if not found:
            raise FileNotFoundError(f"no table files match {item}")
        files.extend(found)
    seen: dict = {}
    for f in files:
        key = f.resolve()
        if key in seen:
            raise ValueError(f"{f} is given twice: each file is one partition")
        seen[key] = f
    return files


def from_files(files, read_options, *, split_row_groups=False) -> Partitions:
    """One partition per file, read on the workers; with `split_row_groups`, one per row
    group of each long Parquet file (:func:`row_groups`)."""
    import dask

    read = dask.delayed(read_universe, pure=False)
    read_group = dask.delayed(read_row_group, pure=False)
    unis, labels, paths = [], [], []
    for f in files:
        groups = row_groups(f, read_options) if split_row_groups else 1
        if groups == 1:
            unis.append(read(str(f), **read_options))
            labels.append(str(f))
            paths.append(f)
            continue
        for i in range(groups):
            unis.append(read_group(str(f), i, read_options))
            labels.append(f"{f} row group {i}")
            paths.append(None)  # not a file: a state cannot be kept next to it
    return Partitions(unis, labels, paths)


def row_groups(path, read_options) -> int:
    """How many partitions `path` makes with ``split_row_groups``: the row groups of a long
    Parquet file (one with a symbol column, found as :func:`gpu_trend.read_universe` finds
    it), else 1: a wide or one-symbol table's row groups are slices of time, each holding
    every symbol. Only the file's footer is read (on the client)."""
    if (table_kind(path) != "parquet" or read_options.get("format", "auto") == "wide"
            or read_options.get("symbol") is not None):
        return 1
    import pyarrow.parquet as pq

    from ..io import _resolve_columns

    meta = pq.read_metadata(path)
    mapping = {k: v for k, v in (read_options.get("columns") or {}).items() if k == "symbol"}
    found = _resolve_columns(meta.schema.names, mapping, ["symbol"], str(path))
    return meta.num_row_groups if "symbol" in found else 1


def read_row_group(path, index, read_options) -> Universe:
    """One task: row group `index` of the long Parquet file `path` (only the columns the
    reader needs), read by :func:`gpu_trend.read_universe`; its errors name the file and
    the row group."""
    import pyarrow.parquet as pq

    from ..io import _columns_to_read

    where = f"{path} row group {index}"
    try:
        pf = pq.ParquetFile(path)
        keep = _columns_to_read(pf.schema_arrow.names, read_options.get("columns"),
                                ["symbol", "time", *(read_options.get("fields") or FIELDS)],
                                where)
        frame = pf.read_row_group(index, columns=keep).to_pandas()
        return read_universe(frame, **read_options)
    except DataError as exc:
        raise DataError(f"{where}: {exc}", symbol=exc.symbol, time=exc.time) from exc


def from_blocks(close, names_of_blocks, times, read_options) -> Partitions:
    """One partition per block of a (symbols × bars) Dask array: a wide table on `times`
    (None: numbered bars), read as :func:`gpu_trend.read_universe` reads a wide DataFrame
    (with `read_options` None: the wide DataFrame itself, which the engine takes as it
    takes an array, keeping symbols without data)."""
    import dask

    times = None if times is None else dask.delayed(times)
    unis = [dask.delayed(_wide_universe, pure=True)(b, names, times, read_options)
            for b, names in zip(close.to_delayed().ravel(), names_of_blocks)]
    return Partitions(unis, [f"block {i}" for i in range(len(unis))], [None] * len(unis))


def _wide_universe(block, names, times, read_options):
    frame = pd.DataFrame(block.T, index=times, columns=names)
    return frame if read_options is None else read_universe(frame, **read_options)


def from_long_frame(frame, read_options) -> Partitions:
    """One partition per partition of a long Dask DataFrame (symbol, time, close, …).

    When a symbol's rows are in more than one partition, the frame is shuffled by symbol
    first (on the workers), keeping the rows' order: a row out of order is still the
    reader's error, as in one process.
    """
    import dask

    from ..io import _resolve_columns

    mapping = {k: v for k, v in (read_options.get("columns") or {}).items() if k == "symbol"}
    symbol = _resolve_columns(frame.columns, mapping, ["symbol"], "the Dask DataFrame")["symbol"]
    owners = dask.compute(*[dask.delayed(_unique)(p) for p in frame[symbol].to_delayed()])
    if len(np.concatenate(owners)) != len(set().union(*map(set, owners))):
        frame = _by_symbol(frame, symbol)
    unis = [dask.delayed(read_universe, pure=True)(p, **read_options)
            for p in frame.to_delayed()]
    return Partitions(unis, [f"partition {i}" for i in range(len(unis))], [None] * len(unis))


def _unique(column: pd.Series) -> np.ndarray:
    return column.dropna().astype(str).unique()


def _numbered(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    n = partition_info["number"] if partition_info else 0
    return part.assign(**{_ORDER: np.arange(len(part), dtype=np.int64) + (n << 40)})


def _in_order(part: pd.DataFrame) -> pd.DataFrame:
    return part.sort_values(_ORDER, kind="stable").drop(columns=_ORDER)


def _by_symbol(frame, symbol):
    meta = frame._meta.assign(**{_ORDER: np.empty(0, dtype=np.int64)})
    numbered = frame.map_partitions(_numbered, meta=meta)
    return numbered.shuffle(on=symbol, npartitions=frame.npartitions).map_partitions(
        _in_order, meta=frame._meta)


# ------------------------------------------------------------------------------------------
# the clock: what is relative to the whole universe
# ------------------------------------------------------------------------------------------
def clock_of(uni: Universe, nan_policy: str, calendar: str) -> tuple:
    """(times, newest): the partition's time index and its newest bar of any symbol (None
    without bars), as the scanner finds the newest bar of a universe."""
    index = uni.index
    if not uni.n_symbols or not len(index):
        return index, None
    close = uni.close.to_numpy(dtype=float, na_value=np.nan).T
    is_bar = calendars.bar_cells(~np.isnan(close), uni.bar_mask().T, nan_policy=nan_policy,
                                 calendar=calendar)
    rows = np.arange(len(index)) if is_bar is None else np.flatnonzero(is_bar.any(axis=0))
    return index, (index[rows[-1]] if len(rows) else None)


def merged_clocks(*clocks) -> tuple:
    """One clock of several: the union of the times, the newest of the newest bars."""
    times = clocks[0][0]
    for t, _ in clocks[1:]:
        times = times.union(t)
    newest = [n for _, n in clocks if n is not None]
    return times, (max(newest) if newest else None)


def universe_clock(parts: Partitions, nan_policy: str, calendar: str):
    """The whole universe's clock, as one Delayed merged in a tree on the workers."""
    import dask

    level = [dask.delayed(clock_of, pure=True)(u, nan_policy, calendar)
             for u in parts.universes]
    while len(level) > 1:
        level = [dask.delayed(merged_clocks, pure=True)(*level[i:i + CLOCK_FAN_IN])
                 for i in range(0, len(level), CLOCK_FAN_IN)]
    return level[0]


def on_grid(uni: Universe, times: pd.Index) -> Universe:
    """`uni` on the index `times` (a superset of its own), each symbol keeping its bars."""
    def moved(frame):
        return None if frame is None else frame.reindex(times)

    present = pd.DataFrame(uni.bar_mask(), index=uni.index, columns=uni.symbols)
    return Universe(close=moved(uni.close), volume=moved(uni.volume), open=moved(uni.open),
                    high=moved(uni.high), low=moved(uni.low), rejected=dict(uni.rejected),
                    source=uni.source, present=present, ignored=list(uni.ignored))


# ------------------------------------------------------------------------------------------
# ATC over partitions
# ------------------------------------------------------------------------------------------
def _universe_for(uni, clock, calendar):
    return on_grid(uni, clock[0]) if calendar == "union" else uni


def compute_part(uni, clock, cfg, *, backend, members, memory_limit, calendar) -> ATCResult:
    """One task: ATC of one partition (on the whole universe's times for the union
    calendar)."""
    return engine.compute_atc(_universe_for(uni, clock, calendar), cfg, backend=backend,
                              members=members, memory_limit=memory_limit, calendar=calendar)


def latest_part(uni, clock, cfg, *, backend, memory_limit, calendar) -> pd.DataFrame:
    """One task: one partition's ``latest()`` rows, streamed through
    :func:`gpu_trend.iter_atc` under the budget."""
    from ..backend import resolve_backend

    frames = [r.latest() for r in engine.iter_atc(
        _universe_for(uni, clock, calendar), cfg, backend=backend, memory_limit=memory_limit,
        calendar=calendar, on_device=resolve_backend(backend) == "gpu")]
    return pd.concat(frames) if frames else empty_latest()


class PartitionedATCResult:
    """The lazy result of :func:`gpu_trend.dask.compute_atc` on partitions of symbols (files,
    a long Dask DataFrame).

    Partitions have their own times, so their outputs are not one array until they are put
    on the union of the times: :meth:`compute` does that on the client; :meth:`latest` and
    :meth:`to_dask_dataframe` stay lazy and per partition.

    Attributes
    ----------
    partitions : Partitions
    config : ATCConfig
    members : bool
    results : list of dask.delayed.Delayed
        One task per partition, computing its :class:`~gpu_trend.results.ATCResult`.
    """

    def __init__(self, parts: Partitions, cfg, *, backend, members, memory_limit, calendar):
        import dask

        self.partitions, self.config, self.members = parts, cfg, members
        self._opts = dict(backend=backend, memory_limit=memory_limit, calendar=calendar)
        self._clock = (universe_clock(parts, cfg.nan_policy, calendar) if calendar == "union"
                       else None)
        self.results = [dask.delayed(compute_part, pure=True)(u, self._clock, cfg,
                                                              members=members, **self._opts)
                        for u in parts.universes]

    def __repr__(self) -> str:
        return f"PartitionedATCResult({len(self.partitions)} partitions, members={self.members})"

    def latest(self):
        """The ``latest()`` table as a lazy ``dask.dataframe``, one partition per partition."""
        import dask
        import dask.dataframe as dd

        parts = [dask.delayed(latest_part, pure=True)(u, self._clock, self.config, **self._opts)
                 for u in self.partitions.universes]
        return dd.from_delayed(parts, meta=empty_latest(), verify_meta=False)

    def to_dask_dataframe(self):
        """:meth:`ATCResult.to_pandas` of every partition, as a lazy ``dask.dataframe``."""
        import dask
        import dask.dataframe as dd

        return dd.from_delayed([dask.delayed(ATCResult.to_pandas)(r) for r in self.results],
                               verify_meta=False)

    def compute(self, **kwargs) -> ATCResult:
        """Run every partition and gather one :class:`ATCResult` on the union of their times,
        equal to one local call on the whole universe (keyword arguments go to
        ``dask.compute``).

        Raises
        ------
        gpu_trend.io.DataError
            A symbol is in two partitions.
        """
        import dask

        got = dask.compute(*self.results, **kwargs)
        return merged_partitions(got, self.partitions.labels, self.config, self.members)


def check_disjoint(symbol_lists, labels) -> None:
    """Raise DataError for a symbol found in two partitions, naming both."""
    where: dict = {}
    for symbols, label in zip(symbol_lists, labels):
        for s in symbols:
            if s in where:
                raise DataError(f"symbol {s!r} is in {where[s]} and in {label}: each symbol "
                                f"must be in one partition", symbol=s)
            where[s] = label


def merged_partitions(results, labels, cfg, members) -> ATCResult:
    """One ATCResult from the partitions' own results, on the union of their times."""
    check_disjoint([r.symbols for r in results], labels)
    times = merged_clocks(*[(r.index, None) for r in results])[0]
    width = max(r.n_bars for r in results)
    blocks = [pad_result(r, width, times.get_indexer(r.index)) for r in results]
    return merged_rows(blocks, [s for r in results for s in r.symbols], times, cfg, members)
