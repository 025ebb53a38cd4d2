"""The sweep's numba.cuda kernels, run by Numba's CUDA simulator: every configuration's slice
equals its own compute_atc call, and the kernels share the work as the CPU driver does.

The simulator runs every thread in Python, so sizes stay tiny."""

import numpy as np
import pytest

from test_sweep import assert_matches_compute_atc, quiet_sweep

pytestmark = pytest.mark.cudasim


@pytest.fixture(autouse=True)
def simulated_gpu(monkeypatch):
    """backend="gpu" resolves (to the simulator) although CuPy is absent."""
    from gpu_trend import backend

    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "Numba's CUDA simulator"))


def tiny_universe():
    rng = np.random.default_rng(11)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (2, 30)), axis=1))
    close[1, :4] = np.nan         # listed later
    close[0, 9:14] = close[0, 8]  # flat: ties
    return close


GRIDS = [
    # lengths (shared member lengths), weights and thresholds: shared MAs, equities, Layer 2
    {"lengths": [5, (5, 6, 7, 5, 6, 7)], "robustness": ["Narrow"], "weights": [1.0, 2.0],
     "long_threshold": [0.1, 0.3]},
    # λ, decay, cutout: the equities of stored signals
    {"lengths": [6], "robustness": ["Narrow"], "la": [0.0, 3.0], "de": [0.03, 2.0],
     "cutout": [0, 3]},
    # robustness, the tie rule (a second signal per MA) and the final stage's fields
    {"lengths": [8], "robustness": ["Medium", "Wide"], "tie_rtol": [1e-12, 0.0],
     "direction_source": ["Average", "KAMA"], "strategy_view": [False, True]},
]


@pytest.mark.parametrize("grid", GRIDS, ids=["lengths-weights-thresholds", "equity-fields",
                                             "robustness-final-fields"])
def test_gpu_sweep_matches_compute_atc(grid):
    close = tiny_universe()
    res = quiet_sweep(close, grid, backend="gpu")
    assert res.backend == "gpu"
    assert_matches_compute_atc(res, close, backend="cpu")
    cpu = quiet_sweep(close, grid, backend="cpu")
    # (the GPU runs an equity per member slot, the CPU per distinct equity)
    for stage in ("moving_averages", "layer2", "final"):
        assert res.work[stage] == cpu.work[stage], stage


def test_gpu_sweep_counts_shared_work_and_takes_a_source():
    close = tiny_universe()
    res = quiet_sweep(close, {"lengths": [5], "robustness": ["Narrow"], "weights": [1.0, 2.0],
                              "long_threshold": [0.1, 0.2]}, source=close * 0.99, backend="gpu")
    assert res.work["moving_averages"] == 54 * 2 and res.work["layer1_equities"] == 54 * 2
    assert res.work["layer2"] == 2 * 6 * 2 and res.work["final"] == 4 * 2
    assert_matches_compute_atc(res, close, source=close * 0.99, backend="gpu")
