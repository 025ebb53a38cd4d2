"""Reading a market universe from files or data frames.

Every reader returns a :class:`Universe`: one wide ``time × symbols`` table per field, aligned on
the union of all timestamps, and, for long tables and per-symbol files, a table of which cells
are real rows (:attr:`Universe.present`), so each symbol keeps its own calendar.

The accepted shapes (:data:`SHAPES`) are a long table, a wide table, one symbol's OHLCV table
(its symbol named after the file) and a directory of such files.  pandas' default index column
(a blank or ``Unnamed: 0`` header, what ``DataFrame.to_csv`` writes) holds the time when no
column is named as one.

Three rules keep the data honest:

* Structural problems — a duplicate ``(symbol, time)`` row, time going backwards inside a symbol,
  a missing symbol or time — raise :class:`DataError`, whose message names the file, the symbol
  and the time, because guessing which of two rows is right would silently change the results.
* A symbol whose prices are unusable (non-positive, infinite, non-numeric, or no close at all) is
  removed from the tables and listed in :attr:`Universe.rejected` with the reason, so a whole
  universe is not lost to one bad symbol and no symbol disappears without a trace.
* In a directory, a file that cannot be read or has the wrong structure costs its own symbol
  only: it goes to :attr:`Universe.rejected` as ``"bad file: …"``, with a message naming it;
  a file of another type is listed in :attr:`Universe.ignored`.

Parquet goes through pyarrow; CSV through pyarrow's CSV reader (much faster than pandas' own on
millions of rows).  A long file's table then goes from pyarrow straight into the symbol-major
arrays the engine computes on, without a pandas frame in between (:func:`_long_from_arrow`);
anything unusual in it takes the pandas path, which holds the rules and their messages.  cuDF
frames are accepted and read with ``engine="cudf"``; cuDF is imported only when used.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from . import checks, display
from .arrays import is_cudf
from .calendars import span_mask
from .files import TABLE_SUFFIXES, table_kind, write_table

__all__ = [
    "DataError",
    "Universe",
    "FIELDS",
    "SHAPES",
    "LEVEL_SEPARATOR",
    "read_universe",
    "from_frame",
    "write_universe",
]

#: The per-bar fields a long table may carry; only ``close`` is required.
FIELDS = ("open", "high", "low", "close", "volume")

# Lower-case names recognised when the caller gives no explicit mapping, in priority order.
_ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol", "ticker", "asset", "instrument", "code"),
    "time": ("time", "timestamp", "datetime", "date", "opentime", "open_time", "ts"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    # Adjusted close stands in only where there is no plain close (plain close comes first).
    "close": ("close", "c", "price", "adj close", "adj_close", "adjclose", "adjusted_close",
              "adjusted close"),
    "volume": ("volume", "vol", "v"),
}

# The names that make a table without a symbol column one symbol's bars.  The one-letter
# aliases are left out: C, V, O, L and H are real tickers, and a wide table may have them.
_BAR_NAMES = frozenset(a for f in FIELDS for a in _ALIASES[f] if len(a) > 1)
_CLOSE_NAMES = frozenset(a for a in _ALIASES["close"] if len(a) > 1)
# What yfinance's Ticker.history() writes next to a symbol's bars: not a field, not a symbol.
_VENDOR_EXTRAS = frozenset({"dividends", "stock splits", "capital gains"})

#: The table shapes :func:`read_universe` accepts, as its shape errors list them.
SHAPES = (
    "long (symbol, time, close[, open, high, low, volume]); "
    "wide (time + one close column per symbol); "
    "single-symbol OHLCV (time, open, high, low, close, volume; the symbol is the file name); "
    "a directory of single-symbol files"
)
_SHAPES_HINT = f"; accepted shapes: {SHAPES}"

# read_universe reads every table format that files.py writes except JSON.
_FILE_SUFFIXES = tuple(s for s, kind in TABLE_SUFFIXES.items() if kind != "json")


class DataError(ValueError):
    """The input data is structurally wrong (duplicates, time order, missing columns).

    Attributes
    ----------
    symbol : str or None
        The symbol the problem was found in, when there is one.
    time : object or None
        The timestamp of the offending row, when there is one.
    """

    def __init__(self, message: str, *, symbol: str | None = None, time: Any = None):
        super().__init__(message)
        self.symbol = symbol
        self.time = time


@dataclass
class Universe:
    """A market universe: wide ``time × symbols`` tables sharing one time index.

    The shared index is the union of the symbols' calendars.  Which of its cells are bars of
    a symbol is :attr:`present` (see :meth:`bar_mask`): in a long table or a per-symbol file, a
    row that exists is a bar even when its close is empty (a hole in that symbol's own history,
    for the engine's ``nan_policy``), and a time at which the symbol has no row is not one of its
    bars.  A wide table cannot tell the two apart — an empty cell may be either — so its readers
    leave `present` None, which means a symbol's bars run from its first close to its last, and
    empty cells between are holes (``nan_policy="skip"`` makes them non-bars instead).

    Parameters
    ----------
    close : pandas.DataFrame
        Close prices, index = time (sorted, unique, named ``"time"``), one column per symbol.
        Leading NaNs mean the symbol was listed later.
    volume, open, high, low : pandas.DataFrame or None
        Optional tables with the same index and columns as `close`.
    rejected : dict of str to str
        Symbols removed because their data failed validation, with the reason.
    source : str or None
        Where the data came from, for messages.
    present : pandas.DataFrame or None
        Bool table like `close`: True where the symbol has a row (a bar) at that time.  Cells it
        does not cover are False.  None: see :meth:`bar_mask`.
    ignored : list of str
        Names of the files of a data directory that were not read because they are no table
        file read_universe reads (``notes.txt``, ``.DS_Store`` …), sorted.
    """

    close: pd.DataFrame
    volume: pd.DataFrame | None = None
    open: pd.DataFrame | None = None
    high: pd.DataFrame | None = None
    low: pd.DataFrame | None = None
    rejected: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    present: pd.DataFrame | None = None
    ignored: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.close, pd.DataFrame):
            raise TypeError("Universe.close must be a pandas DataFrame (time × symbols)")
        # Shallow copies: renaming columns must not touch the caller's frames.
        self.close = self.close.copy(deep=False)
        self.close.columns = pd.Index([str(c) for c in self.close.columns], name="symbol")
        for name in ("volume", "open", "high", "low", "present"):
            frame = getattr(self, name)
            if frame is None:
                continue
            frame = frame.copy(deep=False)
            frame.columns = pd.Index([str(c) for c in frame.columns], name="symbol")
            # Other tables follow the close table's shape: a field without a close is useless,
            # and a cell `present` does not cover is a time without a row.
            if name == "present":
                frame = frame.astype(bool)
            setattr(self, name, frame.reindex(index=self.close.index, columns=self.close.columns,
                                              fill_value=False if name == "present" else np.nan))

    # -- shape -----------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """The symbols, in column order."""
        return [str(c) for c in self.close.columns.tolist()]  # tolist: 6× faster than iterating

    @property
    def index(self) -> pd.Index:
        """The shared time index."""
        return self.close.index

    @property
    def n_symbols(self) -> int:
        return self.close.shape[1]

    @property
    def n_bars(self) -> int:
        return self.close.shape[0]

    def __len__(self) -> int:
        return self.n_symbols

    def __repr__(self) -> str:
        idx = self.close.index
        span = f", {idx[0]} … {idx[-1]}" if len(idx) else ""
        extra = [n for n in ("open", "high", "low", "volume") if getattr(self, n) is not None]
        ignored = f", ignored {_short_list(self.ignored, 3)}" if self.ignored else ""
        return (
            f"Universe({self.n_symbols} symbols × {self.n_bars} bars{span}"
            f"{', ' + '/'.join(extra) if extra else ''}, {len(self.rejected)} rejected{ignored})"
        )

    def _repr_html_(self) -> str:
        return display.universe_html(self)

    def bar_mask(self) -> np.ndarray:
        """Which cells are bars of their symbol.

        Returns
        -------
        numpy.ndarray of bool, shape (n_bars, n_symbols)
            :attr:`present` where the reader recorded it; otherwise each symbol's cells from
            its first close to its last (:func:`gpu_trend.calendars.span_mask`): leading empty
            cells mean it was listed later, trailing ones that its data ended, and those
            between are holes in its history, for ``nan_policy`` (``"skip"`` drops them).
        """
        if self.present is not None:
            return self.present.to_numpy(dtype=bool)
        return span_mask(self.close.notna().to_numpy().T).T

    # -- derived ---------------------------------------------------------------------------
    def select(self, symbols: Iterable[str]) -> "Universe":
        """Return a universe restricted to `symbols` (in that order).

        Rows that are no bar (:meth:`bar_mask`) of any kept symbol are dropped, so a subset's
        index is its own symbols' calendars.  Without :attr:`present` only the leading block
        goes: there an empty cell may be a hole the engine's ``nan_policy`` must see.  Asking
        for a rejected symbol keeps it in the subset's :attr:`rejected`, with its reason.
        """
        wanted = [str(s) for s in symbols]
        rejected = {s: self.rejected[s] for s in wanted if s in self.rejected}
        symbols = [s for s in wanted if s not in rejected]
        missing = [s for s in symbols if s not in self.close.columns]
        if missing:
            raise KeyError(f"unknown symbol(s): {', '.join(missing[:5])}")
        cols = self.close.columns.get_indexer(symbols)
        rows = self.bar_mask()[:, cols].any(axis=1)
        if self.present is None:
            rows = np.logical_or.accumulate(rows)
        if not rows.any():
            rows[:] = True

        def sub(frame):
            return None if frame is None else frame[symbols].iloc[rows]

        return Universe(
            close=sub(self.close),
            volume=sub(self.volume),
            open=sub(self.open),
            high=sub(self.high),
            low=sub(self.low),
            rejected=rejected,
            source=self.source,
            present=sub(self.present),
            ignored=list(self.ignored),
        )

    def to_long(self) -> pd.DataFrame:
        """Return the universe as a long table (symbol, time, open, high, low, close, volume).

        One row per bar (:meth:`bar_mask`): with :attr:`present`, exactly the rows read, those
        with an empty close included; without, every cell that has a close.
        """
        frames = {"close": self.close}
        for name in ("open", "high", "low", "volume"):
            if getattr(self, name) is not None:
                frames[name] = getattr(self, name)
        t_idx, s_idx = np.nonzero(self.bar_mask())
        # Symbol-major order: that is how most per-symbol files are laid out.
        order = np.lexsort((t_idx, s_idx))
        t_idx, s_idx = t_idx[order], s_idx[order]
        out = {
            "symbol": np.asarray(self.symbols, dtype=object)[s_idx],
            "time": self.close.index.take(t_idx),
        }
        for name in ("open", "high", "low", "close", "volume"):
            if name in frames:
                out[name] = frames[name].to_numpy(dtype=float)[t_idx, s_idx]
        return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _resolve_columns(
    available: Iterable[Any], columns: Mapping[str, str] | None, wanted: Iterable[str],
    source: str | None = None,
) -> dict[str, str]:
    """Map canonical field names to the actual column names present.

    Explicit entries of `columns` win and must exist (else a DataError naming `source`);
    otherwise the first alias found (case-insensitive) is used.
    """
    available = list(available)
    by_lower: dict[str, Any] = {}
    for c in available:
        by_lower.setdefault(str(c).strip().lower(), c)
    columns = dict(columns or {})
    unknown = set(columns) - set(_ALIASES)
    if unknown:
        raise ValueError(
            f"unknown field name(s) in columns mapping: {', '.join(sorted(unknown))}; "
            f"known fields are {', '.join(_ALIASES)}"
        )
    out: dict[str, str] = {}
    for name in wanted:
        if name in columns:
            actual = columns[name]
            if actual not in available:
                where = f" in {source}" if source else ""
                raise DataError(
                    f"column {actual!r} (given for {name!r}) not found{where}; "
                    f"columns are {_short_list(available)}"
                )
            out[name] = actual
            continue
        for alias in _ALIASES[name]:
            if alias in by_lower:
                out[name] = by_lower[alias]
                break
    return out


def _short_list(items: Iterable[Any], n: int = 12) -> str:
    items = [str(i) for i in items]
    text = ", ".join(items[:n])
    return f"[{text}{', …' if len(items) > n else ''}]"


def _parse_time(values: Any, time_unit: str | None, what: str) -> pd.Index:
    """Turn a time column into an Index: datetimes where possible, numbers kept as numbers."""
    idx = pd.Index(values)
    if time_unit is not None:
        if not pd.api.types.is_numeric_dtype(idx.dtype):
            raise DataError(f"time_unit={time_unit!r} needs a numeric time column ({what})")
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(idx), unit=time_unit))
    if isinstance(idx, pd.DatetimeIndex) or pd.api.types.is_numeric_dtype(idx.dtype):
        # Numeric time (bar numbers, epochs) is kept as is; pass time_unit to convert epochs.
        return idx
    try:
        with warnings.catch_warnings():
            # Odd formats fall back to per-element parsing; that is fine, and not worth a warning.
            warnings.filterwarnings("ignore", message="Could not infer format")
            return pd.DatetimeIndex(pd.to_datetime(idx))
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot parse the time values of {what} as dates: {exc}") from None


def _fmt_time(t: Any) -> str:
    if isinstance(t, pd.Timestamp):
        return str(t)
    return repr(t.item() if hasattr(t, "item") else t)


def _to_float(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Coerce to float64; return the values and a mask of entries that were not numbers.

    Numbers are prices; text (and a category's values) counts cell by cell, as a CSV column
    with a stray word holds text; every other kind of column — bool, datetime, timedelta,
    period — holds no price at all, although pandas would turn it into numbers.
    """
    series = pd.Series(values, copy=False)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _to_float(np.asarray(series))  # the values, not the codes
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(series), dtype=bool)
    if not (dtype == object or pd.api.types.is_string_dtype(dtype)):
        return np.full(len(series), np.nan), series.notna().to_numpy()
    num = pd.to_numeric(series, errors="coerce")
    bad = (num.isna() & series.notna()).to_numpy()
    if dtype == object:
        # to_numeric reads Python bools as 1 and 0.
        bad = bad | np.fromiter((isinstance(v, (bool, np.bool_)) for v in series), bool,
                                len(series))
    return np.where(bad, np.nan, num.to_numpy(dtype=float, na_value=np.nan)), bad


