"""Parameter sweeps (:func:`gpu_trend.sweep.sweep`) on a cluster: one sweep per partition of
symbols, whose tables are stacked; symbols never interact, so each one's rows are those of one
sweep of the whole universe."""

from __future__ import annotations

import pandas as pd


def sweep_part(close, grid, *, backend, memory_limit, cost=None):
    """One task: the sweep of one partition; its ``latest()`` table, or with `cost` its
    per-symbol ``summary`` and the grid's parameter table."""
    from ..sweep import sweep

    res = sweep(close, grid, backend=backend, memory_limit=memory_limit, progress=False)
    if cost is None:
        return res.latest()
    return res.summary(cost, by="symbol"), res.params


class DaskSweep:
    """The lazy sweep of :func:`gpu_trend.dask.sweep`: each method runs its own tasks.

    Attributes
    ----------
    inputs : list of dask.delayed.Delayed
        Each partition's input (a Universe, or a wide frame of a block of an array).
    configs : list of ATCConfig
        The grid's configurations, in order.
    """

    def __init__(self, inputs, grid, *, backend, memory_limit):
        from ..sweep import expand_grid

        self.configs = expand_grid(grid)  # a bad grid fails here, on the client
        self.inputs, self._grid = inputs, grid
        self._opts = dict(backend=backend, memory_limit=memory_limit)

    def _tasks(self, cost=None):
        import dask

        return [dask.delayed(sweep_part, pure=True)(x, self._grid, cost=cost, **self._opts)
                for x in self.inputs]

    def latest(self):
        """:meth:`SweepResult.latest` of the whole universe as a lazy ``dask.dataframe``
        (index config, symbol; one partition per partition of symbols)."""
        import dask.dataframe as dd

        return dd.from_delayed(self._tasks(), verify_meta=False)

    def summary(self, cost: float = 0.0, *, by: str = "symbol", **compute_options):
        """:meth:`SweepResult.summary`: ``by="symbol"`` as a lazy ``dask.dataframe``;
        ``by="config"`` computes the per-symbol tables and aggregates them on the client
        (keyword arguments go to ``dask.compute``)."""
        import dask
        import dask.dataframe as dd

        from ..backtest import aggregate

        if by not in ("symbol", "config"):
            raise ValueError(f"summary: by must be 'symbol' or 'config', got {by!r}")
        tasks = self._tasks(cost)
        if by == "symbol":
            return dd.from_delayed([dask.delayed(lambda p: p[0])(t) for t in tasks],
                                   verify_meta=False)
        got = dask.compute(*tasks, **compute_options)
        table = pd.concat([t for t, _ in got]).sort_index(level="config", sort_remaining=False,
                                                         kind="stable")
        return got[0][1].join(aggregate(table))
