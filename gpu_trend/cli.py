"""The ``gpu-trend`` command line (also ``python -m gpu_trend``).

Commands::

    gpu-trend scan PATH [--format auto|long|wide] [--backend auto|cpu|gpu] [--min-signal X]
                        [--top N] [--out results.csv|.parquet|.json] ...
    gpu-trend plot PATH SYMBOL [--out chart.png] [--last N]
    gpu-trend demo [--symbols 500] [--bars 1500] [--seed 0] [--top 10]
    gpu-trend sweep PATH [--lengths 14,21,28] [--robustness Narrow,Medium] [--la 0,0.02] ...
                         [--cost C] [--out summary.csv]   (see gpu-trend sweep --help)
    gpu-trend bench [--symbols N] [--backend cpu|gpu] [--scan] ...   (see gpu-trend bench --help)
    gpu-trend --version

Errors print one line on stderr (``gpu-trend: error: …``) and exit with status 1 (2 for a
usage error); set ``GPU_TREND_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

from ._version import __version__
from .backend import BACKENDS
from .calendars import CALENDARS
from .config import NAN_POLICIES, ROBUSTNESS_OFFSETS
from .files import IMAGE_SUFFIXES, TABLE_SUFFIXES
from .io import FORMATS

PROG = "gpu-trend"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> None:  # noqa: D401 (argparse API)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _CLIError(Exception):
    """An error whose message is already what the user should read."""


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("indicator parameters (TradingView dialog units)")
    g.add_argument("--la", type=float, help="Lambda (default 0.02)")
    g.add_argument("--de", type=float, help="Decay %% (default 0.03)")
    g.add_argument("--cutout", type=int, help="first bar with equities (default 0)")
    g.add_argument("--robustness", choices=tuple(ROBUSTNESS_OFFSETS),
                   help="member lengths around each base length (default Medium)")
    g.add_argument("--length", type=int, metavar="N",
                   help="base length of all six families (default 28)")
    g.add_argument("--lengths", metavar="E,H,W,D,L,K",
                   help="six base lengths, EMA,HMA,WMA,DEMA,LSMA,KAMA")
    g.add_argument("--long-threshold", type=float, help="default 0.1")
    g.add_argument("--short-threshold", type=float, help="default -0.1")
    g.add_argument("--nan-policy", choices=NAN_POLICIES,
                   help="NaN close inside a history: skip the symbol (raise, default), "
                        "carry the last close (ffill), or the script's semantics (pine)")


def _add_read_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--format", choices=FORMATS, default="auto",
                   help="long: one row per (symbol, time); wide: time × symbols closes "
                        "(default: auto-detect)")
    g.add_argument("--columns", metavar="FIELD=NAME,...",
                   help="column names, e.g. symbol=ticker,time=date,close=adj_close")
    g.add_argument("--volume", metavar="PATH", help="wide volume table (wide format only)")
    g.add_argument("--time-unit", choices=("s", "ms", "us", "ns"),
                   help="read a numeric time column as epoch timestamps in this unit")
    g.add_argument("--sort", action="store_true",
                   help="sort rows by time instead of rejecting out-of-order rows")


def _max_age(text: str) -> int | str:
    """A bar count (digits) or a time span pandas reads ("30D", "12h")."""
    import pandas as pd

    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        pd.Timedelta(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time span (30D, 12h) or a number of "
                                         f"bars, got {text!r}") from None
    return text


def _memory_limit(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text.strip()


def _config(args: argparse.Namespace):
    from .config import ATCConfig

    kw: dict[str, Any] = {}
    for name in ("la", "de", "cutout", "robustness", "long_threshold", "short_threshold",
                 "nan_policy"):
        value = getattr(args, name, None)
        if value is not None:
            kw[name] = value
    if getattr(args, "length", None) is not None and getattr(args, "lengths", None):
        raise _CLIError("give --length or --lengths, not both")
    if getattr(args, "length", None) is not None:
        kw["lengths"] = (args.length,) * 6
    if getattr(args, "lengths", None):
        try:
            kw["lengths"] = tuple(int(v) for v in args.lengths.split(","))
        except ValueError:
            raise _CLIError(f"--lengths must be six integers separated by commas, "
                            f"got {args.lengths!r}") from None
    return ATCConfig(**kw)


def _read_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"format": args.format, "sort": args.sort}
    if args.columns:
        mapping = {}
        for item in args.columns.split(","):
            if "=" not in item:
                raise _CLIError(f"--columns takes FIELD=NAME pairs, got {item!r}")
            key, value = item.split("=", 1)
            mapping[key.strip()] = value.strip()
        opts["columns"] = mapping
    if args.volume:
        opts["volume"] = args.volume
    if args.time_unit:
        opts["time_unit"] = args.time_unit
    return opts


def _progress(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
def _cmd_scan(args: argparse.Namespace) -> int:
    from .io import read_universe

    t0 = time.perf_counter()
    path = _checked_paths(args.path, (args.out, args.skipped_out), tuple(TABLE_SUFFIXES))
    cfg = _config(args)
    warm = _start_warm_up(cfg, args.backend)
    uni = read_universe(path, fields=("close", "volume"), **_read_options(args))
    _wait_for_kernels(warm)
    t_read = time.perf_counter()
    res = _scan(uni, cfg, args, min_bars=args.min_bars, min_price=args.min_price,
                min_dollar_volume=args.min_dollar_volume, min_signal=args.min_signal,
                top=args.top, memory_limit=args.memory_limit, max_age=args.max_age,
                calendar=args.calendar, state=args.state)
    t_scan = time.perf_counter()
    if args.out is not None:
        res.to_file(args.out, which="all" if args.all else "table")
    if args.skipped_out is not None:
        res.to_file(args.skipped_out, which="skipped")
    t_end = time.perf_counter()
    if not args.quiet:
        print(_cli_syntax(res.summary(n=args.show)))
        if args.out is not None:
            rows = len(res.all) if args.all else len(res.table)
            print(f"\nwrote {rows} rows to {args.out}")
        if args.skipped_out is not None:
            print(f"wrote {len(res.skipped)} skipped symbols to {args.skipped_out}")
        if args.state is not None:
            print(f"saved the state to {args.state}")
        print(f"wall time {t_end - t0:.2f} s (read + kernel load {t_read - t0:.2f}, "
              f"scan {t_scan - t_read:.2f}, write {t_end - t_scan:.2f})")
    return _nothing_scanned(res)


def _scan(uni: Any, cfg: Any, args: argparse.Namespace, **kwargs: Any):
    """Run the scan, printing the engine's warnings as one line each (no source lines)."""
    import warnings

    from .scanner import scan

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        res = scan(uni, cfg, backend=args.backend, progress=_progress(args), **kwargs)
    for message in res.warnings:
        print(f"{PROG}: warning: {_cli_syntax(message)}", file=sys.stderr)
    return res


