"""Real-device tests (``-m gpu``): skipped without CuPy and a CUDA device.

The GPU backend must equal the goldens and the CPU backend in float64, and keep
array types: CuPy in, CuPy out.
"""

import numpy as np
import pytest

import gpu_trend
from gpu_trend import ATCConfig
from golden import SET_NAMES, load_golden, params_to_kwargs
from test_golden import check_symbol, right_aligned

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("set_name", SET_NAMES)
def test_gpu_golden_and_equal_to_cpu(set_name):
    params, symbols = load_golden(set_name)
    cfg = ATCConfig(**params_to_kwargs(params))
    names, close = right_aligned(symbols)
    dev = gpu_trend.compute_atc(close, cfg, backend="gpu", members=True, symbols=names)
    host = gpu_trend.compute_atc(close, cfg, backend="cpu", members=True, symbols=names)
    assert dev.backend == "gpu" and isinstance(dev.average_signal, np.ndarray)
    for row, sym in enumerate(names):
        check_symbol(dev, row, symbols[sym], len(symbols[sym]["close"]))
    for key in ("average_signal", "family_signals", "family_equities", "direction",
                "long_events", "short_events", "member_ma", "member_signal", "member_equity"):
        np.testing.assert_array_equal(getattr(dev, key), getattr(host, key), err_msg=key)


def test_cupy_in_cupy_out():
    import cupy

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (64, 400)), axis=1))
    res = gpu_trend.compute_atc(cupy.asarray(close))
    assert res.backend == "gpu"
    assert isinstance(res.average_signal, cupy.ndarray)
    assert isinstance(res.long_events, cupy.ndarray) and res.long_events.dtype == bool
    host = gpu_trend.compute_atc(close, backend="cpu")
    np.testing.assert_array_equal(res.average_signal.get(), host.average_signal)
    assert res.latest().equals(host.latest())


def test_host_input_streamed_to_device_results():
    """iter_atc(on_device=True): host chunks uploaded, results kept on the device."""
    import cupy

    rng = np.random.default_rng(1)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 500)), axis=1))
    close[7, :120] = np.nan
    parts = list(gpu_trend.iter_atc(close, backend="gpu", chunk_symbols=128, on_device=True))
    assert [p.n_symbols for p in parts] == [128, 128, 44]
    assert all(isinstance(p.average_signal, cupy.ndarray) for p in parts)
    host = gpu_trend.compute_atc(close, backend="cpu")
    np.testing.assert_array_equal(np.concatenate([p.average_signal.get() for p in parts]),
                                  host.average_signal)


def test_gpu_scan_equals_cpu_scan():
    from gpu_trend.demo import demo_universe

    uni = demo_universe(n_symbols=200, n_bars=400, seed=3)
    dev = gpu_trend.scan(uni, backend="gpu", progress=False, min_signal=0.0)
    host = gpu_trend.scan(uni, backend="cpu", progress=False, min_signal=0.0)
    assert dev.backend == "gpu" and dev.skipped == host.skipped
    import pandas as pd
    pd.testing.assert_frame_equal(dev.all, host.all)
