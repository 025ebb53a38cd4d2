"""The engine reproduces the original script's outputs (shared/golden, copied to tests/data).

Tolerances are the golden README's: discrete outputs exactly equal, Average_Signal within 1e-7
absolute, equities and MA values within 1e-7 relative.
"""

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import FAMILIES, ATCConfig
from golden import (SET_NAMES, assert_abs_close, assert_discrete_equal, assert_rel_close,
                    load_golden, member_keys, params_to_kwargs)


def config_of(set_name):
    params, _ = load_golden(set_name)
    return ATCConfig(**params_to_kwargs(params))


def right_aligned(symbols):
    """All symbols in one matrix, shorter histories padded with leading NaNs (later listings)."""
    names = list(symbols)
    n = max(len(symbols[s]["close"]) for s in names)
    close = np.full((len(names), n), np.nan)
    for i, s in enumerate(names):
        c = symbols[s]["close"]
        close[i, n - len(c):] = c
    return names, close


def check_symbol(res, row, gold, tail):
    """Compare row `row` of `res` (its last `tail` bars) with one symbol's golden arrays."""
    sl = slice(res.n_bars - tail, None)
    assert_abs_close(res.average_signal[row, sl], gold["Average_Signal"], "Average_Signal")
    for k, fam in enumerate(FAMILIES):
        assert_discrete_equal(res.family_signals[row, k, sl], gold[f"{fam}_Signal"], f"{fam}_Signal")
        assert_rel_close(res.family_equities[row, k, sl], gold[f"{fam}_S"], f"{fam}_S")
    assert_discrete_equal(res.direction[row, sl], gold["direction"], "direction")
    assert_discrete_equal(res.long_events[row, sl].astype(float), gold["long_arrow"], "long")
    assert_discrete_equal(res.short_events[row, sl].astype(float), gold["short_arrow"], "short")
    compared = 0
    if res.member_ma is not None:
        for j, keys in enumerate(member_keys()):
            ma_key, eq_key, sig_key = keys["ma"], keys["equity"], keys["signal"]
            if sig_key not in gold:
                continue
            compared += 1
            assert_discrete_equal(res.member_signal[row, j, sl], gold[sig_key], sig_key)
            assert_rel_close(res.member_ma[row, j, sl], gold[ma_key], ma_key)
            assert_rel_close(res.member_equity[row, j, sl], gold[eq_key], eq_key)
    return compared


@pytest.mark.parametrize("set_name", SET_NAMES)
def test_golden_batched_universe(set_name):
    """One call for all eight symbols; short histories become later listings."""
    _, symbols = load_golden(set_name)
    names, close = right_aligned(symbols)
    res = gpu_trend.compute_atc(close, config_of(set_name), backend="cpu", members=True,
                                symbols=names)
    assert res.symbols == names and res.backend == "cpu"
    for row, sym in enumerate(names):
        n = len(symbols[sym]["close"])
        assert res.start_bar[row] == res.n_bars - n
        # Before the listing there is no indicator at all.
        assert np.isnan(res.average_signal[row, :res.n_bars - n]).all()
        assert not res.long_events[row, :res.n_bars - n].any()
        compared = check_symbol(res, row, symbols[sym], n)
        assert compared == (54 if set_name == "set_e" else 18)


@pytest.mark.parametrize("set_name", SET_NAMES)
def test_golden_single_symbol_pandas(set_name):
    """A pandas Series per symbol: labels survive, values equal the goldens."""
    _, symbols = load_golden(set_name)
    for sym in ("CHOP_E", "SHORT_G", "BIG_D"):
        close = symbols[sym]["close"]
        idx = pd.date_range("2023-11-14", periods=len(close), freq="h", name="time")
        res = gpu_trend.compute_atc(pd.Series(close, index=idx, name=sym), config_of(set_name),
                                    backend="cpu")
        assert res.symbols == [sym] and res.index.equals(idx)
        check_symbol(res, 0, symbols[sym], len(close))


def test_golden_first_full_bar():
    """All 54 MAs are valid from DEMA's 2ℓ−2 on, and exactly there on the golden data."""
    _, symbols = load_golden("set_e")
    gold = symbols["TREND_A"]
    res = gpu_trend.compute_atc(gold["close"], config_of("set_e"), backend="cpu", members=True)
    first = int(res.first_full_bar[0])
    assert not np.isnan(res.member_ma[0, :, first]).any()
    assert np.isnan(res.member_ma[0, :, first - 1]).any()
    # set_a: the longest DEMA member is 34, so 2*34-2 = 66; 60 bars never get there.
    short = gpu_trend.compute_atc(symbols["SHORT_G"]["close"], config_of("set_a"), backend="cpu")
    assert short.first_full_bar[0] == 66
    shorter = gpu_trend.compute_atc(symbols["SHORT_G"]["close"][:60], config_of("set_a"),
                                    backend="cpu")
    assert shorter.first_full_bar[0] == -1
