"""pytest-benchmark benchmarks of the CPU engine at a small size (200 symbols × 1500 bars).

Benchmarks, not unit tests: ``pytest benchmarks/`` times them, and
``pytest benchmarks/ --benchmark-disable`` runs each once as a smoke test.
``gpu-trend bench`` (:mod:`gpu_trend.bench`) is the full benchmark (sizes, GPU, JSON).
"""

import json

import numpy as np
import pytest

import gpu_trend
from gpu_trend.checks import check_symbols

N_SYMBOLS = 200
N_BARS = 1500


@pytest.fixture(scope="module")
def close():
    from gpu_trend.bench import make_prices

    prices, _ = make_prices(N_SYMBOLS, N_BARS, seed=0)
    gpu_trend.compute_atc(prices[:4], backend="cpu", members=True)  # compile / load the cache
    gpu_trend.compute_atc(prices[:4], backend="cpu")
    return prices


def test_compute_atc(benchmark, close):
    res = benchmark(gpu_trend.compute_atc, close, backend="cpu")
    assert res.average_signal.shape == close.shape


def test_compute_atc_latest(benchmark, close):
    table = benchmark(lambda: gpu_trend.compute_atc(close, backend="cpu").latest())
    assert len(table) == N_SYMBOLS


def test_compute_atc_members(benchmark, close):
    part = close[:50]
    res = benchmark(gpu_trend.compute_atc, part, backend="cpu", members=True)
    assert res.member_equity.shape == (50, 54, N_BARS)


def test_iter_atc_latest(benchmark, close):
    def stream():
        return [res.latest() for res in gpu_trend.iter_atc(close, backend="cpu",
                                                            chunk_symbols=64)]

    parts = benchmark(stream)
    assert sum(len(p) for p in parts) == N_SYMBOLS


def test_validation_pass(benchmark, close):
    checks = benchmark(check_symbols, close)
    assert (checks.start < N_BARS).all()


def test_bench_script_runs(tmp_path):
    from gpu_trend.bench import main

    out = tmp_path / "bench.json"
    assert main(["--symbols", "20", "--bars", "300", "--repeat", "1", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 1 and np.isfinite(runs[0]["median_s"])


def test_checkout_script_runs_the_package_harness():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("bench_atc.py")
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: bench_atc.py" in proc.stdout and "--scan" in proc.stdout
