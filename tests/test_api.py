"""compute_atc's contract: input types, bad input, NaN policies, dispatch, results."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import ATCConfig, ATCInputError, ATCWarning, BackendUnavailableError
from gpu_trend.backend import gpu_available


def walk(n_sym=3, n=200, seed=0, scale=100.0):
    rng = np.random.default_rng(seed)
    return scale * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sym, n)), axis=1))


CPU = {"backend": "cpu"}


# --- input forms ------------------------------------------------------------

def test_wide_frame_series_1d_and_2d_agree():
    close = walk()
    idx = pd.date_range("2024-01-01", periods=close.shape[1], freq="D", name="time")
    frame = pd.DataFrame(close.T, index=idx, columns=["AAA", "BBB", "CCC"])
    from_frame = gpu_trend.compute_atc(frame, **CPU)
    from_array = gpu_trend.compute_atc(close, **CPU)
    from_row = gpu_trend.compute_atc(close[1], **CPU)
    from_series = gpu_trend.compute_atc(frame["BBB"], **CPU)
    assert from_frame.symbols == ["AAA", "BBB", "CCC"] and from_frame.index.equals(idx)
    assert from_array.symbols == ["0", "1", "2"] and from_series.symbols == ["BBB"]
    for res in (from_frame, from_array):
        assert res.average_signal.shape == (3, 200) and res.family_signals.shape == (3, 6, 200)
        assert res.long_events.dtype == bool and res.member_ma is None
    np.testing.assert_array_equal(from_frame.average_signal, from_array.average_signal)
    np.testing.assert_array_equal(from_row.average_signal[0], from_array.average_signal[1])
    np.testing.assert_array_equal(from_series.family_signals[0], from_array.family_signals[1])


def test_integer_prices_and_members_shape():
    res = gpu_trend.compute_atc(np.arange(1, 101), members=True, **CPU)
    assert res.member_ma.shape == res.member_signal.shape == (1, 54, 100)
    assert res.member_names()[9] == "HMA_28"


def test_short_history_is_defined_and_signals_stay_zero():
    """Fewer bars than the shortest member: every MA is NaN except KAMA, signals 0."""
    close = walk(1, 15)
    res = gpu_trend.compute_atc(close, members=True, **CPU)
    assert np.isnan(res.member_ma[0, :36]).all()        # EMA, SMA, WMA, DEMA: windows not full
    assert not np.isnan(res.member_ma[0, 45:]).any()    # KAMA is valid from bar 0
    assert (res.member_signal[0, :36] == 0).all()
    assert res.first_full_bar[0] == -1
    assert not np.isnan(res.average_signal).any()


def test_cutout_beyond_history_gives_all_nan():
    res = gpu_trend.compute_atc(walk(2, 50), ATCConfig(cutout=50), **CPU)
    assert np.isnan(res.average_signal).all() and np.isnan(res.family_equities).all()
    assert np.isnan(res.direction).all() and not res.long_events.any()


def test_all_nan_symbol_is_all_nan():
    close = walk(2, 60)
    close[0] = np.nan
    res = gpu_trend.compute_atc(close, **CPU)
    assert res.start_bar[0] == 60 and np.isnan(res.average_signal[0]).all()
    assert not np.isnan(res.average_signal[1]).any()


# --- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("value, shown", [(0.0, "0.0"), (-3.0, "-3.0"), (np.inf, "inf"),
                                          (-np.inf, "-inf")])
def test_bad_price_names_symbol_and_bar(value, shown):
    idx = pd.date_range("2024-01-01", periods=40, freq="D")
    frame = pd.DataFrame(walk(2, 40).T, index=idx, columns=["OK", "BAD"])
    frame.iloc[17, 1] = value
    with pytest.raises(ATCInputError, match=rf"symbol 'BAD': close must be a finite price > 0, "
                                            rf"got {shown} at bar 17 \(2024-01-18"):
        gpu_trend.compute_atc(frame, **CPU)
    try:
        gpu_trend.compute_atc(frame, **CPU)
    except ATCInputError as err:
        assert (err.symbol, err.bar) == ("BAD", 17)


def test_interior_nan_raises_by_default_naming_symbol_and_bar():
    close = walk(3, 80)
    close[2, :10] = np.nan   # a later listing is fine ...
    close[2, 33] = np.nan    # ... a hole is not
    with pytest.raises(ATCInputError, match=r"symbol '2': close is NaN at bar 33\b.*first valid "
                                            r"close at bar 10.*nan_policy='skip'.*'ffill'"):
        gpu_trend.compute_atc(close, **CPU)


def test_ffill_equals_manually_filled_prices():
    close = walk(2, 120)
    holed = close.copy()
    holed[0, [40, 41, 90]] = np.nan
    filled = close.copy()
    filled[0, 40] = filled[0, 41] = close[0, 39]
    filled[0, 90] = close[0, 89]
    got = gpu_trend.compute_atc(holed, ATCConfig(nan_policy="ffill"), members=True, **CPU)
    exp = gpu_trend.compute_atc(filled, members=True, **CPU)
    for key in ("average_signal", "family_signals", "member_ma", "member_equity"):
        np.testing.assert_array_equal(getattr(got, key), getattr(exp, key), err_msg=key)


def test_source_nan_raises_and_source_inf_is_rejected():
    close = walk(1, 60)
    source = close.copy()
    source[0, 20] = np.nan
    with pytest.raises(ATCInputError, match=r"source is NaN at bar 20"):
        gpu_trend.compute_atc(close, source=source, **CPU)
    source[0, 20] = np.inf
    with pytest.raises(ATCInputError, match=r"source must be finite, got inf at bar 20"):
        gpu_trend.compute_atc(close, source=source, **CPU)
    with pytest.raises(ATCInputError, match=r"source has shape"):
        gpu_trend.compute_atc(close, source=source[:, :10], **CPU)


def test_bad_shapes_and_types():
    with pytest.raises(ATCInputError, match=r"1-D .* or 2-D"):
        gpu_trend.compute_atc(np.ones((2, 2, 2)), **CPU)
    with pytest.raises(ATCInputError, match=r"numeric"):
        gpu_trend.compute_atc(np.array(["a", "b"]), **CPU)
    with pytest.raises(ATCInputError, match=r"symbols has 1 names for 3 rows"):
        gpu_trend.compute_atc(walk(), symbols=["x"], **CPU)
    with pytest.raises(TypeError, match=r"config must be an ATCConfig"):
        gpu_trend.compute_atc(walk(), config=42, **CPU)


def test_large_lambda_warns_but_computes():
    with pytest.warns(ATCWarning, match=r"la=1.0 grows returns by .*x at the last bar"):
        res = gpu_trend.compute_atc(walk(1, 300), ATCConfig(la=1.0), **CPU)
    assert res.warnings and not np.isnan(res.average_signal[0, 1:]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpu_trend.compute_atc(walk(1, 300), **CPU)  # default λ: no warning


# --- tie rule -----------------------------------------------------------------

def test_tie_rule_absorbs_summation_noise():
    """LSMA of length 2 is the line through two points, evaluated at the current bar: the
    close itself, in exact arithmetic. So c − m is pure rounding noise on every bar; with
    the spec's tie rule that member never crosses, with raw comparisons noise flips it."""
    cfg = ATCConfig(lengths=(28, 28, 28, 28, 9, 28), robustness="Wide")  # LSMA 9 − 7 = 2
    lsma2 = 4 * 9 + 8
    assert cfg.member_lengths()[4, 8] == 2
    close = walk(4, 500, seed=2, scale=10.197534)
    tied = gpu_trend.compute_atc(close, cfg, members=True, **CPU)
    assert (tied.member_signal[:, lsma2] == 0).all()
    raw = gpu_trend.compute_atc(close, ATCConfig(**{**cfg.__dict__, "tie_rtol": 0.0}),
                                members=True, **CPU)
    assert (raw.member_signal[:, lsma2] != 0).any()


