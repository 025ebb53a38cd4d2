"""The ATC arithmetic, written once and compiled for two targets.

:func:`build_cores` takes a decorator and returns :class:`Cores`, the per-row
functions both backends are made of:

* ``returns_row``: one symbol's returns r_t, growth applied (spec 5).
* ``member_core``: one symbol × one member through every bar: its moving
  average, the crossover signal q and the Layer-1 equity E (spec 3–5).
* ``layer2_core``: one symbol × one family: the rounded family signal X_k from
  its nine members' q and E, and the Layer-2 equity S_k (spec 6–7.1).
* ``final_core``: one symbol: Average_Signal, the direction state machine and
  the long/short events (spec 7.3–7.4).
* ``window_rows``: the CPU's shared pass for the window families (below).

The row functions are loops over bars of one-bar steps, which :class:`Cores` also
exports: ``return_at`` (``growth_return``), ``ma_step`` (with ``window_value`` and
``window_ready`` for the window families), ``cross_step``, ``member_equity`` and
``layer2_step``, ``average_add`` and ``direction_step``, and ``load_member`` /
``store_member`` / ``fresh_member`` for a member's state row (``fresh_layer2`` for a
family's Layer 2).
The CPU's kernels are made of these steps (:mod:`cpu_fallback.lanes` runs them in every SIMD
lane of a block of symbols, :mod:`cpu_fallback.backend` one symbol a bar at a time), and the
sweeps use them on rows of their own.

The GPU backend (:mod:`gpu_trend.gpu`) compiles
the *same source* with ``numba.cuda.jit(device=True)`` and launches one thread
per (member, symbol), then per (family, symbol), then per symbol. One source
for both targets is what keeps the two backends bit-for-bit on the same
arithmetic.

Only time is sequential. Each recurrence keeps its state in registers. The
one place the targets differ is where the window families (SMA, WMA, LSMA and
KAMA's noise) get their window sums: a GPU member thread sums its own window,
while the CPU runs one backward pass per bar that yields the sums of all nine
lengths at once (:func:`window_rows`, and its lane form in :mod:`cpu_fallback.lanes`).
Both add the same terms in the same order, so the sums are the same bits.

Products that feed an addition go through ``mul``: the CUDA compiler contracts
``a * b + c`` into one fused multiply-add (one rounding instead of two) unless
the product is an explicitly rounded multiply, and the CPU build never fuses.
"""

import math
from typing import NamedTuple

import numpy as np

#: Family indices, in the order the script sums them (``gpu_trend.config.FAMILIES``).
EMA, HMA, WMA, DEMA, LSMA, KAMA = range(6)
N_FAMILIES = 6
#: Members per family, and members (signals) per symbol.
N_MEMBERS = 9
N_SIGNALS = N_FAMILIES * N_MEMBERS
#: Resumable state (see :mod:`gpu_trend.state`): the slots of one member's state row, of one
#: family's Layer-2 row and of one symbol's direction row. Flags are stored as 0.0 / 1.0.
M_ACC, M_Y, M_ACC2, M_Y2, M_KAMA, M_Q, M_GT, M_LT, M_OK, M_A, M_E = range(11)
MEMBER_STATE = 11
L_X, L_A, L_S = range(3)
LAYER2_STATE = 3
F_DIR, F_U, F_V = range(3)
FINAL_STATE = 3

KAMA_FAST = 0.666
KAMA_SLOW = 0.064
CUT = 0.49
FLOOR = 0.25
#: 2^52: from here on every float64 is an integer (round2's exact truncation).
TWO52 = 4503599627370496.0


class KernelParams(NamedTuple):
    """What the cores take from an :class:`~gpu_trend.config.ATCConfig`, derived once per call.

    Built by :meth:`ATCConfig.kernel_params <gpu_trend.config.ATCConfig.kernel_params>`;
    both backends receive this one structure.

    Attributes
    ----------
    growth : (T,) float64
        exp(λ (τ − cutout)) from the cutout on, 1 before it (spec 5).
    lengths : (6, 9) int64
        Member lengths, family-major.
    weights : (6,) float64
        Starting equities of the Layer-2 curves.
    cutout : int
    decay : float
        d = 1 − De/100.
    tie_rtol : float
    long_threshold, short_threshold : float
    direction_source : int
        −1 for the Average_Signal, else the family index.
    strategy_view : bool
    """

    growth: np.ndarray
    lengths: np.ndarray
    weights: np.ndarray
    cutout: int
    decay: float
    tie_rtol: float
    long_threshold: float
    short_threshold: float
    direction_source: int
    strategy_view: bool


