"""One new bar for a universe: update_atc from a saved state against recomputing the history.

usage: python benchmarks/bench_update.py [--symbols 5000] [--bars 1500] [--rounds 7] [--live]

Both run in this process, alternating, on the same prices after a warm-up; medians and their
ratio are printed, and the update's last bar is checked equal to the recomputation's.

By default every round sends the same bar, as an array in the state's symbol order, to the same
state. ``--live`` is a live loop instead: a wide DataFrame indexed by time, each round's bar the
next one, sent to the state the last round returned (so each state is new to the update, as in
production), against recomputing the history up to that bar.
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
    p.add_argument("--live", action="store_true",
                   help="a chained loop of new bars in a wide DataFrame indexed by time")
    args = p.parse_args(argv)

    import pandas as pd

    import gpu_trend
    from gpu_trend.bench import make_prices

    n = args.bars
    extra = args.rounds + 1 if args.live else 1
    close, _ = make_prices(args.symbols, n + extra, 0)
    if args.live:
        data = pd.DataFrame(close.T, index=pd.date_range("2020-01-01", periods=n + extra,
                                                          freq="min"),
                            columns=[f"S{i:04d}" for i in range(args.symbols)])

        def upto(t):  # the first t bars
            return data.iloc[:t]

        def bar(t):  # bar t alone
            return data.iloc[t:t + 1]
    else:
        def upto(t):
            return close[:, :t]

        def bar(t):
            return close[:, t:t + 1]

    state = gpu_trend.compute_atc(upto(n), return_state=True, backend=args.backend).state
    update = gpu_trend.update_atc(state, bar(n), backend=args.backend)  # warm-up
    whole = gpu_trend.compute_atc(upto(n + 1), backend=args.backend)
    np.testing.assert_array_equal(update.average_signal[:, -1], whole.average_signal[:, -1])
    if args.live:
        state = update.state
    label = "update_atc, 1 bar" + (" (live loop)" if args.live else "")
    times: dict[str, list] = {label: [], "compute_atc, the whole history": []}
    for k in range(args.rounds):
        t = n + 1 + k if args.live else n
        new_bar = bar(t)
        t0 = time.perf_counter()
        update = gpu_trend.update_atc(state, new_bar, backend=args.backend)
        t1 = time.perf_counter()
        whole = gpu_trend.compute_atc(upto(t + 1), backend=args.backend)
        t2 = time.perf_counter()
        times[label].append(t1 - t0)
        times["compute_atc, the whole history"].append(t2 - t1)
        if args.live:
            state = update.state
    np.testing.assert_array_equal(update.average_signal[:, -1], whole.average_signal[:, -1])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.symbols} symbols × {n} bars, backend {args.backend}, {args.rounds} alternating "
          f"rounds{', live loop (wide DataFrame, chained states)' if args.live else ''}; "
          f"last bars equal")
    for k, v in med.items():
        print(f"{k:>34}: median {1e3 * v:9.1f} ms, min {1e3 * min(times[k]):9.1f} ms")
    upd, full = med.values()
    print(f"ratio recompute / update: {full / upd:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
