"""A deterministic demo universe, so the scanner runs on a fresh machine with no data.

The prices are regime-switching random walks: each symbol moves between trending-up,
trending-down and choppy (mean-reverting) regimes of random length, with its own volatility and a
price level drawn log-uniformly between about 0.5 and 10,000.  Volume is lognormal around a
per-symbol level, with an hour-of-day pattern and bursts on large moves, as on real exchanges.
A few symbols are listed after the start (leading NaNs), as in any real universe.

The same arguments always give the same universe (NumPy's PCG64 generator, seeded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .io import Universe

__all__ = ["demo_universe", "demo_symbols"]

# Regimes: 0 = trending up, 1 = trending down, 2 = choppy.
_N_REGIMES = 3
_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def demo_symbols(n_symbols: int, seed: int = 0) -> list[str]:
    """Return `n_symbols` distinct ticker-like names (3–5 letters), fixed for a given seed.

    Parameters
    ----------
    n_symbols : int
        How many names.
    seed : int
        Seed of the name generator.

    Returns
    -------
    list of str
    """
    rng = np.random.default_rng([seed, 1])
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n_symbols:
        # Draw in batches; collisions are rare and simply skipped.
        batch = max(16, 2 * (n_symbols - len(names)))
        lengths = rng.integers(3, 6, size=batch)
        letters = rng.integers(0, 26, size=(batch, 5))
        for k, row in zip(lengths, letters):
            name = "".join(_LETTERS[row[:k]])
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == n_symbols:
                    break
    return names


def demo_universe(
    n_symbols: int = 500,
    n_bars: int = 1500,
    seed: int = 0,
    *,
    start: str = "2024-01-01",
    freq: str = "h",
    late_listing_fraction: float = 0.05,
) -> Universe:
    """Generate the demo universe.

    Parameters
    ----------
    n_symbols : int, default 500
        Number of symbols.
    n_bars : int, default 1500
        Number of bars (hourly by default: 1,500 hours is about two months of 24/7 trading).
    seed : int, default 0
        Random seed; the same seed gives an identical universe.
    start : str, default "2024-01-01"
        Time of the first bar.
    freq : str, default "h"
        Bar spacing (a pandas frequency string).
    late_listing_fraction : float, default 0.05
        Fraction of symbols listed after the first bar (their early bars are NaN).

    Returns
    -------
    Universe
        close, open, high, low and volume tables (time × symbols), nothing rejected.
    """
    if n_symbols < 1 or n_bars < 2:
        raise ValueError("demo_universe needs n_symbols >= 1 and n_bars >= 2")
    if not 0.0 <= late_listing_fraction <= 1.0:
        raise ValueError("late_listing_fraction must be in [0, 1]")
    rng = np.random.default_rng(seed)
    S, T = n_symbols, n_bars

    # Per-symbol character: price level, hourly volatility, how strongly trends drift.
    log_p0 = rng.uniform(np.log(0.5), np.log(1e4), size=S)
    vol = np.exp(rng.normal(np.log(0.008), 0.45, size=S)).clip(0.002, 0.05)
    trend_strength = rng.uniform(0.08, 0.35, size=S)  # drift as a fraction of volatility
    mean_duration = rng.uniform(60, 300, size=S)  # bars per regime on average
    chop_pull = rng.uniform(0.02, 0.12, size=S)  # mean reversion per bar in choppy regimes

    regime = rng.integers(0, _N_REGIMES, size=S)
    anchor = log_p0.copy()
    log_p = np.empty((T, S))
    log_p[0] = log_p0
    regimes = np.empty((T, S), dtype=np.int8)
    regimes[0] = regime
    switch_u = rng.random((T, S))
    next_regime = rng.integers(0, _N_REGIMES - 1, size=(T, S))
    # Student-t shocks (df = 4) give the fat tails of real returns; scaled to unit variance.
    shocks = rng.standard_t(4, size=(T, S)) / np.sqrt(2.0)

    p_switch = 1.0 / mean_duration
    for t in range(1, T):
        switch = switch_u[t] < p_switch
        # Move to one of the two other regimes, never back into the same one.
        new = (regime + 1 + next_regime[t]) % _N_REGIMES
        regime = np.where(switch, new, regime)
        anchor = np.where(switch, log_p[t - 1], anchor)
        drift = np.where(regime == 0, trend_strength * vol,
                         np.where(regime == 1, -trend_strength * vol, 0.0))
        pull = np.where(regime == 2, -chop_pull * (log_p[t - 1] - anchor), 0.0)
        log_p[t] = log_p[t - 1] + drift + pull + vol * shocks[t]
        regimes[t] = regime

    close = np.exp(log_p)
    # Open near the previous close; high/low extend beyond the body by a fraction of the vol.
    gap = rng.normal(0.0, 0.15, size=(T, S)) * vol
    open_ = np.empty_like(close)
    open_[0] = close[0] * np.exp(gap[0])
    open_[1:] = close[:-1] * np.exp(gap[1:])
    wick = np.abs(rng.normal(0.0, 0.5, size=(2, T, S))) * vol
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])

    # Prices sit on a tick grid (5 significant digits at the starting level), as quoted prices
    # do; repeated prices are what the indicator's tie rule exists for.
    tick = 10.0 ** (np.floor(np.log10(np.exp(log_p0))) - 4)
    close, open_, high, low = (np.round(a / tick) * tick for a in (close, open_, high, low))
    close, open_, high, low = (np.maximum(a, tick) for a in (close, open_, high, low))

    # Volume: per-symbol dollar-volume level (lognormal, wide spread like a real exchange),
    # intraday U-shape, bursts on large moves, lognormal noise.
    times = pd.date_range(start=start, periods=T, freq=freq, name="time")
    dollar_level = np.exp(rng.normal(np.log(2e5), 1.6, size=S))
    hours = np.asarray(times.hour if hasattr(times, "hour") else np.zeros(T), dtype=float)
    intraday = 1.0 + 0.5 * np.cos(2 * np.pi * (hours - 14.0) / 24.0)
    ret = np.zeros((T, S))
    ret[1:] = np.abs(np.diff(log_p, axis=0)) / vol
    burst = 1.0 + 0.6 * np.minimum(ret, 6.0)
    noise = np.exp(rng.normal(-0.125, 0.5, size=(T, S)))
    volume = dollar_level / close * intraday[:, None] * burst * noise
    volume = np.round(volume, 2)

    # Late listings: the first bars of some symbols do not exist.
    n_late = int(round(late_listing_fraction * S))
    if n_late:
        late = rng.choice(S, size=n_late, replace=False)
        first_bar = rng.integers(1, max(2, T // 2), size=n_late)
        for s, b in zip(late, first_bar):
            for arr in (close, open_, high, low, volume):
                arr[:b, s] = np.nan

    symbols = pd.Index(demo_symbols(S, seed), name="symbol")

    def frame(a):
        return pd.DataFrame(a, index=times, columns=symbols)

    return Universe(
        close=frame(close),
        volume=frame(volume),
        open=frame(open_),
        high=frame(high),
        low=frame(low),
        rejected={},
        source=f"demo_universe(n_symbols={S}, n_bars={T}, seed={seed})",
    )
