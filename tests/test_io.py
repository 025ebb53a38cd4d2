"""Readers of gpu_trend.io on real files written here, and every validation rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpu_trend.io import DataError, Universe, from_frame, read_universe, write_universe

T = pd.date_range("2024-03-01", periods=6, freq="h")


def long_frame() -> pd.DataFrame:
    """AAA: 6 bars; BBB: listed on bar 2 (4 bars).  Rows interleaved by time, like exports."""
    rows = []
    for i, t in enumerate(T):
        rows.append(("AAA", t, 10.0 + i, 10.5 + i, 9.5 + i, 10.2 + i, 100.0 * (i + 1)))
        if i >= 2:
            rows.append(("BBB", t, 50.0 - i, 51.0 - i, 49.0 - i, 50.5 - i, 7.0 * i))
    return pd.DataFrame(rows, columns=["symbol", "time", "open", "high", "low", "close",
                                       "volume"])


EXPECTED_CLOSE = pd.DataFrame(
    {"AAA": [10.2, 11.2, 12.2, 13.2, 14.2, 15.2],
     "BBB": [np.nan, np.nan, 48.5, 47.5, 46.5, 45.5]},
    index=pd.Index(T, name="time"),
)


def assert_close_table(u: Universe, expected: pd.DataFrame = EXPECTED_CLOSE) -> None:
    assert u.symbols == list(expected.columns)
    np.testing.assert_array_equal(u.close.index.to_numpy(), expected.index.to_numpy())
    np.testing.assert_array_equal(u.close.to_numpy(), expected.to_numpy())
    assert u.close.index.name == "time"


# --------------------------------------------------------------------------------------------
# long form
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_long_file_round_trip(tmp_path, suffix):
    path = tmp_path / f"universe{suffix}"
    df = long_frame()
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    u = read_universe(path)
    assert_close_table(u)
    assert u.rejected == {}
    assert u.volume.loc[T[3], "BBB"] == 21.0
    assert u.high.loc[T[0], "AAA"] == 10.5
    assert u.low.loc[T[5], "BBB"] == 44.0
    assert u.open.loc[T[1], "AAA"] == 11.0
    # A later listing is a leading gap in every field, not a zero.
    assert u.volume["BBB"].iloc[:2].isna().all()
    assert isinstance(u.close.index, pd.DatetimeIndex)


def test_long_close_only_and_custom_column_names(tmp_path):
    df = long_frame()[["symbol", "time", "close"]].rename(
        columns={"symbol": "ticker", "time": "Date", "close": "px_last"})
    path = tmp_path / "u.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="no close column.*accepted shapes: long"):
        read_universe(path)
    u = read_universe(path, columns={"close": "px_last"})  # ticker / Date found by alias
    assert_close_table(u)
    assert u.volume is None and u.open is None
    with pytest.raises(DataError, match=r"'nope'.*not found in .*u\.csv"):
        read_universe(path, columns={"close": "nope"})
    # An adjusted close is the close where there is no plain one.
    assert_close_table(read_universe(df.rename(columns={"px_last": "Adj Close"})))
    with pytest.raises(ValueError, match="unknown field"):
        read_universe(path, columns={"price2": "adj_close"})


def test_long_symbol_major_and_unsorted_symbols_give_the_same_table():
    df = long_frame()
    by_symbol = df.sort_values(["symbol", "time"], kind="stable")
    assert_close_table(read_universe(by_symbol))
    shuffled_symbols = pd.concat([df[df.symbol == "BBB"], df[df.symbol == "AAA"]])
    u = read_universe(shuffled_symbols)
    assert u.symbols == ["BBB", "AAA"]  # order of first appearance
    assert_close_table(u, EXPECTED_CLOSE[["BBB", "AAA"]])


def test_duplicate_symbol_time_is_an_error_naming_both(tmp_path):
    df = pd.concat([long_frame(), long_frame().iloc[[7]]])  # a second BBB row at T[4]
    path = tmp_path / "dup.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError) as info:
        read_universe(path)
    msg = str(info.value)
    assert "duplicate" in msg and "'BBB'" in msg and "2024-03-01 04:00:00" in msg
    assert info.value.symbol == "BBB"
    assert info.value.time == T[4]
    # sort=True does not make duplicates acceptable.
    with pytest.raises(DataError, match="duplicate"):
        read_universe(path, sort=True)


def test_time_going_backwards_is_an_error_unless_sort(tmp_path):
    df = long_frame()
    aaa = df[df.symbol == "AAA"].index
    swapped = df.copy()
    # Swap AAA's bars 1 and 3: AAA reads 00, 03, 02, 01, …; the first step back is 03 -> 02.
    swapped.loc[[aaa[1], aaa[3]]] = df.loc[[aaa[3], aaa[1]]].to_numpy()
    path = tmp_path / "backwards.csv"
    swapped.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        read_universe(path)
    msg = str(info.value)
    assert "not increasing" in msg and "'AAA'" in msg
    assert "2024-03-01 02:00:00 (row 2) comes after 2024-03-01 03:00:00" in msg
    assert "sort=True" in msg
    assert info.value.symbol == "AAA"
    assert_close_table(read_universe(path, sort=True))


def test_missing_symbol_or_time_values_are_errors():
    df = long_frame().astype({"symbol": object})
    df.loc[3, "symbol"] = None
    with pytest.raises(DataError, match="missing symbol.*row 3"):
        read_universe(df)
    df = long_frame()
    df["time"] = df["time"].astype(object)
    df.loc[4, "time"] = None
    with pytest.raises(DataError, match="missing time for symbol 'AAA'"):
        read_universe(df)


def test_unparseable_time_is_an_error():
    df = long_frame()
    df["time"] = "not a date"
    with pytest.raises(DataError, match="cannot parse the time"):
        read_universe(df)


def test_format_long_without_symbol_column_is_an_error():
    with pytest.raises(DataError, match="no symbol column"):
        read_universe(EXPECTED_CLOSE.reset_index(), format="long")


# --------------------------------------------------------------------------------------------
# invalid prices: reported, not dropped silently
# --------------------------------------------------------------------------------------------
def test_invalid_prices_are_rejected_with_reasons(tmp_path):
    df = long_frame()
    extra = []
    for i, t in enumerate(T):
        extra.append(("NEG", t, 1.0, 1.0, 1.0, -2.0 if i == 3 else 1.0 + i, 1.0))
        extra.append(("ZERO", t, 1.0, 1.0, 1.0, 0.0 if i == 5 else 1.0, 1.0))
        extra.append(("INF", t, 1.0, 1.0, 1.0, np.inf if i == 1 else 1.0, 1.0))
        extra.append(("EMPTY", t, 1.0, 1.0, 1.0, np.nan, 1.0))
    df = pd.concat([df, pd.DataFrame(extra, columns=df.columns)], ignore_index=True)
    path = tmp_path / "bad.parquet"
    df.to_parquet(path)
    u = read_universe(path)
    assert u.symbols == ["AAA", "BBB"]
    assert set(u.rejected) == {"NEG", "ZERO", "INF", "EMPTY"}
    # The engine's wording (gpu_trend.checks), filed under the scanner's categories.
    assert u.rejected["NEG"] == ("invalid prices: close must be a finite price > 0, got -2.0 at "
                                 "bar 3 (2024-03-01 03:00:00)")
    assert u.rejected["ZERO"].endswith("got 0.0 at bar 5 (2024-03-01 05:00:00)")
    assert u.rejected["INF"].endswith("got inf at bar 1 (2024-03-01 01:00:00)")
    assert u.rejected["EMPTY"] == "no data: no valid close"
    assert list(u.volume.columns) == ["AAA", "BBB"]
    # validate=False keeps everything as it is.
    raw = read_universe(path, validate=False)
    assert raw.rejected == {} and raw.n_symbols == 6


def test_non_numeric_close_in_csv_is_rejected(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(
        "time,AAA,BBB\n"
        "2024-03-01 00:00:00,1.5,\n"
        "2024-03-01 01:00:00,1.6,2.0\n"
        "2024-03-01 02:00:00,1.7,oops\n"
    )
    u = read_universe(path)
    assert u.symbols == ["AAA"]
    assert u.rejected == {"BBB": "invalid prices: close must be a finite price > 0, got 'oops' "
                                 "at bar 2 (2024-03-01 02:00:00)"}
    np.testing.assert_array_equal(u.close["AAA"].to_numpy(), [1.5, 1.6, 1.7])


# --------------------------------------------------------------------------------------------
# wide form
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_wide_file_with_volume_table(tmp_path, suffix):
    close = EXPECTED_CLOSE.copy()
    volume = pd.DataFrame({"BBB": [np.nan, np.nan, 1, 2, 3, 4.0], "AAA": [5, 6, 7, 8, 9, 10.0],
                           "ZZZ": 1.0}, index=close.index)
    cpath, vpath = tmp_path / f"close{suffix}", tmp_path / f"volume{suffix}"
    if suffix == ".parquet":
        close.to_parquet(cpath)  # time travels as the pandas index
        volume.to_parquet(vpath)
    else:
        close.to_csv(cpath)  # time is the first column, named "time"
        volume.to_csv(vpath)
    u = read_universe(cpath, volume=vpath)
    assert_close_table(u)
    # Volume follows the close table's columns; ZZZ has no close and is not a symbol.
    assert list(u.volume.columns) == ["AAA", "BBB"]
    np.testing.assert_array_equal(u.volume["AAA"].to_numpy(), [5, 6, 7, 8, 9, 10.0])
    assert u.volume["BBB"].iloc[5] == 4.0


def test_wide_csv_time_in_unnamed_first_column(tmp_path):
    path = tmp_path / "w.csv"
    EXPECTED_CLOSE.rename_axis(None).to_csv(path)  # header starts with an empty name
    assert_close_table(read_universe(path, format="wide"))


def test_wide_duplicate_and_backwards_time(tmp_path):
    dup = pd.concat([EXPECTED_CLOSE.iloc[:3], EXPECTED_CLOSE.iloc[2:]])
    path = tmp_path / "dup.csv"
    dup.to_csv(path)
    with pytest.raises(DataError, match=r"duplicate time 2024-03-01 02:00:00"):
        read_universe(path)
    back = EXPECTED_CLOSE.iloc[[0, 1, 3, 2, 4, 5]]
    path = tmp_path / "back.parquet"
    back.to_parquet(path)
    with pytest.raises(DataError, match=r"not increasing.*2024-03-01 02:00:00.*after "
                                        r"2024-03-01 03:00:00"):
        read_universe(path)
    assert_close_table(read_universe(path, sort=True))


def test_wide_dataframe_and_series_and_numeric_bars():
    assert_close_table(from_frame(EXPECTED_CLOSE))
    s = EXPECTED_CLOSE["AAA"]
    u = read_universe(s)
    assert u.symbols == ["AAA"] and u.n_bars == 6
    # No time at all: rows are bar numbers.
    bars = pd.DataFrame({"X": [1.0, 2.0, 3.0]})
    u = read_universe(bars)
    assert list(u.close.index) == [0, 1, 2]


def test_epoch_time_unit():
    df = long_frame()
    df["time"] = df["time"].astype("datetime64[ms]").astype("int64")
    u = read_universe(df, time_unit="ms")
    assert_close_table(u)
    numeric = read_universe(df)  # without time_unit numbers stay numbers
    assert numeric.close.index[0] == int(T[0].value // 10**6)


def test_timezone_aware_times_are_kept():
    df = long_frame()
    df["time"] = df["time"].dt.tz_localize("UTC")
    u = read_universe(df)
    assert str(u.close.index.tz) == "UTC"
    np.testing.assert_array_equal(u.close.to_numpy(), EXPECTED_CLOSE.to_numpy())


# --------------------------------------------------------------------------------------------
# directories, other inputs, writing
# --------------------------------------------------------------------------------------------
def test_directory_of_per_symbol_files(tmp_path):
    df = long_frame()
    d = tmp_path / "data"
    d.mkdir()
    df[df.symbol == "AAA"].drop(columns="symbol").to_parquet(d / "AAA.parquet")
    df[df.symbol == "BBB"].drop(columns="symbol").to_csv(d / "BBB.csv", index=False)
    (d / "notes.txt").write_text("not data")
    u = read_universe(d)
    assert_close_table(u)
    assert u.volume.loc[T[5], "BBB"] == 35.0


def test_directory_errors_name_the_file(tmp_path):
    df = long_frame()
    d = tmp_path / "data"
    d.mkdir()
    aaa = df[df.symbol == "AAA"].drop(columns="symbol")
    pd.concat([aaa, aaa.iloc[[2]]]).to_csv(d / "AAA.csv", index=False)
    with pytest.raises(DataError, match=r"duplicate rows for symbol 'AAA' at time "
                                        r"2024-03-01 02:00:00 in .*AAA\.csv"):
        read_universe(d)
    aaa.to_csv(d / "AAA.csv", index=False)
    aaa.to_parquet(d / "AAA.parquet")
    with pytest.raises(DataError, match="'AAA' has two files"):
        read_universe(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .parquet or .csv files"):
        read_universe(empty)


def test_missing_path_and_unsupported_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_universe(tmp_path / "missing.parquet")
    p = tmp_path / "data.xlsx"
    p.write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_universe(p)
    with pytest.raises(ValueError, match="format must be"):
        read_universe(long_frame(), format="tall")


def test_cudf_like_frames_are_copied_to_the_host():
    class FakeCudfFrame:  # what matters is the module name and to_pandas()
        __module__ = "cudf.core.dataframe"

        def __init__(self, df):
            self._df = df

        def to_pandas(self):
            return self._df

    assert_close_table(from_frame(FakeCudfFrame(long_frame())))
    with pytest.raises(TypeError):
        from_frame([1, 2, 3])


def test_cudf_engine(tmp_path):
    path = tmp_path / "u.parquet"
    long_frame().to_parquet(path)
    try:
        import cudf  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="cuDF"):
            read_universe(path, engine="cudf")
    else:  # pragma: no cover - only where cuDF is installed
        assert_close_table(read_universe(path, engine="cudf"))
    with pytest.raises(ValueError, match="engine must be"):
        read_universe(path, engine="polars")


@pytest.mark.parametrize("fmt", ["long", "wide"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_universe_round_trip(tmp_path, fmt, suffix):
    u = read_universe(long_frame())
    path = write_universe(u, tmp_path / f"out{suffix}", format=fmt)
    back = read_universe(path)
    assert_close_table(back)
    if fmt == "long":
        np.testing.assert_array_equal(back.volume.to_numpy(), u.volume.to_numpy())


def test_universe_select_and_to_long():
    u = read_universe(long_frame())
    b = u.select(["BBB"])
    # Rows before BBB's listing are dropped from a BBB-only universe.
    assert b.n_bars == 4 and b.close.index[0] == T[2]
    with pytest.raises(KeyError, match="CCC"):
        u.select(["CCC"])
    bad = long_frame()
    bad.loc[bad.symbol == "BBB", "close"] = -1.0
    ub = read_universe(bad)
    sub = ub.select(["AAA", "BBB"])
    assert sub.symbols == ["AAA"] and set(sub.rejected) == {"BBB"}
    assert ub.select(["AAA"]).rejected == {}
    long = u.to_long()
    assert len(long) == 10
    assert list(long.columns) == ["symbol", "time", "open", "high", "low", "close", "volume"]
    assert "Universe(2 symbols × 6 bars" in repr(u)


def test_universe_does_not_rename_the_callers_frame():
    close = pd.DataFrame({1: [1.0, 2.0]})
    Universe(close=close)
    assert list(close.columns) == [1]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_fields_limits_what_is_loaded(tmp_path, suffix):
    path = tmp_path / f"u{suffix}"
    df = long_frame()
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    u = read_universe(path, fields=["volume"])  # close is always loaded
    assert_close_table(u)
    assert u.volume is not None and u.open is None and u.high is None and u.low is None
    d = tmp_path / "dir"
    d.mkdir()
    df[df.symbol == "AAA"].drop(columns="symbol").to_parquet(d / "AAA.parquet")
    assert read_universe(d, fields=["close"]).volume is None
    with pytest.raises(ValueError, match="unknown field"):
        read_universe(path, fields=["vwap"])


def test_long_parquet_with_time_in_the_index(tmp_path):
    path = tmp_path / "indexed.parquet"
    long_frame().set_index("time").to_parquet(path)
    assert_close_table(read_universe(path, fields=["close"]))
    assert_close_table(read_universe(path))


# --------------------------------------------------------------------------------------------
# present: which cells are a symbol's own bars
# --------------------------------------------------------------------------------------------
def holed_long_frame() -> pd.DataFrame:
    """AAA has a row at T[3] whose close is empty; BBB has no row at T[3] at all."""
    df = long_frame()
    df.loc[(df.symbol == "AAA") & (df.time == T[3]), "close"] = np.nan
    return df[~((df.symbol == "BBB") & (df.time == T[3]))].reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_present_tells_a_missing_row_from_a_row_with_an_empty_close(tmp_path, suffix):
    path = tmp_path / f"holed{suffix}"
    df = holed_long_frame()
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    u = read_universe(path)
    # Both cells are NaN in the close table …
    assert np.isnan(u.close.loc[T[3], "AAA"]) and np.isnan(u.close.loc[T[3], "BBB"])
    # … but only AAA has a bar there: a hole in its own history, for the engine's nan_policy.
    assert u.present.dtypes.eq(bool).all()
    np.testing.assert_array_equal(u.present["AAA"], [True] * 6)
    np.testing.assert_array_equal(u.present["BBB"], [False, False, True, False, True, True])
    np.testing.assert_array_equal(u.bar_mask(), u.present.to_numpy())
    assert u.rejected == {}


def test_wide_tables_leave_present_unset():
    u = read_universe(EXPECTED_CLOSE)
    assert u.present is None
    np.testing.assert_array_equal(u.bar_mask(), EXPECTED_CLOSE.notna().to_numpy())


def test_directory_present_follows_each_files_own_calendar(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    days = pd.bdate_range("2024-03-01", periods=10)
    weekly = pd.date_range("2024-03-01", periods=3, freq="W-FRI")
    pd.DataFrame({"time": days, "close": np.arange(1.0, 11.0)}).to_parquet(d / "DAY.parquet")
    pd.DataFrame({"time": weekly, "close": [5.0, np.nan, 6.0]}).to_csv(d / "WEEK.csv",
                                                                       index=False)
    u = read_universe(d)
    assert list(u.index) == sorted(set(days) | set(weekly))
    np.testing.assert_array_equal(u.present["DAY"], u.index.isin(days))
    # WEEK's empty close is still one of its bars; the days between its Fridays are not.
    np.testing.assert_array_equal(u.present["WEEK"], u.index.isin(weekly))
    week = u.select(["WEEK"])
    assert list(week.index) == list(weekly)
    assert week.present["WEEK"].all() and np.isnan(week.close["WEEK"].iloc[1])


def test_select_and_to_long_keep_the_rows_read():
    df = holed_long_frame()
    # BBB's first row has an empty close: still BBB's first bar.
    df.loc[(df.symbol == "BBB") & (df.time == T[2]), "close"] = np.nan
    u = read_universe(df)
    b = u.select(["BBB"])
    assert list(b.index) == [T[2], T[4], T[5]]
    np.testing.assert_array_equal(b.bar_mask(), [[True], [True], [True]])
    long = u.to_long()
    assert len(long) == len(df)  # every row, those with an empty close too
    back = read_universe(long)
    pd.testing.assert_frame_equal(back.present, u.present)
    pd.testing.assert_frame_equal(back.close, u.close)
    pd.testing.assert_frame_equal(u.select(["AAA", "BBB"]).present, u.present)
    # Without present a wide universe keeps its interior empty rows: they may be holes.
    wide = read_universe(EXPECTED_CLOSE.assign(BBB=[np.nan, np.nan, 3.0, np.nan, 5.0, 6.0]))
    sub = wide.select(["BBB"])
    assert sub.present is None and list(sub.index) == list(T[2:])
    # ... and they are: BBB's bars run from its first close to its last (6 + 4 rows).
    assert len(wide.to_long()) == 10


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_universe_long_keeps_rows_with_an_empty_close(tmp_path, suffix):
    u = read_universe(holed_long_frame())
    back = read_universe(write_universe(u, tmp_path / f"out{suffix}"))
    pd.testing.assert_frame_equal(back.present, u.present, check_index_type=False)


def test_present_is_normalised_and_follows_rejections():
    close = pd.DataFrame({1: [1.0, 2.0, 3.0], "B": [1.0, np.nan, 2.0]})
    present = pd.DataFrame({1: [1, 0]}, index=[0, 1])  # ints, one row and column short
    u = Universe(close=close, present=present)
    assert list(u.present.columns) == ["1", "B"] and (u.present.dtypes == bool).all()
    np.testing.assert_array_equal(u.bar_mask(), [[True, False], [False, False], [False, False]])
    bad = holed_long_frame()
    bad.loc[bad.symbol == "BBB", "close"] = -1.0
    ub = read_universe(bad)
    assert ub.symbols == ["AAA"] and list(ub.present.columns) == ["AAA"]


# --------------------------------------------------------------------------------------------
# symbols exactly as written, columns that hold no prices
# --------------------------------------------------------------------------------------------
# Each a real ticker or a name a CSV reader would turn into a number, a bool or a missing value.
ODD_TICKERS = ["005930", "0700", "1.50", "1.5", "TRUE", "True", "NA", "N/A", "NULL", "nan",
               "None", "-1.#IND", "#N/A"]


@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), ("\t", ".tsv"), (None, ".parquet")])
def test_tickers_are_read_exactly_as_written(tmp_path, sep, suffix):
    n = len(ODD_TICKERS)
    df = pd.DataFrame({"symbol": np.repeat(ODD_TICKERS, 2), "time": np.tile(T[:2], n),
                       "close": np.arange(1.0, 2 * n + 1)})
    path = tmp_path / f"u{suffix}"
    df.to_parquet(path) if sep is None else df.to_csv(path, sep=sep, index=False)
    u = read_universe(path)
    assert u.symbols == ODD_TICKERS and u.rejected == {}
    np.testing.assert_array_equal(u.close["0700"], [3.0, 4.0])
    # As column names of a wide table, too.
    wide = tmp_path / f"w{suffix}"
    u.close.to_parquet(wide) if sep is None else u.close.to_csv(wide, sep=sep)
    assert read_universe(wide).symbols == ODD_TICKERS


def test_only_an_empty_cell_is_a_missing_symbol_and_other_columns_keep_their_nulls(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("symbol,time,close\nNA,2024-03-01,1.0\nNA,2024-03-02,NA\n"
                    "X,2024-03-01,N/A\nX,2024-03-02,oops\n")
    u = read_universe(path)
    # NA's "NA" close is a hole in its history, X's first close is missing, not text.
    assert u.symbols == ["NA"] and np.isnan(u.close["NA"].iloc[1])
    assert u.rejected["X"].endswith("got 'oops' at bar 1 (2024-03-02 00:00:00)")
    path.write_text("symbol,time,close\nNA,2024-03-01,1.0\n,2024-03-02,2.0\n")
    with pytest.raises(DataError, match=r"missing symbol in .*u\.csv at row 1"):
        read_universe(path)


def test_integer_symbols_in_parquet_become_strings(tmp_path):
    path = tmp_path / "u.parquet"
    long_frame().assign(symbol=lambda d: d.symbol.map({"AAA": 5930, "BBB": 700})).to_parquet(path)
    assert read_universe(path).symbols == ["5930", "700"]


def test_wide_columns_that_hold_no_prices_are_rejected_by_name():
    df = EXPECTED_CLOSE.assign(
        when=T, gap=pd.to_timedelta(np.arange(6), "D"), flag=[True, False] * 3,
        flag_obj=pd.Series([True, False, None] * 2, index=T, dtype=object),
        label=pd.Categorical(["x", "y"] * 3), coded=pd.Categorical([1.5, 2.5] * 3))
    u = read_universe(df)
    # A category of numbers holds prices; nothing else here does.
    assert u.symbols == ["AAA", "BBB", "coded"]
    assert set(u.rejected) == {"when", "gap", "flag", "flag_obj", "label"}
    assert "got Timestamp('2024-03-01 00:00:00')" in u.rejected["when"]
    assert "got True" in u.rejected["flag_obj"]
    assert read_universe(df, validate=False).close["when"].isna().all()


# --------------------------------------------------------------------------------------------
# directories: other files, kinds of time; empty and broken files given alone
# --------------------------------------------------------------------------------------------
def test_directory_lists_the_files_it_ignores(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    long_frame().query("symbol == 'AAA'").drop(columns="symbol").to_csv(d / "AAA.csv",
                                                                        index=False)
    for name in ("notes.txt", "meta.json", ".DS_Store"):
        (d / name).write_text("x")
    (d / "sub").mkdir()
    u = read_universe(d)
    assert u.symbols == ["AAA"]
    assert u.ignored == [".DS_Store", "meta.json", "notes.txt"]
    assert u.select(["AAA"]).ignored == u.ignored
    assert "ignored [.DS_Store, meta.json, notes.txt]" in repr(u)
    plain = read_universe(long_frame())
    assert plain.ignored == [] and "ignored" not in repr(plain)
    (d / "AAA.csv").unlink()
    with pytest.raises(DataError, match=r"no \.parquet or \.csv files .*; ignored "
                                        r"\[\.DS_Store, meta\.json, notes\.txt\]"):
        read_universe(d)


def test_directory_of_aware_and_naive_times_is_an_error_naming_both(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    aaa = long_frame().query("symbol == 'AAA'").drop(columns="symbol")
    aaa.to_csv(d / "AAA.csv", index=False)
    aaa.assign(time=T.tz_localize("UTC")).to_parquet(d / "BBB.parquet")
    with pytest.raises(DataError, match=r"AAA\.csv has naive times .* but BBB\.parquet has "
                                        r"time-zone-aware times"):
        read_universe(d)
    aaa.assign(time=np.arange(6)).to_csv(d / "AAA.csv", index=False)
    with pytest.raises(DataError, match=r"AAA\.csv has numeric times but BBB\.parquet"):
        read_universe(d)
    # Different zones are one instant each: the union is in UTC.
    new_york = T.tz_localize("America/New_York")
    aaa.assign(time=new_york).to_csv(d / "AAA.csv", index=False)
    u = read_universe(d)
    assert str(u.index.tz) == "UTC"
    assert list(u.index) == sorted(set(new_york) | set(T.tz_localize("UTC")))
    np.testing.assert_array_equal(u.close["AAA"].dropna().index, new_york)


@pytest.mark.parametrize("name, content, problem", [
    ("empty.parquet", b"", "Parquet file size is 0 bytes"),
    ("half.parquet", None, "magic bytes not found"),
    ("empty.csv", b"", "Empty CSV file"),
    ("blank.csv", b"\n\n", "Empty CSV file"),
])
def test_empty_or_truncated_file_alone_names_the_file_and_the_problem(tmp_path, name, content,
                                                                      problem):
    path = tmp_path / name
    if content is None:
        long_frame().to_parquet(path)
        content = path.read_bytes()[:-100]
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^cannot read .*{name}: .*{problem}"):
        read_universe(path)
