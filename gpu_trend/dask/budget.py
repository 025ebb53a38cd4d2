"""The memory budget on a cluster: one spec, resolved by every worker for itself.

A block's task calls the engine with the caller's budget *spec* (``"4GiB"``, ``"50%"`` or
None), not with bytes worked out on the client: a percentage, and the default, are then of the
memory of the worker that runs the task, exactly as :mod:`gpu_trend.memory` resolves them in
one process. The client only sizes the blocks (how many symbols a task holds), from the
smallest worker it can see.
"""

from __future__ import annotations

from .. import memory, outputs


def budget_spec(memory_limit):
    """What each worker's engine gets: the call's `memory_limit`, else the client's
    :func:`gpu_trend.set_memory_limit` setting (or ``GPU_TREND_MEMORY_LIMIT``), else None
    (each worker's own setting or default)."""
    if memory_limit is not None:
        memory.parse_memory_limit(memory_limit, available=1)  # a bad spec fails on the client
        return memory_limit
    return memory.get_memory_limit()


def smallest_worker_memory() -> int:
    """Memory of the smallest worker of the current ``distributed`` client, else the
    available RAM of this process's host (the local schedulers run here)."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info(n_workers=-1)["workers"].values()
    except (ImportError, ValueError, TypeError):
        workers = ()
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    limits = [x for x in limits if x > 0]
    return min(limits) if limits else memory.host_available_bytes()


def worker_budget(spec) -> int:
    """Bytes `spec` gives the smallest worker (the CPU default when None)."""
    available = smallest_worker_memory()
    if spec is None:
        return int(memory.DEFAULT_CPU_FRACTION * available)
    return memory.parse_memory_limit(spec, available=available)


def block_bytes_per_symbol(n_bars: int, members: bool, inputs: int = 1) -> int:
    """A task's bytes per symbol of a block beyond the engine's working memory: its rows of
    input (`inputs`: 2 with a separate source) and its outputs."""
    return n_bars * (8 * inputs + outputs.bytes_per_symbol_bar(members))


def rows_per_block(n_symbols: int, n_bars: int, members: bool, budget: int,
                   inputs: int = 1) -> int:
    """Most symbols one task's block may hold so that its inputs and outputs fit `budget`.

    Raises
    ------
    gpu_trend.memory.MemoryBudgetError
        Not even one symbol's whole history fits: time cannot be one block.
    """
    per_symbol = block_bytes_per_symbol(n_bars, members, inputs)
    rows = budget // per_symbol if per_symbol else n_symbols
    if rows < 1:
        raise memory.MemoryBudgetError(
            f"one symbol's {n_bars:,} bars need {memory.format_bytes(per_symbol)} for their "
            f"inputs and outputs in one task, over the per-worker budget of "
            f"{memory.format_bytes(budget)}: the time axis must be one block per task. Raise "
            f"memory_limit (or the workers' memory), ask for fewer outputs (members=False), or "
            f"compute the history in slices of time with gpu_trend.iter_time_slices",
            per_symbol, budget)
    return int(max(1, min(rows, n_symbols)))