def _validate_close(
    close: np.ndarray, bad_text: np.ndarray | None, symbols: list[str], times: pd.Index,
    raw: Any = None,
) -> dict[str, str]:
    """{symbol: reason} for the columns of `close` (time × symbols) the engine would refuse.

    The engine's own check (:func:`gpu_trend.checks.check_symbols`) and wording; a cell that
    held text (`bad_text`, shown from `raw`) counts as a bad close where it comes first.
    """
    found = checks.check_symbols(np.ascontiguousarray(close.T), nan_policy="ffill")
    shown: dict[int, str] = {}
    if bad_text is not None:
        for c in np.flatnonzero(bad_text.any(axis=0)):
            r = int(np.argmax(bad_text[:, c]))
            if found.kind[c] == checks.OK or found.kind[c] == checks.NO_DATA or r < found.bar[c]:
                found.kind[c], found.bar[c] = checks.BAD_CLOSE, r
                shown[c] = repr(raw[r, c]) if raw is not None else "a non-number"
    return {symbols[c]: checks.reason(found, c, times, shown=shown.get(c))
            for c in np.flatnonzero(found.kind != checks.OK)}


def _check_order(
    sym_codes: np.ndarray, time_codes: np.ndarray, symbols: Any, times: pd.Index,
    n_times: int, *, sort: bool, where: str,
) -> np.ndarray:
    """Raise DataError on duplicate (symbol, time) or time going backwards within a symbol.

    Returns each row's cell in a symbol-major (symbols × times) array: symbol × `n_times` + time.
    """
    key = sym_codes.astype(np.int64) * n_times + time_codes
    n = len(key)
    # Fast path: files laid out symbol-major or time-major pass both checks in one O(n) test.
    if n <= 1 or (key[1:] > key[:-1]).all():
        return key
    n_sym = int(sym_codes.max()) + 1
    if (np.diff(time_codes.astype(np.int64) * n_sym + sym_codes) > 0).all():
        return key
    counts = np.bincount(key, minlength=0)
    if (counts > 1).any():
        k = int(np.flatnonzero(counts > 1)[0])
        s, t = divmod(k, n_times)
        sym, when = str(symbols[s]), times[t]
        raise DataError(
            f"duplicate rows for symbol {sym!r} at time {_fmt_time(when)} in {where} "
            f"({int(counts[k])} rows)",
            symbol=sym, time=when,
        )
    if sort:
        return key
    # Stable sort by symbol keeps the file order of each symbol's rows; the times inside each
    # block must then increase.  Timsort finds the existing runs, so sorted files are cheap.
    order = np.argsort(sym_codes, kind="stable")
    s_sorted = sym_codes[order]
    t_sorted = time_codes[order]
    back = (s_sorted[1:] == s_sorted[:-1]) & (t_sorted[1:] < t_sorted[:-1])
    if back.any():
        i = int(np.flatnonzero(back)[0])
        sym = str(symbols[s_sorted[i]])
        later, earlier = times[t_sorted[i]], times[t_sorted[i + 1]]
        raise DataError(
            f"time is not increasing for symbol {sym!r} in {where}: {_fmt_time(earlier)} "
            f"(row {int(order[i + 1])}) comes after {_fmt_time(later)}; sort the data by time "
            f"or pass sort=True",
            symbol=sym, time=earlier,
        )
    return key