def _nothing_scanned(res: Any) -> int:
    """Exit status 1, with the skip reasons by count, when no symbol could be scanned."""
    if len(res.all) or not res.n_symbols:
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in res.skip_counts().items())
    example = next(iter(res.skipped.items()))
    print(f"{PROG}: error: scanned 0 of {res.n_symbols} symbols ({counts}); e.g. "
          f"{example[0]}: {_cli_syntax(example[1])}", file=sys.stderr)
    return 1


#: Library keywords in messages, and the options a command-line user types instead.
_OPTION_OF = {"nan_policy": "--nan-policy", "max_age": "--max-age", "memory_limit":
              "--memory-limit", "min_bars": "--min-bars", "calendar": "--calendar"}


def _cli_syntax(text: str) -> str:
    """Messages say ``nan_policy='ffill'`` to Python users; here that is ``--nan-policy ffill``."""
    text = re.sub(r"\b(" + "|".join(_OPTION_OF) + r")=(['\"]?)([\w.-]+)\2",
                  lambda m: f"{_OPTION_OF[m.group(1)]} {m.group(3)}", text)
    text = re.sub(r"columns=\{'(\w+)': '?([^'}]+?)'?\}", r"--columns \1=\2", text)
    # Bare names too ("raise memory_limit"), where they cannot be a plain word.
    bare = [k for k in _OPTION_OF if "_" in k]
    return re.sub(r"\b(" + "|".join(bare) + r")\b", lambda m: _OPTION_OF[m.group(1)], text)


