"""Live updates: new bars appended to a saved state, computed exactly, at a cost that does not
depend on the length of the history; and long histories computed in slices of time.

:func:`update_atc` puts each updated symbol's last W bars (from its
:class:`~gpu_trend.state.ATCState`) in front of its new bars and runs the
usual engine on that short block: the cores start from the symbol's state
rows at its first new bar and write them back after its last. Every
recurrence then takes the same steps, on the same values, as in one
computation over the whole history, so the outputs are the same bits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from . import calendars, outputs
from .arrays import namespace, to_host
from .config import as_flag
from .engine import (ATCInputError, Bars, StateWork, Workload, first_full_bars, grid_bars,
                     prepare_bars)
from .io import Universe, read_universe
from .state import ATCState, check_config

__all__ = ["update_atc", "iter_time_slices"]


def update_atc(state: ATCState, close, *, source=None, backend="auto", members=False,
               symbols=None, memory_limit=None, on_device=None, config=None):
    """Append new bars to `state`: ATC of the new bars only, and the state after them.

    Parameters
    ----------
    state : ATCState
        From ``compute_atc(..., return_state=True)``, an earlier update or
        :meth:`ATCState.load`; it is not modified.
    close : DataFrame, Series, Universe or array
        The new bars: a wide frame (time × symbols), a long frame (symbol, time,
        close, ...), a Universe, or an array (symbols × bars) whose rows are the
        state's symbols in order (or ``symbols=``), its bars numbered on from the
        state's last bar number. Any subset of the symbols: a symbol absent from
        the update (or without a close in it) keeps its state unchanged; a
        symbol the state does not know starts fresh, as a later listing.
    source : same form as `close`, optional
        Needed exactly when the state was computed with a separate source.
    backend, members, memory_limit, on_device
        As for :func:`gpu_trend.compute_atc`.
    symbols : sequence of str, optional
        Names for the rows of an array update.
    config : ATCConfig, optional
        The config the caller expects; a state made with another is refused,
        naming the fields that differ.

    Returns
    -------
    ATCResult
        The updated symbols' outputs on their new bars (packed to the right, as
        for own calendars: ``res.times(symbol)`` gives each one's new times),
        and ``res.state``, covering every symbol of `state` and the new ones.

    Raises
    ------
    ATCInputError
        A new bar at or before a symbol's last bar in the state (naming the
        symbol and both times), bad prices, or a source that does not match
        the state's.
    """
    cfg = state.config
    if config is not None:
        check_config(state, config)
    members = as_flag("members", members)
    new = _new_bars(state, close, source, symbols)
    width = state.window
    n_new = new.close.shape[1]
    counts = (new.positions >= 0).sum(axis=1)
    take = np.flatnonzero(counts > 0)  # a symbol without a close in the update keeps its state
    names = list(new.names) if len(take) == len(new.names) else [new.names[j] for j in take]
    idx = state.rows_of(names)
    known = idx >= 0
    _check_after_last(state, new, names, take, idx)
    counts = counts[take]
    t_from = (n_new - counts + width).astype(np.int64)
    bars_before = _bars_of(state, idx)
    listed = bars_before > 0
    ext, ext_src, positions = _extended(state, new, take, idx, width)

    work = Workload(Bars(ext, ext_src, names, new.index, positions, ext.nbytes), cfg, backend,
                    members, on_device)
    # A few bars a symbol: one block for every symbol, if the budget allows (the CPU's
    # default cap on a block is sized for whole histories).
    plan = work.plan(memory_limit, streaming=False, chunk_symbols=max(len(names), 1))
    # The state's window was checked when its bars came; from its last column on, a hole
    # right after a symbol's last bar is still inside its history.
    starts = work.check(plan, first_column=max(width - 1, 0))
    starts = np.where(listed, t_from - bars_before, starts).astype(np.int64)
    caught = work.growth_warning(starts, stacklevel=2)
    # The new state's arrays: the old symbols' rows, then the new symbols'. The blocks read
    # each updated symbol's old rows and write its new ones in place; only the rows of the
    # symbols the update leaves alone are copied here.
    n_old = len(state.symbols)
    at = np.where(known, idx, n_old + np.cumsum(~known) - 1)
    xs = work.state_module()
    n_fresh = int((~known).sum())
    alone = np.ones(n_old, dtype=bool)
    alone[idx[known]] = False
    prior = tuple(xs.asarray(a) for a in (state.member, state.layer2, state.final))
    into = tuple(_grown(xs, a, n_fresh, alone) for a in prior) + tuple(
        None if a is None else _grown(xs, a, n_fresh) for a in
        (state.close_window, state.source_window))
    live = StateWork(xs, len(names), width, ext_src is not ext, into=into, prior=prior, at=at,
                     resume=listed, t_from=t_from)
    n_ext = ext.shape[1]
    out = outputs.allocate(work.output_module(), len(names), n_ext, members)
    last_tau = np.where(starts < n_ext, n_ext - starts, 0)
    for _ in work.blocks(plan, starts, lambda a, b: {k: v[a:b] for k, v in out.items()},
                         state=live, growth_bars=max(int(last_tau.max(initial=0)), 1)):
        pass
    result = _new_bar_result(work, out, width, n_new, counts, starts, caught)
    before = np.full((len(names), 2), np.nan)
    before[known] = to_host(state.since)[idx[known]]
    result = dataclasses.replace(result, since_before=before)
    bars_after = np.where(listed, bars_before + counts, last_tau).astype(np.int64)
    since = np.stack(result.bars_since_events(), axis=1)
    return dataclasses.replace(result, state=_next_state(state, names, at, n_fresh, live,
                                                         bars_after, result.last_values(),
                                                         since, new, take))


# ------------------------------------------------------------------------------------------
# the steps of update_atc
# ------------------------------------------------------------------------------------------
def _new_bars(state: ATCState, close, source, symbols) -> Bars:
    """The update's bars, each symbol's packed to the right, with their positions."""
    cfg = state.config
    if isinstance(close, pd.DataFrame) and any(str(c).lower() == "symbol"
                                               for c in close.columns.tolist()):
        close = read_universe(close)
    plain = not isinstance(close, (pd.DataFrame, pd.Series, Universe))
    if plain and symbols is None:
        n_rows = np.shape(close)[0] if np.ndim(close) == 2 else 1
        if n_rows != len(state.symbols):
            raise ATCInputError(f"an array update has one row per symbol of the state "
                                f"({len(state.symbols)}), got {n_rows}; pass symbols= to "
                                f"name its rows")
        symbols = state.symbols
    if (source is None) != (state.source_window is None):
        raise ATCInputError("the state was computed " + ("with" if source is None else
                            "without") + " a separate source: pass the same kind of update")
    if isinstance(close, Universe):  # its rows are the bars
        return prepare_bars(close, cfg, source, symbols, "own", whole_history=False)
    # The grid as it is ("union"); which cells are bars is decided below.
    grid_cfg = dataclasses.replace(cfg, nan_policy="raise")
    new = prepare_bars(close, grid_cfg, source, symbols, "union", whole_history=False)
    if plain:
        start = _next_bar_number(state)
        new = new._replace(index=pd.RangeIndex(start, start + new.close.shape[1], name="bar"))
    # On a grid a listed symbol's bars run from the update's first column (an empty cell there
    # is a hole) to its last close; a symbol not listed yet starts at its first close. Empty
    # cells after a symbol's last close are no bars: its data ends there, for now.
    valid = ~namespace(new.close).isnan(new.close)
    mask = calendars.span_mask(valid, listed=_bars_of(state, state.rows_of(new.names)) > 0)
    if cfg.nan_policy == "skip":
        mask &= valid
    separate = new.source is not new.close
    (close_, *rest), positions = calendars.right_align(
        mask, new.close, *((new.source,) if separate else ()))
    return new._replace(close=close_, source=rest[0] if separate else close_,
                        positions=positions)


def _bars_of(state: ATCState, rows: np.ndarray) -> np.ndarray:
    """The state's bar count of each of its `rows` (0 for −1: a symbol it does not know; a
    symbol is listed once it has a bar)."""
    bars = np.zeros(len(rows), dtype=np.int64)
    bars[rows >= 0] = np.asarray(state.bars)[rows[rows >= 0]]
    return bars


def _next_bar_number(state: ATCState) -> int:
    """Array updates number their bars on from the last bar number the state has seen."""
    if state.clock is None:
        return 0
    if not isinstance(state.clock, (int, np.integer, float)):
        raise ATCInputError("the state's bars have times: pass the update as a DataFrame "
                            "indexed by time")
    return int(state.clock) + 1


def _check_after_last(state, new, names, take, idx) -> None:
    """A new bar at or before a symbol's last bar would be counted twice (or out of order)."""
    if not len(take) or not len(state.symbols):
        return
    rows = new.positions[take]
    first_pos = rows[np.arange(len(take)), np.argmax(rows >= 0, axis=1)]
    last = state.last_times.take(np.maximum(idx, 0))
    has_last = (idx >= 0) & ~np.asarray(last.isna())
    if not has_last.any():
        return
    first = new.index.take(first_pos[has_last])
    try:
        stale = ~np.asarray(first > last[has_last], dtype=bool)
    except TypeError:
        raise ATCInputError(f"the new bars' times ({first.dtype}) cannot be compared with the "
                            f"state's last times ({last.dtype})") from None
    if stale.any():
        j = int(np.flatnonzero(stale)[0])
        k = int(np.flatnonzero(has_last)[j])
        name = names[k]
        raise ATCInputError(f"symbol {name!r}: new bar at {first[j]} is not after its last "
                            f"bar {state.last_time[idx[k]]} in the state", symbol=name)


