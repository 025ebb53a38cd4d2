"""Plain, sequential reference implementation of Adaptive Trend Classification (ATC).

This module is written only from ``spec/ATC.md`` and the project rules for NaN handling; it
deliberately shares no code with the ``gpu_trend`` or ``cpu_fallback`` engines, so that it can be
used to check them.  Everything is computed for one symbol, one bar at a time, with Python floats
and the :mod:`math` module.  NumPy is only used to build the output arrays.

Window sums use :func:`math.fsum` (correctly rounded), so the reference is at least as accurate as
any summation order an engine may choose; Layer-1 and Average_Signal sums are plain sequential
additions in the fixed member/family order because the spec makes that order part of the result.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "FAMILIES",
    "ROBUSTNESS_OFFSETS",
    "member_lengths",
    "round2",
    "reference_atc",
]

NAN = float("nan")

#: Family order used everywhere (Layer 2, Average_Signal, member blocks of the outputs).
FAMILIES = ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")

#: (o1, o2, o3, o4) per robustness (spec section 2).
ROBUSTNESS_OFFSETS = {
    "Narrow": (1, 2, 3, 4),
    "Medium": (1, 2, 4, 6),
    "Wide": (1, 3, 5, 7),
}

CUT_LEVEL = 0.49
EQUITY_FLOOR = 0.25
KAMA_FAST = 0.666
KAMA_SLOW = 0.064


def _isnan(x):
    return x != x


def member_lengths(base_length, robustness):
    """Return the nine member lengths of one family, in spec section-2 order.

    Parameters
    ----------
    base_length : int
        Base length L of the family.
    robustness : {"Narrow", "Medium", "Wide"}
        Picks the offsets (o1, o2, o3, o4).

    Returns
    -------
    list of int
        ``[L, L+o1, L+o2, L+o3, L+o4, L-o1, L-o2, L-o3, L-o4]``.

    Raises
    ------
    ValueError
        If `robustness` is unknown or a member length is not positive.
    """
    try:
        offs = ROBUSTNESS_OFFSETS[robustness]
    except KeyError:
        raise ValueError(f"unknown robustness {robustness!r}") from None
    L = int(base_length)
    lengths = [L] + [L + o for o in offs] + [L - o for o in offs]
    if min(lengths) <= 0:
        raise ValueError(
            f"member length <= 0 for base length {L} with robustness {robustness!r}"
        )
    return lengths


def round2(x):
    """Round to 2 decimals with ties away from zero, as the spec's Layer-1 ``round2``.

    The rounding is applied to ``y = fl(100 * x)`` (the float product, not the exact decimal
    value of `x`), then the integer is divided by 100.

    Parameters
    ----------
    x : float

    Returns
    -------
    float
        NaN for NaN input.

    Examples
    --------
    >>> round2(0.125), round2(-0.125)
    (0.13, -0.13)
    """
    if _isnan(x):
        return NAN
    y = 100.0 * x
    ay = abs(y)
    # floor(|y| + 0.5) would round 0.49999999999999994 up (the sum rounds to 1.0), so compare
    # the exact fractional part instead.
    k = math.floor(ay)
    if ay - k >= 0.5:
        k += 1
    if k == 0:
        return 0.0
    return math.copysign(k, y) / 100.0


# --------------------------------------------------------------------------------------------
# Moving averages (spec section 3).  Each takes the symbol's source from its start bar on and
# returns a list of floats of the same length.  A window holding a NaN gives NaN ("pine" policy).
# --------------------------------------------------------------------------------------------


def _window(s, t, length):
    """Return s[t-length+1 .. t] (oldest first), or None if it holds a NaN."""
    win = s[t - length + 1 : t + 1]
    for v in win:
        if _isnan(v):
            return None
    return win


def _sma(s, length):
    n = len(s)
    out = [NAN] * n
    for t in range(length - 1, n):
        win = _window(s, t, length)
        if win is not None:
            out[t] = math.fsum(win) / length
    return out


def _wma(s, length):
    n = len(s)
    out = [NAN] * n
    norm = length * (length + 1) / 2.0
    for t in range(length - 1, n):
        win = _window(s, t, length)
        if win is not None:
            # win[i] is oldest-first, so its weight is i + 1 (newest bar gets weight length).
            out[t] = math.fsum((i + 1) * v for i, v in enumerate(win)) / norm
    return out


def _lsma(s, length):
    n = len(s)
    out = [NAN] * n
    if length < 2:
        # A regression through one point has no slope: Pine gives na.
        return out
    denom = length * (length + 1)
    for t in range(length - 1, n):
        win = _window(s, t, length)
        if win is not None:
            # omega_i = 2 (3i - length + 2) / (length (length + 1)); the integer part of the
            # weight is applied first so that a flat window reproduces its value almost exactly.
            acc = math.fsum((3 * i - length + 2) * v for i, v in enumerate(win))
            out[t] = 2.0 * acc / denom
    return out


def _ema(s, length, first=0):
    """Pine ``ta.ema`` over ``s[first:]``: SMA seed over the first `length` values, then the
    recurrence; a NaN seed or a NaN input makes every later value NaN."""
    n = len(s)
    out = [NAN] * n
    seed_bar = first + length - 1
    if seed_bar >= n:
        return out
    alpha = 2.0 / (length + 1)
    seed = s[first : seed_bar + 1]
    y = NAN if any(_isnan(v) for v in seed) else math.fsum(seed) / length
    out[seed_bar] = y
    for t in range(seed_bar + 1, n):
        y = alpha * s[t] + (1.0 - alpha) * y
        out[t] = y
    return out


def _dema(s, length):
    e1 = _ema(s, length)
    # E1 is valid from bar length-1, so E2's SMA seed covers bars length-1 .. 2*length-2.
    e2 = _ema(e1, length, first=length - 1)
    return [2.0 * a - b for a, b in zip(e1, e2)]


def _kama(s, length, absdiff):
    """The script's KAMA, started from 0 (spec section 3).

    `absdiff[t]` is |s_t - s_{t-1}| (NaN at t = 0), shared by the nine members.
    """
    n = len(s)
    out = [NAN] * n
    prev = NAN
    span = KAMA_FAST - KAMA_SLOW
    for t in range(n):
        ratio = 0.0
        if t >= length:
            noise_win = absdiff[t - length + 1 : t + 1]
            if not any(_isnan(v) for v in noise_win):
                noise = math.fsum(noise_win)
                if noise != 0.0:
                    ratio = abs(s[t] - s[t - length]) / noise
        sm = ratio * span + KAMA_SLOW
        smooth = sm * sm
        # Pine's nz(): a NaN previous value restarts the recurrence from 0.
        p = 0.0 if _isnan(prev) else prev
        k = p + smooth * (s[t] - p)
        out[t] = k
        prev = k
    return out


# --------------------------------------------------------------------------------------------
# Signals and equity (spec sections 4 and 5).
# --------------------------------------------------------------------------------------------


def _member_signal(c, m, tie_rtol):
    """Crossover state q of close `c` against MA `m`, with the tie rule of section 4."""
    n = len(c)
    out = [0.0] * n
    q = 0.0
    for t in range(1, n):
        c0, m0, c1, m1 = c[t], m[t], c[t - 1], m[t - 1]
        if not (_isnan(c0) or _isnan(m0) or _isnan(c1) or _isnan(m1)):
            d0 = c0 - m0
            d1 = c1 - m1
            tol0 = tie_rtol * abs(c0)
            tol1 = tie_rtol * abs(c1)
            above_now = d0 > tol0
            below_now = d0 < -tol0
            above_prev = d1 > tol1
            below_prev = d1 < -tol1
            # "c_{t-1} <= m_{t-1}" is "not above", "c_{t-1} >= m_{t-1}" is "not below".
            if above_now and not above_prev:
                q = 1.0
            elif below_now and not below_prev:
                q = -1.0
        out[t] = q
    return out


def _equity(w, sigma, r, cutout, d):
    """eq(w, sigma, R) of spec section 5 given r_t = R_t * g_t.

    Bar `cutout` and the bar after a NaN equity both (re)start at max(w, 0.25); the stale
    position return `a` is kept whenever sigma_{t-1} is 0 or NaN.
    """
    n = len(r)
    out = [NAN] * n
    start = w if w > EQUITY_FLOOR else EQUITY_FLOOR
    a = 0.0
    prev = NAN
    for t in range(cutout, n):
        if t >= 1:
            sp = sigma[t - 1]
            if sp > 0.0:
                a = r[t]
            elif sp < 0.0:
                a = -r[t]
        if t == cutout or _isnan(prev):
            e = start
        else:
            e = prev * d * (1.0 + a)
            # The floor must not turn a NaN equity into 0.25 (Python's max would).
            if not _isnan(e) and e < EQUITY_FLOOR:
                e = EQUITY_FLOOR
        out[t] = e
        prev = e
    return out


def _cut(x):
    if x > CUT_LEVEL:
        return 1.0
    if x < -CUT_LEVEL:
        return -1.0
    return 0.0


# --------------------------------------------------------------------------------------------
# Input preparation.
# --------------------------------------------------------------------------------------------


def _ffill(values, first_fallback):
    out = list(values)
    last = first_fallback
    for t, v in enumerate(out):
        if _isnan(v):
            out[t] = last
        else:
            last = v
    return out


def reference_atc(
    close,
    source=None,
    *,
    la=0.02,
    de=0.03,
    cutout=0,
    robustness="Medium",
    lengths=(28,) * 6,
    weights=(1.0,) * 6,
    long_threshold=0.1,
    short_threshold=-0.1,
    tie_rtol=1e-12,
    nan_policy="pine",
):
    """Compute ATC for one symbol, bar by bar, exactly as ``spec/ATC.md`` defines it.

    Parameters
    ----------
    close : sequence of float, length n
        Close prices. Leading NaNs mean the symbol starts later: its bar 0 (for warm-ups,
        cutout and growth) is its first non-NaN close.
    source : sequence of float, length n, optional
        Input of the 54 moving averages; defaults to `close`. Returns and every crossover
        always use `close`.
    la : float
        Lambda in TradingView dialog units (internally ``la / 1000`` per bar).
    de : float
        Decay in percent (internally ``d = 1 - de / 100``).
    cutout : int
        K, the first bar (counted from the symbol's start bar) on which equities exist.
    robustness : {"Narrow", "Medium", "Wide"}
        Member-length offsets.
    lengths : sequence of 6 int
        Base lengths of EMA, HMA, WMA, DEMA, LSMA, KAMA.
    weights : sequence of 6 float
        Layer-2 starting equities (floored at 0.25).
    long_threshold, short_threshold : float
        Direction thresholds (section 7.4).
    tie_rtol : float
        Relative tolerance of the member-signal tie rule (section 4); 0 means raw comparisons.
    nan_policy : {"pine", "ffill", "raise"}
        Interior-NaN handling. "ffill" carries the last valid value of each series forward
        (a NaN source on the start bar takes that bar's close); "pine" evaluates the formulas
        literally with NaN propagation; "raise" is the engine's concern and behaves like "pine"
        here.

    Returns
    -------
    dict of numpy.ndarray
        ``average_signal`` (n,), ``family_signals`` (6, n), ``family_equities`` (6, n),
        ``direction`` (n,) with NaN/-1/+1, ``long_events`` and ``short_events`` (n,) bool,
        ``member_ma``, ``member_signal``, ``member_equity`` (54, n) family-major in the order
        of :data:`FAMILIES` with members in section-2 order, ``growth`` (n,) and ``R`` (n,).
        Bars before the symbol's start bar are NaN (False for events).

    Raises
    ------
    ValueError
        On inconsistent lengths, an unknown robustness or nan_policy, or a member length <= 0.
    """
    close = [float(v) for v in close]
    n = len(close)
    source = list(close) if source is None else [float(v) for v in source]
    if len(source) != n:
        raise ValueError("close and source must have the same length")
    if len(lengths) != 6 or len(weights) != 6:
        raise ValueError("lengths and weights must have 6 entries each")
    if nan_policy not in ("pine", "ffill", "raise"):
        raise ValueError(f"unknown nan_policy {nan_policy!r}")
    if cutout < 0:
        raise ValueError("cutout must be >= 0")
    all_lengths = [member_lengths(L, robustness) for L in lengths]

    out = {
        "average_signal": np.full(n, np.nan),
        "family_signals": np.full((6, n), np.nan),
        "family_equities": np.full((6, n), np.nan),
        "direction": np.full(n, np.nan),
        "long_events": np.zeros(n, dtype=bool),
        "short_events": np.zeros(n, dtype=bool),
        "member_ma": np.full((54, n), np.nan),
        "member_signal": np.full((54, n), np.nan),
        "member_equity": np.full((54, n), np.nan),
        "growth": np.full(n, np.nan),
        "R": np.full(n, np.nan),
    }

    t0 = next((t for t, v in enumerate(close) if not _isnan(v)), None)
    if t0 is None:
        return out

    c = close[t0:]
    s = source[t0:]
    if nan_policy == "ffill":
        c = _ffill(c, c[0])
        s = _ffill(s, c[0])
    m = len(c)
    K = int(cutout)

    lam = la / 1000.0
    d = 1.0 - de / 100.0

    R = [NAN] + [(c[t] - c[t - 1]) / c[t - 1] for t in range(1, m)]
    g = [1.0 if t < K else math.exp(lam * (t - K)) for t in range(m)]
    r = [R[t] * g[t] for t in range(m)]

    absdiff = [NAN] + [abs(s[t] - s[t - 1]) for t in range(1, m)]

    ma_funcs = {
        "EMA": _ema,
        "HMA": _sma,  # the script routes the "HMA" family to ta.sma
        "WMA": _wma,
        "DEMA": _dema,
        "LSMA": _lsma,
        "KAMA": lambda x, ell: _kama(x, ell, absdiff),
    }

    family_X = []
    family_S = []
    for k, fam in enumerate(FAMILIES):
        fn = ma_funcs[fam]
        qs = []
        es = []
        for i, ell in enumerate(all_lengths[k]):
            ma = fn(s, ell)
            q = _member_signal(c, ma, tie_rtol)
            e = _equity(1.0, q, r, K, d)
            row = 9 * k + i
            out["member_ma"][row, t0:] = ma
            out["member_signal"][row, t0:] = q
            out["member_equity"][row, t0:] = e
            qs.append(q)
            es.append(e)

        X = [NAN] * m
        for t in range(K, m):
            num = 0.0
            den = 0.0
            for i in range(9):
                num += qs[i][t] * es[i][t]
                den += es[i][t]
            X[t] = round2(num / den)
        S = _equity(float(weights[k]), X, r, K, d)
        family_X.append(X)
        family_S.append(S)
        out["family_signals"][k, t0:] = X
        out["family_equities"][k, t0:] = S

    A = [NAN] * m
    for t in range(K, m):
        num = 0.0
        den = 0.0
        for k in range(6):
            num += _cut(family_X[k][t]) * family_S[k][t]
            den += family_S[k][t]
        A[t] = num / den
    out["average_signal"][t0:] = A

    direction = NAN
    dirs = [NAN] * m
    longs = [False] * m
    shorts = [False] * m
    for t in range(1, m):
        u0, u1 = A[t], A[t - 1]
        # Raw comparisons; any NaN makes them False.
        co = u0 > long_threshold and u1 <= long_threshold
        cu = u0 < short_threshold and u1 >= short_threshold
        before = direction
        if co:
            direction = 1.0
        if cu:
            direction = -1.0
        longs[t] = co and before == -1.0
        shorts[t] = cu and before == 1.0
        dirs[t] = direction
    out["direction"][t0:] = dirs
    out["long_events"][t0:] = longs
    out["short_events"][t0:] = shorts
    out["growth"][t0:] = g
    out["R"][t0:] = R
    return out
