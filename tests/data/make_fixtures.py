"""Build the compact golden fixtures ``golden_<set>.npz`` from ``/work/shared/golden``.

The shared golden files hold every output of the original TradingView script; the test suite
only needs the inputs (close), the parameters and the arrays it compares, and must run from a
plain clone without ``/work/shared``. This script extracts exactly those, unchanged (float64,
NaN where the script gives ``na``), into ``tests/data/``.

Usage::

    python tests/data/make_fixtures.py [--golden-dir /work/shared/golden] [--out-dir tests/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SETS = ("set_a", "set_b", "set_e")

# Per-symbol outputs compared by the tests. The alert_* arrays duplicate long_arrow/short_arrow
# and are only checked here, not stored.
TOP_LEVEL = (
    ["Average_Signal"]
    + [f"{f}_Signal" for f in ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")]
    + [f"{f}_S" for f in ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")]
    + ["direction", "long_arrow", "short_arrow", "R", "e_La"]
)
MA_PREFIX = ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")
EQ_PREFIX = ("E", "H", "W", "D", "L", "K")
SUFFIXES = ("", "1", "2", "3", "4", "_1", "_2", "_3", "_4")


def member_names():
    """All member output names the golden files may hold (MA, equity, signal)."""
    names = []
    for ma, eq in zip(MA_PREFIX, EQ_PREFIX):
        for suf in SUFFIXES:
            names += [ma + suf, eq + suf, "s" + eq + suf]
    return names


def build(golden_dir: Path, out_dir: Path) -> None:
    """Write one ``golden_<set>.npz`` per parameter set into `out_dir`."""
    universe = np.load(golden_dir / "universe_small.npz")
    symbols = [str(s) for s in universe["symbols"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    for set_name in SETS:
        src = np.load(golden_dir / f"{set_name}.npz")
        params = str(src["params"])
        json.loads(params)  # fail early on a malformed params string
        arrays = {"params": np.array(params), "symbols": np.array(symbols)}
        for sym in symbols:
            close = universe[f"{sym}/close"]
            arrays[f"{sym}/close"] = close
            for alert, arrow in (("alert_long", "long_arrow"), ("alert_short", "short_arrow")):
                if f"{sym}/{alert}" in src and not np.array_equal(
                    src[f"{sym}/{alert}"], src[f"{sym}/{arrow}"], equal_nan=True
                ):
                    raise ValueError(f"{set_name} {sym}: {alert} differs from {arrow}")
            for name in TOP_LEVEL + member_names():
                key = f"{sym}/{name}"
                if key in src:
                    a = src[key]
                    if a.dtype != np.float64 or a.shape != close.shape:
                        raise ValueError(f"{set_name} {key}: {a.dtype} {a.shape}")
                    arrays[key] = a
                elif name in TOP_LEVEL:
                    raise KeyError(f"{set_name}: missing {key}")
        path = out_dir / f"golden_{set_name}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path}: {len(arrays)} arrays, {path.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden-dir", type=Path, default=Path("/work/shared/golden"))
    ap.add_argument("--out-dir", type=Path, default=here)
    args = ap.parse_args()
    build(args.golden_dir, args.out_dir)


if __name__ == "__main__":
    main()