def _extended(state, new, take, idx, width):
    """Each updated symbol's last `width` bars from the state, then its new bars, packed to
    the right; and the packed columns' positions in the update's index (−1 before)."""
    xp = namespace(new.close)
    n_new = new.close.shape[1]
    counts = (new.positions[take] >= 0).sum(axis=1)
    known = idx >= 0
    rows = xp.asarray(np.flatnonzero(known))
    # Window column c of symbol j goes to column n_new − counts[j] + c: right before its bars.
    shift = (n_new - counts)[known]

    def build(values, window):
        ext = xp.full((len(take), width + n_new), xp.nan)
        ext[:, width:] = values[xp.asarray(take)]
        if known.any():
            win = xp.asarray(window)[xp.asarray(idx[known])]
            if not shift.any():  # every symbol has a bar in the update's first column
                ext[rows, :width] = win
            else:
                cols = xp.asarray(shift[:, None] + np.arange(width)[None, :])
                ext[rows[:, None], cols] = win
        return ext

    ext = build(new.close, state.close_window)
    ext_src = ext if new.source is new.close else build(new.source, state.source_window)
    positions = np.full((len(take), width + n_new), -1, dtype=np.int64)
    positions[:, width:] = new.positions[take]
    return ext, ext_src, positions


def _grown(xp, rows, n_more, copy=None):
    """`rows` copied into `xp` memory (only the rows where `copy`, if given; the others left
    uninitialised), with `n_more` uninitialised rows after them."""
    out = xp.empty((rows.shape[0] + n_more,) + rows.shape[1:], dtype=rows.dtype)
    if copy is None:
        out[:rows.shape[0]] = xp.asarray(rows)
    elif copy.any():
        where = xp.asarray(np.flatnonzero(copy))
        out[where] = xp.asarray(rows)[where]
    return out


