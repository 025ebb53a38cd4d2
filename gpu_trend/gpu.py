"""GPU backend: the ATC cores of :mod:`cpu_fallback.kernels` compiled by numba.cuda.

Four launches per block of symbols, all on arrays laid out time-major
(bars × symbols), so that the threads of a warp, which hold consecutive
symbols, read and write consecutive addresses:

* ``returns_kernel``: one thread per symbol, its returns r_t.
* ``member_kernel``: one thread per (member, symbol), 54 per symbol, runs
  :func:`member_core` through all bars with MA, signal and Layer-1 equity
  fused in registers; only q (int8) and E go to memory. The threads of a warp
  share a member, so the family branches never diverge.
* ``layer2_kernel``: one thread per (family, symbol) sums its nine members'
  q·E and E in member order and runs the Layer-2 equity.
* ``final_kernel``: one thread per symbol, Average_Signal, direction, events.

Inputs stay on the device; nothing here runs at import time. Host input is fed
block by block (:class:`HostFeeder`: pinned memory, a second stream, the next
block's upload overlapping this block's kernels), and only the requested
outputs come back, written straight into the caller's arrays. Under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run on NumPy arrays on the CPU,
which is how CI tests them without a GPU.

Float64 products that feed an addition use ``libdevice.dmul_rn``: NVVM
contracts ``a * b + c`` into a fused multiply-add by default, which rounds
once where the CPU rounds twice, and the two backends would drift apart in
the last bits (then in discrete outputs).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import cuda  # no driver call at import; the simulator patches `cuda`

from cpu_fallback.kernels import build_cores

THREADS = 128


def _grid(n_threads, stream):
    blocks = (n_threads + THREADS - 1) // THREADS
    return (blocks, THREADS) if stream is None else (blocks, THREADS, stream)


@functools.lru_cache(maxsize=None)
def _kernels():
    device = cuda.jit(device=True)
    if simulated():
        mul = device(lambda a, b: a * b)  # the simulator computes in Python: nothing fuses
    else:
        from numba.cuda import libdevice
        mul = libdevice.dmul_rn
    core = build_cores(device, mul)

    @cuda.jit
    def returns_kernel(clsT, growth, starts, rT):
        s = cuda.grid(1)
        if s < clsT.shape[1]:
            core.returns_row(clsT[:, s], growth, starts[s], rT[:, s])

    @cuda.jit
    def member_kernel(srcT, clsT, rT, starts, lens, cutout, d, tie, want, maT, qT, eT):
        n_sym = clsT.shape[1]
        i = cuda.grid(1)
        if i >= 54 * n_sym:
            return
        m = i // n_sym
        s = i - m * n_sym
        # Without members `maT` is a (1, T, 1) dummy that member_core never touches.
        ma = maT[m, :, s] if want else maT[0, :, 0]
        core.member_core(srcT[:, s], clsT[:, s], rT[:, s], starts[s], m // 9, lens[m], cutout,
                         d, tie, ma, False, want, qT[m, :, s], eT[m, :, s])

    @cuda.jit
    def layer2_kernel(qT, eT, rT, starts, weights, cutout, d, xsT, ssT):
        n_sym = xsT.shape[2]
        i = cuda.grid(1)
        if i >= 6 * n_sym:
            return
        f = i // n_sym
        s = i - f * n_sym
        lo = 9 * f
        core.layer2_core(qT[lo:lo + 9, :, s], eT[lo:lo + 9, :, s], rT[:, s], starts[s], cutout,
                         weights[f], d, xsT[f, :, s], ssT[f, :, s])

    @cuda.jit
    def final_kernel(xsT, ssT, starts, cutout, th_long, th_short, dsrc, shift,
                     avgT, dirT, longT, shortT):
        s = cuda.grid(1)
        if s >= avgT.shape[1]:
            return
        core.final_core(xsT[:, :, s], ssT[:, :, s], starts[s], cutout, th_long, th_short, dsrc,
                        shift, avgT[:, s], dirT[:, s], longT[:, s], shortT[:, s])

    return returns_kernel, member_kernel, layer2_kernel, final_kernel


def _array_module(arr):
    if type(arr).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np  # the CUDA simulator runs on NumPy arrays


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


def _store(xp, dst, view):
    """Write a time-major view into a symbol-major destination (device, host or simulated)."""
    if xp is np or type(dst).__module__.split(".")[0] == "cupy":
        dst[...] = view  # one strided copy, no temporary
    else:
        xp.ascontiguousarray(view).get(out=dst)  # device -> host; blocks until done


def release_pool() -> None:
    """Return CuPy's cached free blocks to the device (after an out-of-memory error)."""
    import cupy
    cupy.get_default_memory_pool().free_all_blocks()


