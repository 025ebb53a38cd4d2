"""Live updates: a history computed in pieces, with the state saved and loaded between them,
equals one computation over the whole history, bit for bit (outputs and state)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpu_trend
from golden import SET_NAMES, load_golden, params_to_kwargs
from gpu_trend import ATCConfig, ATCInputError, ATCState, update_atc
from test_properties import configs, paths

KEYS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
        "short_events", "member_ma", "member_signal", "member_equity")
STATE_KEYS = ("bars", "last", "since", "close_window", "member", "layer2", "final")


def own(res, row, key):
    """One symbol's values on its own bars (the packing's padding left out)."""
    arr = getattr(res, key)[row]
    return arr[..., arr.shape[-1] - len(res.times(row)):]


def assert_pieces_equal_whole(whole, pieces):
    """Every symbol's outputs over the pieces, concatenated, equal the whole computation's
    over its bars from its listing on; and the last piece's state equals the whole's."""
    last = pieces[-1].state
    for sym in whole.symbols:
        i = whole.symbols.index(sym)
        n = int(whole.state.bars[i])
        for key in KEYS:
            got = np.concatenate([own(p, p.symbols.index(sym), key) for p in pieces
                                  if sym in p.symbols], axis=-1)
            want = own(whole, i, key)
            np.testing.assert_array_equal(got[..., got.shape[-1] - n:],
                                          want[..., want.shape[-1] - n:],
                                          err_msg=f"{sym} {key}")
    order = [last.symbols.index(s) for s in whole.symbols]
    for key in STATE_KEYS:
        np.testing.assert_array_equal(np.asarray(getattr(last, key))[order],
                                      np.asarray(getattr(whole.state, key)), err_msg=key)
    assert [last.last_time[k] for k in order] == whole.state.last_time
    # latest() of the last piece: events before its bars count on.
    table = pieces[-1].latest()
    want = whole.latest().loc[table.index]
    pd.testing.assert_frame_equal(table, want)


def run_in_pieces(close, cfg, cuts, saves=(), tmp_path=None, **kw):
    """compute_atc on close[:, :cuts[0]], then update_atc on each later piece."""
    first = gpu_trend.compute_atc(close[:, :cuts[0]], cfg, members=True, return_state=True,
                                  **kw)
    pieces, state = [first], first.state
    for k, (a, b) in enumerate(zip(cuts, list(cuts[1:]) + [close.shape[1]])):
        if k in saves:
            path = tmp_path / f"state{k}.npz"
            state.save(path)
            state = ATCState.load(path, config=cfg)
        res = update_atc(state, close[:, a:b], members=True, **kw)
        pieces.append(res)
        state = res.state
    return pieces


@st.composite
def splits(draw, n):
    """Cut points of a history of n bars: 1 bar, a few bars, or the rest at a time."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), min_size=1, max_size=4))))
    return [c for c in cuts if 0 < c < n] or [max(n - 1, 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(close=paths(max_bars=90), data=st.data(), policy=st.sampled_from(["raise", "pine",
                                                                         "ffill"]))
def test_pieces_equal_the_whole_on_random_paths(close, data, policy, tmp_path_factory):
    if len(close) < 3:
        return
    close = close.copy()
    cfg = ATCConfig(**{**data.draw(configs(len(close))).__dict__, "nan_policy": policy})
    cuts = data.draw(splits(len(close)))
    if policy != "raise":
        # Holes right after a split; not at the end of a piece, where an empty cell on a grid
        # reads as "no bar yet" (update_atc's documented rule).
        finite = np.flatnonzero(~np.isnan(close))
        inside = [int(t) for t in finite[1:-1] if t + 1 not in cuts]
        for h in data.draw(st.lists(st.sampled_from(inside or [-1]), max_size=3)):
            if h >= 0:
                close[h] = np.nan
    saves = data.draw(st.sets(st.integers(0, len(cuts) - 1)))
    whole = gpu_trend.compute_atc(close[None, :], cfg, members=True, return_state=True)
    pieces = run_in_pieces(close[None, :], cfg, cuts, saves, tmp_path_factory.mktemp("s"))
    assert_pieces_equal_whole(whole, pieces)


@pytest.mark.parametrize("set_name", SET_NAMES)
def test_pieces_equal_the_whole_for_every_golden_parameter_set(set_name, tmp_path):
    params, _ = load_golden(set_name)
    cfg = ATCConfig(**params_to_kwargs(params))
    rng = np.random.default_rng(3)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, (5, 400)), axis=1))
    close[1, :130] = np.nan  # listed inside the first update
    close[3, :20] = np.nan
    close[2, 200:215] = close[2, 199]  # a flat stretch across a split
    # A split before the cutout, inside the warm-up, one bar, a few bars, the rest.
    cuts = sorted({5, cfg.cutout // 2 + 1, 40, 41, 45, 150, 399} - {0})
    whole = gpu_trend.compute_atc(close, cfg, members=True, return_state=True)
    assert_pieces_equal_whole(whole, run_in_pieces(close, cfg, cuts, {1, 4}, tmp_path))


@pytest.mark.parametrize("members", [False, True])
def test_the_cpu_few_bar_path_equals_the_cores(monkeypatch, members):
    """Resumed symbols with a few new bars are stepped a bar at a time (every member per
    call); with the path switched off the cores run them: the same bits, outputs and state."""
    from cpu_fallback import backend

    rng = np.random.default_rng(5)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (6, 130)), axis=1))
    close[2, :115] = np.nan  # listed inside the update: a fresh symbol next to resumed ones
    close[4, 118:121] = np.nan  # holes inside the update ("pine")
    cfg = ATCConfig(nan_policy="pine", cutout=20)
    state = gpu_trend.compute_atc(close[:, :110], cfg, members=members,
                                  return_state=True).state
    for n_new in (1, 3, backend.STEP_BARS, backend.STEP_BARS + 5):
        bars = close[:, 110:110 + n_new]
        stepped = update_atc(state, bars, members=members, backend="cpu")
        monkeypatch.setattr(backend, "STEP_BARS", -1)
        cored = update_atc(state, bars, members=members, backend="cpu")
        monkeypatch.undo()
        for key in KEYS[:6] + (KEYS[6:] if members else ()):
            np.testing.assert_array_equal(getattr(stepped, key), getattr(cored, key),
                                          err_msg=f"{n_new} bars, {key}")
        for key in STATE_KEYS:
            np.testing.assert_array_equal(np.asarray(getattr(stepped.state, key)),
                                          np.asarray(getattr(cored.state, key)),
                                          err_msg=f"{n_new} bars, state {key}")