def _new_bar_result(work, out, width, n_new, counts, starts, caught):
    """The outputs of the new bars: the last `n_new` columns, NaN / False before a symbol's
    first new bar (the columns the cores skipped)."""
    before = np.arange(n_new)[None, :] < (n_new - counts)[:, None]
    arrays = {}
    for name, arr in out.items():
        part = arr[..., width:]
        xp = namespace(part)
        mask = xp.asarray(before[:, None, :] if part.ndim == 3 else before)
        arrays[name] = xp.where(mask, False if part.dtype == bool else xp.nan, part)
    first_new = n_new - counts
    start_bar = np.maximum(starts - width, first_new)
    full = first_full_bars(work.cfg, starts, width + n_new)  # −1: not within these bars
    first_full = np.where(full < 0, -1, np.maximum(full - width, first_new))
    return dataclasses.replace(
        work.result(arrays, 0, len(work.names), start_bar.astype(np.int64), caught),
        first_full_bar=first_full.astype(np.int64), positions=work.positions[:, width:])


def _next_state(state, names, at, n_fresh, live, bars_after, last, since, new,
                take) -> ATCState:
    """The state after the update: `live`'s arrays (the updated rows written in place), the
    per-symbol bookkeeping merged the same way (updated rows replaced, new symbols after)."""
    def merged(old, part):
        grown = _grown(np, np.asarray(old), n_fresh)
        grown[at] = part
        return grown

    # Every updated symbol has a bar in the update, its last one in the last column.
    times = new.index.take(new.positions[take][:, -1]) if len(take) else new.index[:0]
    last_time = list(state.last_time) + [None] * n_fresh
    for k, t in zip(at.tolist(), times.tolist()):
        last_time[k] = t
    clock = new.index[-1] if len(new.index) else None
    if state.clock is not None and (clock is None or not clock > state.clock):
        clock = state.clock
    fresh = [names[j] for j in np.flatnonzero(at >= len(state.symbols))]
    out = ATCState(state.config, list(state.symbols) + fresh, last_time,
                   merged(state.bars, bars_after), live.close_window, live.source_window,
                   live.member, live.layer2, live.final, merged(state.last, last),
                   merged(state.since, since), clock)
    # What the next update looks up, made here without a loop over the symbols: the symbol
    # index (the same symbols), and the last times as an Index where its type stays the same.
    old_times = state.last_times
    new_times = None
    if old_times.dtype == times.dtype and old_times.dtype != object:
        rows = np.concatenate([np.arange(len(old_times)), np.zeros(n_fresh, dtype=np.int64)])
        rows[at] = len(old_times) + np.arange(len(at))
        new_times = old_times.append(times).take(rows)
    out._seed_lookups(None if fresh else state._symbol_index, new_times)
    return out


