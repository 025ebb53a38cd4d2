"""The CPU backend: the ATC cores compiled by ``numba.njit``, symbols in SIMD lanes.

It has the same interface as the GPU backend (:mod:`gpu_trend.gpu`), which
the engine's route table (:mod:`gpu_trend.engine`) relies on:

* :data:`MEMORY`: where it computes (``"host"``);
* :func:`scratch_footprint`: the working bytes it adds to a block, for the
  planner of :mod:`gpu_trend.memory`;
* :func:`run_block`: one block of symbols, inputs and outputs in its memory;
* :func:`release_memory`: what to free after an out-of-memory error.

Symbols run in blocks of :data:`~cpu_fallback.lanes.LANES`, one per SIMD lane, the blocks in
parallel over the cores (:mod:`cpu_fallback.lanes`): each family's kernel runs its window
pass, nine members and Layer 2 bar by bar for the whole block, calling the cores' one-bar
steps in every lane. The window families get their window sums from one backward pass per
bar, which yields the sums of all nine member lengths at once; the GPU sums each member's
window in its own thread, adding the same terms in the same order, so both give the same
bits.

:func:`_step_symbol` runs one symbol a bar at a time, all 54 members per bar: the whole of a
resumed symbol with a few new bars (a live update), and the first bars of a block's symbols
that start before the block does (symbols are sorted by first bar, so these are few).
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
from cpu_fallback.lanes import LANES, build_lanes
from gpu_trend import outputs
from gpu_trend.cores import (DEMA, EMA, FLOOR, KAMA, L_A, L_S, L_X, N_FAMILIES, N_MEMBERS,
                             N_SIGNALS, build_cores)
from gpu_trend.memory import F8, Footprint
from gpu_trend.state import NO_AT, NO_RESUME, NO_T_FROM, STATE_BYTES, BlockState, state_rows

MEMORY = "host"

#: A resumed symbol with at most this many bars to compute takes the few-bar path
#: (:func:`_step_symbol`): a lane block would wait for it to load 54 state rows per bar.
STEP_BARS = 8

#: False sends every symbol alone through the few-bar path, a bar at a time: the scalar
#: reference the tests compare the lane blocks with (the same bits, slower).
USE_LANES = True


def _scratch_doubles_per_bar(separate_source):
    # A lane block's close, time-major (and its source, when it is not the close), in the
    # same memory as the few-bar path's nine window values (:func:`_scratch`).
    return max(N_MEMBERS, LANES * (2 if separate_source else 1))


#: Per-thread scratch of :func:`run_cpu` per bar, when the source is the close.
SCRATCH_BYTES_PER_BAR = _scratch_doubles_per_bar(False) * F8
#: Per-thread scratch per bar of the longest window: the few-bar path's window sums.
SCRATCH_BYTES_PER_WINDOW_BAR = 2 * F8


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


# The one-bar steps and the lanes' window pass are forced inline: a call left in a lane loop
# keeps LLVM from vectorising it (cpu_fallback/lanes.py).
_inline_jit = numba.njit(cache=True, error_model="numpy", forceinline=True)
cores = build_cores(_jit, _mul, _inline_jit)
family_lanes = build_lanes(cores, _mul, _jit, _inline_jit)


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
def _step_symbol(src, close, start, tf, t_end, s, k, p, lens, growth, ma, wbuf, want, mma, msig,
                 meq, xs, ss, mst, lst, pmst, plst):
    """Bars ``tf .. t_end−1`` of symbol ``s`` (state row ``k``), a bar at a time: every member
    and family stepped through the bar, state read from and written to its rows.

    The arithmetic of the cores' one-bar steps (``Cores.ma_step`` and the others),
    in the cores' order: the same bits as ``member_core`` and ``layer2_core`` over the same
    bars, without their 60 calls a symbol. The state rows are read from ``pmst`` / ``plst``
    on the first bar when given (not copied first), and written back after each bar.
    """
    row_src, row_close = src[s], close[s]
    for t in range(tf, t_end):
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


@_jit
def _fresh_rows(mst, lst):
    # The state rows before a symbol's first bar.
    for j in range(N_SIGNALS):
        cores.store_member(mst[j], *cores.fresh_member())
    for f in range(N_FAMILIES):
        lst[f, L_X], lst[f, L_A], lst[f, L_S] = cores.fresh_layer2()


@_jit
def _prepare(src, close, s, k, t_end, starts, t_from, resume, p, lens, growth, ma, wbuf, want,
             mma, msig, meq, xs, ss, mst, lst, fst, pmst, plst, pfst):
    """Symbol ``s`` (state row ``k``) up to bar ``t_end``: its rows copied from the prior ones or
    set fresh, the bars before its first one NaN, and its first bars stepped
    (:func:`_step_symbol`); a lane block then takes it on from ``t_end``."""
    n_sym, n = close.shape
    res = resume[s] if resume.shape[0] == n_sym else False
    tf = t_from[s] if t_from.shape[0] == n_sym else 0
    start = starts[s]
    first = max(start, tf)
    prior = res and pfst.shape[0] > 0
    if prior:
        for j in range(fst.shape[1]):
            fst[k, j] = pfst[k, j]
    direct = prior and first < t_end  # the step reads the prior rows on its first bar
    if prior and not direct:
        _copy_rows(pmst[k], mst[k])
        _copy_rows(plst[k], lst[k])
    elif not res:
        _fresh_rows(mst[k], lst[k])
    for f in range(N_FAMILIES):
        for t in range(tf, min(first, n)):
            xs[s, f, t] = np.nan
            ss[s, f, t] = np.nan
    if want:
        for j in range(N_SIGNALS):
            for t in range(min(start, n)):
                mma[s, j, t] = np.nan
                msig[s, j, t] = np.nan
                meq[s, j, t] = np.nan
    if first < t_end:
        _step_symbol(src, close, start, first, t_end, s, k, p, lens, growth, ma, wbuf, want, mma,
                     msig, meq, xs, ss, mst, lst, pmst if direct else pmst[:0],
                     plst if direct else plst[:0])


@_jit
def _window_values(block, n):
    # The few-bar path's nine window-value rows (9, n), in a thread's lane-block scratch.
    return block[:N_MEMBERS * n].reshape((N_MEMBERS, n))


@_jit
def _final(s, k, xs, ss, starts, t_from, resume, keep, p, avg, dirn, longs, shorts, fst):
    # Symbol s's Average_Signal, direction and events (state row k), once its X and S are in.
    n_sym = xs.shape[0]
    cores.final_core(xs[s], ss[s], starts[s], t_from[s] if t_from.shape[0] == n_sym else 0,
                     p.cutout, p.long_threshold, p.short_threshold, p.direction_source,
                     p.strategy_view, avg[s], dirn[s], longs[s], shorts[s], fst[k],
                     resume[s] if resume.shape[0] == n_sym else False, keep)


@_jit
def _block_inputs(src, close, starts, syms, src_t, close_t, first, start, separate):
    # A lane block's rows, time-major, and its lanes' listing bars.
    n = close.shape[1]
    for k in range(close_t.shape[1]):
        s = syms[k]
        first[k] = starts[s]
        start[k] = float(starts[s])
        for t in range(n):
            close_t[t, k] = close[s, t]
        if separate:
            for t in range(n):
                src_t[t, k] = src[s, t]


@_inline_jit
def _block_width(n_real):
    # A block's lanes: its symbols rounded up to whole AVX-512 vectors (the lanes past them
    # repeat its last symbol and write nothing), at most LANES.
    return min(LANES, (n_real + 7) // 8 * 8)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def run_cpu(src, close, starts, t_from, p, xs, ss, avg, dirn, longs, shorts, want, mma, msig,
            meq, mst, lst, fst, resume, keep, at, pmst, plst, pfst, scratch, separate, single,
            order, blocks):
    """Run every symbol, in parallel; arrays are (S, T) / (S, 6, T) / (S, 54, T).

    ``p`` is a :class:`~gpu_trend.cores.KernelParams`. Bars run from column
    ``t_from[s]`` (0, or past a resumed history's window; ``t_from`` may be
    empty: all 0); every output element from there on is written (NaN / False before a
    symbol's listing), so outputs may be allocated uninitialised. ``mst`` (S, 54, 11), ``lst``
    (S, 6, 3) and ``fst`` (S, 3) are the state rows (:mod:`gpu_trend.state`),
    read where ``resume[s]`` (``resume`` may be empty: no symbol resumes) and
    written (``fst`` only with ``keep``: the caller's rows are scratch without it); symbol s
    has row ``at[s]`` (``at`` may be empty: row s).
    ``pmst``, ``plst``, ``pfst``: rows a resumed symbol is copied from (same row) before it
    starts, or empty: its rows are read where they are. ``scratch``: :func:`_scratch`'s arrays
    (``separate``: whether ``src`` is not ``close``).
    Symbols ``single`` run alone through the few-bar path (:func:`_step_symbol`); the others,
    ``order``, in lane blocks: block b is ``order[blocks[b]:blocks[b + 1]]``, at most
    :data:`~cpu_fallback.lanes.LANES` symbols (:func:`_lane_blocks`), run
    :func:`_block_width` lanes wide.
    Every array is used borrowed (:func:`_borrowed`): the caller holds them for the call.
    """
    n_sym, n = close.shape
    b = _borrowed
    src, close, xs, ss, avg, dirn, longs, shorts = (b(src), b(close), b(xs), b(ss), b(avg),
                                                    b(dirn), b(longs), b(shorts))
    mma, msig, meq, mst, lst, fst = b(mma), b(msig), b(meq), b(mst), b(lst), b(fst)
    pmst, plst, pfst = b(pmst), b(plst), b(pfst)
    block_all, wbuf_all = b(scratch[0]), b(scratch[1])
    lens, growth = b(p.lengths), b(p.growth)
    for i in numba.prange(single.shape[0]):
        s = single[i]
        k = at[s] if at.shape[0] == n_sym else np.int64(s)
        tid = numba.get_thread_id()
        _prepare(src, close, s, k, n, starts, t_from, resume, p, lens, growth,
                 _window_values(block_all[tid], n), wbuf_all[tid], want, mma, msig, meq, xs, ss,
                 mst, lst, fst, pmst, plst, pfst)
        _final(s, k, xs, ss, starts, t_from, resume, keep, p, avg, dirn, longs, shorts, fst)
    for blk in numba.prange(blocks.shape[0] - 1):
        lo = blocks[blk]
        n_real = blocks[blk + 1] - lo
        width = _block_width(n_real)
        tid = numba.get_thread_id()
        syms = np.empty(LANES, np.int64)
        rows = np.empty(LANES, np.int64)
        first = np.empty(LANES, np.int64)
        start = np.empty(LANES)
        # Not `t0 = 0`: type inference first sees a literal 0 and would compile every callee
        # taking t0 twice (Literal[int](0) and int64), doubling the cold start.
        t0 = np.int64(0)
        for j in range(LANES):  # lanes past n_real repeat the last symbol and write nothing
            s = order[lo + min(j, n_real - 1)]
            syms[j] = s
            rows[j] = at[s] if at.shape[0] == n_sym else s
            t0 = max(t0, starts[s], t_from[s] if t_from.shape[0] == n_sym else 0)
        for j in range(n_real):
            _prepare(src, close, syms[j], rows[j], t0, starts, t_from, resume, p, lens, growth,
                     _window_values(block_all[tid], n), wbuf_all[tid], want, mma, msig, meq, xs,
                     ss, mst, lst, fst, pmst, plst, pfst)
        close_t = block_all[tid, :n * width].reshape((n, width))
        src_t = (block_all[tid, n * width:2 * n * width].reshape((n, width)) if separate
                 else close_t)
        _block_inputs(src, close, starts, syms, src_t, close_t, first, start, separate)
        for f in range(N_FAMILIES):
            family_lanes(f, src_t, close_t, growth, first, start, t0, n, lens[f], p.cutout,
                         p.decay, p.tie_rtol, p.weights[f], n_real, syms, rows, mst, lst, xs, ss,
                         want, mma, msig, meq)
        for j in range(n_real):
            _final(syms[j], rows[j], xs, ss, starts, t_from, resume, keep, p, avg, dirn, longs,
                   shorts, fst)


def _scratch(n_bars, max_len, separate_source):
    """Each pool thread's scratch for :func:`run_cpu`: a lane block's close and source (T ×
    LANES each; the same memory holds the few-bar path's nine window-value rows of T) and the
    few-bar path's window sums (threads, 2, max_len). Thread ids run up to the pool's size
    (NUMBA_NUM_THREADS), whatever set_num_threads says."""
    n_pool = numba.config.NUMBA_NUM_THREADS
    return (np.empty((n_pool, _scratch_doubles_per_bar(separate_source) * max(n_bars, 1))),
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
    per_bar = _scratch_doubles_per_bar(separate_source) * F8
    per_thread = per_bar * max(n_bars, 1) + SCRATCH_BYTES_PER_WINDOW_BAR * max(max_len, 1)
    return Footprint(per_symbol=STATE_BYTES,
                     fixed=numba.config.NUMBA_NUM_THREADS * per_thread)


def release_memory() -> None:
    """Nothing to release: NumPy and Numba hand freed memory straight back."""


def _routes(st, starts, n_sym, n_bars, step_bars):
    """Which symbols run alone (``single``) and which in lane blocks (``order``, sorted by first
    bar, so that a block's lanes start on nearly the same bar, cut into ``blocks`` by
    :func:`_lane_blocks`).

    Alone: a resumed symbol with at most ``step_bars`` bars to compute (a live update), and a
    symbol with no bar to compute.
    """
    t_from = st.t_from if len(st.t_from) == n_sym else np.zeros(n_sym, dtype=np.int64)
    first = np.maximum(starts, t_from)
    alone = first >= n_bars
    if len(st.resume) == n_sym and st.keep:
        alone |= st.resume & (n_bars - t_from <= step_bars)
    if not USE_LANES:
        alone[:] = True
    order = np.flatnonzero(~alone)
    order = order[np.argsort(first[order], kind="stable")]
    return np.flatnonzero(alone), order, _lane_blocks(first[order], n_bars)


def _lane_blocks(first, n_bars, n_threads=None):
    """Edges of the lane blocks of symbols whose first bars are ``first`` (sorted): block b is
    symbols ``edges[b]:edges[b + 1]``.

    Up to :data:`~cpu_fallback.lanes.LANES` symbols a block, fewer (halving, down to 8) when
    the universe would make fewer blocks than there are threads. A block starts on its
    latest first bar, its other symbols coming up to it through the few-bar path, a bar at a
    time: a symbol joins the block while those bars, summed over the block's symbols, stay
    under the bars a block of its own would run (a bar of the few-bar path and a block's
    fixed cost per bar are about the same).
    """
    n = len(first)
    n_threads = numba.get_num_threads() if n_threads is None else n_threads
    size = LANES
    while size > 8 and -(-n // size) < n_threads:
        size //= 2
    edges = [0]
    lo = 0
    while lo < n:
        hi = min(lo + size, n)
        if first[hi - 1] != first[lo]:  # not all listed together: grow it a symbol at a time
            hi = lo + 1
            while (hi < min(lo + size, n)
                   and (first[hi] - first[lo]) * (hi - lo) <= n_bars - first[hi]):
                hi += 1
        edges.append(hi)
        lo = hi
    return np.array(edges, dtype=np.int64)


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
    if state is not None and not state.keep:
        # The kernel writes the rows it works on; rows it may not keep are read from copies.
        st = st._replace(member=st.member.copy(), layer2=st.layer2.copy(), final=st.final.copy())
    single, order, blocks = _routes(st, starts, n_sym, n_bars,
                                    STEP_BARS if step_bars is None else step_bars)
    with _parallel_guard():
        run_cpu(source, close, starts, st.t_from, params, out["family_signals"],
                out["family_equities"], out["average_signal"], out["direction"], out["long_events"],
                out["short_events"], members, mm, mg, me, st.member, st.layer2, st.final,
                st.resume, st.keep, st.at, *(st.prior or state_rows(np, 0)),
                _scratch(n_bars, int(params.lengths.max(initial=0)), source is not close),
                source is not close, single, order, blocks)
    if on_launched is not None:
        on_launched()
    return out
