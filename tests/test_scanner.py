"""gpu_trend.scanner: filters, ranking, skipped reasons, chunking, output files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import engine, scanner
from gpu_trend.config import FAMILIES, ATCConfig
from gpu_trend.io import Universe
from gpu_trend.scanner import TABLE_COLUMNS, ScanResult, default_min_bars, scan

N_BARS = 300
TIME = pd.date_range("2023-01-02", periods=N_BARS, freq="D", name="time")


def vshape(up: bool, seed: int, base: float = 100.0) -> np.ndarray:
    """Down then up (or up then down): the second leg crosses every MA, so the trend is set."""
    rng = np.random.default_rng(seed)
    half = N_BARS // 2
    slope = np.r_[np.full(half, -0.004), np.full(N_BARS - half, 0.004)]
    return base * np.exp(np.cumsum((slope if up else -slope) + rng.normal(0, 0.002, N_BARS)))


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = {f"U{i}": vshape(True, i) for i in range(3)}
    cols |= {f"D{i}": vshape(False, 10 + i) for i in range(3)}
    cols["CHEAP"] = vshape(True, 20, base=0.5)
    cols["ILLIQ"] = vshape(False, 21)
    short = vshape(True, 22)
    short[: N_BARS - 40] = np.nan  # listed 40 bars ago
    cols["SHORT"] = short
    neg = vshape(True, 23)
    neg[100] = -1.0
    cols["NEG"] = neg
    gap = vshape(True, 24)
    gap[150] = np.nan
    cols["GAP"] = gap
    cols["EMPTY"] = np.full(N_BARS, np.nan)
    close = pd.DataFrame(cols, index=TIME)
    volume = pd.DataFrame(1e6, index=TIME, columns=close.columns)
    volume["ILLIQ"] = 10.0  # about 1,000 of dollar volume per bar
    return close, volume


@pytest.fixture(scope="module")
def universe(frames) -> Universe:
    close, volume = frames
    return Universe(close=close, volume=volume)


GOOD = ["U0", "U1", "U2", "D0", "D1", "D2", "CHEAP", "ILLIQ"]


def direct(close: pd.DataFrame, symbols: list[str], config=None) -> pd.DataFrame:
    """The engine's own latest() for `symbols`, computed without the scanner."""
    return gpu_trend.compute_atc(close[symbols], config, backend="cpu").latest()


def test_default_min_bars():
    # Longest DEMA member with Medium robustness: 28 + 6 = 34, seeded on bar 2*34-2 = 66.
    assert default_min_bars() == 67
    # Wide: 28 + 7 = 35 -> 69; a cutout beyond the warm-up takes over.
    assert default_min_bars(ATCConfig(robustness="Wide")) == 69
    assert default_min_bars(ATCConfig(cutout=200)) == 201
    assert default_min_bars(ATCConfig(lengths=(10, 10, 10, 40, 10, 10))) == 2 * 46 - 2 + 1


def test_every_symbol_is_scanned_or_skipped_with_its_reason(universe, frames):
    res = scan(universe, backend="cpu", min_price=1.0, min_dollar_volume=1e5, progress=False,
               chunk_symbols=3)
    close, _ = frames
    assert isinstance(res, ScanResult)
    assert sorted(res.all.index) == sorted(["U0", "U1", "U2", "D0", "D1", "D2"])
    assert set(res.all.index).isdisjoint(res.skipped)
    assert set(res.all.index) | set(res.skipped) == set(close.columns)
    sk = res.skipped
    assert sk["SHORT"] == "too short: 40 bars < min_bars 67"
    assert sk["NEG"] == ("invalid prices: close must be a finite price > 0, got -1.0 at "
                         "bar 100 (2023-04-12 00:00:00)")
    assert sk["GAP"].startswith("missing data: close is NaN at bar 150 (2023-06-01 00:00:00), "
                                "inside its history")
    assert sk["EMPTY"] == "no data: no valid close"
    assert sk["CHEAP"].startswith("min_price: last close 0.")
    assert sk["CHEAP"].endswith("< 1")
    assert sk["ILLIQ"].startswith("min_dollar_volume: mean close×volume over the last 20 bars")
    assert res.n_symbols == close.shape[1] and res.n_bars == N_BARS


