"""The market scanner: ATC for a whole universe, filtered and ranked.

:func:`scan` reads a universe (a :class:`~gpu_trend.io.Universe`, a data frame or a path),
drops the symbols that cannot or should not be computed *before* the heavy work, computes ATC in
memory-bounded chunks of symbols, and returns a :class:`ScanResult` with the strongest signals
first.  Every symbol the caller gave ends up either in ``ScanResult.all`` or, with the reason, in
``ScanResult.skipped``.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from . import checks
from .backend import resolve_backend
from .config import FAMILIES, ATCConfig
from .engine import ATCInputError, as_config, iter_atc
from .files import write_table
from .io import Universe, read_universe

__all__ = ["scan", "ScanResult", "default_min_bars", "TABLE_COLUMNS"]

#: Columns of :attr:`ScanResult.table` (the index is the symbol).
TABLE_COLUMNS = (
    "rank", "time", "close", "average_signal", "direction", *FAMILIES,
    "bars_since_long", "bars_since_short", "dollar_volume", "bars",
)


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
        Size of the universe given (before filtering).
    long_threshold, short_threshold : float
        The Average_Signal levels a symbol had to reach to be in the long / short view.
    warnings : list of str
        Warnings the engine raised (e.g. a large lambda), once each.
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
        return (f"ScanResult({self.n_symbols} symbols × {self.n_bars} bars: "
                f"{len(self.all)} scanned, {len(self.long)} long, {len(self.short)} short, "
                f"{len(self.skipped)} skipped, {self.elapsed.get('total', 0.0):.2f} s on "
                f"{self.backend})")

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
        lines = [
            f"{self.n_symbols} symbols × {self.n_bars} bars: {len(self.all)} scanned, "
            f"{len(self.skipped)} skipped; backend {self.backend}; "
            + "total {total:.2f} s (load {load:.2f}, filter {filter:.2f}, compute {compute:.2f}, "
              "rank {rank:.2f})".format(**{k: self.elapsed.get(k, 0.0) for k in
                                           ("total", "load", "filter", "compute", "rank")}),
        ]
        a = self.all["average_signal"]
        totals = {"long": int(((a >= self.long_threshold) & (a > 0)).sum()),
                  "short": int(((a <= self.short_threshold) & (a < 0)).sum())}
        when = f" at {self.all['time'].iloc[0]}" if len(self.all) else ""
        for title, view, op, level in (("long", self.long, "≥", self.long_threshold),
                                       ("short", self.short, "≤", self.short_threshold)):
            lines.append("")
            # `+ 0.0` prints a threshold of -0.0 (from min_signal=0) as 0.
            lines.append(f"Top {title}{when} (Average_Signal {op} {level + 0.0:g}): "
                         f"{min(n, len(view))} of {totals[title]}")
            if len(view):
                lines.append(_format_view(view.head(n)))
        if self.skipped:
            counts = pd.Series([r.split(":", 1)[0] for r in self.skipped.values()]).value_counts()
            lines.append("")
            lines.append("Skipped: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return "\n".join(lines)


def _format_view(view: pd.DataFrame) -> str:
    cols = ["close", "average_signal", "direction", *FAMILIES, "bars_since_long",
            "bars_since_short", "dollar_volume"]
    df = view[cols].copy()
    df.columns = ["close", "signal", "dir", *FAMILIES, "since_long", "since_short", "dollar_vol"]
    fmt = {
        "close": lambda v: f"{v:.6g}",
        "signal": lambda v: f"{v:+.3f}",
        "dir": lambda v: "" if v != v else f"{v:+.0f}",
        "since_long": lambda v: "" if v != v else f"{v:.0f}",
        "since_short": lambda v: "" if v != v else f"{v:.0f}",
        "dollar_vol": lambda v: "" if v != v else f"{v:,.0f}",
    }
    for fam in FAMILIES:
        fmt[fam] = lambda v: "" if v != v else f"{v:+.2f}"
    return df.to_string(formatters=fmt)


# --------------------------------------------------------------------------------------------
# the scan
# --------------------------------------------------------------------------------------------
def _show_progress(progress: bool | None) -> bool:
    if progress is False:
        return False
    if progress is True:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _prefilter(
    uni: Universe, cfg: ATCConfig, *, min_bars: int, min_price: float | None,
    min_dollar_volume: float | None, dollar_volume_bars: int,
) -> tuple[np.ndarray, dict[str, str], dict[str, np.ndarray]]:
    """Decide which symbols to compute, from the engine's own input check and cheap filters.

    Returns the boolean keep-mask over ``uni.symbols``, the skip reasons, and per-symbol columns
    (bars, last close, dollar volume) the table reports.
    """
    close = uni.close.to_numpy(dtype=float, na_value=np.nan)
    n_t, n_s = close.shape
    found = checks.check_symbols(np.ascontiguousarray(close.T), nan_policy=cfg.nan_policy)
    valid = ~np.isnan(close)
    has_any = found.kind != checks.NO_DATA
    last = np.where(has_any, n_t - 1 - valid[::-1].argmax(axis=0) if n_t else 0, 0)
    bars = (n_t - found.start).astype(np.int64)
    last_close = np.where(has_any, close[last, np.arange(n_s)] if n_t else np.nan, np.nan)
    dollar = _dollar_volume(uni, close, dollar_volume_bars)

    skipped: dict[str, str] = {}
    for j, sym in enumerate(uni.symbols):
        if found.kind[j] != checks.OK:
            reason = checks.reason(found, j, uni.index)
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
    extra = {"bars": bars, "close": last_close, "dollar_volume": dollar}
    return keep, skipped, extra


def _dollar_volume(uni: Universe, close: np.ndarray, n_last: int) -> np.ndarray:
    """Mean close × volume over each symbol's last `n_last` rows (NaN without volume)."""
    n_t, n_s = close.shape
    if uni.volume is None or not n_t:
        return np.full(n_s, np.nan)
    vol = uni.volume.to_numpy(dtype=float, na_value=np.nan)
    tail = slice(max(0, n_t - n_last), n_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        return np.nanmean(close[tail] * vol[tail], axis=0)


@contextmanager
def _recorded(caught: list):
    """Collect the engine's warnings into `caught` instead of showing them once per chunk."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        yield
    caught.extend(w)


def _latest_rows(
    close: pd.DataFrame, cfg: ATCConfig, *, backend: str, chunk_symbols: int | None,
    memory_limit: Any, skipped: dict[str, str], caught: list, bar: Any,
) -> Iterator[pd.DataFrame]:
    """Yield ``latest()`` of each chunk :func:`gpu_trend.iter_atc` computes.

    On the GPU each chunk is uploaded and its results stay on the device: only the ``latest()``
    table comes back. A symbol the engine refuses (the prefilter runs the same check, so this
    is a safety net) goes to `skipped`, and the scan restarts without it: the engine checks the
    whole universe before its first chunk, so nothing has been computed yet.
    """
    on_device = resolve_backend(backend) == "gpu"
    while close.shape[1]:
        chunks = iter_atc(close, cfg, backend=backend, chunk_symbols=chunk_symbols,
                          memory_limit=memory_limit, on_device=on_device)
        try:
            with _recorded(caught):
                res = next(chunks, None)
        except ATCInputError as exc:
            if exc.symbol is None or str(exc.symbol) not in close.columns:
                raise
            skipped[str(exc.symbol)] = f"error: {exc}"
            close = close.drop(columns=[str(exc.symbol)])
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
    since = np.where(a > 0, frame["bars_since_long"].to_numpy(dtype=float),
                     frame["bars_since_short"].to_numpy(dtype=float))
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
        Show a tqdm progress bar.  Default: only when stderr is a terminal.  False: never.
    chunk_symbols : int, optional
        Symbols per chunk (overrides the size derived from `memory_limit`).
    dollar_volume_bars : int, default 20
        Bars averaged for the dollar-volume column and filter.
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
                                dollar_volume_bars=dollar_volume_bars)
    # The scan needs close and volume only: not loading OHLC saves a third of the read.
    opts = {"fields": ("close", "volume"), **dict(read_options or {})}
    uni = universe if isinstance(universe, Universe) else read_universe(universe, **opts)
    if min_dollar_volume is not None and uni.volume is None:
        raise ValueError("min_dollar_volume needs volume data, and this universe has none")
    t_load = time.perf_counter()

    keep, skipped, extra = _prefilter(
        uni, cfg, min_bars=min_bars, min_price=min_price,
        min_dollar_volume=min_dollar_volume, dollar_volume_bars=int(dollar_volume_bars))
    skipped = {**uni.rejected, **skipped}  # the reader's reasons use the same wording
    close = uni.close.loc[:, keep]
    t_filter = time.perf_counter()

    caught: list = []
    latest = _compute_latest(close, cfg, backend=backend, chunk_symbols=chunk_symbols,
                             memory_limit=memory_limit, skipped=skipped, caught=caught,
                             progress=progress)
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
    )


def _check_scan_args(cfg: ATCConfig, *, top, min_signal, min_bars, dollar_volume_bars) -> int:
    """Validate the scan's own arguments; returns `min_bars` with its default filled in."""
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


def _compute_latest(close: pd.DataFrame, cfg: ATCConfig, *, progress, **kwargs) -> pd.DataFrame:
    """The engine's ``latest()`` rows of every computable column of `close`, with a progress bar."""
    from tqdm.auto import tqdm

    with tqdm(total=close.shape[1], unit="sym", desc="ATC scan", leave=False,
              disable=not _show_progress(progress), file=sys.stderr) as bar:
        rows = list(_latest_rows(close, cfg, bar=bar, **kwargs))
    if rows:
        return pd.concat(rows)
    return pd.DataFrame(columns=["time", "average_signal", "direction", *FAMILIES,
                                 "bars_since_long", "bars_since_short"],
                        index=pd.Index([], name="symbol"))


def _with_columns(latest: pd.DataFrame, uni: Universe, extra: dict) -> pd.DataFrame:
    """`latest` with the prefilter's per-symbol columns (close, dollar volume, bars)."""
    pos = pd.Series(np.arange(uni.n_symbols), index=uni.symbols)
    sel = pos.reindex(latest.index).to_numpy()
    latest = latest.copy()
    for name in ("close", "dollar_volume", "bars"):
        latest[name] = extra[name][sel] if len(sel) else np.array([], dtype=float)
    latest.index.name = "symbol"
    return latest.astype({"bars": "int64", "bars_since_long": float,
                          "bars_since_short": float})


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
