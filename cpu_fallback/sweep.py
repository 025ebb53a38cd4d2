"""The CPU driver of a parameter sweep: the ATC cores under ``numba.njit``, one symbol per thread.

Each thread runs one symbol through every stage of a :class:`~gpu_trend.sweep_plan.SweepPlan`:
the returns of each growth row; per batch one shared window pass (``Cores.window_rows``) and
``member_core`` for each of its q keys, which gives q and the equity of the key's primary
slot (``q_e``) in one pass, as in a single configuration's run; the Layer-1 equity of every
other distinct equity key (``member_slot``, only on grids over λ, decay or cutout); then
member set by member set, its Layer-2 sums N and D, read from the nine rows where they are
(``layer2_sums``), and X_k and S_k for every family set that reads it (``layer2_rows``:
``layer2_core``'s arithmetic, :mod:`gpu_trend.sweep_cores`); last ``final_core`` for every
configuration. Every core sees the inputs :func:`cpu_fallback.backend.run_cpu` gives it for
a single configuration, so the outputs are the same bits.

Equities are computed per distinct (q, λ, decay, cutout), not per member slot: on a grid
over lengths and robustness most slots repeat a member another set has, and an equity pass
costs about a third of a member pass (a profile of this choice and of the copies is in
benchmarks/RESULTS.md, issue 12).

The driver counts its calls per symbol (``counts``): that is how the tests see that shared
work is done once.
"""

import numba
import numpy as np

from cpu_fallback.backend import _jit, _mul, _parallel_guard, cores
from gpu_trend.cores import DEMA, EMA, FINAL_STATE, MEMBER_STATE, N_MEMBERS
from gpu_trend.memory import F8, Footprint
from gpu_trend.sweep_cores import build_sweep_cores

MEMORY = "host"
#: Columns of ``counts``: what one call of each stage computes.
STAGES = ("moving_averages", "window_passes", "layer1_equities", "layer2", "final")
MA, WINDOW, EQUITY, LAYER2, FINAL = range(len(STAGES))

member_slot, layer2_sums, layer2_rows = build_sweep_cores(_jit, _mul, cores)


@numba.njit(parallel=True, cache=True, error_model="numpy")  # as run_cpu's
def run_sweep_cpu(src, close, starts, growth, b_fam, b_lens, b_lo, q_len, q_tie, q_row, q_e,
                  set_q, set_e, e_q, e_g, e_cut, e_d, set_g, set_cut, set_d, set_lo, use_f,
                  use_fam, f_set, f_w, p_f, p_long, p_short, p_dsrc, p_shift, s0, f0, p_row,
                  xs, ss, avg, dirn, longs, shorts, counts):
    """Every stage of a sweep plan for every symbol, in parallel over symbols.

    ``close``/``src`` (S, T); the plan's arrays as in :class:`SweepPlan`; the outputs are
    the whole sweep's, ``xs``, ``ss`` (F', S', 6, T) and ``avg``, ``dirn``, ``longs``,
    ``shorts`` (P', S', T) (whole arrays, so that Numba compiles one layout): the block
    writes symbols ``s0:s0 + S`` of family sets ``f0:f0 + F`` and of configurations
    ``p_row``, every element. ``counts`` (S, 5) receives the calls per stage.
    """
    n_sym, n_bars = close.shape
    n_q = q_len.shape[0]
    maxlen = max(b_lens.max(), 1)
    n_pool = numba.config.NUMBA_NUM_THREADS
    r_all = np.empty((n_pool, growth.shape[0], n_bars))
    q_all = np.empty((n_pool, n_q, n_bars), dtype=np.int8)
    e_all = np.empty((n_pool, e_q.shape[0], n_bars))
    sums_all = np.empty((n_pool, 2, n_bars))
    ma_all = np.empty((n_pool, N_MEMBERS, n_bars))
    wbuf_all = np.empty((n_pool, 2, maxlen))
    # State rows the cores take; a sweep neither resumes nor keeps them.
    mst = np.empty(MEMBER_STATE)
    fst = np.empty(FINAL_STATE)
    for s in numba.prange(n_sym):
        tid = numba.get_thread_id()
        r, qk, ek, ma, wbuf = r_all[tid], q_all[tid], e_all[tid], ma_all[tid], wbuf_all[tid]
        num, den = sums_all[tid, 0], sums_all[tid, 1]
        start = starts[s]
        o = s0 + s
        for g in range(growth.shape[0]):
            cores.returns_row(close[s], growth[g], start, 0, r[g])
        for b in range(b_fam.shape[0]):
            fam = b_fam[b]
            pre = fam != EMA and fam != DEMA
            if pre:
                cores.window_rows(src[s], start, 0, n_bars, fam, b_lens[b], ma, wbuf)
                counts[s, WINDOW] += 1
            for k in range(b_lo[b], b_lo[b + 1]):
                j = q_e[k]
                cores.member_core(src[s], close[s], r[e_g[j]], start, 0, fam, q_len[k],
                                  e_cut[j], e_d[j], q_tie[k], ma[q_row[k]], pre, False, qk[k],
                                  ek[j], mst, False, False)
                counts[s, MA] += 1
                counts[s, EQUITY] += 1
        for j in range(e_q.shape[0]):
            k = e_q[j]
            if q_e[k] != j:  # not computed with its q
                member_slot(qk[k], r[e_g[j]], start, e_cut[j], e_d[j], qk[k], ek[j])
                counts[s, EQUITY] += 1
        for g in range(set_q.shape[0]):
            for i in range(N_MEMBERS):  # N and D once per member set, whatever its weights
                layer2_sums(qk[set_q[g, i]], ek[set_e[g, i]], i == 0, start, num, den)
            for u in range(set_lo[g], set_lo[g + 1]):
                f, fam = f0 + use_f[u], use_fam[u]
                layer2_rows(num, den, r[set_g[g]], start, set_cut[g], f_w[use_f[u], fam],
                            set_d[g], xs[f, o, fam], ss[f, o, fam])
                counts[s, LAYER2] += 1
        for p in range(p_f.shape[0]):
            f, j = p_f[p], p_row[p]
            cores.final_core(xs[f0 + f, o], ss[f0 + f, o], start, 0, set_cut[f_set[f, 0]],
                             p_long[p], p_short[p], p_dsrc[p], p_shift[p], avg[j, o],
                             dirn[j, o], longs[j, o], shorts[j, o], fst, False, False)
            counts[s, FINAL] += 1


