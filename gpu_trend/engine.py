"""compute_atc and iter_atc: the entry points every backend shares.

One call goes through the same steps whatever runs it:

1. normalise the input to (symbols × bars) float64 arrays (:func:`_normalise`);
2. plan the chunks of symbols that fit the memory budget (:meth:`Workload.plan`,
   :mod:`gpu_trend.memory`);
3. check every symbol's input (:mod:`gpu_trend.checks`) and raise for the
   first one at fault, before anything is computed;
4. block by block: bring the rows into the backend's memory with the NaN
   policy applied, run the backend's ``run_block`` on them, and move the
   outputs to where the caller wants them.

Only step 4 depends on the backend and on where the arrays live, and it is
looked up in one table, :data:`ROUTES`: (backend, where the input lives) →
how blocks are fed. The two backends, :mod:`cpu_fallback.backend` and
:mod:`gpu_trend.gpu`, have the same interface. Symbols never interact, so
the results do not depend on the blocks.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from . import calendars, checks, display, memory, outputs
from .arrays import is_cudf, is_cupy, namespace, to_device, to_host
from .backend import BackendUnavailableError, resolve_backend
from .config import FAMILIES, ATCConfig, as_flag
from .io import Universe, _flat_columns
from .results import ATCResult

GROWTH_WARN = 1.25


class ATCInputError(ValueError):
    """Invalid input data; ``symbol`` and ``bar`` name where (either may be None).

    ``bar`` is the row of the input's time index (its column for an array).
    """

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


def _normalise(data, name):
    """(array (S, T) float64, symbol names or None, index or None, is_bar) from an input.

    The array is NumPy or CuPy; pandas/cuDF objects give their labels. ``is_bar``
    is the (S, T) mask of which cells are bars of their symbol for a
    :class:`~gpu_trend.io.Universe` (each symbol on its own calendar), else None.
    """
    names = index = is_bar = None
    if isinstance(data, Universe):
        names, index = data.symbols, data.index
        arr = data.close.to_numpy(dtype=np.float64, na_value=np.nan).T
        is_bar = np.ascontiguousarray(data.bar_mask().T)
    elif isinstance(data, (pd.DataFrame, pd.Series)):
        frame = data.to_frame(name=data.name if data.name is not None else "0") \
            if isinstance(data, pd.Series) else data
        if isinstance(frame.columns, pd.MultiIndex):
            # The reader's rule: a level of bar fields gives the closes, else joined names.
            frame = _flat_columns(frame, ("close",))[0]
        _check_numeric_columns(frame, name)
        _check_time_index(frame.index, name)
        names, index = frame.columns.tolist(), frame.index
        arr = frame.to_numpy(dtype=np.float64, na_value=np.nan).T
    elif is_cudf(data):
        frame = data.to_frame(name=data.name if data.name is not None else "0") \
            if data.__class__.__name__ == "Series" else data
        names, index = list(frame.columns), frame.index.to_pandas()
        _check_time_index(index, name)
        arr = frame.to_cupy(dtype="float64").T  # a wide cuDF frame stays on the device
    else:
        arr = _numeric_array(data, name)
    # Read-only input (pandas copy-on-write) would make Numba compile a second
    # specialisation of the cores, costing seconds; a copy costs milliseconds.
    if not (arr.flags.c_contiguous and getattr(arr.flags, "writeable", True)):
        arr = arr.copy(order="C")
    return arr, names, index, is_bar


def _numeric_array(data, name):
    """A 2-D float64 NumPy/CuPy array of an array-like, or an error saying what is wrong."""
    if data is None:
        raise ATCInputError(f"{name} is None: pass prices as an array (symbols × bars), a "
                            f"DataFrame (time × symbols), a Series or a Universe")
    if isinstance(data, np.ma.MaskedArray):
        # Masked cells are missing closes, for nan_policy; their hidden values are never used.
        data = np.ma.filled(data.astype(np.float64), np.nan)
    xp = namespace(data)
    try:
        data = xp.asarray(data)
    except ValueError as exc:  # NumPy refuses ragged nested sequences
        raise ATCInputError(f"{name} is not a rectangular array ({exc}); give every symbol "
                            f"the same number of bars (NaN where there is none)") from None
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise ATCInputError(f"{name} must be 1-D (bars) or 2-D (symbols × bars), "
                            f"got shape {data.shape}")
    if data.dtype.kind not in "fiu":
        raise ATCInputError(f"{name} must be numeric, got dtype {data.dtype}")
    return xp.asarray(data, dtype=xp.float64)


def _check_numeric_columns(frame: pd.DataFrame, name: str) -> None:
    """Only number columns are prices: a date, flag, category or text column is not a symbol."""
    dtypes = frame.dtypes
    if all(pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d)
           for d in set(dtypes.tolist())):  # a few dtypes, not one check per symbol
        return
    for col, dtype in dtypes.items():
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ATCInputError(f"{name}: column {col!r} holds {dtype}, not prices; drop it, or "
                                f"make it the index if it holds the times", symbol=str(col))


def _symbol_names(given, found, n_rows: int) -> list:
    """The rows' names: `given` (``symbols=``), else the input's labels, else "0", "1", …"""
    if given is not None:
        given = [given] if isinstance(given, str) else list(given)
        if len(given) != n_rows:
            raise ATCInputError(f"symbols has {len(given)} names for {n_rows} rows of close")
        found = given
    names = list(map(str, found if found is not None else range(n_rows)))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ATCInputError(f"symbol {dup!r} appears {names.count(dup)} times; symbol names "
                            f"must be unique", symbol=dup)
    return names


def _aligned_source(source, close):
    """A pandas `source` put in `close`'s column and time order; a mismatch is an error."""
    if isinstance(close, Universe):
        close = close.close
    if not (isinstance(source, (pd.DataFrame, pd.Series)) and
            isinstance(close, (pd.DataFrame, pd.Series))):
        return source  # arrays pair up by position
    src = source.to_frame() if isinstance(source, pd.Series) else source
    ref = close.to_frame() if isinstance(close, pd.Series) else close
    if isinstance(source, pd.Series) and isinstance(close, pd.Series):
        src.columns = ref.columns
    src_cols, ref_cols = [str(c) for c in src.columns], [str(c) for c in ref.columns]
    if sorted(src_cols) != sorted(ref_cols):
        missing = sorted(set(ref_cols) - set(src_cols))
        extra = sorted(set(src_cols) - set(ref_cols))
        raise ATCInputError(f"source's columns are not close's symbols: missing {missing[:5]}, "
                            f"extra {extra[:5]}")
    if not src.index.equals(ref.index):
        if not (src.index.is_unique and set(src.index) == set(ref.index)):
            diff = ref.index.symmetric_difference(src.index)
            raise ATCInputError(f"source's times are not close's: e.g. {diff[0]} is in one "
                                f"and not the other")
    src = src.set_axis(src_cols, axis=1).reindex(index=ref.index, columns=ref_cols)
    return src


