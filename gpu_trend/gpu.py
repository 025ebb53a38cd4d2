"""The GPU backend: the ATC cores of :mod:`gpu_trend.cores` compiled by numba.cuda.

It has the same interface as the CPU backend (:mod:`cpu_fallback.backend`):
:data:`MEMORY`, :func:`scratch_footprint`, :func:`run_block` and
:func:`release_memory` (and :func:`simulated`); :class:`HostFeeder` is how the
engine feeds it host arrays.

Four launches per block of symbols, all on arrays laid out time-major
(bars × symbols), so that the threads of a warp, which hold consecutive
symbols, read and write consecutive addresses:

* ``returns_kernel``: one thread per symbol, its returns r_t.
* ``member_kernel``: one thread per (member, symbol), 54 per symbol, runs
  ``member_core`` through all bars with MA, signal and Layer-1 equity fused
  in registers; only q (int8) and E go to memory. The threads of a warp
  share a member, so the family branches never diverge.
* ``layer2_kernel``: one thread per (family, symbol) sums its nine members'
  q·E and E in member order and runs the Layer-2 equity.
* ``final_kernel``: one thread per symbol, Average_Signal, direction, events.

Nothing here runs at import time. Under ``NUMBA_ENABLE_CUDASIM=1`` the same
kernels run on NumPy arrays on the CPU, which is how CI tests them without a
GPU.

Float64 products that feed an addition use ``libdevice.dmul_rn``: NVVM
contracts ``a * b + c`` into a fused multiply-add by default, which rounds
once where the CPU rounds twice, and the two backends would drift apart in
the last bits (then in discrete outputs).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import cuda  # no driver call at import; the simulator patches `cuda`

from . import outputs
from .arrays import namespace
from .cores import N_FAMILIES, N_MEMBERS, N_SIGNALS, build_cores
from .memory import F8, Footprint
from .state import STATE_BYTES, state_rows

MEMORY = "device"
THREADS = 128


def _grid(n_threads, stream):
    blocks = (n_threads + THREADS - 1) // THREADS
    return (blocks, THREADS) if stream is None else (blocks, THREADS, stream)


@functools.lru_cache(maxsize=None)
def device_cores():
    """``(device, mul, core)``: the CUDA device-function decorator, the unfused product and
    the cores compiled with them (for this module's kernels and the sweep's)."""
    device = cuda.jit(device=True)
    if simulated():
        mul = device(lambda a, b: a * b)  # the simulator computes in Python: nothing fuses
    else:
        from numba.cuda import libdevice
        mul = libdevice.dmul_rn
    return device, mul, build_cores(device, mul)


@functools.lru_cache(maxsize=None)
def _kernels():
    _, _, core = device_cores()

    @cuda.jit
    def returns_kernel(closeT, growth, starts, t_from, rT):
        s = cuda.grid(1)
        if s < closeT.shape[1]:
            tf = t_from[s] if t_from.shape[0] == closeT.shape[1] else 0
            core.returns_row(closeT[:, s], growth, starts[s], tf, rT[:, s])

    @cuda.jit
    def member_kernel(srcT, closeT, rT, starts, t_from, lens, cutout, d, tie, want, maT, qT, eT,
                      stT, resume, keep):
        n_sym = closeT.shape[1]
        i = cuda.grid(1)
        if i >= N_SIGNALS * n_sym:
            return
        m = i // n_sym
        s = i - m * n_sym
        # Without members `maT` is a (1, T, 1) dummy that member_core never touches.
        ma = maT[m, :, s] if want else maT[0, :, 0]
        res = resume[s] if resume.shape[0] == n_sym else False
        tf = t_from[s] if t_from.shape[0] == n_sym else 0
        core.member_core(srcT[:, s], closeT[:, s], rT[:, s], starts[s], tf, m // N_MEMBERS,
                         lens[m], cutout, d, tie, ma, False, want, qT[m, :, s], eT[m, :, s],
                         stT[m, :, s], res, keep)

    @cuda.jit
    def layer2_kernel(qT, eT, rT, starts, t_from, weights, cutout, d, xsT, ssT, stT, resume,
                      keep):
        n_sym = xsT.shape[2]
        i = cuda.grid(1)
        if i >= N_FAMILIES * n_sym:
            return
        f = i // n_sym
        s = i - f * n_sym
        lo = N_MEMBERS * f
        hi = lo + N_MEMBERS
        res = resume[s] if resume.shape[0] == n_sym else False
        tf = t_from[s] if t_from.shape[0] == n_sym else 0
        core.layer2_core(qT[lo:hi, :, s], eT[lo:hi, :, s], rT[:, s], starts[s], tf, cutout,
                         weights[f], d, xsT[f, :, s], ssT[f, :, s], stT[f, :, s], res, keep)

    @cuda.jit
    def final_kernel(xsT, ssT, starts, t_from, cutout, th_long, th_short, dsrc, shift,
                     avgT, dirT, longT, shortT, stT, resume, keep):
        s = cuda.grid(1)
        if s >= avgT.shape[1]:
            return
        res = resume[s] if resume.shape[0] == avgT.shape[1] else False
        tf = t_from[s] if t_from.shape[0] == avgT.shape[1] else 0
        core.final_core(xsT[:, :, s], ssT[:, :, s], starts[s], tf, cutout, th_long,
                        th_short, dsrc, shift, avgT[:, s], dirT[:, s], longT[:, s],
                        shortT[:, s], stT[:, s], res, keep)

    return returns_kernel, member_kernel, layer2_kernel, final_kernel


def simulated() -> bool:
    """Whether numba.cuda is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def _launch_stream(xp):
    """The Numba stream to launch on: CuPy's current stream, so kernels and CuPy ops stay ordered.

    None under the simulator (NumPy arrays, no streams).
    """
    if xp is np:
        return None
    ptr = xp.cuda.get_current_stream().ptr
    return cuda.external_stream(ptr) if ptr else cuda.legacy_default_stream()


