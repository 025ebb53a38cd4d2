"""The CPU backend under fork() and threads (issue 9, item 11).

GNU OpenMP, Numba's default layer on Linux without TBB, kills a fork()ed child
once the parent has run a parallel region, so a fork-started
``multiprocessing.Pool`` hung. ``cpu_fallback.backend`` pins Numba's
"forksafe" layer: TBB, or workqueue with its calls serialised. Every pool
here has a timeout, so a hang fails the test instead of blocking the run.
"""

import importlib.metadata
import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest

import gpu_trend

TIMEOUT = 120
KEYS = ("average_signal", "family_equities", "direction")


def universe(seed, n_sym=6, n_bars=300):
    rng = np.random.default_rng(seed)
    return 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sym, n_bars)), axis=1))


def compute(seed):
    """Module-level (pool workers pickle it by name): one call's outputs."""
    res = gpu_trend.compute_atc(universe(seed), backend="cpu")
    return {k: getattr(res, k) for k in KEYS}


def assert_same(got, want):
    for g, w in zip(got, want, strict=True):
        for k in KEYS:
            np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def active_layer():
    compute(0)  # launches the layer if nothing has yet
    return numba.threading_layer()


def tbb_installed():
    try:
        importlib.metadata.version("tbb")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


USER_LAYER = os.environ.get("NUMBA_THREADING_LAYER")
user_chose_layer = pytest.mark.skipif(bool(USER_LAYER),
                                      reason=f"NUMBA_THREADING_LAYER={USER_LAYER} set by the user")


@user_chose_layer
def test_the_threading_layer_is_fork_safe(capsys, record_property):
    layer = active_layer()
    record_property("numba_threading_layer", layer)
    with capsys.disabled():
        print(f"\nNumba threading layer: {layer} ({numba.get_num_threads()} threads)")
    if tbb_installed():  # a dependency on Linux x86_64: found even in a virtualenv
        assert layer == "tbb"
    else:  # OpenMP is fork-safe except GNU's (Linux)
        assert layer in (("workqueue",) if sys.platform == "linux" else ("workqueue", "omp"))


@user_chose_layer
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_fork_pool_after_a_call_in_the_parent():
    seeds = range(4)
    want = [compute(s) for s in seeds]  # the parent has run a parallel region
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        got = pool.map_async(compute, seeds).get(timeout=TIMEOUT)
    finally:
        pool.terminate()
        pool.join()
    assert_same(got, want)


def test_four_threads_at_once_equal_serial_calls():
    seeds = range(12)
    want = [compute(s) for s in seeds]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(compute, seeds, timeout=TIMEOUT))
    assert_same(got, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_without_tbb_workqueue_is_serialised_and_forks():
    """TBB unloadable: workqueue, whose concurrent calls would abort the process."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["numba.np.ufunc.tbbpool"] = None  # as if libtbb were missing
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import multiprocessing, numba
        from concurrent.futures import ThreadPoolExecutor
        from test_threads import assert_same, compute
        seeds = range(8)
        want = [compute(s) for s in seeds]
        assert numba.threading_layer() == "workqueue", numba.threading_layer()
        with ThreadPoolExecutor(4) as ex:
            assert_same(list(ex.map(compute, seeds)), want)
        pool = multiprocessing.get_context("fork").Pool(2)
        try:
            assert_same(pool.map_async(compute, seeds).get(timeout={TIMEOUT}), want)
        finally:
            pool.terminate()
            pool.join()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=4 * TIMEOUT)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
