"""Every common file shape read_universe meets: single-symbol OHLCV files, pandas' default index
column, bad files in a directory, errors that name the file, and shapes it cannot tell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpu_trend.io import SHAPES, DataError, read_universe

DAYS = pd.bdate_range("2024-03-01", periods=5, name="Date")


def ohlcv(adj: bool = True) -> pd.DataFrame:
    """One symbol's bars as yfinance and data vendors write them: time in the index."""
    close = np.array([10.0, 11.0, 12.0, 11.5, 12.5])
    df = pd.DataFrame({"Open": close - 0.5, "High": close + 1, "Low": close - 1, "Close": close,
                       "Adj Close": close * 0.9, "Volume": [100, 200, 300, 400, 500]},
                      index=DAYS)
    return df if adj else df.drop(columns="Adj Close")


def write(df: pd.DataFrame, path, **kwargs) -> None:
    df.to_parquet(path, **kwargs) if path.suffix == ".parquet" else df.to_csv(path, **kwargs)


def assert_one_symbol(u, name: str, close=None) -> None:
    assert u.symbols == [name] and u.rejected == {}
    np.testing.assert_array_equal(u.close.index, DAYS)
    expected = ohlcv()["Close"] if close is None else close
    np.testing.assert_array_equal(u.close[name], expected)


