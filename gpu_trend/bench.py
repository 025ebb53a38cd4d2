"""Benchmark of the ATC engine (or the whole scan): time, throughput and peak memory.

Run it as ``gpu-trend bench [OPTIONS]`` (or ``python benchmarks/bench_atc.py [OPTIONS]`` in a
checkout).

Examples
--------
CPU, issue 2's target shape::

    gpu-trend bench --symbols 1000 --bars 1500 --backend cpu --repeat 5

A 20,000-symbol universe streamed through ``iter_atc`` under a 2 GiB budget,
keeping only each chunk's ``latest()`` rows (peak RSS of the run)::

    gpu-trend bench --symbols 20000 --bars 1500 --backend cpu --stream \\
        --memory-limit 2GiB --repeat 1

GPU (checks GPU outputs against the CPU on a slice first, then times host prices in →
``latest()`` table out, host in → every output on the host, and CuPy in → CuPy out,
with the CPU time beside it)::

    gpu-trend bench --universe 500,5000,20000 --bars 1500 --backend gpu \\
        --repeat 5 --json gpu.json

The whole ``gpu-trend scan`` job as a user waits for it, from a Parquet file to a Parquet
file (read, scan, write, each timed)::

    gpu-trend bench --scan --symbols 5000 --bars 1500

Prices are the deterministic demo universe (:func:`gpu_trend.demo.demo_universe`:
regime-switching random walks, 5 % later listings); the largest universe is
generated once and smaller ones are its first columns. Each timed call is
preceded by an untimed warm-up on a few symbols, so JIT compilation (or loading
Numba's cache) is excluded.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from . import __version__, compute_atc, gpu_available, iter_atc
from .demo import demo_universe
from .memory import format_bytes

__all__ = ["main", "make_prices"]

OUTPUT_KEYS = ("average_signal", "family_signals", "family_equities", "direction",
               "long_events", "short_events")
MEMBER_KEYS = ("member_ma", "member_signal", "member_equity")
CHECK_SYMBOLS = 64


# ----------------------------------------------------------------------------
# machine and memory
# ----------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(backend: str) -> dict:
    """CPU, versions and (on the GPU backend) device facts for the JSON record."""
    import numba
    import pandas

    import cpu_fallback.backend  # noqa: F401  (pins the threading layer before Numba starts one)

    info = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pandas": pandas.__version__,
        "gpu_trend": __version__,
    }
    if backend == "gpu":
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        info.update(
            gpu_name=name.decode() if isinstance(name, bytes) else str(name),
            gpu_memory_bytes=int(props["totalGlobalMem"]),
            cuda_driver=cupy.cuda.runtime.driverGetVersion(),
            cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
            cupy=cupy.__version__,
        )
    return info


class PeakRSS:
    """Peak resident memory of this process while the ``with`` block runs.

    On Linux the kernel's high-water mark is reset on entry (``/proc/self/clear_refs``)
    and read on exit (``VmHWM``): exact. Elsewhere a thread samples the RSS every
    2 ms (psutil), which can miss short spikes.
    """

    def __enter__(self):
        self.before = _current_rss()
        self.peak = 0
        self.method = "VmHWM"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.method = "sampled"
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.method == "VmHWM":
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        self.peak = int(line.split()[1]) * 1024
        else:
            self._stop.set()
            self._thread.join()
        return False


def _current_rss() -> int:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pool():
    import cupy
    return cupy.get_default_memory_pool()


def _sync():
    import cupy
    cupy.cuda.get_current_stream().synchronize()


# ----------------------------------------------------------------------------
# data and timing
# ----------------------------------------------------------------------------

def make_prices(n_symbols: int, n_bars: int, seed: int) -> tuple:
    """``(close (S, T) C-contiguous float64, symbol names)`` from the demo universe."""
    uni = demo_universe(n_symbols, n_bars, seed=seed)
    close = np.ascontiguousarray(uni.close.to_numpy(dtype=np.float64).T)
    return close, [str(s) for s in uni.close.columns]


def _time(fn, repeat: int, sync=None) -> list:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def _traced_peak(fn) -> int:
    """Peak bytes allocated through Python's allocators (NumPy, Numba's runtime) during ``fn``."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _record(n_sym, n_bars, backend, mode, times, **extra) -> dict:
    med = statistics.median(times)
    return dict(symbols=n_sym, bars=n_bars, backend=backend, mode=mode, times_s=times,
                median_s=med, ms_per_symbol=1e3 * med / n_sym,
                symbol_bars_per_s=n_sym * n_bars / med, **extra)