def _check_time_index(index: pd.Index, name: str) -> None:
    """Bars must be in time order, each once: anything else would be computed as if it were."""
    if index.is_monotonic_increasing and index.is_unique:
        return
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        rows = np.flatnonzero(index == dup)[:2]
        raise ATCInputError(f"{name}: duplicate time {dup} (rows {rows[0]} and {rows[1]}); "
                            f"each bar must appear once")
    codes = pd.factorize(index, sort=True)[0]
    row = int(np.flatnonzero(np.diff(codes) < 0)[0]) + 1
    raise ATCInputError(f"{name}: the time index is not increasing: {index[row]} (row {row}) "
                        f"comes after {index[row - 1]}; sort it first (df.sort_index())")


def _warn_if_transposed(shape, cfg: ATCConfig) -> None:
    """Warn when an array looks like bars × symbols read as symbols × bars (e.g. ``df.values``)."""
    n_sym, n_bars = shape
    shortest = int(cfg.member_lengths().min())
    if n_bars < shortest and n_sym > 10 * max(n_bars, 1):
        warnings.warn(f"close has shape {shape}: it is read as {n_sym:,} symbols × {n_bars} "
                      f"bars, fewer bars than the shortest moving average ({shortest}); if its "
                      f"rows are bars, pass close.T", ATCWarning, stacklevel=4)


def _copied_bytes(arr, original) -> int:
    """Bytes normalising allocated for ``arr`` (0 when it is a view of the caller's array)."""
    if isinstance(original, np.ndarray) or is_cupy(original):
        return 0 if namespace(arr).may_share_memory(arr, original) else arr.nbytes
    return arr.nbytes  # pandas, cuDF and sequences are always converted