def _start_warm_up(cfg: Any, backend: str):
    """Load the compiled kernels on a thread while the main thread reads the data.

    The first ATC call of a process loads Numba's cache (about half a second); the file read
    spends most of its time in pyarrow with the GIL released, so the two overlap.  Any
    failure here is ignored: the real call reports it properly.
    """
    import threading

    def warm() -> None:
        try:
            import warnings

            import numpy as np

            from .engine import compute_atc

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compute_atc(np.linspace(1.0, 2.0, 8)[None, :], cfg, backend=backend)
        except Exception:
            pass

    from cpu_fallback.backend import in_disk_cache

    thread = threading.Thread(target=warm, name="gpu-trend-warm-up", daemon=True)
    thread.cached = in_disk_cache()
    thread.start()
    return thread


def _wait_for_kernels(warm: Any) -> None:
    """Wait for the warm-up, saying why when it compiles (the first run after an install or
    upgrade: a minute or more of silence otherwise on a 2-core machine)."""
    if warm.is_alive() and not warm.cached:
        print(f"{PROG}: compiling the ATC kernels (first run only after an install or upgrade, "
              f"a minute or more on 2 cores; later runs load them from Numba's cache)…",
              file=sys.stderr, flush=True)
    warm.join()


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_universe
    from .io import write_universe

    if args.out is not None:
        _check_out_path(args.out, tuple(TABLE_SUFFIXES))
    cfg = _config(args)
    warm = _start_warm_up(cfg, args.backend)
    t0 = time.perf_counter()
    uni = demo_universe(args.symbols, args.bars, args.seed)
    t_gen = time.perf_counter()
    print(f"demo universe: {uni.n_symbols} symbols × {uni.n_bars} hourly bars "
          f"(seed {args.seed}), generated in {t_gen - t0:.2f} s")
    if args.save_data is not None:
        write_universe(uni, args.save_data, format="long")
        print(f"saved the demo data to {args.save_data}")
    _wait_for_kernels(warm)
    res = _scan(uni, cfg, args, top=args.top)
    print(_cli_syntax(res.summary(n=args.top)))
    if args.out is not None:
        res.to_file(args.out)
        print(f"\nwrote {len(res.table)} rows to {args.out}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plotting import plot

    out = args.out or f"atc_{re.sub(r'[^A-Za-z0-9._-]+', '_', args.symbol)}.png"
    path = _checked_paths(args.path, (out,), IMAGE_SUFFIXES)
    from .io import read_universe

    uni = read_universe(path, **_read_options(args))
    plot(uni, args.symbol, config=_config(args), out=out, last=args.last,
         backend=args.backend)
    print(f"wrote {out}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import warnings

    from .files import write_table
    from .io import read_universe
    from .sweep import sweep

    t0 = time.perf_counter()
    path = _checked_paths(args.path, (args.out, args.per_symbol), tuple(TABLE_SUFFIXES))
    grid = _sweep_grid(args)
    uni = read_universe(path, **_read_options(args))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        res = sweep(uni, grid, backend=args.backend, memory_limit=args.memory_limit,
                    progress=_progress(args))
    for message in res.warnings:
        print(f"{PROG}: warning: {_cli_syntax(message)}", file=sys.stderr)
    table = res.summary(args.cost, by="config")
    for name in ("lengths", "weights"):  # as the options take them: 14, or 14/14/20/14/14/14
        if name in table:
            table[name] = [f"{v[0]:g}" if len(set(v)) == 1 else "/".join(f"{x:g}" for x in v)
                           for v in table[name]]
    if args.out is not None:
        write_table(table, args.out, index=True)
    if args.per_symbol is not None:
        write_table(res.summary(args.cost, by="symbol"), args.per_symbol, index=True)
    if not args.quiet:
        import pandas as pd

        best = table.sort_values(args.sort_by, ascending=args.sort_by in _LOWER_IS_BETTER)
        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(f"{res.n_configs} configurations × {len(res.symbols)} symbols "
                  f"({res.backend}); best {min(args.show, len(best))} by {args.sort_by}:")
            print(best.head(args.show).to_string(float_format=lambda v: f"{v:.4g}"))
        if args.out is not None:
            print(f"\nwrote {len(table)} rows to {args.out}")
        if args.per_symbol is not None:
            print(f"wrote {len(table) * len(res.symbols)} rows to {args.per_symbol}")
        print(f"wall time {time.perf_counter() - t0:.2f} s")
    return 0


#: Summary columns where a smaller value is the better configuration.
_LOWER_IS_BETTER = ("max_drawdown", "worst_drawdown")


def _grid_values(text: str, option: str, kind: type, per_family: bool = False) -> list:
    """The comma-separated values of a sweep option; with ``per_family`` an item is one
    value for all six families or six joined by "/"."""
    values = []
    for item in text.split(","):
        parts = item.strip().split("/")
        try:
            got = [kind(v.strip()) for v in parts]
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(kind, "true or false")
            raise _CLIError(f"{option}: {item.strip()!r} is not {what}") from None
        if per_family and len(got) not in (1, 6):
            raise _CLIError(f"{option}: {item.strip()!r} must be one value or six joined by "
                            f"'/' (EMA/HMA/WMA/DEMA/LSMA/KAMA)")
        if not per_family and len(got) != 1:
            raise _CLIError(f"{option}: {item.strip()!r} is not one value")
        values.append(tuple(got) if len(got) == 6 else got[0])
    return values


def _flag(text: str) -> bool:
    words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
    if text.lower() not in words:
        raise ValueError(text)
    return words[text.lower()]


#: Sweep options: (option, ATCConfig field, value type, one value per family allowed).
_SWEEP_FIELDS = (("--lengths", "lengths", int, True), ("--robustness", "robustness", str, False),
                 ("--la", "la", float, False), ("--de", "de", float, False),
                 ("--cutout", "cutout", int, False), ("--weights", "weights", float, True),
                 ("--long-threshold", "long_threshold", float, False),
                 ("--short-threshold", "short_threshold", float, False),
                 ("--tie-rtol", "tie_rtol", float, False),
                 ("--direction-source", "direction_source", str, False),
                 ("--strategy-view", "strategy_view", _flag, False))


def _sweep_grid(args: argparse.Namespace) -> dict:
    grid: dict[str, Any] = {}
    for option, name, kind, per_family in _SWEEP_FIELDS:
        text = getattr(args, name)
        if text is not None:
            grid[name] = _grid_values(text, option, kind, per_family)
    if args.nan_policy is not None:
        grid["nan_policy"] = [args.nan_policy]
    return grid


def _checked_paths(path: str, outs, suffixes: tuple[str, ...]) -> Path:
    """The input path, once it and every given output (None: not asked for) are checked."""
    path = Path(path)
    if not path.exists():
        raise _CLIError(f"no such file or directory: {path}")
    for out in outs:
        if out is not None:
            _check_out_path(out, suffixes)
    return path


def _check_out_path(path: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an output that could not be written before any work is done."""
    if not path.lower().endswith(suffixes):
        listed = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        raise _CLIError(f"cannot write {path!r}: the output must end in {listed}")
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise _CLIError(f"cannot write {path!r}: directory {parent} does not exist")


# --------------------------------------------------------------------------------------------
# parser and entry point
# --------------------------------------------------------------------------------------------
_BACKEND = dict(choices=BACKENDS, default="auto",
                help="where to compute (default: GPU if usable, else CPU)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gpu-trend``."""
    parser = _Parser(
        prog=PROG,
        description="Adaptive Trend Classification (ATC) for a whole market universe.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_scan_parser(sub)
    _add_plot_parser(sub)
    _add_demo_parser(sub)
    _add_sweep_parser(sub)
    # Listed for --help only: main() hands everything after "bench" to gpu_trend.bench.main,
    # which has its own options and --help.
    sub.add_parser("bench", help="time the engine, or the whole scan (see bench --help)")
    return parser


def _add_scan_parser(sub: Any) -> None:
    p = sub.add_parser("scan", help="scan a universe and rank the signals",
                       description="Compute ATC for every symbol in PATH (a .parquet/.csv "
                                   "file or a directory of per-symbol files), rank them and "
                                   "print the strongest longs and shorts.")
    p.add_argument("path", metavar="PATH")
    _add_read_options(p)
    p.add_argument("--backend", **_BACKEND)
    f = p.add_argument_group("filters")
    f.add_argument("--min-signal", type=float, metavar="X",
                   help="keep |Average_Signal| >= X (default: the long/short thresholds)")
    f.add_argument("--top", type=int, metavar="N", help="keep the N strongest longs and shorts")
    f.add_argument("--min-bars", type=int, metavar="N",
                   help="skip symbols with fewer bars (default: the 54-MA warm-up, 67)")
    f.add_argument("--min-price", type=float, metavar="P", help="skip last close below P")
    f.add_argument("--min-dollar-volume", type=float, metavar="V",
                   help="skip mean close×volume (last 20 bars) below V")
    f.add_argument("--max-age", type=_max_age, metavar="AGE",
                   help="skip symbols whose last bar is older than the newest by more than "
                        "AGE: a time span (30D, 12h, 2W) or a number of bars")
    f.add_argument("--calendar", choices=CALENDARS, default="own",
                   help="own: each symbol on its own bars (default); union: on the grid of "
                        "all timestamps, where other symbols' times are missing closes")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE", help="write the table to .csv, .parquet or .json")
    o.add_argument("--all", action="store_true",
                   help="with --out: write every scanned symbol, not only the hits")
    o.add_argument("--skipped-out", metavar="FILE",
                   help="write the skipped symbols and reasons (.csv/.parquet/.json)")
    o.add_argument("--show", type=int, default=10, metavar="N",
                   help="rows of each list to print (default 10)")
    _add_run_options(p, o)
    p.add_argument("--state", metavar="FILE.npz",
                   help="warm scan: compute only the bars after each symbol's last bar in FILE "
                        "(written by the previous scan; created if missing), then update it")
    _add_config_options(p)
    p.set_defaults(func=_cmd_scan)


def _add_plot_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="draw one symbol's ATC chart",
                       description="Draw price, the six family MAs, long/short arrows and "
                                   "Average_Signal for SYMBOL from the data in PATH.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("symbol", metavar="SYMBOL")
    p.add_argument("--out", metavar="FILE", help="image file (default atc_SYMBOL.png)")
    p.add_argument("--last", type=int, default=300, metavar="N",
                   help="bars shown (default 300; the indicator uses the whole history)")
    p.add_argument("--backend", **_BACKEND)
    _add_read_options(p)
    _add_config_options(p)
    p.set_defaults(func=_cmd_plot)


def _add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="scan the built-in demo universe",
                       description="Generate the deterministic demo universe (regime-"
                                   "switching random walks), scan it and print the top long "
                                   "and short lists with the timing. No data or network "
                                   "needed.")
    p.add_argument("--symbols", type=int, default=500, help="default 500")
    p.add_argument("--bars", type=int, default=1500, help="default 1500")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--top", type=int, default=10, help="rows of each list (default 10)")
    p.add_argument("--backend", **_BACKEND)
    p.add_argument("--out", metavar="FILE", help="write the table to .csv, .parquet or .json")
    p.add_argument("--save-data", metavar="FILE",
                   help="also write the demo universe (long form, .parquet or .csv)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _add_config_options(p)
    p.set_defaults(func=_cmd_demo)


def _add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="evaluate a grid of parameters (calibration)",
                       description="Compute ATC for every configuration of a grid (the "
                                   "Cartesian product of the values given) on the data in "
                                   "PATH, backtest the strategy that follows each "
                                   "configuration's direction and print the best. Values "
                                   "are comma-separated; for --lengths and --weights an "
                                   "item is one value for all six families or six joined "
                                   "by '/'.")
    p.add_argument("path", metavar="PATH")
    _add_read_options(p)
    p.add_argument("--backend", **_BACKEND)
    g = p.add_argument_group("the grid (TradingView dialog units; unset fields keep their "
                             "defaults)")
    for option, name, _kind, per_family in _SWEEP_FIELDS:
        g.add_argument(option, dest=name, metavar="V,V,..",
                       help="e.g. 14,21,28 or 14/14/20/14/14/14,28" if per_family else None)
    g.add_argument("--nan-policy", choices=NAN_POLICIES,
                   help="NaN close inside a history (default raise)")
    o = p.add_argument_group("summary")
    o.add_argument("--cost", type=float, default=0.0,
                   help="fraction of equity paid per unit of position traded (default 0)")
    o.add_argument("--out", metavar="FILE",
                   help="write the per-configuration summary (.csv, .parquet or .json)")
    o.add_argument("--per-symbol", metavar="FILE",
                   help="write the per-(configuration, symbol) summary")
    o.add_argument("--sort-by", default="total_return",
                   choices=("total_return", "annualised_return", "max_drawdown",
                            "worst_drawdown", "positive", "trades", "time_in_market"),
                   help="rank the printed configurations (default total_return)")
    o.add_argument("--show", type=int, default=10, metavar="N",
                   help="configurations to print (default 10)")
    _add_run_options(p, o)
    p.set_defaults(func=_cmd_sweep)


def _add_run_options(p: argparse.ArgumentParser, output) -> None:
    """The options every long command (scan, sweep) takes: quiet, progress, memory."""
    output.add_argument("--quiet", action="store_true", help="print nothing on success")
    output.add_argument("--no-progress", action="store_true",
                        help="never show a progress bar")
    p.add_argument("--memory-limit", type=_memory_limit, metavar="SIZE",
                   help="bound the compute's working memory: bytes, or e.g. 4GiB, 512MB, 50%%")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if isinstance(exc, (_CLIError, ValueError, FileNotFoundError, KeyError)):
        return text
    return f"{type(exc).__name__}: {text}"


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``gpu-trend`` program (and ``python -m gpu_trend``): :func:`main`, then a quick exit.

    A normal exit finalises the interpreter: it frees every object and unloads every compiled
    kernel, which takes 0.5–0.7 s after any Numba call on the 2-core benchmark VM
    (``benchmarks/RESULTS.md``) and does nothing a finished command needs. So once
    :func:`main` returns, the exit handlers run (``atexit``: what libraries registered to
    release, e.g. worker processes) and the streams are flushed, and the process exits with
    ``os._exit``, as mypy's command line does. Every file a command writes is complete and
    closed by then (written atomically, :mod:`gpu_trend.files`).
    """
    import atexit

    code = main(argv)
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to add
                pass
        os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on an error, 2 on a usage error, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv[:1] == ["bench"]:
            # The benchmark owns its options and its --help; argparse cannot hand a
            # subcommand's arguments on untouched when the first one starts with "-".
            from .bench import main as bench_main

            return bench_main(argv[1:], prog=f"{PROG} bench")
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gpu-trend scan … | head` closes stdout early: not an error worth a message.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # one line, no traceback, for every failure (see module doc)
        if os.environ.get("GPU_TREND_DEBUG"):
            raise
        print(f"{PROG}: error: {_cli_syntax(_one_line(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
