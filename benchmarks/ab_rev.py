"""CPU engine of the working tree against an earlier git revision, alternating in one process.

usage: python benchmarks/ab_rev.py REV [--symbols 1000] [--bars 1500] [--rounds 7]

REV's ``gpu_trend`` and ``cpu_fallback`` packages are extracted with ``git archive`` into a
temporary folder and imported under other names (``gpu_trend_ab`` and ``cpu_fallback_ab``), so
both engines run in this process on the same prices, one call each per round (the first of the
two alternating), after a warm-up call that compiles them. Printed: the medians of wall time
and of process CPU time (user + system, all threads: less sensitive than wall time to other
jobs taking the cores of a shared machine), the ratio of medians, and the median of each
round's ratio (its two calls ran seconds apart). The outputs are checked bit for bit: a
refactor must not change a value.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gpu_trend", "cpu_fallback")
KEYS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
        "short_events")


def import_revision(rev: str, into: Path):
    """Import REV's gpu_trend as ``gpu_trend_ab`` (its cpu_fallback as ``cpu_fallback_ab``)."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGES],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(into, filter="data")
    names = re.compile(r"\b(" + "|".join(PACKAGES) + r")\b")
    for pkg in PACKAGES:
        src = into / pkg
        for path in src.rglob("*.py"):
            path.write_text(names.sub(r"\1_ab", path.read_text()))
        src.rename(into / f"{pkg}_ab")
    sys.path.insert(0, str(into))
    return importlib.import_module("gpu_trend_ab")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev")
    p.add_argument("--symbols", type=int, default=1000)
    p.add_argument("--bars", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)

    import gpu_trend
    from gpu_trend.bench import make_prices

    close, _ = make_prices(args.symbols, args.bars, 0)
    with tempfile.TemporaryDirectory() as tmp:
        old = import_revision(args.rev, Path(tmp))
        engines = {"this tree": gpu_trend, args.rev: old}
        results = {name: mod.compute_atc(close, backend="cpu") for name, mod in engines.items()}
        for key in KEYS:
            np.testing.assert_array_equal(*(getattr(r, key) for r in results.values()),
                                          err_msg=key)
        times: dict[str, list] = {name: [] for name in engines}
        cpu: dict[str, list] = {name: [] for name in engines}
        for i in range(args.rounds):
            # Who goes first alternates too, so neither always runs on a warmer cache.
            for name, mod in list(engines.items())[::1 if i % 2 == 0 else -1]:
                c0, t0 = _cpu_seconds(), time.perf_counter()
                mod.compute_atc(close, backend="cpu")
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(_cpu_seconds() - c0)
    print(f"{args.symbols} symbols × {args.bars} bars, {args.rounds} alternating rounds; "
          f"outputs bit-identical")
    for label, data in (("wall", times), ("CPU", cpu)):
        med = {name: statistics.median(t) for name, t in data.items()}
        for name, t in med.items():
            print(f"{name:>12}: {label} median {1e3 * t:8.1f} ms "
                  f"({1e3 * t / args.symbols:.3f} ms/symbol), min {1e3 * min(data[name]):8.1f} ms")
        rounds = statistics.median(a / b for a, b in zip(data["this tree"], data[args.rev]))
        print(f"{label} ratio this tree / {args.rev}: {med['this tree'] / med[args.rev]:.3f} "
              f"(median of the rounds' ratios {rounds:.3f})")
    return 0


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


if __name__ == "__main__":
    sys.exit(main())
