"""gpu_trend.dask on a real two-process LocalCluster (loopback): Dask arrays, Dask DataFrames
and Parquet file lists give the local results bit for bit; scans equal local scans; warm
scans keep one state per partition; a killed worker and a failing task still give the full
result; the memory budget holds on each worker."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402

import gpu_trend  # noqa: E402
import gpu_trend.dask as gtd  # noqa: E402
from gpu_trend.config import ATCConfig  # noqa: E402
from gpu_trend.demo import demo_universe  # noqa: E402
from gpu_trend.io import DataError, read_universe  # noqa: E402
from gpu_trend.memory import MemoryBudgetError  # noqa: E402
from gpu_trend.outputs import OUTPUTS  # noqa: E402

CPU = {"backend": "cpu"}


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each, on loopback: the cluster every test shares.

    Without the workers' sampling profiler: it reads the source files of the frames it samples
    into ``linecache`` from its own thread, and tracemalloc counted those (up to 0.7 MB) in the
    task peaks of ``test_each_worker_stays_within_the_budget``, whenever it first sampled a
    frame of a new file during a traced task."""
    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def grid(n_sym=24, n_bars=260, seed=3):
    """(symbols × bars) closes with later listings, early ends and an empty symbol."""
    close = demo_universe(n_sym, n_bars, seed=seed).close.to_numpy().T.copy()
    close[2, :40] = np.nan            # listed later
    close[5, -30:] = np.nan           # data ended early
    close[9, 100:] = np.nan           # ended long ago
    close[11] = np.nan                # no data
    return close


def assert_same_result(got, want):
    """Every output, the calendar and the symbols, bit for bit."""
    assert got.symbols == want.symbols
    assert got.index.equals(want.index)
    for o in OUTPUTS:
        a, b = getattr(got, o.name), getattr(want, o.name)
        if b is None:
            assert a is None, o.name
            continue
        assert a.shape == b.shape and a.dtype == b.dtype, o.name
        assert np.array_equal(a, b, equal_nan=True), o.name
    if want.positions is None:
        assert got.positions is None
    else:
        np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.start_bar, want.start_bar)
    np.testing.assert_array_equal(got.first_full_bar, want.first_full_bar)


def test_importing_gpu_trend_does_not_import_dask():
    code = "import sys, gpu_trend; sys.exit('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- Dask arrays ------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, members, calendar", [("raise", True, "own"),
                                                       ("skip", False, "own"),
                                                       ("ffill", False, "union")])
def test_dask_array_equals_local(client, policy, members, calendar):
    close = grid()
    if policy != "raise":
        close[[3, 7], 120] = np.nan   # holes
    cfg = ATCConfig(nan_policy=policy)
    want = gpu_trend.compute_atc(close, cfg, members=members, calendar=calendar, **CPU)
    # Chunked along time too: the blocks are rechunked to whole histories on the workers.
    res = gtd.compute_atc(da.from_array(close, chunks=(7, 100)), cfg, members=members,
                          calendar=calendar, **CPU)
    assert res.average_signal.chunks[1] == (close.shape[1],)
    assert_same_result(res.compute(), want)
    # The lazy arrays are the same values, padded on the left to the input's width.
    lazy = res.average_signal.compute()
    assert np.array_equal(lazy[:, lazy.shape[1] - want.n_bars:], want.average_signal,
                          equal_nan=True)
    assert np.isnan(lazy[:, :lazy.shape[1] - want.n_bars]).all()
    pd.testing.assert_frame_equal(res.latest().compute(), want.latest())


def test_symbol_names_and_results_stay_lazy(client):
    close = grid(n_sym=12)[:6]
    names = [f"S{i}" for i in range(6)]
    res = gtd.compute_atc(da.from_array(close, chunks=(4, -1)), symbols=names, **CPU)
    assert isinstance(res.direction, da.Array) and isinstance(res.latest(), dd.DataFrame)
    assert list(res.latest().compute().index) == names
    with pytest.raises(gpu_trend.ATCInputError, match="symbols has 2 names for 6 rows"):
        gtd.compute_atc(da.from_array(close), symbols=["a", "b"])