def check_gpu_equals_cpu(close, names, members: bool) -> dict:
    """GPU outputs bit-for-bit equal to the CPU's on the first symbols, host and CuPy input."""
    import cupy

    part, who = close[:CHECK_SYMBOLS], names[:CHECK_SYMBOLS]
    cpu = compute_atc(part, backend="cpu", members=members, symbols=who)
    host = compute_atc(part, backend="gpu", members=members, symbols=who)
    dev = compute_atc(cupy.asarray(part), backend="gpu", members=members, symbols=who)
    keys = OUTPUT_KEYS + (MEMBER_KEYS if members else ())
    for key in keys:
        want = getattr(cpu, key)
        np.testing.assert_array_equal(getattr(host, key), want, err_msg=f"{key} (host input)")
        np.testing.assert_array_equal(getattr(dev, key).get(), want, err_msg=f"{key} (CuPy input)")
    return {"symbols": len(who), "outputs": list(keys), "equal": True}


def bench_size(close, names, args, info_rows: list) -> list:
    """Timed runs of one universe size."""
    n_sym, n_bars = close.shape
    kw = dict(members=args.members, memory_limit=args.memory_limit, symbols=names)
    runs = []
    warm = slice(0, min(8, n_sym))

    def cpu_end_to_end():
        return compute_atc(close, backend="cpu", **kw).latest()

    compute_atc(close[warm], backend="cpu", members=args.members)
    if args.backend == "cpu" or not args.no_cpu:
        times = _time(cpu_end_to_end, args.cpu_repeat or args.repeat)
        with PeakRSS() as rss:
            cpu_end_to_end()
        extra = {"traced_peak_bytes": _traced_peak(cpu_end_to_end)} if args.trace else {}
        runs.append(_record(n_sym, n_bars, "cpu", "end-to-end", times,
                            peak_rss_bytes=rss.peak, rss_before_bytes=rss.before,
                            peak_rss_method=rss.method, **extra))
    if args.backend == "gpu":
        import cupy

        compute_atc(close[warm], backend="gpu", members=args.members)
        compute_atc(cupy.asarray(close[warm]), backend="gpu", members=args.members)

        def gpu_end_to_end():
            # Prices on the host in, latest() table out: one upload, results kept on the
            # device, the last-bar table computed there and downloaded.
            return compute_atc(cupy.asarray(close), backend="gpu", **kw).latest()

        def gpu_host_outputs():
            # Host in, every output downloaded into host arrays (compute_atc on NumPy input).
            return compute_atc(close, backend="gpu", **kw)

        for mode, fn in (("end-to-end", gpu_end_to_end), ("host all outputs", gpu_host_outputs)):
            times = _time(fn, args.repeat)
            _pool().free_all_blocks()
            fn()
            # The pool only grows while a call runs (freed blocks are cached, not returned),
            # so what it holds afterwards, from empty, bounds the call's peak device use.
            runs.append(_record(n_sym, n_bars, "gpu", mode, times,
                                pool_peak_bytes=int(_pool().total_bytes())))
        d_close = cupy.asarray(close)

        def device_resident():
            return compute_atc(d_close, backend="gpu", **kw)

        times = _time(device_resident, args.repeat, sync=_sync)
        _pool().free_all_blocks()
        base = int(_pool().total_bytes())
        res = device_resident()
        _sync()
        runs.append(_record(n_sym, n_bars, "gpu", "device-resident", times,
                            pool_peak_bytes=int(_pool().total_bytes()) - base))
        del res, d_close
        cpu = [r for r in runs if r["backend"] == "cpu"]
        if cpu:
            for r in runs:
                if r["backend"] == "gpu":
                    r["speedup_vs_cpu"] = cpu[0]["median_s"] / r["median_s"]
    info_rows.extend(runs)
    return runs


