"""The market scanner over partitions of symbols, and warm scans with per-partition states.

Every partition runs :func:`gpu_trend.scan` on a worker; the client ranks the union of their
tables. What is relative to the whole universe comes from the universe's clock
(:func:`gpu_trend.dask.partitions.universe_clock`): with each symbol on its own calendar a
partition gets the universe's newest bar (as a placeholder symbol with one invalid close at
that time, which the scan skips and the merge drops, so that every symbol's age and staleness
are measured from the same newest bar); on the union calendar, or with ``max_age`` as a count
of the universe's timestamps, it is put on the universe's times.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine import as_config
from ..io import Universe
from ..scanner import TABLE_COLUMNS, ScanResult, _hits, _rank
from ..scanner import scan as local_scan
from .partitions import Partitions, check_disjoint, on_grid, universe_clock

#: The placeholder symbol that carries the universe's newest bar into a partition.
NEWEST = "\x00gpu_trend.dask:newest"

#: Suffix of a state file written next to a partition's data file (``state=True``).
STATE_SUFFIX = ".atc-state.npz"


def state_paths(parts: Partitions, state) -> list:
    """Each partition's state file: None (cold scans), next to its data file (``True``), or
    in the directory `state` (named after its file, else ``part-00003.npz``)."""
    if state is None or state is False:
        return [None] * len(parts)
    if state is True:
        missing = [lab for lab, p in zip(parts.labels, parts.paths) if p is None]
        if missing:
            raise ValueError(f"state=True keeps each partition's state next to its data "
                             f"file, and {missing[0]} is not a file: pass a directory")
        return [str(p.with_name(p.name + STATE_SUFFIX)) for p in parts.paths]
    folder = Path(state)
    if folder.suffix == ".npz":
        raise ValueError(f"state={str(state)!r}: on a cluster each partition has its own "
                         f"state; pass a directory (or True: next to each data file)")
    folder.mkdir(parents=True, exist_ok=True)
    names = [p.name if p is not None else f"part-{i:05d}"
             for i, p in enumerate(parts.paths)]
    if len(set(names)) != len(names):  # files of the same name in different folders
        names = [f"part-{i:05d}-{n}" for i, n in enumerate(names)]
    return [str(folder / f"{n}.npz") for n in names]


def with_newest(uni: Universe, newest) -> Universe:
    """`uni` with the placeholder symbol :data:`NEWEST`: one bar at `newest`, with a close
    the scan refuses (so it is never computed)."""
    index = uni.index if newest in uni.index else uni.index.union(pd.Index([newest]))

    def moved(frame):
        return None if frame is None else frame.reindex(index)

    present = pd.DataFrame(uni.bar_mask(), index=uni.index, columns=uni.symbols).reindex(
        index, fill_value=False)
    close = moved(uni.close)
    close[NEWEST] = np.where(index == newest, -1.0, np.nan)
    present[NEWEST] = index == newest
    return Universe(close=close, volume=moved(uni.volume), open=moved(uni.open),
                    high=moved(uni.high), low=moved(uni.low), rejected=dict(uni.rejected),
                    source=uni.source, present=present, ignored=list(uni.ignored))


def scan_part(uni: Universe, clock, cfg, *, calendar, on_times, state, options) -> dict:
    """One task: scan one partition against the universe's clock; every scanned symbol's row
    (unranked), the skipped ones and what the merge needs."""
    times, newest = clock
    if on_times:
        uni = on_grid(uni, times)
    placeholder = calendar == "own" and newest is not None
    if placeholder:
        uni = with_newest(uni, newest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = local_scan(uni, cfg, calendar=calendar, state=state, progress=False, **options)
    rows = res.all.drop(columns="rank").drop(index=[NEWEST], errors="ignore")
    skipped = {k: v for k, v in res.skipped.items() if k != NEWEST}
    return {"all": rows, "skipped": skipped, "n_symbols": res.n_symbols - placeholder,
            "backend": res.backend, "elapsed": res.elapsed, "state_counts": res.state_counts,
            "warnings": {str(w.message): w.category for w in caught}}


def scan_partitions(parts: Partitions, config=None, *, calendar="own", max_age=None,
                    min_signal=None, top=None, state=None, compute_options=None,
                    **options) -> ScanResult:
    """:func:`gpu_trend.dask.scan` on partitions (see there)."""
    import dask

    t0 = time.perf_counter()
    cfg = as_config(config)
    counted = isinstance(max_age, (int, np.integer)) and not isinstance(max_age, bool)
    clock = universe_clock(parts, cfg.nan_policy, calendar)
    tasks = [dask.delayed(scan_part, pure=False)(
        u, clock, cfg, calendar=calendar, on_times=calendar == "union" or counted,
        state=path, options={**options, "max_age": max_age, "top": top,
                             "min_signal": min_signal})
        for u, path in zip(parts.universes, state_paths(parts, state))]
    n_bars, *got = dask.compute(dask.delayed(lambda c: len(c[0]))(clock), *tasks,
                                **(compute_options or {}))
    check_disjoint([list(g["all"].index) + list(g["skipped"]) for g in got], parts.labels)
    t_computed = time.perf_counter()

    # A partition that scanned nothing has untyped columns: it would make the times objects.
    rows = pd.concat([g["all"] for g in got if len(g["all"])] or [got[0]["all"]])
    ranked = _rank(rows)[list(TABLE_COLUMNS)]
    lo = cfg.long_threshold if min_signal is None else float(min_signal)
    hi = cfg.short_threshold if min_signal is None else -float(min_signal)
    table = _hits(ranked, lo, hi, top)
    messages = {m: c for g in got for m, c in g["warnings"].items()}
    for message, category in messages.items():
        warnings.warn(message, category, stacklevel=3)
    counts = None
    if state is not None and state is not False:
        counts = {k: sum(g["state_counts"][k] for g in got) for k in got[0]["state_counts"]}
    t_end = time.perf_counter()
    # The steps ran in parallel: each is the sum of the partitions' (worker seconds).
    elapsed = {k: sum(g["elapsed"][k] for g in got) for k in ("load", "filter", "compute")}
    elapsed.update(rank=t_end - t_computed, total=t_end - t0)
    return ScanResult(
        table=table, all=ranked, skipped={k: v for g in got for k, v in g["skipped"].items()},
        elapsed=elapsed, config=cfg, backend=got[0]["backend"],
        n_symbols=sum(g["n_symbols"] for g in got), n_bars=int(n_bars), long_threshold=lo,
        short_threshold=hi, warnings=list(messages), state_counts=counts)
