"""Wall time of the command-line scan, reading Parquet and writing the result (issues 3, 11).

    python benchmarks/bench_scan.py --symbols 5000 --bars 1500 --format long --repeat 3
    python benchmarks/bench_scan.py --data u.parquet --out-format csv --repeat 5 \\
        --tree before=/tmp/before --tree after=.

Each run is a new process (``python -m gpu_trend scan FILE --out results.EXT``): interpreter
start, imports, reading, checks, packing, compute, ranking and writing, as a user sees it.
With several ``--tree NAME=DIR`` (source trees holding ``gpu_trend`` and ``cpu_fallback``,
e.g. a copy of the code before a change) the trees take turns run by run, so that the
machine's load falls on all of them alike; each tree's median is printed.  Every tree runs
once untimed first, which fills its Numba cache as any first run does.  Next to the wall time
each run's CPU time (user + system, all threads) is printed: on a shared machine it varies far
less than the wall time, and it counts the work that was removed.  ``--stages`` also prints the
median of each stage the command reports (read + kernel load, filter, compute, rank, write).
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


#: The stages in the command's summary and last line: "(load 0.00, filter 0.31, compute …)"
#: and "wall time … (read + kernel load 1.52, scan …, write 0.17)".
STAGE = re.compile(r"(read \+ kernel load|filter|compute|rank|write) ([0-9.]+)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--bars", type=int, default=1500)
    ap.add_argument("--format", choices=["long", "wide"], default="long")
    ap.add_argument("--data", type=Path, help="scan this file instead of writing a demo universe")
    ap.add_argument("--out-format", choices=["parquet", "csv"], default="parquet")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", action="store_true",
                    help="also print the stages the command's own summary times")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="a source tree to run (repeatable); default: the installed package")
    args = ap.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree) or {"installed": None}

    with tempfile.TemporaryDirectory() as tmp:
        src = args.data
        if src is None:
            from gpu_trend.demo import demo_universe
            from gpu_trend.io import write_universe

            src = write_universe(demo_universe(args.symbols, args.bars, seed=0),
                                 Path(tmp) / "universe.parquet", format=args.format)
        cmd = [sys.executable, "-m", "gpu_trend", "scan", str(Path(src).resolve()),
               "--backend", args.backend, "--out", str(Path(tmp) / f"results.{args.out_format}"),
               "--no-progress", *(["--show", "0"] if args.stages else ["--quiet"])]

        def run(tree):
            env = dict(os.environ)
            if tree is not None:
                env["PYTHONPATH"] = str(Path(tree).resolve())
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            out = subprocess.run(cmd, check=True, env=env, cwd=tree, stdout=subprocess.PIPE,
                                 text=True).stdout
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return wall, cpu, {k: float(v) for k, v in STAGE.findall(out)}

        for tree in trees.values():
            run(tree)  # fills Numba's cache once, as any first run does
        times = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                times[name].append(run(tree))
    what = (f"gpu-trend scan, {Path(src).name if args.data else f'{args.symbols} x {args.bars}'} "
            f"{'' if args.data else args.format + ' '}Parquet -> {args.out_format}, "
            f"backend {args.backend}")
    for name, runs in times.items():
        wall, cpu, stages = zip(*runs)
        print(f"{what} [{name}]: median {statistics.median(wall):.2f} s wall "
              f"(runs: {', '.join(f'{t:.2f}' for t in wall)}), "
              f"{statistics.median(cpu):.2f} s CPU (runs: {', '.join(f'{t:.2f}' for t in cpu)})")
        if args.stages:
            print("    stage medians: " + ", ".join(
                f"{k} {statistics.median(s[k] for s in stages):.2f} s" for k in stages[0]))


if __name__ == "__main__":
    main()