def test_an_updated_state_knows_its_last_times_as_one_built_from_scratch():
    """The new state's last times come as an Index made without a loop over the symbols;
    it must be the Index its last_time list gives (stale-bar checks compare with it)."""
    table = long_table()
    cut = pd.Timestamp("2023-09-15")  # L is listed after the cut: a fresh symbol
    state = gpu_trend.compute_atc(gpu_trend.read_universe(table[table.time <= cut]),
                                  return_state=True).state
    for part in (table[(table.time > cut) & (table.time <= cut + pd.Timedelta(days=3))],
                 table[table.time > cut + pd.Timedelta(days=3)]):
        state = update_atc(state, part).state
        assert "last_times" in state.__dict__  # made by the update, not rebuilt
        rebuilt = pd.Index([np.nan if t is None else t for t in state.last_time])
        pd.testing.assert_index_equal(state.last_times, rebuilt)
        assert state.last_times.dtype.kind == "M"


def long_table():
    """Three calendars: daily, weekly, and a symbol listed later."""
    rng = np.random.default_rng(9)
    frames = []
    for sym, times in (("D", pd.bdate_range("2023-01-02", periods=300)),
                       ("W", pd.date_range("2021-01-01", periods=150, freq="W-FRI")),
                       ("L", pd.bdate_range("2023-09-01", periods=120))):
        frames.append(pd.DataFrame({"symbol": sym, "time": times, "close":
                                    50 * np.exp(np.cumsum(rng.normal(0, 0.02, len(times))))}))
    return pd.concat(frames, ignore_index=True)


