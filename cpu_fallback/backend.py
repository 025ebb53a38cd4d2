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

A resumed symbol with a few new bars (a live update) takes :func:`_step_symbol`
instead: the cores' one-bar steps for all 54 members a bar at a time, which
spares it 60 core calls whose set-up would cost more than the bar itself.
"""

import contextlib
import ctypes
import importlib.metadata
import os
import sys
import threading

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from cpu_fallback import cache  # noqa: F401  (its cache locators, before the first njit)
from gpu_trend import outputs
from gpu_trend.cores import (DEMA, EMA, FLOOR, KAMA, L_A, L_S, L_X, N_FAMILIES, N_MEMBERS,
                             N_SIGNALS, build_cores)
from gpu_trend.memory import F8, Footprint
from gpu_trend.state import NO_AT, NO_RESUME, NO_T_FROM, STATE_BYTES, BlockState, state_rows

MEMORY = "host"

#: A resumed symbol with at most this many bars to compute takes the few-bar path
#: (:func:`_step_symbol`): a live update's bar costs about what 60 core calls' set-up costs.
STEP_BARS = 8

#: Per-thread scratch of :func:`run_cpu` per bar: returns, nine window values that become the
#: member equities, nine member signals (float64, as the member outputs: one compiled
#: specialisation of the cores). With members, the latter rows are the outputs themselves.
SCRATCH_BYTES_PER_BAR = (1 + 2 * N_MEMBERS) * F8


# ----------------------------------------------------------------------------
# the threading layer
# ----------------------------------------------------------------------------
# Numba's default layer on Linux without TBB is GNU OpenMP, which kills a fork()ed child (so a
# fork-started multiprocessing.Pool hangs) and costs milliseconds per parallel call on a busy
# machine (its fork-join waits for every thread). Numba's "forksafe" choice takes TBB
# (fork-safe, thread-safe, no per-call barrier), else OpenMP where it is fork-safe (macOS,
# Windows), else workqueue, which is fork-safe but aborts the process when two threads enter
# it at once: those calls are serialised (_parallel_guard).


def _preload_pip_tbb() -> None:
    """Load the ``tbb`` wheel's ``libtbb.so.12`` by its path, when the wheel is installed.

    pip puts it in ``<prefix>/lib``, where the dynamic loader looks only if the
    interpreter's RUNPATH says so (conda, pyenv), not in a virtualenv (numba
    issue 6108). Once it is loaded, Numba's ``dlopen("libtbb.so.12")`` gets it
    by its soname, ahead of an older system copy.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        files = importlib.metadata.files("tbb") or ()
    except importlib.metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libtbb.so.12":
            with contextlib.suppress(OSError):
                ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
            return


def _pin_threading_layer() -> None:
    """Choose Numba's ``"forksafe"`` threading layer unless the user chose one.

    A choice is the ``NUMBA_THREADING_LAYER`` / ``NUMBA_THREADING_LAYER_PRIORITY``
    variables or ``numba.config``'s settings changed from their defaults; once
    a layer runs it cannot change. The layer is launched at once from the main
    thread: TBB re-initialises in a fork()ed child only when the fork comes
    from the thread that launched it.
    """
    try:
        numba.threading_layer()
        return  # already launched
    except ValueError:
        pass
    _preload_pip_tbb()
    chosen = (os.environ.get("NUMBA_THREADING_LAYER") or
              os.environ.get("NUMBA_THREADING_LAYER_PRIORITY") or
              numba.config.THREADING_LAYER != "default" or
              list(numba.config.THREADING_LAYER_PRIORITY) != ["tbb", "omp", "workqueue"])
    if not chosen:
        numba.config.THREADING_LAYER = "forksafe"
    if threading.current_thread() is threading.main_thread():
        numba.get_num_threads()  # launches the layer


_pin_threading_layer()
_workqueue_lock = threading.Lock()


def _new_workqueue_lock() -> None:
    # A child forked while another thread held the lock would otherwise wait for it forever.
    global _workqueue_lock
    _workqueue_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_workqueue_lock)


