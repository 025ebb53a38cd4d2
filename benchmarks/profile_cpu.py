"""Where the CPU kernel's time goes: each family's lane kernel, timed alone, on one thread.

``run_cpu`` (``cpu_fallback/backend.py``) runs the symbols in lane blocks of ``LANES``: it
copies a block's rows time-major, runs the six families' lane kernels (``family_lanes``: the
window pass, nine members and Layer 2, every lane a SIMD lane), then ``final_core`` per
symbol. This script runs the same calls from Python, block by block, and sums each family's
time, so that the families' shares can be compared with each other and with the whole
``compute_atc`` call (both cores; printed last). EMA (nine cheap recurrences, no window) is
close to the cost every family pays for its members' signals and equities and its Layer 2;
what the window families cost beyond it is their window pass and moving averages.

Usage::

    python benchmarks/profile_cpu.py --symbols 1000 --bars 1500 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import gpu_trend
from cpu_fallback.backend import _block_inputs, _fresh_rows, cores, family_lanes
from cpu_fallback.lanes import LANES
from gpu_trend import FAMILIES, outputs
from gpu_trend.state import state_rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--bars", type=int, default=1500)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n_sym, n_bars = args.symbols - args.symbols % LANES or LANES, args.bars
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, (n_sym, n_bars)), axis=1))
    gpu_trend.compute_atc(close[:LANES], backend="cpu")  # compile / load the cache
    p = gpu_trend.ATCConfig().kernel_params(n_bars)
    starts = np.zeros(n_sym, dtype=np.int64)
    out = outputs.allocate(np, n_sym, n_bars, False)
    none = np.empty((1, 54, 0))
    mst, lst, _ = state_rows(np, n_sym)
    blocks = [np.arange(b, b + LANES) for b in range(0, n_sym, LANES)]
    close_t = src_t = np.empty((n_bars, LANES))  # the source is the close
    first = np.empty(LANES, dtype=np.int64)
    start = np.empty(LANES)
    times = {name: [] for name in (*FAMILIES, "block inputs", "final_core", "compute_atc")}
    for _ in range(args.repeat):
        spent = dict.fromkeys(times, 0.0)
        for syms in blocks:
            for s in syms:
                _fresh_rows(mst[s], lst[s])
            t0 = time.perf_counter()
            _block_inputs(close, close, starts, syms, src_t, close_t, first, start, False)
            spent["block inputs"] += time.perf_counter() - t0
            for f, name in enumerate(FAMILIES):
                t0 = time.perf_counter()
                family_lanes(f, src_t, close_t, p.growth, first, start, 0, n_bars,
                             p.lengths[f], p.cutout, p.decay, p.tie_rtol, p.weights[f], LANES,
                             syms, syms, mst, lst, out["family_signals"],
                             out["family_equities"], False, none, none, none)
                spent[name] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for s in syms:
                cores.final_core(out["family_signals"][s], out["family_equities"][s], 0, 0,
                                 p.cutout, p.long_threshold, p.short_threshold,
                                 p.direction_source, p.strategy_view, out["average_signal"][s],
                                 out["direction"][s], out["long_events"][s],
                                 out["short_events"][s], mst[s, 0, :3], False, False)
            spent["final_core"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        gpu_trend.compute_atc(close, backend="cpu")
        spent["compute_atc"] = time.perf_counter() - t0
        for name, sec in spent.items():
            times[name].append(sec)
    print(f"{n_sym} symbols × {n_bars} bars, {LANES} lanes, median of {args.repeat}; "
          "one thread (compute_atc: all threads)")
    for name, ts in times.items():
        med = statistics.median(ts)
        per_bar = med / (n_sym * n_bars) * 1e9
        print(f"  {name:>13}: {med * 1e3:8.1f} ms  {per_bar:6.1f} ns/symbol-bar")


if __name__ == "__main__":
    main()