def bench_stream(close, names, args) -> dict:
    """``iter_atc`` over the universe, keeping only each chunk's ``latest()`` rows."""
    import pandas as pd

    n_sym, n_bars = close.shape
    compute_atc(close[:8], backend=args.backend, members=args.members)
    chunk_sizes = []

    def run():
        chunk_sizes.clear()
        rows = []
        for res in iter_atc(close, backend=args.backend, members=args.members,
                                      memory_limit=args.memory_limit, symbols=names,
                                      progress=False):
            chunk_sizes.append(res.n_symbols)
            rows.append(res.latest())
        return pd.concat(rows)

    times = []
    peaks = []
    for _ in range(args.repeat):
        gc.collect()
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            table = run()
            times.append(time.perf_counter() - t0)
        peaks.append((rss.peak, rss.before))
        assert len(table) == n_sym
        del table
    peak, before = max(peaks)
    extra = {"traced_peak_bytes": _traced_peak(run)} if args.trace else {}
    return _record(n_sym, n_bars, args.backend, "stream latest()", times, **extra,
                   peak_rss_bytes=peak, rss_before_bytes=before, peak_rss_method=rss.method,
                   input_bytes=close.nbytes, memory_limit=args.memory_limit,
                   chunk_symbols=max(chunk_sizes), chunks=len(chunk_sizes))


def bench_scan(uni, args) -> dict:
    """``gpu-trend scan`` from a Parquet file to a Parquet file: read, scan and write timed."""
    from .io import read_universe, write_universe
    from .scanner import scan

    # Untimed, like every warm-up here: the first scan of a process loads the kernels.
    scan(uni.select(uni.symbols[:2]), backend=args.backend, progress=False)
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        src = write_universe(uni, Path(tmp) / "universe.parquet", format="long")
        for _ in range(args.repeat):
            gc.collect()
            t0 = time.perf_counter()
            # The fields `gpu-trend scan` reads.
            data = read_universe(src, fields=("close", "volume"))
            t1 = time.perf_counter()
            res = scan(data, backend=args.backend, progress=False)
            t2 = time.perf_counter()
            res.to_file(Path(tmp) / "hits.parquet")
            parts.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    read_s, scan_s, write_s = (statistics.median(p) for p in zip(*parts))
    return _record(uni.n_symbols, uni.n_bars, args.backend, "scan files",
                   [sum(p) for p in parts], read_s=read_s, scan_s=scan_s, write_s=write_s)


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------

def print_table(runs: list) -> None:
    """One line per run: size, mode, median time, throughput, peak memory, GPU speed-up."""
    head = (f"{'symbols':>8} {'bars':>6} {'backend':>7} {'mode':>16} {'median s':>9} "
            f"{'ms/sym':>8} {'sym·bars/s':>11} {'peak memory (growth)':>30} {'speed-up':>8}")
    print(head)
    print("-" * len(head))
    for r in runs:
        if "peak_rss_bytes" in r:
            grew = r["peak_rss_bytes"] - r["rss_before_bytes"]
            mem = f"RSS {format_bytes(r['peak_rss_bytes'])} (+{format_bytes(grew)})"
        elif "pool_peak_bytes" in r:
            mem = f"pool {format_bytes(r['pool_peak_bytes'])}"
        else:
            mem = "-"
        speed = f"{r['speedup_vs_cpu']:.1f}x" if "speedup_vs_cpu" in r else ""
        print(f"{r['symbols']:>8} {r['bars']:>6} {r['backend']:>7} {r['mode']:>16} "
              f"{r['median_s']:>9.3f} {r['ms_per_symbol']:>8.3f} {r['symbol_bars_per_s']:>11.3g} "
              f"{mem:>30} {speed:>8}")


