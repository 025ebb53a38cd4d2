"""The ATC arithmetic, written once and compiled for two targets.

:func:`build_cores` takes a decorator and returns the two per-row cores:

* ``family_core`` runs one symbol × one family through every bar: the nine
  member MAs, their crossover signals and Layer-1 equities, the rounded
  family signal X_k and its Layer-2 equity S_k (spec sections 3–7.1).
* ``final_core`` runs one symbol: Average_Signal, the direction state
  machine and the long/short events (spec 7.3–7.4).

The CPU backend compiles them with ``numba.njit`` and runs them in parallel
over symbols (:func:`run_cpu`); the GPU backend (``gpu_trend.gpu``) compiles
the *same source* with ``numba.cuda.jit(device=True)`` and launches one
thread per (family, symbol). One source for both targets is what keeps the
two backends bit-for-bit on the same arithmetic.

Only time is sequential. Each row keeps its per-member state in a small
scratch table ``st`` (rows below, 9 member columns + 1 Layer-2 column) that
the launcher provides: a NumPy array on the CPU, ``cuda.local.array`` on
the GPU.
"""

import math

import numba
import numpy as np

# Rows of the scratch table.
Y1, Y2, ACC1, ACC2, Q, GTP, LTP, VP, AST, EST, WS, WT = range(12)
N_STATE = 12
N_COLS = 10  # nine members + the Layer-2 curve
L2 = 9       # column of the Layer-2 curve

EMA, HMA, WMA, DEMA, LSMA, KAMA = range(6)
KAMA_FAST = 0.666
KAMA_SLOW = 0.064
CUT = 0.49
FLOOR = 0.25


