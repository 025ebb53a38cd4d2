"""The GPU memory budget when CuPy allocates through RMM (gpu_trend.memory), and the dask-cuda
settings of an RMM pool per worker (gpu_trend.dask.rmm_options).

Without a GPU, CuPy and RMM are stand-ins put in ``sys.modules``: they have the attributes
gpu_trend reads (CuPy's allocator, pool and ``memGetInfo``; RMM's resource classes, their
``upstream_mr``, ``pool_size()``, ``get_allocated_bytes()``, ``allocation_counts``), with
sizes the tests choose. The tests marked ``gpu`` use the real libraries and skip without them.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types

import numpy as np
import pytest

from gpu_trend import memory
from gpu_trend.dask import rmm_options
from gpu_trend.memory import DeviceMemoryUnknownError

MiB = 1 << 20


# --- stand-ins ----------------------------------------------------------------------------

class CupyPool:
    """CuPy's default memory pool: `held` bytes from the device, `used` of them in arrays."""

    def __init__(self, held=0, used=0, limit=0):
        self.held, self.used, self.limit, self.limits_set = held, used, limit, []

    def malloc(self, nbytes):  # CuPy's default allocator is this bound method
        raise AssertionError("not called")

    def free_bytes(self):
        return self.held - self.used

    def used_bytes(self):
        return self.used

    def total_bytes(self):
        return self.held

    def get_limit(self):
        return self.limit

    def set_limit(self, size):
        self.limit = size
        self.limits_set.append(size)


def rmm_cupy_allocator(nbytes):
    raise AssertionError("not called")


rmm_cupy_allocator.__module__ = "rmm.allocators.cupy"  # where RMM defines it


class CudaMemoryResource:
    pass


class CudaAsyncMemoryResource:
    pass


class Adaptor:
    def __init__(self, upstream):
        self.upstream_mr = upstream


class PoolMemoryResource(Adaptor):
    def __init__(self, upstream, size):
        super().__init__(upstream)
        self.size = size

    def pool_size(self):
        return self.size


class TrackingResourceAdaptor(Adaptor):
    def __init__(self, upstream, allocated):
        super().__init__(upstream)
        self.allocated = allocated

    def get_allocated_bytes(self):
        return self.allocated


class LimitingResourceAdaptor(TrackingResourceAdaptor):
    def __init__(self, upstream, allocated, limit):
        super().__init__(upstream, allocated)
        self.limit = limit

    def get_allocation_limit(self):
        return self.limit


@dataclasses.dataclass
class Statistics:  # rmm.statistics.Statistics
    current_bytes: int
    current_count: int = 0


class StatisticsResourceAdaptor(Adaptor):
    def __init__(self, upstream, counts):
        super().__init__(upstream)
        self.allocation_counts = counts


