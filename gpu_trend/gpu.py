"""GPU backend: the ATC cores of :mod:`cpu_fallback.kernels` compiled by numba.cuda.

Two launches per block of symbols:

* ``family_kernel``: one thread per (family, symbol) runs
  :func:`family_core` through all bars; threads of a warp share a family
  (no divergence between family branches) and read consecutive symbols of
  time-major (bars × symbols) arrays, so their loads coalesce.
* ``final_kernel``: one thread per symbol runs :func:`final_core`.

Inputs stay on the device; nothing here runs at import time. Under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run on NumPy arrays on the CPU,
which is how CI tests them without a GPU.
"""

from __future__ import annotations

import functools

import numpy as np

from cpu_fallback.kernels import N_COLS, N_STATE, build_cores

THREADS = 128


@functools.lru_cache(maxsize=None)
def _kernels():
    from numba import cuda, float64

    family_core, final_core = build_cores(cuda.jit(device=True))

    @cuda.jit
    def family_kernel(srcT, clsT, growth, starts, lens, order, weights, cutout, d, tie,
                      xsT, ssT, want, mmaT, msigT, meqT):
        n_sym = clsT.shape[1]
        i = cuda.grid(1)
        if i >= 6 * n_sym:
            return
        f = i // n_sym
        s = i - f * n_sym
        st = cuda.local.array((N_STATE, N_COLS), float64)
        lo = 9 * f
        if want:
            mm = mmaT[lo:lo + 9, :, s]
            mg = msigT[lo:lo + 9, :, s]
            me = meqT[lo:lo + 9, :, s]
        else:
            mm = mmaT[0:9, :, 0]
            mg = msigT[0:9, :, 0]
            me = meqT[0:9, :, 0]
        family_core(srcT[:, s], clsT[:, s], growth, starts[s], f, lens[f], order[f],
                    weights[f], cutout, d, tie, xsT[f, :, s], ssT[f, :, s], want,
                    mm, mg, me, st)

    @cuda.jit
    def final_kernel(xsT, ssT, starts, cutout, th_long, th_short, dsrc, shift,
                     avgT, dirT, longT, shortT):
        s = cuda.grid(1)
        if s >= avgT.shape[1]:
            return
        final_core(xsT[:, :, s], ssT[:, :, s], starts[s], cutout, th_long, th_short, dsrc,
                   shift, avgT[:, s], dirT[:, s], longT[:, s], shortT[:, s])

    return family_kernel, final_kernel


def _array_module(arr):
    if type(arr).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np  # the CUDA simulator runs on NumPy arrays


def run_gpu_block(cls, src, starts, params, members):
    """Run the CUDA kernels on (S, T) arrays; returns (S, ...) outputs like the CPU path.

    ``cls``/``src`` are CuPy arrays on a device, or NumPy arrays under the
    CUDA simulator.
    """
    xp = _array_module(cls)
    family_kernel, final_kernel = _kernels()
    n_sym, n_bars = cls.shape
    p = params
    clsT = xp.ascontiguousarray(cls.T)
    srcT = clsT if src is cls else xp.ascontiguousarray(src.T)
    dev = {k: xp.asarray(p[k]) for k in ("growth", "lens", "order", "weights")}
    starts_d = xp.asarray(starts)
    xsT = xp.full((6, n_bars, n_sym), np.nan)
    ssT = xp.full((6, n_bars, n_sym), np.nan)
    if members:
        memT = [xp.full((54, n_bars, n_sym), np.nan) for _ in range(3)]
    else:
        memT = [xp.empty((9, 1, 1)) for _ in range(3)]
    if n_sym and n_bars:
        blocks = (6 * n_sym + THREADS - 1) // THREADS
        family_kernel[blocks, THREADS](srcT, clsT, dev["growth"], starts_d, dev["lens"],
                                       dev["order"], dev["weights"], p["cutout"], p["d"],
                                       p["tie"], xsT, ssT, members, *memT)
    avgT = xp.full((n_bars, n_sym), np.nan)
    dirT = xp.full((n_bars, n_sym), np.nan)
    longT = xp.zeros((n_bars, n_sym), dtype=bool)
    shortT = xp.zeros((n_bars, n_sym), dtype=bool)
    if n_sym and n_bars:
        blocks = (n_sym + THREADS - 1) // THREADS
        final_kernel[blocks, THREADS](xsT, ssT, starts_d, p["cutout"], p["th_long"],
                                      p["th_short"], p["dsrc"], p["shift"], avgT, dirT,
                                      longT, shortT)
    out = dict(
        average_signal=xp.ascontiguousarray(avgT.T),
        family_signals=xp.ascontiguousarray(xsT.transpose(2, 0, 1)),
        family_equities=xp.ascontiguousarray(ssT.transpose(2, 0, 1)),
        direction=xp.ascontiguousarray(dirT.T),
        long_events=xp.ascontiguousarray(longT.T),
        short_events=xp.ascontiguousarray(shortT.T),
    )
    if members:
        for key, arr in zip(("member_ma", "member_signal", "member_equity"), memT):
            out[key] = xp.ascontiguousarray(arr.transpose(2, 0, 1))
    return out
