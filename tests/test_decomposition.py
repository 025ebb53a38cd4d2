"""The GPU's decomposition of the work, run on the CPU, equals the CPU backend bit for bit.

The GPU launches one thread per (member, symbol) that sums its own windows and steps its
own MA (``member_core`` with ``pre=False``), then one per (family, symbol) for Layer 2,
then one per symbol; the CPU shares one window pass among the nine members of a family
(``pre=True``). This test compiles the GPU's order of work with ``numba.njit`` from the
same cores, so it can check sizes and default lengths that the CUDA simulator
(tests/test_cudasim.py) is far too slow for.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks import prepared
from cpu_fallback.backend import cores, run_block
from gpu_trend import ATCConfig, outputs
from gpu_trend.cores import N_FAMILIES, N_MEMBERS, N_SIGNALS
from test_properties import configs, paths

KEYS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
        "short_events")
MEMBER_KEYS = ("member_ma", "member_signal", "member_equity")


# No cache=True: Numba's cache would not notice edits to the cores in another module.
@numba.njit
def _member_parallel(src, close, growth, starts, lens, weights, cutout, d, tie, th_long,
                     th_short, dsrc, shift, want, ma, q, e, xs, ss, avg, dirn, longs, shorts):
    n_sym, n_bars = close.shape
    r = np.empty((n_sym, n_bars))
    st = np.empty(16)  # a state row the cores neither read (no resume) nor write (no keep)
    for s in range(n_sym):                      # returns_kernel
        cores.returns_row(close[s], growth, starts[s], 0, r[s])
    for m in range(N_SIGNALS):                  # member_kernel: no shared window pass
        for s in range(n_sym):
            row = ma[s, m] if want else ma[0, 0]
            cores.member_core(src[s], close[s], r[s], starts[s], 0, m // N_MEMBERS, lens[m],
                              cutout, d, tie, row, False, want, q[s, m], e[s, m], st, False,
                              False)
    for f in range(N_FAMILIES):                 # layer2_kernel
        for s in range(n_sym):
            lo, hi = N_MEMBERS * f, N_MEMBERS * (f + 1)
            cores.layer2_core(q[s, lo:hi], e[s, lo:hi], r[s], starts[s], 0,
                              cutout, weights[f], d, xs[s, f], ss[s, f], st, False, False)
    for s in range(n_sym):                      # final_kernel
        cores.final_core(xs[s], ss[s], starts[s], 0, cutout, th_long, th_short, dsrc, shift,
                         avg[s], dirn[s], longs[s], shorts[s], st, False, False)


def member_parallel(close, src, starts, params, members):
    n_sym, n_bars = close.shape
    out = outputs.allocate(np, n_sym, n_bars, members)
    if members:
        ma, q, e = out["member_ma"], out["member_signal"], out["member_equity"]
    else:  # as on the GPU: no MA rows, int8 signals
        ma = np.empty((1, 1, n_bars))
        q = np.empty((n_sym, N_SIGNALS, n_bars), dtype=np.int8)
        e = np.empty((n_sym, N_SIGNALS, n_bars))
    p = params
    _member_parallel(src, close, p.growth, starts, p.lengths.reshape(-1), p.weights,
                     p.cutout, p.decay, p.tie_rtol, p.long_threshold, p.short_threshold,
                     p.direction_source, p.strategy_view, members, ma, q, e, out["family_signals"],
                     out["family_equities"], out["average_signal"], out["direction"],
                     out["long_events"], out["short_events"])
    return out


def assert_bitwise_equal(close, cfg, members, source=None):
    close, src, starts, params = prepared(close, source, cfg)
    want = run_block(close, src, starts, params, members)
    got = member_parallel(close, src, starts, params, members)
    for key in KEYS + (MEMBER_KEYS if members else ()):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize("members", [False, True])
@pytest.mark.parametrize("cfg", [
    ATCConfig(),
    ATCConfig(robustness="Wide", lengths=(20, 30, 45, 12, 60, 9), la=0.02, de=0.05,
              cutout=40, weights=(0.5, 1, 2, 1, 0.2, 3)),
    ATCConfig(robustness="Narrow", lengths=(5, 5, 5, 5, 5, 5), cutout=0),  # lengths 1 to 9
], ids=["default", "wide", "shortest"])
def test_member_parallel_equals_cpu_on_a_universe(cfg, members):
    rng = np.random.default_rng(11)
    n_sym, n_bars = 24, 700
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.015, (n_sym, n_bars)), axis=1))
    for i in range(0, n_sym, 5):
        close[i, :rng.integers(1, n_bars // 2)] = np.nan  # later listings
    close[3, 100:160] = close[3, 99]                      # a flat stretch
    close[4] *= 1e6
    close[5] = np.round(close[5], 1)                      # tick grid: exact ties
    assert_bitwise_equal(close, cfg, members)


def test_member_parallel_equals_cpu_with_pine_holes_and_a_source():
    rng = np.random.default_rng(12)
    close = 7 * np.exp(np.cumsum(rng.normal(0, 0.02, (8, 400)), axis=1))
    close[rng.random(close.shape) < 0.02] = np.nan
    source = close * np.exp(rng.normal(0, 0.003, close.shape))
    cfg = ATCConfig(nan_policy="pine", direction_source="LSMA", strategy_view=True)
    assert_bitwise_equal(close, cfg, True, source)
    assert_bitwise_equal(close, cfg, False, source)


@settings(max_examples=40, deadline=None)
@given(close=paths(max_bars=160), data=st.data(), members=st.booleans())
def test_member_parallel_equals_cpu_on_random_paths(close, data, members):
    cfg = data.draw(configs(len(close)))
    assert_bitwise_equal(close[None, :], cfg, members)