def test_own_calendars_subsets_and_new_symbols(tmp_path):
    table = long_table()
    whole = gpu_trend.compute_atc(gpu_trend.read_universe(table), members=True,
                                  return_state=True)
    cut1, cut2 = pd.Timestamp("2023-06-30"), pd.Timestamp("2023-11-15")
    first = gpu_trend.compute_atc(gpu_trend.read_universe(table[table.time <= cut1]),
                                  members=True, return_state=True)
    assert first.state.symbols == ["D", "W"]  # L is not listed yet
    # Update 1: only the daily symbol (W keeps its state), as a wide frame.
    mid = table[(table.time > cut1) & (table.time <= cut2)]
    wide = mid[mid.symbol == "D"].pivot(index="time", columns="symbol", values="close")
    up1 = update_atc(first.state, wide, members=True)
    assert up1.symbols == ["D"]
    i = up1.state.symbols.index("W")
    np.testing.assert_array_equal(up1.state.member[i], first.state.member[i])
    up1.state.save(tmp_path / "s.npz")
    # Update 2: everything after, as a long frame: W catches up, L arrives and starts fresh.
    rest = pd.concat([mid[mid.symbol != "D"], table[table.time > cut2]])
    up2 = update_atc(ATCState.load(tmp_path / "s.npz"), rest, members=True)
    assert set(up2.symbols) == {"D", "W", "L"} and up2.state.symbols == ["D", "W", "L"]
    assert_pieces_equal_whole(whole, [first, up1, up2])
    latest = up2.latest()
    assert latest.loc["W", "time"] == table[table.symbol == "W"].time.max()


def test_array_update_numbers_its_bars_on_and_result_holds_only_new_bars():
    rng = np.random.default_rng(4)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, (3, 120)), axis=1))
    head = gpu_trend.compute_atc(close[:, :100], return_state=True)
    res = update_atc(head.state, close[:, 100:101])
    assert res.average_signal.shape == (3, 1)
    assert list(res.times(0)) == [100] and res.state.last_time == [100, 100, 100]
    np.testing.assert_array_equal(res.average_signal[:, 0],
                                  gpu_trend.compute_atc(close[:, :101]).average_signal[:, -1])


def test_stale_or_repeated_bars_are_refused():
    table = long_table()
    head = gpu_trend.compute_atc(gpu_trend.read_universe(table), return_state=True)
    again = table[table.symbol == "D"].tail(1)
    with pytest.raises(ATCInputError, match=r"symbol 'D': new bar at 2024-02-23 00:00:00 is not "
                                            r"after its last bar 2024-02-23 00:00:00"):
        update_atc(head.state, again)
    with pytest.raises(ATCInputError, match="one row per symbol of the state"):
        update_atc(head.state, np.ones((2, 1)))
    with pytest.raises(ATCInputError, match="bars have times"):
        update_atc(head.state, np.ones((3, 1)))


def test_bad_prices_and_holes_in_an_update_are_named():
    """An update checks its new bars (its state's window was checked before): a bad price,
    and under nan_policy="raise" a hole right after a symbol's last bar, which is inside its
    history, are errors naming the symbol and the bar."""
    rng = np.random.default_rng(8)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, (3, 90)), axis=1))
    head = gpu_trend.compute_atc(close[:, :80], return_state=True)
    bad = close[:, 80:84].copy()
    bad[1, 2] = -1.0
    with pytest.raises(ATCInputError, match=r"symbol '1': close must be a finite price > 0, "
                                            r"got -1.0 at bar 2 \(82\)"):
        update_atc(head.state, bad)
    hole = close[:, 80:84].copy()
    hole[2, 0] = np.nan
    with pytest.raises(ATCInputError, match=r"symbol '2': close is NaN at bar 0 \(80\), inside "
                                            r"its history \(first valid close at an earlier bar "
                                            r"\(in the state\)\)"):
        update_atc(head.state, hole)
    # Under "pine" the same hole is the script's NaN bar, and the update equals one call.
    cfg = ATCConfig(nan_policy="pine")
    whole = close.copy()
    whole[2, 80] = np.nan
    head = gpu_trend.compute_atc(whole[:, :80], cfg, return_state=True)
    np.testing.assert_array_equal(update_atc(head.state, whole[:, 80:]).average_signal,
                                  gpu_trend.compute_atc(whole, cfg).average_signal[:, 80:])


