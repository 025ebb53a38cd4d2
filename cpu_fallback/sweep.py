"""The CPU driver of a parameter sweep: the stages of a plan in SIMD lanes, a block of symbols
per thread.

Symbols are sorted by their listing bar and cut into blocks of
:data:`~cpu_fallback.sweep_lanes.SWEEP_LANES` listed on the same bar (a sweep block has no
few-bar path to bring later listings up; a universe on one calendar makes full blocks). Each
thread runs one block through every stage of a :class:`~gpu_trend.sweep_plan.SweepPlan`, each a
kernel of :mod:`cpu_fallback.sweep_lanes`: the returns of each growth row; per batch one shared
window pass and, for each of its q keys, q and the equity of the key's primary slot (``q_e``)
in one pass, as in a single configuration's run; the Layer-1 equity of every other distinct
equity key (only on grids over λ, decay or cutout); then member set by member set, its Layer-2
sums N and D and X_k; last, family set by family set, its six S_k and its Average_Signal in
one pass; once every tile is done, the direction of every configuration. Each lane
performs the cores' arithmetic on the inputs :func:`cpu_fallback.backend.run_cpu` gives them
for a single configuration, so the outputs are the same bits.

Equities are computed per distinct (q, λ, decay, cutout), not per member slot: on a grid
over lengths and robustness most slots repeat a member another set has. Average_Signal is
computed and stored per family set, not per configuration: a grid over thresholds shares it.
S_k is not stored at all: :func:`layer2_equities` derives it from the stored X_k when the
result is read.

The driver counts its calls per symbol (``counts``): that is how the tests see that shared
work is done once.
"""

import math

import numba
import numpy as np

from cpu_fallback.backend import _inline_jit, _jit, _mul, _parallel_guard, cores
from cpu_fallback.sweep_lanes import SWEEP_LANES, build_sweep_lanes, tile_bars
from gpu_trend.cores import DEMA, EMA, FLOOR, MEMBER_STATE, N_FAMILIES
from gpu_trend.memory import F8, Footprint
from gpu_trend.sweep_plan import decode_signals

MEMORY = "host"
#: Columns of ``counts``: what one call of each stage computes.
STAGES = ("moving_averages", "window_passes", "layer1_equities", "layer2", "final")
MA, WINDOW, EQUITY, LAYER2, FINAL = range(len(STAGES))

_k = build_sweep_lanes(cores, _mul, _jit, _inline_jit)
member_lanes, block_returns, slot_lanes = _k["member_lanes"], _k["block_returns"], _k["slot_lanes"]
layer2_sums, family_set_lanes = _k["layer2_sums"], _k["family_set_lanes"]
direction_rows = _k["direction_rows"]
fresh_state, before_listing = _k["fresh_state"], _k["before_listing"]


