"""The GPU driver of a parameter sweep: the ATC cores under ``numba.cuda``, one thread per row.

Five launches per block of symbols run the stages of a
:class:`~gpu_trend.sweep_plan.SweepPlan`, each thread one (stage row, symbol) through all
bars, on time-major arrays (symbol last) as in :mod:`gpu_trend.gpu`:

* ``returns_kernel``: (growth row, symbol);
* ``member_kernel``: (q key, symbol): ``member_core`` with the MA summed in the thread, q
  and E into the key's primary slot;
* ``slot_kernel``: (member slot, symbol): every other slot copies its key's q and runs the
  Layer-1 equity (``member_slot``);
* ``layer2_kernel``: (family set × family, symbol): ``layer2_core`` on its member set's slots;
* ``final_kernel``: (configuration, symbol): ``final_core``.

Threads of a warp hold consecutive symbols of one row, so the branches of a stage never
diverge. Each thread adds one to its stage's counter (the tests' proof of shared work).
Nothing here runs at import time; under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in
Numba's simulator on NumPy arrays.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from .arrays import namespace, to_host
from .cores import FINAL_STATE, LAYER2_STATE, MEMBER_STATE, N_FAMILIES, N_MEMBERS
from .gpu import THREADS, _launch_stream, device_cores
from .memory import F8, Footprint
from .sweep_plan import (encode_directions, encode_signals, output_bytes_per_bar,
                         slot_bytes_per_bar)

MEMORY = "device"
MA, WINDOW, EQUITY, LAYER2, FINAL = range(5)


def _grid(n_threads, stream):
    blocks = max((n_threads + THREADS - 1) // THREADS, 1)
    return (blocks, THREADS) if stream is None else (blocks, THREADS, stream)


@functools.lru_cache(maxsize=None)
def _kernels():
    device, mul, core = device_cores()

    @device
    def member_slot(q_src, r, start, cutout, d, q_out, e_out):
        # member_core's equity on a stored q row (a slot whose λ, decay or cutout differ from
        # its key's primary slot): q copied to q_out, E from the listing on (Layer 2 starts at
        # the cutout, counted from the listing, so earlier bars are never read).
        a = 0.0
        e = math.nan
        q_prev = 0.0  # member_core's q before the listing bar
        for t in range(start, q_out.shape[0]):
            q = q_src[t]
            a, e = core.member_equity(t - start, cutout, e, a, r[t], q_prev, d)
            q_out[t] = q
            e_out[t] = e
            q_prev = q

    @cuda.jit
    def returns_kernel(closeT, growth, starts, rT):
        n_sym = closeT.shape[1]
        i = cuda.grid(1)
        if i >= growth.shape[0] * n_sym:
            return
        g = i // n_sym
        s = i - g * n_sym
        core.returns_row(closeT[:, s], growth[g], starts[s], 0, rT[g, :, s])

    @cuda.jit
    def member_kernel(srcT, closeT, rT, starts, q_fam, q_len, q_tie, q_set, q_member, set_g,
                      set_cut, set_d, ma, st, qT, eT, counts):
        n_sym = closeT.shape[1]
        i = cuda.grid(1)
        if i >= q_len.shape[0] * n_sym:
            return
        k = i // n_sym
        s = i - k * n_sym
        g, m = q_set[k], q_member[k]
        # `ma` and `st` are dummies member_core never touches (no stored MA, no state).
        core.member_core(srcT[:, s], closeT[:, s], rT[set_g[g], :, s], starts[s], 0, q_fam[k],
                         q_len[k], set_cut[g], set_d[g], q_tie[k], ma, False, False,
                         qT[g, m, :, s], eT[g, m, :, s], st, False, False)
        cuda.atomic.add(counts, MA, 1)
        cuda.atomic.add(counts, EQUITY, 1)

    @cuda.jit
    def slot_kernel(rT, starts, set_q, q_set, q_member, set_g, set_cut, set_d, qT, eT, counts):
        n_sym = rT.shape[2]
        i = cuda.grid(1)
        if i >= set_q.shape[0] * N_MEMBERS * n_sym:
            return
        j = i // n_sym
        s = i - j * n_sym
        g = j // N_MEMBERS
        m = j - g * N_MEMBERS
        k = set_q[g, m]
        if q_set[k] == g and q_member[k] == m:
            return  # the primary slot: member_kernel filled it
        member_slot(qT[q_set[k], q_member[k], :, s], rT[set_g[g], :, s], starts[s], set_cut[g],
                    set_d[g], qT[g, m, :, s], eT[g, m, :, s])
        cuda.atomic.add(counts, EQUITY, 1)

    @cuda.jit
    def layer2_kernel(qT, eT, rT, starts, set_g, set_cut, set_d, f_set, f_w, st, xsT, ssT,
                      counts):
        n_sym = rT.shape[2]
        i = cuda.grid(1)
        if i >= f_set.shape[0] * N_FAMILIES * n_sym:
            return
        j = i // n_sym
        s = i - j * n_sym
        f = j // N_FAMILIES
        fam = j - f * N_FAMILIES
        g = f_set[f, fam]
        core.layer2_core(qT[g, :, :, s], eT[g, :, :, s], rT[set_g[g], :, s], starts[s], 0,
                         set_cut[g], f_w[f, fam], set_d[g], xsT[f, fam, :, s], ssT[f, fam, :, s],
                         st, False, False)
        cuda.atomic.add(counts, LAYER2, 1)

    @cuda.jit
    def final_kernel(xsT, ssT, starts, set_cut, f_set, p_f, p_long, p_short, p_dsrc, p_shift, st,
                     avgT, dirT, longT, shortT, counts):
        n_sym = avgT.shape[2]
        i = cuda.grid(1)
        if i >= p_f.shape[0] * n_sym:
            return
        p = i // n_sym
        s = i - p * n_sym
        f = p_f[p]
        core.final_core(xsT[f, :, :, s], ssT[f, :, :, s], starts[s], 0, set_cut[f_set[f, 0]],
                        p_long[p], p_short[p], p_dsrc[p], p_shift[p], avgT[p, :, s], dirT[p, :, s],
                        longT[p, :, s], shortT[p, :, s], st, False, False)
        cuda.atomic.add(counts, FINAL, 1)

    return returns_kernel, member_kernel, slot_kernel, layer2_kernel, final_kernel


def scratch_footprint(n_bars: int, sizes: dict, *, separate_source: bool,
                      input_copies: int) -> Footprint:
    """Device bytes of a block per symbol: the inputs (time-major and as fed), the stage
    rows, and the outputs time-major and symbol-major (before they come down)."""
    n_in = 2 if separate_source else 1
    per_bar = (n_in * (1 + input_copies) * F8 + slot_bytes_per_bar(sizes)
               + 2 * output_bytes_per_bar(sizes))
    return Footprint(per_symbol=per_bar * n_bars + 8, fixed=64 * 1024)


def run_block(close, source, starts, plan, out, rows):
    """Run a sweep plan's kernels on one block of symbols; outputs come down to ``out``.

    Parameters
    ----------
    close, source : (S, T) float64
        CuPy arrays (NumPy under the CUDA simulator), NaN policy applied; ``source`` may be
        ``close``.
    starts : (S,) int64 NumPy
    plan : gpu_trend.sweep_plan.SweepPlan
    out, rows
        As for :func:`cpu_fallback.sweep.run_block`.

    Returns
    -------
    (5,) int64
        Threads run per stage (``WINDOW`` stays 0: each thread sums its own windows).
    """
    xp = namespace(close)
    returns_kernel, member_kernel, slot_kernel, layer2_kernel, final_kernel = _kernels()
    n_sym, n_bars = close.shape
    p = plan
    dev = {name: xp.asarray(getattr(p, name)) for name in p._fields}
    closeT = xp.ascontiguousarray(close.T)
    srcT = closeT if source is close else xp.ascontiguousarray(source.T)
    starts_d = xp.asarray(starts)
    n_g, n_sets, n_f, n_p = len(p.growth), len(p.set_q), len(p.f_set), len(p.p_f)
    # Every element read later is written first (bars before a listing are never read).
    rT = xp.empty((n_g, n_bars, n_sym))
    qT = xp.empty((n_sets, N_MEMBERS, n_bars, n_sym), dtype=np.int8)
    eT = xp.empty((n_sets, N_MEMBERS, n_bars, n_sym))
    xsT = xp.empty((n_f, N_FAMILIES, n_bars, n_sym))
    ssT = xp.empty((n_f, N_FAMILIES, n_bars, n_sym))
    avgT = xp.empty((n_p, n_bars, n_sym))
    dirT = xp.empty((n_p, n_bars, n_sym))
    longT = xp.empty((n_p, n_bars, n_sym), dtype=np.bool_)
    shortT = xp.empty((n_p, n_bars, n_sym), dtype=np.bool_)
    counts = xp.zeros(5, dtype=np.int64)
    ma = xp.empty(1)
    mst, lst, fst = (xp.empty(k) for k in (MEMBER_STATE, LAYER2_STATE, FINAL_STATE))
    if n_sym and n_bars:
        stream = _launch_stream(xp)
        arg = (lambda a: a) if xp is np else (lambda a: cuda.as_cuda_array(a, sync=False))
        d = {k: arg(v) for k, v in dev.items()}
        returns_kernel[_grid(n_g * n_sym, stream)](arg(closeT), d["growth"], arg(starts_d),
                                                   arg(rT))
        member_kernel[_grid(len(p.q_len) * n_sym, stream)](
            arg(srcT), arg(closeT), arg(rT), arg(starts_d), d["q_fam"], d["q_len"], d["q_tie"],
            d["q_set"], d["q_member"], d["set_g"], d["set_cut"], d["set_d"], arg(ma), arg(mst),
            arg(qT), arg(eT), arg(counts))
        slot_kernel[_grid(n_sets * N_MEMBERS * n_sym, stream)](
            arg(rT), arg(starts_d), d["set_q"], d["q_set"], d["q_member"], d["set_g"],
            d["set_cut"], d["set_d"], arg(qT), arg(eT), arg(counts))
        layer2_kernel[_grid(n_f * N_FAMILIES * n_sym, stream)](
            arg(qT), arg(eT), arg(rT), arg(starts_d), d["set_g"], d["set_cut"], d["set_d"],
            d["f_set"], d["f_w"], arg(lst), arg(xsT), arg(ssT), arg(counts))
        final_kernel[_grid(n_p * n_sym, stream)](
            arg(xsT), arg(ssT), arg(starts_d), d["set_cut"], d["f_set"], d["p_f"], d["p_long"],
            d["p_short"], d["p_dsrc"], d["p_shift"], arg(fst), arg(avgT), arg(dirT),
            arg(longT), arg(shortT), arg(counts))
    s0, s1 = rows.s0, rows.s0 + n_sym
    del rT, qT, eT
    del ssT  # S_k is not stored: SweepResult derives it from X_k when read
    xsT = encode_signals(xsT, xp)  # stored as the CPU stores them
    out["family_signals"][rows.f0:rows.f0 + n_f, s0:s1] = to_host(
        xp.ascontiguousarray(xsT.transpose(0, 3, 1, 2)))
    # Configurations of a family set have the same Average_Signal; its first one's is kept.
    first = np.unique(p.p_f, return_index=True)[1]
    out["family_average"][rows.f0:rows.f0 + n_f, s0:s1] = to_host(
        xp.ascontiguousarray(avgT[xp.asarray(first)].transpose(0, 2, 1)))
    del longT, shortT  # the events are derived from the direction (sweep.events_of)
    dirT = encode_directions(dirT, xp)
    out["direction"][rows.p_row, s0:s1] = to_host(xp.ascontiguousarray(dirT.transpose(0, 2, 1)))
    return to_host(counts)
