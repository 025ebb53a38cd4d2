"""The market scanner: ATC for a whole universe, filtered and ranked.

:func:`scan` reads a universe (a :class:`~gpu_trend.io.Universe`, a data frame or a path),
drops the symbols that cannot or should not be computed *before* the heavy work, computes ATC in
memory-bounded chunks of symbols, and returns a :class:`ScanResult` with the strongest signals
first.  Every symbol the caller gave ends up either in ``ScanResult.all`` or, with the reason, in
``ScanResult.skipped``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from . import calendars, checks, display
from .backend import resolve_backend
from .config import FAMILIES, ATCConfig
from .engine import ATCInputError, as_config, iter_atc
from .files import write_table
from .io import Universe, read_universe

__all__ = ["scan", "ScanResult", "default_min_bars", "TABLE_COLUMNS"]

#: Columns of :attr:`ScanResult.table` (the index is the symbol).
TABLE_COLUMNS = (
    "rank", "time", "close", "average_signal", "direction", *FAMILIES,
    "bars_since_long", "bars_since_short", "dollar_volume", "bars", "age", "stale",
)

#: Symbols per update_atc call of a warm scan (its outputs are held a chunk at a time).
WARM_CHUNK = 512

#: Without a ``max_age`` filter, a symbol is flagged stale when its last bar is older than the
#: universe's newest by more than this many of its own typical bar intervals.
STALE_INTERVALS = 5


def default_min_bars(config: ATCConfig | None = None) -> int:
    """Bars a symbol needs for all 54 moving averages to be valid on its last bar.

    That is :attr:`ATCConfig.warmup_bars` + 1, and at least ``cutout + 1`` so that the last bar
    has an Average_Signal.

    Parameters
    ----------
    config : ATCConfig, optional

    Returns
    -------
    int
    """
    config = config or ATCConfig()
    return max(config.warmup_bars, config.cutout) + 1


@dataclass
class ScanResult:
    """What :func:`scan` found.

    Attributes
    ----------
    table : pandas.DataFrame
        The hits, ranked: symbols whose last Average_Signal passes the signal filter (and the
        `top` cut), strongest first.  Indexed by ``symbol``; columns :data:`TABLE_COLUMNS`.
    all : pandas.DataFrame
        Every symbol that was computed, ranked the same way, before the signal filter.
    skipped : dict of str to str
        Symbols not computed, with the reason, which starts with its category:
        ``"too short: …"``, ``"invalid prices: …"``, ``"missing data: …"``, ``"no data: …"``,
        ``"min_price: …"``, ``"min_dollar_volume: …"`` or ``"error: …"`` (the engine refused
        the symbol).
    elapsed : dict of str to float
        Seconds spent in ``load``, ``filter``, ``compute``, ``rank`` and ``total``.
    config : ATCConfig
    backend : str
        ``"cpu"`` or ``"gpu"``.
    n_symbols, n_bars : int
        Size of the universe given (before filtering): symbols, and timestamps of all of them.
    long_threshold, short_threshold : float
        The Average_Signal levels a symbol had to reach to be in the long / short view.
    warnings : list of str
        Warnings the engine raised (e.g. a large lambda), once each.
    ignored : list of str
        Files of a data directory that are not tables (``Universe.ignored``).
    state_counts : dict of str to int or None
        A warm scan's symbols by what happened to them: ``updated`` (new bars computed),
        ``fresh`` (not in the state: computed from their first bar) and ``unchanged``.
    """

    table: pd.DataFrame
    all: pd.DataFrame
    skipped: dict[str, str]
    elapsed: dict[str, float]
    config: ATCConfig
    backend: str
    n_symbols: int
    n_bars: int
    long_threshold: float
    short_threshold: float
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    state_counts: dict[str, int] | None = None

    @property
    def long(self) -> pd.DataFrame:
        """Hits with a positive Average_Signal, strongest first."""
        t = self.table
        return t[t["average_signal"] > 0]

    @property
    def short(self) -> pd.DataFrame:
        """Hits with a negative Average_Signal, strongest (most negative) first."""
        t = self.table
        return t[t["average_signal"] < 0]

    @property
    def skipped_frame(self) -> pd.DataFrame:
        """:attr:`skipped` as a table (symbol, category, reason)."""
        rows = [(s, r.split(":", 1)[0], r) for s, r in self.skipped.items()]
        return pd.DataFrame(rows, columns=["symbol", "category", "reason"]).set_index("symbol")

    def __repr__(self) -> str:
        return (f"ScanResult({self.n_symbols} symbols × {self.n_bars} timestamps: "
                f"{len(self.all)} scanned, {len(self.long)} long, {len(self.short)} short, "
                f"{len(self.skipped)} skipped, {self.elapsed.get('total', 0.0):.2f} s on "
                f"{self.backend})")

    def _repr_html_(self) -> str:
        return display.scan_result_html(self)

    def to_file(self, path: str | os.PathLike, *, which: str = "table") -> Path:
        """Write the ranked table to ``.csv``, ``.parquet`` or ``.json``, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Output file; the format follows the suffix (:data:`gpu_trend.files.TABLE_SUFFIXES`).
        which : {"table", "all", "skipped"}
            The hits, every computed symbol, or the skipped symbols with reasons.

        Returns
        -------
        pathlib.Path
        """
        frames = {"table": self.table, "all": self.all, "skipped": self.skipped_frame}
        if which not in frames:
            raise ValueError(f"which must be one of {tuple(frames)}, got {which!r}")
        return write_table(frames[which].reset_index(), path)

    def summary(self, n: int = 10) -> str:
        """A plain-text report: the top `n` longs and shorts, skipped counts and timings."""
        newest = self.all["time"].max() if len(self.all) else None
        when = f"newest bar {_fmt_when(newest)}; " if newest is not None else ""
        lines = [
            f"{self.n_symbols} symbols × {self.n_bars} timestamps: {len(self.all)} scanned, "
            f"{len(self.skipped)} skipped; {when}backend {self.backend}; "
            + "total {total:.2f} s (load {load:.2f}, filter {filter:.2f}, compute {compute:.2f}, "
              "rank {rank:.2f})".format(**{k: self.elapsed.get(k, 0.0) for k in
                                           ("total", "load", "filter", "compute", "rank")}),
        ]
        a = self.all["average_signal"]
        totals = {"long": int(((a >= self.long_threshold) & (a > 0)).sum()),
                  "short": int(((a <= self.short_threshold) & (a < 0)).sum())}
        for title, view, op, level in (("long", self.long, "≥", self.long_threshold),
                                       ("short", self.short, "≤", self.short_threshold)):
            lines.append("")
            # `+ 0.0` prints a threshold of -0.0 (from min_signal=0) as 0.
            lines.append(f"Top {title} (Average_Signal {op} {level + 0.0:g}): "
                         f"{min(n, len(view))} of {totals[title]}")
            if len(view):
                lines.append(_format_view(view.head(n)))
        n_stale = int(self.all["stale"].sum()) if len(self.all) else 0
        if n_stale:
            lines.append("")
            lines.append(f"Stale: {n_stale} scanned symbol(s) whose last bar is more than "
                         f"{STALE_INTERVALS} of their own bar intervals behind the newest "
                         f"(column 'stale'; pass max_age to skip them)")
        if self.skipped:
            lines.append("")
            lines.append("Skipped: " + ", ".join(f"{k} {v}" for k, v in
                                                 self.skip_counts().items()))
        if self.state_counts is not None:
            lines.append("")
            lines.append("State: " + ", ".join(f"{v} {k}" for k, v in self.state_counts.items()))
        if self.ignored:
            shown = ", ".join(self.ignored[:5]) + (", …" if len(self.ignored) > 5 else "")
            lines.append(f"Ignored {len(self.ignored)} file(s) that are not tables: {shown}")
        return "\n".join(lines)

    def skip_counts(self) -> dict[str, int]:
        """How many symbols were skipped for each reason category, most first."""
        categories = pd.Series([r.split(":", 1)[0] for r in self.skipped.values()], dtype=object)
        return {str(k): int(v) for k, v in categories.value_counts().items()}


def _format_view(view: pd.DataFrame) -> str:
    cols = ["time", "close", "average_signal", "direction", *FAMILIES, "bars_since_long",
            "bars_since_short", "dollar_volume", "stale"]
    df = view[cols].copy()
    df.columns = ["time", "close", "signal", "dir", *FAMILIES, "since_long", "since_short",
                  "dollar_vol", "stale"]
    fmt = {
        "time": _fmt_when,
        "close": lambda v: f"{v:.6g}",
        "signal": lambda v: f"{v:+.3f}",
        "dir": lambda v: "" if pd.isna(v) else f"{v:+d}",
        "since_long": lambda v: "" if pd.isna(v) else f"{v:d}",
        "since_short": lambda v: "" if pd.isna(v) else f"{v:d}",
        "dollar_vol": lambda v: "" if pd.isna(v) else f"{v:,.0f}",
        "stale": lambda v: "stale" if v else "",
    }
    for fam in FAMILIES:
        fmt[fam] = lambda v: "" if pd.isna(v) else f"{v:+.2f}"
    return df.to_string(formatters=fmt, na_rep="")


# --------------------------------------------------------------------------------------------
# the scan
# --------------------------------------------------------------------------------------------
@dataclass
class _Packed:
    """The universe's close (and volume) with every symbol's own bars packed to the right.

    ``positions`` maps packed bars to rows of ``index`` (:mod:`gpu_trend.calendars`); None on
    the union calendar, where bar t of every symbol is ``index[t]``.
    """

    close: np.ndarray
    volume: np.ndarray | None
    positions: np.ndarray | None
    index: pd.Index

    @classmethod
    def of(cls, uni: Universe, cfg: ATCConfig, calendar_: str) -> "_Packed":
        close = np.ascontiguousarray(uni.close.to_numpy(dtype=float, na_value=np.nan).T)
        volume = (None if uni.volume is None else
                  np.ascontiguousarray(uni.volume.to_numpy(dtype=float, na_value=np.nan).T))
        is_bar = calendars.bar_cells(~np.isnan(close), uni.bar_mask().T,
                                     nan_policy=cfg.nan_policy, calendar=calendar_)
        if is_bar is None:
            return cls(close, volume, None, uni.index)
        arrays, positions = _right_align(is_bar, close, *(() if volume is None else (volume,)))
        return cls(arrays[0], arrays[1] if volume is not None else None, positions, uni.index)

    def last_times(self) -> list:
        return calendars.last_times(self.index, self.positions, self.close.shape[0],
                                    ~np.isnan(self.close).all(axis=1))


def _right_align(is_bar: np.ndarray, *arrays: np.ndarray) -> tuple[list, np.ndarray]:
    """:func:`gpu_trend.calendars.right_align`, moving whole runs instead of single cells.

    Most symbols' bars are one run of the grid's columns (listed later, or ending early, with
    no other symbol's time in between): such a row moves as one slice, and where every row's
    run already ends at the last column and no other cell holds a value, nothing moves and
    the arrays come back as they are.  Rows with gaps go through ``right_align``.
    """
    n_s, n_t = is_bar.shape
    if not is_bar.size:
        return calendars.right_align(is_bar, *arrays)
    counts = is_bar.sum(axis=1)
    width = int(counts.max())
    first = is_bar.argmax(axis=1)
    runs = is_bar[:, :1].sum(axis=1) + (is_bar[:, 1:] & ~is_bar[:, :-1]).sum(axis=1)
    one = runs <= 1
    pad = width - counts  # padding columns before each row's first bar
    shift = np.where(counts > 0, first - pad, 0)  # input column of a packed column, minus it
    col = np.arange(width)
    positions = np.where(col >= pad[:, None], col + shift[:, None], -1)
    if one.all() and width == n_t and not shift.any() and not any(
            (~np.isnan(a) & ~is_bar).any() for a in arrays):
        return list(arrays), positions
    gaps = np.flatnonzero(~one)
    aligned = []
    for arr in arrays:
        out = np.full((n_s, width), np.nan)
        for s in np.flatnonzero(one & (counts > 0)):
            out[s, pad[s]:] = arr[s, first[s]:first[s] + counts[s]]
        aligned.append(out)
    if len(gaps):
        rest, rest_positions = calendars.right_align(is_bar[gaps], *(a[gaps] for a in arrays))
        tail = rest_positions.shape[1]
        for out, part in zip(aligned, rest):
            out[gaps, width - tail:] = part
        positions[gaps] = -1
        positions[gaps, width - tail:] = rest_positions
    return aligned, positions


def _prefilter(
    uni: Universe, packed: _Packed, cfg: ATCConfig, *, min_bars: int, min_price: float | None,
    min_dollar_volume: float | None, dollar_volume_bars: int, max_age: Any,
    count_bars: Any = None,
) -> tuple[np.ndarray, dict[str, str], dict[str, Any]]:
    """Decide which symbols to compute, from the engine's own input check and cheap filters.

    Returns the boolean keep-mask over ``uni.symbols``, the skip reasons, and per-symbol columns
    (bars, last close, dollar volume, age, stale) the table reports.
    """
    close = packed.close
    n_s, n_t = close.shape
    found = checks.check_symbols(close, nan_policy=cfg.nan_policy)
    bars = (n_t - found.start).astype(np.int64)
    if count_bars is not None:  # a warm scan counts the state's bars too
        bars = count_bars(bars)
    last_close = _last_valid(close)
    dollar = _dollar_volume(close, packed.volume, dollar_volume_bars)
    age, stale, too_old = _staleness(packed, max_age)

    skipped: dict[str, str] = {}
    for j, sym in enumerate(uni.symbols):
        own = None if packed.positions is None else packed.positions[j]
        if found.kind[j] != checks.OK:
            reason = checks.reason(found, j, packed.index, positions=own)
        elif too_old[j] is not None:
            reason = too_old[j]
        elif bars[j] < min_bars:
            reason = f"too short: {int(bars[j])} bars < min_bars {min_bars}"
        elif min_price is not None and not last_close[j] >= min_price:
            reason = f"min_price: last close {last_close[j]:.6g} < {min_price:g}"
        elif min_dollar_volume is not None and not dollar[j] >= min_dollar_volume:
            what = ("no volume in the last bars" if math.isnan(dollar[j])
                    else f"{dollar[j]:,.0f}")
            reason = (f"min_dollar_volume: mean close×volume over the last {dollar_volume_bars} "
                      f"bars {what} < {min_dollar_volume:,.0f}")
        else:
            continue
        skipped[sym] = reason
    keep = np.array([s not in skipped for s in uni.symbols], dtype=bool)
    extra = {"bars": bars, "close": last_close, "dollar_volume": dollar, "age": age,
             "stale": stale, "time": packed.last_times()}
    return keep, skipped, extra


def _last_valid(close: np.ndarray) -> np.ndarray:
    """Each row's last non-NaN value (NaN for a row without any)."""
    valid = ~np.isnan(close)
    if not close.shape[1]:
        return np.full(close.shape[0], np.nan)
    last = close.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    return np.where(valid.any(axis=1), close[np.arange(close.shape[0]), last], np.nan)


class _WarmStart:
    """A scan that continues a saved state: only bars after each symbol's last one run."""

    def __init__(self, uni: Universe, cfg: ATCConfig, path, calendar: str):
        from .state import ATCState

        if calendar != "own":
            raise ValueError("a warm scan (state=) keeps each symbol on its own bars: it needs "
                             "calendar='own'")
        self.path, self.uni, self.cfg = Path(path), uni, cfg
        self.state = (ATCState.load(self.path, config=cfg) if self.path.exists()
                      else ATCState.empty(cfg))
        rows = {s: i for i, s in enumerate(self.state.symbols)}
        self.idx = np.array([rows.get(s, -1) for s in uni.symbols], dtype=np.int64)
        # Bars of each symbol in the data after its saved last bar: the ones to compute.
        mask = calendars.bar_cells(uni.close.notna().to_numpy().T, uni.bar_mask().T,
                                   nan_policy=cfg.nan_policy, calendar=calendar).T.copy()
        for j, i in enumerate(self.idx):
            if i >= 0 and self.state.last_time[i] is not None:
                mask[:, j] &= np.asarray(uni.index > self.state.last_time[i])
        self.new = mask
        self.saved = np.zeros(len(self.idx), dtype=np.int64)
        self.saved[self.idx >= 0] = np.asarray(self.state.bars)[self.idx[self.idx >= 0]]
        self.counts: dict[str, int] = {}

    def total_bars(self, in_data: np.ndarray) -> np.ndarray:
        """Each symbol's bars: the state's plus the new ones where it is listed there, else
        the `in_data` count (the data may hold only the new bars)."""
        return np.where(self.saved > 0, self.saved + self.new.sum(axis=0), in_data)

    def run(self, keep: np.ndarray, *, backend: str, memory_limit: Any,
            chunk_symbols: int | None = None) -> pd.DataFrame:
        """Update the kept symbols, save the state, and return their latest() rows.

        Symbols go through :func:`~gpu_trend.update_atc` in chunks (default
        :data:`WARM_CHUNK`), so that a first run, which computes whole histories, holds one
        chunk's outputs at a time.
        """
        from .live import update_atc

        cols = [s for s, k in zip(self.uni.symbols, keep) if k]
        sel = np.flatnonzero(keep)
        state, updated = self.state, set()
        size = int(chunk_symbols or WARM_CHUNK)
        for a in range(0, len(cols), size):
            part = cols[a:a + size]
            update = Universe(close=self.uni.close[part],
                              present=pd.DataFrame(self.new[:, sel[a:a + size]],
                                                   index=self.uni.index, columns=part))
            res = update_atc(state, update, backend=backend, memory_limit=memory_limit)
            state = res.state
            updated |= set(res.symbols)
        state = state.to_host()
        state.save(self.path)
        known = set(self.state.symbols)
        self.counts = {"updated": len(updated & known), "fresh": len(updated - known),
                       "unchanged": len([c for c in cols if c not in updated])}
        return _rows_from_state(state, cols)


def _rows_from_state(state, symbols: list) -> pd.DataFrame:
    """latest()-shaped rows of `symbols` from a state's last values."""
    from .results import latest_table

    rows = {s: i for i, s in enumerate(state.symbols)}
    i = np.array([rows[s] for s in symbols], dtype=np.int64)
    return latest_table(symbols, [state.last_time[k] for k in i], state.last[i],
                        state.since[i])


def _dollar_volume(close: np.ndarray, volume: np.ndarray | None, n_last: int) -> np.ndarray:
    """Mean close × volume over each symbol's last `n_last` bars (NaN without volume)."""
    n_s, n_t = close.shape
    if volume is None or not n_t:
        return np.full(n_s, np.nan)
    tail = slice(max(0, n_t - n_last), n_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
        return np.nanmean(close[:, tail] * volume[:, tail], axis=1)


def _staleness(packed: _Packed, max_age: Any) -> tuple:
    """Each symbol's age (the universe's newest last bar minus its own), stale flag, and the
    skip reason `max_age` gives it (None if it passes).

    ``max_age``: None, a :class:`pandas.Timedelta` (or a string it parses, e.g. "30D"), or an
    int: how many of the universe's timestamps may come after the symbol's last bar.
    """
    index, positions = packed.index, packed.positions
    n_s = packed.close.shape[0]
    last_pos = (np.full(n_s, len(index) - 1) if positions is None
                else positions[:, -1] if positions.shape[1] else np.full(n_s, -1))
    has = last_pos >= 0
    newest = int(last_pos[has].max()) if has.any() else -1
    values = index.to_numpy()
    numeric_time = isinstance(index, pd.DatetimeIndex) or pd.api.types.is_numeric_dtype(index)
    if newest < 0 or not numeric_time:
        return (pd.Series([None] * n_s, dtype=object).to_numpy(), np.zeros(n_s, dtype=bool),
                [None] * n_s)
    age = pd.Series(values[newest] - values[np.where(has, last_pos, newest)]).where(has)
    interval = _typical_interval(values, positions, n_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stale = np.asarray((age > interval * STALE_INTERVALS).fillna(False), dtype=bool)
    reasons = [None] * n_s
    if max_age is not None:
        if isinstance(max_age, (int, np.integer)) and not isinstance(max_age, bool):
            behind = newest - last_pos
            over, limit = behind > int(max_age), f"{int(max_age)} bars"
            what = [f"{b} bars of the universe" for b in behind]
        else:
            limit_td = pd.Timedelta(max_age)
            over, limit = np.asarray((age > limit_td).fillna(False)), _fmt_age(limit_td)
            what = [_fmt_age(a) for a in age]
        for j in np.flatnonzero(over & has):
            reasons[j] = (f"stale: last bar {_fmt_when(values[last_pos[j]])}, {what[j]} before "
                          f"{_fmt_when(values[newest])} (max_age {limit})")
    return age.to_numpy(), stale, reasons


def _typical_interval(values: np.ndarray, positions: np.ndarray | None, n_s: int) -> pd.Series:
    """Median spacing of each symbol's last (up to) 21 bars: its own bar interval."""
    if positions is None:
        rows = np.tile(np.arange(max(len(values) - 21, 0), len(values)), (n_s, 1))
    else:
        rows = positions[:, -21:]
    times = pd.DataFrame(values[np.maximum(rows, 0)]).where(rows >= 0)
    return times.diff(axis=1).median(axis=1)


def _fmt_when(t: Any) -> str:
    """A timestamp as a date when it has no time of day."""
    t = pd.Timestamp(t) if isinstance(t, np.datetime64) else t
    if isinstance(t, pd.Timestamp) and t == t.normalize():
        return str(t.date())
    return str(t)


def _fmt_age(age: Any) -> str:
    """``"11.8 years"``, ``"45 days"``, ``"6 hours"``; numbers as they are (bar-number times)."""
    if not isinstance(age, pd.Timedelta):
        return "" if age is None or age != age else f"{age:g}"
    days = age / pd.Timedelta(days=1)
    if days >= 365.25:
        return f"{days / 365.25:.1f} years"
    if days >= 1:
        return f"{days:.0f} days"
    return f"{age / pd.Timedelta(hours=1):.0f} hours"


@contextmanager
def _recorded(caught: list):
    """Collect the engine's warnings into `caught` instead of showing them once per chunk."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        yield
    caught.extend(w)


def _latest_rows(
    close: np.ndarray, names: list, cfg: ATCConfig, *, backend: str,
    chunk_symbols: int | None, memory_limit: Any, skipped: dict[str, str], caught: list,
    bar: Any,
) -> Iterator[pd.DataFrame]:
    """Yield ``latest()`` of each chunk :func:`gpu_trend.iter_atc` computes on `close`.

    `close` holds the symbols' packed own bars (symbols × bars, :class:`_Packed`). On the GPU
    each chunk is uploaded and its results stay on the device: only the ``latest()`` table
    comes back. A symbol the engine refuses (the prefilter runs the same check, so this is a
    safety net) goes to `skipped`, and the scan restarts without it: the engine checks the
    whole universe before its first chunk, so nothing has been computed yet.
    """
    on_device = resolve_backend(backend) == "gpu"
    # The bars are packed already: with "skip" nothing is left to skip, and the engine must
    # not pack them again (it would, to the same values, at a cost).
    if cfg.nan_policy == "skip":
        cfg = dataclasses.replace(cfg, nan_policy="raise")
    while len(names):
        # Only each chunk's latest() rows are kept: one set of outputs serves every chunk.
        chunks = iter_atc(close, cfg, backend=backend, chunk_symbols=chunk_symbols,
                          memory_limit=memory_limit, on_device=on_device, symbols=names,
                          progress=False, reuse_outputs=True)  # the scan draws its own bar
        try:
            with _recorded(caught):
                res = next(chunks, None)
        except ATCInputError as exc:
            if exc.symbol is None or str(exc.symbol) not in names:
                raise
            skipped[str(exc.symbol)] = f"error: {exc}"
            row = names.index(str(exc.symbol))
            close, names = np.delete(close, row, axis=0), names[:row] + names[row + 1:]
            bar.update(1)
            continue
        while res is not None:
            bar.update(res.n_symbols)
            yield res.latest()
            with _recorded(caught):
                res = next(chunks, None)
        return


def _rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by |Average_Signal|, then the mean family signal in the same direction, then the
    bars since the last event in that direction (fewer first), then the symbol."""
    if frame.empty:
        out = frame.copy()
        out.insert(0, "rank", pd.Series(dtype="int64"))
        return out
    a = frame["average_signal"].to_numpy(dtype=float)
    fam = frame[list(FAMILIES)].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agree = np.sign(a) * np.nanmean(fam, axis=1)
    # Many symbols sit exactly at ±1 (all six families agree): among those, the freshest
    # event in the signal's direction is the most actionable.
    since = np.where(a > 0, frame["bars_since_long"].to_numpy(dtype=float, na_value=np.nan),
                     frame["bars_since_short"].to_numpy(dtype=float, na_value=np.nan))
    names = np.asarray([str(s) for s in frame.index], dtype=str)
    order = np.lexsort((
        names,
        np.nan_to_num(since, nan=np.inf),
        -np.nan_to_num(agree, nan=-np.inf),
        -np.nan_to_num(np.abs(a), nan=-1.0),
    ))
    out = frame.iloc[order].copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1, dtype=np.int64))
    return out


def scan(
    universe: Any,
    config: ATCConfig | Mapping[str, Any] | None = None,
    *,
    backend: str = "auto",
    min_bars: int | None = None,
    min_price: float | None = None,
    min_dollar_volume: float | None = None,
    min_signal: float | None = None,
    top: int | None = None,
    memory_limit: int | str | None = None,
    progress: bool | None = None,
    chunk_symbols: int | None = None,
    dollar_volume_bars: int = 20,
    max_age: Any = None,
    calendar: str = "own",
    state: str | os.PathLike | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> ScanResult:
    """Compute ATC over a universe and rank the symbols by signal strength.

    Parameters
    ----------
    universe : Universe, pandas.DataFrame, str or os.PathLike
        A Universe, a wide close table (time × symbols) or long table, or a file / directory
        that :func:`gpu_trend.io.read_universe` reads.
    config : ATCConfig or mapping, optional
        Indicator parameters (TradingView defaults if omitted).
    backend : {"auto", "cpu", "gpu"}
        Where to compute.
    min_bars : int, optional
        Symbols with fewer bars of history are skipped.  Default: :func:`default_min_bars`
        (all 54 moving averages valid on the last bar — 67 bars with the defaults).
    min_price : float, optional
        Skip symbols whose last close is below this.
    min_dollar_volume : float, optional
        Skip symbols whose mean close × volume over the last `dollar_volume_bars` bars is
        below this (needs volume data).
    min_signal : float, optional
        Keep symbols with Average_Signal ≥ `min_signal` (long) or ≤ −`min_signal` (short) in
        :attr:`ScanResult.table`.  Default: the config's long / short thresholds.
    top : int, optional
        Keep at most `top` longs and `top` shorts.
    memory_limit : int or str, optional
        Memory the compute may use at once, in bytes or as ``"4GiB"`` / ``"50%"``; sets the
        chunk size and is passed on to the engine.
    progress : bool, optional
        Show a progress bar (``tqdm.auto``: a widget in a notebook).  Default: in a Jupyter
        notebook or when stderr is a terminal, never in a script or pipe.  False: never.
    chunk_symbols : int, optional
        Symbols per chunk (overrides the size derived from `memory_limit`; for a warm scan,
        symbols per :func:`~gpu_trend.update_atc` call, default :data:`WARM_CHUNK`).
    dollar_volume_bars : int, default 20
        Bars averaged for the dollar-volume column and filter.
    max_age : pandas.Timedelta, str or int, optional
        Skip symbols whose last bar is older than the universe's newest by more than this: a
        time span (``pd.Timedelta("30D")`` or ``"30D"``) or a count of the universe's
        timestamps after the symbol's last bar. Without it, such symbols are computed and
        flagged in the ``stale`` column (last bar more than :data:`STALE_INTERVALS` of their
        own bar intervals behind the newest).
    calendar : {"own", "union"}, default "own"
        ``"own"``: every symbol is computed on its own bars (its own timestamps; a time that
        only other symbols have is not one of its bars). ``"union"``: on the common grid of
        all timestamps, where another symbol's time is a missing close (``nan_policy``).
    state : str or os.PathLike, optional
        A warm scan: the state file (:class:`~gpu_trend.state.ATCState`) of earlier scans.
        Only each symbol's bars after its saved last bar are computed (the data may hold the
        whole history or only the new bars), symbols the state does not know start fresh,
        and the file is then rewritten. Without the file, everything is computed and it is
        written. The table equals a cold scan's of the whole history (with a file of new
        bars only, ``dollar_volume`` is over the bars the file holds).
    read_options : mapping, optional
        Keyword arguments for :func:`gpu_trend.io.read_universe` (``format``, ``columns``…)
        when `universe` is a path or a frame.

    Returns
    -------
    ScanResult
        Symbols are ranked by |Average_Signal| on the last bar; ties (many symbols sit exactly
        at ±1, all six families agreeing) are broken by the mean family signal in the same
        direction, then by the bars since the last event in that direction (fresher first),
        then by name.

    Raises
    ------
    ValueError
        Invalid arguments (e.g. `min_dollar_volume` without volume data).
    gpu_trend.io.DataError
        The data is structurally wrong (duplicate or out-of-order rows).
    """
    t_start = time.perf_counter()
    cfg = as_config(config)
    min_bars = _check_scan_args(cfg, top=top, min_signal=min_signal, min_bars=min_bars,
                                dollar_volume_bars=dollar_volume_bars, max_age=max_age,
                                calendar=calendar)
    # The scan needs close and volume only: not loading OHLC saves a third of the read.
    opts = {"fields": ("close", "volume"), **dict(read_options or {})}
    uni = universe if isinstance(universe, Universe) else read_universe(universe, **opts)
    if min_dollar_volume is not None and uni.volume is None:
        raise ValueError("min_dollar_volume needs volume data, and this universe has none")
    t_load = time.perf_counter()

    packed = _Packed.of(uni, cfg, calendar)
    warm = None if state is None else _WarmStart(uni, cfg, state, calendar)
    keep, skipped, extra = _prefilter(
        uni, packed, cfg, min_bars=min_bars, min_price=min_price,
        min_dollar_volume=min_dollar_volume, dollar_volume_bars=int(dollar_volume_bars),
        max_age=max_age, count_bars=None if warm is None else warm.total_bars)
    skipped = {**uni.rejected, **skipped}  # the reader's reasons use the same wording
    t_filter = time.perf_counter()

    caught: list = []
    names = [s for s, k in zip(uni.symbols, keep) if k]
    if warm is None:
        # At most one copy between the reader and the kernels: this selection, or where all
        # are kept, the engine's of a read-only array (one the reader's frames share).
        close = packed.close if keep.all() else packed.close[keep]
        latest = _compute_latest(close, names, cfg, backend=backend,
                                 chunk_symbols=chunk_symbols, memory_limit=memory_limit,
                                 skipped=skipped, caught=caught, progress=progress)
    else:
        with _recorded(caught):
            latest = warm.run(keep, backend=backend, memory_limit=memory_limit,
                              chunk_symbols=chunk_symbols)
    t_compute = time.perf_counter()

    ranked = _rank(_with_columns(latest, uni, extra))[list(TABLE_COLUMNS)]
    lo = cfg.long_threshold if min_signal is None else float(min_signal)
    hi = cfg.short_threshold if min_signal is None else -float(min_signal)
    table = _hits(ranked, lo, hi, top)
    t_end = time.perf_counter()

    return ScanResult(
        table=table,
        all=ranked,
        skipped=skipped,
        elapsed={"load": t_load - t_start, "filter": t_filter - t_load,
                 "compute": t_compute - t_filter, "rank": t_end - t_compute,
                 "total": t_end - t_start},
        config=cfg,
        backend=resolve_backend(backend),
        n_symbols=uni.n_symbols + len(uni.rejected),
        n_bars=uni.n_bars,
        long_threshold=lo,
        short_threshold=hi,
        warnings=_warn_once(caught),
        ignored=list(uni.ignored),
        state_counts=None if warm is None else warm.counts,
    )


def _check_scan_args(cfg: ATCConfig, *, top, min_signal, min_bars, dollar_volume_bars, max_age,
                     calendar) -> int:
    """Validate the scan's own arguments; returns `min_bars` with its default filled in."""
    calendars.check_calendar(calendar, cfg.nan_policy)
    if max_age is not None and not (isinstance(max_age, (int, np.integer))
                                    and not isinstance(max_age, bool) and max_age >= 0):
        try:
            if pd.Timedelta(max_age) < pd.Timedelta(0):
                raise ValueError
        except (ValueError, TypeError):
            raise ValueError(f"max_age must be a time span (e.g. '30D') or a number of bars "
                             f">= 0, got {max_age!r}") from None
    if top is not None and int(top) < 1:
        raise ValueError(f"top must be >= 1, got {top!r}")
    if min_signal is not None and (not math.isfinite(min_signal) or min_signal < 0):
        raise ValueError(f"min_signal must be a finite number >= 0, got {min_signal!r}")
    if dollar_volume_bars < 1:
        raise ValueError(f"dollar_volume_bars must be >= 1, got {dollar_volume_bars!r}")
    if min_bars is None:
        return default_min_bars(cfg)
    if int(min_bars) < 1:
        raise ValueError(f"min_bars must be >= 1, got {min_bars!r}")
    return int(min_bars)


def _compute_latest(close: np.ndarray, names: list, cfg: ATCConfig, *, progress,
                    **kwargs) -> pd.DataFrame:
    """The engine's ``latest()`` rows of the symbols `names` (rows of `close`), with a progress
    bar."""
    with display.progress_bar(len(names), "ATC scan", progress) as bar:
        rows = list(_latest_rows(close, names, cfg, bar=bar, **kwargs))
    if rows:
        return pd.concat(rows)
    return pd.DataFrame(columns=["time", "average_signal", "direction", *FAMILIES,
                                 "bars_since_long", "bars_since_short"],
                        index=pd.Index([], name="symbol"))


def _with_columns(latest: pd.DataFrame, uni: Universe, extra: dict) -> pd.DataFrame:
    """`latest` with the prefilter's per-symbol columns: each symbol's own last time, close,
    dollar volume, bars, age and stale flag."""
    pos = pd.Series(np.arange(uni.n_symbols), index=uni.symbols)
    sel = pos.reindex(latest.index).to_numpy()
    latest = latest.copy()
    for name in ("time", "close", "dollar_volume", "bars", "age", "stale"):
        latest[name] = np.asarray(extra[name], dtype=object if name == "time" else None)[sel]
    latest.index.name = "symbol"
    latest["time"] = pd.Index(latest["time"].tolist()) if len(latest) else latest["time"]
    return latest.astype({"bars": "int64", "stale": bool})


def _hits(ranked: pd.DataFrame, lo: float, hi: float, top: int | None) -> pd.DataFrame:
    """The ranked symbols at or beyond the long (`lo`) or short (`hi`) level, `top` of each."""
    a = ranked["average_signal"]
    if top is None:
        return ranked[(a >= lo) | (a <= hi)].copy()
    longs = ranked[(a >= lo) & (a > 0)].head(int(top))
    shorts = ranked[(a <= hi) & (a < 0)].head(int(top))
    return ranked.loc[ranked.index.isin(longs.index) | ranked.index.isin(shorts.index)].copy()


def _warn_once(caught: list) -> list:
    """Pass each distinct engine warning on once (every chunk repeats them); their messages."""
    seen: dict[str, type] = {}
    for w in caught:
        seen.setdefault(str(w.message), w.category)
    for msg, category in seen.items():
        warnings.warn(msg, category, stacklevel=3)
    return list(seen)
