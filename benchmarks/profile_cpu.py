"""Where the CPU kernel's time goes: each family and the final core, timed alone.

``run_cpu`` runs, per symbol, the returns, then per family the shared window
pass (window families only), nine ``member_core`` calls (MA, signal, Layer-1
equity) and one ``layer2_core`` (family signal and its equity), then one
``final_core`` (Average_Signal, direction, events). This script times each
family's share and the final core over the whole universe, on all Numba
threads, with the scratch arrays ``run_cpu`` uses, and prints them next to the
full ``compute_atc`` call. EMA (nine cheap recurrences) is close to the cost
every family pays for its 9 member signals/equities and its Layer-2 equity;
what the other families cost beyond it is their moving averages.

Usage::

    python benchmarks/profile_cpu.py --symbols 1000 --bars 1500 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numba
import numpy as np

import gpu_trend
from cpu_fallback.backend import _family_cpu, cores
from gpu_trend import FAMILIES, outputs
from gpu_trend.checks import check_symbols
from gpu_trend.cores import N_MEMBERS


@numba.njit(parallel=True)
def _one_family(fam, src, close, growth, starts, lens, weights, cutout, d, tie, xs, ss):
    n_sym, n_bars = close.shape
    maxlen = lens.max()
    for s in numba.prange(n_sym):
        r = np.empty(n_bars)
        ma = np.empty((N_MEMBERS, n_bars))
        q = np.empty((N_MEMBERS, n_bars), dtype=np.int8)
        wbuf = np.empty((2, maxlen))
        cores.returns_row(close[s], growth, starts[s], r)
        _family_cpu(src[s], close[s], r, starts[s], fam, lens[fam], weights[fam], cutout, d, tie,
                    ma, q, ma, wbuf, False, xs[s, fam], ss[s, fam])


@numba.njit(parallel=True)
def _final(xs, ss, starts, cutout, th_long, th_short, dsrc, shift, avg, dirn, longs, shorts):
    for s in numba.prange(xs.shape[0]):
        cores.final_core(xs[s], ss[s], starts[s], cutout, th_long, th_short, dsrc, shift,
                         avg[s], dirn[s], longs[s], shorts[s])


def _median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    """Print the per-core timing table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=1000)
    p.add_argument("--bars", type=int, default=1500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from gpu_trend.bench import make_prices

    close, _ = make_prices(args.symbols, args.bars, args.seed)
    cfg = gpu_trend.ATCConfig()
    n_sym, n_bars = close.shape
    starts = check_symbols(close).start
    prm = cfg.kernel_params(n_bars)
    out = outputs.allocate(np, n_sym, n_bars, False)
    xs, ss = out["family_signals"], out["family_equities"]
    rows = []
    for f, name in enumerate(FAMILIES):
        t = _median_time(lambda f=f: _one_family(
            f, close, close, prm.growth, starts, prm.lengths, prm.weights, prm.cutout,
            prm.decay, prm.tie_rtol, xs, ss), args.repeat)
        rows.append((f"family {name}", t))
    t = _median_time(lambda: _final(xs, ss, starts, prm.cutout, prm.long_threshold,
                                    prm.short_threshold, prm.direction_source, prm.strategy_view,
                                    out["average_signal"], out["direction"], out["long_events"],
                                    out["short_events"]), args.repeat)
    rows.append(("final_core", t))
    total = _median_time(lambda: gpu_trend.compute_atc(close, cfg, backend="cpu"), args.repeat)
    print(f"{n_sym} symbols × {n_bars} bars, {numba.get_num_threads()} threads, "
          f"median of {args.repeat}")
    print(f"{'piece':<22} {'ms':>8} {'ms/symbol':>10} {'ns/symbol-bar':>14} {'share':>6}")
    parts = sum(t for _, t in rows)
    for name, t in rows + [("sum of the pieces", parts), ("compute_atc (all)", total)]:
        print(f"{name:<22} {1e3 * t:>8.1f} {1e3 * t / n_sym:>10.4f} "
              f"{1e9 * t / (n_sym * n_bars):>14.1f} {100 * t / total:>5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