def iter_time_slices(close, config=None, *, bars: int, source=None, backend="auto",
                     members=False, symbols=None, memory_limit=None, calendar="own"):
    """ATC over a long history in consecutive slices of time, each continuing the last's state.

    For histories too long to hold at once (years of 1-minute bars): only one slice's
    outputs and working arrays exist at a time. Every symbol's values over the slices equal
    one :func:`gpu_trend.compute_atc` call on the whole input, bit for bit: which cells are
    bars is decided on the whole input first (as ``compute_atc`` would), then cut.

    Parameters
    ----------
    close : array (symbols × bars), wide DataFrame or Universe
    config, source, backend, members, symbols, memory_limit, calendar
        As for :func:`gpu_trend.compute_atc` (``source`` of the same form as `close`).
    bars : int
        Rows of the input's time axis per slice.

    Yields
    ------
    ATCResult
        The symbols' outputs on the slice's bars, with ``.state`` after them.
    """
    from .engine import as_config, compute_atc

    cfg = as_config(config)
    if isinstance(bars, bool) or not isinstance(bars, (int, np.integer)) or bars < 1:
        raise ValueError(f"bars must be a whole number >= 1, got {bars!r}")
    grid = _with_bars(close, cfg, symbols, calendar)
    src = None if source is None else _with_bars(source, cfg, symbols, "union").close
    state = None
    for a in range(0, max(grid.n_bars, 1), int(bars)):
        rows = slice(a, a + int(bars))
        part = Universe(close=grid.close.iloc[rows], present=grid.present.iloc[rows])
        part_src = None if src is None else src.iloc[rows]
        if state is None:
            res = compute_atc(part, cfg, source=part_src, backend=backend, members=members,
                              memory_limit=memory_limit, return_state=True)
        else:
            res = update_atc(state, part, source=part_src, backend=backend, members=members,
                             memory_limit=memory_limit)
        state = res.state
        yield res


def _with_bars(close, cfg, symbols, calendar) -> Universe:
    """`close` as a Universe whose ``present`` marks the bars a whole-history call would use."""
    grid, is_bar = grid_bars(close, cfg, None, symbols, calendar)
    values = to_host(grid.close)
    mask = np.ones(values.shape, dtype=bool) if is_bar is None else to_host(is_bar)
    return Universe(close=pd.DataFrame(values.T, index=grid.index, columns=grid.names),
                    present=pd.DataFrame(mask.T, index=grid.index, columns=grid.names))