def test_values_match_the_engine_and_ranking(universe, frames):
    close, volume = frames
    res = scan(universe, backend="cpu", progress=False, min_signal=0.0, chunk_symbols=2)
    assert sorted(res.all.index) == sorted(GOOD)
    expected = direct(close, GOOD)
    got = res.all.loc[GOOD]
    for col in ["average_signal", "direction", *FAMILIES, "bars_since_long", "bars_since_short"]:
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy(), err_msg=col)
    assert list(res.all.columns) == list(TABLE_COLUMNS)
    assert (res.all["time"] == TIME[-1]).all()
    np.testing.assert_array_equal(got["close"].to_numpy(), close[GOOD].iloc[-1].to_numpy())
    dv = (close[GOOD] * volume[GOOD]).iloc[-20:].mean()
    np.testing.assert_allclose(got["dollar_volume"].to_numpy(), dv.to_numpy(), rtol=1e-12)
    assert (got["bars"] == N_BARS).all()
    # Ranked by |Average_Signal| (strongest first), ranks 1..n.
    strength = res.all["average_signal"].abs().to_numpy()
    assert (np.diff(strength) <= 0).all()
    assert list(res.all["rank"]) == list(range(1, len(res.all) + 1))
    # The V-shaped series end in clear trends.
    assert (res.all.loc[["U0", "U1", "U2"], "average_signal"] > 0.1).all()
    assert (res.all.loc[["D0", "D1", "D2"], "average_signal"] < -0.1).all()


def test_long_short_views_thresholds_and_top(universe):
    res = scan(universe, backend="cpu", progress=False)
    a = res.all["average_signal"]
    # Default signal filter: the config's thresholds.
    assert set(res.long.index) == set(a[a >= 0.1].index)
    assert set(res.short.index) == set(a[a <= -0.1].index)
    assert set(res.table.index) == set(res.long.index) | set(res.short.index)
    assert (res.long["average_signal"].diff().dropna() <= 0).all()
    assert (res.short["average_signal"].diff().dropna() >= 0).all()

    strict = scan(universe, backend="cpu", progress=False, min_signal=0.99)
    assert set(strict.table.index) == set(a[a.abs() >= 0.99].index)
    assert strict.long_threshold == 0.99 and strict.short_threshold == -0.99

    cfg = ATCConfig(long_threshold=0.6, short_threshold=-0.3)
    custom = scan(universe, cfg, backend="cpu", progress=False)
    assert set(custom.long.index) == set(a[a >= 0.6].index)
    assert set(custom.short.index) == set(a[a <= -0.3].index)

    top = scan(universe, backend="cpu", progress=False, top=1)
    assert len(top.long) == 1 and len(top.short) == 1
    assert top.long.index[0] == res.long.index[0]
    assert top.short.index[0] == res.short.index[0]
    assert len(top.all) == len(res.all)  # `top` only trims the hits


def test_tie_break_prefers_the_fresher_event():
    # Two identical up-trends, one shifted by 5 bars: same |A| = 1, different event age.
    base = vshape(True, 1)
    close = pd.DataFrame({"LATE": np.r_[np.full(5, base[0]), base[:-5]], "EARLY": base},
                         index=TIME)
    res = scan(close, backend="cpu", progress=False, min_signal=0.0)
    a = res.all["average_signal"]
    if a["LATE"] == a["EARLY"] and res.all.loc["LATE", "EMA"] == res.all.loc["EARLY", "EMA"]:
        fresher = res.all["bars_since_long"].idxmin()
        assert res.all.index[0] == fresher


