"""Parameter sweeps: ATC for many configurations at once, sharing the work they have in common.

:func:`sweep` runs a grid of :class:`~gpu_trend.config.ATCConfig` over a universe and
returns a :class:`SweepResult`: every output of :class:`~gpu_trend.results.ATCResult` with
a leading configuration axis, each configuration's own ``ATCResult``, a latest-bar table and
a calibration summary (:mod:`gpu_trend.backtest`).

Every stage of the indicator is computed once per distinct value of what it depends on
(:mod:`gpu_trend.sweep_plan`): a grid over weights or thresholds computes each moving
average and Layer-1 equity once per symbol, and a grid over lengths each distinct
(family, member length). The stages are the cores both backends run for
:func:`~gpu_trend.compute_atc`, called on the same inputs, so every configuration's outputs
are the same bits as its own ``compute_atc`` call's.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from . import backtest, calendars, display, memory
from .arrays import to_host
from .backend import resolve_backend
from .config import N_FAMILIES, ATCConfig
from .engine import Workload, apply_nan_policy, as_config, first_full_bars
from .results import ATCResult, _bars_since, latest_table
from .sweep_plan import (BlockRows, build_plan, decode_directions, decode_signals,
                         group_configs)

__all__ = ["sweep", "SweepResult", "expand_grid"]

#: Fields whose grid values may be one number standing for all six families.
_PER_FAMILY = ("lengths", "weights")
#: Symbols a GPU block should hold at least before a grid is split into groups of
#: configurations (fewer would leave most of the device idle).
GPU_MIN_BLOCK = 256
#: Largest CPU block: blocks are the steps of the progress bar.
CPU_BLOCK = 256
#: The configuration outputs, (P, S, T) each, and their dtypes as stored.
CONFIG_OUTPUTS = {"direction": np.int8}


def events_of(direction_code: np.ndarray, sign: int) -> np.ndarray:
    """The long (``sign`` 1) or short (−1) events of stored directions, along the last axis.

    A long event is a bar whose direction machine (spec 7.4) crosses up while the direction
    was −1, which leaves it +1; the direction turns from −1 to +1 no other way. Since
    ``long_threshold >= short_threshold`` (ATCConfig checks it) a bar never crosses both
    ways, so the event is exactly "direction −1 on the bar before, +1 on this one" (short:
    the other way round), and the sweep stores the direction alone.
    """
    out = np.zeros(direction_code.shape, dtype=np.bool_)
    out[..., 1:] = (direction_code[..., 1:] == sign) & (direction_code[..., :-1] == -sign)
    return out


# ----------------------------------------------------------------------------
# the grid
# ----------------------------------------------------------------------------

def expand_grid(grid) -> list:
    """The configurations of a grid.

    Parameters
    ----------
    grid : mapping or sequence
        A mapping of :class:`ATCConfig` field → values, whose Cartesian product is taken in
        the mapping's order (the last field varies fastest); fields it does not name keep
        their defaults. For ``lengths`` and ``weights`` a value may be one number standing
        for all six families. Or a sequence of configurations (``ATCConfig`` or mappings of
        fields).

    Returns
    -------
    list of ATCConfig

    Raises
    ------
    TypeError
        An unknown field, or values that are not a list.
    ValueError
        An empty grid, or a grid point that is not a valid configuration (the message
        names the point).
    """
    if isinstance(grid, Mapping):
        known = [f.name for f in fields(ATCConfig)]
        axes = []
        for name, values in grid.items():
            if name not in known:
                raise TypeError(f"sweep: unknown field {name!r} in the grid; the fields are "
                                f"{', '.join(known)}")
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
                raise TypeError(f"sweep: grid[{name!r}] must be a list of values, got "
                                f"{values!r}")
            values = list(values)
            if not values:
                raise ValueError(f"sweep: grid[{name!r}] has no values")
            if name in _PER_FAMILY:
                values = [(v,) * N_FAMILIES if np.ndim(v) == 0 and not isinstance(v, str)
                          else v for v in values]
            axes.append(values)
        configs = []
        for point in itertools.product(*axes):
            kwargs = dict(zip(grid, point))
            try:
                configs.append(ATCConfig(**kwargs))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"sweep: grid point {kwargs}: {exc}") from None
    elif isinstance(grid, Iterable) and not isinstance(grid, (str, bytes)):
        configs = [as_config(c) for c in grid]
    else:
        raise TypeError(f"sweep: grid must be a mapping of field -> values or a list of "
                        f"ATCConfig, got {type(grid).__name__}")
    if not configs:
        raise ValueError("sweep: the grid has no configurations")
    return configs


def _params_table(configs, grid) -> pd.DataFrame:
    """One row per configuration: the grid's fields (a mapping's keys, else those that vary)."""
    if isinstance(grid, Mapping):
        names = list(grid)
    else:
        names = [f.name for f in fields(ATCConfig)
                 if len({getattr(c, f.name) for c in configs}) > 1]
    return pd.DataFrame({n: [getattr(c, n) for c in configs] for n in names},
                        index=pd.RangeIndex(len(configs), name="config"))


# ----------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepInput:
    """One NaN policy's bars, on the sweep's bar axis (padded on the left to its width).

    Attributes
    ----------
    close : (S, W) float64 NumPy
        Closes as prepared for the kernels (each symbol's bars packed to the right).
    positions : (S, T) int64 or None
        As :attr:`ATCResult.positions`, for its own ``T`` bars.
    start_bar : (S,) int64
        Each symbol's first bar among its own ``T`` (T if none).
    n_bars : int
        T, the bars a separate ``compute_atc`` call with this policy returns.
    """

    close: np.ndarray
    positions: np.ndarray | None
    start_bar: np.ndarray
    n_bars: int


@dataclass(frozen=True)
class SweepResult:
    """ATC for every configuration of a grid; arrays lead with the configuration axis P.

    Bars run over the sweep's bar axis W: the input's bars (a grid over ``nan_policy``,
    whose ``"skip"`` drops empty cells, takes the widest and pads the others on the left).

    Attributes
    ----------
    configs : tuple of ATCConfig
        The configurations, in grid order: configuration ``i`` is row ``i`` of every array.
    params : pandas.DataFrame
        One row per configuration (index ``config``): the grid's fields.
    symbols : list of str
    index : pandas.Index
    backend : str
    direction_code : (P, S, W) int8 NumPy
        The direction of every configuration as stored: 0 where it is NaN, else ±1 (an
        eighth of the float64 array; :attr:`direction` decodes it, :attr:`long_events` and
        :attr:`short_events` are derived from it).
    family_set : (P,) int64
        Row of :attr:`family_outputs` each configuration's family outputs are: configurations
        that differ only in thresholds, direction source or strategy view share it.
    family_outputs : tuple of (F, S, 6, W) int8 and (F, S, W) float64 NumPy
        The family signals X_k and the Average_Signal of each distinct family set, stored
        once (:attr:`family_signals` and :attr:`average_signal` gather them per
        configuration). X_k = round2(N/D) is an integer r over 100, stored as r
        (:data:`~gpu_trend.sweep_plan.SIGNAL_NAN` for NaN;
        :func:`~gpu_trend.sweep_plan.decode_signals` gives back its float64 bits). The
        family equities S_k are not stored: a recurrence on X_k and the returns, they are
        derived when read (:meth:`set_equities`), the same bits.
    work : dict
        What was computed, summed over symbols: ``moving_averages`` (member MA and signal
        passes), ``window_passes`` (CPU: shared window sums, nine lengths each),
        ``layer1_equities`` (CPU: one per distinct signal, λ, decay and cutout; GPU: one per
        member slot of each distinct member set), ``layer2`` (family Layer-2 runs) and
        ``final``. One ``compute_atc`` call computes 54 moving averages, 54 equities, 6
        Layer-2 runs and 1 final per symbol.
    warnings : tuple of str
        The growth warnings of the grid, each once.
    config_warnings : tuple of tuples of str
        Those of each configuration (what its own ``compute_atc`` call warns).
    inputs : tuple of SweepInput
        One per NaN policy of the grid; ``input_of`` (P,) says which a configuration uses.
    input_of : (P,) int64
    """

    configs: tuple
    params: pd.DataFrame
    symbols: list
    index: pd.Index
    backend: str
    direction_code: np.ndarray
    family_set: np.ndarray
    family_outputs: tuple
    work: dict
    inputs: tuple
    input_of: np.ndarray
    config_warnings: tuple
    warnings: tuple = field(default_factory=tuple)

    def __repr__(self) -> str:
        return (f"SweepResult({self.n_configs} configs × {len(self.symbols)} symbols × "
                f"{self.direction_code.shape[-1]} bars, backend {self.backend})")

    @property
    def n_configs(self) -> int:
        return len(self.configs)

    @property
    def direction(self) -> np.ndarray:
        """(P, S, W) float64: the direction of every configuration, NaN or ±1 as
        :func:`~gpu_trend.compute_atc` gives it (decoded from :attr:`direction_code` on
        access)."""
        return decode_directions(self.direction_code)

    @property
    def long_events(self) -> np.ndarray:
        """(P, S, W) bool: the long events of every configuration (derived on access from
        :attr:`direction_code`, see :func:`events_of`)."""
        return events_of(self.direction_code, 1)

    @property
    def short_events(self) -> np.ndarray:
        """(P, S, W) bool: the short events, as :attr:`long_events`."""
        return events_of(self.direction_code, -1)

    @property
    def average_signal(self) -> np.ndarray:
        """(P, S, W) float64: Average_Signal of every configuration (a copy gathered on
        access; ``family_outputs[1]`` holds it once per family set)."""
        return self.family_outputs[1][self.family_set]

    @property
    def family_signals(self) -> np.ndarray:
        """(P, S, 6, W) float64: X_k of every configuration (a copy gathered on access)."""
        return decode_signals(self.family_outputs[0][self.family_set])

    @property
    def family_equities(self) -> np.ndarray:
        """(P, S, 6, W) float64: S_k of every configuration (derived on access, once per
        family set: :meth:`set_equities`)."""
        sets = {f: self.set_equities(f) for f in np.unique(self.family_set)}
        return np.stack([sets[f] for f in self.family_set])

    def set_equities(self, f: int) -> np.ndarray:
        """(S, 6, W) float64: the Layer-2 equities S_k of family set ``f``
        (:attr:`family_set`), derived from its stored X_k and the input's returns.

        The sweep does not store S_k: S_k is Layer 2's equity recurrence on X_k alone
        (spec 7.1), so it is run again here, on the CPU, with the same one-bar steps
        (:func:`cpu_fallback.sweep.layer2_equities`); the bits are those the sweep's own
        Layer 2 computed, and ``compute_atc``'s. About as long as a ``compute_atc`` call's
        Layer 2, for the memory of X_k alone (one byte a value where S_k takes eight).
        """
        from cpu_fallback.sweep import layer2_equities

        i = int(np.flatnonzero(self.family_set == f)[0])  # any configuration of the set
        cfg, inp = self.configs[i], self.inputs[self.input_of[i]]
        close, starts = _swept_close(inp, cfg)
        kp = cfg.kernel_params(close.shape[1])
        return layer2_equities(self.family_outputs[0][f], close, starts, kp.growth, kp.cutout,
                               kp.weights, kp.decay)

    def result(self, i: int) -> ATCResult:
        """The :class:`ATCResult` of configuration ``i``: the same bits as
        ``compute_atc(close, configs[i], source=source)``."""
        if not 0 <= i < self.n_configs:
            raise IndexError(f"configuration {i} of a sweep of {self.n_configs}")
        cfg, inp = self.configs[i], self.inputs[self.input_of[i]]
        cut = slice(self.direction_code.shape[-1] - inp.n_bars, None)
        code = self.direction_code[i]
        arrays = {"direction": decode_directions(code[..., cut]),
                  "long_events": events_of(code, 1)[..., cut],
                  "short_events": events_of(code, -1)[..., cut]}
        f = self.family_set[i]
        xs, avg = (out[f][..., cut] for out in self.family_outputs)
        arrays.update(family_signals=decode_signals(xs),
                      family_equities=self.set_equities(f)[..., cut], average_signal=avg)
        return ATCResult(symbols=list(self.symbols), index=self.index, positions=inp.positions,
                         config=cfg, backend=self.backend, start_bar=inp.start_bar,
                         first_full_bar=first_full_bars(cfg, inp.start_bar, inp.n_bars),
                         warnings=self.config_warnings[i], **arrays)

    def latest(self) -> pd.DataFrame:
        """One row per (configuration, symbol): :meth:`ATCResult.latest` of each
        configuration, stacked (index ``config``, ``symbol``)."""
        since = np.stack([_bars_since(self.long_events), _bars_since(self.short_events)],
                         axis=-1)
        xs, avg = decode_signals(self.family_outputs[0][..., -1]), self.family_outputs[1][..., -1]
        tables = {}
        for i in range(self.n_configs):
            inp = self.inputs[self.input_of[i]]
            f = self.family_set[i]
            last = np.column_stack([avg[f], decode_directions(self.direction_code[i, :, -1]),
                                    xs[f]])
            times = calendars.last_times(self.index, inp.positions, len(self.symbols),
                                         ~np.isnan(inp.close).all(axis=1))
            tables[i] = latest_table(self.symbols, times, last, since[i], self.index)
        return pd.concat(tables, names=["config"])

    def summary(self, cost: float = 0.0, *, by: str = "symbol") -> pd.DataFrame:
        """The strategy that follows each configuration's direction, per (configuration,
        symbol) or aggregated per configuration.

        The rules are :mod:`gpu_trend.backtest`'s: the position over a bar is the direction
        on the bar before (long, short, or flat before the first crossing), returns close to
        close, ``cost`` a fraction of equity per unit of position traded (a reversal trades
        two).

        Parameters
        ----------
        cost : float, default 0
            In [0, 0.5).
        by : {"symbol", "config"}
            ``"symbol"``: one row per (configuration, symbol) with ``total_return``,
            ``annualised_return`` (NaN without a time index), ``max_drawdown``, ``trades``
            and ``time_in_market``. ``"config"``: one row per configuration, its params
            and the means of those over the symbols with bars, ``worst_drawdown``,
            ``positive`` (fraction of symbols with a gain) and ``symbols``.

        Returns
        -------
        pandas.DataFrame
        """
        if isinstance(cost, bool) or not isinstance(cost, (int, float, np.integer, np.floating)) \
                or not 0 <= cost < 0.5:
            raise ValueError(f"summary: cost is a fraction of equity per unit traded, in "
                             f"[0, 0.5), got {cost!r}")
        if by not in ("symbol", "config"):
            raise ValueError(f"summary: by must be 'symbol' or 'config', got {by!r}")
        per_input = []
        for k, inp in enumerate(self.inputs):
            close, starts = _swept_close(inp, self.configs[int(np.flatnonzero(
                self.input_of == k)[0])])
            per_input.append((backtest.bar_returns(close), starts,
                              backtest.symbol_years(self.index, inp.positions, inp.start_bar)))
        tables = {}
        for i in range(self.n_configs):
            returns, starts, years = per_input[self.input_of[i]]
            tables[i] = pd.DataFrame(backtest.strategy_metrics(
                returns, decode_directions(self.direction_code[i]), starts, years, float(cost)),
                index=pd.Index(self.symbols, name="symbol"))
        table = pd.concat(tables, names=["config"])
        if by == "symbol":
            return table
        return self.params.join(backtest.aggregate(table))


def _swept_close(inp: SweepInput, cfg: ATCConfig):
    """(close, starts) as the sweep's kernels ran on them: ``inp``'s close under ``cfg``'s
    NaN policy, on the sweep's bar axis, and the listing bars on that axis."""
    close = apply_nan_policy(inp.close, inp.close, cfg)[0]
    return close, inp.start_bar + (close.shape[1] - inp.n_bars)