# ----------------------------------------------------------------------------
# NaN policy and derived per-symbol values
# ----------------------------------------------------------------------------

def _ffill(xp, arr, valid):
    """Forward-fill invalid entries of each row from the last valid one."""
    pos = xp.where(valid, xp.arange(arr.shape[1])[None, :], 0)
    try:
        pos = xp.maximum.accumulate(pos, axis=1)
    except (AttributeError, NotImplementedError, TypeError):  # older CuPy
        pos = xp.asarray(np.maximum.accumulate(to_host(pos), axis=1))
    return xp.take_along_axis(arr, pos, axis=1)


def apply_nan_policy(close, source, cfg):
    """``(close, source)`` after the NaN policy; the inputs themselves unless "ffill" fills.

    Expects checked input (:func:`gpu_trend.checks.check_symbols`). Rows are
    independent, so applying it to a chunk of rows gives those rows of the whole.
    """
    if cfg.nan_policy != "ffill":
        return close, source
    xp = namespace(close)
    same = source is close
    n_bars = close.shape[1]
    valid = ~xp.isnan(close)
    starts = checks.listing_bars(xp, valid)
    in_history = xp.arange(n_bars)[None, :] >= starts[:, None]
    if bool((in_history & ~valid).any()):
        close = _ffill(xp, close, valid)
    del valid
    if same:
        return close, close
    src_holes = in_history & xp.isnan(source)
    if bool(src_holes.any()):
        # A source hole on the listing bar has nothing to carry: use that close.
        at_start = xp.arange(n_bars)[None, :] == starts[:, None]
        source = xp.where(at_start & xp.isnan(source), close, source)
        source = _ffill(xp, source, ~xp.isnan(source))
    return close, source


def first_full_bars(cfg: ATCConfig, starts: np.ndarray, n_bars: int) -> np.ndarray:
    """First bar on which all 54 MAs are valid on clean data (−1 if never)."""
    if (cfg.member_lengths()[FAMILIES.index("LSMA")] == 1).any():
        return np.full(starts.shape, -1, dtype=np.int64)  # linreg of 1 point is NaN
    first = starts + cfg.warmup_bars
    return np.where(first < n_bars, first, -1).astype(np.int64)


# ----------------------------------------------------------------------------
# routes: backend × where the input lives
# ----------------------------------------------------------------------------

def _backend_module(name: str):
    """The module of backend ``name``: ``run_block``, ``scratch_footprint``, ``MEMORY``, ..."""
    if name == "gpu":
        from . import gpu
        return gpu
    from cpu_fallback import backend
    return backend


class RowFeed:
    """Hands each block's rows to the backend, moved into its memory and NaN policy applied.

    Parameters
    ----------
    rows : callable
        ``rows(start, stop) -> (close, source)``: the universe's rows (views).
    fill : callable
        ``fill(close, source) -> (close, source)``: the NaN policy.
    move : callable, optional
        Copies an array into the backend's memory (None: it is there already).
    """

    def __init__(self, rows, fill, move=None):
        self._rows, self._fill, self._move = rows, fill, move

    def take(self, start, stop):
        close, source = self._rows(start, stop)
        if self._move is not None:
            moved = self._move(close)
            source = moved if source is close else self._move(source)
            close = moved
        return self._fill(close, source)

    def prefetch(self, start, stop):
        """Nothing to get ahead of: rows are taken when their block runs."""

    def drop(self):
        """Nothing is held between blocks."""


def _host_fed_gpu(rows, fill):
    from .gpu import HostFeeder

    # The fill runs on the host before the upload: the device never holds unfilled rows.
    return HostFeeder(lambda start, stop: fill(*rows(start, stop)))


class Route(NamedTuple):
    """How blocks reach one backend from one kind of memory.

    Attributes
    ----------
    feed : callable
        ``feed(rows, fill)`` → an object with ``take(start, stop)``,
        ``prefetch(start, stop)`` and ``drop()`` (:class:`RowFeed`).
    input_copies : int
        Copies of a block's input held in the backend's memory (for the planner).
    fills_in_backend : bool
        The NaN policy runs in the backend's memory (else before the move).
    """

    feed: Callable
    input_copies: int
    fills_in_backend: bool


