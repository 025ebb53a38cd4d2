"""SIMD across symbols for parameter sweeps: a :class:`~gpu_trend.sweep_plan.SweepPlan`'s stages
for a block of :data:`SWEEP_LANES` symbols listed on the same bar.

The layout and the rules are those of :mod:`cpu_fallback.lanes` (read its docstring first):
inputs time-major (bar × lane), every loop over the lanes innermost, state and per-bar values
on the stack, each lane running the cores' own one-bar steps in their order, so every lane's
results are the bits of the scalar cores. Unlike a ``compute_atc`` block, a sweep block's
lanes share their listing bar ``t0``: a sweep has no few-bar path to bring later lanes up, so
the driver (:mod:`cpu_fallback.sweep`) puts only symbols listed together in a block.

The stages keep their rows between them, time-major in each thread's scratch: the returns of
each growth row (``r_t``, every bar), q of each q key (``q_t``: 0 or ±1, in one byte, so that
the Layer-2 sums read 9 bytes a member, lane and bar, not 16) and E of each equity key
(``e_t``), one *tile* of bars at a time (:func:`tile_bars`). A plan's q keys are many more than
one family's nine (282 on a grid of nine lengths × three robustness settings), so they are not
all stepped in one pass over the bars as ``compute_atc``'s nine are; each stage is a kernel of
its own, run on a tile, its state read and written back in arrays that last the block:

* ``member_lanes(fam, ...)``: the q keys of one batch of family ``fam`` (one compiled kernel
  per family, its window pass shared by the batch), q and the primary equity of each. It
  runs a tile :data:`SUB_BARS` bars at a time: the window pass of those bars first, then
  each key through all of them, its state on the stack for that while (double-buffered as
  :func:`cpu_fallback.lanes.flipped` says, so that no lane loop has a masked store), its q
  and E on the stack until they go to the tile rows in one copy;
* ``block_returns``, ``slot_lanes``: a growth row's returns; an equity key's E from a stored
  q (grids over λ, decay or cutout);
* ``layer2_sums``: a member set's N = Σ q·E and D = Σ E in member order and X_k =
  round2(N/D), into the set's tile row (``x_t``) and its int8 codes (``code_t``), once
  however many family sets read it;
* ``family_set_lanes``: a family set's six Layer-2 equities S_k from those X_k rows and, on
  the same bar, its Average_Signal (into ``avg_t`` and the outputs), X_k's codes into the
  outputs. S_k lives one bar: it is not stored (it is derived from X_k on access,
  :func:`cpu_fallback.sweep.layer2_equities`);
* ``direction_rows``: once every tile is done, each configuration's direction from its
  family set's Average_Signal (or one family's X_k) as the outputs hold them, a symbol's
  whole row at a time (every row it reads and writes is contiguous there; the events are
  derived from the direction when read);
* ``fresh_state``, ``before_listing``: a block's state before its listing bar, and its
  outputs on the bars before it.
"""

import math

import numba

from cpu_fallback.lanes import _stack, by_family, flipped, member_lane_step, window_pass_lanes
from gpu_trend.cores import DEMA, EMA, FLOOR, KAMA, MEMBER_STATE, N_FAMILIES, N_MEMBERS
from gpu_trend.sweep_plan import SIGNAL_NAN


def tile_bars(n_rows: int) -> int:
    """Bars a block's stages run at a time, for ``n_rows`` q and E rows: every stage runs on
    one tile of bars before the next tile (their state kept between tiles), so that a tile's
    rows of every key are still in cache when the Layer-2 sums read them: about 256 KB, in
    the second-level cache, on small grids; in the third-level one on grids of hundreds of
    keys. A power of two from 64 to 128: shorter tiles cost more calls than they save (16 and
    32 measured no faster on the 282-key lengths grid)."""
    fit = (1 << 18) // (max(n_rows, 1) * SWEEP_LANES * 8)
    return max(64, min(MAX_TILE, 1 << max(fit.bit_length() - 1, 0)))


#: The longest tile :func:`tile_bars` gives.
MAX_TILE = 128