def test_input_forms_path_and_dataframe(tmp_path, frames):
    close, _ = frames
    good = close[GOOD]
    path = tmp_path / "u.parquet"
    good.to_parquet(path)
    from_path = scan(path, backend="cpu", progress=False, min_signal=0.0)
    from_frame = scan(good, backend="cpu", progress=False, min_signal=0.0)
    pd.testing.assert_frame_equal(from_path.all.drop(columns="time"),
                                  from_frame.all.drop(columns="time"))
    assert from_path.elapsed["load"] >= 0
    assert set(from_path.elapsed) == {"load", "filter", "compute", "rank", "total"}
    # A DataFrame goes through the reader's validation: bad prices land in skipped.
    res = scan(close, backend="cpu", progress=False)
    assert res.skipped["NEG"].startswith("invalid prices: close must be a finite price > 0, "
                                         "got -1.0 at bar 100 (2023-04-12")
    assert res.skipped["EMPTY"] == "no data: no valid close"
    long = good.stack().rename("close").reset_index()
    long.columns = ["time", "symbol", "close"]
    via_long = scan(long, backend="cpu", progress=False, min_signal=0.0,
                    read_options={"format": "long"})
    assert sorted(via_long.all.index) == sorted(GOOD)


def test_nan_policy_ffill_scans_the_gap_symbol(universe):
    res = scan(universe, ATCConfig(nan_policy="ffill"), backend="cpu", progress=False)
    assert "GAP" not in res.skipped
    assert "GAP" in res.all.index


@pytest.fixture
def engine_refuses(monkeypatch):
    """Make the engine's input check refuse symbols the scanner's prefilter let through.

    Returns the list of symbol lists the engine was asked to compute; set ``refuse[0]`` to the
    symbol to refuse (None: an error naming no symbol).
    """
    real = engine.Workload.check
    calls: list = []
    refuse: list = ["U1"]

    def check(self, plan):
        calls.append(list(self.names))
        if refuse[0] is None:
            raise gpu_trend.ATCInputError("something global")
        if refuse[0] in self.names:
            raise gpu_trend.ATCInputError(f"symbol {refuse[0]!r}: synthetic failure",
                                          symbol=refuse[0], bar=7)
        return real(self, plan)

    monkeypatch.setattr(engine.Workload, "check", check)
    return calls, refuse


def test_compute_errors_go_to_skipped(universe, engine_refuses):
    calls, _ = engine_refuses
    res = scan(universe, backend="cpu", progress=False, chunk_symbols=4, min_signal=0.0)
    assert res.skipped["U1"] == "error: symbol 'U1': synthetic failure"
    assert sorted(res.all.index) == sorted(s for s in GOOD if s != "U1")
    # The universe was checked again without U1, not dropped.
    assert "U1" in calls[0] and "U1" not in calls[1] and "U0" in calls[1]
    want = direct(universe.close, [s for s in GOOD if s != "U1"])
    np.testing.assert_array_equal(res.all.loc[want.index, "average_signal"],
                                  want["average_signal"])


def test_unattributable_compute_error_propagates(universe, engine_refuses):
    engine_refuses[1][0] = None
    with pytest.raises(gpu_trend.ATCInputError, match="something global"):
        scan(universe, backend="cpu", progress=False)


def test_chunking_gives_the_same_table(universe):
    one = scan(universe, backend="cpu", progress=False, min_signal=0.0)
    many = scan(universe, backend="cpu", progress=False, min_signal=0.0, chunk_symbols=1)
    pd.testing.assert_frame_equal(one.all, many.all)
    bounded = scan(universe, backend="cpu", progress=False, min_signal=0.0, memory_limit=400_000)
    pd.testing.assert_frame_equal(one.all, bounded.all)
    with pytest.raises(gpu_trend.MemoryBudgetError, match="raise memory_limit"):
        scan(universe, backend="cpu", progress=False, memory_limit=100)


def test_the_scan_computes_through_iter_atc_with_its_budget(universe, monkeypatch):
    """One compute path: the engine's iter_atc, given the scan's chunking and budget."""
    seen = []
    real = scanner.iter_atc

    def spy(close, config=None, **kwargs):
        seen.append(kwargs)
        return real(close, config, **kwargs)

    monkeypatch.setattr(scanner, "iter_atc", spy)
    res = scan(universe, backend="cpu", progress=False, min_signal=0.0, chunk_symbols=3,
               memory_limit="1GiB")
    assert len(seen) == 1 and sorted(seen[0]["symbols"]) == sorted(GOOD)
    assert {k: v for k, v in seen[0].items() if k != "symbols"} == dict(
        backend="cpu", chunk_symbols=3, memory_limit="1GiB", on_device=False, progress=False,
        reuse_outputs=True)
    want = direct(universe.close, GOOD)
    np.testing.assert_array_equal(res.all.loc[want.index, "average_signal"],
                                  want["average_signal"])