#: (backend, where the input lives) → Route. Under Numba's CUDA simulator NumPy arrays are
#: the device's arrays: host input takes the ("gpu", "device") route.
ROUTES = {
    ("cpu", "host"): Route(lambda rows, fill: RowFeed(rows, fill), 0, True),
    ("cpu", "device"): Route(lambda rows, fill: RowFeed(rows, fill, move=to_host), 1, True),
    ("gpu", "device"): Route(lambda rows, fill: RowFeed(rows, fill), 0, True),
    ("gpu", "host"): Route(_host_fed_gpu, 2, False),
}


class StateWork:
    """The state rows and windows a call fills, in the memory its backend computes in.

    Parameters
    ----------
    xp : module
        NumPy or CuPy: where the arrays live.
    n_symbols, window : int
    separate_source : bool
    into : tuple of arrays, optional
        (member, layer2, final, close_window, source_window) to write into, the
        call's symbol i at row ``at[i]`` (an update writes the new state's arrays
        in place); fresh arrays of `n_symbols` rows when None.
    prior : tuple of arrays, optional
        (member, layer2, final) to resume from, at the same rows (default: `into`'s).
    at : (S,) int64 NumPy, optional
    resume : (S,) bool NumPy, optional
    t_from : (S,) int64 NumPy, optional
    """

    def __init__(self, xp, n_symbols, window, separate_source, into=None, prior=None,
                 at=None, resume=None, t_from=None):
        from .state import NO_AT, NO_RESUME, NO_T_FROM, state_rows

        if into is None:
            into = (*state_rows(xp, n_symbols), xp.full((n_symbols, window), xp.nan),
                    xp.full((n_symbols, window), xp.nan) if separate_source else None)
        (self.member, self.layer2, self.final, self.close_window,
         self.source_window) = into
        self.prior = prior
        self.at = NO_AT if at is None else at
        self.resume = NO_RESUME if resume is None else resume
        self.t_from = NO_T_FROM if t_from is None else t_from

    def _rows(self, start, stop):
        if not len(self.at):
            return slice(start, stop)
        return namespace(self.close_window).asarray(self.at[start:stop])

    def keep_window(self, start, stop, close, source):
        """Keep the last bars of a block's (NaN-policy-applied) inputs."""
        width, n = self.close_window.shape[1], close.shape[1]
        take = min(width, n)
        xp = namespace(self.close_window)
        rows = self._rows(start, stop)
        self.close_window[rows, width - take:] = xp.asarray(close[:, n - take:])
        if self.source_window is not None:
            self.source_window[rows, width - take:] = xp.asarray(source[:, n - take:])

    def block(self, start, stop):
        from .state import NO_AT, BlockState

        def part(a):
            return a[start:stop] if len(a) else a
        if len(self.at):  # the whole arrays, and where the block's symbols are in them
            return BlockState(part(self.t_from), part(self.resume), self.member, self.layer2,
                              self.final, True, self.at[start:stop], self.prior)
        return BlockState(part(self.t_from), part(self.resume), self.member[start:stop],
                          self.layer2[start:stop], self.final[start:stop], True, NO_AT)


def _move_into(dst, arr, to_where):
    """Write a block's output ``arr`` into ``dst``, which lives in the other memory."""
    if to_where == "host":
        to_host(arr, out=dst)
    else:
        dst[...] = to_device(arr)


# ----------------------------------------------------------------------------
# one call
# ----------------------------------------------------------------------------

class Bars(NamedTuple):
    """A call's input as (S, T) float64 arrays: each symbol's bars, packed where needed.

    ``positions`` as in :class:`ATCResult` (None: bar t is ``index[t]`` for every symbol);
    ``copied``: bytes the preparation allocated (for the planner).
    """

    close: object
    source: object
    names: list
    index: pd.Index
    positions: np.ndarray | None
    copied: int


def prepare_bars(close, cfg: ATCConfig, source=None, symbols=None, calendar="own", *,
                 whole_history=True) -> Bars:
    """Normalise a call's input and put each symbol on its bars (see :func:`compute_atc`).

    ``whole_history=False`` (an update's few new bars): no warning that the array looks
    transposed.
    """
    grid, is_bar = grid_bars(close, cfg, source, symbols, calendar, whole_history=whole_history)
    if is_bar is None:
        return grid
    # Own calendars: each symbol's bars packed to the right (gpu_trend.calendars).
    arr, src = grid.close, grid.source
    separate = src is not arr
    (arr, *rest), positions = calendars.right_align(
        namespace(arr).asarray(is_bar), arr, *((src,) if separate else ()))
    src = rest[0] if separate else arr
    return grid._replace(close=arr, source=src, positions=positions,
                         copied=grid.copied + arr.nbytes * (2 if separate else 1))