# ----------------------------------------------------------------------------
# the call
# ----------------------------------------------------------------------------

def _backend(engine: str):
    if engine == "gpu":
        from . import gpu_sweep
        return gpu_sweep
    from cpu_fallback import sweep as cpu_sweep
    return cpu_sweep


class _Input:
    """One NaN policy's Workload, its checked starts and its rows on the sweep's bar axis."""

    def __init__(self, close, cfg, source, engine):
        self.cfg = cfg
        self.work = Workload.of(close, cfg, source, engine, False)

    def pad_to(self, width: int) -> None:
        """Put the rows on ``width`` bars (NaN columns on the left: bars stay right-aligned)."""
        n_bars = self.work.shape[1]
        self.pad = width - n_bars
        if not self.pad:
            self.close, self.source = self.work.close, self.work.source
            return
        xp = np if isinstance(self.work.close, np.ndarray) else __import__("cupy")

        def padded(a):
            out = xp.full((a.shape[0], width), xp.nan)
            out[:, self.pad:] = a
            return out
        self.close = padded(self.work.close)
        self.source = self.close if self.work.source is self.work.close else \
            padded(self.work.source)

    def rows(self, start, stop):
        close = self.close[start:stop]
        return close, (close if self.source is self.close else self.source[start:stop])


def sweep(close, grid, *, source=None, backend="auto", memory_limit=None,
          progress=None) -> SweepResult:
    """ATC for every configuration of a grid, sharing the work they have in common.

    Parameters
    ----------
    close : array_like, DataFrame, Series, Universe or cupy.ndarray
        As for :func:`~gpu_trend.compute_atc` (each symbol on its own calendar).
    grid : mapping or sequence
        ``{field: values}`` (the Cartesian product; ``lengths`` and ``weights`` values may
        be one number for all six families) or a list of :class:`ATCConfig`; see
        :func:`expand_grid`.
    source : optional
        As for :func:`~gpu_trend.compute_atc`.
    backend : {"auto", "cpu", "gpu"}
    memory_limit : int or str, optional
        Working-memory budget, as for :func:`~gpu_trend.compute_atc`: the stage rows of a
        block of symbols count, the returned arrays do not. A block holds the shared rows
        of every configuration it runs; when those do not fit (one symbol on the CPU, a
        block of :data:`GPU_MIN_BLOCK` on the GPU), the grid is split into groups of
        configurations that share the most, run one after the other.
    progress : bool, optional
        A progress bar over (configuration, symbol) pairs: by default in a notebook or
        when stderr is a terminal.

    Returns
    -------
    SweepResult
        Host (NumPy) arrays.

    Raises
    ------
    ATCInputError, MemoryBudgetError, BackendUnavailableError
        As for :func:`~gpu_trend.compute_atc`.
    TypeError, ValueError
        For a grid that is not one (see :func:`expand_grid`).
    """
    configs = expand_grid(grid)
    engine = resolve_backend(backend)
    driver = _backend(engine)
    policies = list(dict.fromkeys(c.nan_policy for c in configs))
    inputs = [_Input(close, next(c for c in configs if c.nan_policy == p), source, engine)
              for p in policies]
    input_of = np.array([policies.index(c.nan_policy) for c in configs], dtype=np.int64)
    work0 = inputs[0].work
    n_sym = work0.shape[0]
    width = max(inp.work.shape[1] for inp in inputs)
    on_device = work0.budget_on == "device"
    if on_device:
        memory.ensure_gpu_pool()
    budget = memory.resolve_budget(memory_limit, "gpu" if on_device else "cpu")
    separate = work0.source is not work0.close
    copied = sum(inp.work.copied for inp in inputs)

    def footprints(sizes):
        if engine == "gpu":
            scratch = driver.scratch_footprint(width, sizes, separate_source=separate,
                                               input_copies=work0.route.input_copies)
        else:
            scratch = driver.scratch_footprint(width, sizes)
        return memory.compute_footprint(
            width, scratch=scratch, members=False, n_symbols=n_sym, separate_source=separate,
            fill=any(c.nan_policy == "ffill" for c in configs),
            input_copies=work0.route.input_copies, fixed=copied)

    target = min(n_sym, GPU_MIN_BLOCK if engine == "gpu" else 1)
    groups = group_configs(configs,
                           lambda sizes: footprints(sizes).symbols_within(budget) >= target)

    validate = memory.validate_footprint(width, n_symbols=n_sym, separate_source=separate,
                                         fixed=copied)
    warned = {}  # (nan policy, la, cutout) -> the growth warning of compute_atc, if any
    for inp in inputs:
        inp.starts = inp.work.check(memory.plan_chunks(n_sym, budget, validate, validate))
        inp.pad_to(width)
        for cfg in configs:
            key = (cfg.nan_policy, cfg.la, cfg.cutout)
            if cfg.nan_policy == inp.cfg.nan_policy and key not in warned:
                view = copy.copy(inp.work)  # growth_warning reads the config from the work
                view.cfg = cfg
                warned[key] = view.growth_warning(inp.starts, stacklevel=2)

    plans = [build_plan([configs[i] for i in g], width) for g in groups]
    n_family_sets = sum(len(p.f_set) for p in plans)
    out = {name: np.empty((len(configs), n_sym, width), dtype=dtype)
           for name, dtype in CONFIG_OUTPUTS.items()}
    out["family_signals"] = np.empty((n_family_sets, n_sym, N_FAMILIES, width), dtype=np.int8)
    out["family_average"] = np.empty((n_family_sets, n_sym, width))
    family_set = np.empty(len(configs), dtype=np.int64)
    counts = np.zeros(5, dtype=np.int64)
    f0 = 0
    with display.progress_bar(len(configs) * n_sym, "ATC sweep", progress,
                              unit="cfg·sym") as bar:
        for group, plan in zip(groups, plans):
            p_row = np.array(group, dtype=np.int64)
            family_set[p_row] = f0 + plan.p_f
            inp = inputs[input_of[group[0]]]
            chunk = memory.plan_chunks(n_sym, budget, footprints(plan.counts), validate,
                                       max_chunk=None if engine == "gpu" else CPU_BLOCK)
            feed = inp.work.route.feed(inp.rows,
                                       lambda c, s, cfg=inp.cfg: apply_nan_policy(c, s, cfg))
            starts = inp.starts + inp.pad

            def run(start, stop, upcoming, plan=plan, feed=feed, starts=starts, f0=f0,
                    p_row=p_row):
                close_b, source_b = feed.take(start, stop)
                done = driver.run_block(close_b, source_b, starts[start:stop], plan, out,
                                        BlockRows(start, f0, p_row))
                if upcoming is not None:
                    feed.prefetch(*upcoming)
                return done

            def on_oom(feed=feed):
                feed.drop()
                if engine == "gpu":
                    from . import gpu
                    gpu.release_memory()

            for start, stop, done in memory.run_chunks(n_sym, chunk.chunk_symbols, run,
                                                       on_oom=on_oom):
                counts += done
                bar.update((stop - start) * len(group))
            f0 += len(plan.f_set)

    sweep_inputs = tuple(SweepInput(close=to_host(inp.close), positions=inp.work.positions,
                                    start_bar=inp.starts, n_bars=inp.work.shape[1])
                         for inp in inputs)
    return SweepResult(
        configs=tuple(configs), params=_params_table(configs, grid), symbols=list(work0.names),
        index=work0.index, backend=engine,
        direction_code=out["direction"], family_set=family_set,
        family_outputs=(out["family_signals"], out["family_average"]),
        work=dict(zip(("moving_averages", "window_passes", "layer1_equities", "layer2",
                       "final"), (int(c) for c in counts))),
        inputs=sweep_inputs, input_of=input_of,
        config_warnings=tuple(warned[c.nan_policy, c.la, c.cutout] for c in configs),
        warnings=tuple(dict.fromkeys(w for ws in warned.values() for w in ws)))