def test_argument_errors(frames):
    close, _ = frames
    with pytest.raises(ValueError, match="needs volume data"):
        scan(close, min_dollar_volume=1.0, progress=False)
    with pytest.raises(ValueError, match="top"):
        scan(close, top=0, progress=False)
    with pytest.raises(ValueError, match="min_signal"):
        scan(close, min_signal=-0.5, progress=False)
    with pytest.raises(ValueError, match="min_bars"):
        scan(close, min_bars=0, progress=False)
    with pytest.raises(ValueError, match="lengths"):
        scan(close, {"lengths": (1, 1, 1, 1, 1, 1)}, progress=False)


def test_everything_skipped_gives_empty_tables(frames):
    close, _ = frames
    res = scan(close, backend="cpu", progress=False, min_bars=10_000)
    assert res.all.empty and res.table.empty and res.long.empty and res.short.empty
    assert list(res.all.columns) == list(TABLE_COLUMNS)
    assert len(res.skipped) == close.shape[1]
    assert "Skipped: too short" in res.summary()


def test_progress_bar_only_when_asked_or_on_a_terminal(universe, capsys):
    scan(universe, backend="cpu", progress=False)
    assert capsys.readouterr().err == ""
    scan(universe, backend="cpu")  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""
    scan(universe, backend="cpu", progress=True)
    assert "ATC scan" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_to_file(tmp_path, universe, suffix):
    res = scan(universe, backend="cpu", progress=False)
    path = res.to_file(tmp_path / f"hits{suffix}")
    if suffix == ".csv":
        back = pd.read_csv(path)
    elif suffix == ".parquet":
        back = pd.read_parquet(path)
    else:
        back = pd.DataFrame(json.loads(path.read_text()))
    assert list(back.columns) == ["symbol", *TABLE_COLUMNS]
    assert list(back["symbol"]) == list(res.table.index)
    np.testing.assert_allclose(back["average_signal"].to_numpy(float),
                               res.table["average_signal"].to_numpy(), rtol=1e-12)
    skipped = res.to_file(tmp_path / f"skipped{suffix}", which="skipped")
    assert skipped.exists()
    with pytest.raises(ValueError, match=r"\.csv, \.parquet or \.json"):
        res.to_file(tmp_path / "hits.xlsx")
    with pytest.raises(ValueError, match="which"):
        res.to_file(tmp_path / "x.csv", which="everything")


def test_summary_text(universe):
    res = scan(universe, backend="cpu", progress=False, min_price=1.0, top=2)
    text = res.summary(n=2)
    assert "newest bar 2023-10-28;" in text
    assert "Top long (Average_Signal ≥ 0.1): 2 of 3" in text
    assert "Top short" in text
    assert "too short 1" in text and "min_price 1" in text
    assert "backend cpu" in text
    assert res.long.index[0] in text
    assert "ScanResult(" in repr(res)


def test_engine_warnings_are_passed_on_once(universe):
    # la = 1 grows returns by exp(0.001 * 299) ≈ 1.35x at the last bar: the engine warns.
    with pytest.warns(gpu_trend.ATCWarning) as record:
        res = scan(universe, ATCConfig(la=1.0), backend="cpu", progress=False, chunk_symbols=2)
    atc = [w for w in record if issubclass(w.category, gpu_trend.ATCWarning)]
    assert len(atc) == 1
    assert len(res.warnings) == 1 and "la=1.0" in res.warnings[0]


def test_files_that_are_not_tables_are_listed(tmp_path, frames):
    close, _ = frames
    for sym in ("U0", "D0"):
        close[[sym]].rename(columns={sym: "close"}).to_csv(tmp_path / f"{sym}.csv")
    (tmp_path / "notes.txt").write_text("not prices")
    (tmp_path / "meta.json").write_text("{}")
    res = scan(tmp_path, backend="cpu", progress=False, min_signal=0.0)
    assert sorted(res.all.index) == ["D0", "U0"]
    assert res.ignored == ["meta.json", "notes.txt"]
    assert "Ignored 2 file(s) that are not tables: meta.json, notes.txt" in res.summary()