@pytest.fixture
def device(monkeypatch):
    """Install stand-in CuPy and RMM modules; returns a namespace whose ``driver_free``,
    ``allocator``, ``pool`` (CuPy's) and ``resource`` (RMM's current) the test sets."""
    dev = types.SimpleNamespace(driver_free=3 * MiB, pool=CupyPool(), resource=None)
    dev.allocator = dev.pool.malloc
    cupy = types.ModuleType("cupy")
    cupy.get_default_memory_pool = lambda: dev.pool
    cupy.cuda = types.SimpleNamespace(
        get_allocator=lambda: dev.allocator,
        runtime=types.SimpleNamespace(memGetInfo=lambda: (dev.driver_free, 80_000 * MiB)))
    rmm = types.ModuleType("rmm")
    rmm.mr = types.SimpleNamespace(
        get_current_device_resource=lambda: dev.resource,
        CudaMemoryResource=CudaMemoryResource, PoolMemoryResource=PoolMemoryResource,
        TrackingResourceAdaptor=TrackingResourceAdaptor,
        LimitingResourceAdaptor=LimitingResourceAdaptor,
        StatisticsResourceAdaptor=StatisticsResourceAdaptor)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "rmm", rmm)
    monkeypatch.setattr(memory, "_pool_checked", False)
    monkeypatch.delenv("CUPY_GPU_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    monkeypatch.setattr(memory, "_global_limit", None)
    return dev


def through_rmm(dev, resource):
    dev.allocator, dev.resource = rmm_cupy_allocator, resource


# --- which allocator ----------------------------------------------------------------------

def test_rmms_allocator_is_told_from_cupys_pool(device):
    assert not memory.cupy_allocates_through_rmm()
    through_rmm(device, CudaMemoryResource())
    assert memory.cupy_allocates_through_rmm()


def test_with_cupys_pool_the_headroom_is_the_pools(device):
    device.pool = CupyPool(held=500 * MiB, used=200 * MiB, limit=1000 * MiB)
    device.allocator = device.pool.malloc
    device.driver_free = 700 * MiB
    # Free: the driver's 700 and the pool's 300 idle; the limit leaves 800 to allocate.
    assert memory.gpu_headroom_bytes() == (1000 * MiB, 800 * MiB)


# --- an RMM pool --------------------------------------------------------------------------

def test_a_tracked_rmm_pool_gives_its_size_less_what_is_allocated(device):
    # As dask-cuda sets it up: rmm_pool_size=1000 MiB, rmm_track_allocations=True. The pool
    # holds the device, so the driver's free memory (3 MiB) does not count.
    through_rmm(device, TrackingResourceAdaptor(
        PoolMemoryResource(CudaMemoryResource(), 1000 * MiB), allocated=200 * MiB))
    assert memory.gpu_headroom_bytes() == (800 * MiB, 800 * MiB)
    assert memory.resolve_budget(None, "gpu") == int(0.8 * 800 * MiB)
    assert memory.resolve_budget("50%", "gpu") == 400 * MiB
    assert memory.resolve_budget("2GiB", "gpu") == 800 * MiB
    assert memory.resolve_budget("2GiB", "gpu", reserve=300 * MiB) == 500 * MiB


@pytest.mark.parametrize("counts", [Statistics(current_bytes=250 * MiB),
                                    {"current_bytes": 250 * MiB, "current_count": 3}],
                         ids=["Statistics", "dict"])
def test_statistics_count_what_the_pool_handed_out(device, counts):
    through_rmm(device, StatisticsResourceAdaptor(
        PoolMemoryResource(CudaMemoryResource(), 1000 * MiB), counts))
    assert memory.gpu_headroom_bytes() == (750 * MiB, 750 * MiB)


def test_a_limit_above_the_pool_caps_the_headroom(device):
    through_rmm(device, LimitingResourceAdaptor(
        PoolMemoryResource(CudaMemoryResource(), 1000 * MiB), allocated=200 * MiB,
        limit=500 * MiB))
    assert memory.gpu_headroom_bytes() == (800 * MiB, 300 * MiB)
    assert memory.resolve_budget("50%", "gpu") == 300 * MiB


def test_an_overcommitted_pool_has_no_headroom(device):
    through_rmm(device, TrackingResourceAdaptor(
        PoolMemoryResource(CudaMemoryResource(), 100 * MiB), allocated=120 * MiB))
    assert memory.gpu_headroom_bytes() == (0, 0)


@pytest.mark.parametrize("stack", ["bare pool", "tracking below the pool"])
def test_a_pool_that_cannot_say_what_it_handed_out_is_an_error(device, stack):
    if stack == "bare pool":
        resource = PoolMemoryResource(CudaMemoryResource(), 1000 * MiB)
    else:  # counts the pool's own blocks from the device, not what the pool hands out
        resource = PoolMemoryResource(
            TrackingResourceAdaptor(CudaMemoryResource(), allocated=1000 * MiB), 1000 * MiB)
    through_rmm(device, resource)
    with pytest.raises(DeviceMemoryUnknownError,
                       match=r"PoolMemoryResource\) is a pool of 1000.0 MiB .* "
                             r"rmm_track_allocations=True"):
        memory.resolve_budget("1GiB", "gpu")


# --- RMM without a pool -------------------------------------------------------------------

def test_without_a_pool_the_driver_says_what_is_free(device):
    device.driver_free = 900 * MiB
    through_rmm(device, TrackingResourceAdaptor(CudaMemoryResource(), allocated=5000 * MiB))
    assert memory.gpu_headroom_bytes() == (900 * MiB, 900 * MiB)
    # dask-cuda's rmm_async with rmm_maximum_pool_size: a limit over cudaMallocAsync.
    through_rmm(device, LimitingResourceAdaptor(CudaAsyncMemoryResource(),
                                                allocated=400 * MiB, limit=1000 * MiB))
    assert memory.gpu_headroom_bytes() == (900 * MiB, 600 * MiB)


# --- CuPy's pool is capped only when CuPy uses it -----------------------------------------

def test_cupys_pool_is_not_capped_while_cupy_allocates_through_rmm(device):
    device.pool = CupyPool(held=10 * MiB)
    device.driver_free = 1000 * MiB
    through_rmm(device, TrackingResourceAdaptor(
        PoolMemoryResource(CudaMemoryResource(), 1000 * MiB), allocated=0))
    memory.ensure_gpu_pool()
    assert device.pool.limits_set == []
    # Back on CuPy's own pool, the next GPU call caps it once.
    device.allocator = device.pool.malloc
    memory.ensure_gpu_pool()
    memory.ensure_gpu_pool()
    assert device.pool.limits_set == [10 * MiB + int(0.9 * 1000 * MiB)]


# --- dask-cuda's settings -----------------------------------------------------------------

@pytest.mark.parametrize("budget, size", [("85%", 0.85), ("40GiB", 40 << 30), ("4G", 4 << 30),
                                          ("1.5GB", 1_500_000_000), (123 << 20, 123 << 20),
                                          (None, 0.9)])
def test_rmm_options_size_a_fixed_pool_that_cupy_allocates_from_and_rmm_tracks(budget, size):
    opts = rmm_options(budget)
    assert opts == {"rmm_pool_size": size, "rmm_maximum_pool_size": size,
                    "rmm_allocator_external_lib_list": ["cupy"], "rmm_track_allocations": True}
    # dask-cuda reads a float as a fraction of the worker's device, an int as bytes.
    assert type(opts["rmm_pool_size"]) is (float if isinstance(size, float) else int)


@pytest.mark.parametrize("bad", ["lots", "0%", "150%", -1, 0, True])
def test_rmm_options_reject_what_is_no_budget(bad):
    with pytest.raises(ValueError, match="memory limit"):
        rmm_options(bad)


def test_rmm_options_touch_no_gpu_library():
    code = ("import sys, gpu_trend.dask as g; g.rmm_options('85%'); "
            "print(sorted({'cupy', 'rmm', 'dask_cuda', 'numba.cuda'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


def test_rmm_options_are_local_cuda_cluster_arguments():
    import inspect

    dask_cuda = pytest.importorskip("dask_cuda", reason="dask-cuda is not installed")
    params = inspect.signature(dask_cuda.LocalCUDACluster).parameters
    assert set(rmm_options()) <= set(params)


# --- on a real device ---------------------------------------------------------------------

@pytest.fixture
def rmm_pool_for_cupy():
    """A 256 MiB RMM pool with statistics, CuPy allocating from it; put back afterwards."""
    cupy = pytest.importorskip("cupy")
    rmm = pytest.importorskip("rmm", reason="RMM is not installed")
    from rmm.allocators.cupy import rmm_cupy_allocator as allocator

    saved_mr, saved_allocator = rmm.mr.get_current_device_resource(), cupy.cuda.get_allocator()
    pool = rmm.mr.PoolMemoryResource(rmm.mr.CudaMemoryResource(), 256 * MiB, 256 * MiB)
    rmm.mr.set_current_device_resource(rmm.mr.StatisticsResourceAdaptor(pool))
    cupy.cuda.set_allocator(allocator)
    try:
        yield cupy
    finally:
        cupy.cuda.set_allocator(saved_allocator)
        rmm.mr.set_current_device_resource(saved_mr)


@pytest.mark.gpu
def test_a_real_rmm_pool_is_planned_in(rmm_pool_for_cupy):
    cupy = rmm_pool_for_cupy
    free, headroom = memory.gpu_headroom_bytes()
    assert free == headroom <= 256 * MiB
    held = cupy.empty(16 * MiB // 8)
    assert memory.gpu_headroom_bytes() == (free - 16 * MiB,) * 2
    del held
    import gpu_trend

    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, (20, 300)), 1))
    want = gpu_trend.compute_atc(close, backend="cpu")
    got = gpu_trend.compute_atc(cupy.asarray(close), memory_limit="50%")
    np.testing.assert_array_equal(cupy.asnumpy(got.average_signal), want.average_signal)


@pytest.mark.gpu
def test_local_cuda_cluster_with_an_rmm_pool_equals_local():
    dask_cuda = pytest.importorskip("dask_cuda", reason="dask-cuda is not installed")
    pytest.importorskip("rmm", reason="RMM is not installed")
    cupy = pytest.importorskip("cupy")
    import dask.array as da
    import distributed

    import gpu_trend
    import gpu_trend.dask as gtd

    close = 100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, (24, 300)), 1))
    want = gpu_trend.compute_atc(close, backend="cpu")
    with dask_cuda.LocalCUDACluster(n_workers=1, **rmm_options("25%")) as cluster, \
            distributed.Client(cluster) as client:
        assert all(client.run(memory.cupy_allocates_through_rmm).values())
        x = da.from_array(close, chunks=(8, -1)).map_blocks(cupy.asarray)
        got = gtd.compute_atc(x, memory_limit="50%").compute()
    np.testing.assert_array_equal(cupy.asnumpy(got.average_signal), want.average_signal)