def _parallel_guard():
    """A lock if the active layer is workqueue (not thread-safe), else a no-op context."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # not launched yet (first call from a thread other than the main one)
        numba.get_num_threads()
        layer = numba.threading_layer()
    return _workqueue_lock if layer == "workqueue" else contextlib.nullcontext()


# Numpy's error model: a division by zero gives inf / NaN (as on the GPU) instead of checking
# every divisor for a ZeroDivisionError; none happens on checked input (prices > 0, lengths
# >= 1). The checks' raise paths also kept Numba from pruning the cores' reference counting.
_jit = numba.njit(cache=True, error_model="numpy")


@_jit
def _mul(a, b):
    return a * b


cores = build_cores(_jit, _mul)


@intrinsic
def _borrowed(typingctx, arr):
    """``arr`` without its owner: a view whose meminfo is NULL.

    Each row view a kernel hands to a core (60 calls a symbol and bar range, 3–7 views each)
    increments and decrements its array's reference count, an atomic operation on one cache
    line that every thread shares; a borrowed view skips it. Only for arrays that outlive
    the call: the kernel's arguments, which its Python caller holds.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, value=args[0])
        out = context.make_array(arr)(context, builder)
        out.meminfo = cgutils.get_null_value(out.meminfo.type)
        out.parent = cgutils.get_null_value(out.parent.type)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(out, field, getattr(src, field))
        return out._getvalue()

    return arr(arr), codegen


@_jit
def _family_cpu(src, close, r, start, t_from, fam, lens, w, cutout, d, tie, ma, q, e, wbuf, want,
                xout, sout, mst, lst, resume, keep):
    """One symbol × one family: the shared window pass, nine members, Layer 2."""
    pre = fam != EMA and fam != DEMA
    if pre:
        cores.window_rows(src, start, t_from, close.shape[0], fam, lens, ma, wbuf)
    for i in range(N_MEMBERS):
        cores.member_core(src, close, r, start, t_from, fam, lens[i], cutout, d, tie, ma[i], pre,
                          want, q[i], e[i], mst[i], resume, keep)
    cores.layer2_core(q, e, r, start, t_from, cutout, w, d, xout, sout, lst, resume, keep)


@_jit
def _step_symbol(src, close, start, tf, s, k, p, lens, growth, ma, wbuf, want, mma, msig, meq,
                 xs, ss, mst, lst, pmst, plst):
    """Bars ``tf:`` of resumed symbol ``s`` (state row ``k``), a bar at a time: every member
    and family stepped through the bar, state read from and written to its rows.

    The arithmetic of the cores' one-bar steps (``Cores.ma_step`` and the others),
    in the cores' order: the same bits as ``member_core`` and ``layer2_core`` over the same
    bars, without their 60 calls a symbol. The state rows are read from ``pmst`` / ``plst``
    on the first bar when given (not copied first), and written back after each bar.
    """
    n = close.shape[1]
    row_src, row_close = src[s], close[s]
    for t in range(tf, n):
        tau = t - start
        r = cores.return_at(row_close, growth, start, t)
        first = t == tf and pmst.shape[0] > 0
        m_in = pmst if first else mst
        l_in = plst if first else lst
        for fam in range(N_FAMILIES):
            pre = fam != EMA and fam != DEMA
            if pre:
                cores.window_rows(row_src, start, t, t + 1, fam, lens[fam], ma, wbuf)
            num = 0.0
            den = 0.0
            for i in range(N_MEMBERS):
                j = N_MEMBERS * fam + i
                length = lens[fam, i]
                acc, y, acc2, y2, k_prev, q, gt, lt, ok, a, e = cores.load_member(m_in[k, j])
                x_lag = row_src[t - length] if fam == KAMA and tau >= length else np.nan
                m, acc, y, acc2, y2, k_prev = cores.ma_step(
                    row_src[t], x_lag, ma[i, t] if pre else np.nan, tau, fam, length,
                    2.0 / (length + 1), acc, y, acc2, y2, k_prev)
                q_prev = q
                q, gt, lt, ok = cores.cross_step(m, row_close[t], p.tie_rtol, q, gt, lt, ok)
                a, e = cores.member_equity(tau, p.cutout, e, a, r, q_prev, p.decay)
                cores.store_member(mst[k, j], acc, y, acc2, y2, k_prev, q, gt, lt, ok, a, e)
                if want:
                    mma[s, j, t] = m
                    msig[s, j, t] = q
                    meq[s, j, t] = e
                num += _mul(q, e)
                den += e
            x = l_in[k, fam, L_X]
            a = l_in[k, fam, L_A]
            eq = l_in[k, fam, L_S]
            if tau < p.cutout:
                xs[s, fam, t] = np.nan
                ss[s, fam, t] = np.nan
            else:
                w = p.weights[fam]
                x, a, eq = cores.layer2_step(num, den, tau == p.cutout, eq, a, r, x,
                                             w if w > FLOOR else FLOOR, p.decay)
                xs[s, fam, t] = x
                ss[s, fam, t] = eq
            lst[k, fam, L_X] = x
            lst[k, fam, L_A] = a
            lst[k, fam, L_S] = eq


