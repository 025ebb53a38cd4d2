"""Every symbol on its own calendar: mixed frequencies, holidays, early ends, later listings.

The expectations are independent of the packing: each symbol computed *alone* on its own bars
(a Series indexed by its own times) is the reference, and inside any universe its outputs must be
the same bits on the same times.
"""

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import ATCConfig, ATCInputError, read_universe, scan

CPU = dict(backend="cpu")
KEYS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
        "short_events")


def prices(n, seed, start=100.0):
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def mixed_long() -> pd.DataFrame:
    """A long table as a user's mixed universe looks: five calendars in one file."""
    holidays = pd.to_datetime(["2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29",
                               "2024-05-27", "2024-07-04", "2024-09-02", "2024-11-28",
                               "2024-12-25"])
    days = pd.bdate_range("2023-06-01", "2024-12-31")
    exchange = days[~days.isin(holidays)]                                   # stocks
    hours = pd.date_range("2024-10-01", "2024-12-31 23:00", freq="h")
    fx = hours[hours.day_of_week < 5]                                         # 24/5
    monthly = pd.date_range("2012-01-01", "2024-12-01", freq="MS")          # BTC-like
    weekly = pd.date_range("2022-01-07", "2024-12-27", freq="W-FRI")
    early = pd.bdate_range("2011-01-03", "2013-03-01")                      # data ends 2013
    later = exchange[exchange >= "2024-06-03"]                              # listed mid-2024
    parts = {"SPX": exchange, "EURUSD": fx, "BTC": monthly, "WEEKLY": weekly, "GOOG": early,
             "IPO": later, "MSFT": exchange}
    frames = []
    for seed, (sym, times) in enumerate(parts.items()):
        frames.append(pd.DataFrame({"symbol": sym, "time": times,
                                    "close": prices(len(times), seed)}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def long_table():
    return mixed_long()


@pytest.fixture(scope="module")
def universe(long_table):
    return read_universe(long_table)


def alone(long_table, sym, cfg=None, **kw):
    rows = long_table[long_table["symbol"] == sym]
    series = pd.Series(rows["close"].to_numpy(), index=pd.DatetimeIndex(rows["time"]), name=sym)
    return gpu_trend.compute_atc(series, cfg, **CPU, **kw), series.index


def assert_same_as_alone(res, row, ref, own_times):
    n = len(own_times)
    pd.testing.assert_index_equal(res.times(row), own_times, check_names=False)
    for key in KEYS:
        got, want = getattr(res, key)[row][..., -n:], getattr(ref, key)[0]
        np.testing.assert_array_equal(got, want, err_msg=f"{res.symbols[row]} {key}")
    # Nothing of the symbol lies before its own first bar (padding only).
    assert np.isnan(res.average_signal[row][: res.n_bars - n]).all()


def test_each_symbol_equals_itself_computed_alone(universe, long_table):
    res = gpu_trend.compute_atc(universe, **CPU)
    assert res.positions is not None
    for row, sym in enumerate(res.symbols):
        ref, own = alone(long_table, sym)
        assert_same_as_alone(res, row, ref, own)


def test_results_do_not_depend_on_the_other_symbols(long_table):
    full = gpu_trend.compute_atc(read_universe(long_table), **CPU)
    for subset in (["SPX"], ["SPX", "BTC"], ["GOOG", "EURUSD", "SPX"]):
        part = gpu_trend.compute_atc(read_universe(long_table[long_table.symbol.isin(subset)]),
                                     **CPU)
        for sym in subset:
            i, j = full.symbols.index(sym), part.symbols.index(sym)
            n = len(part.times(j))
            np.testing.assert_array_equal(full.average_signal[i, -n:],
                                          part.average_signal[j, -n:], err_msg=sym)


def test_latest_shows_each_symbols_own_last_bar(universe, long_table):
    latest = gpu_trend.compute_atc(universe, **CPU).latest()
    last = long_table.groupby("symbol")["time"].max()
    for sym in latest.index:
        assert latest.loc[sym, "time"] == last[sym], sym
    table = gpu_trend.compute_atc(universe, **CPU).to_pandas()
    assert len(table) == len(long_table)  # one row per real bar, no padding
    assert set(table.loc["BTC"].index) == set(long_table.loc[long_table.symbol == "BTC", "time"])


def test_a_row_with_a_nan_close_is_a_hole_in_that_symbols_history(long_table):
    holed = long_table.copy()
    row = holed.index[(holed.symbol == "SPX")][200]
    when = holed.loc[row, "time"]
    holed.loc[row, "close"] = np.nan
    uni = read_universe(holed)
    with pytest.raises(ATCInputError, match=rf"symbol 'SPX': close is NaN at bar 200 \({when}"):
        gpu_trend.compute_atc(uni, **CPU)
    filled = gpu_trend.compute_atc(uni, ATCConfig(nan_policy="ffill"), **CPU)
    ref, own = alone(holed, "SPX", ATCConfig(nan_policy="ffill"))
    assert_same_as_alone(filled, filled.symbols.index("SPX"), ref, own)
    # "skip" drops the row instead: SPX then has one bar fewer.
    skipped = gpu_trend.compute_atc(uni, ATCConfig(nan_policy="skip"), **CPU)
    assert len(skipped.times("SPX")) == len(own) - 1


def test_wide_table_skip_policy_puts_each_symbol_on_its_own_bars(long_table):
    wide = long_table.pivot(index="time", columns="symbol", values="close")
    with pytest.raises(ATCInputError, match="nan_policy='skip'"):
        gpu_trend.compute_atc(wide, **CPU)  # other symbols' times are holes on the union grid
    res = gpu_trend.compute_atc(wide, ATCConfig(nan_policy="skip"), **CPU)
    for row, sym in enumerate(res.symbols):
        ref, own = alone(long_table, sym)
        assert_same_as_alone(res, row, ref, own)


def test_a_wide_symbol_that_ends_early_is_not_a_hole():
    idx = pd.date_range("2024-01-01", periods=300, freq="D")
    wide = pd.DataFrame({"A": prices(300, 1), "B": prices(300, 2)}, index=idx)
    wide.iloc[250:, 1] = np.nan  # B's data ends
    res = gpu_trend.compute_atc(wide, **CPU)
    assert res.latest().loc["B", "time"] == idx[249]
    ref = gpu_trend.compute_atc(wide["B"].iloc[:250], **CPU)
    np.testing.assert_array_equal(res.average_signal[1, -250:], ref.average_signal[0])


def test_union_calendar_stays_available(long_table):
    wide = long_table.pivot(index="time", columns="symbol", values="close")
    union = gpu_trend.compute_atc(wide, ATCConfig(nan_policy="ffill"), calendar="union", **CPU)
    assert union.positions is None and union.n_bars == len(wide)
    res = scan(read_universe(long_table), ATCConfig(nan_policy="ffill"), calendar="union",
               progress=False, min_signal=0.0, **CPU)
    assert set(res.all["time"]) == {wide.index[-1]}  # everyone's "last bar" is the grid's


# --- the scanner ------------------------------------------------------------------------------

def test_scan_of_a_mixed_universe_with_default_options(long_table, universe):
    res = scan(universe, progress=False, min_signal=0.0, **CPU)
    assert set(res.all.index) | set(res.skipped) == set(universe.symbols)
    last = long_table.groupby("symbol")["time"].max()
    for sym in res.all.index:
        assert res.all.loc[sym, "time"] == last[sym]
        ref, own = alone(long_table, sym)
        assert res.all.loc[sym, "average_signal"] == ref.average_signal[0, -1]
        assert res.all.loc[sym, "bars"] == len(own)
    # BTC's 156 monthly bars are its own, not the union's thousands.
    assert res.all.loc["BTC", "bars"] == 156
    # GOOG ended in 2013: scanned, and flagged.
    assert res.all.loc["GOOG", "stale"] and not res.all.loc["SPX", "stale"]
    assert not res.all.loc["BTC", "stale"] and not res.all.loc["EURUSD", "stale"]
    assert "Stale: 1 scanned symbol" in res.summary()


def test_scan_results_do_not_change_when_symbols_are_added(long_table):
    few = scan(read_universe(long_table[long_table.symbol.isin(["SPX", "MSFT"])]),
               progress=False, min_signal=0.0, **CPU)
    many = scan(read_universe(long_table), progress=False, min_signal=0.0, **CPU)
    cols = ["time", "average_signal", "direction", "bars_since_long", "bars_since_short"]
    pd.testing.assert_frame_equal(few.all.loc[["SPX", "MSFT"], cols],
                                  many.all.loc[["SPX", "MSFT"], cols])


@pytest.mark.parametrize("max_age, age_text", [("45D", "45 days"), (pd.Timedelta(days=45),
                                                                    "45 days"), (50, "50 bars")])
def test_max_age_moves_stale_symbols_to_skipped(universe, max_age, age_text):
    res = scan(universe, progress=False, min_signal=0.0, max_age=max_age, **CPU)
    reason = res.skipped["GOOG"]
    assert reason.startswith("stale: last bar 2013-03-01, ") and reason.endswith(
        f"before 2024-12-31 23:00:00 (max_age {age_text})")
    assert "SPX" in res.all.index
    if isinstance(max_age, int):
        # Counted in the universe's timestamps: the hourly FX makes December's monthly bar old.
        assert "bars of the universe" in reason and res.skipped["BTC"].startswith("stale")
    else:
        assert "11.8 years before" in reason
        assert "BTC" in res.all.index  # its last monthly bar is 31 days old


def test_scan_tables_show_integers(universe):
    res = scan(universe, progress=False, min_signal=0.0, **CPU)
    assert str(res.all["direction"].dtype) == "Int64"
    assert str(res.all["bars_since_long"].dtype) == "Int64"
    assert res.all["bars"].dtype == np.int64


# --- no silent wrong answer from compute_atc ---------------------------------------------------

def test_unsorted_or_duplicated_time_index_is_an_error():
    idx = pd.date_range("2024-01-01", periods=80, freq="D")
    frame = pd.DataFrame({"A": prices(80, 3)}, index=idx)
    shuffled = frame.iloc[[*range(40), 45, *range(40, 45), *range(46, 80)]]
    with pytest.raises(ATCInputError, match=r"not increasing: 2024-02-10 00:00:00 \(row 41\) "
                                            r"comes after 2024-02-15"):
        gpu_trend.compute_atc(shuffled, **CPU)
    dup = frame.iloc[[*range(50), 49, *range(50, 80)]]
    with pytest.raises(ATCInputError, match=r"duplicate time 2024-02-19 00:00:00 \(rows 49 and "
                                            r"50\)"):
        gpu_trend.compute_atc(dup, **CPU)
    np.testing.assert_array_equal(gpu_trend.compute_atc(shuffled.sort_index(), **CPU)
                                  .average_signal, gpu_trend.compute_atc(frame, **CPU)
                                  .average_signal)


def test_bars_by_symbols_array_gets_a_transposed_warning():
    close = np.tile(prices(3, 4), (2148, 1))  # e.g. df.values of 3 symbols × 2,148 bars
    with pytest.warns(gpu_trend.ATCWarning, match=r"shape \(2148, 3\).*2,148 symbols × 3 bars"
                                                  r".*pass close\.T"):
        gpu_trend.compute_atc(close, **CPU)


def test_empty_input_gives_an_empty_result():
    for shape in ((0, 10), (3, 0), (0, 0)):
        res = gpu_trend.compute_atc(np.empty(shape), **CPU)
        assert res.average_signal.shape == shape and len(res.latest()) == shape[0]


def test_a_symbol_without_data_has_no_last_time_whatever_shares_the_input():
    """Its latest() time was the grid's last time when every other symbol ran to the last row
    (no packing needed), and NaT when one ended early: it depended on the other symbols."""
    idx = pd.date_range("2024-01-01", periods=90, freq="D")
    a = 50 + np.cumsum(np.random.default_rng(4).normal(0, 0.5, 90))
    alone = pd.DataFrame({"A": a, "EMPTY": np.nan}, index=idx)
    ends_early = alone.assign(C=np.where(np.arange(90) < 85, a, np.nan))
    for wide in (alone, ends_early):
        res = gpu_trend.compute_atc(wide, return_state=True)
        assert res.latest().loc["EMPTY", "time"] is pd.NaT
        assert res.latest().loc["A", "time"] == idx[-1]
        assert res.state.last_time[list(res.symbols).index("EMPTY")] is None