def _on_grid(cells: np.ndarray, shape: tuple[int, int], parts: Iterable[np.ndarray]
             ) -> np.ndarray:
    """A symbol-major (symbols × times) float64 array of rows' values, NaN where no row is.

    `parts` are the values of consecutive rows (a file's chunks, scattered one at a time, so
    the whole column is never copied), `cells` the rows' flat cells (:func:`_check_order`).
    """
    arr = np.full(shape, np.nan)
    flat, start = arr.reshape(-1), 0
    for part in parts:
        flat[cells[start:start + len(part)]] = part
        start += len(part)
    return arr


def _finish(
    fields: dict[str, np.ndarray], raw_close: np.ndarray | None, bad_text: np.ndarray | None,
    symbols: list[str], times: pd.Index, *, validate: bool, source: str | None,
    rejected: dict[str, str] | None = None, present: np.ndarray | None = None,
) -> Universe:
    """Build the Universe from (time × symbols) arrays, moving invalid symbols to `rejected`.

    `present` (time × symbols bool) marks the rows read; None for a wide table.
    """
    rejected = dict(rejected or {})
    times = pd.Index(times, name="time")
    if validate:
        rejected.update(_validate_close(fields["close"], bad_text, symbols, times, raw_close))
    keep = np.array([s not in rejected for s in symbols], dtype=bool)
    kept = [s for s, k in zip(symbols, keep) if k]
    frames = {}
    for name, arr in {**fields, "present": present}.items():
        if arr is None:
            continue
        frames[name] = pd.DataFrame(
            arr[:, keep] if not keep.all() else arr, index=times,
            columns=pd.Index(kept, name="symbol"), copy=False,
        )
    return Universe(
        close=frames["close"],
        volume=frames.get("volume"),
        open=frames.get("open"),
        high=frames.get("high"),
        low=frames.get("low"),
        rejected=rejected,
        source=source,
        present=frames.get("present"),
    )


# --------------------------------------------------------------------------------------------
# long, single-symbol and wide tables
# --------------------------------------------------------------------------------------------
def _is_index_name(name: Any) -> bool:
    """Whether a column name is what pandas gives a written-out default index."""
    text = str(name).strip()
    return text in ("", "index") or text.startswith("Unnamed: ")


def _time_axis(
    df: pd.DataFrame, columns: Mapping[str, str] | None, what: str
) -> tuple[Any, list[Any]]:
    """Find the time of a table.

    Returns
    -------
    times : array-like or None
        The time values: the column mapped or named as time; else pandas' default index column
        (first, with a blank, ``Unnamed: 0`` or ``index`` header: what ``to_csv`` and
        ``reset_index`` write); else a non-range index.  None where there is none of these.
    not_data : list
        The columns that hold no field: the time column, and a default index column next to a
        named time column, which is then a row number.
    """
    mapping = {k: v for k, v in (columns or {}).items() if k == "time"}
    named = _resolve_columns(df.columns, mapping, ["time"], what).get("time")
    first = df.columns[:1].tolist()
    index_col = [c for c in first if _is_index_name(c) and c != named]
    if named is not None:
        return df[named], [named, *index_col]
    if index_col:
        return df[index_col[0]], index_col
    if not isinstance(df.index, pd.RangeIndex):
        return df.index, []
    return None, []


