"""SIMD across symbols: the CPU's whole-history kernel for blocks of up to :data:`LANES` symbols.

A block's inputs are copied time-major (bar × lane), and every loop over the block's lanes is
innermost, so LLVM's loop vectoriser turns each into packed AVX/AVX2/AVX-512 instructions:
one lane per symbol, as the GPU puts one thread per symbol. Each lane performs the IEEE
operations of the scalar cores in their order (the lane loops call the cores' one-bar steps
themselves), so the results are the same bits; where a step branches on a
lane's own bar count (a seed, the cutout, a window not yet full), the vectoriser computes both
sides and selects per lane.

What makes the loops vectorise, found by reading the compiled code (``benchmarks/RESULTS.md``):

* Numba runs no SLP vectoriser, so lanes are a loop, never unrolled scalars; a lane loop whose
  trip count is a compile-time constant gets fully unrolled first and then stays scalar, so
  the loops run to ``n_lanes``, a run-time value (a block's width, at most :data:`LANES`; the
  stack buffers are sized for :data:`LANES`).
* A block's working state lives on the stack (:func:`_stack`): LLVM knows a stack buffer
  aliases no argument, so it needs no run-time overlap checks (too many of which make it
  give up).
* One compiled kernel per family (the family is a closure constant): with the family known,
  each step's branches on it fold away; left to run time, they do not if-convert.
* Row views are taken outside the lane loops: an index such as ``(length − 1)·LANES + k`` is
  not provably non-negative, and Numba's per-element wraparound check becomes a per-lane
  select of addresses, which LLVM's cost model rejects.
* The one-bar steps are forced inline (``step_jit`` of :func:`gpu_trend.cores.build_cores`): a
  call left in a lane loop stops the vectoriser.
* No lane loop stores a value back where it read it unless every lane changes it: LLVM turns
  such a store into a masked one (``vmaskmovpd``), which AMD's cores run as microcode. A block
  starts when all its lanes are listed (no lane holds still), and the state fields a bar
  updates on some lanes only are double-buffered (:func:`flipped`): without its masked
  stores, ``compute_atc`` took 0.82–0.93× the time (``benchmarks/RESULTS.md``).

Each lane must compute every bar of the block's range: the driver
(:func:`cpu_fallback.backend.run_cpu`) brings lanes whose histories start later up to the
block's first bar with the few-bar path first, and sorts symbols by their first bar so that
this is rarely more than a few bars.
"""

import math

import numba
from numba import types
from numba.extending import intrinsic

from gpu_trend.cores import (DEMA, EMA, FLOOR, KAMA, L_A, L_S, L_X, LAYER2_STATE, M_A, M_ACC,
                             M_ACC2, M_E, M_GT, M_KAMA, M_LT, M_OK, M_Q, M_Y, M_Y2, MEMBER_STATE,
                             N_FAMILIES, N_MEMBERS)

#: Most symbols per block: eight AVX2 vectors of float64 (four AVX-512 ones). Each member's bar
#: costs a fixed overhead besides its lanes (its parameters, row views, the vectoriser's
#: run-time overlap checks and broadcasts), which wider blocks spread over more symbols:
#: ``compute_atc`` at 1,000 × 1,500 took 0.84× the time of 8 lanes at 16, 0.72× at 32 and
#: 0.85× at 64, whose state no longer fits the first-level cache (benchmarks/RESULTS.md).
LANES = 32


def flipped(fam):
    """The member state fields of family ``fam`` that a bar updates on some lanes only: an
    EMA's seed sum and seed, DEMA's second EMA's too, the crossover signal and the stale return.

    A lane loop that stores such a field back where it read it stores it only where it
    changed, and LLVM makes that a masked store (``vmaskmovpd``: 42 micro-ops and a 12-cycle
    throughput on AMD's Zen 3, against one for a plain store). So each of these fields has two
    copies, in two stack buffers: a bar reads one and writes the other (every lane: a plain
    store), and the next bar the other way round. Two buffers, not two rows of one, so that
    LLVM knows the rows read and written never overlap. (The sweep's 8-lane member kernel
    keeps one buffer: there the copies cost more than they save.)
    """
    seeds = {EMA: (M_ACC, M_Y), DEMA: (M_ACC, M_Y, M_ACC2, M_Y2)}.get(fam, ())
    return seeds + (M_Q, M_A)


