"""CPU backend of gpu-trend: the ATC cores compiled with Numba (:mod:`cpu_fallback.backend`).

The arithmetic lives in :mod:`gpu_trend.cores` and is shared with the GPU
backend (:mod:`gpu_trend.gpu`), which compiles the same source with
``numba.cuda``.
"""