def _detect_format(
    df: pd.DataFrame, columns: Mapping[str, str] | None, not_data: list[Any], what: str
) -> str:
    """The shape of a table: "long" with a symbol column, "single" for one symbol's bars,
    else "wide".

    One symbol's bars: a close column and no column that is not a bar field (by full name,
    mapped in `columns`, or a known vendor extra).  A close next to other columns is ambiguous.
    """
    columns = dict(columns or {})
    symbol_map = {k: v for k, v in columns.items() if k == "symbol"}
    if "symbol" in _resolve_columns(df.columns, symbol_map, ["symbol"], what):
        return "long"
    mapped = {v for k, v in columns.items() if k in FIELDS}
    data = [c for c in df.columns if c not in not_data]
    names = [str(c).strip().lower() for c in data]
    if "close" not in columns and not _CLOSE_NAMES.intersection(names):
        return "wide"
    others = [c for c, n in zip(data, names)
              if n not in _BAR_NAMES and n not in _VENDOR_EXTRAS and c not in mapped]
    if not others:
        return "single"
    raise DataError(
        f"cannot tell the shape of {what}: it has a close column but also "
        f"{_short_list(others)}, which are neither bar fields nor a symbol column; name the "
        f"time with columns={{'time': NAME}}, read one symbol's bars with symbol=NAME (other "
        f"columns ignored), every column as a symbol with format='wide', or a long table with "
        f"columns={{'symbol': NAME}}{_SHAPES_HINT}"
    )


def _from_long(
    df: pd.DataFrame, cols: dict[str, str], times: Any, *, sort: bool, validate: bool,
    time_unit: str | None, source: str, symbol: str | None = None, hint: str = _SHAPES_HINT,
) -> Universe:
    """Read a long table, or one symbol's bars where `symbol` is given.

    `times` are the time values of the rows (see :func:`_time_axis`); `hint` ends the messages
    about missing columns.
    """
    if "close" not in cols:
        raise DataError(
            f"no close column in {source}; columns are {_short_list(df.columns)}; "
            f"pass columns={{'close': NAME}}{hint}"
        )
    if times is None:
        raise DataError(
            f"no time column in {source}; columns are {_short_list(df.columns)}; "
            f"pass columns={{'time': NAME}}{hint}"
        )
    if symbol is None:
        sym = df[cols["symbol"]]
        # Only an empty cell is a missing symbol: any text, "NA" included, is a ticker.
        missing = (sym.isna() | (sym == "")).to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(f"missing symbol in {source} at row {row}")
        if not isinstance(sym.dtype, pd.CategoricalDtype):
            sym = sym.astype(str)
        sym_codes, symbols = pd.factorize(sym, sort=False)
        symbols = [str(s) for s in symbols]
    else:
        sym_codes = np.zeros(len(df), dtype=np.int64)
        symbols = [symbol]
    times_raw = _parse_time(times, time_unit, source)
    if times_raw.isna().any():
        row = int(np.flatnonzero(np.asarray(times_raw.isna()))[0])
        raise DataError(
            f"missing time for symbol {symbols[sym_codes[row]]!r} in {source} at row {row}",
            symbol=symbols[sym_codes[row]],
        )
    time_codes, times = pd.factorize(times_raw, sort=True)
    times = pd.Index(times)
    n_t, n_s = len(times), len(symbols)
    flat = _check_order(sym_codes, time_codes, symbols, times, n_t, sort=sort, where=source)

    fields: dict[str, np.ndarray] = {}
    raw_close = bad_text = None
    for name in FIELDS:
        if name not in cols:
            continue
        values, bad = _to_float(df[cols[name]])
        fields[name] = _on_grid(flat, (n_s, n_t), [values]).T
        if name == "close" and bad.any():
            bad_text = np.zeros((n_t, n_s), dtype=bool)
            bad_text[time_codes, sym_codes] = bad
            raw_close = np.full((n_t, n_s), None, dtype=object)
            raw_close[time_codes, sym_codes] = df[cols["close"]].to_numpy(dtype=object)
    return _finish(fields, raw_close, bad_text, symbols, times, validate=validate, source=source,
                   present=_present(flat, n_s, n_t))


def _long_from_arrow(
    table: Any, columns: Mapping[str, str] | None, fields: Iterable[str], *, sort: bool,
    validate: bool, time_unit: str | None, source: str,
) -> Universe | None:
    """A long table's Universe straight from the pyarrow Table a file was read into.

    The same Universe as ``_from_long(table.to_pandas(), …)`` without the pandas detour: the
    symbols and times are factorised in Arrow (only the distinct times are converted and
    parsed) and each column's chunks are scattered into the (symbols × bars) arrays as they
    are, with no intermediate frame or concatenated copy.

    Returns None where the table is not a plain long table — a named time column, text
    symbols, numeric fields, no pandas index or column levels to restore — or holds anything
    the pandas path words an error or a rejection for (a missing symbol or time, a time that
    does not parse).  The caller then converts it to pandas and reads that, so every rule and
    message stays in one place.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    if not table.num_rows or len(set(names)) != len(names):
        return None
    try:
        # What pandas would make of the table, at no cost: its columns, index and dtypes.
        empty = table.slice(0, 0).to_pandas()
        time_map = {k: v for k, v in (columns or {}).items() if k == "time"}
        time_name = _resolve_columns(names, time_map, ["time"], source).get("time")
        cols = _resolve_columns(names, columns, ["symbol", *fields], source)
    except Exception:
        return None
    if list(empty.columns) != names or not isinstance(empty.index, pd.RangeIndex):
        return None
    if time_name is None or "symbol" not in cols or "close" not in cols:
        return None
    schema = table.schema

    sym_type = schema.field(cols["symbol"]).type
    if pa.types.is_dictionary(sym_type):
        sym_type = sym_type.value_type
    if not (pa.types.is_string(sym_type) or pa.types.is_large_string(sym_type)):
        return None
    for name in FIELDS:
        if name in cols:
            kind = schema.field(cols[name]).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                return None  # text, bool, decimal …: the pandas path sorts out what is a price
    sym, times_col = table.column(cols["symbol"]), table.column(time_name)
    if sym.null_count or times_col.null_count:
        return None  # the pandas path names the row

    # Symbols in order of first appearance, as pandas.factorize gives them.
    labels, codes = _dictionary_codes(sym if pa.types.is_dictionary(sym.type)
                                      else pc.dictionary_encode(sym))
    if (labels == "").any():
        return None  # an empty symbol, if a row has it: the pandas path names the row
    codes, order = _first_seen(codes, len(labels))
    symbols = [str(s) for s in labels[order]]
    if len(set(symbols)) != len(symbols):
        return None  # a name twice in one file's dictionary, which pandas would merge

    # The distinct times, converted and parsed as the pandas path does the whole column.
    field = schema.field(time_name)
    if pa.types.is_dictionary(field.type):
        return None  # a Parquet text time, read as categories
    distinct, time_codes = _dictionary_codes(pc.dictionary_encode(times_col), arrow=True)
    one = pa.Table.from_arrays([distinct], schema=pa.schema([field], metadata=schema.metadata))
    try:
        raw = one.to_pandas()[time_name]
        if raw.dtype != empty[time_name].dtype:
            return None
        parsed = _parse_time(raw, time_unit, source)
    except Exception:
        return None
    if parsed.isna().any():
        return None
    parsed_codes, times = pd.factorize(parsed, sort=True)
    time_codes = parsed_codes[time_codes]
    times = pd.Index(times)

    n_t, n_s = len(times), len(symbols)
    cells = _check_order(codes, time_codes, symbols, times, n_t, sort=sort, where=source)
    arrays = {
        name: _on_grid(cells, (n_s, n_t), (np.asarray(c.to_numpy(zero_copy_only=False),
                                                      dtype=np.float64)
                                           for c in table.column(cols[name]).chunks)).T
        for name in FIELDS if name in cols
    }
    return _finish(arrays, None, None, symbols, times, validate=validate, source=source,
                   present=_present(cells, n_s, n_t))


def _dictionary_codes(column: Any, *, arrow: bool = False) -> tuple[Any, np.ndarray]:
    """The dictionary of a dictionary-encoded ChunkedArray (NumPy, or with `arrow` pyarrow)
    and every row's index into it."""
    column = column.unify_dictionaries()
    dictionary = column.chunk(0).dictionary
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in column.chunks])
    return dictionary if arrow else dictionary.to_numpy(zero_copy_only=False), codes


