"""Memory budgets: how many symbols one block of work may hold at once.

A *budget* bounds the **working memory** of one :func:`gpu_trend.compute_atc`
or :func:`gpu_trend.iter_atc` call: everything the engine allocates beyond the
caller's input and the arrays it returns. The engine splits the symbol axis
into chunks that fit the budget; every symbol is computed independently, so
the results are bit-for-bit the same whatever the chunking.

Where a budget comes from, first match wins:

1. the call's ``memory_limit=`` argument;
2. :func:`set_memory_limit` (process-wide);
3. the ``GPU_TREND_MEMORY_LIMIT`` environment variable;
4. the default: :data:`DEFAULT_CPU_FRACTION` of the available host RAM on the
   CPU backend, :data:`DEFAULT_GPU_FRACTION` of the device memory the CuPy
   pool can still hand out on the GPU backend.

A budget is an ``int`` (bytes) or a string: ``"4GiB"``, ``"512MB"``,
``"1.5 GB"``, ``"800M"`` or ``"50%"``. ``KB/MB/GB/TB`` are powers of 1000,
``KiB/MiB/GiB/TiB`` and the bare ``K/M/G/T`` powers of 1024. A percentage is
of the available host RAM on the CPU backend and of the free device memory
(the driver's free memory plus the pool's idle blocks; with RMM, see below)
on the GPU backend, taken when the call starts.

The GPU memory pool
-------------------
On the first GPU call, unless ``CUPY_GPU_MEMORY_LIMIT`` is set (CuPy applies
it itself) or the pool already has a limit, gpu_trend caps CuPy's default
memory pool at what it holds plus :data:`DEFAULT_GPU_POOL_FRACTION` of the
free device memory. The cap turns a runaway allocation into CuPy's
``OutOfMemoryError`` (which the chunk runner catches: it halves the chunk
and goes on) instead of starving other processes on the device. A GPU
budget is always planned inside the pool's remaining headroom.

When CuPy allocates through RMM (``rmm.allocators.cupy.rmm_cupy_allocator``,
as dask-cuda's ``rmm_allocator_external_lib_list=["cupy"]`` sets it), CuPy's
pool is unused and left alone; the free memory and the headroom come from
RMM's current device resource (:func:`rmm_headroom_bytes`): a pool's size
less what is allocated from it, which an adaptor above the pool counts
(dask-cuda's ``rmm_track_allocations=True`` adds one). Without such an
adaptor RMM cannot say what a pool has handed out: that is a
:class:`DeviceMemoryUnknownError`, not a guess.

What the planner counts
-----------------------
The byte counts are read off the arrays each step allocates: the outputs'
from their declaration (:mod:`gpu_trend.outputs`), each backend's own scratch
from its ``scratch_footprint`` (:mod:`cpu_fallback.backend`,
:mod:`gpu_trend.gpu`), and the engine's validation and NaN-fill masks from
the constants below; tests check them against tracemalloc on the CPU. Python
objects per symbol (names, small index arrays) and NumPy's ufunc buffers are
counted as small fixed allowances. Not counted: the interpreter, the compiled
kernels and the caller's input (all outside the call's working memory).
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import outputs

log = logging.getLogger(__name__)

ENV_VAR = "GPU_TREND_MEMORY_LIMIT"
#: Default CPU budget: this fraction of the available host RAM.
DEFAULT_CPU_FRACTION = 0.5
#: Default GPU budget: this fraction of the device memory the pool can still hand out.
DEFAULT_GPU_FRACTION = 0.8
#: Cap put on CuPy's default pool on first GPU use: held bytes + this fraction of free memory.
DEFAULT_GPU_POOL_FRACTION = 0.9
#: Largest chunk the CPU backend plans on its own: past a few hundred symbols per
#: core a bigger chunk is no faster, it only holds more memory.
CPU_MAX_CHUNK = 2048

F8 = 8  # bytes of a float64 / int64

# Bytes per symbol-bar, from the arrays each step allocates (see module docstring).
#: Validation masks of one slice (isnan, valid, the price test, holes); measured 3 on
#: large slices (NumPy's buffers come on top, in NUMPY_SLACK).
VALIDATE_CLOSE = 5
#: ... plus the source's isinf / isnan masks when a separate source is given; measured +1.
VALIDATE_SOURCE = 3
#: Forward fill of the close: where/accumulate index arrays (2 × 8), the filled copy (8)
#: and masks; the copy lives while the block computes. Measured 18 with validation's masks.
FILL_CLOSE = 28
#: ... and of a separate source; measured 36 in total.
FILL_SOURCE = 24
#: Per-symbol bookkeeping of a block independent of the bar count (result slices, ...).
PER_SYMBOL_OVERHEAD = 64
#: Per-symbol bookkeeping of the whole universe: names, starts, first-full-bar arrays.
PER_UNIVERSE_SYMBOL = 128
#: NumPy's broadcasting ufunc loops allocate iterator buffers (8192 elements each,
#: measured 64 KiB per operation) whatever the array size.
NUMPY_SLACK = 128 * 1024

_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4,
    "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*|%)\s*$")

_global_limit: int | str | None = None


class MemoryBudgetError(ValueError):
    """The budget cannot hold the work of even one symbol.

    A ValueError, not a MemoryError: it is a setting to change, and the
    chunk runner must not mistake it for an allocation failure to split.

    Attributes
    ----------
    needed : int
        Bytes one symbol needs (with the fixed costs).
    budget : int
        The budget in bytes.
    """

    def __init__(self, message, needed, budget):
        super().__init__(message)
        self.needed = needed
        self.budget = budget


class DeviceMemoryUnknownError(RuntimeError):
    """CuPy allocates from an RMM pool that cannot say how much of it is in use.

    Not a MemoryError: it is a setting to change (see :func:`rmm_headroom_bytes`), which the
    chunk runner must not take for an allocation failure to split.
    """


class SimulatedOutOfMemoryError(MemoryError):
    """Raised by :func:`inject_out_of_memory` for chunks above its size."""


# ----------------------------------------------------------------------------
# parsing and the global setting
# ----------------------------------------------------------------------------

def _parse(value):
    """``("bytes", int)`` or ``("fraction", float)`` from a budget spec; ValueError if bad."""
    if isinstance(value, bool):
        raise ValueError(f"memory limit must be bytes (int) or a string like '4GiB' or '50%', "
                         f"got {value!r}")
    if isinstance(value, numbers.Integral):
        value = int(value)
        if value <= 0:
            raise ValueError(f"memory limit must be positive, got {value!r} bytes")
        return "bytes", value
    if isinstance(value, str):
        m = _PATTERN.match(value)
        if m:
            number, unit = float(m.group(1)), m.group(2).lower()
            if unit == "%":
                if not 0 < number <= 100:
                    raise ValueError(f"memory limit percentage must be in (0, 100], got {value!r}")
                return "fraction", number / 100.0
            if unit in _UNITS:
                size = number * _UNITS[unit]
                if not math.isfinite(size):  # "1e400GB": int() would raise OverflowError
                    raise ValueError(f"memory limit {value!r} is too large to be a size; give "
                                     f"bytes or a string like '4GiB', '512MB' or '50%'")
                size = int(size)
                if size <= 0:
                    raise ValueError(f"memory limit must be positive, got {value!r}")
                return "bytes", size
    raise ValueError(f"memory limit must be bytes (int) or a string like '4GiB', '512MB' or "
                     f"'50%', got {value!r}")


def parse_memory_limit(value, *, available: int | None = None) -> int:
    """Bytes of a budget spec.

    Parameters
    ----------
    value : int or str
        Bytes, or a string such as ``"4GiB"``, ``"512MB"`` or ``"50%"``.
    available : int, optional
        What a percentage is of; defaults to the available host RAM.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``value`` is not a positive size or a percentage in (0, 100].

    Examples
    --------
    >>> parse_memory_limit("4GiB")
    4294967296
    >>> parse_memory_limit("50%", available=1000)
    500
    """
    kind, number = _parse(value)
    if kind == "bytes":
        return number
    if available is None:
        available = host_available_bytes()
    return max(1, int(number * available))


def set_memory_limit(value) -> None:
    """Set the process-wide working-memory budget (``None`` clears it).

    It applies to calls without ``memory_limit=`` and takes precedence over
    the ``GPU_TREND_MEMORY_LIMIT`` environment variable.

    Parameters
    ----------
    value : int, str or None
        Bytes, ``"4GiB"``, ``"512MB"``, ``"50%"``; see the module docstring.

    Raises
    ------
    ValueError
        If ``value`` cannot be parsed (checked now, not at the next call).
    """
    global _global_limit
    if value is not None:
        _parse(value)
    _global_limit = value


def get_memory_limit():
    """The process-wide budget spec set by :func:`set_memory_limit`, else the env var's, else None."""
    if _global_limit is not None:
        return _global_limit
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
        return None
    try:
        _parse(env)
    except ValueError as exc:
        raise ValueError(f"environment variable {ENV_VAR}: {exc}") from None
    return env


