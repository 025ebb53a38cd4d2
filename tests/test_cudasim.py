"""The numba.cuda kernels, run by Numba's CUDA simulator, equal the CPU backend and the goldens.

The simulator executes every thread in Python, so sizes stay tiny. The outputs are causal,
so the first bars of a golden symbol are golden outputs of a truncated history.
"""

import numpy as np
import pytest

from blocks import prepared
from gpu_trend import ATCConfig
from golden import assert_abs_close, assert_discrete_equal, load_golden, params_to_kwargs

pytestmark = pytest.mark.cudasim


def run_both(close, cfg, members=True, source=None):
    from cpu_fallback import backend as cpu
    from gpu_trend import gpu

    close, source, starts, params = prepared(close, source, cfg)
    return (cpu.run_block(close, source, starts, params, members),
            gpu.run_block(close, source, starts, params, members))


def assert_all_equal(cpu, dev):
    assert cpu.keys() == dev.keys()
    for key in cpu:
        assert type(dev[key]) is np.ndarray and dev[key].shape == cpu[key].shape, key
        np.testing.assert_array_equal(dev[key], cpu[key], err_msg=key)


@pytest.mark.parametrize("members", [True, False])
def test_kernels_equal_cpu_on_a_small_universe(members):
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (4, 36)), axis=1))
    close[1, :7] = np.nan          # later listing
    close[2, 10:22] = close[2, 9]  # flat stretch (ties)
    close[3] *= 1e5
    cfg = ATCConfig(cutout=2, robustness="Narrow", lengths=(5, 6, 7, 5, 6, 8),
                    weights=(0.1, 1, 1, 1.5, 1, 2), la=2.0, de=0.5)
    assert_all_equal(*run_both(close, cfg, members))


def test_kernels_equal_cpu_with_source_and_pine_nans():
    rng = np.random.default_rng(4)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (2, 30)), axis=1))
    close[0, 12] = np.nan
    source = close * 1.01
    cfg = ATCConfig(lengths=(5,) * 6, robustness="Narrow", nan_policy="pine",
                    direction_source="KAMA", strategy_view=True)
    assert_all_equal(*run_both(close, cfg, True, source))


@pytest.mark.parametrize("set_name", ["set_a", "set_e"])
def test_kernels_reproduce_golden_prefix(set_name):
    params, symbols = load_golden(set_name)
    cfg = ATCConfig(**params_to_kwargs(params))
    bars = 120 if set_name == "set_e" else 70  # SHORT_G has 120 bars; set_e cuts out 100
    names = ["CHOP_E", "SHORT_G"]
    close = np.vstack([symbols[s]["close"][:bars] for s in names])
    _, dev = run_both(close, cfg, members=False)
    for row, sym in enumerate(names):
        gold = symbols[sym]
        assert_abs_close(dev["average_signal"][row], gold["Average_Signal"][:bars], sym)
        for k, fam in enumerate(("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")):
            assert_discrete_equal(dev["family_signals"][row, k], gold[f"{fam}_Signal"][:bars], fam)
        assert_discrete_equal(dev["direction"][row], gold["direction"][:bars], "direction")
