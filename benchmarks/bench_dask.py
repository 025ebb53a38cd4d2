"""gpu_trend.dask against one process, and the bytes a Parquet file list moves through the client.

usage: python benchmarks/bench_dask.py [--symbols 20000] [--bars 1500] [--rounds 3]
                                       [--files 8] [--file-symbols 5000]

1. Compute: the ``latest()`` table of S × T demo prices, alternating, round by round:
   one process with Numba's 2 threads (``iter_atc`` → ``latest()``, as the scanner does) and
   ``gpu_trend.dask`` on a LocalCluster of 2 worker processes × 1 thread (Numba 1 thread each),
   the prices already on the workers (persisted once, untimed). Medians, their ratio, and each
   worker's rate in symbol-bars per second; the two tables are checked equal.
2. Bytes: a universe written as a list of long Parquet files, computed with
   ``gpu_trend.dask.compute_atc(files).latest()`` and ``gpu_trend.dask.scan(files)``; the
   client process's bytes read and written (``/proc/self/io`` rchar / wchar: sockets included)
   during each, next to the size of the files, of their closes in memory and of the result
   table. The same count for the prices read on the client and scattered shows what moving
   the data would cost.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


class CommBytes:
    """Bytes this process's Dask comms receive and send (TCP frames, to and from the
    scheduler and the workers), counted at distributed's TCP layer."""

    def __init__(self):
        import distributed.comm.tcp as tcp

        self.received = self.sent = 0
        real_from_frames, real_write = tcp.from_frames, tcp.TCP.write

        async def from_frames(frames, *args, **kwargs):
            self.received += sum(memoryview(f).nbytes for f in frames)
            return await real_from_frames(frames, *args, **kwargs)

        async def write(comm, *args, **kwargs):
            n = await real_write(comm, *args, **kwargs)
            self.sent += n
            return n

        tcp.from_frames, tcp.TCP.write = from_frames, write

    def moved(self, fn) -> tuple:
        """(result, bytes received, bytes sent) of ``fn()``."""
        r0, s0 = self.received, self.sent
        out = fn()
        return out, self.received - r0, self.sent - s0


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def local_latest(close, names):
    import gpu_trend

    return pd.concat([r.latest() for r in gpu_trend.iter_atc(close, symbols=names,
                                                             backend="cpu")])


def bench_compute(client, args) -> None:
    import dask.array as da

    import gpu_trend.dask as gtd
    from gpu_trend.bench import make_prices

    close, names = make_prices(args.symbols, args.bars, 0)
    x = client.persist(da.from_array(close, chunks=(args.block, -1)))
    local_latest(close[:64], names[:64])  # compile / load the kernels in every process
    gtd.compute_atc(x[:64], symbols=names[:64], backend="cpu").latest().compute()
    times: dict = {"one process, 2 threads": [], "dask, 2 workers x 1 thread": []}
    tables = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        tables["local"] = local_latest(close, names)
        t1 = time.perf_counter()
        tables["dask"] = gtd.compute_atc(x, symbols=names, backend="cpu").latest().compute()
        t2 = time.perf_counter()
        times["one process, 2 threads"].append(t1 - t0)
        times["dask, 2 workers x 1 thread"].append(t2 - t1)
    pd.testing.assert_frame_equal(tables["dask"], tables["local"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.symbols:,} x {args.bars:,}, {args.rounds} alternating rounds, "
          f"blocks of {args.block} symbols; latest() tables equal")
    for k, v in med.items():
        print(f"  {k:>28}: median {v:7.2f} s  (all: {', '.join(f'{t:.2f}' for t in times[k])})")
    local, dask_ = med.values()
    per_worker = args.symbols * args.bars / dask_ / 2
    print(f"  dask / one process: {dask_ / local:.2f}x; per worker (1 thread): "
          f"{per_worker / 1e6:.2f} M symbol-bars/s, {1e3 * dask_ * 2 / args.symbols:.3f} ms "
          f"per 1,500-bar symbol-thread")


def bench_bytes(client, args) -> None:
    import dask.array as da

    import gpu_trend
    import gpu_trend.dask as gtd
    from gpu_trend.demo import demo_universe

    uni = demo_universe(args.file_symbols, args.bars, seed=1)
    long = uni.to_long()
    folder = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    groups = np.array_split(np.asarray(uni.symbols), args.files)
    for i, group in enumerate(groups):
        long[long["symbol"].isin(group)].to_parquet(folder / f"part{i:02d}.parquet")
    files = sorted(folder.glob("*.parquet"))
    on_disk = sum(f.stat().st_size for f in files)
    closes = uni.close.to_numpy().nbytes
    pattern = str(folder / "*.parquet")
    gtd.compute_atc(files[:1], backend="cpu").latest().compute()  # warm the workers

    comms = CommBytes()
    table, got_in, got_out = comms.moved(
        lambda: gtd.compute_atc(pattern, backend="cpu").latest().compute())
    scan, scan_in, scan_out = comms.moved(lambda: gtd.scan(pattern, backend="cpu"))
    want = gpu_trend.compute_atc(read_all(files), backend="cpu").latest()
    pd.testing.assert_frame_equal(table.loc[want.index], want)

    def shipped():
        data = read_all(files).close.to_numpy().T.copy()
        return gtd.compute_atc(client.persist(da.from_array(data, chunks=(625, -1))),
                               backend="cpu").latest().compute()

    _, ship_in, ship_out = comms.moved(shipped)
    print(f"\n{args.file_symbols:,} symbols x {args.bars:,} bars in {len(files)} long Parquet "
          f"files: {mib(on_disk)} on disk, closes {mib(closes)} in memory")
    print(f"  latest() table: {mib(len(pickle.dumps(table)))} pickled; "
          f"scan table (all): {mib(len(pickle.dumps(scan.all)))} pickled")
    print(f"  client in / out, compute_atc(files).latest(): {mib(got_in)} / {mib(got_out)}")
    print(f"  client in / out, scan(files):                 {mib(scan_in)} / {mib(scan_out)}")
    print(f"  client in / out, the files read on the client and the prices sent: "
          f"{mib(ship_in)} / {mib(ship_out)}")


def read_all(files):
    from gpu_trend.io import read_universe

    return read_universe(pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=20_000)
    p.add_argument("--bars", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--block", type=int, default=1000, help="symbols per Dask block")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--file-symbols", type=int, default=5000)
    p.add_argument("--skip-compute", action="store_true")
    args = p.parse_args(argv)

    import dask
    import distributed

    import cpu_fallback.backend  # noqa: F401  (pins the threading layer first)
    from gpu_trend.bench import machine_info

    info = machine_info("cpu")
    print(f"{info['cpu_model']}, {info['logical_cpus']} logical CPUs; this process: Numba "
          f"{info['numba_threads']} threads ({info['numba_threading_layer']}); dask "
          f"{dask.__version__}, distributed {distributed.__version__}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as client:
        if not args.skip_compute:
            bench_compute(client, args)
        bench_bytes(client, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
