"""Fuzzing read_universe: every ticker comes back exactly as written, and no column that holds
no numbers (bool, datetime, timedelta, category or text) is ever priced."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_trend.io import DataError, read_universe

T = pd.date_range("2024-03-01", periods=5, freq="D")
FUZZ = settings(max_examples=40, deadline=None)

# What CSV readers turn into numbers, bools or missing values, and real tickers alike.
TOKENS = ["NA", "N/A", "NULL", "null", "nan", "NaN", "None", "#N/A", "TRUE", "False", "1.50",
          "1.5", "005930", "0700", "1e5", "-0", " ", "'0700", '"q"', "a,b"]
TICKERS = st.one_of(
    st.sampled_from(TOKENS),
    st.from_regex(r"0[0-9]{1,5}", fullmatch=True),
    # Any printable text: unicode, spaces, punctuation, quotes and commas (pandas quotes those).
    # Control characters are left out: a line break inside a value is another row to pyarrow.
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
)


@FUZZ
@given(tickers=st.lists(TICKERS, min_size=1, max_size=6, unique=True),
       bad=st.lists(st.booleans(), min_size=6, max_size=6),
       n_bars=st.integers(1, 4), suffix=st.sampled_from([".csv", ".parquet"]))
def test_every_ticker_comes_back_with_its_exact_name(tickers, bad, n_bars, suffix):
    # Time-major rows, as exports interleave symbols; a symbol with a negative close is rejected.
    df = pd.DataFrame({
        "symbol": np.tile(np.array(tickers, dtype=object), n_bars),
        "time": np.repeat(T[:n_bars], len(tickers)),
        "close": np.tile([-1.0 if b else 2.5 for b in bad[:len(tickers)]], n_bars),
    })
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"u{suffix}"
        df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
        u = read_universe(path)
    assert sorted(u.symbols) == sorted(t for t, b in zip(tickers, bad) if not b)
    assert sorted(u.rejected) == sorted(t for t, b in zip(tickers, bad) if b)


def column(kind: str, numbers: list[float]) -> pd.Series:
    """A column of one of :data:`KINDS`, made from `numbers` (in [1, 1000])."""
    values = np.asarray(numbers)
    if kind == "float":
        return pd.Series(values)
    if kind == "int":
        return pd.Series(values.astype(np.int64))
    if kind == "bool":
        return pd.Series(values > 500)
    if kind == "datetime":
        return pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(values, "h"))
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(values, "s"))
    words = np.array(["x", "qq", "zyx", "yx"])[values.astype(int) % 4]
    return pd.Series(pd.Categorical(words) if kind == "category" else words.astype(object))


KINDS = ["float", "int", "bool", "datetime", "timedelta", "category", "text"]
NUMERIC = ("float", "int")
# Without a time, a first column of these kinds is the time (bools are numbers to pandas).
TIME_LIKE = ("datetime", "timedelta", "category", "text")


@FUZZ
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
       values=st.lists(st.lists(st.floats(1.0, 1000.0), min_size=5, max_size=5), min_size=6,
                       max_size=6),
       time_index=st.booleans(), parquet=st.booleans())
def test_wide_columns_that_hold_no_numbers_are_never_priced(kinds, values, time_index, parquet):
    names = [f"S{i}" for i in range(len(kinds))]
    df = pd.DataFrame({n: column(k, v) for n, k, v in zip(names, kinds, values)})
    if time_index:
        df.index = T
    with tempfile.TemporaryDirectory() as d:
        if parquet:
            df.to_parquet(Path(d) / "w.parquet")
        try:
            u = read_universe(Path(d) / "w.parquet" if parquet else df)
        except DataError as exc:
            # Only a first column taken as the time may fail (its values are no times, or not
            # in order), and the message names it.
            assert not time_index and kinds[0] in TIME_LIKE and "'S0'" in str(exc), exc
            return
    as_time = not time_index and kinds[0] in TIME_LIKE
    for i, (name, kind) in enumerate(zip(names, kinds)):
        if kind in NUMERIC:
            np.testing.assert_array_equal(u.close[name], df[name].to_numpy(dtype=float))
        elif i == 0 and as_time:
            assert name not in u.symbols and name not in u.rejected
        else:
            assert name not in u.symbols and name in u.rejected, (name, kind, u.rejected)