# ----------------------------------------------------------------------------
# what is available
# ----------------------------------------------------------------------------

def host_available_bytes() -> int:
    """Host RAM available to new allocations without swapping."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


_pool_checked = False


def cupy_allocates_through_rmm() -> bool:
    """Whether CuPy's current allocator is RMM's (``rmm.allocators.cupy.rmm_cupy_allocator``)
    rather than CuPy's own memory pool.

    Told by the allocator's module, so that RMM is never imported here: a process whose
    CuPy allocates through RMM has imported it already.
    """
    import cupy

    module = getattr(cupy.cuda.get_allocator(), "__module__", None) or ""
    return module.partition(".")[0] == "rmm"


def ensure_gpu_pool() -> None:
    """Cap CuPy's default memory pool once, on first GPU use (see the module docstring).

    Not while CuPy allocates through RMM: its own pool is unused then, and RMM's resource
    bounds CuPy's memory.
    """
    global _pool_checked
    if _pool_checked:
        return
    if os.environ.get("CUPY_GPU_MEMORY_LIMIT", "").strip():
        _pool_checked = True
        return
    import cupy

    if cupy_allocates_through_rmm():
        return  # looked at again on the next call, should CuPy's own pool come back
    _pool_checked = True
    pool = cupy.get_default_memory_pool()
    if pool.get_limit():
        return
    free, _total = cupy.cuda.runtime.memGetInfo()
    cap = pool.total_bytes() + int(DEFAULT_GPU_POOL_FRACTION * free)
    pool.set_limit(size=cap)
    log.info("capped CuPy's default memory pool at %s (%.0f%% of free device memory "
             "plus the %s it holds)", format_bytes(cap), 100 * DEFAULT_GPU_POOL_FRACTION,
             format_bytes(pool.total_bytes()))


def gpu_headroom_bytes() -> tuple:
    """``(free, headroom)`` on the current device, in bytes: the free device memory (what a
    percentage budget is of) and what CuPy may still allocate.

    With CuPy's own pool: the driver's free memory plus the pool's idle blocks, and what the
    pool may still allocate under its limit. With CuPy allocating through RMM:
    :func:`rmm_headroom_bytes`.
    """
    import cupy

    if cupy_allocates_through_rmm():
        return rmm_headroom_bytes()
    pool = cupy.get_default_memory_pool()
    free = int(cupy.cuda.runtime.memGetInfo()[0]) + int(pool.free_bytes())
    limit = int(pool.get_limit())
    headroom = free if not limit else min(free, max(limit - int(pool.used_bytes()), 0))
    return free, headroom


def rmm_headroom_bytes() -> tuple:
    """``(free, headroom)`` of RMM's current device resource, for CuPy allocating through it.

    The resource is read from the top down to the first ``PoolMemoryResource``. What is
    allocated comes from the first adaptor above the pool that counts it:
    ``TrackingResourceAdaptor`` or ``LimitingResourceAdaptor`` (``get_allocated_bytes()``),
    ``StatisticsResourceAdaptor`` (``allocation_counts``' current bytes); every allocation
    from the pool passes through it.

    * With a pool: free is its ``pool_size()`` less what is allocated. A pool that may still
      grow is counted at its present size (RMM does not say its maximum): give it a maximum
      equal to its size, as :func:`gpu_trend.dask.rmm_options` does.
    * Without one (``cudaMalloc``, ``cudaMallocAsync``, managed memory): free is the
      driver's free memory (memory a ``cudaMallocAsync`` pool keeps after frees is not
      counted).

    The headroom is the free memory, capped by a ``LimitingResourceAdaptor``'s limit less
    its allocated bytes.

    Raises
    ------
    DeviceMemoryUnknownError
        A pool without an adaptor above it that counts allocations: how much of it is free
        is unknown.
    """
    import rmm  # imported already: CuPy's allocator is RMM's

    mr = rmm.mr.get_current_device_resource()
    top = type(mr).__name__
    allocated = room = pool = None
    while mr is not None:
        if isinstance(mr, rmm.mr.PoolMemoryResource):
            pool = int(mr.pool_size())
            break
        if isinstance(mr, rmm.mr.LimitingResourceAdaptor) and room is None:
            room = int(mr.get_allocation_limit()) - int(mr.get_allocated_bytes())
        if allocated is None:
            allocated = _allocated_through(rmm, mr)
        mr = getattr(mr, "upstream_mr", None)
    if pool is None:
        import cupy

        free = int(cupy.cuda.runtime.memGetInfo()[0])
    elif allocated is None:
        raise DeviceMemoryUnknownError(
            f"CuPy allocates through RMM, whose resource ({top}) is a pool of "
            f"{format_bytes(pool)} that cannot say how much of it is in use, so gpu_trend "
            f"cannot size its memory budget. Wrap the resource in an adaptor that counts "
            f"allocations: dask-cuda's rmm_track_allocations=True (gpu_trend.dask."
            f"rmm_options() sets it), or in one process rmm.statistics.enable_statistics()")
    else:
        free = max(pool - allocated, 0)
    return free, free if room is None else max(min(free, room), 0)


def _allocated_through(rmm, mr):
    """Bytes allocated through the RMM resource `mr`, or None when it does not count them."""
    if isinstance(mr, (rmm.mr.TrackingResourceAdaptor, rmm.mr.LimitingResourceAdaptor)):
        return int(mr.get_allocated_bytes())
    if isinstance(mr, rmm.mr.StatisticsResourceAdaptor):
        counts = mr.allocation_counts  # a dict in older RMM, a Statistics dataclass since
        return int(counts["current_bytes"] if isinstance(counts, dict) else counts.current_bytes)
    return None


def resolve_budget(memory_limit, backend: str, *, reserve: int = 0) -> int:
    """The working-memory budget of one call, in bytes.

    Parameters
    ----------
    memory_limit : int, str or None
        The call's argument; None falls back to the global setting, the
        environment variable, then the backend's default.
    backend : {"cpu", "gpu"}
    reserve : int
        Device bytes the call will allocate outside the budget (its
        universe-sized device outputs): taken off the pool's headroom first.

    Returns
    -------
    int
        On the GPU, never more than the pool's headroom less ``reserve``.
    """
    spec = memory_limit if memory_limit is not None else get_memory_limit()
    if backend == "gpu":
        free, headroom = gpu_headroom_bytes()
        headroom = max(headroom - reserve, 0)
        if spec is None:
            return int(DEFAULT_GPU_FRACTION * headroom)
        return min(parse_memory_limit(spec, available=free), headroom)
    if spec is None:
        return int(DEFAULT_CPU_FRACTION * host_available_bytes())
    return parse_memory_limit(spec)


# ----------------------------------------------------------------------------
# the planner
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Footprint:
    """Working bytes of one block of work: ``fixed + per_symbol × symbols``."""

    per_symbol: int
    fixed: int

    def bytes_for(self, n_symbols: int) -> int:
        return self.fixed + self.per_symbol * n_symbols

    def symbols_within(self, budget: int) -> int:
        """Most symbols whose block fits ``budget`` (0 if not even one)."""
        return max((budget - self.fixed) // self.per_symbol, 0)


@dataclass(frozen=True)
class ChunkPlan:
    """How a call splits its symbols.

    Attributes
    ----------
    budget : int
        Working-memory budget in bytes.
    chunk_symbols : int
        Symbols per compute block.
    validate_symbols : int
        Symbols per slice of the validation pass.
    compute : Footprint
        Working bytes of a compute block.
    validate : Footprint
        Working bytes of a validation slice.
    """

    budget: int
    chunk_symbols: int
    validate_symbols: int
    compute: Footprint
    validate: Footprint


def compute_footprint(n_bars: int, *, scratch: Footprint, members: bool, n_symbols: int = 0,
                      separate_source: bool = False, fill: bool = False,
                      output_copies: int = 0, input_copies: int = 0,
                      fixed: int = 0) -> Footprint:
    """Working bytes of one compute block.

    Parameters
    ----------
    n_bars : int
    scratch : Footprint
        The backend's own scratch (its ``scratch_footprint``).
    members : bool
        Whether the 54 member outputs are requested.
    n_symbols : int
        Symbols in the whole universe (their names and per-symbol arrays are
        a fixed cost of the call).
    separate_source : bool
        A ``source`` distinct from ``close`` (a second input array).
    fill : bool
        The forward fill (``nan_policy="ffill"``) runs in the budget's memory:
        its index arrays and filled copies count.
    output_copies : int
        Block-sized output sets held in the budget's memory: 0 when the block
        writes into row slices of the returned arrays, 1 when it allocates
        its own (e.g. before they move to the other memory), 2 when the
        caller still holds the previous block's (:func:`iter_atc`).
    input_copies : int
        Copies of each block's input held in the budget's memory: 2 on the
        GPU fed from host arrays (this block's upload and the next one's), 1
        on the CPU fed from device arrays (the block's host copy).
    fixed : int
        Further fixed bytes (e.g. an input copy made while normalising).

    Returns
    -------
    Footprint
    """
    n_in = 2 if separate_source else 1
    per_bar = input_copies * n_in * F8 + output_copies * outputs.bytes_per_symbol_bar(members)
    if fill:
        per_bar += FILL_CLOSE + (FILL_SOURCE if separate_source else 0)
    per_symbol = per_bar * n_bars + scratch.per_symbol + PER_SYMBOL_OVERHEAD
    # The growth factors are one row of T floats, wherever the backend keeps them.
    fixed_bytes = (fixed + scratch.fixed + n_bars * F8 + NUMPY_SLACK
                   + PER_UNIVERSE_SYMBOL * n_symbols)
    return Footprint(per_symbol=per_symbol, fixed=fixed_bytes)


def validate_footprint(n_bars: int, *, n_symbols: int = 0, separate_source: bool = False,
                       fixed: int = 0) -> Footprint:
    """Working bytes of one validation slice (the masks of ``engine.validate_inputs``).

    ``n_symbols`` and ``fixed`` as for :func:`compute_footprint`.
    """
    per_bar = VALIDATE_CLOSE + (VALIDATE_SOURCE if separate_source else 0)
    return Footprint(per_symbol=per_bar * n_bars + PER_SYMBOL_OVERHEAD,
                     fixed=fixed + NUMPY_SLACK + PER_UNIVERSE_SYMBOL * n_symbols)


def plan_chunks(n_symbols: int, budget: int, compute: Footprint, validate: Footprint, *,
                chunk_symbols: int | None = None, max_chunk: int | None = None) -> ChunkPlan:
    """Pick the chunk sizes that keep both passes within ``budget``.

    Parameters
    ----------
    n_symbols : int
    budget : int
        Bytes.
    compute, validate : Footprint
        From :func:`compute_footprint` and :func:`validate_footprint`.
    chunk_symbols : int, optional
        The caller's chunk size; the budget still caps it.
    max_chunk : int, optional
        The backend's own cap when the caller gives none.

    Returns
    -------
    ChunkPlan

    Raises
    ------
    TypeError
        If ``chunk_symbols`` is not an int (``1.5`` is not silently truncated).
    ValueError
        If ``chunk_symbols`` is below 1.
    MemoryBudgetError
        If not even one symbol fits; the message says how many bytes one needs.
    """
    if chunk_symbols is not None:
        if isinstance(chunk_symbols, bool) or not isinstance(chunk_symbols, numbers.Integral):
            raise TypeError(f"chunk_symbols must be an int (symbols per chunk) or None, got "
                            f"{chunk_symbols!r}")
        if chunk_symbols < 1:
            raise ValueError(f"chunk_symbols must be >= 1, got {chunk_symbols!r}")
    fits = compute.symbols_within(budget)
    fits_v = validate.symbols_within(budget)
    if n_symbols and min(fits, fits_v) < 1:
        needed = max(compute.bytes_for(1), validate.bytes_for(1))
        raise MemoryBudgetError(
            f"memory limit of {format_bytes(budget)} ({budget} bytes) cannot hold the work of one "
            f"symbol: {format_bytes(needed)} ({needed} bytes) are needed "
            f"({format_bytes(compute.fixed)} fixed + {format_bytes(compute.per_symbol)} per "
            f"symbol); raise memory_limit", needed=needed, budget=budget)
    if chunk_symbols is not None:
        size = int(chunk_symbols)
    else:
        size = max_chunk if max_chunk is not None else max(n_symbols, 1)
    size = max(1, min(size, fits, max(n_symbols, 1)))
    return ChunkPlan(budget=budget, chunk_symbols=size,
                     validate_symbols=max(1, min(fits_v, max(n_symbols, 1))),
                     compute=compute, validate=validate)


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style size."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while abs(n) >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


# ----------------------------------------------------------------------------
# running chunks, splitting on out-of-memory
# ----------------------------------------------------------------------------

_fault_above: int | None = None


@contextlib.contextmanager
def inject_out_of_memory(max_symbols: int):
    """Make every chunk of more than ``max_symbols`` symbols fail as if memory ran out.

    For tests of the split-and-retry path: inside the block, :func:`run_chunks`
    raises :class:`SimulatedOutOfMemoryError` (a ``MemoryError``) before
    computing any chunk larger than ``max_symbols``, on either backend.

    Parameters
    ----------
    max_symbols : int
        Largest chunk that still "fits"; 0 makes even one symbol fail.

    Examples
    --------
    >>> with inject_out_of_memory(3):
    ...     res = gpu_trend.compute_atc(prices, backend="cpu")  # runs in chunks of <= 3
    """
    global _fault_above
    saved = _fault_above
    _fault_above = int(max_symbols)
    try:
        yield
    finally:
        _fault_above = saved


def run_chunks(n_symbols: int, size: int, compute: Callable, *,
               on_oom: Callable | None = None) -> Iterator[tuple]:
    """Run ``compute(start, stop, upcoming)`` over consecutive symbol ranges.

    A ``MemoryError`` (CuPy's ``OutOfMemoryError`` is one) inside a chunk is
    logged, ``on_oom`` is called (to release cached memory), and the chunk is
    retried in halves; later chunks keep the smaller size. A single symbol
    that does not fit re-raises.

    Parameters
    ----------
    n_symbols, size : int
    compute : callable
        ``compute(start, stop, upcoming)``; ``upcoming`` is the range the
        next call will most likely get (for prefetching), or None.
    on_oom : callable, optional

    Yields
    ------
    (start, stop, result)
        In symbol order, covering ``range(n_symbols)`` exactly once.
    """
    start = 0
    size = max(1, int(size))
    while start < n_symbols:
        stop = min(start + size, n_symbols)
        upcoming = (stop, min(stop + size, n_symbols)) if stop < n_symbols else None
        try:
            if _fault_above is not None and stop - start > _fault_above:
                raise SimulatedOutOfMemoryError(
                    f"injected out-of-memory for a chunk of {stop - start} symbols "
                    f"(limit {_fault_above})")
            result = compute(start, stop, upcoming)
        except MemoryError as exc:
            if on_oom is not None:
                on_oom()
            if stop - start == 1:
                raise MemoryError(f"out of memory computing one symbol (index {start}) even "
                                  f"after splitting: {exc}") from exc
            size = (stop - start + 1) // 2
            log.warning("out of memory on symbols %d..%d (%d symbols: %s); retrying "
                        "in chunks of %d", start, stop - 1, stop - start, exc, size)
            continue
        yield start, stop, result
        start = stop