def scratch_footprint(n_bars: int, sizes: dict, max_len: int) -> Footprint:
    """Working bytes of a block: each pool thread's rows (the outputs are the caller's).

    Per bar: the growth-applied returns, the q row of every distinct MA, the E row of every
    distinct equity, nine window values and a member set's Layer-2 sums N and D; plus the
    window-sum buffer. ``sizes``: :func:`gpu_trend.sweep_plan.plan_sizes` of the group.
    """
    per_bar = (sizes["growth"] * F8 + sizes["q_keys"] + sizes["equity_keys"] * F8
               + (N_MEMBERS + 2) * F8)
    per_thread = per_bar * n_bars + 2 * max_len * F8
    return Footprint(per_symbol=5 * F8, fixed=numba.config.NUMBA_NUM_THREADS * per_thread)


def run_block(close, source, starts, plan, out, rows):
    """Run a sweep plan on one block of symbols.

    Parameters
    ----------
    close, source : (S, T) float64 NumPy
        NaN policy applied; ``source`` may be ``close``.
    starts : (S,) int64
    plan : gpu_trend.sweep_plan.SweepPlan
    out : dict
        The sweep's host outputs: ``family_signals``, ``family_equities`` (F, S', 6, T) and
        ``average_signal``, ``direction``, ``long_events``, ``short_events`` (P, S', T),
        C-contiguous.
    rows : gpu_trend.sweep_plan.BlockRows
        Where the block goes in them: its first symbol, the plan's first family set and
        its configurations' rows.

    Returns
    -------
    (5,) int64
        Calls per stage (:data:`STAGES`), summed over the block's symbols.
    """
    counts = np.zeros((close.shape[0], len(STAGES)), dtype=np.int64)
    p = plan
    with _parallel_guard():
        run_sweep_cpu(source, close, starts, p.growth, p.b_fam, p.b_lens, p.b_lo, p.q_len,
                      p.q_tie, p.q_row, p.q_e, p.set_q, p.set_e, p.e_q, p.e_g, p.e_cut, p.e_d,
                      p.set_g, p.set_cut, p.set_d, p.set_lo,
                      p.use_f, p.use_fam, p.f_set, p.f_w, p.p_f, p.p_long, p.p_short,
                      p.p_dsrc, p.p_shift, rows.s0, rows.f0, rows.p_row,
                      out["family_signals"], out["family_equities"], out["average_signal"],
                      out["direction"], out["long_events"], out["short_events"], counts)
    return counts.sum(axis=0)
