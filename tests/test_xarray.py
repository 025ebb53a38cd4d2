"""ATCResult.to_xarray(): the outputs as a labelled Dataset, and back.

Every variable must be the result's own array (no copy, so CuPy arrays would stay on the
device) and the coordinates the result's symbols, families, members and times, each symbol's
times following the calendar rule (its bars packed to the right).
"""

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from gpu_trend import FAMILIES, read_universe
from gpu_trend.demo import demo_universe
from gpu_trend.outputs import OUTPUTS


def test_without_xarray_the_error_names_the_extra(monkeypatch):
    res = gpu_trend.compute_atc(np.full((1, 80), 3.0), backend="cpu")
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray raises ImportError
    with pytest.raises(ImportError, match=r"gpu-trend\[xarray\]"):
        res.to_xarray()


needs_xarray = pytest.mark.skipif(importlib.util.find_spec("xarray") is None,
                                  reason="xarray is not installed (gpu-trend[xarray])")


def assert_round_trip(res, ds):
    """Every output is a variable holding the result's array itself, on the right dims."""
    for o in OUTPUTS:
        arr = getattr(res, o.name)
        if arr is None:
            assert o.name not in ds
            continue
        extra = {1: (), 6: ("family",), 54: ("member",)}[o.width]
        assert ds[o.name].dims == ("symbol", *extra, "time")
        assert ds[o.name].data is arr
        np.testing.assert_array_equal(ds[o.name].to_numpy(), arr)
    assert list(ds.symbol.to_numpy()) == res.symbols
    assert list(ds.family.to_numpy()) == list(FAMILIES)
    assert ds.attrs["backend"] == res.backend


@needs_xarray
def test_shared_calendar_round_trip_with_members():
    rng = np.random.default_rng(7)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (150, 3)), axis=0)),
                         index=pd.date_range("2024-01-01", periods=150, freq="D", name="time"),
                         columns=["A", "B", "C"])
    close.iloc[:40, 1] = np.nan  # B listed later: padding on the shared calendar
    res = gpu_trend.compute_atc(close, backend="cpu", members=True)
    ds = res.to_xarray()
    assert_round_trip(res, ds)
    assert list(ds.member.to_numpy()) == res.member_names()
    assert ds.sizes == {"symbol": 3, "family": 6, "member": 54, "time": 150}
    assert ds.indexes["time"].equals(close.index)
    # Labels select what positions select.
    t = close.index[-1]
    assert ds.average_signal.sel(symbol="B", time=t).item() == res.average_signal[1, -1]
    assert ds.member_ma.sel(member="KAMA_28", symbol="C").to_numpy() == pytest.approx(
        res.member_ma[2, res.member_names().index("KAMA_28")], nan_ok=True)


@needs_xarray
def test_own_calendars_in_one_stretch_keep_a_time_index():
    uni = demo_universe(6, 200, seed=1, late_listing_fraction=0.5)
    res = gpu_trend.compute_atc(uni, backend="cpu")
    assert res.positions is not None  # packed, every symbol ending on the last timestamp
    ds = res.to_xarray()
    assert_round_trip(res, ds)
    assert "bar_time" not in ds.coords
    for k, sym in enumerate(res.symbols):
        own = ds.time.to_numpy()[res.positions[k] >= 0]
        assert pd.DatetimeIndex(own).equals(res.times(sym))


@needs_xarray
def test_mixed_calendars_give_each_symbol_its_own_times():
    daily = pd.bdate_range("2024-01-01", periods=120)
    parts = {"DAILY": daily,
             "WEEKLY": pd.date_range("2022-01-07", periods=110, freq="W-FRI"),
             "ENDED": daily[:90],                        # its data ends early
             "HOLES": daily[::2]}                        # every other day
    rng = np.random.default_rng(3)
    long = pd.concat([pd.DataFrame({"symbol": s, "time": t,
                                    "close": 50 * np.exp(np.cumsum(rng.normal(0, .01, len(t))))})
                      for s, t in parts.items()])
    res = gpu_trend.compute_atc(read_universe(long), backend="cpu")
    ds = res.to_xarray()
    assert_round_trip(res, ds)
    assert "time" not in ds.indexes
    assert ds.bar_time.dims == ("symbol", "time")
    for sym, times in parts.items():
        own = ds.bar_time.sel(symbol=sym).to_numpy()
        n_pad = res.n_bars - len(times)
        assert np.isnat(own[:n_pad]).all()
        assert pd.DatetimeIndex(own[n_pad:]).equals(pd.DatetimeIndex(times))
        assert pd.DatetimeIndex(own[n_pad:]).equals(res.times(sym))
        # Its last bar, labelled by its own time, is latest()'s.
        last = ds.average_signal.sel(symbol=sym).isel(time=-1).item()
        assert last == res.latest().loc[sym, "average_signal"]
        assert own[-1] == res.latest().loc[sym, "time"]
