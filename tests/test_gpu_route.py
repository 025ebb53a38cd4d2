"""The GPU's routes through the engine, in Numba's CUDA simulator: what comes back to the host.

Every device-to-host copy the package makes goes through ``gpu_trend.arrays.to_host``; these
tests count the bytes it is handed. Under the simulator the device's arrays are NumPy arrays,
so the count is of the copies the route *asks for*, which on a GPU cross the bus.
"""

import sys

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import arrays, backend
from gpu_trend.config import ATCConfig

pytestmark = pytest.mark.cudasim

CFG = ATCConfig(lengths=(5, 6, 7, 5, 6, 7), robustness="Narrow", cutout=1)
N_SYM, N_BARS = 5, 30


@pytest.fixture
def simulated_gpu(monkeypatch):
    """backend="gpu" resolves (to the simulator) although CuPy is absent."""
    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "Numba's CUDA simulator"))


@pytest.fixture
def downloads(monkeypatch):
    """Shapes of the arrays handed to to_host, wherever the package imported it."""
    seen = []
    real = arrays.to_host

    def counting(x, out=None):
        seen.append(np.shape(x))
        return real(x, out=out)

    for name, mod in list(sys.modules.items()):
        if name.startswith("gpu_trend") and getattr(mod, "to_host", None) is real:
            monkeypatch.setattr(mod, "to_host", counting)
    return seen


def frame():
    rng = np.random.default_rng(8)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.03, (N_BARS, N_SYM)), axis=0))
    close[:4, 2] = np.nan  # a later listing
    idx = pd.date_range("2024-01-01", periods=N_BARS, freq="D", name="time")
    return pd.DataFrame(close, index=idx, columns=[f"S{i}" for i in range(N_SYM)])


def nbytes(shapes):
    return sum(8 * int(np.prod(s)) for s in shapes)


def test_host_outputs_come_back_whole(simulated_gpu, downloads):
    """The counter sees a full download: host results of a GPU computation."""
    res = gpu_trend.compute_atc(frame(), CFG, backend="gpu", on_device=False)
    assert res.backend == "gpu"
    assert nbytes(downloads) >= N_SYM * N_BARS * 14 * 8  # 14 float outputs per bar
    assert (N_SYM, N_BARS) in downloads


def test_gpu_scan_downloads_only_the_latest_rows(simulated_gpu, downloads):
    close = frame()
    res = gpu_trend.scan(close, CFG, backend="gpu", progress=False, min_signal=0.0,
                         chunk_symbols=2)
    assert res.backend == "gpu" and len(res.all) == N_SYM
    assert all(N_BARS not in s for s in downloads), downloads  # never a series of bars
    # Per symbol: the input checks (reader, prefilter and engine, 4 numbers each) and the
    # latest() row (10 numbers); a single output series would be N_BARS numbers.
    assert nbytes(downloads) <= N_SYM * (3 * 4 + 10) * 8
    want = gpu_trend.compute_atc(close, CFG, backend="cpu").latest()
    np.testing.assert_array_equal(res.all.loc[want.index, "average_signal"],
                                  want["average_signal"])


def test_iter_atc_on_device_keeps_results_where_they_were_computed(simulated_gpu, downloads):
    close = frame()
    parts = list(gpu_trend.iter_atc(close, CFG, backend="gpu", chunk_symbols=2,
                                    on_device=True))
    assert [p.n_symbols for p in parts] == [2, 2, 1]
    assert all(N_BARS not in s for s in downloads), downloads  # only the per-symbol checks
    want = gpu_trend.compute_atc(close, CFG, backend="cpu")
    np.testing.assert_array_equal(np.concatenate([p.average_signal for p in parts]),
                                  want.average_signal)