@_jit
def _copy_rows(src, dst):
    # Not `dst[...] = src`: its shape-mismatch message compiles Numba's string formatting.
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def run_cpu(src, close, starts, t_from, p, xs, ss, avg, dirn, longs, shorts, want, mma, msig,
            meq, mst, lst, fst, resume, keep, at, pmst, plst, pfst, scratch, step_bars):
    """Run every symbol in parallel; arrays are (S, T) / (S, 6, T) / (S, 54, T).

    ``p`` is a :class:`~gpu_trend.cores.KernelParams`. Bars run from column
    ``t_from[s]`` (0, or past a resumed history's window; ``t_from`` may be
    empty: all 0); every output element from there on is written (NaN / False before a symbol's listing), so
    outputs may be allocated uninitialised. ``mst`` (S, 54, 11), ``lst``
    (S, 6, 3) and ``fst`` (S, 3) are the state rows (:mod:`gpu_trend.state`),
    read where ``resume[s]`` (``resume`` may be empty: no symbol resumes) and
    written back with ``keep``; symbol s has row ``at[s]`` (``at`` may be empty: row s).
    ``pmst``, ``plst``, ``pfst``: rows a resumed symbol is copied from (same row) before it
    starts, or empty: its rows are read where they are. ``scratch``: :func:`_scratch`'s pair.
    A resumed symbol with at most ``step_bars`` bars to compute (and ``keep``) takes
    :func:`_step_symbol`.
    Every array is used borrowed (:func:`_borrowed`): the caller holds them for the call.
    """
    n_sym = close.shape[0]
    b = _borrowed
    src, close, xs, ss, avg, dirn, longs, shorts = (b(src), b(close), b(xs), b(ss), b(avg),
                                                    b(dirn), b(longs), b(shorts))
    mma, msig, meq, mst, lst, fst = b(mma), b(msig), b(meq), b(mst), b(lst), b(fst)
    pmst, plst, pfst, scratch, wbuf_all = b(pmst), b(plst), b(pfst), b(scratch[0]), b(scratch[1])
    lens, growth = b(p.lengths), b(p.growth)
    for s in numba.prange(n_sym):
        k = at[s] if at.shape[0] == n_sym else np.int64(s)
        res = resume[s] if resume.shape[0] == n_sym else False
        tf = t_from[s] if t_from.shape[0] == n_sym else 0
        step = res and keep and close.shape[1] - tf <= step_bars
        if res and pfst.shape[0]:
            for j in range(fst.shape[1]):
                fst[k, j] = pfst[k, j]
            if not step:
                _copy_rows(pmst[k], mst[k])
                _copy_rows(plst[k], lst[k])
        # Each thread's own rows: returns, then nine window values, then nine member signals.
        tid = numba.get_thread_id()
        r = scratch[tid, 0]
        wbuf = wbuf_all[tid]
        if step:
            _step_symbol(src, close, starts[s], tf, s, k, p, lens, growth,
                         scratch[tid, 1:1 + N_MEMBERS], wbuf, want, mma, msig, meq, xs, ss, mst,
                         lst, pmst, plst)
        elif want:
            cores.returns_row(close[s], growth, starts[s], tf, r)
            for f in range(N_FAMILIES):
                lo = N_MEMBERS * f
                hi = lo + N_MEMBERS
                _family_cpu(src[s], close[s], r, starts[s], tf, f, lens[f], p.weights[f],
                            p.cutout, p.decay, p.tie_rtol, mma[s, lo:hi], msig[s, lo:hi],
                            meq[s, lo:hi], wbuf, want, xs[s, f], ss[s, f], mst[k, lo:hi],
                            lst[k, f], res, keep)
        else:
            cores.returns_row(close[s], growth, starts[s], tf, r)
            # Each member's window values come in on its `ma` row and its Layer-1 equities
            # go out on the same row: member_core reads bar t before it writes bar t.
            ma = scratch[tid, 1:1 + N_MEMBERS]
            q = scratch[tid, 1 + N_MEMBERS:]
            for f in range(N_FAMILIES):
                lo = N_MEMBERS * f
                _family_cpu(src[s], close[s], r, starts[s], tf, f, lens[f], p.weights[f],
                            p.cutout, p.decay, p.tie_rtol, ma, q, ma, wbuf, want, xs[s, f],
                            ss[s, f], mst[k, lo:lo + N_MEMBERS], lst[k, f], res, keep)
        cores.final_core(xs[s], ss[s], starts[s], tf, p.cutout, p.long_threshold,
                         p.short_threshold, p.direction_source, p.strategy_view,
                         avg[s], dirn[s], longs[s], shorts[s], fst[k], res, keep)