def _kernel_arg(xp, arr):
    # Kernels run on CuPy's current stream, which already orders them after the CuPy ops that
    # produced `arr`: skip Numba's host-side synchronisation on the array's stream, which
    # would stall the host (and the next chunk's upload) at every launch.
    return arr if xp is np else cuda.as_cuda_array(arr, sync=False)


def release_memory() -> None:
    """Return CuPy's cached free blocks to the device (after an out-of-memory error)."""
    if simulated():
        return
    import cupy
    cupy.get_default_memory_pool().free_all_blocks()


def scratch_footprint(n_bars, *, members, separate_source, max_len) -> Footprint:
    """Device bytes :func:`run_block` allocates per symbol besides the symbol-major outputs.

    Time-major copies of the inputs, the returns and every output in the
    kernels' layout; without members also the 54 Layer-1 equities and the
    int8 member signals, which then are scratch; and the state rows.
    """
    per_bar = (2 if separate_source else 1) * F8 + F8 + outputs.bytes_per_symbol_bar(members)
    if not members:
        per_bar += N_SIGNALS * (F8 + 1)
    return Footprint(per_symbol=per_bar * n_bars + STATE_BYTES, fixed=0)


def run_block(close, source, starts, params, members, out=None, *, state=None,
              on_launched=None):
    """Run the CUDA kernels on one block of symbols.

    Parameters
    ----------
    close, source : (S, T) float64
        CuPy arrays on the device (NumPy under the CUDA simulator), NaN
        policy applied; ``source`` may be ``close`` itself.
    starts : (S,) int64 NumPy
    params : KernelParams
    members : bool
    out : dict of arrays, optional
        Symbol-major destinations in device memory shaped like
        :func:`gpu_trend.outputs.allocate`'s (e.g. row slices of the
        universe's outputs); allocated when None.
    state : gpu_trend.state.BlockState, optional
        As for :func:`cpu_fallback.backend.run_block`; its rows are arrays of
        this block's memory.
    on_launched : callable, optional
        Called once the kernels are queued and before the results are stored:
        host work placed here (the next block's upload) overlaps the kernels.

    Returns
    -------
    dict
        ``out``, or the newly allocated outputs.
    """
    xp = namespace(close)
    returns_kernel, member_kernel, layer2_kernel, final_kernel = _kernels()
    n_sym, n_bars = close.shape
    p = params
    closeT = xp.ascontiguousarray(close.T)
    srcT = closeT if source is close else xp.ascontiguousarray(source.T)
    growth, weights = xp.asarray(p.growth), xp.asarray(p.weights)
    lens = xp.asarray(np.ascontiguousarray(p.lengths).reshape(-1))
    starts_d = xp.asarray(starts)
    # The cores write every element they later read or return (NaN before a listing), so
    # the scratch and outputs start uninitialised.
    rT = xp.empty((n_bars, n_sym))
    tm = {o.name: xp.empty(o.time_major_shape(n_sym, n_bars), dtype=o.dtype)
          for o in outputs.selected(members)}
    if members:
        maT, qT, eT = tm["member_ma"], tm["member_signal"], tm["member_equity"]
    else:
        maT = xp.empty((1, n_bars, 1))  # never touched by member_core
        qT = xp.empty((N_SIGNALS, n_bars, n_sym), dtype=np.int8)  # −1, 0, +1 past the listing
        eT = xp.empty((N_SIGNALS, n_bars, n_sym))
    # State rows with the symbol last, as every other array here: (54, 11, S), (6, 3, S), (3, S).
    if state is None:
        t_from, resume, keep = xp.empty(0, dtype=np.int64), xp.empty(0, dtype=np.bool_), False
        rows = [xp.empty(shape[1:] + (n_sym,)) for shape in
                (a.shape for a in state_rows(np, 1))]
    else:
        t_from, resume, keep = xp.asarray(state.t_from), xp.asarray(state.resume), state.keep
        at = xp.asarray(state.at) if len(state.at) else slice(None)
        rows = [xp.ascontiguousarray(xp.moveaxis(xp.asarray(a)[at], 0, -1))
                for a in (state.prior or (state.member, state.layer2, state.final))]
    if n_sym and n_bars:
        stream = _launch_stream(xp)
        arg = functools.partial(_kernel_arg, xp)
        returns_kernel[_grid(n_sym, stream)](arg(closeT), arg(growth), arg(starts_d),
                                             arg(t_from), arg(rT))
        member_kernel[_grid(N_SIGNALS * n_sym, stream)](
            arg(srcT), arg(closeT), arg(rT), arg(starts_d), arg(t_from), arg(lens), p.cutout,
            p.decay, p.tie_rtol, members, arg(maT), arg(qT), arg(eT), arg(rows[0]),
            arg(resume), keep)
        layer2_kernel[_grid(N_FAMILIES * n_sym, stream)](
            arg(qT), arg(eT), arg(rT), arg(starts_d), arg(t_from), arg(weights), p.cutout,
            p.decay, arg(tm["family_signals"]), arg(tm["family_equities"]), arg(rows[1]), arg(resume),
            keep)
        final_kernel[_grid(n_sym, stream)](
            arg(tm["family_signals"]), arg(tm["family_equities"]), arg(starts_d), arg(t_from),
            p.cutout, p.long_threshold, p.short_threshold, p.direction_source, p.strategy_view,
            arg(tm["average_signal"]), arg(tm["direction"]), arg(tm["long_events"]),
            arg(tm["short_events"]), arg(rows[2]), arg(resume), keep)
    if on_launched is not None:
        on_launched()
    if keep:
        for dst, rowsT in zip((state.member, state.layer2, state.final), rows):
            dst[at] = xp.moveaxis(rowsT, -1, 0)
    if out is None:
        return {o.name: xp.ascontiguousarray(o.symbol_major(tm[o.name]))
                for o in outputs.selected(members)}
    for o in outputs.selected(members):
        out[o.name][...] = o.symbol_major(tm[o.name])  # one strided copy, no temporary
    return out


