"""Parameter sweeps against one compute_atc call per configuration, side by side.

usage: python benchmarks/bench_sweep.py [--symbols 500] [--bars 1500] [--rounds 3]
                                        [--backend cpu] [--grid thresholds|lengths|both]

Two grids (issue 12's targets):

* ``thresholds``: 10 weight vectors × 10 (long, short) threshold pairs = 100 configurations;
  a sweep computes every MA and Layer-1 equity once per symbol (target: ≥ 20× faster).
* ``lengths``: 9 base lengths × 3 robustness settings = 27 configurations; a sweep computes
  each distinct (family, member length) once per symbol (target: ≥ 3× faster).

Each round times the sweep and then the separate calls, in this process, on the same prices,
after a warm-up that also checks a few configurations' directions equal; medians are printed
with the ratio, and the sweep's work counters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np

GRIDS = {
    "thresholds": {
        "weights": [1.0, 0.5, 2.0, (2, 1, 1, 1, 1, 1), (1, 2, 1, 1, 1, 1), (1, 1, 2, 1, 1, 1),
                    (1, 1, 1, 2, 1, 1), (1, 1, 1, 1, 2, 1), (1, 1, 1, 1, 1, 2),
                    (0.5, 1, 1.5, 1, 0.5, 2)],
        "long_threshold": [0.05, 0.1, 0.15, 0.2, 0.3],
        "short_threshold": [-0.1, -0.2],
    },
    "lengths": {"lengths": [12, 16, 20, 24, 28, 32, 36, 40, 44],
                "robustness": ["Narrow", "Medium", "Wide"]},
}


def run_grid(name, close, rounds, backend):
    import gpu_trend
    from gpu_trend.sweep import expand_grid

    grid = GRIDS[name]
    configs = expand_grid(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gpu_trend.sweep(close, grid, backend=backend, progress=False)
        for i in (0, len(configs) // 2, len(configs) - 1):  # warm-up, and the same bits
            ref = gpu_trend.compute_atc(close, configs[i], backend=backend)
            np.testing.assert_array_equal(res.direction[i], ref.direction)
        del res, ref
        times = {"sweep": [], "separate": []}
        for _ in range(rounds):
            t0 = time.perf_counter()
            res = gpu_trend.sweep(close, grid, backend=backend, progress=False)
            t1 = time.perf_counter()
            work = res.work
            del res
            for cfg in configs:
                gpu_trend.compute_atc(close, cfg, backend=backend)
            t2 = time.perf_counter()
            times["sweep"].append(t1 - t0)
            times["separate"].append(t2 - t1)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_sym = close.shape[0]
    print(f"\n{name}: {len(configs)} configurations, {n_sym} × {close.shape[1]}, backend "
          f"{backend}, {rounds} rounds")
    print(f"  sweep                        : median {med['sweep']:8.2f} s  "
          f"(min {min(times['sweep']):.2f})")
    print(f"  {len(configs):3d} separate compute_atc calls: median {med['separate']:8.2f} s  "
          f"(min {min(times['separate']):.2f})")
    print(f"  ratio separate / sweep: {med['separate'] / med['sweep']:.1f}x")
    per_symbol = {k: v / n_sym for k, v in work.items()}
    print(f"  work per symbol: {per_symbol} (separate calls: "
          f"{54 * len(configs)} MAs, {6 * len(configs)} Layer-2 runs)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--bars", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", default="cpu")
    p.add_argument("--grid", choices=("thresholds", "lengths", "both"), default="both")
    args = p.parse_args(argv)

    import numba

    import cpu_fallback.backend  # noqa: F401  (pins the threading layer first)
    from gpu_trend.bench import make_prices

    close, _ = make_prices(args.symbols, args.bars, 0)
    print(f"Numba threads: {numba.get_num_threads()}, layer {numba.threading_layer()}")
    for name in (GRIDS if args.grid == "both" else [args.grid]):
        run_grid(name, close, args.rounds, args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