def grid_bars(close, cfg: ATCConfig, source=None, symbols=None, calendar="own", *,
              whole_history=True) -> tuple:
    """A call's input on its own grid, and which cells are bars of their symbol.

    Returns
    -------
    Bars
        Unpacked (``positions`` None).
    is_bar : (S, T) bool or None
        :func:`gpu_trend.calendars.bar_cells`; None when every cell is a bar.
    """
    arr, found, index, is_bar = _normalise(close, "close")
    names = _symbol_names(symbols, found, arr.shape[0])
    if index is None:
        index = pd.RangeIndex(arr.shape[1], name="bar")
    copied = _copied_bytes(arr, close)
    if source is None:
        src = arr
    else:
        source = _aligned_source(source, close)
        src = _normalise(source, "source")[0]
        if src.shape != arr.shape:
            raise ATCInputError(f"source has shape {src.shape}, close has {arr.shape}")
        if is_cupy(src) != is_cupy(arr):
            raise ATCInputError("close and source must both be host arrays or both CuPy "
                                "arrays")
        copied += _copied_bytes(src, source)
    if whole_history and not isinstance(close, (pd.DataFrame, pd.Series, Universe)) \
            and not is_cudf(close):
        _warn_if_transposed(arr.shape, cfg)
    # On a grid that says nothing about bars, a symbol's bars run from its first close to
    # its last; "skip" drops every empty cell.
    is_bar = calendars.bar_cells(~namespace(arr).isnan(arr), is_bar,
                                 nan_policy=cfg.nan_policy, calendar=calendar)
    return Bars(arr, src, names, pd.Index(index), None, copied), is_bar


