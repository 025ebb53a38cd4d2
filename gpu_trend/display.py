"""How results show themselves in a notebook.

Jupyter displays an object through its ``_repr_html_``; those of
:class:`~gpu_trend.results.ATCResult`, :class:`~gpu_trend.scanner.ScanResult`
and :class:`~gpu_trend.io.Universe` delegate here. Each display is one
compact block drawn by :func:`html_block`: a title, a table of facts (shape,
backend, config, time range) and the first rows of the data that matters
(``latest()``, the hits and skip counts, the symbols). Plain ``repr`` stays
one line.

:func:`show_progress` is how long work (a scan, a sweep) decides to show a
progress bar.
"""

from __future__ import annotations

import dataclasses
import sys
from html import escape
from typing import Any, Mapping

import pandas as pd

from .arrays import is_cupy
from .config import FAMILIES, ATCConfig

#: Rows of a data table shown in a display.
ROWS = 10


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's kernel app), where ``tqdm.auto`` draws a
    notebook progress bar. IPython is only looked at when it is loaded already."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show_progress(progress: bool | None) -> bool:
    """Whether long work draws a progress bar: as asked (True / False), else in a notebook
    (``tqdm.auto`` draws a notebook bar there) or when stderr is a terminal, never in a
    script's or a pipe's output."""
    if progress is not None:
        return bool(progress)
    if in_notebook():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "sym"):
    """The progress bar of long work (scan, iter_atc, sweep): a ``tqdm.auto`` bar over
    `total` units where :func:`show_progress` says so, else a stand-in with the same
    ``update`` (tqdm is not even imported then)."""
    if not show_progress(progress):
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, unit=unit, desc=desc, leave=False, file=sys.stderr)


def html_block(title: str, facts: Mapping[str, Any],
               tables: Mapping[str, pd.DataFrame] | None = None) -> str:
    """The one renderer of the displays: a title, a two-column table of facts, then data
    tables, each under its caption and cut to :data:`ROWS` rows.

    Parameters
    ----------
    title : str
    facts : mapping of str to object
        Shown as ``name | value`` rows, in order; values through ``str``. None is left out.
    tables : mapping of str to pandas.DataFrame, optional
        Caption → table; an empty table is left out.

    Returns
    -------
    str
        An HTML fragment; every text is escaped.
    """
    rows = "".join(f'<tr><th style="text-align:left">{escape(str(k))}</th>'
                   f'<td style="text-align:left">{escape(str(v))}</td></tr>'
                   for k, v in facts.items() if v is not None)
    parts = [f'<div class="gpu-trend"><strong>{escape(title)}</strong>',
             f'<table class="gpu-trend-facts">{rows}</table>']
    for caption, frame in (tables or {}).items():
        if len(frame):
            shown = (f"first {ROWS} of {len(frame)}" if len(frame) > ROWS else
                     f"{len(frame)}")
            parts.append(f"<p>{escape(caption)} ({shown})</p>")
            parts.append(frame.head(ROWS).to_html(border=0, na_rep="",
                                                  float_format=lambda v: f"{v:.6g}"))
    parts.append("</div>")
    return "\n".join(parts)


def config_text(config: ATCConfig) -> str:
    """The config in one line, ``name=value`` for every field; a tuple of six equal
    values as ``value×6``."""
    def short(v):
        if isinstance(v, tuple) and v and len(set(v)) == 1:
            return f"{v[0]!r}×{len(v)}"
        return repr(v) if not isinstance(v, str) else v
    return ", ".join(f"{f.name}={short(getattr(config, f.name))}"
                     for f in dataclasses.fields(config))


def _span(times) -> str | None:
    """``first … last`` of some times (None when there are none)."""
    times = [t for t in times if t is not None and not pd.isna(t)]
    return f"{min(times)} … {max(times)}" if times else None


def _time_range(res) -> str | None:
    """``first … last`` of the times of an ATCResult's bars."""
    if res.positions is None:
        return _span(res.index[[0, -1]]) if len(res.index) else None
    rows = res.positions[res.positions >= 0]
    return _span(res.index[[rows.min(), rows.max()]]) if rows.size else None