# --------------------------------------------------------------------------------------------
# single-symbol OHLCV tables
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_single_symbol_ohlcv_file_is_one_symbol_named_after_the_file(tmp_path, suffix):
    path = tmp_path / f"AAPL{suffix}"
    write(ohlcv(), path)
    u = read_universe(path)
    # Plain Close wins over Adj Close.
    assert_one_symbol(u, "AAPL")
    np.testing.assert_array_equal(u.volume["AAPL"], [100, 200, 300, 400, 500])
    np.testing.assert_array_equal(u.high["AAPL"], ohlcv()["High"])
    assert u.present["AAPL"].all()
    assert read_universe(path, symbol="apple").symbols == ["apple"]
    # Mapping the adjusted close uses it, next to a plain one.
    adjusted = read_universe(path, columns={"close": "Adj Close"})
    np.testing.assert_allclose(adjusted.close["AAPL"], ohlcv()["Adj Close"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_adjusted_close_alone_is_the_close_and_names_are_case_insensitive(tmp_path, suffix):
    df = ohlcv().drop(columns="Close").reset_index()
    df.columns = [c.lower() for c in df.columns]  # date, open, high, low, adj close, volume
    path = tmp_path / f"msft{suffix}"
    write(df, path, index=False)
    assert_one_symbol(read_universe(path), "msft", close=ohlcv()["Adj Close"])
    upper = df[["date", "adj close"]].rename(columns={"date": "DATE", "adj close": "CLOSE"})
    write(upper, path, index=False)
    assert_one_symbol(read_universe(path), "msft", close=ohlcv()["Adj Close"])


def test_single_symbol_data_frame_is_named_close_or_by_symbol():
    assert_one_symbol(read_universe(ohlcv()), "close")
    assert_one_symbol(read_universe(ohlcv(), symbol="AAPL"), "AAPL")
    # yfinance's Ticker.history() extras are neither fields nor symbols.
    history = ohlcv(adj=False).assign(Dividends=0.0, **{"Stock Splits": 0.0})
    assert_one_symbol(read_universe(history), "close")
    # No time at all: numbered bars, as in a wide table.
    bars = read_universe(pd.DataFrame({"close": [1.0, 2.0, 3.0], "volume": 1.0}))
    assert bars.symbols == ["close"] and list(bars.index) == [0, 1, 2]


def test_wide_tables_with_tickers_that_look_like_fields_stay_wide():
    # C, V, O, L, H, LOW and OPEN are real tickers: without a close, columns are symbols.
    df = pd.DataFrame(1.0, index=DAYS, columns=["C", "V", "O", "L", "H", "LOW", "OPEN"])
    u = read_universe(df)
    assert u.symbols == list(df.columns) and u.present is None
    # An explicit format='wide' reads an OHLCV table as one symbol per column.
    assert read_universe(ohlcv(adj=False), format="wide").n_symbols == 5


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_single_symbol_files_in_a_directory(tmp_path, suffix):
    d = tmp_path / "data"
    d.mkdir()
    write(ohlcv(), d / f"AAA{suffix}")
    write(ohlcv(adj=False).iloc[2:], d / "BBB.csv")
    u = read_universe(d)
    assert u.symbols == ["AAA", "BBB"] and u.rejected == {}
    np.testing.assert_array_equal(u.close["AAA"], ohlcv()["Close"])
    np.testing.assert_array_equal(u.present["BBB"], [False, False, True, True, True])


# --------------------------------------------------------------------------------------------
# pandas' default index column: a blank header (pyarrow) or "Unnamed: 0" (pandas)
# --------------------------------------------------------------------------------------------
def wide_close() -> pd.DataFrame:
    return pd.DataFrame({"AAA": [1.0, 2.0, 3.0, 4.0, 5.0], "BBB": [5.0, 4.0, 3.0, 2.0, 1.0]},
                        index=DAYS)


def long_close() -> pd.DataFrame:
    return wide_close().rename_axis("time").melt(ignore_index=False, var_name="symbol",
                                                 value_name="close")


@pytest.mark.parametrize("shape", ["wide", "long", "single"])
def test_blank_and_unnamed_index_header_is_the_time(tmp_path, shape):
    frame = {"wide": wide_close(), "long": long_close(), "single": ohlcv()}[shape]
    path = tmp_path / "t.csv"
    frame.rename_axis(None).to_csv(path)  # header starts with an empty name
    assert path.read_text().startswith(",")
    for source in (path, pd.read_csv(path)):  # "" from pyarrow, "Unnamed: 0" from pandas
        u = read_universe(source)
        np.testing.assert_array_equal(u.close.index, DAYS)
        expected = {"wide": ["AAA", "BBB"], "long": ["AAA", "BBB"],
                    "single": ["t" if source is path else "close"]}[shape]
        assert u.symbols == expected


def test_row_number_index_column_next_to_a_time_column_is_dropped(tmp_path):
    path = tmp_path / "w.csv"
    wide_close().reset_index().to_csv(path)  # ",Date,AAA,BBB": the first column is 0, 1, 2 …
    u = read_universe(path)
    assert u.symbols == ["AAA", "BBB"]
    np.testing.assert_array_equal(u.close.index, DAYS)
    single = tmp_path / "X.csv"
    ohlcv().reset_index().to_csv(single)
    assert_one_symbol(read_universe(single), "X")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_directory_of_files_written_with_a_default_index(tmp_path, suffix):
    d = tmp_path / "data"
    d.mkdir()
    for sym in ("AAA", "BBB"):
        write(wide_close()[[sym]].rename(columns={sym: "close"}).rename_axis(None),
              d / f"{sym}{suffix}")
    u = read_universe(d)
    assert u.symbols == ["AAA", "BBB"] and u.rejected == {}
    np.testing.assert_array_equal(u.close.to_numpy(), wide_close().to_numpy())
    np.testing.assert_array_equal(u.close.index, DAYS)


# --------------------------------------------------------------------------------------------
# bad files in a directory, and errors that name the file
# --------------------------------------------------------------------------------------------
def test_a_bad_file_in_a_directory_costs_its_own_symbol_only(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    write(ohlcv(), d / "GOOD.csv")
    write(ohlcv(), d / "TRUNC.parquet")
    data = (d / "TRUNC.parquet").read_bytes()
    (d / "TRUNC.parquet").write_bytes(data[: len(data) // 2])
    (d / "GARBAGE.parquet").write_bytes(b"\x00\x01 not a parquet file \xff" * 10)
    (d / "EMPTY.csv").write_text("")
    write(ohlcv().drop(columns=["Close", "Adj Close"]), d / "NOCLOSE.csv")
    (d / "BADTIME.csv").write_text("time,close\nyesterday,1.0\ntoday,2.0\n")
    write(ohlcv().iloc[[0, 1, 1, 2]], d / "DUP.csv")
    u = read_universe(d)
    assert u.symbols == ["GOOD"]
    reasons = u.rejected
    assert set(reasons) == {"TRUNC", "GARBAGE", "EMPTY", "NOCLOSE", "BADTIME", "DUP"}
    for sym, reason in reasons.items():
        # One line, filed under a category by the scanner, naming the file.
        assert reason.startswith("bad file: ") and "\n" not in reason, reason
        assert sym in reason, reason
    assert reasons["TRUNC"].startswith("bad file: cannot read TRUNC.parquet: ")
    assert reasons["EMPTY"] == "bad file: cannot read EMPTY.csv: Empty CSV file"
    assert "no close column in NOCLOSE.csv" in reasons["NOCLOSE"]
    assert "cannot parse the time values of BADTIME.csv" in reasons["BADTIME"]
    assert "duplicate rows for symbol 'DUP' at time 2024-03-04" in reasons["DUP"]


def test_a_directory_where_every_file_fails_is_an_error(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    for sym in ("A", "B", "C", "D"):
        (d / f"{sym}.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"none of the 4 files in .*data could be read: "
                                        r"bad file: cannot read A\.parquet.*; …$"):
        read_universe(d)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reader_errors_name_the_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00garbage\xff\n1,2\n3" if suffix == ".csv" else b"PAR1 truncated")
    with pytest.raises(DataError, match=rf"{path.name}"):
        read_universe(path)
    write(ohlcv(), path)
    with pytest.raises(DataError, match=rf"'Nope' \(given for 'close'\) not found in .*"
                                        rf"{path.name}"):
        read_universe(path, columns={"close": "Nope"})


# --------------------------------------------------------------------------------------------
# shapes that cannot be told
# --------------------------------------------------------------------------------------------
def test_ambiguous_or_unrecognised_shapes_list_the_accepted_ones(tmp_path):
    path = tmp_path / "odd.csv"
    ohlcv().assign(Sector="tech").to_csv(path)
    with pytest.raises(DataError, match=r"cannot tell the shape of .*odd\.csv.*\[Sector\]") as info:
        read_universe(path)
    assert SHAPES in str(info.value)
    # The fixes it suggests work.
    assert_one_symbol(read_universe(path, symbol="ODD"), "ODD")
    assert "Sector" in read_universe(path, format="wide", validate=False).symbols
    # A long table without time, or a long read of a table without symbols.
    with pytest.raises(DataError, match=r"no time column.*accepted shapes: long") as info:
        read_universe(long_close().reset_index(drop=True))
    assert SHAPES in str(info.value)
    with pytest.raises(DataError, match=r"no symbol column.*accepted shapes: long"):
        read_universe(ohlcv(), format="long")


def test_symbol_and_volume_options_that_do_not_fit_the_shape(tmp_path):
    with pytest.raises(ValueError, match="symbol="):
        read_universe(ohlcv(), symbol="X", format="wide")
    with pytest.raises(ValueError, match="symbol="):
        read_universe(tmp_path, symbol="X")
    with pytest.raises(ValueError, match="volume= is for wide tables.*single-symbol"):
        read_universe(ohlcv(), volume=wide_close())


# --------------------------------------------------------------------------------------------
# a wide table's time column under an unrecognised name
# --------------------------------------------------------------------------------------------
EPOCHS = DAYS.as_unit("s").asi8  # epoch seconds, about 1.7e9


def epoch_wide(name: str) -> pd.DataFrame:
    return wide_close().reset_index(drop=True).assign(**{name: EPOCHS})[[name, "AAA", "BBB"]]


@pytest.mark.parametrize("name", ["t", "T", "TS", "Time (UTC)", "open_time", "Unixtime",
                                  "trade_date", "epoch"])
def test_wide_csv_epoch_column_under_a_time_like_name_is_the_time(tmp_path, name):
    path = tmp_path / "w.csv"
    epoch_wide(name).to_csv(path, index=False)
    u = read_universe(path)
    # Never a phantom symbol priced about 1.7e9.
    assert u.symbols == ["AAA", "BBB"] and u.rejected == {}
    np.testing.assert_array_equal(u.close.index, EPOCHS)
    np.testing.assert_array_equal(read_universe(path, time_unit="s").close.index, DAYS)


def test_wide_csv_epoch_column_under_another_name_asks_for_the_time(tmp_path):
    path = tmp_path / "w.csv"
    epoch_wide("x").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"first column 'x' of .*w\.csv looks like epoch times"
                                        r".*columns=\{'time': 'x'\}"):
        read_universe(path)
    assert read_universe(path, columns={"time": "x"}).symbols == ["AAA", "BBB"]
    # Named like a ticker it is a symbol; small integers or no order are no epoch times.
    epoch_wide("CCC").to_csv(path, index=False)
    assert read_universe(path).symbols == ["CCC", "AAA", "BBB"]
    for values in ([1, 2, 3, 4, 5], EPOCHS[::-1][[0, 2, 1, 3, 4]]):
        epoch_wide("x").assign(x=values).to_csv(path, index=False)
        assert read_universe(path).symbols == ["x", "AAA", "BBB"]


# --------------------------------------------------------------------------------------------
# column names that are no plain strings
# --------------------------------------------------------------------------------------------
def pivoted() -> pd.DataFrame:
    """(field, symbol) MultiIndex columns, as df.pivot with several value columns gives."""
    long = long_close().reset_index().assign(volume=lambda d: d.close * 100)
    return long.pivot(index="time", columns="symbol", values=["close", "volume"])


@pytest.mark.parametrize("frame", [
    pivoted(),
    pivoted().reset_index(),  # the time is a ("time", "") column
    pivoted().swaplevel(axis=1),  # (symbol, field), as yfinance's group_by="ticker"
    pivoted().rename(columns={"close": "Close", "volume": "Volume"}),  # yfinance's fields
])
def test_multiindex_columns_with_a_field_level_are_a_wide_table_per_field(frame):
    u = read_universe(frame)
    assert u.symbols == ["AAA", "BBB"] and u.rejected == {}
    np.testing.assert_array_equal(u.close.index, DAYS)
    np.testing.assert_array_equal(u.close.to_numpy(), wide_close().to_numpy())
    np.testing.assert_array_equal(u.volume.to_numpy(), wide_close().to_numpy() * 100)
    assert read_universe(frame, fields=["close"]).volume is None


def test_other_multiindex_and_integer_column_names_become_readable_strings():
    df = wide_close()
    df.columns = pd.MultiIndex.from_tuples([("NASDAQ", "AAA"), ("NYSE", 1)])
    assert read_universe(df).symbols == ["NASDAQ:AAA", "NYSE:1"]
    assert read_universe(wide_close().set_axis([1, 2], axis=1)).symbols == ["1", "2"]
    long = long_close().assign(symbol=lambda d: d.symbol.map({"AAA": 7, "BBB": 8}))
    assert read_universe(long).symbols == ["7", "8"]