def _first_seen(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber `codes` (0 … n − 1) in order of first appearance, as pandas.factorize does.

    Returns the new codes and, for each new code, the old one.  Only the first row of each
    run of one code is hashed: in a file laid out symbol by symbol, a few thousand.
    """
    heads = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    _, order = pd.factorize(codes[heads])
    rank = np.zeros(n, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], order


def _present(cells: np.ndarray, n_symbols: int, n_times: int) -> np.ndarray:
    """The (time × symbols) table of which cells have a row, as a view of symbol-major storage.

    Every long-table array is stored symbol-major and handed out transposed: each symbol's
    bars are contiguous, which is both how long files are usually laid out (fast scatter) and
    the (symbols × bars) layout the engine computes on (no transposing copy later).
    """
    present = np.zeros((n_symbols, n_times), dtype=bool)
    present.reshape(-1)[cells] = True
    return present.T


def _is_time_name(name: Any) -> bool:
    """Whether a column name reads as a time.

    The name is split into words at every character that is no ASCII letter or digit, in any
    case; it is a time when a word is ``t``, ``ts`` or ``epoch`` or contains ``time`` or
    ``date``: ``t``, ``TS``, ``Time (UTC)``, ``open_time``, ``Unixtime``, ``trade_date``.
    """
    words = re.findall(r"[a-z0-9]+", str(name).lower())
    return any(w in ("t", "ts", "epoch") or "time" in w or "date" in w for w in words)


def _first_column_is_time(col: pd.Series, what: str) -> bool:
    """Whether the first column of a wide table without a named time holds the time.

    A column that is not numbers (dates, as text or datetimes) is the time, as it cannot be
    prices.  Integers in order (either way) are the time under a time-like name
    (:func:`_is_time_name`); under another name, integers above 1e8 in order look like epoch
    times, and rather than price them at about 1.7e9 the read fails, asking for the time to be
    named — unless the name is written like a ticker (no lower-case letter, no space: ``AAPL``,
    ``005930``), which keeps it a symbol.
    """
    if not pd.api.types.is_numeric_dtype(col.dtype):
        return True
    if not pd.api.types.is_integer_dtype(col.dtype) or not (
            col.is_monotonic_increasing or col.is_monotonic_decreasing):
        return False
    name = str(col.name)
    if _is_time_name(name):
        return True
    if len(col) and (col > 1e8).all() and (name != name.upper() or any(map(str.isspace, name))):
        raise DataError(
            f"the first column {name!r} of {what} looks like epoch times (whole numbers above "
            f"1e8, in order), not prices; pass columns={{'time': {name!r}}} to read it as the "
            f"time (a column of prices is a symbol when named like a ticker, e.g. AAPL)"
        )
    return False


def _wide_arrays(
    df: pd.DataFrame, columns: Mapping[str, str] | None, time_unit: str | None, what: str,
    *, sort: bool,
) -> tuple[pd.Index, list[str], np.ndarray, np.ndarray | None, np.ndarray | None]:
    time_values, not_data = _time_axis(df, columns, what)
    where = what
    if time_values is None and len(df.columns) and _first_column_is_time(df.iloc[:, 0], what):
        time_values, not_data = df.iloc[:, 0], df.columns[:1].tolist()
        where = f"the time column {df.columns[0]!r} of {what}"
    if time_values is None:
        # No time anywhere: the rows are numbered bars, which is all the indicator needs.
        time_values = df.index
    data = df.drop(columns=not_data) if not_data else df
    symbols = [str(c) for c in data.columns]
    seen: set[str] = set()
    for s in symbols:
        if s in seen:
            raise DataError(f"symbol {s!r} appears twice in the columns of {what}", symbol=s)
        seen.add(s)
    times = _parse_time(time_values, time_unit, where)
    if times.isna().any():
        row = int(np.flatnonzero(np.asarray(times.isna()))[0])
        raise DataError(f"missing time in {where} at row {row}")
    bad_text = raw = None
    numeric = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
                  for t in data.dtypes)
    if numeric:
        arr = data.to_numpy(dtype=float, na_value=np.nan)
    else:
        arr = np.empty((len(times), len(symbols)), order="F")
    for j, c in enumerate([] if numeric else data.columns):
        values, bad = _to_float(data[c])
        arr[:, j] = values
        if bad.any():
            if bad_text is None:
                bad_text = np.zeros(arr.shape, dtype=bool)
                raw = np.full(arr.shape, None, dtype=object)
            bad_text[:, j] = bad
            raw[:, j] = data[c].to_numpy(dtype=object)
    # Wide tables have one row per time: the checks are on the index alone.
    codes, uniq = pd.factorize(times, sort=True)
    if len(uniq) != len(times):
        dup = pd.Index(times).duplicated()
        t = times[int(np.flatnonzero(dup)[0])]
        raise DataError(f"duplicate time {_fmt_time(t)} in {where}", time=t)
    if not sort and len(codes) > 1 and (np.diff(codes) < 0).any():
        i = int(np.flatnonzero(np.diff(codes) < 0)[0])
        raise DataError(
            f"time is not increasing in {where}: {_fmt_time(times[i + 1])} (row {i + 1}) comes "
            f"after {_fmt_time(times[i])}; sort the data by time or pass sort=True",
            time=times[i + 1],
        )
    if len(codes) > 1 and (np.diff(codes) < 0).any():
        order = np.argsort(codes, kind="stable")
        # Keep the symbol-major memory layout the engine computes on.
        arr = np.asfortranarray(arr[order])
        if bad_text is not None:
            bad_text, raw = bad_text[order], raw[order]
    return pd.Index(uniq), symbols, arr, bad_text, raw


def _from_wide(
    df: pd.DataFrame, volume: Any, *, columns: Mapping[str, str] | None, sort: bool,
    validate: bool, time_unit: str | None, source: str, engine: str,
    others: Mapping[str, pd.DataFrame] | None = None,
) -> Universe:
    """Read a wide close table, and the wide tables of other fields (`others`, `volume`)."""
    times, symbols, close, bad_text, raw = _wide_arrays(df, columns, time_unit, source, sort=sort)
    fields = {"close": close}
    tables = {name: (table, source) for name, table in (others or {}).items()}
    if volume is not None:  # given explicitly, it wins over a volume field of the table
        tables["volume"] = _load_table(volume, engine=engine)
    for name, (tdf, tsource) in tables.items():
        ttimes, tsymbols, arr, _, _ = _wide_arrays(tdf, columns, time_unit, tsource, sort=sort)
        # Other fields follow the close table; values of symbols without a close are not used.
        fields[name] = (
            pd.DataFrame(arr, index=ttimes, columns=tsymbols)
            .reindex(index=times, columns=symbols).to_numpy(dtype=float)
        )
    return _finish(fields, raw, bad_text, symbols, times, validate=validate, source=source)


#: What joins the levels of MultiIndex column names that are no (field, symbol) pairs.
LEVEL_SEPARATOR = ":"


def _flat_columns(
    df: pd.DataFrame, fields: tuple[str, ...] | None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame] | None]:
    """Flatten MultiIndex columns into readable names.

    With two levels, one of which holds bar fields only (close, volume … by full name, as
    ``df.pivot(columns="symbol", values=["close", "volume"])`` or yfinance write them), that
    level gives the fields and the other the symbols, unless `fields` is None.  Columns with a
    blank level (the ``("time", "")`` of ``reset_index``) are named by the other level.
    Otherwise each name is its non-blank levels joined by :data:`LEVEL_SEPARATOR`
    (``("NASDAQ", "AAPL")`` → ``"NASDAQ:AAPL"``).

    Returns
    -------
    close : pandas.DataFrame
        The plain columns and, under a field level, one close column per symbol; else every
        column, flattened.
    others : dict of str to pandas.DataFrame, or None
        Under a field level, the other `fields` found, laid out like `close`; else None.
    """
    keys = [tuple(str(v) for v in k) for k in df.columns]
    full = [i for i, k in enumerate(keys) if "" not in k]
    plain = [i for i, k in enumerate(keys) if "" in k]
    level = None
    if fields is not None and df.columns.nlevels == 2 and full:
        for lvl in (0, 1):
            names = {keys[i][lvl].strip().lower() for i in full}
            if names <= _BAR_NAMES | _VENDOR_EXTRAS and names & _CLOSE_NAMES:
                level = lvl
                break

    def table(idx: list[int], names: list[Any]) -> pd.DataFrame:
        out = df.iloc[:, idx].copy(deep=False)
        out.columns = names
        return out

    if level is None:
        return table(list(range(len(keys))),
                     [LEVEL_SEPARATOR.join(v for v in k if v != "") for k in keys]), None
    by_field: dict[str, list[int]] = {}
    for i in full:
        by_field.setdefault(keys[i][level], []).append(i)
    found = _resolve_columns(by_field, None, fields)
    tables = {f: table([*plain, *by_field[name]],
                       [*("".join(keys[i]) for i in plain),
                        *(df.columns[i][1 - level] for i in by_field[name])])
              for f, name in found.items()}
    return tables.pop("close"), tables


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def _file_kind(path: Path) -> str:
    """The format ("parquet", "csv" or "tsv") of a file that read_universe reads."""
    if path.name.lower().endswith(_FILE_SUFFIXES):
        return table_kind(path)
    raise DataError(f"unsupported file type {path.name!r}: expected .parquet or .csv")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _FILE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_file(path: Path, engine: str, keep: Any = None, *, name: str | None = None,
               symbol_column: Any = None, arrow: bool = False) -> Any:
    """Read one file into pandas, or with `arrow` into the pyarrow Table it is read as.

    `keep(column_names)` may name the only columns needed, `symbol_column(column_names)` the
    symbol column, read as text exactly as written.  Every error is a DataError naming the file, as
    `name` (default: the path).  With `arrow`, cuDF's reader still gives a pandas DataFrame;
    :func:`_as_pandas` converts a Table later.
    """
    kind = _file_kind(path)
    if engine == "cudf":
        try:
            import cudf  # noqa: F401  (optional, GPU only)
        except ImportError:
            raise ImportError("engine='cudf' needs cuDF (pip install gpu-trend[cudf])") from None
    elif engine != "pyarrow":
        raise ValueError(f"engine must be 'pyarrow' or 'cudf', got {engine!r}")
    table = _guarded(partial(_read_table, path, kind, engine, keep, symbol_column), name or path)
    return table if arrow else _as_pandas(table, name or path)


def _as_pandas(table: Any, name: Any) -> pd.DataFrame:
    """A file's table (pyarrow, or pandas already) as a pandas DataFrame."""
    return table if isinstance(table, pd.DataFrame) else _guarded(table.to_pandas, name)


def _guarded(read: Any, name: Any) -> Any:
    """``read()``, its errors as one DataError naming the file `name`."""
    try:
        return read()
    except DataError:
        raise
    except Exception as exc:  # pyarrow and cuDF raise their own error types; one line suffices
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot read {name}: {line}") from None


def _read_table(path: Path, kind: str, engine: str, keep: Any, symbol_column: Any) -> Any:
    """The file as a pyarrow Table (a pandas DataFrame with cuDF)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
    symbol = None
    if kind != "parquet" and symbol_column is not None:
        # The header, to find the symbol column: only the first block of the file is parsed.
        with pacsv.open_csv(str(path), parse_options=parse) as head:
            symbol = symbol_column(head.schema.names)
    if engine == "cudf":
        import cudf

        if kind == "parquet":
            return cudf.read_parquet(str(path)).to_pandas()
        return cudf.read_csv(str(path), sep=parse.delimiter,
                             dtype=None if symbol is None else {symbol: "str"}).to_pandas()
    if kind == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(str(path))
        wanted = keep(list(schema.names)) if keep is not None else None
        # Text columns (the symbol of a long table) are read dictionary-encoded: millions of
        # repeated names become small integer codes, several times faster to group.
        text = [f.name for f in schema
                if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
                and (wanted is None or f.name in wanted)]
        return pq.read_table(str(path), columns=wanted, read_dictionary=text or None,
                             use_pandas_metadata=True)
    if symbol is None:
        # Empty cells are missing values, also in columns that hold a stray word.
        convert = pacsv.ConvertOptions(strings_can_be_null=True)
        return pacsv.read_csv(str(path), parse_options=parse, convert_options=convert)
    import pyarrow.compute as pc

    # The symbol column is text as written (005930, 0700, 1.50 and TRUE are tickers, not
    # numbers), dictionary-encoded like Parquet's, and keeps the null tokens: NA is National
    # Bank of Canada.  Only an empty cell is a missing symbol (see _from_long).  Other text
    # columns get the null tokens as missing values, as without a symbol column.
    convert = pacsv.ConvertOptions(column_types={symbol: pa.dictionary(pa.int32(), pa.string())})
    table = pacsv.read_csv(str(path), parse_options=parse, convert_options=convert)
    nulls = pa.array(convert.null_values)
    for i, f in enumerate(table.schema):
        if f.name != symbol and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            col = table.column(i)
            table = table.set_column(i, f, pc.if_else(pc.is_in(col, value_set=nulls),
                                                      pa.scalar(None, f.type), col))
    return table


def _columns_to_read(
    names: list[Any], columns: Mapping[str, str] | None, wanted: list[str], source: str
) -> list[Any]:
    """The columns of a file to load: the fields `wanted`, and pandas' default index column.

    The index column is the time where no column is named as one (see :func:`_time_axis`).
    """
    fields = _resolve_columns(names, columns, wanted, source).values()
    return list(dict.fromkeys([*(n for n in names[:1] if _is_index_name(n)), *fields]))


def _load_table(obj: Any, *, engine: str, keep: Any = None, symbol_column: Any = None,
                arrow: bool = False) -> tuple[Any, str]:
    if isinstance(obj, pd.DataFrame):
        return obj, "the DataFrame"
    if is_cudf(obj):
        return obj.to_pandas(), "the cuDF DataFrame"
    path = Path(obj)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    return _read_file(path, engine, keep, symbol_column=symbol_column, arrow=arrow), str(path)


def _read_directory(
    path: Path, *, columns: Mapping[str, str] | None, sort: bool, validate: bool,
    time_unit: str | None, engine: str, fields: tuple[str, ...] = FIELDS,
) -> Universe:
    entries = sorted(p for p in path.iterdir() if p.is_file())
    files = [p for p in entries if p.name.lower().endswith(_FILE_SUFFIXES)]
    ignored = [p.name for p in entries if not p.name.lower().endswith(_FILE_SUFFIXES)]
    if not files:
        raise DataError(f"no .parquet or .csv files in directory {path}"
                        f"{'; ignored ' + _short_list(ignored) if ignored else ''}")
    by_symbol: dict[str, Path] = {}
    for f in files:
        sym = _stem(f)
        if sym in by_symbol:
            raise DataError(
                f"symbol {sym!r} has two files in {path}: {by_symbol[sym].name} and {f.name}",
                symbol=sym,
            )
        by_symbol[sym] = f
    mapping = {k: v for k, v in (columns or {}).items() if k != "symbol"}

    parts: dict[str, Universe] = {}
    failed: dict[str, str] = {}
    for sym, f in by_symbol.items():
        try:
            keep = partial(_columns_to_read, columns=mapping, wanted=["time", *fields],
                           source=f.name)
            df = _read_file(f, engine, keep, name=f.name)
            times, _ = _time_axis(df, mapping, f.name)
            cols = _resolve_columns(df.columns, mapping, fields, f.name)
            # Each file is checked on its own so that errors name the file the user must fix.
            parts[sym] = _from_long(df, cols, times, sort=sort, validate=False,
                                    time_unit=time_unit, source=f.name, symbol=sym, hint="")
        except DataError as exc:
            # One bad file costs its own symbol, not the universe.
            failed[sym] = f"bad file: {exc}"
    if not parts:
        shown = "; ".join(list(failed.values())[:3])
        raise DataError(f"none of the {len(failed)} files in {path} could be read: {shown}"
                        f"{'; …' if len(failed) > 3 else ''}")
    # Times of different kinds have no order between them: which file is right is for the
    # user to say.  Zone-aware times in different zones are one instant each; the union is
    # in UTC.
    kinds: dict[str, str] = {}
    for sym, p in parts.items():
        if len(p.index):
            kinds.setdefault(_time_kind(p.index), by_symbol[sym].name)
    if len(kinds) > 1:
        (kind_a, file_a), (kind_b, file_b) = list(kinds.items())[:2]
        raise DataError(f"{file_a} has {kind_a} but {file_b} has {kind_b} in {path}: all files "
                        f"of a directory need the same kind of time")
    times = parts[next(iter(parts))].index
    for p in parts.values():
        times = times.union(p.index)

    def on_grid(name: str, fill: Any) -> np.ndarray:
        arr = np.full((len(times), len(parts)), fill)
        for j, p in enumerate(parts.values()):
            frame = getattr(p, name)
            if frame is not None:
                arr[times.get_indexer(frame.index), j] = frame.iloc[:, 0].to_numpy()
        return arr

    arrays = {name: on_grid(name, np.nan) for name in FIELDS
              if any(getattr(p, name) is not None for p in parts.values())}
    universe = _finish(arrays, None, None, list(parts), times, validate=validate,
                       source=str(path), rejected=failed, present=on_grid("present", False))
    universe.ignored = ignored
    return universe


def _time_kind(index: pd.Index) -> str:
    """The kind of a parsed time index, as a directory's files must agree on it."""
    if not isinstance(index, pd.DatetimeIndex):
        return "numeric times"
    return "naive times (no time zone)" if index.tz is None else "time-zone-aware times"


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def read_universe(
    source: Any,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    volume: Any = None,
    sort: bool = False,
    validate: bool = True,
    time_unit: str | None = None,
    engine: str = "pyarrow",
    fields: Iterable[str] | None = None,
    symbol: str | None = None,
) -> Universe:
    """Read a market universe from a file, a directory or a data frame.

    Parameters
    ----------
    source : str, os.PathLike, pandas.DataFrame, pandas.Series, cudf.DataFrame or Universe
        * a ``.parquet`` / ``.csv`` file holding a long, wide or single-symbol table;
        * a directory of per-symbol files (``AAPL.parquet``, ``MSFT.csv`` …; the file stem is
          the symbol, each file one symbol's table: time, close and any of open, high, low,
          volume; other columns are ignored; files of other types are listed in
          :attr:`Universe.ignored`; all files' times must be of one kind: numbers, naive
          datetimes, or zone-aware datetimes, which are put in UTC when their zones differ);
        * a data frame in any of those shapes (a cuDF frame is copied to the host).  Its
          column names are the symbols as strings (``1`` → ``"1"``).  MultiIndex columns
          with a level of bar fields (``df.pivot(columns="symbol", values=["close",
          "volume"])``, yfinance's ``("Close", "AAPL")``) are a wide table per field; other
          MultiIndex names are their levels joined by :data:`LEVEL_SEPARATOR`
          (``"NASDAQ:AAPL"``);
        * a Series of closes (its name is the symbol);
        * a Universe, returned unchanged.
    format : {"auto", "long", "wide"}
        ``"long"``: one row per (symbol, time) with columns symbol, time, open, high, low, close,
        volume (only symbol, time and close are required).  ``"wide"``: one row per time, one
        close column per symbol, time in a ``time`` column, the index, or the first column.
        ``"auto"`` picks long when a symbol column is present; else a single symbol's table
        when the columns besides the time are a close and other bar fields only (open, high,
        low, close, adj close, volume, by full name, any case; yfinance's dividends, stock
        splits and capital gains are ignored); else wide.  A close next to columns that are
        none of these is ambiguous: a DataError lists the accepted shapes (:data:`SHAPES`).
        The time is the column mapped or named as one, else pandas' default index column
        (blank or ``Unnamed: 0`` header), else a meaningful index.  In a wide table without
        any of these, the first column is the time when it holds no numbers (dates), or
        integers in order under a time-like name: one with a word (split at anything but ASCII
        letters and digits, any case) that is ``t``, ``ts`` or ``epoch`` or contains ``time``
        or ``date`` (``Time (UTC)``, ``open_time``).  Integers above 1e8 in order there under
        another name look like epoch times: the read fails, asking for
        ``columns={"time": NAME}``, unless the name is written like a ticker (no lower-case
        letter, no space), which makes it a symbol.  A wide or single-symbol table without a
        time has numbered bars.

        In a long CSV the symbol column is read as text exactly as written (``005930``,
        ``1.50``, ``TRUE``, ``NA`` are tickers); only an empty cell is a missing symbol.  A
        wide table's column that holds no numbers (bool, datetime, timedelta, text) is no
        price series: with `validate` it goes to :attr:`Universe.rejected`, named, with its
        first value.
    columns : mapping, optional
        Actual column names for the canonical fields, e.g. ``{"symbol": "ticker",
        "time": "date", "close": "adj_close"}``.  Unmapped fields are found by common names,
        case-insensitively.  An adjusted close ("Adj Close") is the close only where there is
        no plain close; map it to use it next to one.
    volume : path or DataFrame, optional
        Wide form only: a second wide table (same layout) holding volumes.
    sort : bool, default False
        Sort rows by time instead of rejecting rows whose time goes backwards.  Duplicate
        (symbol, time) rows are an error either way.
    validate : bool, default True
        Move symbols with non-positive, infinite, non-numeric or entirely missing closes to
        :attr:`Universe.rejected`.
    time_unit : {"s", "ms", "us", "ns"}, optional
        Read a numeric time column as epoch timestamps in this unit.  Without it numeric times
        are kept as numbers (bar numbers are fine).
    engine : {"pyarrow", "cudf"}, default "pyarrow"
        The file reader.  ``"cudf"`` reads on the GPU (cuDF must be installed); the result is
        the same host-side Universe.
    fields : iterable of str, optional
        Which of open, high, low, close, volume to load from a long table (close is always
        loaded).  Default: all present.  Parquet files are then read for those columns only.
    symbol : str, optional
        Read `source` as one symbol's table under this name (columns other than the time and
        the bar fields are then ignored).  Without it a single-symbol table is named after its
        file's stem, or ``"close"`` when it is a data frame.

    Returns
    -------
    Universe
        With :attr:`Universe.present` set for long and single-symbol tables and directories,
        None for wide tables; :attr:`Universe.ignored` set for directories.

    Raises
    ------
    DataError
        Duplicate (symbol, time) rows, time going backwards, missing columns, unparseable
        times, an unnamed epoch time column, a directory mixing kinds of time (naming two
        files), an unreadable, empty or truncated file, a table of no accepted shape.  The
        message names the file, the symbol and the time.  In a directory only a failure of
        every file raises; a bad file's symbol goes to :attr:`Universe.rejected` as
        ``"bad file: …"``.
    FileNotFoundError
        `source` is a path that does not exist.
    """
    if format not in ("auto", "long", "wide"):
        raise ValueError(f"format must be 'auto', 'long' or 'wide', got {format!r}")
    if fields is None:
        fields = FIELDS
    else:
        fields = tuple(fields)
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; "
                             f"fields are {', '.join(FIELDS)}")
        fields = tuple(f for f in FIELDS if f in fields or f == "close")
    if isinstance(source, Universe):
        return source
    if isinstance(source, pd.Series):
        name = symbol if symbol is not None else source.name
        source = source.to_frame("close" if name is None else str(name))
        format, symbol = "wide", None
    if symbol is not None:
        if format != "auto":
            raise ValueError(f"symbol= reads one symbol's table; it does not go with "
                             f"format={format!r}")
        format = "single"
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        if volume is not None:
            raise ValueError("volume= is for wide tables; a directory holds per-symbol files")
        if symbol is not None:
            raise ValueError("symbol= is for one symbol's table; a directory's symbols are "
                             "its file names")
        return _read_directory(Path(source), columns=columns, sort=sort, validate=validate,
                               time_unit=time_unit, engine=engine, fields=fields)

    def symbol_column(names):
        if format in ("wide", "single"):
            return None
        symbol_map = {k: v for k, v in (columns or {}).items() if k == "symbol"}
        return _resolve_columns(names, symbol_map, ["symbol"], str(source)).get("symbol")

    def keep(names):
        # Long tables only: a wide table's columns are all symbols, one symbol's table is small.
        if symbol_column(names) is None:
            return None
        return _columns_to_read(names, columns, ["symbol", "time", *fields], str(source))

    df, what = _load_table(source, engine=engine, keep=keep, symbol_column=symbol_column,
                           arrow=True)
    if not isinstance(df, pd.DataFrame):
        # A long file goes from pyarrow to the (symbols × bars) arrays without pandas.
        fast = (None if format not in ("auto", "long") or volume is not None else
                _long_from_arrow(df, columns, fields, sort=sort, validate=validate,
                                 time_unit=time_unit, source=what))
        if fast is not None:
            return fast
        df = _as_pandas(df, what)
    if symbol is None:
        symbol = "close" if isinstance(source, pd.DataFrame) or is_cudf(source) else _stem(
            Path(source))
    return _from_table(df, what, format=format, columns=columns, volume=volume, sort=sort,
                       validate=validate, time_unit=time_unit, engine=engine, fields=fields,
                       symbol=symbol)


