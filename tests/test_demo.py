"""The demo universe: deterministic, well-formed, plausible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpu_trend.demo import demo_universe
from gpu_trend.io import Universe


@pytest.fixture(scope="module")
def uni() -> Universe:
    return demo_universe(120, 400, seed=3)


def test_same_seed_same_universe_different_seed_different():
    a = demo_universe(40, 300, seed=7)
    b = demo_universe(40, 300, seed=7)
    for name in ("close", "open", "high", "low", "volume"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = demo_universe(40, 300, seed=8)
    assert not np.allclose(a.close.to_numpy(), c.close.to_numpy(), equal_nan=True)
    assert a.symbols != c.symbols


def test_shape_index_and_symbols(uni):
    assert uni.n_symbols == 120 and uni.n_bars == 400
    idx = uni.close.index
    assert isinstance(idx, pd.DatetimeIndex)
    assert idx[0] == pd.Timestamp("2024-01-01")
    assert (idx[1:] - idx[:-1] == pd.Timedelta(hours=1)).all()
    assert len(set(uni.symbols)) == 120
    assert all(s.isalpha() and s.isupper() and 3 <= len(s) <= 5 for s in uni.symbols)
    assert uni.rejected == {}


def test_prices_are_valid_and_span_a_realistic_range():
    u = demo_universe(400, 60, seed=0, late_listing_fraction=0.0)
    start = u.close.iloc[0].to_numpy()
    assert (start > 0).all()
    # Levels drawn log-uniformly between 0.5 and 10,000.
    assert start.min() < 2 and start.max() > 2000
    assert start.min() >= 0.4 and start.max() <= 1.3e4


def test_ohlc_consistent_and_volume_positive(uni):
    c, o, h, low, v = (getattr(uni, n).to_numpy() for n in ("close", "open", "high", "low",
                                                            "volume"))
    listed = ~np.isnan(c)
    assert (c[listed] > 0).all() and np.isfinite(c[listed]).all()
    assert (h[listed] >= np.maximum(o, c)[listed]).all()
    assert (low[listed] <= np.minimum(o, c)[listed]).all()
    assert (low[listed] > 0).all()
    assert (v[listed] > 0).all()
    # Lognormal-ish volume: spread over orders of magnitude across symbols.
    med = np.nanmedian(v * c, axis=0)
    assert med.max() / med.min() > 100


def test_late_listings_are_leading_gaps_only(uni):
    c = uni.close.to_numpy()
    listed = ~np.isnan(c)
    first = listed.argmax(axis=0)
    assert listed.any(axis=0).all()
    late = first > 0
    assert 1 <= late.sum() <= 12  # about 5 % of 120
    for j in range(c.shape[1]):
        assert listed[first[j]:, j].all()  # no holes after the listing bar


def test_regimes_produce_both_trends(uni):
    # Over 400 bars some symbols end well above and some well below where they started.
    c = uni.close
    change = np.log(c.iloc[-1] / c.bfill().iloc[0])
    assert (change > 0.2).sum() >= 5 and (change < -0.2).sum() >= 5


def test_argument_checks():
    with pytest.raises(ValueError):
        demo_universe(0, 100)
    with pytest.raises(ValueError):
        demo_universe(10, 1)
    with pytest.raises(ValueError):
        demo_universe(10, 100, late_listing_fraction=1.5)