_N_ROWS = N_MEMBERS * MEMBER_STATE + LAYER2_STATE  # a family's state rows: members, then Layer 2
_L2 = N_MEMBERS * MEMBER_STATE                      # where the Layer-2 rows start
# Per-bar rows: N and D of Layer 2, the family's X and S, one member's MA, q and E, and the
# bar's returns.
_NUM, _DEN, _X, _S, _MA, _Q, _E, _R = range(8)
_N_BAR = 8


@intrinsic
def _stack(typingctx, rows, cols):
    """A (rows, cols) float64 buffer on the stack; both sizes compile-time constants.

    LLVM knows it aliases nothing else, which the vectoriser needs to prove that a lane loop's
    stores do not feed its loads.
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
        return None
    n = rows.literal_value * cols.literal_value

    def codegen(context, builder, signature, args):
        with builder.goto_entry_block():
            return builder.alloca(context.get_value_type(types.float64),
                                  size=context.get_constant(types.intp, n))

    return types.CPointer(types.float64)(rows, cols), codegen


def window_pass_lanes(fam, mul, inline_jit, copy_lanes=0):
    """The lane form of ``Cores.window_rows``' backward pass for family ``fam``, forced inline.

    Returns ``(window_pass, by_length)``. ``by_length(lens, by_len)`` writes the nine members
    in order of length into ``by_len`` (as float64) and returns the longest length;
    ``window_pass(src_t, t, jmax, by_len, lens, sums, acc, n_lanes)`` then leaves in rows 2i
    and 2i + 1 of ``sums`` the window sums of member i (``lens[i]``) at bar ``t``, for every
    lane. ``copy_lanes``: if not 0, the number of lanes (a compile-time constant) the sums are
    copied out for, whatever ``n_lanes``: for blocks as narrow as the sweep's, the copy then
    compiles to plain scalar moves, where a loop to ``n_lanes`` would become masked stores
    (LLVM vectorises a loop it knows runs at most eight times by masking its tail).
    """

    @inline_jit
    def by_length(lens, by_len):
        maxlen = 0
        for i in range(N_MEMBERS):
            maxlen = max(maxlen, lens[i])
            p = i  # insertion sort
            while p > 0 and lens[int(by_len[p - 1])] > lens[i]:
                by_len[p] = by_len[p - 1]
                p -= 1
            by_len[p] = float(i)
        return maxlen

    @inline_jit
    def window_pass(src_t, t, jmax, by_len, lens, sums, acc, n_lanes):
        # The backward pass of Cores.window_rows for every lane: Σ s and Σ j·s (KAMA: Σ|Δs|)
        # of the last j + 1 bars, in that order of terms. Only the nine members' sums are kept
        # (rows 2i, 2i + 1 of `sums` for member i), all on the stack: a lane loop that stored
        # into an argument array would need run-time overlap checks with `src_t` at every j.
        for k in range(n_lanes):
            acc[0, k] = 0.0
            acc[1, k] = 0.0
        p = 0  # by_len: the members in order of length; the next to take its sums
        for j in range(jmax):
            fj = float(j)
            now = src_t[t - j]
            before = src_t[t - j - 1] if fam == KAMA else now
            for k in range(n_lanes):
                if fam == KAMA:
                    acc[0, k] = acc[0, k] + abs(now[k] - before[k])
                else:
                    v = now[k]
                    acc[0, k] = acc[0, k] + v
                    acc[1, k] = acc[1, k] + mul(fj, v)
            while p < N_MEMBERS and lens[int(by_len[p])] == j + 1:
                i = int(by_len[p])
                out_s = sums[2 * i]
                out_t = sums[2 * i + 1]
                for k in range(copy_lanes if copy_lanes else n_lanes):
                    out_s[k] = acc[0, k]
                    out_t[k] = acc[1, k]
                p += 1

    return window_pass, by_length


def member_lane_step(cores, fam, inline_jit):
    """One lane's bar of a member of family ``fam``, forced inline: both lane kernels (this
    module's and :mod:`cpu_fallback.sweep_lanes`) step their members through it.

    Returns ``(state_rows, step)``. ``state_rows(keep, rd, wr, b)`` is the member's state rows
    from row ``b`` of three stack buffers (in each, row ``b + f`` for field f): its 11 fields
    where the bar reads them, then where it writes the six that may flip: the family's
    :func:`flipped` fields from ``rd`` and to ``wr``, the others from and to ``keep`` (all
    three one buffer: every field read and written in place). Views are taken outside the
    lane loop: an index computed in it is not provably non-negative, see the module docstring.
    ``step(rows, k, x, c, lag, ws, wt, tau, length, alpha, tie, r, cutout, d)`` runs lane
    ``k``'s bar (source ``x``, close ``c``, KAMA's lagged source ``lag``, the window sums
    ``ws``/``wt``, the bar's return ``r``): ``Cores.ma_step``, ``cross_step`` and
    ``member_equity`` in the cores' order, the new state stored in the rows; it returns (MA,
    q, E).
    """
    window = fam != EMA and fam != DEMA
    # Whether each field `step` may write to `wr` flips (flipped(fam), the one list of them;
    # the kernels' copies in and out read it too): compile-time constants, so each view's
    # buffer is known to LLVM.
    flip = flipped(fam)
    assert set(flip) <= {M_ACC, M_Y, M_ACC2, M_Y2, M_Q, M_A}, flip
    f_acc, f_y, f_acc2, f_y2, f_q, f_a = (f in flip for f in (M_ACC, M_Y, M_ACC2, M_Y2, M_Q,
                                                               M_A))

    @inline_jit
    def state_rows(keep, rd, wr, b):
        return ((rd if f_acc else keep)[b + M_ACC], (rd if f_y else keep)[b + M_Y],
                (rd if f_acc2 else keep)[b + M_ACC2], (rd if f_y2 else keep)[b + M_Y2],
                keep[b + M_KAMA], (rd if f_q else keep)[b + M_Q], keep[b + M_GT],
                keep[b + M_LT], keep[b + M_OK], (rd if f_a else keep)[b + M_A], keep[b + M_E],
                (wr if f_acc else keep)[b + M_ACC], (wr if f_y else keep)[b + M_Y],
                (wr if f_acc2 else keep)[b + M_ACC2], (wr if f_y2 else keep)[b + M_Y2],
                (wr if f_q else keep)[b + M_Q], (wr if f_a else keep)[b + M_A])

    @inline_jit
    def step(rows, k, x, c, lag, ws, wt, tau, length, alpha, tie, r, cutout, d):
        (s_acc, s_y, s_acc2, s_y2, s_kama, s_q, s_gt, s_lt, s_ok, s_a, s_e,
         w_acc, w_y, w_acc2, w_y2, w_q, w_a) = rows
        m_pre = math.nan
        x_lag = math.nan
        if window:
            v = cores.window_value(fam, length, ws, wt)
            m_pre = v if cores.window_ready(fam, length, tau) else math.nan
            if fam == KAMA:
                x_lag = lag if tau >= length else math.nan
        q_prev = s_q[k]
        m, acc_, y, acc2, y2, k_prev = cores.ma_step(x, x_lag, m_pre, tau, fam, length, alpha,
                                                     s_acc[k], s_y[k], s_acc2[k], s_y2[k],
                                                     s_kama[k])
        q, gt, lt, ok = cores.cross_step(m, c, tie, q_prev, s_gt[k] != 0.0, s_lt[k] != 0.0,
                                         s_ok[k] != 0.0)
        a, e = cores.member_equity(tau, cutout, s_e[k], s_a[k], r, q_prev, d)
        w_acc[k] = acc_
        w_y[k] = y
        w_acc2[k] = acc2
        w_y2[k] = y2
        s_kama[k] = k_prev
        w_q[k] = q
        s_gt[k] = 1.0 if gt else 0.0
        s_lt[k] = 1.0 if lt else 0.0
        s_ok[k] = 1.0 if ok else 0.0
        w_a[k] = a
        s_e[k] = e
        return m, q, e

    return state_rows, step


def _family_kernel(cores, mul, jit, inline_jit, fam):
    """The lane kernel of family ``fam``: nine members and Layer 2 through bars t0..n−1."""
    window = fam != EMA and fam != DEMA
    window_pass, by_length = window_pass_lanes(fam, mul, inline_jit)
    state_rows, step = member_lane_step(cores, fam, inline_jit)
    n_rows, n_bar, lanes, n_sums, n_members = _N_ROWS, _N_BAR, LANES, 2 * N_MEMBERS, N_MEMBERS
    flip = flipped(fam)

    @inline_jit
    def member_bar(rows_i, x_now, c_now, lag, ws_i, wt_i, tf, start, length, alpha, tie, r_now,
                   cutout, d, bar, n_lanes):
        # A member's bar on every lane: its MA, q and E into `bar`, q·E and E added to N, D.
        num, den, ma_out, q_out, e_out = bar[_NUM], bar[_DEN], bar[_MA], bar[_Q], bar[_E]
        for k in range(n_lanes):
            tau = tf - start[k]
            m, q, e = step(rows_i, k, x_now[k], c_now[k], lag[k], ws_i[k], wt_i[k], tau, length,
                           alpha, tie, r_now[k], cutout, d)
            ma_out[k] = m
            q_out[k] = q
            e_out[k] = e
            num[k] += mul(q, e)
            den[k] += e

    @inline_jit
    def layer2_bar(rd, wr, tf, start, cutout, w0, d, bar, n_lanes):
        # Layer 2's bar on every lane, its state read from `rd` and written to `wr`.
        num, den, x_out, s_out, r_now = bar[_NUM], bar[_DEN], bar[_X], bar[_S], bar[_R]
        l_x, l_a, l_s = rd[_L2 + L_X], rd[_L2 + L_A], rd[_L2 + L_S]
        n_x, n_a, n_s = wr[_L2 + L_X], wr[_L2 + L_A], wr[_L2 + L_S]
        for k in range(n_lanes):
            tau = tf - start[k]
            x0, a0, s0 = l_x[k], l_a[k], l_s[k]
            x, a, s = cores.layer2_step(num[k], den[k], tau == cutout, s0, a0, r_now[k], x0, w0,
                                        d)
            live = tau >= cutout  # Layer 2 holds still (NaN out) before the cutout
            n_x[k] = x if live else x0
            n_a[k] = a if live else a0
            n_s[k] = s if live else s0
            x_out[k] = x if live else math.nan
            s_out[k] = s if live else math.nan

    @jit
    def kernel(src_t, close_t, growth, first, start, t0, n, lens, cutout, d, tie, w, n_real,
               syms, rows, mst, lst, xs, ss, want, mma, msig, meq):
        # The block's state rows: `rows[k]` of `mst` / `lst` for lane k (lanes past n_real repeat
        # a real lane and write nothing); outputs go to symbol `syms[k]`. On the stack, in three
        # buffers of the same layout: the flipped fields and Layer 2 in `even` (read on even bars,
        # written on odd ones) and `odd` (the other way round), the other fields in `keep`.
        keep = numba.carray(_stack(n_rows, lanes), (n_rows, lanes))
        even = numba.carray(_stack(n_rows, lanes), (n_rows, lanes))
        odd = numba.carray(_stack(n_rows, lanes), (n_rows, lanes))
        bar = numba.carray(_stack(n_bar, lanes), (n_bar, lanes))
        acc = numba.carray(_stack(2, lanes), (2, lanes))
        sums = numba.carray(_stack(n_sums, lanes), (n_sums, lanes))
        by_len = numba.carray(_stack(n_members, 1), n_members)
        n_lanes = src_t.shape[1]
        col = fam * N_MEMBERS
        for k in range(lanes):
            for i in range(N_MEMBERS):
                for f in range(MEMBER_STATE):
                    into = even if f in flip else keep
                    into[i * MEMBER_STATE + f, k] = mst[rows[k], col + i, f]
            for f in range(LAYER2_STATE):
                even[_L2 + f, k] = lst[rows[k], fam, f]
        maxlen = by_length(lens, by_len)
        for r in range(n_sums):
            for k in range(lanes):
                sums[r, k] = 0.0  # read (and discarded) before a window is full
        w0 = w if w > FLOOR else FLOOR
        x_out, s_out, ma_out, q_out, e_out, r_now = (bar[_X], bar[_S], bar[_MA], bar[_Q],
                                                     bar[_E], bar[_R])
        num, den = bar[_NUM], bar[_DEN]
        for t in range(t0, n):
            tf = float(t)
            is_odd = (t - t0) % 2 == 1
            if window:
                window_pass(src_t, t, min(maxlen, t if fam == KAMA else t + 1), by_len, lens,
                            sums, acc, n_lanes)
            x_now, c_now, c_prev = src_t[t], close_t[t], close_t[max(t - 1, 0)]
            for k in range(n_lanes):
                num[k] = 0.0
                den[k] = 0.0
                # Cores.return_at, lane by lane (its growth index is each lane's own τ)
                g = growth[max(t - first[k], 0)]
                r = cores.growth_return(c_now[k], c_prev[k], g)
                r_now[k] = r if t > first[k] else math.nan
            for i in range(N_MEMBERS):
                length = lens[i]
                alpha = 2.0 / (length + 1)
                ws_i = sums[2 * i]
                wt_i = sums[2 * i + 1]
                lag = src_t[max(t - length, 0)]
                b = i * MEMBER_STATE
                # Two calls, each with its buffers known (not picked at run time), so that LLVM
                # sees the rows read and written are in different buffers.
                if is_odd:
                    member_bar(state_rows(keep, odd, even, b), x_now, c_now, lag, ws_i, wt_i,
                               tf, start, length, alpha, tie, r_now, cutout, d, bar, n_lanes)
                else:
                    member_bar(state_rows(keep, even, odd, b), x_now, c_now, lag, ws_i, wt_i,
                               tf, start, length, alpha, tie, r_now, cutout, d, bar, n_lanes)
                if want:
                    for k in range(n_real):
                        mma[syms[k], col + i, t] = ma_out[k]
                        msig[syms[k], col + i, t] = q_out[k]
                        meq[syms[k], col + i, t] = e_out[k]
            if is_odd:
                layer2_bar(odd, even, tf, start, cutout, w0, d, bar, n_lanes)
            else:
                layer2_bar(even, odd, tf, start, cutout, w0, d, bar, n_lanes)
            for k in range(n_real):
                xs[syms[k], fam, t] = x_out[k]
                ss[syms[k], fam, t] = s_out[k]
        last = odd if (n - t0) % 2 == 1 and n > t0 else even  # where a next bar would read
        for k in range(n_real):
            for i in range(N_MEMBERS):
                for f in range(MEMBER_STATE):
                    b = i * MEMBER_STATE + f
                    mst[rows[k], col + i, f] = last[b, k] if f in flip else keep[b, k]
            for f in range(LAYER2_STATE):
                lst[rows[k], fam, f] = last[_L2 + f, k]

    return kernel


def by_family(kernels, jit):
    """``run(fam, args)``: ``kernels[fam](*args)`` as one compiled call, for six kernels each
    compiled with its family a closure constant (the family known, each step's branches on
    it fold away)."""
    k0, k1, k2, k3, k4, k5 = kernels

    @jit
    def run(fam, args):
        if fam == 0:
            k0(*args)
        elif fam == 1:
            k1(*args)
        elif fam == 2:
            k2(*args)
        elif fam == 3:
            k3(*args)
        elif fam == 4:
            k4(*args)
        else:
            k5(*args)

    return run


def build_lanes(cores, mul, jit, inline_jit):
    """The lane kernels of the six families behind one call, ``family_lanes(fam, ...)``.

    Parameters
    ----------
    cores : gpu_trend.cores.Cores
        Built with its one-bar steps forced inline.
    mul, jit
        As for :func:`gpu_trend.cores.build_cores`.
    inline_jit : decorator
        ``jit`` forcing the function inline (the window pass, which must be vectorised where
        it is called).

    Returns
    -------
    compiled function
        ``family_lanes(fam, src_t, close_t, growth, first, start, t0, n, lens, cutout, d, tie,
        w, n_real, syms, rows, mst, lst, xs, ss, want, mma, msig, meq)``: bars
        ``t0 .. n−1`` of family ``fam`` for a block whose inputs are ``src_t`` and ``close_t``
        (bars × lanes) and whose lanes have their listings at ``first`` (int64; ``start``, the
        same as float64), from and to their state rows.
    """
    kernels = tuple(_family_kernel(cores, mul, jit, inline_jit, f) for f in range(N_FAMILIES))

    run = by_family(kernels, jit)

    @jit
    def family_lanes(fam, src_t, close_t, growth, first, start, t0, n, lens, cutout, d, tie, w,
                     n_real, syms, rows, mst, lst, xs, ss, want, mma, msig, meq):
        run(fam, (src_t, close_t, growth, first, start, t0, n, lens, cutout, d, tie, w, n_real,
                  syms, rows, mst, lst, xs, ss, want, mma, msig, meq))

    return family_lanes
