"""gpu_trend.sweep: every configuration's slice is its own compute_atc call, bit for bit; the
shared stages are computed once (counted by the drivers); the calibration summary follows
the rules of gpu_trend.backtest on hand-computed cases; the CLI writes it."""

import warnings

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import outputs
from gpu_trend.config import FAMILIES, ATCConfig, member_lengths_for
from gpu_trend.memory import MemoryBudgetError
from gpu_trend.sweep import SweepResult, expand_grid, sweep

S, T = 4, 90


def universe(n_sym=S, n_bars=T, seed=7):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sym, n_bars)), axis=1))
    close[1, :12] = np.nan           # listed later
    close[2, 30:45] = close[2, 29]   # flat stretch: the tie rule decides
    close[3] *= 1e4
    return close


def reference(close, cfg, source=None, backend="cpu"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpu_trend.compute_atc(close, cfg, source=source, backend=backend)


def assert_matches_compute_atc(res, close, source=None, backend="cpu"):
    """Every configuration's ATCResult equals a separate compute_atc call's, bit for bit."""
    assert isinstance(res, SweepResult)
    for i, cfg in enumerate(res.configs):
        ref = reference(close, cfg, source, backend)
        got = res.result(i)
        for o in outputs.selected(False):
            np.testing.assert_array_equal(getattr(got, o.name), getattr(ref, o.name),
                                          err_msg=f"{o.name} of configuration {i}: {cfg}")
        np.testing.assert_array_equal(got.start_bar, ref.start_bar)
        np.testing.assert_array_equal(got.first_full_bar, ref.first_full_bar)
        assert got.symbols == ref.symbols and got.index.equals(ref.index)
        assert (got.positions is None) == (ref.positions is None)
        if ref.positions is not None:
            np.testing.assert_array_equal(got.positions, ref.positions)
        assert got.warnings == ref.warnings, cfg
        pd.testing.assert_frame_equal(res.latest().loc[i], ref.latest())


def test_events_are_derived_from_the_stored_direction():
    """A long event is the direction turning from −1 to +1 (short: the other way); from NaN
    (code 0) it is none, as the direction machine gives none on its first crossing."""
    from gpu_trend.sweep import events_of

    codes = np.array([[0, 1, -1, -1, 1, 1, 0, -1, 1], [-1, 1, 1, -1, 0, 0, 1, -1, -1]],
                     dtype=np.int8)
    np.testing.assert_array_equal(np.flatnonzero(events_of(codes[0], 1)), [4, 8])
    np.testing.assert_array_equal(np.flatnonzero(events_of(codes[0], -1)), [2])
    long2, short2 = events_of(codes, 1), events_of(codes, -1)
    assert long2.shape == codes.shape and long2.dtype == np.bool_
    np.testing.assert_array_equal(np.flatnonzero(long2[1]), [1])
    np.testing.assert_array_equal(np.flatnonzero(short2[1]), [3, 7])


def quiet_sweep(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sweep(*args, progress=False, **kwargs)


# ----------------------------------------------------------------------------------------
# every field of the grid, on the CPU
# ----------------------------------------------------------------------------------------
SMALL = {"lengths": [8]}
FIELD_GRIDS = {
    "la": {**SMALL, "la": [0.0, 0.5, 4.0]},  # 4.0 grows returns past the warning level
    "de": {**SMALL, "de": [0.0, 0.03, 5.0]},
    "cutout": {**SMALL, "cutout": [0, 5, 40]},
    "robustness": {**SMALL, "robustness": ["Narrow", "Medium", "Wide"]},
    "lengths": {"lengths": [8, (7, 8, 10, 12, 7, 9), 12]},
    "weights": {**SMALL, "weights": [1.0, (0.1, 1, 2, 0.5, 1, 3), 0.2]},
    "long_threshold": {**SMALL, "long_threshold": [0.0, 0.1, 0.5]},
    "short_threshold": {**SMALL, "short_threshold": [-0.5, -0.1, 0.0]},
    "tie_rtol": {**SMALL, "tie_rtol": [0.0, 1e-12, 1e-3]},
    "direction_source": {**SMALL, "direction_source": ["Average", "EMA", "KAMA"]},
    "strategy_view": {**SMALL, "strategy_view": [False, True]},
}


@pytest.mark.parametrize("field", list(FIELD_GRIDS))
def test_each_field_matches_compute_atc_on_cpu(field):
    close = universe()
    res = quiet_sweep(close, FIELD_GRIDS[field], backend="cpu")
    assert res.n_configs == len(FIELD_GRIDS[field][field])
    assert list(res.params.columns) == list(FIELD_GRIDS[field])
    assert_matches_compute_atc(res, close)


def test_nan_policy_grid_with_holes_and_own_calendars():
    close = universe()
    close[0, 50] = np.nan  # a hole: "ffill" fills it, "pine" keeps it, "skip" drops the bar
    close[2, 70:73] = np.nan
    frame = pd.DataFrame(close.T, index=pd.date_range("2021-01-01", periods=T, freq="D"),
                         columns=["A", "B", "C", "D"])
    res = quiet_sweep(frame, {**SMALL, "nan_policy": ["ffill", "pine", "skip"]}, backend="cpu")
    assert res.direction.shape == (3, S, T)  # "skip" has fewer bars, padded on the left
    assert_matches_compute_atc(res, frame)


def test_mixed_grid_with_a_source_and_a_config_list():
    close = universe()
    source = close * 1.003
    configs = [ATCConfig(lengths=(8, 9, 8, 9, 10, 11), la=1.0, cutout=3, robustness="Wide"),
               ATCConfig(lengths=(7, 7, 8, 9, 10, 11), la=1.0, cutout=3, weights=(2,) * 6),
               ATCConfig(lengths=(9,) * 6, de=1.0, tie_rtol=0.0, long_threshold=0.2,
                         direction_source="WMA", strategy_view=True)]
    res = quiet_sweep(close, configs, source=source, backend="cpu")
    assert list(res.params.columns) == ["la", "de", "cutout", "robustness", "lengths",
                                        "weights", "long_threshold", "tie_rtol",
                                        "direction_source", "strategy_view"]
    assert_matches_compute_atc(res, close, source)


# ----------------------------------------------------------------------------------------
# shared work, counted by the driver
# ----------------------------------------------------------------------------------------
def distinct_member_lengths(lengths, robustness):
    """Per family, the distinct member lengths of a lengths × robustness grid."""
    return [len({m for base in lengths for rob in robustness
                 for m in member_lengths_for(base, rob)}) for _ in FAMILIES]


def test_weights_and_thresholds_grid_computes_every_ma_and_equity_once():
    close = universe()
    weights = [1.0, 2.0, (1, 1, 1, 1, 1, 3)]
    res = quiet_sweep(close, {**SMALL, "weights": weights, "long_threshold": [0.1, 0.3],
                              "short_threshold": [-0.3, -0.1]}, backend="cpu")
    assert res.n_configs == 12
    assert res.work["moving_averages"] == 54 * S
    assert res.work["layer1_equities"] == 54 * S
    # one Layer-2 run per family and weight vector, one final run per configuration
    assert res.work["layer2"] == 6 * len(weights) * S
    assert res.work["final"] == 12 * S
    assert len(res.family_outputs[0]) == len(weights)
    assert_matches_compute_atc(res, close)


def test_outputs_are_stored_once_per_family_set_in_exact_codes():
    from gpu_trend.sweep_plan import SIGNAL_NAN, decode_signals
    from reference import round2

    close = universe()
    res = quiet_sweep(close, {**SMALL, "weights": [1.0, 2.0], "long_threshold": [0.1, 0.2, 0.3]},
                      backend="cpu")
    xs, avg = res.family_outputs
    assert xs.dtype == res.direction_code.dtype == np.int8 and avg.dtype == float
    assert xs.shape[0] == avg.shape[0] == 2  # six configurations, two sets
    np.testing.assert_array_equal(res.family_set, [0, 0, 0, 1, 1, 1])
    assert set(np.unique(res.direction_code)) == {-1, 0, 1}
    assert ((xs == SIGNAL_NAN) | (np.abs(xs) <= 100)).all() and (xs == SIGNAL_NAN).any()
    ref = [reference(close, cfg) for cfg in res.configs]
    for i in range(res.n_configs):
        np.testing.assert_array_equal(res.average_signal[i], ref[i].average_signal)
        np.testing.assert_array_equal(res.direction[i], ref[i].direction)
        np.testing.assert_array_equal(res.family_signals[i], ref[i].family_signals)
        # S_k, not stored, derived from the stored X_k
        np.testing.assert_array_equal(res.family_equities[i], ref[i].family_equities)
        np.testing.assert_array_equal(res.set_equities(res.family_set[i]),
                                      ref[i].family_equities)
    # every code decodes to the bits the reference's round2 gives on its way to that value
    codes = np.arange(-100, 101).astype(np.int8)
    want = np.array([round2((r + f) / 100) for r, f in zip(range(-100, 101), [0.3, -0.2] * 101)])
    assert np.array_equal(decode_signals(codes).view(np.int64), want.view(np.int64))
    assert np.isnan(decode_signals(np.array([SIGNAL_NAN], dtype=np.int8))).all()


def test_lengths_grid_computes_each_family_length_once():
    close = universe(n_bars=120)
    lengths, robustness = [8, 10, 14], ["Narrow", "Medium", "Wide"]
    res = quiet_sweep(close, {"lengths": lengths, "robustness": robustness}, backend="cpu")
    distinct = distinct_member_lengths(lengths, robustness)
    assert res.work["moving_averages"] == sum(distinct) * S
    assert res.work["layer1_equities"] == sum(distinct) * S  # one λ, decay and cutout
    assert res.work["moving_averages"] < 9 * 54 * S
    # one backward pass per nine distinct lengths of each window family (SMA, WMA, LSMA, KAMA)
    assert res.work["window_passes"] == 4 * -(-distinct[0] // 9) * S
    for i in (0, 4, 8):
        np.testing.assert_array_equal(res.result(i).direction,
                                      reference(close, res.configs[i]).direction)


def test_lambda_decay_cutout_grid_reuses_the_moving_averages():
    close = universe()
    res = quiet_sweep(close, {**SMALL, "la": [0.0, 1.0], "de": [0.03, 1.0], "cutout": [0, 4]},
                      backend="cpu")
    assert res.work["moving_averages"] == 54 * S  # q does not depend on λ, decay, cutout
    assert res.work["layer1_equities"] == 8 * 54 * S
    assert res.work["layer2"] == 8 * 6 * S
    assert_matches_compute_atc(res, close)


def test_a_small_memory_limit_splits_the_grid_and_changes_nothing():
    from cpu_fallback import sweep as cpu_sweep
    from gpu_trend.sweep_plan import plan_sizes

    # Enough bars for the stage rows to outweigh the planner's fixed allowances: the CPU keeps
    # each growth row whole (64 bytes a bar), its key rows one tile of bars at a time.
    n_bars = 6000
    close = universe(n_bars=n_bars)
    grid = {"lengths": [8, 12], "la": [0.0, 1.0], "weights": [1.0, 2.0]}
    whole = quiet_sweep(close, grid, backend="cpu")
    configs = expand_grid(grid)

    def scratch(cfgs):
        return cpu_sweep.scratch_footprint(n_bars, plan_sizes(cfgs)).fixed

    slack = 2**18  # the planner's allowances besides the stage rows (NumPy's buffers, ...)
    # room for the configurations of one base length, not for both: MAs of the member
    # lengths the two share are computed in each group
    split = quiet_sweep(close, grid, backend="cpu", memory_limit=scratch(configs[:4]) + slack)
    assert whole.work["moving_averages"] == 13 * 6 * S
    assert split.work["moving_averages"] == 2 * 54 * S
    assert split.work["layer1_equities"] == 2 * 54 * 2 * S  # (lengths, λ) each once
    assert split.work["final"] == whole.work["final"]
    # room for one (length, λ) and its two weights: only configurations differing in weights
    # stay together
    tiny = quiet_sweep(close, grid, backend="cpu", memory_limit=scratch(configs[:2]) + slack)
    assert tiny.work["moving_averages"] == 4 * 54 * S
    assert tiny.work["layer1_equities"] == 4 * 54 * S
    for res in (split, tiny):
        for name in ("average_signal", "direction", "long_events", "short_events",
                     "family_signals", "family_equities"):
            np.testing.assert_array_equal(getattr(res, name), getattr(whole, name))
    with pytest.raises(MemoryBudgetError):
        sweep(close, grid, backend="cpu", memory_limit=10_000, progress=False)


# ----------------------------------------------------------------------------------------
# the grid
# ----------------------------------------------------------------------------------------
def test_grid_expansion_and_errors():
    configs = expand_grid({"lengths": [10, (7, 8, 9, 10, 11, 12)], "la": [0.0, 0.1]})
    assert [c.lengths for c in configs] == [(10,) * 6, (10,) * 6, (7, 8, 9, 10, 11, 12),
                                            (7, 8, 9, 10, 11, 12)]
    assert [c.la for c in configs] == [0.0, 0.1, 0.0, 0.1]
    with pytest.raises(TypeError, match="unknown field 'lenght'"):
        expand_grid({"lenght": [10]})
    with pytest.raises(TypeError, match=r"grid\['la'\] must be a list"):
        expand_grid({"la": 0.1})
    with pytest.raises(ValueError, match=r"grid\['la'\] has no values"):
        expand_grid({"la": []})
    with pytest.raises(ValueError, match="grid point .*'long_threshold': -0.5.*must be >="):
        expand_grid({"long_threshold": [0.1, -0.5]})
    with pytest.raises(ValueError, match="no configurations"):
        expand_grid([])


# ----------------------------------------------------------------------------------------
# the calibration summary
# ----------------------------------------------------------------------------------------
def test_strategy_metrics_on_a_hand_computed_series():
    from gpu_trend.backtest import bar_returns, strategy_metrics

    close = np.array([[np.nan, 100.0, 110.0, 99.0, 99.0, 108.9, 98.01]])
    direction = np.array([[np.nan, np.nan, 1.0, 1.0, -1.0, -1.0, 1.0]])
    # returns of bars 2..6: +10 %, −10 %, 0, +10 %, −10 %; positions held over them (the
    # direction of the bar before): flat, long, long, short, short
    m = strategy_metrics(bar_returns(close), direction, np.array([1]), np.array([2.0]))
    equity = [1.0, 0.9, 0.9, 0.81, 0.891]
    assert m["total_return"][0] == pytest.approx(equity[-1] - 1, abs=1e-15)
    assert m["max_drawdown"][0] == pytest.approx(0.19, abs=1e-15)  # 1 → 0.81
    assert m["trades"][0] == 2  # the entry long, the reversal to short (the 1 is unacted)
    assert m["time_in_market"][0] == pytest.approx(4 / 5)
    assert m["annualised_return"][0] == pytest.approx(0.891 ** 0.5 - 1, abs=1e-15)
    # a 1 % cost: the entry pays 1 %, the reversal 2 %
    c = strategy_metrics(bar_returns(close), direction, np.array([1]), np.array([np.nan]),
                         cost=0.01)
    assert c["total_return"][0] == pytest.approx(0.891 * 0.99 * 0.98 - 1, abs=1e-15)
    assert c["max_drawdown"][0] == pytest.approx(1 - 0.81 * 0.99 * 0.98, abs=1e-15)
    assert np.isnan(c["annualised_return"][0])


def loop_backtest(close, direction, cost):
    """The rules of gpu_trend.backtest, one bar at a time, for one symbol."""
    equity, peak, worst, trades, held, bars, pos = 1.0, 1.0, 0.0, 0, 0, 0, 0.0
    listed = np.flatnonzero(~np.isnan(close))[0]
    for t in range(listed + 1, len(close)):
        new = 0.0 if np.isnan(direction[t - 1]) else direction[t - 1]
        if new != pos:
            trades += 1
            equity *= 1 - cost * abs(new - pos)
        pos = new
        equity *= 1 + pos * (close[t] / close[t - 1] - 1)
        peak = max(peak, equity)
        worst = max(worst, 1 - equity / peak)
        bars += 1
        held += pos != 0
    return equity - 1, worst, trades, held / bars


def test_summary_follows_the_rules_bar_by_bar():
    close = universe()
    frame = pd.DataFrame(close.T, index=pd.date_range("2020-01-01", periods=T, freq="7D"),
                         columns=list("ABCD"))
    res = quiet_sweep(frame, {**SMALL, "long_threshold": [0.0, 0.3]}, backend="cpu")
    per = res.summary(0.002)
    assert per.index.names == ["config", "symbol"] and len(per) == 2 * S
    for i in range(2):
        direction = res.result(i).direction
        for s, name in enumerate("ABCD"):
            total, drawdown, trades, in_market = loop_backtest(close[s], direction[s], 0.002)
            row = per.loc[(i, name)]
            assert row.total_return == pytest.approx(total, rel=1e-12, abs=1e-14)
            assert row.max_drawdown == pytest.approx(drawdown, rel=1e-12, abs=1e-14)
            assert row.trades == trades and row.time_in_market == pytest.approx(in_market)
            years = (frame.index[-1] - frame[name].first_valid_index()) / pd.Timedelta("365.25D")
            assert row.annualised_return == pytest.approx((1 + total) ** (1 / years) - 1)
    agg = res.summary(0.002, by="config")
    assert list(agg.index) == [0, 1] and agg.loc[1, "long_threshold"] == 0.3
    assert agg.loc[0, "total_return"] == pytest.approx(per.loc[0, "total_return"].mean())
    assert agg.loc[0, "worst_drawdown"] == per.loc[0, "max_drawdown"].max()
    assert agg.loc[0, "symbols"] == S
    with pytest.raises(ValueError, match="cost"):
        res.summary(-0.1)


# ----------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------
def test_cli_sweep_writes_the_summary(tmp_path, capsys):
    from gpu_trend.cli import main

    close = universe()
    frame = pd.DataFrame(close.T, index=pd.date_range("2022-01-03", periods=T, freq="D"),
                         columns=list("ABCD"))
    frame.index.name = "time"
    data = tmp_path / "wide.csv"
    frame.to_csv(data)
    out, per = tmp_path / "summary.csv", tmp_path / "per_symbol.parquet"
    status = main(["sweep", str(data), "--lengths", "8,7/7/8/9/10/11", "--robustness",
                   "Narrow,Medium", "--la", "0,0.02", "--cost", "0.001", "--backend", "cpu",
                   "--out", str(out), "--per-symbol", str(per), "--no-progress"])
    assert status == 0
    table = pd.read_csv(out, index_col="config")
    assert len(table) == 8 and table["lengths"].tolist()[:4] == ["8"] * 4
    assert table["lengths"].iloc[-1] == "7/7/8/9/10/11"
    res = quiet_sweep(frame, {"lengths": [8, (7, 7, 8, 9, 10, 11)],
                              "robustness": ["Narrow", "Medium"], "la": [0, 0.02]},
                      backend="cpu")
    expected = res.summary(0.001, by="config")
    np.testing.assert_allclose(table["total_return"], expected["total_return"], rtol=1e-14)
    assert len(pd.read_parquet(per)) == 8 * S
    assert "best 8 by total_return" in capsys.readouterr().out
    assert main(["sweep", str(data), "--lengths", "8,x", "--no-progress"]) == 1
    assert "--lengths: 'x' is not an integer" in capsys.readouterr().err