# --- dispatch -------------------------------------------------------------------

def test_forced_gpu_without_device_says_why(monkeypatch):
    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailableError, match=r"backend 'gpu' was requested but"):
        gpu_trend.compute_atc(walk(), backend="gpu")
    monkeypatch.setenv("GPU_TREND_BACKEND", "gpu")
    with pytest.raises(BackendUnavailableError):
        gpu_trend.compute_atc(walk())
    with gpu_trend.use_backend("cpu"):
        assert gpu_trend.compute_atc(walk()).backend == "cpu"  # context beats the env var


def test_backend_names_are_checked(monkeypatch):
    with pytest.raises(ValueError, match=r"backend must be one of"):
        gpu_trend.resolve_backend("tpu")
    monkeypatch.setenv("GPU_TREND_BACKEND", "fast")
    with pytest.raises(ValueError, match=r"environment variable GPU_TREND_BACKEND"):
        gpu_trend.resolve_backend()
    monkeypatch.setenv("GPU_TREND_BACKEND", "cpu")
    assert gpu_trend.resolve_backend() == "cpu" and gpu_trend.resolve_backend("auto") == "cpu"


def test_import_never_touches_cuda():
    code = ("import sys, gpu_trend; "
            "bad = [m for m in ('cupy', 'numba.cuda', 'cudf') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- results ---------------------------------------------------------------------

def test_latest_and_to_pandas_agree_with_arrays():
    close = walk(3, 400, seed=11)
    idx = pd.date_range("2024-01-01", periods=400, freq="h", name="time")
    res = gpu_trend.compute_atc(pd.DataFrame(close.T, index=idx, columns=list("XYZ")), **CPU)
    latest = res.latest()
    assert list(latest.index) == ["X", "Y", "Z"] and latest.index.name == "symbol"
    assert list(latest.columns) == ["time", "average_signal", "direction", "EMA", "HMA", "WMA",
                                    "DEMA", "LSMA", "KAMA", "bars_since_long", "bars_since_short"]
    for i, sym in enumerate("XYZ"):
        row = latest.loc[sym]
        assert row["time"] == idx[-1] and row["average_signal"] == res.average_signal[i, -1]
        assert row["KAMA"] == res.family_signals[i, 5, -1]
        hits = np.flatnonzero(res.long_events[i])
        expected = 399 - hits[-1] if len(hits) else np.nan
        np.testing.assert_equal(row["bars_since_long"], expected)
    table = res.to_pandas()
    assert table.shape[0] == 3 * 400 and table.index.names == ["symbol", "time"]
    np.testing.assert_array_equal(table.loc["Y", "WMA_Signal"].to_numpy(), res.family_signals[1, 2])


def test_zero_bars_gives_empty_results():
    res = gpu_trend.compute_atc(np.empty((2, 0)), **CPU)
    assert res.average_signal.shape == (2, 0) and res.family_signals.shape == (2, 6, 0)
    assert res.latest()["average_signal"].isna().all()


def test_read_only_input_reuses_the_compiled_kernel():
    """pandas copy-on-write hands out read-only arrays; they must not cost a recompile."""
    from cpu_fallback.backend import run_cpu

    close = walk(2, 100)
    gpu_trend.compute_atc(close, **CPU)
    before = len(run_cpu.signatures)
    frozen = close.copy()
    frozen.setflags(write=False)
    res = gpu_trend.compute_atc(frozen, **CPU)
    assert len(run_cpu.signatures) == before
    np.testing.assert_array_equal(res.average_signal, gpu_trend.compute_atc(close, **CPU).average_signal)


@pytest.mark.parametrize("lengths", [(28,) * 6, (10, 10, 10, 10, 10, 100), (10, 12, 40, 9, 10, 7),
                                     (10, 10, 10, 30, 10, 10)])
def test_first_full_bar_is_where_all_54_mas_are_valid(lengths):
    """Counted from the member MAs themselves: KAMA is valid from the listing on."""
    close = walk(2, 260)
    close[1, :17] = np.nan  # listed later
    res = gpu_trend.compute_atc(close, ATCConfig(lengths=lengths), members=True, **CPU)
    for row in range(2):
        valid = np.isfinite(res.member_ma[row]).all(axis=0)
        assert res.first_full_bar[row] == int(np.argmax(valid))