def test_bad_prices_name_the_symbol(client):
    close = grid(n_sym=12)[:6]
    close[4, 50] = -1.0
    with pytest.raises(gpu_trend.ATCInputError, match="symbol '4'"):
        gtd.compute_atc(da.from_array(close, chunks=(3, -1)), **CPU).compute()


# --- Dask DataFrames --------------------------------------------------------------------------

def test_wide_dask_dataframe_equals_local(client):
    uni = demo_universe(20, 240, seed=5)
    wide = uni.close.copy()
    wide.iloc[-25:, 3] = np.nan  # one symbol ends early
    want = gpu_trend.compute_atc(wide, **CPU)
    res = gtd.compute_atc(dd.from_pandas(wide, npartitions=3), **CPU)
    assert_same_result(res.compute(), want)
    pd.testing.assert_frame_equal(res.latest().compute(), want.latest())


# --- a separate source (the moving averages' input) ----------------------------------------

@pytest.mark.parametrize("policy", ["raise", "ffill"])
def test_dask_array_with_a_source_equals_local(client, policy):
    close = grid()
    source = close * (1 + 0.003 * np.sin(np.arange(close.shape[1])))
    if policy == "ffill":
        close[[3, 7], 120] = np.nan
        source[4, 130] = np.nan
    cfg = ATCConfig(nan_policy=policy)
    want = gpu_trend.compute_atc(close, cfg, source=source, members=True, **CPU)
    assert not np.array_equal(want.average_signal, gpu_trend.compute_atc(
        close, cfg, **CPU).average_signal, equal_nan=True)  # the source makes a difference
    # Chunked unlike close: it is rechunked to close's blocks.
    res = gtd.compute_atc(da.from_array(close, chunks=(7, 100)), cfg, members=True,
                          source=da.from_array(source, chunks=(5, -1)), **CPU)
    assert_same_result(res.compute(), want)
    pd.testing.assert_frame_equal(res.latest().compute(), want.latest())


def test_wide_dask_dataframe_with_a_source_equals_local(client):
    uni = demo_universe(20, 240, seed=5)
    wide = uni.close.copy()
    wide.iloc[-25:, 3] = np.nan
    hl2 = (uni.high + uni.low) / 2
    hl2.iloc[-25:, 3] = np.nan
    want = gpu_trend.compute_atc(wide, source=hl2, **CPU)
    # Its columns in another order, its rows in other partitions.
    res = gtd.compute_atc(dd.from_pandas(wide, npartitions=3), **CPU,
                          source=dd.from_pandas(hl2[hl2.columns[::-1]], npartitions=2))
    assert_same_result(res.compute(), want)
    pd.testing.assert_frame_equal(res.latest().compute(), want.latest())


def test_a_source_unlike_close_is_an_error_on_the_client(tmp_path):
    close = grid(n_sym=12)
    x = da.from_array(close, chunks=(4, -1))
    with pytest.raises(gpu_trend.ATCInputError, match=r"source has shape \(11, 260\), close "
                                                      r"has \(12, 260\)"):
        gtd.compute_atc(x, source=x[1:])
    with pytest.raises(gpu_trend.ATCInputError, match="source must be a Dask array like close, "
                                                      "got ndarray"):
        gtd.compute_atc(x, source=close)
    wide = demo_universe(4, 50, seed=1).close
    frame = dd.from_pandas(wide, npartitions=2)
    with pytest.raises(gpu_trend.ATCInputError, match=r"missing \['" + wide.columns[3]):
        gtd.compute_atc(frame, source=dd.from_pandas(wide.iloc[:, :3], npartitions=1))
    with pytest.raises(gpu_trend.ATCInputError, match="source's times are not close's: e.g."):
        gtd.compute_atc(frame, source=dd.from_pandas(wide.iloc[1:], npartitions=1))
    wide.to_parquet(tmp_path / "w.parquet")
    with pytest.raises(TypeError, match="reads no source column"):
        gtd.compute_atc(tmp_path / "w.parquet", source=x)