def run_gpu_block(cls, src, starts, params, members, out=None, on_launched=None):
    """Run the CUDA kernels on one block of (S, T) arrays.

    Parameters
    ----------
    cls, src : (S, T) float64
        CuPy arrays on the device, or NumPy arrays under the CUDA simulator;
        ``src`` may be ``cls`` itself.
    starts : (S,) int64 NumPy
    params : dict
        From :func:`gpu_trend.engine.kernel_params`.
    members : bool
    out : dict of arrays, optional
        Symbol-major destinations with the shapes of
        :func:`gpu_trend.engine.allocate_outputs`: device arrays (written in
        place, e.g. row slices of the universe's outputs) or NumPy arrays
        (downloaded into, one output at a time). Allocated on the device when
        None.
    on_launched : callable, optional
        Called once the kernels are queued and before the results are stored:
        host work placed here (the next block's upload) overlaps the kernels.

    Returns
    -------
    dict
        ``out``, or the newly allocated device outputs.
    """
    xp = _array_module(cls)
    returns_kernel, member_kernel, layer2_kernel, final_kernel = _kernels()
    n_sym, n_bars = cls.shape
    p = params
    clsT = xp.ascontiguousarray(cls.T)
    srcT = clsT if src is cls else xp.ascontiguousarray(src.T)
    growth, weights = xp.asarray(p["growth"]), xp.asarray(p["weights"])
    lens = xp.asarray(np.ascontiguousarray(p["lens"]).reshape(-1))
    starts_d = xp.asarray(starts)
    # The cores write every element they later read or return (NaN before a listing), so
    # the scratch and outputs start uninitialised.
    rT = xp.empty((n_bars, n_sym))
    xsT = xp.empty((6, n_bars, n_sym))
    ssT = xp.empty((6, n_bars, n_sym))
    if members:
        maT = xp.empty((54, n_bars, n_sym))
        qT = xp.empty((54, n_bars, n_sym))
    else:
        maT = xp.empty((1, n_bars, 1))
        qT = xp.empty((54, n_bars, n_sym), dtype=np.int8)  # q is −1, 0 or +1 past the listing
    eT = xp.empty((54, n_bars, n_sym))
    avgT = xp.empty((n_bars, n_sym))
    dirT = xp.empty((n_bars, n_sym))
    longT = xp.empty((n_bars, n_sym), dtype=bool)
    shortT = xp.empty((n_bars, n_sym), dtype=bool)
    if n_sym and n_bars:
        stream = _launch_stream(xp)
        arg = functools.partial(_kernel_arg, xp)
        returns_kernel[_grid(n_sym, stream)](arg(clsT), arg(growth), arg(starts_d), arg(rT))
        member_kernel[_grid(54 * n_sym, stream)](
            arg(srcT), arg(clsT), arg(rT), arg(starts_d), arg(lens), p["cutout"], p["d"],
            p["tie"], members, arg(maT), arg(qT), arg(eT))
        layer2_kernel[_grid(6 * n_sym, stream)](
            arg(qT), arg(eT), arg(rT), arg(starts_d), arg(weights), p["cutout"], p["d"],
            arg(xsT), arg(ssT))
        final_kernel[_grid(n_sym, stream)](
            arg(xsT), arg(ssT), arg(starts_d), p["cutout"], p["th_long"], p["th_short"],
            p["dsrc"], p["shift"], arg(avgT), arg(dirT), arg(longT), arg(shortT))
    if on_launched is not None:
        on_launched()
    views = dict(
        average_signal=avgT.T,
        family_signals=xsT.transpose(2, 0, 1),
        family_equities=ssT.transpose(2, 0, 1),
        direction=dirT.T,
        long_events=longT.T,
        short_events=shortT.T,
    )
    if members:
        for key, arr in zip(("member_ma", "member_signal", "member_equity"), (maT, qT, eT)):
            views[key] = arr.transpose(2, 0, 1)
    if out is None:
        return {k: xp.ascontiguousarray(v) for k, v in views.items()}
    for key, view in views.items():
        _store(xp, out[key], view)
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
        ``load(start, stop) -> (cls, src)``: host (rows, T) float64 arrays of
        those symbols, NaN policy applied; ``src`` may be ``cls``.
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

        cls, src = self._load(start, stop)
        arrays = (cls,) if src is cls else (cls, src)
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
        cls_d = dev[0]
        src_d = cls_d if len(dev) == 1 else dev[1]
        return (start, stop), (cls_d, src_d), event, pinned

    def prefetch(self, start, stop):
        """Start uploading symbols ``start:stop`` (replaces an earlier prefetch)."""
        self._pending = self._upload(start, stop)

    def take(self, start, stop):
        """``(cls, src)`` on the device for ``start:stop``, ordered before later work on the
        current stream."""
        import cupy

        item = self._pending
        self._pending = None
        if item is None or item[0] != (start, stop):
            item = self._upload(start, stop)
        cupy.cuda.get_current_stream().wait_event(item[2])
        # The pinned buffers must outlive their asynchronous copy: keep them until the next
        # block, which starts only after this block's results came back.
        self._in_use = item
        return item[1]

    def drop(self):
        """Forget any prefetched block (after an out-of-memory error)."""
        self._pending = None
        self._in_use = None


def block_runner(rows, starts, params, members, fill, make_out):
    """Per-block compute function for :func:`gpu_trend.memory.run_chunks`, and its OOM hook.

    Parameters
    ----------
    rows : callable
        ``rows(start, stop) -> (cls, src)`` views of the universe's rows
        (device arrays, host arrays, or NumPy under the simulator).
    starts : (S,) int64 NumPy
    params : dict
    members : bool
    fill : callable
        ``fill(cls, src) -> (cls, src)``: the NaN policy for one block.
    make_out : callable
        ``make_out(start, stop)``: the output arrays (dict) that block writes into.

    Returns
    -------
    compute : callable
        ``compute(start, stop, upcoming) -> outputs``.
    on_oom : callable or None
    """
    probe, _ = rows(0, 0)
    if simulated() or _array_module(probe) is not np:
        def compute(start, stop, upcoming):
            cls, src = fill(*rows(start, stop))
            out = make_out(start, stop)
            return run_gpu_block(cls, src, starts[start:stop], params, members, out=out)
        return compute, (None if simulated() else release_pool)

    feeder = HostFeeder(lambda a, b: fill(*rows(a, b)))

    def compute(start, stop, upcoming):
        cls, src = feeder.take(start, stop)
        out = make_out(start, stop)
        ahead = None if upcoming is None else (lambda: feeder.prefetch(*upcoming))
        return run_gpu_block(cls, src, starts[start:stop], params, members, out=out,
                             on_launched=ahead)

    def on_oom():
        feeder.drop()
        release_pool()

    return compute, on_oom
