"""The CPU's lane blocks (SIMD across symbols, ``cpu_fallback/lanes.py``) against the scalar
path (every symbol alone, a bar at a time): the same bits, outputs and state, whatever the
block boundaries, listings, holes and parameters; and the lane loops compiled to packed
instructions."""

import platform
import re

import numpy as np
import pytest

import gpu_trend
from gpu_trend import ATCConfig, update_atc

KEYS = ("average_signal", "family_signals", "family_equities", "direction", "long_events",
        "short_events", "member_ma", "member_signal", "member_equity")
STATE_KEYS = ("member", "layer2", "final", "close_window")


def universe(n_sym, n_bars, seed):
    """Random walks with later listings (some inside the first window, one on the last bar,
    one never), holes, and a flat stretch (ties with the MAs)."""
    rng = np.random.default_rng(seed)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sym, n_bars)), axis=1))
    starts = rng.choice([0, 0, 0, 1, 5, 33, 60, n_bars // 2, n_bars - 1], size=n_sym)
    for s, start in enumerate(starts):
        close[s, :start] = np.nan
    close[rng.random(close.shape) < 0.02] = np.nan
    if n_sym > 2:
        close[2] = np.nan
        close[1, 70:90] = close[1, 69]
    return close


def scalar(monkeypatch, fn):
    from cpu_fallback import backend

    monkeypatch.setattr(backend, "USE_LANES", False)
    try:
        return fn()
    finally:
        monkeypatch.undo()


def assert_same(a, b, keys, what):
    for key in keys:
        np.testing.assert_array_equal(np.asarray(getattr(a, key)), np.asarray(getattr(b, key)),
                                      err_msg=f"{what}: {key}")


CONFIGS = [
    ATCConfig(nan_policy="pine"),
    ATCConfig(nan_policy="pine", lengths=(8, 9, 14, 8, 8, 8), robustness="Wide", cutout=12,
              la=0.05, de=0.5, weights=(1.0, 0.5, 2.0, 0.1, 1.5, 3.0), long_threshold=0.2,
              short_threshold=-0.3, tie_rtol=1e-3, direction_source="KAMA"),
    ATCConfig(nan_policy="ffill", lengths=(40, 5, 21, 30, 6, 45), robustness="Narrow",
              cutout=0, strategy_view=True),
]


@pytest.mark.parametrize("n_sym", [1, 7, 9, 21, 75])
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_lane_blocks_equal_the_scalar_path(monkeypatch, n_sym, cfg):
    close = universe(n_sym, 150, seed=n_sym * 10 + cfg)
    if n_sym == 75:  # a block LANES wide too, next to the later listings' narrower ones
        from cpu_fallback.backend import _block_width, _lane_blocks
        from cpu_fallback.lanes import LANES

        listed = ~np.isnan(close)
        first = np.sort(np.where(listed.any(axis=1), listed.argmax(axis=1), 150))
        assert _block_width(np.diff(_lane_blocks(first[first < 150], 150, 2)).max()) == LANES
    cfg = CONFIGS[cfg]
    members = n_sym < 21

    def run():
        return gpu_trend.compute_atc(close, cfg, members=members, backend="cpu",
                                     return_state=True)

    lanes = run()
    ref = scalar(monkeypatch, run)
    assert_same(lanes, ref, KEYS if members else KEYS[:6], f"{n_sym} symbols")
    assert_same(lanes.state, ref.state, STATE_KEYS, f"{n_sym} symbols, state")


def test_lane_block_edges():
    """Blocks of up to LANES symbols (fewer when the universe would leave threads idle), whole
    AVX-512 vectors wide; a later listing joins a block while the bars its earlier symbols
    then take alone stay under the bars a block of its own would run."""
    from cpu_fallback.backend import _block_width, _lane_blocks
    from cpu_fallback.lanes import LANES

    together = np.zeros(100, np.int64)
    np.testing.assert_array_equal(_lane_blocks(together, 500, 2), [0, 32, 64, 96, 100])
    # 16 threads: 32 then 16 would make fewer blocks than threads, 8 does not
    np.testing.assert_array_equal(_lane_blocks(together, 500, 16), list(range(0, 100, 8)) + [100])
    n_bars = 400
    first = np.sort(np.random.default_rng(0).integers(0, n_bars, 300))
    edges = _lane_blocks(first, n_bars, 2)
    assert edges[0] == 0 and edges[-1] == 300 and (np.diff(edges) >= 1).all()

    def fits(lo, hi):  # symbols lo..hi-1 in one block
        return (first[hi - 1] - first[lo]) * (hi - 1 - lo) <= n_bars - first[hi - 1]
    for lo, hi in zip(edges[:-1], edges[1:]):
        assert hi - lo <= LANES and fits(lo, hi)
        assert hi == 300 or hi - lo == LANES or not fits(lo, hi + 1)  # cut only when it must
    assert np.diff(edges)[0] > 16 and np.diff(edges)[-1] <= 3  # late listings: small blocks
    assert [_block_width(n) for n in (1, 8, 9, 31, 32)] == [8, 8, 16, 32, 32]


def test_a_source_other_than_close_in_lanes(monkeypatch):
    close = universe(11, 120, seed=4)
    source = close * np.exp(np.random.default_rng(1).normal(0, 0.01, close.shape))
    lanes = gpu_trend.compute_atc(close, ATCConfig(nan_policy="pine"), source=source,
                                  backend="cpu", members=True)
    ref = scalar(monkeypatch, lambda: gpu_trend.compute_atc(
        close, ATCConfig(nan_policy="pine"), source=source, backend="cpu", members=True))
    assert_same(lanes, ref, KEYS, "source")


def test_resumed_symbols_in_lane_blocks(monkeypatch):
    """An update with more bars than the few-bar path takes: resumed symbols (history before
    the window) and fresh ones share blocks."""
    close = universe(13, 200, seed=8)
    close[5, :170] = np.nan  # listed inside the update
    cfg = ATCConfig(nan_policy="pine", cutout=25)
    state = gpu_trend.compute_atc(close[:, :160], cfg, members=True, return_state=True).state
    lanes = update_atc(state, close[:, 160:], members=True, backend="cpu")
    ref = scalar(monkeypatch, lambda: update_atc(state, close[:, 160:], members=True,
                                                 backend="cpu"))
    assert_same(lanes, ref, KEYS, "update")
    assert_same(lanes.state, ref.state, STATE_KEYS, "update, state")


def packed_arithmetic(asm):
    """Packed float64 arithmetic in x86 assembly (SSE2 ``mulpd`` to AVX-512 ``vmulpd``); scalar
    code uses ``mulsd`` and the like (its ``andpd`` / ``blendvpd`` on one value are not
    counted)."""
    return len(re.findall(r"^\s+v?(?:add|sub|mul|div)pd\s", asm, re.M))


def masked_stores(asm):
    """AVX masked stores (``vmaskmovpd %ymm, %ymm, mem``; the loads, cheap, are not counted)."""
    return len(re.findall(r"^\s+vmaskmovp[sd]\s+%[xy]mm\d+, %[xy]mm\d+, ", asm, re.M))


def functions(asm):
    """(name, body) of each function in Numba's assembly listing."""
    for part in re.split(r"\n(?=_ZN\S+:\n)", asm):
        name, _, body = part.partition(":\n")
        yield name, body


@pytest.mark.skipif(not re.match(r"x86|amd64", platform.machine(), re.I),
                    reason="the check reads x86 assembly")
def test_the_lane_loops_are_vectorised():
    """Each family's lane kernel does its arithmetic in packed instructions: a change that
    stops LLVM's vectoriser (a call left in a lane loop, an index it cannot prove
    non-negative, a family branch at run time) fails here, not only in a benchmark. With AVX2,
    45-60 packed add/sub/mul/div a kernel; a scalar kernel has none. Compiled here, outside
    the cache (Numba shows no assembly for cached code): about 30 s."""
    import numba

    from cpu_fallback import backend, lanes

    kernels = lanes.build_lanes(backend.cores, backend._mul, numba.njit(error_model="numpy"),
                                numba.njit(error_model="numpy", forceinline=True))
    n_bars, n_lanes = 10, lanes.LANES
    f2, i1 = np.zeros((n_bars, n_lanes)), np.zeros(n_lanes, dtype=np.int64)
    m3 = np.zeros((1, 54, n_bars))
    args = (0, f2, f2, np.ones(n_bars), i1, np.zeros(n_lanes), 0, n_bars, np.full(9, 3), 0, 0.0,
            0.0, 1.0, 1, i1, i1, np.zeros((1, 54, 11)), np.zeros((1, 6, 3)),
            np.zeros((1, 6, n_bars)), np.zeros((1, 6, n_bars)), False, m3, m3, m3)
    sig = tuple(numba.typeof(a) for a in args)
    kernels.compile(sig)
    asm = kernels.inspect_asm(sig)
    bodies = {name: body for name, body in functions(asm)
              if re.search(r"_family_kernel\w*6kernelB", name)}
    counts = {name: packed_arithmetic(body) for name, body in bodies.items()}
    assert len(counts) == 6, sorted(counts)
    assert min(counts.values()) >= 20, counts
    # No masked stores (microcode on AMD) in the member and Layer-2 loops: none at all in the
    # EMA and DEMA kernels, at most the window pass's remainder copy (two rows) in the others.
    masked = sorted(masked_stores(body) for body in bodies.values())
    assert masked[:2] == [0, 0] and masked[-1] <= 2, masked


@pytest.mark.skipif(not re.match(r"x86|amd64", platform.machine(), re.I),
                    reason="the check reads x86 assembly")
def test_the_sweep_lane_loops_are_vectorised():
    """The sweep's member kernels (one a family), its Layer-2 sums and its family-set kernel do
    their arithmetic in packed instructions (:mod:`cpu_fallback.sweep_lanes`; with AVX2, 18-34
    packed add/sub/mul/div a member kernel, 7 in the sums; scalar code has none)."""
    import numba

    from cpu_fallback import backend, sweep_lanes

    kernels = sweep_lanes.build_sweep_lanes(
        backend.cores, backend._mul, numba.njit(error_model="numpy"),
        numba.njit(error_model="numpy", forceinline=True))
    n_bars, n_lanes = 10, sweep_lanes.SWEEP_LANES
    f2, f3 = np.zeros((n_bars, n_lanes)), np.zeros((3, n_bars, n_lanes))
    q3 = np.zeros((3, n_bars, n_lanes), dtype=np.int8)  # q is stored as 0 or ±1 in a byte
    i1, fl1 = np.zeros(3, dtype=np.int64), np.zeros(3)
    member = kernels["member_lanes"]
    args = (0, f2, f2, f3, 0, 0, n_bars, np.full(9, 3), 0, 2, i1, fl1, i1, i1, i1, i1, fl1,
            np.zeros((3, 11, n_lanes)), q3, f3)
    sig = tuple(numba.typeof(a) for a in args)
    member.compile(sig)
    bodies = {name: body for name, body in functions(member.inspect_asm(sig))
              if re.search(r"_member_kernel\w*6kernelB", name)}
    counts = {name: packed_arithmetic(body) for name, body in bodies.items()}
    assert len(counts) == 6, sorted(counts)
    assert min(counts.values()) >= 8, counts
    # No masked stores in the key loops (each key's state double-buffered): none at all in the
    # EMA and DEMA kernels, at most the window sums' zeroing (once a call) in the others.
    masked = sorted(masked_stores(body) for body in bodies.values())
    assert masked[:2] == [0, 0] and masked[-1] <= 2, masked
    sums = kernels["layer2_sums"]
    sig = tuple(numba.typeof(a) for a in (q3, f3, np.zeros(9, dtype=np.int64),
                                         np.zeros(9, dtype=np.int64), 0, 0, n_bars, 2, f2,
                                         np.zeros((n_bars, n_lanes), dtype=np.int8)))
    sums.compile(sig)
    asm = sums.inspect_asm(sig)
    assert packed_arithmetic(asm) >= 4 and masked_stores(asm) == 0
    # The six families' Layer-2 equities and Average_Signal, stepped together: packed, and
    # no masked stores (the state is written on every lane).
    family_set = kernels["family_set_lanes"]
    x6, i6, fl6 = np.zeros((6, n_bars, n_lanes)), np.arange(6), np.ones(6)
    sig = tuple(numba.typeof(a) for a in (
        x6, np.zeros((6, n_bars, n_lanes), dtype=np.int8), i6, f3, np.zeros(6, dtype=np.int64),
        0, 0, n_bars, 2, fl6, fl6, np.zeros((6, 3, n_lanes)), np.arange(n_lanes), n_lanes, 0,
        np.zeros((1, n_lanes, 6, n_bars), dtype=np.int8), f2, np.zeros((1, n_lanes, n_bars))))
    family_set.compile(sig)
    asm = family_set.inspect_asm(sig)
    assert packed_arithmetic(asm) >= 4 and masked_stores(asm) == 0
