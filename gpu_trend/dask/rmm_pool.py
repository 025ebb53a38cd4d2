"""One RMM pool per GPU worker, sized from a memory budget, that the engine can plan in.

dask-cuda's ``LocalCUDACluster`` (and ``dask cuda worker``) can give each worker an RMM pool:
device memory taken once at start and handed out without ``cudaMalloc`` calls. The engine
then plans its budget inside that pool (:func:`gpu_trend.memory.rmm_headroom_bytes`), which
needs three more settings than the pool's size: CuPy must allocate from it, the pool must not
grow past the size it is planned on, and an adaptor must count what is allocated from it.
:func:`rmm_options` gives all four.
"""

from __future__ import annotations

from .. import memory


def rmm_options(pool_size=None) -> dict:
    """Keyword arguments of ``dask_cuda.LocalCUDACluster`` for an RMM pool per worker in which
    gpu_trend plans its memory budget.

    Nothing is imported or allocated here: each worker resolves the size on its own GPU when
    it starts.

    Parameters
    ----------
    pool_size : int or str, optional
        The pool of each worker, as a memory budget is written (:mod:`gpu_trend.memory`):
        bytes, ``"40GiB"``, ``"40GB"``, ``"40G"`` (1024³, as everywhere in gpu_trend, where
        Dask would read 10⁹), or ``"85%"``: a percentage of *each worker's total device
        memory* (dask-cuda resolves a float on the worker; bytes are the same on every
        worker). Default :data:`gpu_trend.memory.DEFAULT_GPU_POOL_FRACTION` (90 %), the share
        gpu_trend caps CuPy's own pool at. The pool is allocated when the worker starts:
        leave room for the CUDA context and for other processes on the device.

    Returns
    -------
    dict
        * ``rmm_pool_size`` and ``rmm_maximum_pool_size``: the size, as a fraction (float)
          or bytes (int). A pool that does not grow, so that its size is what the engine
          plans in;
        * ``rmm_allocator_external_lib_list=["cupy"]``: CuPy allocates from the pool
          (dask-cuda ≥ 24.12);
        * ``rmm_track_allocations=True``: RMM's ``TrackingResourceAdaptor`` counts what is
          allocated from the pool; without it the engine cannot size its budget
          (:class:`gpu_trend.memory.DeviceMemoryUnknownError`). Its cost is per
          allocation, and the engine allocates a few large arrays per chunk.

    Raises
    ------
    ValueError
        `pool_size` is not a size or a percentage in (0, 100].

    Examples
    --------
    >>> rmm_options("85%")["rmm_pool_size"]
    0.85
    >>> rmm_options("40GiB")["rmm_maximum_pool_size"]
    42949672960
    >>> cluster = dask_cuda.LocalCUDACluster(**rmm_options("85%"))  # doctest: +SKIP
    """
    if pool_size is None:
        size = memory.DEFAULT_GPU_POOL_FRACTION
    else:
        kind, number = memory._parse(pool_size)
        size = float(number) if kind == "fraction" else int(number)
    return {"rmm_pool_size": size, "rmm_maximum_pool_size": size,
            "rmm_allocator_external_lib_list": ["cupy"], "rmm_track_allocations": True}