class HostFeeder:
    """Uploads blocks of host rows to the device, the next block while this one computes.

    Each block is copied into pinned host memory and uploaded on a second,
    non-blocking stream; the compute stream waits for it on the device (an
    event), not on the host. :meth:`prefetch` is meant to be called once the
    current block's kernels are queued.

    Parameters
    ----------
    load : callable
        ``load(start, stop) -> (close, src)``: host (rows, T) float64 arrays of
        those symbols, NaN policy applied; ``src`` may be ``close``.
    """

    def __init__(self, load):
        import cupy

        self._load = load
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._pending = None
        self._in_use = None

    def _upload(self, start, stop):
        import cupy
        import cupyx

        close, src = self._load(start, stop)
        arrays = (close,) if src is close else (close, src)
        pinned, dev = [], []
        for host in arrays:
            buf = cupyx.empty_pinned(host.shape, dtype=np.float64)
            buf[...] = host
            # Allocated on the upload stream, so the pool hands this block out again only in
            # that stream's order.
            with self._stream:
                d = cupy.empty(host.shape, dtype=np.float64)
            d.set(buf, stream=self._stream)
            pinned.append(buf)
            dev.append(d)
        event = self._stream.record()
        close_d = dev[0]
        src_d = close_d if len(dev) == 1 else dev[1]
        return (start, stop), (close_d, src_d), event, pinned

    def prefetch(self, start, stop):
        """Start uploading symbols ``start:stop`` (replaces an earlier prefetch)."""
        self._pending = self._upload(start, stop)

    def take(self, start, stop):
        """``(close, src)`` on the device for ``start:stop``, ordered before later work on the
        current stream."""
        import cupy

        item = self._pending
        self._pending = None
        if item is None or item[0] != (start, stop):
            item = self._upload(start, stop)
        cupy.cuda.get_current_stream().wait_event(item[2])
        # The pinned buffers must outlive their asynchronous copy: keep them until the next
        # block, and make sure the copy is over before letting them go (results kept on the
        # device never make the host wait for it).
        if self._in_use is not None:
            self._in_use[2].synchronize()
        self._in_use = item
        return item[1]

    def drop(self):
        """Forget any prefetched block (after an out-of-memory error)."""
        self._pending = None
        self._in_use = None
