"""The CPU backend: the ATC cores compiled by ``numba.njit``, parallel over symbols.

It has the same interface as the GPU backend (:mod:`gpu_trend.gpu`), which
the engine's route table (:mod:`gpu_trend.engine`) relies on:

* :data:`MEMORY`: where it computes (``"host"``);
* :func:`scratch_footprint`: the working bytes it adds to a block, for the
  planner of :mod:`gpu_trend.memory`;
* :func:`run_block`: one block of symbols, inputs and outputs in its memory;
* :func:`release_memory`: what to free after an out-of-memory error.

Each symbol runs on one thread through all its bars. The window families get
their window sums from one shared backward pass per bar
(``Cores.window_rows``), which yields the sums of all nine member lengths at
once; the GPU sums each member's window in its own thread, adding the same
terms in the same order, so both give the same bits.
"""

import numba
import numpy as np

from gpu_trend import outputs
from gpu_trend.cores import DEMA, EMA, N_FAMILIES, N_MEMBERS, N_SIGNALS, build_cores
from gpu_trend.memory import F8, Footprint

MEMORY = "host"

#: Per-thread scratch of :func:`run_cpu` per bar: returns, nine window values that become the
#: member equities (floats), nine member signals (int8). With members, the latter rows are
#: the outputs themselves.
SCRATCH_BYTES_PER_BAR = (1 + N_MEMBERS) * F8 + N_MEMBERS


@numba.njit(cache=True)
def _mul(a, b):
    return a * b


cores = build_cores(numba.njit(cache=True), _mul)


@numba.njit(cache=True)
def _family_cpu(src, close, r, start, fam, lens, w, cutout, d, tie, ma, q, e, wbuf, want,
                xout, sout):
    """One symbol × one family: the shared window pass, nine members, Layer 2."""
    pre = fam != EMA and fam != DEMA
    if pre:
        cores.window_rows(src, start, close.shape[0], fam, lens, ma, wbuf)
    for i in range(N_MEMBERS):
        cores.member_core(src, close, r, start, fam, lens[i], cutout, d, tie, ma[i], pre, want,
                          q[i], e[i])
    cores.layer2_core(q, e, r, start, cutout, w, d, xout, sout)


@numba.njit(parallel=True, cache=True)
def run_cpu(src, close, starts, p, xs, ss, avg, dirn, longs, shorts, want, mma, msig, meq):
    """Run every symbol in parallel; arrays are (S, T) / (S, 6, T) / (S, 54, T).

    ``p`` is a :class:`~gpu_trend.cores.KernelParams`. Every output element
    is written (NaN / False before a symbol's listing), so outputs may be
    allocated uninitialised.
    """
    n_sym, n_bars = close.shape
    lens = p.lengths
    maxlen = lens.max()
    for s in numba.prange(n_sym):
        r = np.empty(n_bars)
        wbuf = np.empty((2, maxlen))
        cores.returns_row(close[s], p.growth, starts[s], r)
        if want:
            for f in range(N_FAMILIES):
                lo = N_MEMBERS * f
                hi = lo + N_MEMBERS
                _family_cpu(src[s], close[s], r, starts[s], f, lens[f], p.weights[f], p.cutout,
                            p.decay, p.tie_rtol, mma[s, lo:hi], msig[s, lo:hi], meq[s, lo:hi],
                            wbuf, True, xs[s, f], ss[s, f])
        else:
            # Each member's window values come in on its `ma` row and its Layer-1 equities
            # go out on the same row: member_core reads bar t before it writes bar t.
            ma = np.empty((N_MEMBERS, n_bars))
            q = np.empty((N_MEMBERS, n_bars), dtype=np.int8)
            for f in range(N_FAMILIES):
                _family_cpu(src[s], close[s], r, starts[s], f, lens[f], p.weights[f], p.cutout,
                            p.decay, p.tie_rtol, ma, q, ma, wbuf, False, xs[s, f], ss[s, f])
        cores.final_core(xs[s], ss[s], starts[s], p.cutout, p.long_threshold,
                         p.short_threshold, p.direction_source, p.strategy_view,
                         avg[s], dirn[s], longs[s], shorts[s])


def in_disk_cache() -> bool:
    """Whether Numba's on-disk cache holds a build of :func:`run_cpu` for this source.

    Without one, the first call of a process compiles for about 20 s. Reads Numba's cache
    index (private API, so any surprise answers True: the worst case is a silent compile).
    """
    try:
        return bool(run_cpu._cache._cache_file._load_index())
    except Exception:
        return True


def scratch_footprint(n_bars, *, members, separate_source, max_len, n_threads) -> Footprint:
    """Working bytes this backend adds to a block: each thread's scratch, a fixed cost.

    Numba's runtime allocates it through Python's raw allocator, so
    tracemalloc sees it (tests check the count against it).
    """
    per_thread = SCRATCH_BYTES_PER_BAR * n_bars + 2 * max_len * F8
    return Footprint(per_symbol=0, fixed=n_threads * per_thread)


def release_memory() -> None:
    """Nothing to release: NumPy and Numba hand freed memory straight back."""


def run_block(close, source, starts, params, members, out=None, *, on_launched=None):
    """Run one block of symbols.

    Parameters
    ----------
    close, source : (S, T) float64 NumPy
        NaN policy applied; ``source`` may be ``close`` itself.
    starts : (S,) int64
        Each symbol's first valid close.
    params : KernelParams
    members : bool
    out : dict of arrays, optional
        C-contiguous host destinations shaped like
        :func:`gpu_trend.outputs.allocate`'s (e.g. row slices of the
        universe's outputs); allocated when None.
    on_launched : callable, optional
        Called once the block is computed (the GPU calls it while its
        kernels run).

    Returns
    -------
    dict
        ``out``, or the newly allocated outputs.
    """
    n_sym, n_bars = close.shape
    if out is None:
        out = outputs.allocate(np, n_sym, n_bars, members)
    if members:
        mm, mg, me = out["member_ma"], out["member_signal"], out["member_equity"]
    else:
        mm = mg = me = np.empty((1, N_SIGNALS, 0))
    run_cpu(source, close, starts, params, out["family_signals"], out["family_equities"],
            out["average_signal"], out["direction"], out["long_events"], out["short_events"],
            members, mm, mg, me)
    if on_launched is not None:
        on_launched()
    return out