def build_cores(jit):
    """Compile the ATC cores with ``jit`` (``numba.njit`` or a CUDA device jit).

    Returns
    -------
    family_core, final_core : compiled functions
    """

    @jit
    def round2(x):
        # Ties away from zero on y = fl(100 x). trunc() and y - trunc(y) are
        # exact in floating point, unlike floor(y + 0.5).
        y = 100.0 * x
        r = math.trunc(y)
        if abs(y - r) >= 0.5:
            r += 1.0 if y > 0 else -1.0
        return r / 100.0

    @jit
    def cut(x):
        if x > CUT:
            return 1.0
        if x < -CUT:
            return -1.0
        return 0.0

    @jit
    def ema_step(st, row_y, row_acc, i, x, length, k):
        # k bars of the input have been seen before this one; SMA seed on
        # the length-th value, then the recurrence in Pine's operand order.
        if k < length - 1:
            st[row_acc, i] += x
            return math.nan
        if k == length - 1:
            st[row_acc, i] += x
            y = st[row_acc, i] / length
        else:
            alpha = 2.0 / (length + 1)
            y = alpha * x + (1.0 - alpha) * st[row_y, i]
        st[row_y, i] = y
        return y

    @jit
    def equity_step(st, i, tau, cutout, sig_prev, r, w, d):
        # One bar of eq(w, σ, R): the stale return `a` is kept when σ_{t-1}
        # is 0 or NaN, as the script does.
        if tau < cutout:
            return math.nan
        if sig_prev > 0:
            st[AST, i] = r
        elif sig_prev < 0:
            st[AST, i] = -r
        prev = st[EST, i]
        if tau == cutout or prev != prev:
            e = w if w > FLOOR else FLOOR
        else:
            e = prev * d * (1.0 + st[AST, i])
            if e < FLOOR:
                e = FLOOR
        st[EST, i] = e
        return e

    @jit
    def family_core(src, cls, growth, start, fam, lens, order, w, cutout, d, tie,
                    xout, sout, want, mma, msig, meq, st):
        n = cls.shape[0]
        for i in range(N_COLS):
            st[Y1, i] = math.nan
            st[Y2, i] = math.nan
            st[ACC1, i] = 0.0
            st[ACC2, i] = 0.0
            st[Q, i] = 0.0
            st[GTP, i] = 0.0
            st[LTP, i] = 0.0
            st[VP, i] = 0.0
            st[AST, i] = 0.0
            st[EST, i] = math.nan
        maxlen = lens[order[8]]
        windowed = fam == HMA or fam == WMA or fam == LSMA or fam == KAMA
        xprev = math.nan
        for t in range(start, n):
            tau = t - start
            c = cls[t]
            s = src[t]
            if tau >= 1:
                ret = (c - cls[t - 1]) / cls[t - 1]
            else:
                ret = math.nan
            r = ret * growth[tau]

            if windowed:
                # One backward pass serves all nine members: the running sums
                # reach each member's window length in ascending order. Each
                # window is summed afresh (no sliding sum drift, spec 10).
                for i in range(9):
                    st[WS, i] = math.nan
                    st[WT, i] = math.nan
                if fam == KAMA:
                    avail = tau  # ℓ differences need ℓ + 1 prices
                else:
                    avail = tau + 1
                jmax = maxlen if maxlen < avail else avail
                acc_s = 0.0
                acc_t = 0.0
                p = 0
                for j in range(jmax):
                    if fam == KAMA:
                        acc_s += abs(src[t - j] - src[t - j - 1])
                    else:
                        v = src[t - j]
                        acc_s += v
                        acc_t += j * v
                    while p < 9 and lens[order[p]] == j + 1:
                        st[WS, order[p]] = acc_s
                        st[WT, order[p]] = acc_t
                        p += 1

            num = 0.0
            den = 0.0
            tol = tie * abs(c)
            for i in range(9):
                length = lens[i]
                if fam == EMA:
                    m = ema_step(st, Y1, ACC1, i, s, length, tau)
                elif fam == HMA:
                    # The script's "HMA" family is ta.sma (spec 3).
                    m = st[WS, i] / length
                elif fam == WMA:
                    m = (length * st[WS, i] - st[WT, i]) / (length * (length + 1) * 0.5)
                elif fam == DEMA:
                    e1 = ema_step(st, Y1, ACC1, i, s, length, tau)
                    if tau >= length - 1:
                        e2 = ema_step(st, Y2, ACC2, i, e1, length, tau - (length - 1))
                    else:
                        e2 = math.nan
                    m = 2.0 * e1 - e2
                elif fam == LSMA:
                    if length == 1:
                        m = math.nan
                    else:
                        # Σ ω_i y_i with ω_i = 2(3i − ℓ + 2)/(ℓ(ℓ+1)) rewritten on
                        # the backward sums Σ s and Σ j·s.
                        m = ((4.0 * length - 2.0) * st[WS, i] - 6.0 * st[WT, i]) \
                            / (length * (length + 1.0))
                else:  # KAMA
                    noise = st[WS, i]
                    if tau >= length:
                        sig = abs(s - src[t - length])
                    else:
                        sig = math.nan
                    if noise == noise and noise != 0.0:
                        ratio = sig / noise
                    else:
                        ratio = 0.0
                    sm = ratio * (KAMA_FAST - KAMA_SLOW) + KAMA_SLOW
                    sm = sm * sm
                    prev = st[Y1, i]
                    if prev != prev:
                        prev = 0.0  # Pine's nz(): KAMA starts from zero
                    m = prev + sm * (s - prev)
                    st[Y1, i] = m

                # Crossover state machine with the tie rule of spec 4.
                q_prev = st[Q, i]
                valid = c == c and m == m
                rel = c - m
                gt = rel > tol
                lt = rel < -tol
                if valid and st[VP, i] > 0.0:
                    if gt and st[GTP, i] == 0.0:
                        st[Q, i] = 1.0
                    elif lt and st[LTP, i] == 0.0:
                        st[Q, i] = -1.0
                st[GTP, i] = 1.0 if gt else 0.0
                st[LTP, i] = 1.0 if lt else 0.0
                st[VP, i] = 1.0 if valid else 0.0
                q = st[Q, i]

                e = equity_step(st, i, tau, cutout, q_prev, r, 1.0, d)
                num += q * e
                den += e
                if want:
                    mma[i, t] = m
                    msig[i, t] = q
                    meq[i, t] = e

            if tau >= cutout:
                x = round2(num / den)
            else:
                x = math.nan
            xout[t] = x
            sout[t] = equity_step(st, L2, tau, cutout, xprev, r, w, d)
            xprev = x

    @jit
    def final_core(xs, ss, start, cutout, th_long, th_short, dsrc, shift,
                   avg, dirn, longs, shorts):
        n = avg.shape[0]
        direction = math.nan
        u_prev = math.nan
        v_prev = math.nan
        for t in range(start, n):
            if t - start < cutout:
                a = math.nan
            else:
                num = 0.0
                den = 0.0
                for k in range(6):
                    num += cut(xs[k, t]) * ss[k, t]
                    den += ss[k, t]
                a = num / den
            avg[t] = a
            v = a if dsrc < 0 else xs[dsrc, t]
            if shift:
                u = v_prev
                v_prev = v
            else:
                u = v
            up = u > th_long and u_prev <= th_long
            down = u < th_short and u_prev >= th_short
            before = direction
            if up:
                direction = 1.0
            if down:
                direction = -1.0
            longs[t] = up and before == -1.0
            shorts[t] = down and before == 1.0
            dirn[t] = direction
            u_prev = u

    return family_core, final_core


family_core, final_core = build_cores(numba.njit(cache=True))


@numba.njit(parallel=True, cache=True)
def run_cpu(src, cls, growth, starts, lens, order, weights, cutout, d, tie,
            th_long, th_short, dsrc, shift, xs, ss, avg, dirn, longs, shorts,
            want, mma, msig, meq):
    """Run every symbol in parallel; arrays are (S, T) / (S, 6, T) / (S, 54, T).

    All outputs must be pre-filled with NaN (False for the events): bars
    before a symbol's first valid close are never written.
    """
    n_sym = cls.shape[0]
    for s in numba.prange(n_sym):
        st = np.empty((N_STATE, N_COLS))
        for f in range(6):
            lo = 9 * f
            if want:
                mm = mma[s, lo:lo + 9]
                mg = msig[s, lo:lo + 9]
                me = meq[s, lo:lo + 9]
            else:
                mm = mma[0]
                mg = msig[0]
                me = meq[0]
            family_core(src[s], cls[s], growth, starts[s], f, lens[f], order[f],
                        weights[f], cutout, d, tie, xs[s, f], ss[s, f], want,
                        mm, mg, me, st)
        final_core(xs[s], ss[s], starts[s], cutout, th_long, th_short, dsrc, shift,
                   avg[s], dirn[s], longs[s], shorts[s])
