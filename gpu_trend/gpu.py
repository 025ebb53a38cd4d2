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
from numba import cuda  # no driver call at import; the simulator patches `cuda`

from cpu_fallback.kernels import N_WORK, build_cores

THREADS = 128


@functools.lru_cache(maxsize=None)
def _kernels():
    family_core, final_core = build_cores(cuda.jit(device=True))

    @cuda.jit
    def family_kernel(srcT, clsT, growth, starts, lens, weights, cutout, d, tie,
                      xsT, ssT, want, maT, msigT, meqT, workT, wbufT):
        n_sym = clsT.shape[1]
        i = cuda.grid(1)
        if i >= 6 * n_sym:
            return
        f = i // n_sym
        s = i - f * n_sym
        lo = 9 * f
        ma = maT[lo:lo + 9, :, s]
        if want:
            mg = msigT[lo:lo + 9, :, s]
            me = meqT[lo:lo + 9, :, s]
        else:
            mg = ma
            me = ma
        family_core(srcT[:, s], clsT[:, s], growth, starts[s], f, lens[f], weights[f], cutout,
                    d, tie, xsT[f, :, s], ssT[f, :, s], ma, workT[3 * f:3 * f + 3, :, s],
                    wbufT[2 * f:2 * f + 2, :, s], want, mg, me)

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
    dev = {k: xp.asarray(p[k]) for k in ("growth", "lens", "weights")}
    starts_d = xp.asarray(starts)
    xsT = xp.full((6, n_bars, n_sym), np.nan)
    ssT = xp.full((6, n_bars, n_sym), np.nan)
    # Member MAs double as phase-A scratch; signals/equities only when asked for.
    maT = xp.full((54, n_bars, n_sym), np.nan)
    if members:
        msigT = xp.full((54, n_bars, n_sym), np.nan)
        meqT = xp.full((54, n_bars, n_sym), np.nan)
    else:
        msigT = meqT = xp.empty((54, 1, 1))
    workT = xp.empty((6 * N_WORK, n_bars, n_sym))
    wbufT = xp.empty((12, int(p["lens"].max()), n_sym))
    if n_sym and n_bars:
        blocks = (6 * n_sym + THREADS - 1) // THREADS
        family_kernel[blocks, THREADS](srcT, clsT, dev["growth"], starts_d, dev["lens"],
                                       dev["weights"], p["cutout"], p["d"], p["tie"], xsT, ssT,
                                       members, maT, msigT, meqT, workT, wbufT)
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
        for key, arr in zip(("member_ma", "member_signal", "member_equity"), (maT, msigT, meqT)):
            out[key] = xp.ascontiguousarray(arr.transpose(2, 0, 1))
    return out