def _scratch(n_bars, max_len):
    """Each pool thread's rows for :func:`run_cpu`: (threads, 19, T) and its window sums
    (threads, 2, max_len). Thread ids run up to the pool's size (NUMBA_NUM_THREADS), whatever
    set_num_threads says."""
    n_pool = numba.config.NUMBA_NUM_THREADS
    return (np.empty((n_pool, SCRATCH_BYTES_PER_BAR // F8, n_bars)),
            np.empty((n_pool, 2, max(max_len, 1))))


def in_disk_cache() -> bool:
    """Whether Numba's on-disk cache holds a build of :func:`run_cpu` for this source.

    Without one, the first call of a process compiles for about 20 s. Reads Numba's cache
    index (private API, so any surprise answers True: the worst case is a silent compile).
    """
    try:
        return bool(run_cpu._cache._cache_file._load_index())
    except Exception:
        return True


def scratch_footprint(n_bars, *, members, separate_source, max_len) -> Footprint:
    """Working bytes this backend adds to a block: each thread's scratch (a fixed cost) and
    each symbol's state rows.

    Numba's runtime allocates it through Python's raw allocator, so
    tracemalloc sees it (tests check the count against it).
    """
    per_thread = SCRATCH_BYTES_PER_BAR * n_bars + 2 * max_len * F8
    return Footprint(per_symbol=STATE_BYTES,
                     fixed=numba.config.NUMBA_NUM_THREADS * per_thread)


def release_memory() -> None:
    """Nothing to release: NumPy and Numba hand freed memory straight back."""


def run_block(close, source, starts, params, members, out=None, *, state=None,
              on_launched=None, step_bars=None):
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
    state : gpu_trend.state.BlockState, optional
        Where the bars start (``t_from``), which symbols resume from their
        state rows, and whether to write the rows back (:mod:`gpu_trend.state`).
    on_launched : callable, optional
        Called once the block is computed (the GPU calls it while its
        kernels run).
    step_bars : int, optional
        Resumed symbols with at most this many bars to compute take the few-bar path (default
        :data:`STEP_BARS`; the same bits either way, as the tests check).

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
    # Without a state the rows are scratch the cores may write to (S × 4.9 KB).
    st = state if state is not None else BlockState(NO_T_FROM, NO_RESUME, *state_rows(np, n_sym),
                                                    False, NO_AT)
    with _parallel_guard():
        run_cpu(source, close, starts, st.t_from, params, out["family_signals"],
                out["family_equities"], out["average_signal"], out["direction"], out["long_events"],
                out["short_events"], members, mm, mg, me, st.member, st.layer2, st.final,
                st.resume, st.keep, st.at, *(st.prior or state_rows(np, 0)),
                _scratch(n_bars, int(params.lengths.max(initial=0))),
                STEP_BARS if step_bars is None else step_bars)
    if on_launched is not None:
        on_launched()
    return out
