"""One new bar for a universe: update_atc from a saved state against recomputing the history.

usage: python benchmarks/bench_update.py [--symbols 5000] [--bars 1500] [--rounds 7]

Both run in this process, alternating, on the same prices after a warm-up; medians and their
ratio are printed, and the update's last bar is checked equal to the recomputation's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=5000)
    p.add_argument("--bars", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--backend", default="cpu")
    args = p.parse_args(argv)

    import gpu_trend
    from gpu_trend.bench import make_prices

    close, _ = make_prices(args.symbols, args.bars + 1, 0)
    history, bar = close[:, :args.bars], close[:, args.bars:]
    state = gpu_trend.compute_atc(history, return_state=True, backend=args.backend).state
    update = gpu_trend.update_atc(state, bar, backend=args.backend)
    whole = gpu_trend.compute_atc(close, backend=args.backend)
    np.testing.assert_array_equal(update.average_signal[:, -1], whole.average_signal[:, -1])
    times: dict[str, list] = {"update_atc, 1 bar": [], f"compute_atc, {args.bars + 1} bars": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        gpu_trend.update_atc(state, bar, backend=args.backend)
        t1 = time.perf_counter()
        gpu_trend.compute_atc(close, backend=args.backend)
        t2 = time.perf_counter()
        times["update_atc, 1 bar"].append(t1 - t0)
        times[f"compute_atc, {args.bars + 1} bars"].append(t2 - t1)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.symbols} symbols, backend {args.backend}, {args.rounds} alternating rounds; "
          f"last bar equal")
    for k, v in med.items():
        print(f"{k:>26}: median {1e3 * v:9.1f} ms, min {1e3 * min(times[k]):9.1f} ms")
    upd, full = med.values()
    print(f"ratio recompute / update: {full / upd:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
