"""Memory budgets, chunked execution and iter_atc (gpu_trend.memory, engine chunking).

Chunking must never change a value: every symbol is computed on its own, so each test compares
chunked results with one unchunked call bit for bit. The budget tests measure the working memory
with tracemalloc, which sees NumPy's allocations and those of Numba's runtime (the CPU kernel's
per-thread scratch) alike.
"""

import logging
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import gpu_trend
from cpu_fallback import backend as cpu_backend
from gpu_trend import ATCConfig, ATCInputError, engine, memory, outputs
from gpu_trend.memory import MemoryBudgetError, inject_out_of_memory, parse_memory_limit

CPU = dict(backend="cpu")
OUTPUTS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
           "short_events")
MEMBERS = ("member_ma", "member_signal", "member_equity")
SMALL = ATCConfig(lengths=(5, 6, 7, 5, 6, 8), robustness="Narrow", cutout=2)


def budget_for(n_symbols, close, cfg=None, **kwargs):
    """The CPU planner's bytes for a chunk of ``n_symbols`` of this compute_atc call: budgets
    that split a universe are set from the engine's own footprint, not from constants that
    break whenever the kernel's scratch changes."""
    work = engine.Workload.of(close, cfg, backend="cpu", **kwargs)
    return work.plan(1 << 40, streaming=False).compute.bytes_for(n_symbols)


