"""Wall time of the command-line scan, reading Parquet and writing the result (issue 3).

    python benchmarks/bench_scan.py --symbols 5000 --bars 1500 --format long --repeat 3
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--bars", type=int, default=1500)
    ap.add_argument("--format", choices=["long", "wide"], default="long")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from gpu_trend.demo import demo_universe
    from gpu_trend.io import write_universe

    with tempfile.TemporaryDirectory() as tmp:
        src = write_universe(demo_universe(args.symbols, args.bars, seed=0),
                             Path(tmp) / "universe.parquet", format=args.format)
        cmd = [sys.executable, "-m", "gpu_trend", "scan", str(src), "--backend", args.backend,
               "--out", str(Path(tmp) / "results.parquet"), "--quiet", "--no-progress"]
        subprocess.run(cmd, check=True)  # fills Numba's cache once, as any first run does
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            times.append(time.perf_counter() - t0)
    print(f"gpu-trend scan, {args.symbols} x {args.bars} {args.format} Parquet -> Parquet, "
          f"backend {args.backend}: median {statistics.median(times):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