def test_config_and_version_mismatches_are_named(tmp_path):
    head = gpu_trend.compute_atc(np.full((2, 80), 5.0) + np.arange(80), return_state=True)
    path = head.state.save(tmp_path / "s.npz")
    with pytest.raises(ValueError, match=r"another config: la=0\.02 in the state, 0\.05 here"):
        ATCState.load(path, config=ATCConfig(la=0.05))
    with pytest.raises(ValueError, match="another config: cutout=0 in the state, 3 here"):
        update_atc(head.state, np.ones((2, 1)) * 100, config=ATCConfig(cutout=3))
    with np.load(path) as z:
        fields = dict(z)
    fields["format"] = np.int64(99)
    np.savez(tmp_path / "future.npz", **fields)
    with pytest.raises(ValueError, match="state layout version 99, this gpu-trend reads "
                                         "version 1"):
        ATCState.load(tmp_path / "future.npz")
    # The file holds no pickles: it loads with allow_pickle=False, whatever the times.
    assert ATCState.load(path).last_time == [79, 79]


def test_a_source_state_needs_a_source_update():
    rng = np.random.default_rng(2)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, (2, 90)), axis=1))
    source = close * 1.01
    whole = gpu_trend.compute_atc(close, source=source, members=True, return_state=True)
    head = gpu_trend.compute_atc(close[:, :60], source=source[:, :60], members=True,
                                 return_state=True)
    with pytest.raises(ATCInputError, match="with a separate source"):
        update_atc(head.state, close[:, 60:])
    tail = update_atc(head.state, close[:, 60:], source=source[:, 60:], members=True)
    assert_pieces_equal_whole(whole, [head, tail])


@pytest.mark.cudasim
def test_simulated_gpu_updates_equal_the_cpu(monkeypatch):
    from gpu_trend import backend

    monkeypatch.setattr(backend, "gpu_status", lambda: (True, "Numba's CUDA simulator"))
    rng = np.random.default_rng(6)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (3, 30)), axis=1))
    close[2, :8] = np.nan
    cfg = ATCConfig(lengths=(5, 6, 7, 5, 6, 7), robustness="Narrow", cutout=2)
    whole = gpu_trend.compute_atc(close, cfg, members=True, return_state=True, backend="cpu")
    pieces = run_in_pieces(close, cfg, [12, 13, 20], backend="gpu")
    assert all(p.backend == "gpu" for p in pieces)
    assert_pieces_equal_whole(whole, pieces)


@pytest.mark.parametrize("policy", ["pine", "ffill", "skip"])
def test_time_slices_equal_one_call(policy):
    rng = np.random.default_rng(8)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (4, 260)), axis=1))
    close[0, [49, 50, 99, 180]] = np.nan   # holes at and after slice ends
    close[1, :70] = np.nan                 # listed in the second slice
    close[2, 200:] = np.nan                # data ends in the fourth slice
    cfg = ATCConfig(nan_policy=policy, cutout=3)
    whole = gpu_trend.compute_atc(close, cfg, members=True, return_state=True)
    pieces = list(gpu_trend.iter_time_slices(close, cfg, bars=50, members=True))
    assert len(pieces) == 6
    assert_pieces_equal_whole(whole, pieces)


def test_time_slices_of_a_universe_on_own_calendars():
    uni = gpu_trend.read_universe(long_table())
    whole = gpu_trend.compute_atc(uni, members=True, return_state=True)
    assert_pieces_equal_whole(whole, list(gpu_trend.iter_time_slices(uni, bars=77,
                                                                     members=True)))