def universe(n_sym=23, n_bars=300, seed=0):
    """Random walks with later listings (leading NaNs) and interior holes (for ffill)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sym, n_bars)), axis=1))
    for row, bars in ((1, slice(0, 40)),            # a later listing
                      (3, slice(0, n_bars - 3)),    # listed three bars before the end
                      (4, slice(None)),             # never listed
                      (12, slice(100, 104)),        # holes (for nan_policy="ffill")
                      (17, slice(150, 151))):
        if row < n_sym:
            close[row, bars] = np.nan
    return close


def assert_same(got, want, members):
    for key in OUTPUTS + (MEMBERS if members else ()):
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)
    np.testing.assert_array_equal(got.start_bar, want.start_bar)
    np.testing.assert_array_equal(got.first_full_bar, want.first_full_bar)
    assert got.symbols == want.symbols


def concat(parts, key):
    return np.concatenate([getattr(p, key) for p in parts])


@pytest.fixture
def block_sizes(monkeypatch):
    """Symbols per CPU block actually computed."""
    sizes = []
    run = cpu_backend.run_block

    def spy(close, *args, **kwargs):
        sizes.append(close.shape[0])
        return run(close, *args, **kwargs)

    monkeypatch.setattr(cpu_backend, "run_block", spy)
    return sizes


@pytest.fixture(autouse=True)
def no_global_limit(monkeypatch):
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    yield
    memory.set_memory_limit(None)


# --- parsing and the global setting ---------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    (1234, 1234), ("1234", 1234), ("4GiB", 4 * 1024 ** 3), ("4 gib", 4 * 1024 ** 3),
    ("512MB", 512 * 10 ** 6), ("1.5 GB", 1_500_000_000), ("800M", 800 * 1024 ** 2),
    ("64KiB", 65536), ("2k", 2048), ("1e3B", 1000), ("1TiB", 1024 ** 4),
])
def test_parse_sizes(spec, expected):
    assert parse_memory_limit(spec) == expected


def test_parse_percentages_are_of_what_is_available(monkeypatch):
    assert parse_memory_limit("50%", available=1000) == 500
    assert parse_memory_limit("100%", available=1000) == 1000
    assert parse_memory_limit("0.5%", available=10_000) == 50
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 8000)
    assert parse_memory_limit("25%") == 2000


@pytest.mark.parametrize("bad", [0, -5, True, 1.5, "", "abc", "4 XB", "0%", "150%", "-1GB",
                                 "0GiB", None, [4]])
def test_parse_rejects_bad_specs(bad):
    with pytest.raises(ValueError, match="memory limit"):
        parse_memory_limit(bad)


@pytest.mark.parametrize("huge", ["1e400GB", "1e400", "1e300TiB"])
def test_parse_a_size_beyond_floats_is_a_value_error_naming_it(huge):
    with pytest.raises(ValueError, match=rf"memory limit '{huge}' is too large"):
        parse_memory_limit(huge)
    with pytest.raises(ValueError, match=rf"'{huge}'"):
        gpu_trend.compute_atc(universe(n_sym=2), memory_limit=huge, **CPU)


def test_budget_precedence_call_then_global_then_env_then_default(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10_000_000)
    assert memory.resolve_budget(None, "cpu") == 5_000_000  # DEFAULT_CPU_FRACTION of RAM
    monkeypatch.setenv(memory.ENV_VAR, "3MB")
    assert memory.resolve_budget(None, "cpu") == 3_000_000
    gpu_trend.set_memory_limit("10%")
    assert memory.resolve_budget(None, "cpu") == 1_000_000
    assert memory.resolve_budget(12345, "cpu") == 12345
    gpu_trend.set_memory_limit(None)
    assert memory.resolve_budget(None, "cpu") == 3_000_000
    monkeypatch.setenv(memory.ENV_VAR, "lots")
    with pytest.raises(ValueError, match=f"environment variable {memory.ENV_VAR}"):
        memory.resolve_budget(None, "cpu")


def test_set_memory_limit_checks_at_once():
    with pytest.raises(ValueError, match="memory limit"):
        gpu_trend.set_memory_limit("four gigs")
    assert memory.get_memory_limit() is None


def test_global_limit_reaches_compute_atc(block_sizes):
    close = universe()
    gpu_trend.set_memory_limit(budget_for(5, close, ATCConfig(nan_policy="ffill")))
    got = gpu_trend.compute_atc(close, ATCConfig(nan_policy="ffill"), **CPU)
    gpu_trend.set_memory_limit(None)
    want = gpu_trend.compute_atc(close, ATCConfig(nan_policy="ffill"), **CPU)
    assert max(block_sizes[:-1]) < close.shape[0] and block_sizes[-1] == close.shape[0]
    assert_same(got, want, members=False)


# --- chunked == unchunked ---------------------------------------------------------------------

@pytest.mark.parametrize("members", [False, True])
@pytest.mark.parametrize("chunk", [1, 2, 5, 7, None])
def test_chunked_equals_unchunked(members, chunk, block_sizes):
    close = universe()
    source = close * np.exp(np.sin(np.arange(close.shape[1]) / 7.0))[None, :]
    cfg = ATCConfig(nan_policy="ffill", lengths=SMALL.lengths, robustness="Narrow", cutout=3)
    # room for `chunk` symbols (None: the whole universe), and a little more
    limit = budget_for(chunk or close.shape[0], close, cfg, source=source, members=members)
    limit += 1000
    got = gpu_trend.compute_atc(close, cfg, source=source, members=members, memory_limit=limit,
                                **CPU)
    chunks = list(block_sizes)
    want = gpu_trend.compute_atc(close, cfg, source=source, members=members,
                                 memory_limit="1GiB", **CPU)
    assert block_sizes[len(chunks):] == [close.shape[0]]
    assert sum(chunks) == close.shape[0]
    if chunk is not None:
        assert max(chunks) == chunk  # the budget did split the universe, in chunks that fit
    assert_same(got, want, members)


def test_forced_chunk_sizes_do_not_change_results(block_sizes):
    close = universe(n_sym=11)
    want = gpu_trend.compute_atc(close, SMALL, members=True, **CPU)
    for size in (1, 2, 4, 10):
        with inject_out_of_memory(size):
            got = gpu_trend.compute_atc(close, SMALL, members=True, **CPU)
        assert_same(got, want, members=True)


# --- the budget bounds the measured peak ----------------------------------------------------

def traced_peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tracemalloc_sees_the_numba_scratch():
    """The planner's claim that the measured peak includes the CPU kernel's scratch."""
    close = universe(n_sym=4, n_bars=2000)
    params = SMALL.kernel_params(close.shape[1])
    starts = np.zeros(4, dtype=np.int64)
    out = outputs.allocate(np, 4, close.shape[1], False)
    cpu_backend.run_block(close[:1], close[:1], starts[:1], params, False,
                          out={k: v[:1] for k, v in out.items()})
    _, peak = traced_peak(lambda: cpu_backend.run_block(close, close, starts, params, False,
                                                        out=out))
    one_thread = cpu_backend.SCRATCH_BYTES_PER_BAR * close.shape[1]
    assert peak >= one_thread


@pytest.mark.parametrize("policy", ["raise", "ffill"])
@pytest.mark.parametrize("members", [False, True])
@pytest.mark.parametrize("limit", [500_000, 1_500_000, 6_000_000])
def test_compute_atc_peak_beyond_returned_arrays_within_budget(policy, members, limit):
    close = universe(n_sym=40, n_bars=400)
    cfg = ATCConfig(nan_policy=policy)
    if policy == "raise":
        close[[12, 17]] = np.nan  # no interior holes under "raise": unlisted symbols instead
    gpu_trend.compute_atc(close[:2], cfg, members=members, **CPU)  # compile outside the trace
    res, peak = traced_peak(lambda: gpu_trend.compute_atc(close, cfg, members=members,
                                                          memory_limit=limit, **CPU))
    returned = sum(getattr(res, k).nbytes for k in OUTPUTS + (MEMBERS if members else ()))
    assert peak - returned <= limit


@pytest.mark.parametrize("members, limit", [(False, "1MB"), (False, "3MB"), (True, "3MB"),
                                            (True, "8MB")])
def test_iter_atc_peak_within_budget_while_the_caller_holds_a_chunk(members, limit):
    close = universe(n_sym=40, n_bars=400)
    cfg = ATCConfig(nan_policy="ffill")

    def stream():
        rows, n_chunks = [], 0
        for res in gpu_trend.iter_atc(close, cfg, members=members, memory_limit=limit, **CPU):
            rows.append(res.latest())
            n_chunks += 1
        return n_chunks

    stream()  # once first: its one-time allocations (pandas' caches, ...) are not working memory
    n_chunks, peak = traced_peak(stream)
    assert n_chunks > 1
    assert peak <= parse_memory_limit(limit)


# --- budget errors ----------------------------------------------------------------------------

def test_budget_too_small_says_how_much_is_needed():
    close = universe(n_sym=5, n_bars=1000)
    with pytest.raises(MemoryBudgetError, match=r"memory limit of 1000 B \(1000 bytes\) cannot "
                                                r"hold the work of one symbol: .* \((\d+) bytes\) "
                                                r"are needed") as info:
        gpu_trend.compute_atc(close, members=True, memory_limit=1000, **CPU)
    err = info.value
    assert err.budget == 1000 and err.needed > 1000
    assert isinstance(err, ValueError)
    # Exactly what it asked for is enough (for compute_atc, which writes its outputs in place).
    gpu_trend.compute_atc(close, members=True, memory_limit=err.needed, **CPU)
    with pytest.raises(MemoryBudgetError):
        next(gpu_trend.iter_atc(close, members=True, memory_limit=err.needed, **CPU))


def test_chunk_symbols_must_be_positive():
    with pytest.raises(ValueError, match="chunk_symbols must be >= 1"):
        next(gpu_trend.iter_atc(universe(), chunk_symbols=0, **CPU))


@pytest.mark.parametrize("bad", [1.5, 2.0, "3", True])
def test_chunk_symbols_must_be_an_int(bad):
    with pytest.raises(TypeError, match=rf"chunk_symbols must be an int .* got {bad!r}"):
        next(gpu_trend.iter_atc(universe(), chunk_symbols=bad, **CPU))


def test_chunk_symbols_takes_numpy_ints(block_sizes):
    for _ in gpu_trend.iter_atc(universe(n_sym=7), chunk_symbols=np.int64(3), **CPU):
        pass
    assert block_sizes == [3, 3, 1]


class _Planned(Exception):
    """Stops a call once it has planned (nothing is computed)."""


@pytest.fixture
def first_plan(monkeypatch):
    """``first_plan(call)``: the ChunkPlan `call` makes, stopping it there."""
    plan_chunks = memory.plan_chunks
    plans = []

    def spy(*args, **kwargs):
        plans.append(plan_chunks(*args, **kwargs))
        raise _Planned

    def planned(call):
        monkeypatch.setattr(memory, "plan_chunks", spy)
        with pytest.raises(_Planned):
            call()
        return plans.pop()

    return planned


@pytest.mark.parametrize("limit", [1_600_000, "64MiB", "128MiB", "256MiB"])
def test_tight_budgets_get_the_largest_chunk_that_fits(first_plan, limit):
    """Issue 9, item 12: 2,000 × 1,500 under a tight iter_atc budget.

    The planner takes the largest chunk the budget holds, never a smaller
    one. The one-symbol chunks a budget does force stay cheap because the
    threading layer has no per-call barrier (tests/test_threads.py checks
    the layer; the slow chunks came from GNU OpenMP's fork-join).
    """
    close = np.full((2000, 1500), 100.0)
    plan = first_plan(lambda: next(gpu_trend.iter_atc(close, memory_limit=limit, **CPU)))
    size, budget = plan.chunk_symbols, parse_memory_limit(limit)
    assert plan.compute.bytes_for(size) <= budget < plan.compute.bytes_for(size + 1)


def test_reusing_the_outputs_plans_one_output_set_and_bigger_chunks(first_plan):
    """With reuse_outputs every chunk is computed into one set of outputs, so the planner
    counts one set a symbol where a plain iter_atc counts two (the chunk being computed and
    the one the caller still holds), and a tight budget gets bigger chunks."""
    n_bars = 1500
    close = np.full((2000, n_bars), 100.0)
    plain, reused = (
        first_plan(lambda: next(gpu_trend.iter_atc(close, memory_limit="128MiB",
                                                   reuse_outputs=reuse, **CPU)))
        for reuse in (False, True))
    one_set = n_bars * outputs.bytes_per_symbol_bar(False)
    assert plain.compute.bytes_for(1) - reused.compute.bytes_for(1) == one_set
    assert reused.chunk_symbols > plain.chunk_symbols


# --- out-of-memory: split and retry -----------------------------------------------------------

def test_out_of_memory_splits_and_logs(block_sizes, caplog):
    close = universe(n_sym=12)
    want = gpu_trend.compute_atc(close, SMALL, members=True, **CPU)
    block_sizes.clear()
    with caplog.at_level(logging.WARNING, logger="gpu_trend.memory"):
        with inject_out_of_memory(3):
            got = gpu_trend.compute_atc(close, SMALL, members=True, **CPU)
    assert_same(got, want, members=True)
    assert max(block_sizes) <= 3 and sum(block_sizes) == 12
    messages = [r.getMessage() for r in caplog.records]
    assert any("out of memory on symbols 0..11 (12 symbols" in m and "retrying in chunks of 6"
               in m for m in messages)


def test_a_real_memory_error_in_a_block_is_split_too(monkeypatch, caplog):
    close = universe(n_sym=9)
    want = gpu_trend.compute_atc(close, SMALL, **CPU)
    run = cpu_backend.run_block

    def tight(close, *args, **kwargs):
        if close.shape[0] > 2:
            raise MemoryError("Unable to allocate 1.00 TiB")
        return run(close, *args, **kwargs)

    monkeypatch.setattr(cpu_backend, "run_block", tight)
    with caplog.at_level(logging.WARNING, logger="gpu_trend.memory"):
        got = gpu_trend.compute_atc(close, SMALL, **CPU)
    assert_same(got, want, members=False)
    assert "Unable to allocate" in caplog.text


def test_one_symbol_that_does_not_fit_raises():
    with inject_out_of_memory(0):
        with pytest.raises(MemoryError, match=r"one symbol \(index 0\) even after splitting"):
            gpu_trend.compute_atc(universe(n_sym=4), SMALL, **CPU)


def test_iter_atc_yields_the_halves_after_an_out_of_memory():
    close = universe(n_sym=10)
    want = gpu_trend.compute_atc(close, SMALL, **CPU)
    with inject_out_of_memory(3):
        parts = list(gpu_trend.iter_atc(close, SMALL, chunk_symbols=8, **CPU))
    assert [p.n_symbols for p in parts] == [2, 2, 2, 2, 2]
    np.testing.assert_array_equal(concat(parts, "average_signal"), want.average_signal)


# --- iter_atc ---------------------------------------------------------------------------------

@pytest.mark.parametrize("members", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7, 100])
def test_iter_atc_equals_compute_atc(members, chunk):
    close = universe()
    names = [f"S{i:02d}" for i in range(close.shape[0])]
    cfg = ATCConfig(nan_policy="ffill", lengths=SMALL.lengths, robustness="Narrow", la=0.5)
    want = gpu_trend.compute_atc(close, cfg, members=members, symbols=names, **CPU)
    parts = list(gpu_trend.iter_atc(close, cfg, members=members, symbols=names,
                                    chunk_symbols=chunk, **CPU))
    assert [p.n_symbols for p in parts[:-1]] == [min(chunk, close.shape[0])] * (len(parts) - 1)
    assert [s for p in parts for s in p.symbols] == names
    for key in OUTPUTS + (MEMBERS if members else ()):
        np.testing.assert_array_equal(concat(parts, key), getattr(want, key), err_msg=key)
    np.testing.assert_array_equal(np.concatenate([p.start_bar for p in parts]), want.start_bar)
    np.testing.assert_array_equal(np.concatenate([p.first_full_bar for p in parts]),
                                  want.first_full_bar)
    assert all(p.index.equals(want.index) and p.config == cfg for p in parts)
    latest = pd.concat([p.latest() for p in parts])
    pd.testing.assert_frame_equal(latest, want.latest())


@pytest.mark.parametrize("members", [False, True])
def test_iter_atc_reusing_its_outputs_computes_each_chunk_into_the_first_ones_arrays(members):
    close = universe(n_sym=10)
    want = gpu_trend.compute_atc(close, SMALL, members=members, **CPU)
    first, seen = None, []
    for res in gpu_trend.iter_atc(close, SMALL, members=members, chunk_symbols=4,
                                  reuse_outputs=True, **CPU):
        lo = sum(seen)
        for key in OUTPUTS + (MEMBERS if members else ()):
            np.testing.assert_array_equal(getattr(res, key),
                                          getattr(want, key)[lo:lo + res.n_symbols], err_msg=key)
        first = first if first is not None else res.average_signal
        # the last chunk (2 symbols) is the first rows of the same memory
        assert np.shares_memory(res.average_signal, first)
        seen.append(res.n_symbols)
    assert seen == [4, 4, 2]


def test_iter_atc_on_a_wide_frame_keeps_labels():
    close = universe(n_sym=9)
    idx = pd.date_range("2024-01-01", periods=close.shape[1], freq="h", name="time")
    frame = pd.DataFrame(close.T, index=idx, columns=[f"T{i}" for i in range(9)])
    cfg = ATCConfig(nan_policy="ffill")
    parts = list(gpu_trend.iter_atc(frame, cfg, chunk_symbols=4, **CPU))
    assert [p.symbols for p in parts] == [["T0", "T1", "T2", "T3"], ["T4", "T5", "T6", "T7"],
                                          ["T8"]]
    pd.testing.assert_frame_equal(pd.concat([p.latest() for p in parts]),
                                  gpu_trend.compute_atc(frame, cfg, **CPU).latest())


def test_iter_atc_validation_names_the_global_symbol_before_any_chunk():
    close = universe(n_sym=12)
    close[7, 200] = -1.0
    names = [f"N{i}" for i in range(12)]
    gen = gpu_trend.iter_atc(close, chunk_symbols=3, symbols=names, **CPU)
    with pytest.raises(ATCInputError, match=r"symbol 'N7': close must be a finite price > 0, "
                                            r"got -1.0 at bar 200") as info:
        next(gen)
    assert (info.value.symbol, info.value.bar) == ("N7", 200)


def test_validation_in_slices_reports_the_same_error_as_one_check(block_sizes):
    """The first bad symbol is reported, whatever slices the validation pass works in."""
    close = universe(n_sym=240, n_bars=160)
    names = [f"Z{i}" for i in range(240)]
    limit = budget_for(1, close, symbols=names)  # the least a call can run in
    plan = engine.Workload.of(close, None, symbols=names, backend="cpu").plan(limit,
                                                                             streaming=False)
    v = plan.validate_symbols  # symbols per validation slice
    assert 25 < v < 220
    first, hole, bad = v - 5, v + 5, v + 15
    close[[12, 17]] = np.nan
    close[bad, 50] = 0.0       # a bad price, second slice
    close[first, 20:] = np.inf  # a bad price, first slice: the first bad symbol
    close[hole, 150] = np.nan  # a hole, second slice, before the bad price
    for budget in (limit, None):
        with pytest.raises(ATCInputError, match=rf"symbol 'Z{first}': close must be a finite "
                                                r"price > 0, got inf at bar 20"):
            gpu_trend.compute_atc(close, memory_limit=budget, symbols=names, **CPU)
    assert block_sizes == []  # nothing was computed before the error
    close[first, 20:] = 1.0
    for budget in (limit, None):
        with pytest.raises(ATCInputError, match=rf"symbol 'Z{hole}': close is NaN at bar 150"):
            gpu_trend.compute_atc(close, memory_limit=budget, symbols=names, **CPU)


def test_streaming_growth_warning_is_raised_once():
    close = universe(n_sym=6)
    with pytest.warns(gpu_trend.ATCWarning, match="la=1.0 grows returns") as record:
        parts = list(gpu_trend.iter_atc(close, ATCConfig(la=1.0, nan_policy="ffill"),
                                        chunk_symbols=2, **CPU))
    assert len(record) == 1 and len(parts) == 3 and all(p.warnings for p in parts)


# --- the GPU path, in Numba's CUDA simulator --------------------------------------------------

@pytest.fixture
def simulated_gpu(monkeypatch):
    """Route backend="gpu" to the numba.cuda kernels running in the simulator."""
    monkeypatch.setattr(engine, "resolve_backend",
                        lambda name=None: "gpu" if name == "gpu" else "cpu")


@pytest.mark.cudasim
@pytest.mark.parametrize("members", [False, True])
def test_simulated_gpu_chunks_equal_cpu(simulated_gpu, members):
    rng = np.random.default_rng(5)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (5, 40)), axis=1))
    close[1, :6] = np.nan
    close[3, 20] = np.nan
    source = close * 1.002
    cfg = ATCConfig(lengths=(5, 6, 7, 5, 6, 8), robustness="Narrow", nan_policy="ffill",
                    cutout=2)
    want = gpu_trend.compute_atc(close, cfg, source=source, members=members, backend="cpu")
    with inject_out_of_memory(2):
        got = gpu_trend.compute_atc(close, cfg, source=source, members=members, backend="gpu")
    assert got.backend == "gpu"
    assert_same(got, want, members)
    parts = list(gpu_trend.iter_atc(close, cfg, source=source, members=members, backend="gpu",
                                    chunk_symbols=3))
    assert [p.n_symbols for p in parts] == [3, 2]
    for key in OUTPUTS + (MEMBERS if members else ()):
        np.testing.assert_array_equal(concat(parts, key), getattr(want, key), err_msg=key)