class Workload:
    """One validated call: the universe's bars, their route to a backend and the plan.

    Parameters
    ----------
    bars : Bars
    cfg : ATCConfig
    backend, members
        As for :func:`compute_atc`.
    on_device : bool or None
        Where the outputs go: the device (CuPy), the host (NumPy), or None
        for where the input is.
    """

    def __init__(self, bars: Bars, cfg: ATCConfig, backend, members, on_device=None):
        self.cfg = cfg
        self.members = as_flag("members", members)
        self.close, self.source, self.names, self.index = bars.close, bars.source, bars.names, \
            bars.index
        self.positions, self.copied = bars.positions, bars.copied
        self.engine = resolve_backend(backend)
        self.backend = _backend_module(self.engine)
        self.simulated = self.engine == "gpu" and self.backend.simulated()
        # Where things are, as the route table sees it, and as the budget sees it (a
        # simulated device's memory is host RAM).
        self.input_on = "device" if is_cupy(self.close) or self.simulated else "host"
        if on_device is None:
            self.output_on = self.input_on
        else:
            self.output_on = "device" if as_flag("on_device", on_device) else "host"
        self.budget_on = "device" if self.engine == "gpu" and not self.simulated else "host"
        if self._physical(self.output_on) == "device" and not is_cupy(self.close):
            from .backend import gpu_status
            if not gpu_status()[0]:
                raise BackendUnavailableError(f"on_device=True needs a usable GPU, but "
                                              f"{gpu_status()[1]}")
        self.route = ROUTES[self.engine, self.input_on]

    @classmethod
    def of(cls, close, config, source=None, backend="auto", members=False, symbols=None,
           on_device=None, calendar="own"):
        """The Workload of a :func:`compute_atc` call's arguments."""
        cfg = as_config(config)
        return cls(prepare_bars(close, cfg, source, symbols, calendar), cfg, backend, members,
                   on_device)

    @property
    def shape(self):
        return self.close.shape

    def rows(self, start, stop):
        close = self.close[start:stop]
        return close, (close if self.source is self.close else self.source[start:stop])

    def _physical(self, where: str) -> str:
        return "host" if self.simulated else where

    # -- planning -------------------------------------------------------------------------
    def _budget(self, memory_limit, streaming: bool) -> int:
        """The budget in bytes; universe-sized device outputs are reserved off the device's."""
        reserve = 0
        if self.budget_on == "device":
            memory.ensure_gpu_pool()
            if self.output_on == "device" and not streaming:
                n_sym, n_bars = self.shape
                reserve = n_sym * n_bars * outputs.bytes_per_symbol_bar(self.members)
        return memory.resolve_budget(memory_limit, "gpu" if self.budget_on == "device" else "cpu",
                                     reserve=reserve)

    def _output_copies(self, streaming: bool, reuse: bool) -> int:
        """Block-sized output sets in the budget's memory (see memory.compute_footprint)."""
        copies = 0 if self.output_on == self.backend.MEMORY else 1  # before they move
        if streaming and self._physical(self.output_on) == self.budget_on:
            # This block's and the one the caller still holds, unless every block is
            # computed into the same set.
            copies += 1 if reuse else 2
        return copies

    def _footprints(self, streaming: bool, reuse: bool) -> tuple:
        """(compute, validate) Footprints of one block / one validation slice."""
        n_sym, n_bars = self.shape
        separate = self.source is not self.close
        fixed = self.copied if self._physical(self.input_on) == self.budget_on else 0
        scratch = self.backend.scratch_footprint(
            n_bars, members=self.members, separate_source=separate,
            max_len=int(self.cfg.member_lengths().max()))
        compute = memory.compute_footprint(
            n_bars, scratch=scratch, members=self.members, n_symbols=n_sym,
            separate_source=separate,
            fill=self.cfg.nan_policy == "ffill" and self.route.fills_in_backend,
            output_copies=self._output_copies(streaming, reuse),
            input_copies=self.route.input_copies, fixed=fixed)
        validate = memory.validate_footprint(n_bars, n_symbols=n_sym, separate_source=separate,
                                             fixed=fixed)
        return compute, validate

    def plan(self, memory_limit, *, streaming, chunk_symbols=None, reuse=False):
        """The :class:`memory.ChunkPlan` of this call.

        ``streaming``: each block's outputs are the caller's to keep, and the
        caller may still hold the previous block's (:func:`iter_atc`), or with
        ``reuse`` every block is computed into the first one's outputs;
        otherwise blocks write into universe-sized outputs, which are the
        caller's, not working memory.
        """
        budget = self._budget(memory_limit, streaming)
        compute, validate = self._footprints(streaming, reuse)
        return memory.plan_chunks(self.shape[0], budget, compute, validate,
                                  chunk_symbols=chunk_symbols,
                                  max_chunk=memory.CPU_MAX_CHUNK if self.budget_on == "host"
                                  else None)

    # -- running --------------------------------------------------------------------------
    def check(self, plan, first_column: int = 0) -> np.ndarray:
        """Check the whole universe in slices; raise for the first symbol at fault.

        Bars before ``first_column`` are not looked at (they were checked before: an update's
        window of a symbol's past bars, whose last column it starts from). Returns every
        symbol's first valid close.
        """
        n_sym = self.shape[0]
        starts = np.empty(n_sym, dtype=np.int64)
        step = plan.validate_symbols
        c = first_column
        for a in range(0, n_sym, step):
            b = min(a + step, n_sym)
            close, source = self.rows(a, b)
            found = checks.check_symbols(close[:, c:], None if source is close else source[:, c:],
                                         nan_policy=self.cfg.nan_policy)
            if c:
                found = dataclasses.replace(found, start=found.start + c,
                                            bar=np.where(found.bar >= 0, found.bar + c, -1))
            row = found.first_error()
            if row is not None:
                name = self.names[a + row]
                own = None if self.positions is None else self.positions[a + row]
                text = checks.describe(found, row, self.index, positions=own)
                bar = int(found.bar[row]) if own is None else int(own[found.bar[row]])
                raise ATCInputError(f"symbol {name!r}: {text}", symbol=name, bar=bar)
            starts[a:b] = found.start
        return starts

    def growth_warning(self, starts, stacklevel):
        """Warn (once per call) when λ inflates the returns noticeably; returns the messages.

        The growth at a symbol's last bar is exp(λ (bars − 1 − cutout)) over its own bars.
        """
        cfg = self.cfg
        steps = np.maximum(self.shape[1] - starts - 1 - cfg.cutout, 0)
        with np.errstate(over="ignore"):
            top = np.exp(cfg.lam * steps)  # inf past float64's range, never an OverflowError
        hit = int((top > GROWTH_WARN).sum())
        if not hit:
            return ()
        worst = float(top.max())
        meaning = ("returns overflow to inf and the results are meaningless" if worst == math.inf
                   else "the script only shows a warning here, results are computed")
        msg = (f"la={cfg.la} grows returns by {worst:.3g}x at the last bar (above "
               f"{GROWTH_WARN}) for {hit} of {len(starts)} symbols; {meaning}")
        warnings.warn(msg, ATCWarning, stacklevel=stacklevel + 1)
        return (msg,)

    def output_module(self):
        """Array module of the results: CuPy for outputs on a real device, NumPy otherwise."""
        if self.output_on == "device" and not self.simulated:
            import cupy
            return cupy
        return np

    def state_module(self):
        """Array module of the memory the backend computes in (where its state lives)."""
        if self.budget_on == "device":
            import cupy
            return cupy
        return np

    def blocks(self, plan, starts, make_out, state=None, growth_bars=None):
        """Yield ``(start, stop, outputs)`` block by block, splitting blocks that run out of
        memory; ``make_out(start, stop)`` gives the arrays a block writes into.

        ``state``: a :class:`StateWork` the blocks read (where they resume) and fill;
        ``growth_bars``: length of the growth table (default: the bar axis), which must
        cover every symbol's last τ.
        """
        params = self.cfg.kernel_params(growth_bars or self.shape[1])
        feed = self.route.feed(self.rows, lambda c, s: apply_nan_policy(c, s, self.cfg))
        run_block, moved = self.backend.run_block, self.output_on != self.backend.MEMORY

        def compute(start, stop, upcoming):
            close, source = feed.take(start, stop)
            dest = make_out(start, stop)
            ahead = None if upcoming is None else (lambda: feed.prefetch(*upcoming))
            block_state = None
            if state is not None:
                state.keep_window(start, stop, close, source)
                block_state = state.block(start, stop)
            res = run_block(close, source, starts[start:stop], params, self.members,
                            out=None if moved else dest, state=block_state, on_launched=ahead)
            if moved:
                for name, arr in res.items():
                    _move_into(dest[name], arr, self.output_on)
            return dest

        def on_oom():
            feed.drop()
            self.backend.release_memory()

        yield from memory.run_chunks(self.shape[0], plan.chunk_symbols, compute, on_oom=on_oom)

    def result(self, out, start, stop, starts, caught):
        """The :class:`ATCResult` of symbols ``start:stop`` from their outputs."""
        positions = None if self.positions is None else self.positions[start:stop]
        return ATCResult(symbols=self.names[start:stop], index=self.index, positions=positions,
                         config=self.cfg, backend=self.engine, start_bar=starts[start:stop],
                         first_full_bar=first_full_bars(self.cfg, starts[start:stop],
                                                        self.shape[1]),
                         warnings=caught, **out)