def mixed_long_table() -> pd.DataFrame:
    """A long table of symbols on their own calendars: hourly 24/7, a weekday-only one, one
    whose data ended early and one listed late."""
    uni = demo_universe(12, 300, seed=7)
    long = uni.to_long()
    weekday = long["symbol"] == uni.symbols[1]
    long = long[~weekday | (long["time"].dt.day_of_week < 5)]
    ended = long["symbol"] == uni.symbols[2]
    long = long[~ended | (long["time"] < long["time"].max() - pd.Timedelta("6D"))]
    late = long["symbol"] == uni.symbols[3]
    long = long[~late | (long["time"] > long["time"].min() + pd.Timedelta("2D"))]
    return long.reset_index(drop=True)


def test_long_dask_dataframe_equals_local(client):
    long = mixed_long_table()
    want = gpu_trend.compute_atc(read_universe(long), **CPU)
    # Row-wise partitions cut symbols in two: the frame is shuffled by symbol, in order.
    res = gtd.compute_atc(dd.from_pandas(long, npartitions=4, sort=False), **CPU)
    got = res.compute()
    order = [got.symbols.index(s) for s in want.symbols]
    assert_same_result(take(got, order), want)
    pd.testing.assert_frame_equal(res.latest().compute().loc[want.symbols], want.latest())


def take(res, rows):
    """`res` restricted to `rows`, in that order (for results whose symbols come in another
    order)."""
    import dataclasses

    arrays = {o.name: getattr(res, o.name)[rows] for o in OUTPUTS
              if getattr(res, o.name) is not None}
    return dataclasses.replace(
        res, symbols=[res.symbols[i] for i in rows],
        positions=None if res.positions is None else res.positions[rows],
        start_bar=res.start_bar[rows], first_full_bar=res.first_full_bar[rows], **arrays)


# --- Parquet file lists -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def parquet_files(tmp_path_factory):
    """The mixed universe as three long files and one single-symbol file: the symbol whose
    data ended early."""
    folder = tmp_path_factory.mktemp("parts")
    long = mixed_long_table()
    ended = ended_symbol(long)
    symbols = sorted(set(long["symbol"]) - {ended})
    for i, group in enumerate([symbols[:5], symbols[5:9], symbols[9:]]):
        long[long["symbol"].isin(group)].to_parquet(folder / f"part{i}.parquet")
    # Alone in its file: only the whole universe's clock says it is stale.
    long[long["symbol"] == ended].drop(columns="symbol").to_parquet(folder / f"{ended}.parquet")
    return folder, long


def ended_symbol(long):
    """The symbol whose data ended first."""
    return long.groupby("symbol")["time"].max().idxmin()


def test_parquet_file_list_equals_local(client, parquet_files):
    folder, long = parquet_files
    want = gpu_trend.compute_atc(read_universe(long), **CPU)
    res = gtd.compute_atc(str(folder / "*.parquet"), **CPU)
    got = res.compute()
    assert_same_result(take(got, [got.symbols.index(s) for s in want.symbols]), want)
    pd.testing.assert_frame_equal(res.latest().compute().loc[want.symbols], want.latest())
    table = res.to_dask_dataframe().compute()
    pd.testing.assert_frame_equal(table.loc[want.symbols], want.to_pandas().loc[want.symbols])


def test_a_symbol_in_two_files_is_an_error_naming_both(client, tmp_path, parquet_files):
    _, long = parquet_files
    one = long[long["symbol"] == long["symbol"].iloc[0]]
    one.to_parquet(tmp_path / "a.parquet")
    one.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match="a.parquet and in .*b.parquet"):
        gtd.compute_atc([tmp_path / "a.parquet", tmp_path / "b.parquet"], **CPU).compute()
    with pytest.raises(FileNotFoundError, match="no table files match"):
        gtd.compute_atc(str(tmp_path / "*.csv"))


def test_the_data_never_passes_through_the_client(client, parquet_files):
    """The graph holds paths, not prices: its tasks are small whatever the files hold."""
    import pickle

    folder, _ = parquet_files
    res = gtd.compute_atc(str(folder / "*.parquet"), **CPU)
    graph = dict(res.latest().__dask_graph__())
    assert len(pickle.dumps(graph)) < 64_000