def print_notes(runs: list) -> None:
    """What the table has no column for: streaming chunks, tracemalloc peaks, scan steps."""
    for r in runs:
        if r["mode"] == "stream latest()":
            print(f"stream: {r['chunks']} chunks of up to {r['chunk_symbols']} symbols under "
                  f"memory_limit={r['memory_limit']}; peak RSS {format_bytes(r['peak_rss_bytes'])}"
                  f" ({r['peak_rss_method']}) including the {format_bytes(r['input_bytes'])} "
                  f"input")
        if "traced_peak_bytes" in r:
            print(f"{r['symbols']} symbols, {r['mode']}: tracemalloc peak "
                  f"{format_bytes(r['traced_peak_bytes'])} ({r['traced_peak_bytes']} bytes)")
        if r["mode"] == "scan files":
            print(f"{r['symbols']} symbols, scan files: read Parquet {r['read_s']:.3f} s, "
                  f"scan {r['scan_s']:.3f} s, write Parquet {r['write_s']:.3f} s (medians)")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The benchmark's options; `prog` names it in messages (default: the script's name)."""
    from .cli import _Parser  # usage errors in one line, like every gpu-trend command

    p = _Parser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=1000, help="universe size (default 1000)")
    p.add_argument("--universe", type=str, default=None,
                   help="comma-separated universe sizes, e.g. 500,5000,20000 (overrides "
                        "--symbols)")
    p.add_argument("--bars", type=int, default=1500, help="bars per symbol (default 1500)")
    p.add_argument("--backend", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--cpu-repeat", type=int, default=None,
                   help="repetitions of the CPU comparison on --backend gpu (default --repeat)")
    p.add_argument("--no-cpu", action="store_true",
                   help="on --backend gpu, skip the CPU comparison")
    p.add_argument("--seed", type=int, default=0, help="demo universe seed")
    p.add_argument("--memory-limit", type=str, default=None,
                   help="working-memory budget, e.g. 2GiB or 50%% (default: the library's)")
    p.add_argument("--members", action="store_true", help="also compute the 54 member outputs")
    p.add_argument("--stream", action="store_true",
                   help="stream through iter_atc keeping only latest() rows; report peak RSS")
    p.add_argument("--scan", action="store_true",
                   help="time the whole scan instead, Parquet file in and out (read, scan, "
                        "write), on --backend alone")
    p.add_argument("--trace", action="store_true",
                   help="on the CPU, also record the tracemalloc peak of one extra, untimed run")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def _argument_problem(args: argparse.Namespace, sizes: list) -> str | None:
    if min(sizes) < 1 or args.bars < 2 or args.repeat < 1:
        return "sizes, --bars and --repeat must be positive"
    if args.stream and len(sizes) > 1:
        return "--stream measures the peak RSS of one universe: give one size"
    if args.scan and (args.stream or args.members):
        return "--scan times the scanner, which neither streams nor keeps members"
    if args.backend == "gpu" and not gpu_available():
        from .backend import gpu_status
        return f"--backend gpu, but {gpu_status()[1]}"
    return None


def _print_machine(info: dict, backend: str) -> None:
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, "
          f"{info['numba_threads']} Numba threads; numpy {info['numpy']}, numba {info['numba']}")
    if backend == "gpu":
        print(f"device: {info['gpu_name']}, driver {info['cuda_driver']}, CuPy {info['cupy']}")


def _engine_runs(sizes: list, args: argparse.Namespace, record: dict) -> None:
    """The compute_atc (or iter_atc) timings of every size, into ``record["runs"]``."""
    t0 = time.perf_counter()
    all_close, all_names = make_prices(max(sizes), args.bars, args.seed)
    print(f"generated {max(sizes)} × {args.bars} demo prices in {time.perf_counter() - t0:.1f} s")
    if args.backend == "gpu":
        record["check"] = check_gpu_equals_cpu(all_close, all_names, args.members)
        print(f"check: GPU == CPU on the first {record['check']['symbols']} symbols, "
              f"all outputs, host and CuPy input")
    for n in sorted(sizes):
        close = all_close if n == all_close.shape[0] else np.ascontiguousarray(all_close[:n])
        names = all_names[:n]
        if args.stream:
            del all_close  # only `close` may hold the input while the peak is measured
            gc.collect()
            record["runs"].append(bench_stream(close, names, args))
        else:
            bench_size(close, names, args, record["runs"])


def _scan_runs(sizes: list, args: argparse.Namespace, record: dict) -> None:
    """The file-to-file scan timings of every size, into ``record["runs"]``."""
    t0 = time.perf_counter()
    uni = demo_universe(max(sizes), args.bars, seed=args.seed)
    print(f"generated {max(sizes)} × {args.bars} demo prices in {time.perf_counter() - t0:.1f} s")
    for n in sorted(sizes):
        part = uni if n == uni.n_symbols else uni.select(uni.symbols[:n])
        record["runs"].append(bench_scan(part, args))


def main(argv=None, prog: str | None = None) -> int:
    """Run the benchmark.

    Parameters
    ----------
    argv : sequence of str, optional
        The benchmark's options (default: ``sys.argv[1:]``); ``--help`` lists them.
    prog : str, optional
        The name in usage and error messages (default: the script's name).

    Returns
    -------
    int
        The process exit status: 0, or 2 for options that cannot be run.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    sizes = ([int(x) for x in args.universe.split(",") if x.strip()] if args.universe
             else [args.symbols])
    problem = _argument_problem(args, sizes)
    if problem is not None:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    info = machine_info(args.backend)
    _print_machine(info, args.backend)
    record = {"machine": info, "args": {k: (str(v) if isinstance(v, Path) else v)
                                        for k, v in vars(args).items()}, "runs": []}
    (_scan_runs if args.scan else _engine_runs)(sizes, args, record)
    print_table(record["runs"])
    print_notes(record["runs"])
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0
