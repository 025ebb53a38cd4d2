"""CPU backend of gpu-trend: the ATC cores compiled with Numba.

The arithmetic lives in :mod:`cpu_fallback.kernels` and is shared with the
GPU backend, which compiles the same source with ``numba.cuda``.
"""