def write_row_groups(path, table, groups):
    """`table` as one Parquet file with a row group per entry of `groups` (boolean masks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [pa.Table.from_pandas(table[g], preserve_index=False) for g in groups]
    with pq.ParquetWriter(path, parts[0].schema) as writer:
        for part in parts:
            writer.write_table(part)


def test_row_groups_of_long_files_are_partitions(client, tmp_path):
    long = mixed_long_table()
    ended = ended_symbol(long)
    symbols = sorted(set(long["symbol"]) - {ended})
    sym = long["symbol"]
    write_row_groups(tmp_path / "long.parquet", long,
                     [sym.isin(symbols[:3]), sym.isin(symbols[3:8]), sym.isin(symbols[8:])])
    # One symbol's table in two row groups (slices of time): read whole, named after the file.
    single = long[sym == ended].drop(columns="symbol")
    early = single["time"] < single["time"].iloc[40]
    write_row_groups(tmp_path / f"{ended}.parquet", single, [early, ~early])
    files = [tmp_path / "long.parquet", tmp_path / f"{ended}.parquet"]
    want = gpu_trend.compute_atc(read_universe(long), **CPU)
    res = gtd.compute_atc(files, split_row_groups=True, **CPU)
    assert res.partitions.labels == [f"{files[0]} row group {i}" for i in range(3)] + [
        str(files[1])]
    got = res.compute()
    assert_same_result(take(got, [got.symbols.index(s) for s in want.symbols]), want)
    pd.testing.assert_frame_equal(res.latest().compute().loc[want.symbols], want.latest())
    assert_same_scan(gtd.scan(files, split_row_groups=True, top=3, **CPU),
                     gpu_trend.scan(long, progress=False, top=3, **CPU))


def test_a_symbol_in_two_row_groups_is_an_error_naming_both(client, tmp_path):
    long = mixed_long_table()
    cut = long["time"] < long["time"].median()  # every symbol has rows in both row groups
    write_row_groups(tmp_path / "a.parquet", long, [cut, ~cut])
    with pytest.raises(DataError, match=r"is in .*a.parquet row group 0 and in .*a.parquet "
                                        r"row group 1"):
        gtd.compute_atc(tmp_path / "a.parquet", split_row_groups=True, **CPU).compute()
    with pytest.raises(ValueError, match="split_row_groups is for Parquet files, not a Dask "
                                         "array"):
        gtd.compute_atc(da.from_array(grid()), split_row_groups=True)
    with pytest.raises(ValueError, match="warm scans read files whole"):
        gtd.scan(tmp_path / "a.parquet", split_row_groups=True, state=True)


# --- scans ------------------------------------------------------------------------------------

def assert_same_scan(got, want):
    pd.testing.assert_frame_equal(got.all, want.all)
    pd.testing.assert_frame_equal(got.table, want.table)
    assert got.skipped == want.skipped
    assert (got.n_symbols, got.n_bars) == (want.n_symbols, want.n_bars)


@pytest.mark.parametrize("options", [{"top": 3}, {"max_age": "2D", "min_bars": 280},
                                     {"max_age": 30, "min_signal": 0.2},
                                     {"calendar": "union", "config": {"nan_policy": "ffill"}}])
def test_scan_of_files_equals_local_scan(client, parquet_files, options):
    folder, long = parquet_files
    want = gpu_trend.scan(long, progress=False, **CPU, **options)
    got = gtd.scan(str(folder / "*.parquet"), **CPU, **options)
    assert_same_scan(got, want)
    if options == {"top": 3}:
        assert got.all.loc[ended_symbol(long), "stale"]


def test_scan_of_a_dask_array_equals_local_scan(client):
    close = grid()
    want = gpu_trend.scan(pd.DataFrame(close.T), progress=False, **CPU)
    # Symbol 9, which ended long before the others, is a block of its own.
    got = gtd.scan(da.from_array(close, chunks=((9, 1, 14), 50)), **CPU)
    assert_same_scan(got, want)
    assert got.all.loc["9", "stale"]


def test_warm_scans_keep_a_state_per_partition(client, tmp_path):
    long = mixed_long_table()
    cut = long["time"].min() + (long["time"].max() - long["time"].min()) * 0.8
    symbols = sorted(long["symbol"].unique())
    files = [tmp_path / "p0.parquet", tmp_path / "p1.parquet"]

    def write(table):
        for f, group in zip(files, (symbols[:6], symbols[6:])):
            table[table["symbol"].isin(group)].to_parquet(f)

    write(long[long["time"] <= cut])
    first = gtd.scan(files, state=True, **CPU)
    assert first.state_counts["fresh"] == len(first.all)
    assert all(f.with_name(f.name + ".atc-state.npz").exists() for f in files)
    write(long)  # the whole history again: only the bars after each state's last are computed
    warm = gtd.scan(files, state=True, **CPU)
    assert warm.state_counts["updated"] > 0 and warm.state_counts["fresh"] == 0
    assert_same_scan(warm, gpu_trend.scan(long, progress=False, **CPU))
    # Or in a directory of the caller's, one file per partition.
    gtd.scan(files, state=tmp_path / "states", **CPU)
    assert sorted(p.name for p in (tmp_path / "states").iterdir()) == [
        "p0.parquet.npz", "p1.parquet.npz"]


def test_states_need_files_or_a_directory(tmp_path):
    with pytest.raises(ValueError, match="next to its data file, and block 0 is not a file"):
        gtd.scan(da.from_array(grid()), state=True)
    with pytest.raises(ValueError, match="pass a directory"):
        gtd.scan(da.from_array(grid()), state=tmp_path / "state.npz")


# --- sweeps -----------------------------------------------------------------------------------

def test_sweep_of_a_dask_array_equals_local_sweep(client):
    from gpu_trend.sweep import sweep

    close = grid()
    grid_ = {"la": [0.02, 0.05], "robustness": ["Narrow", "Medium"]}
    want = sweep(close, grid_, backend="cpu", progress=False)
    # Symbol 11 (no data) shares its block with symbols whose data ended early: in a block
    # where no symbol ends early the engine gives it the grid's last time instead of <NA>
    # (calendars.last_times without positions), in one process as on a cluster.
    got = gtd.sweep(da.from_array(close, chunks=(12, -1)), grid_, **CPU)
    pd.testing.assert_frame_equal(got.latest().compute().sort_index(level="config",
                                                                    sort_remaining=False),
                                  want.latest())
    pd.testing.assert_frame_equal(got.summary(0.001, by="config"),
                                  want.summary(0.001, by="config"))


# --- failures ---------------------------------------------------------------------------------

def _fault_once(marker, kill):
    """Patch this worker's engine: its first call across the cluster (the one that creates
    `marker`) kills the worker process, or raises."""
    from gpu_trend import engine

    real = engine.__dict__.setdefault("_unpatched_compute_atc", engine.compute_atc)

    def faulty(*args, **kwargs):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return real(*args, **kwargs)
        if kill:
            os._exit(1)
        raise OSError("injected failure")

    engine.compute_atc = faulty


def _unpatch():
    from gpu_trend import engine

    engine.compute_atc = engine.__dict__.pop("_unpatched_compute_atc", engine.compute_atc)


@pytest.mark.parametrize("kill", [True, False], ids=["killed worker", "failing task"])
def test_a_failure_mid_computation_still_gives_the_full_result(client, tmp_path, kill):
    close = grid()
    want = gpu_trend.compute_atc(close, **CPU)
    marker = str(tmp_path / "fault")
    client.run(_fault_once, marker, kill)
    try:
        res = gtd.compute_atc(da.from_array(close, chunks=(4, -1)), **CPU)
        assert_same_result(res.compute(retries=1), want)
        assert os.path.exists(marker)  # the fault did happen
    finally:
        client.run(_unpatch)


# --- the memory budget ------------------------------------------------------------------------

def test_a_history_that_does_not_fit_one_task_says_so():
    close = da.zeros((10, 100_000), chunks=(10, 10_000))
    with pytest.raises(MemoryBudgetError, match="one symbol's 100,000 bars need .*"
                                                "iter_time_slices"):
        gtd.compute_atc(close, memory_limit="1MiB")


def test_a_bad_budget_fails_on_the_client():
    with pytest.raises(ValueError, match="lots"):
        gtd.compute_atc(da.zeros((2, 100)), memory_limit="lots")


def test_the_clients_setting_is_what_workers_get(monkeypatch):
    from gpu_trend.dask.budget import budget_spec

    monkeypatch.setenv("GPU_TREND_MEMORY_LIMIT", "30%")
    assert budget_spec(None) == "30%" and budget_spec("2GiB") == "2GiB"


def test_blocks_are_cut_to_fit_the_budget():
    close = da.zeros((100, 1000), chunks=(100, 1000))
    res = gtd.compute_atc(close, memory_limit="1MiB", **CPU)
    per_symbol = 1000 * (8 + 114)
    assert max(res.average_signal.chunks[0]) == (1 << 20) // per_symbol


def _trace_tasks():
    """Record the traced peak of each ``latest()`` task this worker runs (its own
    allocations, from its start)."""
    from gpu_trend.dask import arrays

    real = arrays.__dict__.setdefault("_untraced_latest_block", arrays.latest_block)
    arrays.task_peaks = []

    def traced(*args, **kwargs):
        tracemalloc.start()
        try:
            return real(*args, **kwargs)
        finally:
            arrays.task_peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    arrays.latest_block = traced


def _task_peaks():
    from gpu_trend.dask import arrays

    arrays.latest_block = arrays.__dict__.pop("_untraced_latest_block", arrays.latest_block)
    return arrays.__dict__.pop("task_peaks", [])


def _stream(close, limit):
    return [r.latest() for r in gpu_trend.iter_atc(close, memory_limit=limit, **CPU)]


def test_each_worker_stays_within_the_budget(client):
    """Each worker runs the engine under the caller's budget: a task streaming a block of 128
    symbols through 3 MB peaks below the budget plus a copy of the block, and below the
    block's outputs, which a large budget computes at once."""
    n_sym, n_bars = 128, 600
    x = client.persist(da.from_array(grid(2 * n_sym, n_bars), chunks=(n_sym, -1)))
    # One-time costs (loading the kernels) first, in every worker: either may run a block.
    client.run(_stream, grid(12, n_bars), "3MB")
    # tracemalloc counts every thread of a worker: its comm and event-loop threads allocate
    # while a task runs (a peak of 33.8 MB was seen once, 4.13 MB once, against 3.0 MB
    # usually). Such noise only adds, so each budget's peak is the least of three runs.
    peaks = {}
    for limit in ("3MB", "1GB"):
        runs = []
        for _ in range(3):
            client.run(_trace_tasks)
            gtd.compute_atc(x, memory_limit=limit, **CPU).latest().compute()
            runs.append(max(p for ps in client.run(_task_peaks).values() for p in ps))
        peaks[limit] = min(runs)
    block = n_sym * n_bars * 8
    outputs = n_sym * n_bars * 114
    assert peaks["3MB"] <= 3_000_000 + block + 500_000 < outputs
    assert peaks["1GB"] > outputs  # one chunk: the block's outputs at once
    # A budget the client lets through (a row and its outputs fit) but the worker's engine
    # cannot work in: the worker says so.
    with pytest.raises(MemoryBudgetError, match="cannot hold"):
        gtd.compute_atc(x[:2], memory_limit=80_000, **CPU).compute()


# --- GPU --------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cupy_blocks_give_cupy_results_equal_to_local():
    cp = pytest.importorskip("cupy")
    close = grid()
    want = gpu_trend.compute_atc(cp.asarray(close))
    res = gtd.compute_atc(da.from_array(cp.asarray(close), chunks=(8, -1)))
    assert isinstance(res.average_signal._meta, cp.ndarray)
    got = res.compute(scheduler="threads")
    assert isinstance(got.average_signal, cp.ndarray)
    assert_same_result(on_host(got), on_host(want))


def on_host(res):
    import dataclasses

    import cupy as cp
    return dataclasses.replace(res, **{o.name: cp.asnumpy(getattr(res, o.name)) for o in OUTPUTS
                                       if getattr(res, o.name) is not None})


@pytest.mark.gpu
def test_local_cuda_cluster_equals_local():
    dask_cuda = pytest.importorskip("dask_cuda")
    close = grid()
    want = gpu_trend.compute_atc(close, backend="gpu")
    with dask_cuda.LocalCUDACluster(n_workers=1) as cluster, distributed.Client(cluster):
        got = gtd.compute_atc(da.from_array(close, chunks=(8, -1)), backend="gpu").compute()
    assert_same_result(got, want)