#: Symbols per sweep block: two AVX2 vectors of float64 (one AVX-512 vector). Narrower than
#: ``compute_atc``'s blocks (:data:`cpu_fallback.lanes.LANES`): a sweep keeps a tile of every
#: key's q and E rows (564 on the lengths grid), which wider blocks push out of cache. On the
#: lengths grid, 500 symbols on two threads took 2.2-2.7 s at 8 lanes and 2.9-3.3 s at 16
#: (one thread alone, the stages were 12% faster at 16).
SWEEP_LANES = 8

#: Bars ``member_lanes`` steps a key through before the next key: the key's parameters, row
#: views and state are set up once for them, and the window sums of those bars wait on the
#: stack (16 × 18 rows × 8 lanes: 18 KB). One thread, the lengths grid's member passes took
#: 0.8x the time of one pass over the keys a bar (its state written in place, four to six
#: masked stores a lane vector); 8, 32 and 64 bars measured no better than 16.
SUB_BARS = 16


def _member_kernel(cores, mul, jit, inline_jit, fam):
    """The lane kernel of family ``fam``: q keys ``lo:hi`` of one batch through bars ta..tb−1."""
    window = fam != EMA and fam != DEMA
    window_pass, by_length = window_pass_lanes(fam, mul, inline_jit, SWEEP_LANES)
    state_rows, step = member_lane_step(cores, fam, inline_jit)
    flip = flipped(fam)
    lanes, sub, n_state = SWEEP_LANES, SUB_BARS, MEMBER_STATE
    n_sums, n_members = 2 * N_MEMBERS, N_MEMBERS
    n_sub_sums = sub * n_sums

    @inline_jit
    def key_bar(rows, u, t, t0, src_t, src_u, close_u, r_u, sums, length, alpha, tie, row,
                cutout, d, q_bar, e_bar, n_lanes):
        # One key's bar t (the sub-tile's u-th) on every lane, its q and E to the stack.
        tau = float(t - t0)
        x_now, c_now, r_now = src_u[u], close_u[u], r_u[u]
        lag = src_t[max(t - length, 0)]
        ws_i, wt_i = sums[u, 2 * row], sums[u, 2 * row + 1]
        q_out, e_out = q_bar[u], e_bar[u]
        for k in range(n_lanes):
            m, q, e = step(rows, k, x_now[k], c_now[k], lag[k], ws_i[k], wt_i[k], tau, length,
                           alpha, tie, r_now[k], cutout, d)
            q_out[k] = q
            e_out[k] = e

    @jit
    def kernel(src_t, close_t, r_t, t0, ta, tb, lens, lo, hi, q_len, q_tie, q_row, q_e, e_g,
               e_cut, e_d, mst, q_t, e_t):
        # One key at a time through a sub-tile of bars, its state on the stack in three
        # buffers as in cpu_fallback.lanes: the flipped fields in `even` (read on the
        # sub-tile's even bars, written on odd ones) and `odd`, the others in `keep`. Without
        # them, every flipped field would be a masked store (four to six a lane vector).
        keep = numba.carray(_stack(n_state, lanes), (n_state, lanes))
        even = numba.carray(_stack(n_state, lanes), (n_state, lanes))
        odd = numba.carray(_stack(n_state, lanes), (n_state, lanes))
        acc = numba.carray(_stack(2, lanes), (2, lanes))
        sums = numba.carray(_stack(n_sub_sums, lanes), (sub, n_sums, lanes))
        q_ptr, e_ptr = _stack(sub, lanes), _stack(sub, lanes)
        q_bar, e_bar = numba.carray(q_ptr, (sub, lanes)), numba.carray(e_ptr, (sub, lanes))
        q_from, e_from = numba.carray(q_ptr, sub * lanes), numba.carray(e_ptr, sub * lanes)
        by_len = numba.carray(_stack(n_members, 1), n_members)
        n_lanes = src_t.shape[1]
        size = q_t.shape[1] * lanes
        q_all, e_all = q_t.reshape(q_t.size), e_t.reshape(e_t.size)
        maxlen = by_length(lens, by_len)
        for u in range(sub):
            for r in range(n_sums):
                for k in range(lanes):
                    sums[u, r, k] = 0.0  # read (and discarded) before a window is full
        for ua in range(ta, tb, sub):
            n_u = min(sub, tb - ua)
            if window:
                for u in range(n_u):
                    t = ua + u
                    window_pass(src_t, t, min(maxlen, t if fam == KAMA else t + 1), by_len,
                                lens, sums[u], acc, n_lanes)
            src_u, close_u = src_t[ua:ua + n_u], close_t[ua:ua + n_u]
            for i in range(hi - lo):
                kk = lo + i
                length = q_len[kk]
                tie = q_tie[kk]
                j = q_e[kk]
                cutout = e_cut[j]
                d = e_d[j]
                r_u = r_t[e_g[j], ua:ua + n_u]
                alpha = 2.0 / (length + 1)
                row = q_row[kk]
                for f in range(n_state):
                    into = even if f in flip else keep
                    for k in range(lanes):
                        into[f, k] = mst[kk, f, k]
                for u in range(0, n_u, 2):  # two bars a turn: even -> odd, then odd -> even
                    key_bar(state_rows(keep, even, odd, 0), u, ua + u, t0, src_t, src_u,
                            close_u, r_u, sums, length, alpha, tie, row, cutout, d, q_bar,
                            e_bar, n_lanes)
                    if u + 1 < n_u:
                        key_bar(state_rows(keep, odd, even, 0), u + 1, ua + u + 1, t0, src_t,
                                src_u, close_u, r_u, sums, length, alpha, tie, row, cutout, d,
                                q_bar, e_bar, n_lanes)
                    else:  # an odd count: the last bar wrote the flipped fields to `odd`
                        for f in flip:
                            for k in range(lanes):
                                even[f, k] = odd[f, k]
                for f in range(n_state):
                    out = even if f in flip else keep
                    for k in range(lanes):
                        mst[kk, f, k] = out[f, k]
                # Out to the tile rows in one loop: the lane loops above store to the stack
                # only, so they need no run-time overlap checks with their inputs.
                m_u, at = n_u * lanes, (ua - ta) * lanes
                q_to = q_all[kk * size + at:kk * size + at + m_u]
                e_to = e_all[j * size + at:j * size + at + m_u]
                for x in range(m_u):
                    q_to[x] = int(q_from[x])  # 0 or ±1: stored exactly in one byte
                    e_to[x] = e_from[x]

    return kernel


