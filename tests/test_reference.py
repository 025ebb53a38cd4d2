"""The plain reference implementation reproduces the original script's golden outputs.

The golden comparisons run :func:`reference.reference_atc` once per (set, symbol) and check every
output the fixture holds with the golden README's acceptance rules. The micro tests pin the
spec details that are easy to get wrong (rounding, KAMA start, EMA seed, crossovers, stale
returns, equity restarts, leading and interior NaNs) with values computed by hand.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

try:  # works both with and without a tests/__init__.py
    from . import golden as G
    from .reference import _equity, _member_signal, reference_atc, round2
except ImportError:
    import golden as G
    from reference import _equity, _member_signal, reference_atc, round2


SYMBOLS = ("TREND_A", "VOL_B", "CHEAP_C", "BIG_D", "CHOP_E", "LONG_F", "SHORT_G", "DOWN_H")
CASES = [(s, sym) for s in G.SET_NAMES for sym in SYMBOLS]
CASE_IDS = [f"{s}-{sym}" for s, sym in CASES]


@lru_cache(maxsize=None)
def _run(set_name, symbol):
    """Reference outputs and golden arrays of one (set, symbol); computed once per session."""
    params, symbols = G.load_golden(set_name)
    gold = symbols[symbol]
    out = reference_atc(gold["close"], **G.params_to_kwargs(params))
    return out, gold


# ------------------------------------------------------------------------------------------
# Golden comparisons
# ------------------------------------------------------------------------------------------


def test_fixtures_complete():
    for set_name in G.SET_NAMES:
        params, symbols = G.load_golden(set_name)
        assert tuple(symbols) == SYMBOLS
        families = G.FAMILIES if set_name == "set_e" else ("EMA", "KAMA")
        for sym, gold in symbols.items():
            n = gold["close"].shape[0]
            for keys in G.member_keys():
                present = [name in gold for name in keys.values()]
                expected = keys["ma"].rstrip("_1234") in families
                assert all(present) if expected else not any(present), (set_name, sym, keys)
            assert all(a.shape == (n,) for a in gold.values())


@pytest.mark.parametrize("set_name,symbol", CASES, ids=CASE_IDS)
def test_golden_discrete(set_name, symbol):
    out, gold = _run(set_name, symbol)
    for k, fam in enumerate(G.FAMILIES):
        G.assert_discrete_equal(out["family_signals"][k], gold[f"{fam}_Signal"], f"{fam}_Signal")
    G.assert_discrete_equal(out["direction"], gold["direction"], "direction")
    G.assert_discrete_equal(out["long_events"], gold["long_arrow"], "long_arrow")
    G.assert_discrete_equal(out["short_events"], gold["short_arrow"], "short_arrow")
    checked = 0
    for i, keys in enumerate(G.member_keys()):
        if keys["signal"] in gold:
            G.assert_discrete_equal(out["member_signal"][i], gold[keys["signal"]], keys["signal"])
            checked += 1
    assert checked == (54 if set_name == "set_e" else 18)


@pytest.mark.parametrize("set_name,symbol", CASES, ids=CASE_IDS)
def test_golden_average_signal(set_name, symbol):
    out, gold = _run(set_name, symbol)
    G.assert_abs_close(out["average_signal"], gold["Average_Signal"], "Average_Signal")


@pytest.mark.parametrize("set_name,symbol", CASES, ids=CASE_IDS)
def test_golden_continuous(set_name, symbol):
    out, gold = _run(set_name, symbol)
    for k, fam in enumerate(G.FAMILIES):
        G.assert_rel_close(out["family_equities"][k], gold[f"{fam}_S"], f"{fam}_S")
    G.assert_rel_close(out["R"], gold["R"], "R")
    G.assert_rel_close(out["growth"], gold["e_La"], "e_La")
    for i, keys in enumerate(G.member_keys()):
        if keys["ma"] in gold:
            G.assert_rel_close(out["member_ma"][i], gold[keys["ma"]], keys["ma"])
            G.assert_rel_close(out["member_equity"][i], gold[keys["equity"]], keys["equity"])


def test_member_key_names():
    assert G.member_key_names(0) == {"ma": "EMA", "equity": "E", "signal": "sE"}
    assert G.member_key_names(7) == {"ma": "EMA_3", "equity": "E_3", "signal": "sE_3"}
    assert G.member_key_names(47) == {"ma": "KAMA2", "equity": "K2", "signal": "sK2"}
    assert G.member_key_names(53) == {"ma": "KAMA_4", "equity": "K_4", "signal": "sK_4"}
    assert len({k["ma"] for k in G.member_keys()}) == 54


# ------------------------------------------------------------------------------------------
# Hand-computed micro tests
# ------------------------------------------------------------------------------------------

# Narrow with base 5 gives members 5 6 7 8 9 4 3 2 1: row 6 is length 3, row 8 is length 1.
SMALL = dict(robustness="Narrow", lengths=(5,) * 6)
ROW = {fam: 9 * k for k, fam in enumerate(G.FAMILIES)}


def test_round2_ties_away_from_zero():
    assert round2(0.125) == 0.13  # numpy.round gives 0.12
    assert round2(-0.125) == -0.13
    assert round2(0.005) == 0.01
    # fl(100 * 1.005) = 100.49999999999999: the rounding sees the float product.
    assert round2(1.005) == 1.0
    # fl(100 * x) = 0.49999999999999994; floor(y + 0.5) would give 1.
    assert 100 * (0.49999999999999994 / 100) < 0.5
    assert round2(0.49999999999999994 / 100) == 0.0
    assert round2(-1.0) == -1.0
    assert math.isnan(round2(float("nan")))


def test_compiled_round2_equals_the_reference():
    """The cores' round2 against the reference's (Python integers), through
    ``Cores.layer2_step`` with D = 1: ties, the float product's near-ties, and magnitudes up
    to 2^62 (X itself is within [-1, 1])."""
    import numba
    import numpy as np

    from cpu_fallback.backend import cores

    @numba.njit
    def compiled(xs, out):
        for i in range(xs.shape[0]):
            out[i] = cores.layer2_step(xs[i], 1.0, True, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0)[0]

    rng = np.random.default_rng(3)
    k = rng.integers(-10**6, 10**6, 20_000)
    xs = np.concatenate([
        rng.uniform(-1, 1, 20_000), (k + 0.5) / 100, np.nextafter((k + 0.5) / 100, 0),
        np.nextafter((k + 0.5) / 100, np.inf), k / 100, rng.uniform(-1, 1, 2000) * 10.0
        ** rng.integers(0, 18, 2000) / 100, [0.0, -0.0, 0.005, -0.005, 1.005, 2.0**51 / 100,
                                             -(2.0**52 + 1) / 100, 2.0**62 / 100]])
    out = np.empty_like(xs)
    compiled(xs, out)
    want = np.array([round2(float(x)) for x in xs])
    np.testing.assert_array_equal(out, want)
    assert not np.signbit(out[xs == 0]).any()
    nan = np.empty(1)
    compiled(np.array([np.nan]), nan)
    assert np.isnan(nan[0])


def test_kama_starts_from_zero():
    out = reference_atc([100.0] * 4, **SMALL)
    kama = out["member_ma"][ROW["KAMA"]]
    # ratio = 0 while t < length: smooth = 0.064**2 = 0.004096.
    assert kama[0] == pytest.approx(0.4096, rel=1e-15)
    assert kama[1] == pytest.approx(0.4096 + 0.004096 * (100 - 0.4096), rel=1e-15)


def test_ema_sma_seed_length_3():
    close = [10.0, 11.0, 13.0, 12.0, 14.0]
    out = reference_atc(close, **SMALL)
    ema3 = out["member_ma"][ROW["EMA"] + 6]
    assert np.isnan(ema3[:2]).all()
    assert ema3[2] == pytest.approx(34.0 / 3.0, rel=1e-15)
    # alpha = 2 / (3 + 1) = 0.5
    assert ema3[3] == pytest.approx(0.5 * 12.0 + 0.5 * 34.0 / 3.0, rel=1e-15)
    assert ema3[4] == pytest.approx(0.5 * 14.0 + 0.5 * (6.0 + 17.0 / 3.0), rel=1e-15)
    # DEMA of length 3 is valid from bar 2*3 - 2 = 4 only.
    dema3 = out["member_ma"][ROW["DEMA"] + 6]
    assert np.isnan(dema3[:4]).all() and not np.isnan(dema3[4])
    e2 = (34.0 / 3.0 + (6.0 + 17.0 / 3.0) + ema3[4]) / 3.0
    assert dema3[4] == pytest.approx(2 * ema3[4] - e2, rel=1e-14)


def test_window_mas_length_3_and_1():
    close = [1.0, 4.0, 2.0, 8.0]
    out = reference_atc(close, **SMALL)
    sma3 = out["member_ma"][ROW["HMA"] + 6]
    wma3 = out["member_ma"][ROW["WMA"] + 6]
    lsma3 = out["member_ma"][ROW["LSMA"] + 6]
    assert sma3[2] == pytest.approx(7.0 / 3.0) and sma3[3] == pytest.approx(14.0 / 3.0)
    assert wma3[2] == pytest.approx((1 * 1 + 2 * 4 + 3 * 2) / 6.0)
    # Least-squares line through (0,1), (1,4), (2,2) at x = 2: slope 0.5, value 2.8333...
    assert lsma3[2] == pytest.approx(17.0 / 6.0)
    assert lsma3[3] == pytest.approx(3 * wma3[3] - 2 * sma3[3])
    assert np.isnan(out["member_ma"][ROW["LSMA"] + 8]).all()  # length 1: no regression
    assert np.array_equal(out["member_ma"][ROW["HMA"] + 8], close)


def test_crossover_is_not_sign():
    # A steadily rising close is above its SMA from the first valid bar, but there is never
    # a crossing (the previous MA is NaN on that bar), so the signal stays 0.
    close = [float(v) for v in range(1, 11)]
    out = reference_atc(close, **SMALL)
    sma3 = out["member_ma"][ROW["HMA"] + 6]
    assert (np.array(close)[2:] > sma3[2:]).all()
    assert (out["member_signal"][ROW["HMA"] + 6] == 0).all()
    # A drop below and back above does cross.
    q = _member_signal([5.0, 5.0, 3.0, 6.0, 7.0], [4.0, 4.0, 4.0, 4.0, 4.0], 1e-12)
    assert q == [0.0, 0.0, -1.0, 1.0, 1.0]
    assert _member_signal([5.0, 3.0], [float("nan"), 4.0], 1e-12) == [0.0, 0.0]


def test_tie_rule():
    c = [100.0, 100.0, 100.0]
    m = [100.0 + 1e-12, 100.0 + 1e-12, 100.0 - 1e-12]  # |c - m| well inside 1e-12 * 100
    assert _member_signal(c, m, 1e-12) == [0.0, 0.0, 0.0]
    assert _member_signal(c, m, 0.0) == [0.0, 0.0, 1.0]
    # A tie on the previous bar counts as "c <= m", so leaving it upwards is a crossover.
    assert _member_signal([100.0, 101.0], [100.0 + 1e-12, 100.0], 1e-12) == [0.0, 1.0]
    # 1e-9 relative is far above the tolerance: a real crossing.
    assert _member_signal(c, [100.0 + 1e-7, 100.0 + 1e-7, 100.0 - 1e-7], 1e-12) == [0.0, 0.0, 1.0]


def test_equity_stale_return_and_restart():
    d = 0.9997
    nan = float("nan")
    # sigma_{t-1} = 0 keeps the stale a = r_1 on bar 2; sigma = -1 shorts bar 3.
    e = _equity(1.0, [1.0, 0.0, -1.0, 0.0], [nan, 0.1, 0.2, 0.3], 0, d)
    assert e[0] == 1.0
    assert e[1] == pytest.approx(d * 1.1)
    assert e[2] == pytest.approx(d * 1.1 * d * 1.1)
    assert e[3] == pytest.approx(d * 1.1 * d * 1.1 * d * 0.7)
    # Floor at 0.25, also when 1 + a <= 0.
    e = _equity(1.0, [1.0] * 4, [nan, -0.9, 0.1, -1.5], 0, d)
    assert e[1] == 0.25 and e[2] == pytest.approx(0.25 * d * 1.1) and e[3] == 0.25
    # Bars before the cutout are NaN and bar K starts at max(w, 0.25) whatever its return;
    # a NaN return in position makes e NaN, and the next bar restarts at max(w, 0.25) even
    # though its own return is NaN as well.
    e = _equity(0.1, [1.0] * 6, [nan, -0.9, nan, nan, 0.5, 0.0], 1, d)
    assert np.isnan(e[0]) and e[1] == 0.25 and np.isnan(e[2]) and e[3] == 0.25
    assert e[4] == pytest.approx(0.25 * d * 1.5) and e[5] == pytest.approx(0.25 * d * 1.5 * d)
    e = _equity(2.0, [1.0] * 5, [nan, 0.1, nan, 0.2, 0.5], 0, d)
    assert np.isnan(e[2]) and e[3] == 2.0 and e[4] == pytest.approx(2.0 * d * 1.5)
    # A NaN signal keeps the stale (here NaN) return.
    e = _equity(1.0, [1.0, nan, nan, nan], [nan, nan, 0.1, 0.2], 0, d)
    assert e[0] == 1.0 and np.isnan(e[1]) and e[2] == 1.0 and np.isnan(e[3])


def test_leading_nans_shift_the_history():
    close = [10.0, 11.0, 10.5, 12.0, 11.0, 13.0, 12.5, 14.0, 13.0, 15.0, 14.5, 16.0]
    kw = dict(SMALL, cutout=2)
    base = reference_atc(close, **kw)
    shifted = reference_atc([float("nan")] * 3 + close, **kw)
    for name, a in base.items():
        b = shifted[name]
        if a.dtype == bool:
            assert not b[..., :3].any()
        else:
            assert np.isnan(b[..., :3]).all(), name
        np.testing.assert_array_equal(b[..., 3:], a, err_msg=name)
    assert base["growth"][2] == 1.0 and base["growth"][3] == pytest.approx(math.exp(2e-5))
    empty = reference_atc([float("nan")] * 5, **kw)
    assert np.isnan(empty["average_signal"]).all() and not empty["long_events"].any()


def test_interior_nan_policies():
    close = [10.0, 11.0, 10.5, 12.0, float("nan"), 13.0, 12.5, 14.0, 13.0, 15.0]
    filled = close[:4] + [12.0] + close[5:]
    ff = reference_atc(close, nan_policy="ffill", **SMALL)
    ref = reference_atc(filled, **SMALL)
    for name in ref:
        np.testing.assert_array_equal(ff[name], ref[name], err_msg=name)

    pine = reference_atc(close, nan_policy="pine", **SMALL)
    assert np.isnan(pine["R"][4]) and np.isnan(pine["R"][5]) and not np.isnan(pine["R"][6])
    kama = pine["member_ma"][ROW["KAMA"]]
    assert np.isnan(kama[4])
    assert kama[5] == pytest.approx(0.004096 * 13.0)  # nz(): restarts from 0
    ema3 = pine["member_ma"][ROW["EMA"] + 6]
    assert not np.isnan(ema3[3]) and np.isnan(ema3[4:]).all()
    sma3 = pine["member_ma"][ROW["HMA"] + 6]
    assert np.isnan(sma3[4:7]).all() and sma3[7] == pytest.approx((13.0 + 12.5 + 14.0) / 3)