def _from_table(df, what, *, format, columns, volume, sort, validate, time_unit, engine,
                fields, symbol):
    """A Universe from one table; `format` may also be "single", named `symbol`."""
    others = None
    if isinstance(df.columns, pd.MultiIndex):
        df, others = _flat_columns(df, fields if format in ("auto", "wide") else None)
        if others is not None:
            format = "wide"
    times, not_data = _time_axis(df, columns, what)
    if format == "auto":
        format = _detect_format(df, columns, not_data, what)
    if format == "wide":
        return _from_wide(df, volume, columns=columns, sort=sort, validate=validate,
                          time_unit=time_unit, source=what, engine=engine, others=others)
    if volume is not None:
        raise ValueError(f"volume= is for wide tables; {what} is a "
                         f"{'long' if format == 'long' else 'single-symbol'} table, whose "
                         f"volume is a column")
    if times is None and format == "single":
        # As in a wide table: with no time anywhere, the rows are numbered bars.
        times = df.index
    wanted = ["symbol", *fields] if format == "long" else list(fields)
    cols = _resolve_columns(df.columns, columns, wanted, what)
    if format == "long" and "symbol" not in cols:
        raise DataError(
            f"no symbol column in {what}; columns are {_short_list(df.columns)}; "
            f"pass columns={{'symbol': NAME}}{_SHAPES_HINT}"
        )
    return _from_long(df, cols, times, sort=sort, validate=validate, time_unit=time_unit,
                      source=what, symbol=None if format == "long" else symbol)


