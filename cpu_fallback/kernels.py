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

Only time is sequential. ``family_core`` runs in three phases so that each
recurrence keeps its state in registers: (A) the nine MAs on every bar into
``ma`` (9, T); (B) member by member, signal and Layer-1 equity, adding
q·E and E into the Layer-1 sums in member order; (C) bar by bar, X_k and
S_k. The launcher provides the scratch (``ma``, ``work`` (3, T), ``wbuf``
(2, max length)): NumPy arrays on the CPU, global-memory slices on the GPU.
"""

import math

import numba
import numpy as np

EMA, HMA, WMA, DEMA, LSMA, KAMA = range(6)
KAMA_FAST = 0.666
KAMA_SLOW = 0.064
CUT = 0.49
FLOOR = 0.25
#: Rows of the per-row work table: returns r_t, Layer-1 numerator and denominator.
R_ROW, NUM_ROW, DEN_ROW = range(3)
N_WORK = 3


def build_cores(jit):
    """Compile the ATC cores with ``jit`` (``numba.njit`` or a CUDA device jit).

    Returns
    -------
    family_core, final_core : compiled functions
    """

    @jit
    def round2(x):
        # Ties away from zero on y = fl(100 x), via an exact truncation;
        # floor(y + 0.5) would misround y = 0.49999999999999994. NaN first:
        # floor/ceil go through an integer.
        y = 100.0 * x
        if y != y:
            return y
        r = float(math.floor(y)) if y >= 0 else float(math.ceil(y))
        if abs(y - r) >= 0.5:
            r += 1.0 if y > 0 else -1.0
        return r / 100.0 + 0.0  # + 0.0 turns -0.0 into 0.0

    @jit
    def cut(x):
        if x > CUT:
            return 1.0
        if x < -CUT:
            return -1.0
        return 0.0

    @jit
    def ema_row(src, start, n, length, out, dema):
        # ta.ema: NaN until `length` values, SMA seed, then the recurrence in
        # Pine's operand order. With `dema`, `src` is E1 (may be `out` itself:
        # each bar is read before it is written) and the output is 2·E1 − E2.
        alpha = 2.0 / (length + 1)
        acc = 0.0
        y = math.nan
        for t in range(start, n):
            x = src[t]
            k = t - start
            if k < length - 1:
                acc += x
                out[t] = math.nan
                continue
            if k == length - 1:
                acc += x
                y = acc / length
            else:
                y = alpha * x + (1.0 - alpha) * y
            out[t] = 2.0 * x - y if dema else y

    @jit
    def window_rows(src, start, n, fam, lens, ma, wbuf):
        # SMA ("HMA"), WMA, LSMA and KAMA's noise for all nine members. One
        # backward pass per bar fills the running sums Σ s and Σ j·s (or
        # Σ|Δs|) for every window length; each member reads its own length.
        # Every window is summed afresh: no sliding-sum drift (spec 10).
        maxlen = 0
        for i in range(9):
            if lens[i] > maxlen:
                maxlen = lens[i]
        for t in range(start, n):
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
                    acc_t += j * v
                    wbuf[0, j] = acc_s
                    wbuf[1, j] = acc_t
            for i in range(9):
                length = lens[i]
                if length > jmax:
                    ma[i, t] = math.nan
                    continue
                ws = wbuf[0, length - 1]
                if fam == HMA:
                    ma[i, t] = ws / length  # the script's "HMA" is ta.sma (spec 3)
                elif fam == WMA:
                    ma[i, t] = (length * ws - wbuf[1, length - 1]) / (length * (length + 1) * 0.5)
                elif fam == LSMA:
                    if length == 1:
                        ma[i, t] = math.nan
                    else:
                        # Σ ω_i y_i, ω_i = 2(3i − ℓ + 2)/(ℓ(ℓ+1)), on the backward sums.
                        ma[i, t] = ((4.0 * length - 2.0) * ws - 6.0 * wbuf[1, length - 1]) \
                            / (length * (length + 1.0))
                else:
                    ma[i, t] = ws  # KAMA noise; kama_row turns it into the KAMA

    @jit
    def kama_row(src, start, n, length, row):
        # `row` holds the noise on entry and the KAMA on exit.
        k_prev = 0.0  # Pine's nz(kama[1]): KAMA starts from zero
        for t in range(start, n):
            noise = row[t]
            if t - start >= length:
                sig = abs(src[t] - src[t - length])
            else:
                sig = math.nan
            if noise == noise and noise != 0.0:
                ratio = sig / noise
            else:
                ratio = 0.0
            sm = ratio * (KAMA_FAST - KAMA_SLOW) + KAMA_SLOW
            sm = sm * sm
            k = k_prev + sm * (src[t] - k_prev)
            row[t] = k
            k_prev = k if k == k else 0.0

    @jit
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

    @jit
    def family_core(src, cls, growth, start, fam, lens, w, cutout, d, tie,
                    xout, sout, ma, work, wbuf, want, msig, meq):
        n = cls.shape[0]
        # Bars before the listing are NaN; outputs arrive uninitialised.
        for t in range(min(start, n)):
            xout[t] = math.nan
            sout[t] = math.nan
            if want:
                for i in range(9):
                    ma[i, t] = math.nan
                    msig[i, t] = math.nan
                    meq[i, t] = math.nan
        # Phase A: the nine member MAs on every bar, into ma (9, n).
        if fam == EMA:
            for i in range(9):
                ema_row(src, start, n, lens[i], ma[i], False)
        elif fam == DEMA:
            for i in range(9):
                # E1, then E2 seeded over E1's first `length` valid values (from
                # bar ℓ−1), written over E1 as DEMA = 2·E1 − E2 (valid from 2ℓ−2).
                ema_row(src, start, n, lens[i], ma[i], False)
                ema_row(ma[i], start + lens[i] - 1, n, lens[i], ma[i], True)
        else:
            window_rows(src, start, n, fam, lens, ma, wbuf)
            if fam == KAMA:
                for i in range(9):
                    kama_row(src, start, n, lens[i], ma[i])

        for t in range(start, n):
            tau = t - start
            if tau >= 1:
                work[R_ROW, t] = (cls[t] - cls[t - 1]) / cls[t - 1] * growth[tau]
            else:
                work[R_ROW, t] = math.nan
            work[NUM_ROW, t] = 0.0
            work[DEN_ROW, t] = 0.0

        # Phase B: per member, the crossover signal (tie rule of spec 4) and
        # the Layer-1 equity, state in registers; N and D summed in member order.
        for i in range(9):
            q = 0.0
            gt_prev = False
            lt_prev = False
            ok_prev = False
            a = 0.0
            e = math.nan
            for t in range(start, n):
                tau = t - start
                c = cls[t]
                m = ma[i, t]
                q_prev = q
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
                gt_prev = gt
                lt_prev = lt
                ok_prev = ok
                if tau < cutout:
                    e = math.nan
                else:
                    a, e = equity_step(e, a, work[R_ROW, t], q_prev, tau == cutout, 1.0, d)
                    work[NUM_ROW, t] += q * e
                    work[DEN_ROW, t] += e
                if want:
                    msig[i, t] = q
                    meq[i, t] = e

        # Phase C: family signal X_k and its Layer-2 equity S_k.
        x_prev = math.nan
        a = 0.0
        e = math.nan
        w0 = w if w > FLOOR else FLOOR
        for t in range(start, n):
            tau = t - start
            if tau < cutout:
                xout[t] = math.nan
                sout[t] = math.nan
                continue
            x = round2(work[NUM_ROW, t] / work[DEN_ROW, t])
            a, e = equity_step(e, a, work[R_ROW, t], x_prev, tau == cutout, w0, d)
            xout[t] = x
            sout[t] = e
            x_prev = x

    @jit
    def final_core(xs, ss, start, cutout, th_long, th_short, dsrc, shift,
                   avg, dirn, longs, shorts):
        n = avg.shape[0]
        for t in range(min(start, n)):
            avg[t] = math.nan
            dirn[t] = math.nan
            longs[t] = False
            shorts[t] = False
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
def run_cpu(src, cls, growth, starts, lens, weights, cutout, d, tie,
            th_long, th_short, dsrc, shift, xs, ss, avg, dirn, longs, shorts,
            want, mma, msig, meq):
    """Run every symbol in parallel; arrays are (S, T) / (S, 6, T) / (S, 54, T).

    Every output element is written (NaN / False before a symbol's listing),
    so outputs may be allocated uninitialised.
    """
    n_sym, n_bars = cls.shape
    maxlen = lens.max()
    for s in numba.prange(n_sym):
        work = np.empty((N_WORK, n_bars))
        wbuf = np.empty((2, maxlen))
        ma = np.empty((9, n_bars))
        for f in range(6):
            lo = 9 * f
            if want:
                family_core(src[s], cls[s], growth, starts[s], f, lens[f], weights[f], cutout,
                            d, tie, xs[s, f], ss[s, f], mma[s, lo:lo + 9], work, wbuf, want,
                            msig[s, lo:lo + 9], meq[s, lo:lo + 9])
            else:
                family_core(src[s], cls[s], growth, starts[s], f, lens[f], weights[f], cutout,
                            d, tie, xs[s, f], ss[s, f], ma, work, wbuf, want, ma, ma)
        final_core(xs[s], ss[s], starts[s], cutout, th_long, th_short, dsrc, shift,
                   avg[s], dirn[s], longs[s], shorts[s])