@numba.njit(parallel=True, cache=True, error_model="numpy")  # as run_cpu's
def run_sweep_cpu(src, close, starts, blocks, order, separate, growth, b_fam, b_lens, b_lo,
                  q_len, q_tie, q_row, q_e, set_q, set_e, e_q, e_g, e_cut, e_d, set_g, set_cut,
                  set_d, f_set, f_w, p_f, p_long, p_short, p_dsrc,
                  p_shift, s0, f0, p_row, xs, avg, dirn, counts, tile):
    """Every stage of a sweep plan for every block of symbols, in parallel over blocks.

    ``close``/``src`` (S, T); block b is symbols ``order[blocks[b]:blocks[b + 1]]`` (at most
    SWEEP_LANES, listed on the same bar); the plan's arrays as in :class:`SweepPlan`; the outputs
    are the whole sweep's, ``xs`` (int8 codes, (F', S', 6, T)), ``avg`` (F', S', T) and
    ``dirn`` (int8 codes, (P', S', T)) (whole arrays, so that Numba
    compiles one layout): the call writes symbols ``s0:s0 + S`` of family sets ``f0:f0 + F``
    and of configurations ``p_row``, every element. ``counts`` (S, 5) receives the calls per
    stage. The stages run ``tile`` bars at a time (:func:`~cpu_fallback.sweep_lanes.tile_bars`).
    """
    n_sym, n = close.shape
    n_pool = numba.config.NUMBA_NUM_THREADS
    lanes = SWEEP_LANES
    n_q, n_e, n_g = q_len.shape[0], e_q.shape[0], growth.shape[0]
    inp_all = np.empty((n_pool, 2, n, lanes))
    r_all = np.empty((n_pool, n_g, n, lanes))
    q_all = np.empty((n_pool, n_q, tile, lanes), np.int8)  # q is 0 or ±1
    e_all = np.empty((n_pool, n_e, tile, lanes))
    x_all = np.empty((n_pool, set_q.shape[0], tile, lanes))
    code_all = np.empty((n_pool, set_q.shape[0], tile, lanes), np.int8)
    avg_all = np.empty((n_pool, tile, lanes))
    mst_all = np.empty((n_pool, n_q, MEMBER_STATE, lanes))
    sst_all = np.empty((n_pool, n_e, 3, lanes))
    lst_all = np.empty((n_pool, f_set.shape[0], N_FAMILIES, 3, lanes))
    for blk in numba.prange(blocks.shape[0] - 1):
        tid = numba.get_thread_id()
        lo = blocks[blk]
        n_real = blocks[blk + 1] - lo
        syms = np.empty(lanes, np.int64)
        outs = np.empty(lanes, np.int64)
        for k in range(lanes):  # lanes past n_real repeat the last symbol and write nothing
            syms[k] = order[lo + min(k, n_real - 1)]
            outs[k] = s0 + syms[k]
        t0 = min(starts[syms[0]], n)
        close_t = inp_all[tid, 0]
        src_t = inp_all[tid, 1] if separate else close_t
        for t in range(n):
            for k in range(lanes):
                close_t[t, k] = close[syms[k], t]
                if separate:
                    src_t[t, k] = src[syms[k], t]
        r_t, q_t, e_t = r_all[tid], q_all[tid], e_all[tid]
        x_t, code_t, avg_t = x_all[tid], code_all[tid], avg_all[tid]
        mst, sst, lst = mst_all[tid], sst_all[tid], lst_all[tid]
        for g in range(n_g):
            block_returns(close_t, growth[g], t0, n, r_t[g])
        fresh_state(mst, sst, lst)
        before_listing(t0, outs, n_real, f0, f0 + f_set.shape[0], p_row, xs, avg, dirn)
        for ta in range(t0, n, tile):
            tb = min(ta + tile, n)
            for b in range(b_fam.shape[0]):
                member_lanes(b_fam[b], src_t, close_t, r_t, t0, ta, tb, b_lens[b], b_lo[b],
                             b_lo[b + 1], q_len, q_tie, q_row, q_e, e_g, e_cut, e_d, mst, q_t,
                             e_t)
            for j in range(n_e):
                if q_e[e_q[j]] != j:  # not computed with its q
                    slot_lanes(q_t[e_q[j]], r_t[e_g[j]], t0, ta, tb, e_cut[j], e_d[j], sst[j],
                               e_t[j])
            for g in range(set_q.shape[0]):
                layer2_sums(q_t, e_t, set_q[g], set_e[g], t0, ta, tb - ta, set_cut[g], x_t[g],
                            code_t[g])
            for f in range(f_set.shape[0]):
                family_set_lanes(x_t, code_t, f_set[f], r_t, set_g, t0, ta, tb,
                                 set_cut[f_set[f, 0]], f_w[f], set_d, lst[f], outs, n_real,
                                 f0 + f, xs, avg_t, avg)
        for p in range(p_f.shape[0]):
            direction_rows(avg, xs, f0 + p_f[p], p_dsrc[p], t0, n, p_shift[p], p_long[p],
                           p_short[p], outs, n_real, p_row[p], dirn)
        for k in range(n_real):  # what each symbol's stages computed, once
            c = counts[syms[k]]
            for b in range(b_fam.shape[0]):
                if b_fam[b] != EMA and b_fam[b] != DEMA:
                    c[WINDOW] += 1
                c[MA] += b_lo[b + 1] - b_lo[b]
            c[EQUITY] += n_e
            c[LAYER2] += N_FAMILIES * f_set.shape[0]
            c[FINAL] += p_f.shape[0]


def _blocks(starts):
    """(blocks, order): symbols sorted by listing bar and cut into blocks of at most
    SWEEP_LANES listed on the same bar; block b is ``order[blocks[b]:blocks[b + 1]]``."""
    order = np.argsort(starts, kind="stable")
    listed = starts[order]
    edges = np.flatnonzero(np.diff(listed)) + 1  # where the listing bar changes
    cuts = [c for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(listed)])
            for c in range(lo, hi, SWEEP_LANES)]
    return np.array(cuts + [len(listed)], dtype=np.int64), order.astype(np.int64)