def from_frame(frame: Any, **kwargs: Any) -> Universe:
    """Build a Universe from a pandas or cuDF DataFrame (long or wide).

    Same keyword arguments as :func:`read_universe`.
    """
    if not (isinstance(frame, (pd.DataFrame, pd.Series)) or is_cudf(frame)):
        raise TypeError(f"expected a pandas or cuDF DataFrame, got {type(frame).__name__}")
    return read_universe(frame, **kwargs)


#: The layouts of a universe table: ``read_universe`` takes all three, ``write_universe``
#: the last two.
FORMATS = ("auto", "long", "wide")


def write_universe(universe: Universe, path: str | os.PathLike, *, format: str = "long") -> Path:
    """Write a Universe to ``.parquet``, ``.csv`` (or ``.tsv``, ``.csv.gz``) in long or wide form.

    Wide form writes the close table only (time as the first column).  The output reads back
    with :func:`read_universe`.  The file is replaced atomically
    (:func:`gpu_trend.files.write_table`).

    Parameters
    ----------
    universe : Universe
    path : str or os.PathLike
        Output file; the format follows the suffix.
    format : {"long", "wide"}, default "long"

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DataError
        If `path` is not a file type :func:`read_universe` reads.
    """
    path = Path(path)
    _file_kind(path)  # write_table also writes JSON, which read_universe could not read back
    if format == "long":
        df = universe.to_long()
    elif format == "wide":
        df = universe.close.reset_index()
        df.columns = ["time", *universe.symbols]
    else:
        raise ValueError(f"format must be 'long' or 'wide', got {format!r}")
    return write_table(df, path)