def test_first_full_bar_of_an_update_counts_in_its_own_bars():
    rng = np.random.default_rng(5)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, (2, 150)), axis=1))
    whole = gpu_trend.compute_atc(close)
    assert list(whole.first_full_bar) == [66, 66]
    head = gpu_trend.compute_atc(close[:, :50], return_state=True)
    assert list(head.first_full_bar) == [-1, -1]
    tail = update_atc(head.state, close[:, 50:])
    assert list(tail.first_full_bar) == [16, 16] and list(tail.start_bar) == [0, 0]
    later = update_atc(tail.state, close[:, :0] + 1.0)  # no bars: nothing changes
    assert later.n_symbols == 0 and later.state.bars.tolist() == [150, 150]


def test_an_empty_state_computes_every_symbol_fresh():
    table = long_table()
    uni = gpu_trend.read_universe(table)
    whole = gpu_trend.compute_atc(uni, members=True, return_state=True)
    fresh = update_atc(ATCState.empty(ATCConfig()), uni, members=True)
    assert fresh.state.symbols == whole.state.symbols
    assert_pieces_equal_whole(whole, [fresh])


# --- warm scans ---------------------------------------------------------------------------------

def test_warm_scans_equal_cold_scans(tmp_path):
    table = long_table()
    path = tmp_path / "scan_state.npz"
    cut = pd.Timestamp("2024-01-31")
    old, new = table[table.time <= cut], table[table.time > cut]
    opts = dict(backend="cpu", progress=False, min_signal=0.0)

    first = gpu_trend.scan(gpu_trend.read_universe(old), state=path, **opts)
    cold_old = gpu_trend.scan(gpu_trend.read_universe(old), **opts)
    pd.testing.assert_frame_equal(first.all, cold_old.all)
    assert first.state_counts == {"updated": 0, "fresh": 3, "unchanged": 0}
    assert path.exists()

    again = gpu_trend.scan(gpu_trend.read_universe(old), state=path, **opts)
    assert again.state_counts == {"updated": 0, "fresh": 0, "unchanged": 3}
    pd.testing.assert_frame_equal(again.all, cold_old.all)

    cold = gpu_trend.scan(gpu_trend.read_universe(table), **opts)
    state_before = ATCState.load(path)
    whole = gpu_trend.scan(gpu_trend.read_universe(table), state=path, **opts)
    pd.testing.assert_frame_equal(whole.all, cold.all)
    assert whole.state_counts == {"updated": 2, "fresh": 0, "unchanged": 1}  # W ended earlier
    assert "State: 2 updated, 0 fresh, 1 unchanged" in whole.summary()
    # The same update from a file holding only the new bars.
    state_before.save(path)
    only_new = gpu_trend.scan(gpu_trend.read_universe(new), state=path, **opts)
    cols = [c for c in cold.all.columns if c not in ("dollar_volume", "rank", "age", "stale")]
    pd.testing.assert_frame_equal(only_new.all.loc[["D", "L"], cols], cold.all.loc[["D", "L"], cols])


def test_a_warm_scan_refuses_a_state_of_another_config(tmp_path):
    path = tmp_path / "s.npz"
    uni = gpu_trend.read_universe(long_table())
    gpu_trend.scan(uni, backend="cpu", progress=False, state=path)
    with pytest.raises(ValueError, match="another config: la=0.02 in the state, 0.05 here"):
        gpu_trend.scan(uni, ATCConfig(la=0.05), backend="cpu", progress=False, state=path)


def test_warm_scan_chunks_give_the_same_table(tmp_path):
    uni = gpu_trend.read_universe(long_table())
    opts = dict(backend="cpu", progress=False, min_signal=0.0)
    one = gpu_trend.scan(uni, state=tmp_path / "a.npz", **opts)
    many = gpu_trend.scan(uni, state=tmp_path / "b.npz", chunk_symbols=1, **opts)
    pd.testing.assert_frame_equal(one.all, many.all)
    a, b = ATCState.load(tmp_path / "a.npz"), ATCState.load(tmp_path / "b.npz")
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.member, b.member)