class Cores(NamedTuple):
    returns_row: object
    window_rows: object
    member_core: object
    layer2_core: object
    final_core: object
    # One bar of the row functions: the CPU's lane kernels (cpu_fallback.lanes, .sweep_lanes)
    # run them in every SIMD lane, the GPU's sweep on rows the row functions do not take, and
    # the CPU's few-bar path (cpu_fallback.backend) steps every member of a symbol through a
    # bar without a call per member.
    member_equity: object
    load_member: object
    store_member: object
    return_at: object
    ma_step: object
    cross_step: object
    layer2_step: object
    layer2_signal: object
    equity_step: object
    fresh_member: object
    fresh_layer2: object
    window_value: object
    window_ready: object
    growth_return: object
    average_add: object
    direction_step: object


def build_cores(jit, mul, step_jit=None):
    """Compile the ATC cores with ``jit`` (``numba.njit`` or a CUDA device jit).

    Parameters
    ----------
    jit : decorator
    mul : compiled function
        ``mul(a, b)``: the float64 product ``a * b``, rounded on its own even
        where an addition follows (on CUDA, ``cuda.libdevice.dmul_rn``).
    step_jit : decorator, optional
        For the one-bar steps (default ``jit``). The CPU forces them inline: a call left
        in a lane loop of :mod:`cpu_fallback.lanes` stops LLVM from vectorising it.

    Returns
    -------
    Cores
    """
    step = jit if step_jit is None else step_jit

    @step
    def round2(x):
        # Ties away from zero on y = fl(100 x), via an exact truncation n of |y|;
        # floor(y + 0.5) would misround y = 0.49999999999999994. The truncation takes
        # no integer conversion (AVX2 has no packed one, so the CPU's lane loops would
        # go scalar): |y| + 2^52 − 2^52 is |y| rounded to an integer, exactly, below 2^52
        # (one less where that rounded up); from 2^52 on |y| is an integer already.
        y = mul(100.0, x)
        if y != y:
            return y
        a = abs(y)
        n = (a + TWO52) - TWO52
        if n > a:
            n -= 1.0
        if a >= TWO52:
            n = a
        if a - n >= 0.5:
            n += 1.0
        r = n if y >= 0 else -n
        return r / 100.0 + 0.0  # + 0.0 turns -0.0 into 0.0

    @step
    def cut(x):
        if x > CUT:
            return 1.0
        if x < -CUT:
            return -1.0
        return 0.0

    @step
    def ema_step(k, length, alpha, x, acc, y):
        # Input k (from 0) of ta.ema: the mean of the first `length` inputs seeds
        # it, then the recurrence in Pine's operand order. Returns (acc, y); y
        # stays NaN until the seed.
        if k < length:
            acc += x
            if k == length - 1:
                y = acc / length
        else:
            y = mul(alpha, x) + mul(1.0 - alpha, y)
        return acc, y

    @step
    def window_value(fam, length, ws, wt):
        # The MA from the backward window sums ws = Σ s_{t-j}, wt = Σ j·s_{t-j}
        # (j < length); for KAMA, ws = Σ|Δs| is its noise.
        if fam == HMA:
            return ws / length  # the script's "HMA" is ta.sma (spec 3)
        if fam == WMA:
            return (mul(float(length), ws) - wt) / (length * (length + 1) * 0.5)
        if fam == LSMA:
            # Σ ω_i y_i, ω_i = 2(3i − ℓ + 2)/(ℓ(ℓ+1)), on the backward sums; a line through
            # one point is NaN (a select, not a branch: the CPU's lane loops vectorise it).
            v = (mul(4.0 * length - 2.0, ws) - mul(6.0, wt)) / (length * (length + 1.0))
            return math.nan if length == 1 else v
        return ws

    @step
    def window_ready(fam, length, tau):
        # Whether a full window exists at bar τ (KAMA's noise needs one more bar).
        return length <= (tau if fam == KAMA else tau + 1)

    @jit
    def window_rows(src, start, t_from, n, fam, lens, ma, wbuf):
        # The CPU's shared pass: one backward walk per bar fills the running
        # sums Σ s and Σ j·s (or Σ|Δs|) for every window length, and each of
        # the nine members reads its own. Every window is summed afresh: no
        # sliding-sum drift (spec 10).
        maxlen = 0
        for i in range(N_MEMBERS):
            if lens[i] > maxlen:
                maxlen = lens[i]
        for t in range(max(start, t_from), n):
            tau = t - start
            avail = tau if fam == KAMA else tau + 1
            jmax = maxlen if maxlen < avail else avail
            acc_s = 0.0
            acc_t = 0.0
            if fam == KAMA:
                for j in range(jmax):
                    acc_s += abs(src[t - j] - src[t - j - 1])
                    wbuf[0, j] = acc_s
            else:
                for j in range(jmax):
                    v = src[t - j]
                    acc_s += v
                    acc_t += mul(float(j), v)
                    wbuf[0, j] = acc_s
                    wbuf[1, j] = acc_t
            for i in range(N_MEMBERS):
                length = lens[i]
                if window_ready(fam, length, tau):
                    ma[i, t] = window_value(fam, length, wbuf[0, length - 1],
                                            wbuf[1, length - 1])
                else:
                    ma[i, t] = math.nan

    @step
    def growth_return(c, c_prev, g):
        # r_t with growth applied (spec 5), from closes c_t, c_{t-1} and g = growth[τ].
        return (c - c_prev) / c_prev * g

    @step
    def return_at(close, growth, start, t):
        if t > start:
            return growth_return(close[t], close[t - 1], growth[t - start])
        return math.nan

    @jit
    def returns_row(close, growth, start, t_from, r):
        for t in range(max(start, t_from), close.shape[0]):
            r[t] = return_at(close, growth, start, t)

    @step
    def equity_step(e, a, r, sig_prev, first, w0, d):
        # One bar of eq(w, σ, R) from the cutout on (spec 5): the stale return `a`
        # is kept while σ_{t-1} is 0 or NaN; the first bar, and the bar after a
        # NaN, (re)start at w0 = max(w, 0.25). Returns the new (a, e).
        if sig_prev > 0:
            a = r
        elif sig_prev < 0:
            a = -r
        if first or e != e:
            e = w0
        else:
            e = e * d * (1.0 + a)
            if e < FLOOR:
                e = FLOOR
        return a, e

    @step
    def member_equity(tau, cutout, e, a, r, q_prev, d):
        # A member's Layer-1 equity at bar τ: NaN before the cutout, then eq(1, q, R).
        if tau < cutout:
            return a, math.nan
        return equity_step(e, a, r, q_prev, tau == cutout, 1.0, d)

    @step
    def ma_step(x, x_lag, m_pre, tau, fam, length, alpha, acc, y, acc2, y2, k_prev):
        # A member's moving average on a bar with source x (τ bars after the listing) and its
        # recurrences' new state (acc, y, acc2, y2, k_prev). EMA, DEMA and the KAMA recurrence
        # are stepped here; a window family's value (KAMA: its noise) comes in as `m_pre`,
        # and KAMA's x_lag is the source `length` bars back (NaN before it exists).
        if fam == EMA or fam == DEMA:
            acc, y = ema_step(tau, length, alpha, x, acc, y)
            m = y
            if fam == DEMA:
                # E2 is ta.ema of E1 from E1's first value (bar ℓ−1), so
                # DEMA = 2·E1 − E2 is valid (E2 seeded) from bar 2ℓ−2.
                k2 = tau - (length - 1)
                if k2 >= 0:
                    acc2, y2 = ema_step(k2, length, alpha, m, acc2, y2)
                m = 2.0 * m - y2  # 2·E1 is exact: nothing to contract
        elif fam == KAMA:
            noise = m_pre
            sig = abs(x - x_lag)
            ratio = sig / noise if noise == noise and noise != 0.0 else 0.0
            sm = mul(ratio, KAMA_FAST - KAMA_SLOW) + KAMA_SLOW
            sm = sm * sm
            m = k_prev + mul(sm, x - k_prev)
            k_prev = m if m == m else 0.0
        else:
            m = m_pre
        return m, acc, y, acc2, y2, k_prev

    @step
    def cross_step(m, c, tie, q, gt_prev, lt_prev, ok_prev):
        # The crossover signal q after a bar with close c and MA m (tie rule of spec 4), and
        # the flags the next bar compares with: returns (q, gt, lt, ok).
        ok = c == c and m == m
        rel = c - m
        tol = tie * abs(c)
        gt = rel > tol
        lt = rel < -tol
        if ok and ok_prev:
            if gt and not gt_prev:
                q = 1.0
            elif lt and not lt_prev:
                q = -1.0
        return q, gt, lt, ok

    @step
    def fresh_member():
        # A member's state before its first bar, as load_member returns it: the recurrences
        # unseeded, KAMA from zero (Pine's nz(kama[1])), no signal, no equity yet.
        return 0.0, math.nan, 0.0, math.nan, 0.0, 0.0, False, False, False, 0.0, math.nan

    @step
    def fresh_layer2():
        # A family's Layer-2 state (x_prev, a, S_k) before its first bar.
        return math.nan, 0.0, math.nan

    @step
    def load_member(st):
        # A member's state row (M_ACC … M_E): its recurrences, crossover machine and equity.
        return (st[M_ACC], st[M_Y], st[M_ACC2], st[M_Y2], st[M_KAMA], st[M_Q],
                st[M_GT] != 0.0, st[M_LT] != 0.0, st[M_OK] != 0.0, st[M_A], st[M_E])

    @step
    def store_member(st, acc, y, acc2, y2, k_prev, q, gt, lt, ok, a, e):
        st[M_ACC] = acc
        st[M_Y] = y
        st[M_ACC2] = acc2
        st[M_Y2] = y2
        st[M_KAMA] = k_prev
        st[M_Q] = q
        st[M_GT] = 1.0 if gt else 0.0
        st[M_LT] = 1.0 if lt else 0.0
        st[M_OK] = 1.0 if ok else 0.0
        st[M_A] = a
        st[M_E] = e

    @jit
    def member_core(src, close, r, start, t_from, fam, length, cutout, d, tie, ma, pre, want,
                    q_out, e_out, st, resume, keep):
        # One member through every bar: MA (ma_step), crossover signal (cross_step),
        # Layer-1 equity. A window family's value (KAMA: its noise) is read from `ma`
        # when `pre`, else summed here over the member's own window. With `want`, the MA is
        # written to `ma` and bars before the listing are NaN in all three rows.
        # Bars run from max(start, t_from), τ = t − start: a resumed run starts
        # from the state row `st` (`resume`) on bars after the history's last
        # window, and with `keep` the state after the last bar is written back.
        n = close.shape[0]
        if want:
            for t in range(min(start, n)):
                ma[t] = math.nan
                q_out[t] = math.nan
                e_out[t] = math.nan
        alpha = 2.0 / (length + 1)
        acc, y, acc2, y2, k_prev, q, gt_prev, lt_prev, ok_prev, a, e = (
            load_member(st) if resume else fresh_member())
        for t in range(max(start, t_from), n):
            tau = t - start
            x = src[t]
            m_pre = math.nan
            x_lag = math.nan
            if fam != EMA and fam != DEMA:
                if pre:
                    m_pre = ma[t]
                elif window_ready(fam, length, tau):
                    ws = 0.0
                    wt = 0.0
                    for j in range(length):
                        if fam == KAMA:
                            ws += abs(src[t - j] - src[t - j - 1])
                        else:
                            v = src[t - j]
                            ws += v
                            if fam != HMA:
                                wt += mul(float(j), v)
                    m_pre = window_value(fam, length, ws, wt)
                if fam == KAMA and tau >= length:
                    x_lag = src[t - length]
            m, acc, y, acc2, y2, k_prev = ma_step(x, x_lag, m_pre, tau, fam, length, alpha, acc,
                                                  y, acc2, y2, k_prev)
            if want:
                ma[t] = m
            q_prev = q
            q, gt_prev, lt_prev, ok_prev = cross_step(m, close[t], tie, q, gt_prev, lt_prev,
                                                      ok_prev)
            a, e = member_equity(tau, cutout, e, a, r[t], q_prev, d)
            q_out[t] = q
            e_out[t] = e
        if keep:
            store_member(st, acc, y, acc2, y2, k_prev, q, gt_prev, lt_prev, ok_prev, a, e)

    @step
    def layer2_signal(num, den):
        # X_k = round2(N/D); on its own for the CPU sweep, which computes it once per member
        # set and the equity (equity_step) per family set.
        return round2(num / den)

    @step
    def layer2_step(num, den, first, s, a, r, x_prev, w0, d):
        # A bar of Layer 2 from its member sums N = Σ q·E and D = Σ E (summed in member
        # order): X_k = round2(N/D), and its equity's new (a, S_k). Returns (x, a, s).
        x = layer2_signal(num, den)
        a, s = equity_step(s, a, r, x_prev, first, w0, d)
        return x, a, s

    @jit
    def layer2_core(q, e, r, start, t_from, cutout, w, d, xout, sout, st, resume, keep):
        # X_k = round2(N/D), N and D summed in member order (spec 6), and its
        # Layer-2 equity S_k; the state row `st` as for member_core.
        n = xout.shape[0]
        x_prev, a, s = (st[L_X], st[L_A], st[L_S]) if resume else fresh_layer2()
        w0 = w if w > FLOOR else FLOOR
        for t in range(t_from, n):
            tau = t - start
            if tau < cutout:
                xout[t] = math.nan
                sout[t] = math.nan
                continue
            num = 0.0
            den = 0.0
            for i in range(N_MEMBERS):
                num += mul(q[i, t], e[i, t])
                den += e[i, t]
            x, a, s = layer2_step(num, den, tau == cutout, s, a, r[t], x_prev, w0, d)
            xout[t] = x
            sout[t] = s
            x_prev = x
        if keep:
            st[L_X] = x_prev
            st[L_A] = a
            st[L_S] = s

    @step
    def average_add(num, den, x, s):
        # One family's terms of Average_Signal = Σ cut(X_k)·S_k / Σ S_k (spec 7.3), added in
        # family order. cut(X_k) is 0 or ±1, so the product is exact: nothing to contract.
        return num + cut(x) * s, den + s

    @step
    def direction_step(u, u_prev, th_long, th_short, direction):
        # The direction machine (spec 7.4) on the bar's value u after u_prev: returns the new
        # direction and the bar's long and short events.
        up = u > th_long and u_prev <= th_long
        down = u < th_short and u_prev >= th_short
        before = direction
        if up:
            direction = 1.0
        if down:
            direction = -1.0
        return direction, up and before == -1.0, down and before == 1.0

    @jit
    def final_core(xs, ss, start, t_from, cutout, th_long, th_short, dsrc, shift,
                   avg, dirn, longs, shorts, st, resume, keep):
        n = avg.shape[0]
        for t in range(t_from, min(start, n)):
            avg[t] = math.nan
            dirn[t] = math.nan
            longs[t] = False
            shorts[t] = False
        direction = math.nan
        u_prev = math.nan
        v_prev = math.nan
        if resume:
            direction = st[F_DIR]
            u_prev = st[F_U]
            v_prev = st[F_V]
        for t in range(max(start, t_from), n):
            if t - start < cutout:
                a = math.nan
            else:
                num = 0.0
                den = 0.0
                for k in range(N_FAMILIES):
                    num, den = average_add(num, den, xs[k, t], ss[k, t])
                a = num / den
            avg[t] = a
            v = a if dsrc < 0 else xs[dsrc, t]
            if shift:
                u = v_prev
                v_prev = v
            else:
                u = v
            direction, longs[t], shorts[t] = direction_step(u, u_prev, th_long, th_short,
                                                            direction)
            dirn[t] = direction
            u_prev = u
        if keep:
            st[F_DIR] = direction
            st[F_U] = u_prev
            st[F_V] = v_prev

    return Cores(returns_row, window_rows, member_core, layer2_core, final_core, member_equity,
                 load_member, store_member, return_at, ma_step, cross_step, layer2_step,
                 layer2_signal, equity_step, fresh_member, fresh_layer2, window_value,
                 window_ready, growth_return, average_add, direction_step)