def build_sweep_lanes(cores, mul, jit, inline_jit):
    """Compile the sweep's lane kernels (see the module docstring).

    Parameters
    ----------
    cores, mul, jit, inline_jit
        As for :func:`cpu_fallback.lanes.build_lanes`.

    Returns
    -------
    dict of compiled functions
        ``member_lanes(fam, src_t, close_t, r_t, t0, ta, tb, lens, lo, hi, q_len, q_tie, q_row,
        q_e, e_g, e_cut, e_d, mst, q_t, e_t)``, ``block_returns(close_t, growth, t0, n,
        r_out)``, ``fresh_state(mst, sst, lst)``, ``slot_lanes(q_t, r_t, t0, ta, tb,
        cutout, d, sst, e_out)``, ``layer2_sums(q_t, e_t, sq, se, t0, ta, n_t, cutout, x_t,
        code_t)``, ``family_set_lanes(x_t, code_t, sets, r_t, set_g, t0, ta, tb, cutout,
        w, set_d, lst, outs, n_real, f, xs, avg_t, avg)``, ``direction_rows(avg, xs, f, dsrc,
        t0, n, shift, th_long, th_short, outs, n_real, p, dirn)`` (every bar
        from ``t0``, after the tiles) and ``before_listing(t0, outs, n_real, f_lo, f_hi,
        p_row, xs, avg, dirn)``. The others run bars ``ta:tb`` of a block
        listed on bar ``t0``; a tile's rows
        (``q_t``, ``e_t``, ``x_t``, ``code_t``, ``avg_t``) are (..., tile,
        SWEEP_LANES), indexed from ``ta``; ``close_t``, ``src_t`` and ``r_t`` hold every bar;
        the state arrays (``mst`` (Kq, 11, SWEEP_LANES) and (…, 3, SWEEP_LANES) rows) are
        read at a tile's start and written at its end. ``outs`` holds the output row of each
        lane (lanes past ``n_real`` repeat a real one and write nothing).
    """
    lanes = SWEEP_LANES

    run = by_family([_member_kernel(cores, mul, jit, inline_jit, f) for f in range(N_FAMILIES)],
                    jit)

    @jit
    def member_lanes(fam, src_t, close_t, r_t, t0, ta, tb, lens, lo, hi, q_len, q_tie, q_row,
                     q_e, e_g, e_cut, e_d, mst, q_t, e_t):
        run(fam, (src_t, close_t, r_t, t0, ta, tb, lens, lo, hi, q_len, q_tie, q_row, q_e, e_g,
                  e_cut, e_d, mst, q_t, e_t))

    @jit
    def block_returns(close_t, growth, t0, n, r_out):
        # Cores.return_at in every lane (r is read from the bar after t0 on).
        n_lanes = close_t.shape[1]
        for t in range(t0 + 1, n):
            g = growth[t - t0]
            c_now, c_prev, out = close_t[t], close_t[t - 1], r_out[t]
            for k in range(n_lanes):
                out[k] = cores.growth_return(c_now[k], c_prev[k], g)
        if t0 < n:
            for k in range(n_lanes):
                r_out[t0, k] = math.nan

    @inline_jit
    def copy_rows(src, dst):
        # A stage's state rows (rows × SWEEP_LANES) between its state array and the stack.
        for r in range(src.shape[0]):
            for k in range(lanes):
                dst[r, k] = src[r, k]

    @jit
    def fresh_state(mst, sst, lst):
        # Every key's, equity key's and family set's families' state before the listing.
        row = numba.carray(_stack(MEMBER_STATE, 1), MEMBER_STATE)
        cores.store_member(row, *cores.fresh_member())
        x0, a0, s0 = cores.fresh_layer2()
        for k in range(lanes):
            for i in range(mst.shape[0]):
                for f in range(MEMBER_STATE):
                    mst[i, f, k] = row[f]
            for j in range(sst.shape[0]):
                sst[j, 0, k] = 0.0  # a
                sst[j, 1, k] = math.nan  # E
                sst[j, 2, k] = 0.0  # q before the listing bar
            for f in range(lst.shape[0]):
                for fam in range(N_FAMILIES):
                    lst[f, fam, 0, k] = x0
                    lst[f, fam, 1, k] = a0
                    lst[f, fam, 2, k] = s0

    @jit
    def slot_lanes(q_t, r_t, t0, ta, tb, cutout, d, sst, e_out):
        # gpu_sweep's member_slot in every lane: E of a stored q under another equity key.
        st = numba.carray(_stack(4, lanes), (4, lanes))
        s_a, s_e, s_q, e_now = st[0], st[1], st[2], st[3]
        n_lanes = q_t.shape[1]
        copy_rows(sst, st[:3])
        for t in range(ta, tb):
            tau = float(t - t0)
            q_row, r_row = q_t[t - ta], r_t[t]
            for k in range(n_lanes):
                a, e = cores.member_equity(tau, cutout, s_e[k], s_a[k], r_row[k], s_q[k], d)
                s_a[k] = a
                s_e[k] = e
                s_q[k] = float(q_row[k])
                e_now[k] = e
            out = e_out[t - ta]
            for k in range(n_lanes):
                out[k] = e_now[k]
        copy_rows(st[:3], sst)

    @inline_jit
    def three_rows(flat, keys, i, size, m):
        # The tile rows (m elements from 0) of members i, i + 1 and i + 2's keys.
        return (flat[keys[i] * size:keys[i] * size + m],
                flat[keys[i + 1] * size:keys[i + 1] * size + m],
                flat[keys[i + 2] * size:keys[i + 2] * size + m])

    @jit
    def layer2_sums(q_t, e_t, sq, se, t0, ta, n_t, cutout, x_t, code_t):
        # A member set's N = Σ q·E and D = Σ E on a tile's n_t bars, each bar's terms added in
        # member order as layer2_core adds them, then X_k = round2(N/D) into x_t (tile,
        # SWEEP_LANES), NaN before the cutout (as Cores.layer2_step computes it: once per
        # member set, not per family set using it), and its int8 code (encode_signals') into
        # code_t, which every family set using it copies out.
        # The tile's (bar, lane) elements as one loop, three members a pass: N and D are read
        # and written three times, not nine, and each pass still has many elements' add
        # chains in flight (all nine in one pass measured 1.7x slower: nine dependent adds an
        # element, eighteen input streams). N and D are kept on the stack, so the passes
        # need no run-time overlap checks with the rows they read.
        size = q_t.shape[1] * lanes
        m = n_t * lanes
        qa, ea = q_t.reshape(q_t.size), e_t.reshape(e_t.size)
        num = numba.carray(_stack(MAX_TILE, lanes), MAX_TILE * lanes)
        den = numba.carray(_stack(MAX_TILE, lanes), MAX_TILE * lanes)
        for x in range(m):
            num[x] = 0.0
            den[x] = 0.0
        for i in range(0, N_MEMBERS, 3):
            q0, q1, q2 = three_rows(qa, sq, i, size, m)
            e0, e1, e2 = three_rows(ea, se, i, size, m)
            for x in range(m):
                n_x = num[x] + mul(float(q0[x]), e0[x])
                d_x = den[x] + e0[x]
                n_x += mul(float(q1[x]), e1[x])
                d_x += e1[x]
                num[x] = n_x + mul(float(q2[x]), e2[x])
                den[x] = d_x + e2[x]
        xs, codes = x_t.reshape(x_t.size), code_t.reshape(code_t.size)
        for x in range(m):
            xs[x] = cores.layer2_signal(num[x], den[x])
        for x in range(min(max(t0 + cutout - ta, 0), n_t) * lanes):  # Layer 2 holds still
            xs[x] = math.nan                                          # before the cutout
        for x in range(m):  # r / 100 for an integer r: stored as r
            v = xs[x]
            codes[x] = SIGNAL_NAN if v != v else int(math.floor(v * 100.0 + 0.5))

    n_l2 = 3 * N_FAMILIES  # the six families' Layer-2 state rows, then N and D
    n_st = n_l2 + 2

    @jit
    def family_set_lanes(x_t, code_t, sets, r_t, set_g, t0, ta, tb, cutout, w, set_d, lst,
                         outs, n_real, f, xs, avg_t, avg):
        # Family set f's Layer 2 and Average_Signal on a tile: each family's S_k
        # (Cores.layer2_step's equity) on the X_k of its member set (row sets[fam] of x_t,
        # NaN before the cutout), and on the same bar Average_Signal's sums
        # (Cores.final_core's, by Cores.average_add, in family order), into avg_t (tile,
        # SWEEP_LANES) and row f of `avg`; X_k's codes (code_t, from layer2_sums) go out a
        # lane's row at a time.
        # S_k is neither stored nor kept past the bar (SweepResult derives it from X_k on
        # access). `lst` (6, 3, SWEEP_LANES): each family's x, a and S_k, read and written
        # back. The six families' equities are six independent chains per lane, stepped in
        # one pass over the bars.
        st = numba.carray(_stack(n_st, lanes), (n_st, lanes))
        num, den = st[n_l2], st[n_l2 + 1]
        n_lanes = avg_t.shape[1]
        copy_rows(lst.reshape((n_l2, lanes)), st[:n_l2])
        for t in range(ta, tb):
            tau = float(t - t0)
            live = tau >= cutout  # Layer 2 holds still (NaN out) before the cutout
            first = tau == cutout
            for k in range(n_lanes):
                num[k] = 0.0
                den[k] = 0.0
            for fam in range(N_FAMILIES):
                g = sets[fam]
                w0 = w[fam] if w[fam] > FLOOR else FLOOR
                d = set_d[g]
                x_row, r_row = x_t[g, t - ta], r_t[set_g[g], t]
                l_x, l_a, l_s = st[3 * fam], st[3 * fam + 1], st[3 * fam + 2]
                for k in range(n_lanes):
                    x0, a0, s0 = l_x[k], l_a[k], l_s[k]
                    x = x_row[k]
                    a, s = cores.equity_step(s0, a0, r_row[k], x0, first, w0, d)
                    l_x[k] = x if live else x0
                    l_a[k] = a if live else a0
                    l_s[k] = s if live else s0
                    num[k], den[k] = cores.average_add(num[k], den[k], x,
                                                       s if live else math.nan)
            out = avg_t[t - ta]
            if live:
                for k in range(n_lanes):
                    out[k] = num[k] / den[k]
            else:
                for k in range(n_lanes):
                    out[k] = math.nan
        copy_rows(st[:n_l2], lst.reshape((n_l2, lanes)))
        n_t = tb - ta  # the copies index from 0: an index that may be negative costs a select
        for k in range(n_real):
            a_row = avg[f, outs[k], ta:tb]
            for i in range(n_t):
                a_row[i] = avg_t[i, k]
            for fam in range(N_FAMILIES):
                x_row, c_g = xs[f, outs[k], fam, ta:tb], code_t[sets[fam]]
                for i in range(n_t):
                    x_row[i] = c_g[i, k]

    @jit
    def direction_rows(avg, xs, f, dsrc, t0, n, shift, th_long, th_short, outs, n_real, p,
                       dirn):
        # Configuration p's direction machine (Cores.direction_step) on bars t0..n−1, once the
        # block's tiles are done, from family set f's outputs: its Average_Signal (avg) or,
        # dsrc >= 0, family dsrc's X_k (xs, decoded as decode_signals does: the same bits).
        # A symbol's whole row at a time: every row it reads and writes is contiguous there
        # (1.7x faster than a tile's segment of each row), and its branches follow
        # crossings, which are rare. The direction is stored as an int8 code: 0 for NaN, ±1;
        # the events are not stored (gpu_trend.sweep.events_of derives them from it).
        for k in range(n_real):
            o = outs[k]
            d_row = dirn[p, o, t0:n]
            a_row, c_row = avg[f, o, t0:n], xs[f, o, max(dsrc, 0), t0:n]
            direction = u_prev = v_prev = math.nan
            for i in range(n - t0):  # from 0: no select for a negative index
                if dsrc < 0:
                    v = a_row[i]
                else:
                    c = c_row[i]
                    v = math.nan if c == SIGNAL_NAN else c / 100.0 + 0.0
                u = v_prev if shift else v
                v_prev = v
                direction = cores.direction_step(u, u_prev, th_long, th_short, direction)[0]
                u_prev = u
                d_row[i] = 1 if direction > 0.0 else (-1 if direction < 0.0 else 0)

    @jit
    def before_listing(t0, outs, n_real, f_lo, f_hi, p_row, xs, avg, dirn):
        # Every output of the block's lanes on the bars before their listing: NaN.
        for k in range(n_real):
            o = outs[k]
            for f in range(f_lo, f_hi):
                for t in range(t0):
                    avg[f, o, t] = math.nan
                for fam in range(N_FAMILIES):
                    for t in range(t0):
                        xs[f, o, fam, t] = SIGNAL_NAN
            for i in range(p_row.shape[0]):
                p = p_row[i]
                for t in range(t0):
                    dirn[p, o, t] = 0  # NaN

    return dict(member_lanes=member_lanes, block_returns=block_returns, fresh_state=fresh_state,
                slot_lanes=slot_lanes, layer2_sums=layer2_sums, family_set_lanes=family_set_lanes,
                direction_rows=direction_rows, before_listing=before_listing)