# ----------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------

def compute_atc(close, config=None, *, source=None, backend="auto", members=False,
                symbols=None, memory_limit=None, on_device=None, calendar="own",
                return_state=False):
    """Adaptive Trend Classification for every symbol at once.

    Parameters
    ----------
    close : array_like, DataFrame, Series, Universe, cupy.ndarray or cudf.DataFrame
        Closing prices, (symbols × bars) or one symbol's bars. A wide
        DataFrame has one column per symbol and time as its index (sorted,
        each time once). A :class:`~gpu_trend.io.Universe` (what
        :func:`~gpu_trend.io.read_universe` returns) knows which rows each
        symbol has. A CuPy array (or cuDF frame) keeps the computation on the
        GPU.
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
    on_device : bool, optional
        Return CuPy arrays (True) or NumPy arrays (False); by default the
        results live where the input does.
    return_state : bool, default False
        Also return ``res.state``, an :class:`~gpu_trend.state.ATCState` from
        which :func:`gpu_trend.update_atc` continues exactly with new bars.
    calendar : {"own", "union"}, default "own"
        ``"own"``: every symbol is computed on its own bars, so that its
        results never depend on the other symbols of the input. Its bars are a
        Universe's rows for that symbol; on a grid (array or wide frame) they
        run from its first close to its last (leading empty cells: listed
        later; trailing: its data ended), empty cells between are holes for
        ``nan_policy``, and ``nan_policy="skip"`` makes every empty cell a
        non-bar. The results pack each symbol's bars to the right (its last
        bar in the last column; ``ATCResult.positions`` and
        ``ATCResult.times`` give their times). ``"union"``: every cell of
        the grid is a bar of every symbol.

    Returns
    -------
    ATCResult

    Raises
    ------
    ATCInputError
        Non-positive or infinite closes, or (``nan_policy="raise"``) a NaN
        inside a symbol's history; the message names the symbol and bar.
        The whole universe is checked before anything is computed.
    BackendUnavailableError
        ``backend="gpu"`` on a machine without a usable CUDA device.
    gpu_trend.memory.MemoryBudgetError
        ``memory_limit`` cannot hold the work of a single symbol; the message
        says how many bytes are needed.
    MemoryError
        Memory ran out even for a one-symbol chunk (larger chunks are split
        and retried first, with a logged warning).
    """
    work = Workload.of(close, config, source, backend, members, symbols, on_device, calendar)
    plan = work.plan(memory_limit, streaming=False)
    starts = work.check(plan)
    caught = work.growth_warning(starts, stacklevel=2)
    n_sym, n_bars = work.shape
    out = outputs.allocate(work.output_module(), n_sym, n_bars, work.members)
    state = None
    if as_flag("return_state", return_state):
        state = StateWork(work.state_module(), n_sym, work.cfg.state_window,
                          work.source is not work.close)

    def rows_of(start, stop):
        return {k: v[start:stop] for k, v in out.items()}

    for _ in work.blocks(plan, starts, rows_of, state=state):
        pass
    res = work.result(out, 0, n_sym, starts, caught)
    if state is None:
        return res
    from .state import ATCState

    bars = np.where(starts < n_bars, n_bars - starts, 0).astype(np.int64)
    return dataclasses.replace(res, state=ATCState(
        work.cfg, list(work.names),
        calendars.last_times(work.index, work.positions, n_sym, starts < n_bars),
        bars, state.close_window, state.source_window, state.member, state.layer2,
        state.final, last=res.last_values(), since=np.stack(res.bars_since_events(), axis=1),
        clock=work.index[-1] if len(work.index) else None))