def atc_result_repr(res) -> str:
    """One line: ``ATCResult(500 symbols × 1500 bars, backend cpu, first … last)``."""
    members = ", members" if res.member_ma is not None else ""
    span = _time_range(res)
    return (f"ATCResult({res.n_symbols} symbols × {res.n_bars} bars, backend {res.backend}"
            f"{members}{', ' + span if span else ''})")


def atc_result_html(res) -> str:
    """The display of an :class:`~gpu_trend.results.ATCResult`: shape, backend, config,
    time range and the first rows of ``latest()``."""
    members = " × 54 members" if res.member_ma is not None else ""
    arrays = "CuPy" if is_cupy(res.average_signal) else "NumPy"
    facts = {
        "shape": f"{res.n_symbols} symbols × {res.n_bars} bars{members}",
        "backend": f"{res.backend} (arrays in {arrays})",
        "time range": _time_range(res),
        "calendar": ("shared" if res.positions is None
                     else "each symbol on its own bars, packed to the right"),
        "config": config_text(res.config),
        "warnings": "; ".join(res.warnings) or None,
    }
    return html_block("ATCResult", facts, {"latest()": res.latest()})


def scan_result_html(res) -> str:
    """The display of a :class:`~gpu_trend.scanner.ScanResult`: universe size, backend,
    config, the range of the symbols' last bars, the first hits and the skip counts."""
    counts, examples = res.skip_counts(), {}
    for reason in res.skipped.values():
        examples.setdefault(reason.split(":", 1)[0], reason)
    skipped = pd.DataFrame({"symbols": list(counts.values()),
                            "example": [examples[c] for c in counts]},
                           index=pd.Index(list(counts), name="reason"))
    cols = ["rank", "time", "close", "average_signal", "direction", *FAMILIES,
            "bars_since_long", "bars_since_short", "stale"]
    facts = {
        "universe": f"{res.n_symbols} symbols × {res.n_bars} timestamps",
        "scanned": f"{len(res.all)} symbols, {len(res.skipped)} skipped",
        "hits": (f"{len(res.long)} long (≥ {res.long_threshold + 0.0:g}), "
                 f"{len(res.short)} short (≤ {res.short_threshold + 0.0:g})"),
        "backend": res.backend,
        "last bars": _span(res.all["time"]) if len(res.all) else None,
        "config": config_text(res.config),
        "elapsed": f"{res.elapsed.get('total', 0.0):.2f} s",
        "warnings": "; ".join(res.warnings) or None,
    }
    return html_block("ScanResult", facts, {"hits": res.table[cols], "skipped": skipped})


def universe_html(uni) -> str:
    """The display of a :class:`~gpu_trend.io.Universe`: shape, time range, fields, the
    first symbols with their own bars, and the rejected symbols."""
    fields = ["close"] + [n for n in ("open", "high", "low", "volume")
                          if getattr(uni, n) is not None]
    facts = {
        "shape": f"{uni.n_symbols} symbols × {uni.n_bars} timestamps",
        "time range": _span(uni.index[[0, -1]]) if uni.n_bars else None,
        "fields": ", ".join(fields),
        "rejected": len(uni.rejected),
        "ignored files": len(uni.ignored) or None,
        "source": uni.source,
    }
    rejected = pd.DataFrame({"reason": list(uni.rejected.values())},
                            index=pd.Index(list(uni.rejected), name="symbol"))
    return html_block("Universe", facts, {"symbols": _own_bars(uni), "rejected": rejected})


def _own_bars(uni) -> pd.DataFrame:
    """Each symbol's bars: how many, its first and last bar's time, its last close."""
    if not uni.n_bars:
        return pd.DataFrame()
    bars = uni.bar_mask()  # (time, symbol)
    has = bars.any(axis=0)

    def times(rows):
        return pd.Series(uni.index.take(rows)).where(has).to_numpy()

    return pd.DataFrame({
        "bars": bars.sum(axis=0),
        "first bar": times(bars.argmax(axis=0)),
        "last bar": times(len(bars) - 1 - bars[::-1].argmax(axis=0)),
        "last close": uni.close.ffill().iloc[-1].to_numpy(),
    }, index=pd.Index(uni.symbols, name="symbol"))
