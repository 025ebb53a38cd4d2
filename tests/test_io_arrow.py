"""The long-table reader that goes from pyarrow straight to the (symbols × bars) arrays
(``io._long_from_arrow``) against the pandas path it stands in for, and the scanner's packing
of whole runs (``scanner._right_align``) against ``calendars.right_align``.

Each file is read twice, once as users read it and once with the Arrow path switched off, and
the two Universes (and scans, and error messages) must be the same to the bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpu_trend import calendars, io, scanner
from gpu_trend.demo import demo_universe
from gpu_trend.io import DataError, read_universe, write_universe
from gpu_trend.scanner import scan

# Tickers that CSV readers like to turn into numbers, bools or missing values, and others.
TICKERS = ["AAPL", "NA", "005930", "1.50", "TRUE", "nan", "Ä-B", "a b", "X,Y", "0700", "C"]
GRID = pd.date_range("2024-03-01 09:00", periods=40, freq="h")


def random_long(seed: int, *, time_kind: str = "naive", order: str = "symbol") -> pd.DataFrame:
    """A long table whose symbols have their own calendars: late listings, early ends, holes in
    their rows, NaN closes (present rows), bad prices, integer closes, missing volumes."""
    rng = np.random.default_rng(seed)
    n_sym = int(rng.integers(1, 8))
    parts = []
    for j, sym in enumerate(rng.choice(TICKERS, n_sym, replace=False)):
        rows = np.flatnonzero(rng.random(len(GRID)) < rng.uniform(0.4, 1.0))
        if not len(rows):
            rows = np.array([int(rng.integers(len(GRID)))])
        a, b = sorted(rng.integers(0, len(rows) + 1, 2))
        rows = rows[a:max(b, a + 1)] if j % 3 == 0 else rows  # a short run of its own
        close = np.round(rng.uniform(1, 500, len(rows)), 2)
        close[rng.random(len(rows)) < 0.1] = np.nan
        if j % 4 == 1:
            close[int(rng.integers(len(rows)))] = rng.choice([-1.0, 0.0, np.inf])
        volume = rng.uniform(0, 1e6, len(rows))
        volume[rng.random(len(rows)) < 0.2] = np.nan
        parts.append(pd.DataFrame({"symbol": sym, "t": rows, "close": close,
                                   "volume": volume, "open": close * 0.99}))
    df = pd.concat(parts, ignore_index=True)
    if order == "time":
        df = df.sort_values(["t", "symbol"], kind="stable")
    elif order == "shuffled":
        df = df.sample(frac=1.0, random_state=seed)
    times = GRID[df["t"].to_numpy()]
    df["time"] = {
        "naive": times,
        "utc": times.tz_localize("UTC"),
        "zone": times.tz_localize("America/New_York"),
        "bars": df["t"].to_numpy() * 3,
        "epoch": times.asi8 // 10**9,
    }[time_kind]
    return df.drop(columns="t").reset_index(drop=True)


def write(df: pd.DataFrame, path, *, int_close: bool = False):
    if int_close:
        df = df.assign(close=df["close"].fillna(7).replace([np.inf], 9).astype(np.int64))
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def read(path, arrow: bool, monkeypatch, **kwargs):
    """read_universe(path) with or without the Arrow path; the Arrow read must not decline."""
    real = io._long_from_arrow
    used = []

    def spy(*args, **kw):
        out = real(*args, **kw) if arrow else None
        used.append(out is not None)
        return out

    with monkeypatch.context() as m:
        m.setattr(io, "_long_from_arrow", spy)
        uni = read_universe(path, **kwargs)
    assert used == [arrow], "the Arrow path declined a plain long table" if arrow else used
    return uni


def assert_same(a: io.Universe, b: io.Universe) -> None:
    assert a.symbols == b.symbols
    assert a.rejected == b.rejected
    assert a.source == b.source
    for name in ("close", "volume", "open", "high", "low", "present"):
        fa, fb = getattr(a, name), getattr(b, name)
        assert (fa is None) == (fb is None), name
        if fa is not None:
            pd.testing.assert_frame_equal(fa, fb, check_exact=True, check_freq=False)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("time_kind", ["naive", "utc", "zone", "bars", "epoch"])
@pytest.mark.parametrize("order", ["symbol", "time"])
def test_random_long_tables_read_the_same(tmp_path, monkeypatch, suffix, time_kind, order):
    for seed in range(4):
        path = write(random_long(seed, time_kind=time_kind, order=order),
                     tmp_path / f"u{seed}{suffix}", int_close=seed == 3)
        kw = {"time_unit": "s"} if time_kind == "epoch" else {}
        assert_same(read(path, True, monkeypatch, **kw), read(path, False, monkeypatch, **kw))
        # Fields asked for, and no validation: the same again.
        kw |= {"fields": ("close", "volume"), "validate": False}
        assert_same(read(path, True, monkeypatch, **kw), read(path, False, monkeypatch, **kw))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_unsorted_rows_sort_or_fail_alike(tmp_path, monkeypatch, suffix):
    tested = 0
    for seed in range(4):
        df = random_long(seed, order="shuffled")
        if df.groupby("symbol")["time"].is_monotonic_increasing.all():
            continue
        tested += 1
        path = write(df, tmp_path / f"u{seed}{suffix}")
        assert_same(read(path, True, monkeypatch, sort=True),
                    read(path, False, monkeypatch, sort=True))
        errors = []
        for arrow in (True, False):
            with pytest.raises(DataError, match="time is not increasing") as exc:
                read(path, arrow, monkeypatch)
            errors.append((str(exc.value), exc.value.symbol, exc.value.time))
        assert errors[0] == errors[1]
    assert tested >= 2


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_duplicate_rows_fail_alike(tmp_path, monkeypatch, suffix):
    df = random_long(5)
    df = pd.concat([df, df.iloc[[len(df) // 2]]], ignore_index=True)
    path = write(df, tmp_path / f"u{suffix}")
    errors = []
    for arrow in (True, False):
        with pytest.raises(DataError, match="duplicate rows for symbol") as exc:
            read(path, arrow, monkeypatch, sort=True)
        errors.append((str(exc.value), exc.value.symbol, exc.value.time))
    assert errors[0] == errors[1]


def test_what_it_leaves_to_pandas_reads_as_before(tmp_path, monkeypatch):
    """Missing symbols or times, text in a price column, text times in Parquet: the Arrow path
    declines and the pandas path words the error or the rejection."""
    df = random_long(6)
    cases = {
        "missing_symbol": df.assign(symbol=df["symbol"].where(df.index != 3, "")),
        "missing_time": df.assign(time=df["time"].where(df.index != 2)),
        "text_time": df.assign(time=df["time"].astype(str)),
    }
    for name, frame in cases.items():
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        try:
            want = read(path, False, monkeypatch)
        except DataError as exc:
            with pytest.raises(DataError) as got:
                read_universe(path)
            assert str(got.value) == str(exc), name
        else:
            assert_same(read_universe(path), want)
    # A stray word in a CSV close column: the symbol is rejected, naming the word.
    text = df.astype({"close": object})
    text.loc[1, "close"] = "n/a?"
    path = tmp_path / "text.csv"
    text.to_csv(path, index=False)
    got = read_universe(path)
    assert "n/a?" in got.rejected[df.loc[1, "symbol"]]
    assert_same(got, read(path, False, monkeypatch))


def test_pandas_index_in_the_file_is_left_to_pandas(tmp_path, monkeypatch):
    df = random_long(7).set_index("time")  # the time stored as the pandas index
    path = tmp_path / "indexed.parquet"
    df.to_parquet(path)
    assert_same(read_universe(path), read(path, False, monkeypatch))


@pytest.mark.parametrize("policy", ["raise", "skip", "pine"])
def test_scans_of_a_file_are_the_same(tmp_path, monkeypatch, policy):
    """Whole scans, from the file: own calendars, late listings, ends, holes and NaN closes."""
    long = demo_universe(24, 160, seed=3).to_long()
    rng = np.random.default_rng(0)
    drop = rng.random(len(long)) < 0.03  # holes in the symbols' own calendars
    drop |= (long["symbol"] == long["symbol"].iloc[0]) & (long["time"] > long["time"].iloc[120])
    long = long[~drop].reset_index(drop=True)
    long.loc[rng.choice(len(long), 6, replace=False), "close"] = np.nan
    path = tmp_path / "u.parquet"
    long.to_parquet(path, index=False)
    results = []
    for arrow in (True, False):
        uni = read(path, arrow, monkeypatch, fields=("close", "volume"))
        results.append(scan(uni, {"nan_policy": policy}, backend="cpu", progress=False))
    fast, slow = results
    assert len(fast.all) > 10
    pd.testing.assert_frame_equal(fast.all, slow.all, check_exact=True)
    assert fast.skipped == slow.skipped


def random_bars(rng, n_s: int, n_t: int, kind: int) -> np.ndarray:
    mask = np.zeros((n_s, n_t), dtype=bool)
    for s in range(n_s):
        if kind == 0:  # anything: gaps everywhere
            mask[s] = rng.random(n_t) < 0.6
        else:  # one run each, ending at the last column (kind 2) or anywhere (kind 1)
            a = int(rng.integers(0, n_t + 1))
            mask[s, a:int(rng.integers(a, n_t + 1)) if kind == 1 else n_t] = True
    return mask


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_packing_by_runs_equals_right_align(kind):
    rng = np.random.default_rng(kind)
    for trial in range(150):
        n_s, n_t = int(rng.integers(0, 7)), int(rng.integers(0, 9))
        is_bar = random_bars(rng, n_s, n_t, kind)
        close = np.where(is_bar, rng.uniform(1, 2, is_bar.shape), np.nan)
        if trial % 4 == 0 and is_bar.size and not is_bar[0, 0]:
            close[0, 0] = 5.0  # a value in a cell that is no bar: it must not be packed
        volume = np.where(is_bar | (trial % 2 == 0), 1e6, np.nan)
        want, want_pos = calendars.right_align(is_bar, close, volume)
        got, got_pos = scanner._right_align(is_bar, close, volume)
        np.testing.assert_array_equal(got_pos, want_pos)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_packing_moves_nothing_when_every_run_ends_last():
    close = np.full((3, 5), np.nan)
    close[0], close[1, 2:], close[2, 4] = 1.0, 2.0, 3.0
    got, positions = scanner._right_align(~np.isnan(close), close)
    assert got[0] is close  # no copy on the way to the engine
    np.testing.assert_array_equal(positions[1], [-1, -1, 2, 3, 4])


def test_write_then_read_round_trips_through_arrow(tmp_path, monkeypatch):
    uni = demo_universe(9, 50, seed=1)
    for suffix in (".parquet", ".csv"):
        path = write_universe(uni, tmp_path / f"u{suffix}")
        got = read(path, True, monkeypatch)
        # CSV times come back in seconds, Parquet's in microseconds: the values are the same.
        pd.testing.assert_frame_equal(got.close, uni.close, check_exact=True, check_freq=False,
                                      check_index_type=False)
        assert_same(got, read(path, False, monkeypatch))