def scratch_footprint(n_bars: int, sizes: dict) -> Footprint:
    """Working bytes of a block: each pool thread's rows (the outputs are the caller's).

    Time-major, per lane: close and source and the returns of each growth row over every bar;
    one tile of the q (one byte) and E rows of every key, of the X row and X's codes (one
    byte) of every member set and of Average_Signal's row; the state of
    every key, equity key and family set's families.
    ``sizes``: :func:`gpu_trend.sweep_plan.plan_sizes` of the group.
    """
    rows = (2 + sizes["growth"]) * max(n_bars, 1)
    keys = sizes["q_keys"] + sizes["equity_keys"]
    byte_rows = sizes["q_keys"] + sizes["member_sets"]
    f8_rows = sizes["equity_keys"] + sizes["member_sets"] + 1 + -(-byte_rows // F8)
    tile = f8_rows * tile_bars(keys)
    state = (MEMBER_STATE * sizes["q_keys"] + 3 * sizes["equity_keys"]
             + 3 * N_FAMILIES * sizes["family_sets"])
    return Footprint(per_symbol=5 * F8, fixed=numba.config.NUMBA_NUM_THREADS * SWEEP_LANES
                     * F8 * (rows + tile + state))


def run_block(close, source, starts, plan, out, rows):
    """Run a sweep plan on one block of symbols.

    Parameters
    ----------
    close, source : (S, T) float64 NumPy
        NaN policy applied; ``source`` may be ``close``.
    starts : (S,) int64
    plan : gpu_trend.sweep_plan.SweepPlan
    out : dict
        The sweep's host outputs: ``family_signals`` (int8 codes,
        :data:`~gpu_trend.sweep_plan.SIGNAL_NAN`, (F, S', 6, T)), ``family_average`` (F, S', T)
        and ``direction`` (int8 codes, see
        :attr:`~gpu_trend.sweep.SweepResult.direction_code`, (P, S', T)), C-contiguous.
    rows : gpu_trend.sweep_plan.BlockRows
        Where the block goes in them: its first symbol, the plan's first family set and
        its configurations' rows.

    Returns
    -------
    (5,) int64
        Calls per stage (:data:`STAGES`), summed over the block's symbols.
    """
    counts = np.zeros((close.shape[0], len(STAGES)), dtype=np.int64)
    blocks, order = _blocks(np.asarray(starts, dtype=np.int64))
    p = plan
    with _parallel_guard():
        run_sweep_cpu(source, close, starts, blocks, order, source is not close, p.growth,
                      p.b_fam, p.b_lens, p.b_lo, p.q_len, p.q_tie, p.q_row, p.q_e, p.set_q,
                      p.set_e, p.e_q, p.e_g, p.e_cut, p.e_d, p.set_g, p.set_cut, p.set_d,
                      p.f_set, p.f_w, p.p_f, p.p_long, p.p_short,
                      p.p_dsrc, p.p_shift, rows.s0, rows.f0, rows.p_row,
                      out["family_signals"], out["family_average"], out["direction"], counts,
                      tile_bars(len(p.q_len) + len(p.e_q)))
    return counts.sum(axis=0)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _layer2_equities(close, starts, growth, cutout, w, d, xs):
    # `xs` holds X_k and is overwritten with S_k, bar by bar (a bar's X is read before its S
    # is written; the equity reads the bar before's X, kept in x_prev).
    n_sym, n = close.shape
    for s in numba.prange(n_sym):
        t0 = min(starts[s], n)
        r = np.empty(n)
        cores.returns_row(close[s], growth, t0, t0, r)  # as block_returns gives them
        for fam in range(N_FAMILIES):
            w0 = w[fam] if w[fam] > FLOOR else FLOOR
            x_prev, a, e = cores.fresh_layer2()
            row = xs[s, fam]
            for t in range(t0):
                row[t] = math.nan
            for t in range(t0, n):
                tau = float(t - t0)
                if tau < cutout:  # Layer 2 holds still (NaN out) before the cutout
                    row[t] = math.nan
                    continue
                x = row[t]
                a, e = cores.equity_step(e, a, r[t], x_prev, tau == cutout, w0, d)
                x_prev = x
                row[t] = e


def layer2_equities(codes, close, starts, growth, cutout, weights, decay):
    """The Layer-2 equities S_k of one family set from its stored X_k codes.

    S_k is a recurrence on X_k and the returns alone (``Cores.equity_step``, as
    ``layer2_lanes`` and ``compute_atc`` run it), so the sweep stores X_k and derives S_k when
    it is read: the same bits, at a fraction of the sweep's memory (S_k is float64, X_k one
    byte).

    Parameters
    ----------
    codes : (S, 6, W) int8
        X_k as the sweep stores it (:func:`gpu_trend.sweep_plan.encode_signals`).
    close : (S, W) float64
        The close the sweep ran on: NaN policy applied, on the sweep's bar axis.
    starts : (S,) int64
        Listing bars on that axis.
    growth : (W,) float64
    cutout : int
    weights : (6,) float64
    decay : float
        As in :class:`~gpu_trend.cores.KernelParams`.

    Returns
    -------
    (S, 6, W) float64
    """
    out = decode_signals(codes)  # X_k, which the kernel turns into S_k in place
    with _parallel_guard():
        _layer2_equities(np.ascontiguousarray(close, dtype=np.float64),
                         np.asarray(starts, dtype=np.int64), growth, cutout,
                         np.asarray(weights, dtype=np.float64), decay, out)
    return out