def iter_atc(close, config=None, *, source=None, chunk_symbols=None, memory_limit=None,
             backend="auto", members=False, symbols=None, on_device=None, calendar="own",
             progress=None, reuse_outputs=False):
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
        one, which a ``for`` loop's variable still holds meanwhile (once with
        ``reuse_outputs``).
    on_device : bool, optional
        As for :func:`compute_atc`. ``on_device=True`` with host input on the
        GPU uploads each chunk and keeps its results on the device, so that
        a reduction such as ``res.latest()`` downloads only its table.
    progress : bool, optional
        Show a progress bar over the symbols (``tqdm.auto``: a widget in a
        notebook). Default: in a notebook or when stderr is a terminal. False: never.
    reuse_outputs : bool, default False
        Compute every chunk into the first chunk's output arrays (row slices
        of them), as NumPy's ``out=`` would: each chunk's results are
        overwritten by the next one's, so keep only what you reduce from
        them (``res.latest()``), not the result itself. It spares the fresh
        memory each chunk's outputs take otherwise: about 157 KB a symbol at
        1,500 bars, which the operating system must zero and map on first
        use.

    Yields
    ------
    ATCResult
        The next chunk's symbols, in order. A chunk that runs out of memory
        is split and retried, so later chunks may be smaller than planned.

    Raises
    ------
    ATCInputError
        As for :func:`compute_atc`, when iteration starts: the whole universe
        is checked before the first chunk is computed.
    """
    work = Workload.of(close, config, source, backend, members, symbols, on_device, calendar)
    plan = work.plan(memory_limit, streaming=True, chunk_symbols=chunk_symbols,
                     reuse=reuse_outputs)
    starts = work.check(plan)
    caught = work.growth_warning(starts, stacklevel=2)
    n_bars = work.shape[1]
    xp_out = work.output_module()

    held = {}

    def fresh(start, stop):
        n = stop - start
        if not reuse_outputs:
            return outputs.allocate(xp_out, n, n_bars, work.members)
        if not held or len(held["average_signal"]) < n:
            held.clear()
            held.update(outputs.allocate(xp_out, n, n_bars, work.members))
        return {name: a[:n] for name, a in held.items()}

    with display.progress_bar(work.shape[0], "ATC", progress) as bar:
        for start, stop, out in work.blocks(plan, starts, fresh):
            bar.update(stop - start)
            yield work.result(out, start, stop, starts, caught)
