"""Odd input to compute_atc: a clear error naming what is wrong, or the right answer, never a
silent wrong one."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import ATCConfig, ATCInputError

CPU = dict(backend="cpu")


def walks(n_sym=3, n=120, seed=0):
    rng = np.random.default_rng(seed)
    return 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sym, n)), axis=1))


def frame(n_sym=3, n=120, seed=0):
    idx = pd.date_range("2024-01-01", periods=n, freq="D", name="time")
    return pd.DataFrame(walks(n_sym, n, seed).T, index=idx, columns=list("ABC")[:n_sym])


# --- source pairs with close by label -----------------------------------------------------------

def test_source_aligns_by_column_label():
    close = frame()
    source = close * 1.01
    want = gpu_trend.compute_atc(close, source=source, members=True, **CPU)
    got = gpu_trend.compute_atc(close, source=source[["C", "B", "A"]], members=True, **CPU)
    np.testing.assert_array_equal(got.member_ma, want.member_ma)
    # Positionally, A's MAs would have come from C's prices.
    assert not np.array_equal(want.member_ma[0],
                              gpu_trend.compute_atc(close, source=source[["C", "B", "A"]]
                                                    .to_numpy().T, members=True,
                                                    **CPU).member_ma[0])


def test_source_with_other_symbols_or_times_is_an_error():
    close = frame()
    with pytest.raises(ATCInputError, match=r"missing \['C'\], extra \['D'\]"):
        gpu_trend.compute_atc(close, source=close.rename(columns={"C": "D"}), **CPU)
    with pytest.raises(ATCInputError, match=r"source's times are not close's"):
        gpu_trend.compute_atc(close, source=close.shift(1, freq="D"), **CPU)
    shuffled = close.iloc[::-1]  # same times, other order: put in close's order
    np.testing.assert_array_equal(
        gpu_trend.compute_atc(close, source=shuffled, **CPU).average_signal,
        gpu_trend.compute_atc(close, source=close, **CPU).average_signal)


# --- only numbers are prices --------------------------------------------------------------------

@pytest.mark.parametrize("column", [
    pd.date_range("2020-01-01", periods=120),
    np.arange(120) % 2 == 0,
    pd.Categorical(["x", "y"] * 60),
    ["text"] * 120,
    pd.to_timedelta(np.arange(120), unit="D"),
])
def test_non_numeric_columns_are_not_symbols(column):
    close = frame()
    close["odd"] = column
    with pytest.raises(ATCInputError, match=r"column 'odd' holds .*, not prices") as info:
        gpu_trend.compute_atc(close, **CPU)
    assert info.value.symbol == "odd"


def test_masked_array_cells_are_missing_closes():
    close = walks()
    masked = np.ma.masked_array(close, mask=np.zeros_like(close, dtype=bool))
    masked.mask[1, 40] = True
    masked.data[1, 40] = -5.0  # hidden by the mask: never priced
    with pytest.raises(ATCInputError, match=r"symbol '1': close is NaN at bar 40"):
        gpu_trend.compute_atc(masked, **CPU)
    holed = close.copy()
    holed[1, 40] = np.nan
    cfg = ATCConfig(nan_policy="ffill")
    np.testing.assert_array_equal(gpu_trend.compute_atc(masked, cfg, **CPU).average_signal,
                                  gpu_trend.compute_atc(holed, cfg, **CPU).average_signal)


def test_prices_beyond_the_documented_magnitude_are_refused():
    close = walks() * 1e303
    with pytest.raises(ATCInputError, match=r"got \S+e\+304 at bar 0 \(prices beyond 1e\+100 "
                                            r"are refused"):
        gpu_trend.compute_atc(close, **CPU)
    gpu_trend.compute_atc(walks() * 1e95, **CPU)  # large, but within the bound


# --- flags are bools ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["no", "False", 1, None])
def test_flags_accept_only_bools(value):
    with pytest.raises(TypeError, match=rf"members must be a bool .*got {re.escape(repr(value))}"):
        gpu_trend.compute_atc(walks(), members=value, **CPU)
    if value is not None:  # on_device=None means "where the input is"
        with pytest.raises(TypeError, match="on_device must be a bool"):
            gpu_trend.compute_atc(walks(), on_device=value, **CPU)
    assert gpu_trend.compute_atc(walks(), members=np.bool_(True), **CPU).member_ma is not None


# --- clear errors -------------------------------------------------------------------------------

def test_clear_errors_for_unusable_input():
    with pytest.raises(ATCInputError, match="close is None"):
        gpu_trend.compute_atc(None, **CPU)
    with pytest.raises(ATCInputError, match="not a rectangular array"):
        gpu_trend.compute_atc([[1.0, 2.0, 3.0], [1.0, 2.0]], **CPU)
    with pytest.raises(ATCInputError, match="symbols has 2 names for 3 rows"):
        gpu_trend.compute_atc(frame(), symbols=["x", "y"], **CPU)
    with pytest.raises(ATCInputError, match=r"symbol 'x' appears 2 times"):
        gpu_trend.compute_atc(walks(), symbols=["x", "y", "x"], **CPU)
    dup = frame()
    dup.columns = ["A", "A", "B"]
    with pytest.raises(ATCInputError, match=r"symbol 'A' appears 2 times"):
        gpu_trend.compute_atc(dup, **CPU)


def test_symbols_given_as_ints_become_strings_and_names_can_be_given():
    close = frame()
    close.columns = [7, 8, 9]
    assert gpu_trend.compute_atc(close, **CPU).symbols == ["7", "8", "9"]
    named = gpu_trend.compute_atc(close, symbols=["x", "y", "z"], **CPU)
    assert named.symbols == ["x", "y", "z"]


def test_a_huge_lambda_warns_and_computes_instead_of_crashing():
    close = walks(2, 1500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warnings leak from NumPy
        with pytest.warns(gpu_trend.ATCWarning, match=r"la=480\.0 grows returns by infx .*"
                                                      r"meaningless"):
            res = gpu_trend.compute_atc(close, ATCConfig(la=480), **CPU)
    assert res.average_signal.shape == (2, 1500)


def test_multiindex_columns_give_readable_symbols():
    close = frame()
    long = close.stack().rename("close").reset_index()
    long.columns = ["time", "symbol", "close"]
    long["volume"] = 1.0
    wide = long.pivot(index="time", columns="symbol", values=["close", "volume"])
    res = gpu_trend.compute_atc(wide, **CPU)
    assert res.symbols == ["A", "B", "C"]
    np.testing.assert_array_equal(res.average_signal,
                                  gpu_trend.compute_atc(close, **CPU).average_signal)
    venues = close.copy()
    venues.columns = pd.MultiIndex.from_tuples([("NASDAQ", "A"), ("NYSE", "B"), ("NYSE", "C")])
    assert gpu_trend.compute_atc(venues, **CPU).symbols == ["NASDAQ:A", "NYSE:B", "NYSE:C"]
