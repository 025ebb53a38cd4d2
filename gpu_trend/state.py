"""Resumable state: everything the recurrences need to continue from a symbol's last bar.

The cores (:mod:`gpu_trend.cores`) keep every recurrence in registers and can
start from, and write back, one state row per member (11 numbers: the EMA,
DEMA and KAMA states, the crossover machine, the Layer-1 equity and its
persistent return), per family (3: previous signal, Layer-2 return and
equity) and per symbol (3: the direction machine). With the last window of
closes and sources and the bar counter τ, that is all a new bar needs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._version import __version__
from .arrays import to_host
from .config import ATCConfig
from .cores import FINAL_STATE, LAYER2_STATE, MEMBER_STATE, N_FAMILIES, N_SIGNALS
from .files import write_atomically


class BlockState(NamedTuple):
    """The state rows of one block of symbols, as the backends' ``run_block`` takes them.

    Attributes
    ----------
    t_from : (S,) int64
        Each symbol's first column computed: past the history window prepended
        to its new bars when it resumes (empty: 0 for all).
    resume : (S,) bool
        Symbols that continue from their rows (empty: none).
    member, layer2, final : arrays (R, 54, 11), (R, 6, 3), (R, 3) float64
        The rows, read where ``resume`` and written back when ``keep``
        (placeholders of one row when neither).
    keep : bool
    at : (S,) int64
        The row of each symbol in `member`, `layer2` and `final` (empty: row s, R = S):
        an update writes the new state's arrays in place.
    prior : tuple of arrays, optional
        (member, layer2, final) rows a resumed symbol is read from, at the same row
        (None: from `member`, `layer2` and `final` themselves): an update reads the old
        state, so that its rows are copied once, by the kernel that reads them anyway.
    """

    t_from: np.ndarray
    resume: np.ndarray
    member: np.ndarray
    layer2: np.ndarray
    final: np.ndarray
    keep: bool
    at: np.ndarray
    prior: tuple | None = None


def state_rows(xp, n_symbols: int) -> tuple:
    """Uninitialised (member, layer2, final) state rows for `n_symbols` symbols."""
    return (xp.empty((n_symbols, N_SIGNALS, MEMBER_STATE)),
            xp.empty((n_symbols, N_FAMILIES, LAYER2_STATE)),
            xp.empty((n_symbols, FINAL_STATE)))


#: No symbol resumes, all start at column 0, and symbol s has row s.
NO_RESUME = np.empty(0, dtype=np.bool_)
NO_T_FROM = np.empty(0, dtype=np.int64)
NO_AT = NO_T_FROM

#: Bytes of one symbol's state rows.
STATE_BYTES = 8 * (N_SIGNALS * MEMBER_STATE + N_FAMILIES * LAYER2_STATE + FINAL_STATE)


#: Version of the saved layout (:meth:`ATCState.save`); a file of another version is refused.
STATE_FORMAT = 1


@dataclass
class ATCState:
    """Where every symbol's recurrences stand after its last bar: enough to go on exactly.

    Made by ``compute_atc(..., return_state=True)`` and :func:`gpu_trend.update_atc` (as
    ``result.state``); its arrays live where it was computed (NumPy or CuPy).

    Attributes
    ----------
    config : ATCConfig
    symbols : list of str
    last_time : list
        Each symbol's last bar time (None if it has none yet).
    bars : (S,) int64
        Bars from each symbol's listing through its last bar (0: not listed yet); the
        next bar's τ.
    close_window, source_window : (S, W) float64
        The last W = longest member + 1 closes and MA inputs (NaN policy applied; NaN
        before a short history). ``source_window`` is None without a separate source.
    member, layer2, final : (S, 54, 11), (S, 6, 3), (S, 3) float64
        The cores' state rows (:mod:`gpu_trend.cores`).
    last : (S, 8) float64 NumPy
        Each symbol's Average_Signal, direction and six family signals on its last
        bar (NaN before any): what a scan shows for a symbol without new bars.
    since : (S, 2) float64 NumPy
        Bars since each symbol's last long and short event, at its last bar (NaN
        if none yet): what ``latest()`` of an update carries on.
    clock : object
        The last time of the inputs so far, whichever symbol it belongs to (None
        before any bar): array updates number their bars on from it.
    version : str
        The gpu-trend version that made it.
    """

    config: ATCConfig
    symbols: list
    last_time: list
    bars: np.ndarray
    close_window: Any
    source_window: Any
    member: Any
    layer2: Any
    final: Any
    last: Any = None
    since: Any = None
    clock: Any = None
    version: str = __version__

    @property
    def window(self) -> int:
        return self.close_window.shape[1]

    def rows_of(self, symbols) -> np.ndarray:
        """Each of `symbols`' row in this state, −1 for a symbol it does not know."""
        if len(symbols) == len(self.symbols) and list(symbols) == list(self.symbols):
            return np.arange(len(symbols))  # the state's own order: an array update's rows
        return self._symbol_index.get_indexer(pd.Index(symbols, dtype=object))

    @functools.cached_property
    def _symbol_index(self) -> pd.Index:
        return pd.Index(self.symbols, dtype=object)

    @functools.cached_property
    def last_times(self) -> pd.Index:
        """``last_time`` as an Index (NaN / NaT for symbols without a bar), for comparisons."""
        return pd.Index([np.nan if t is None else t for t in self.last_time])

    def _seed_lookups(self, symbol_index=None, last_times=None) -> None:
        """Give the cached ``_symbol_index`` / ``last_times`` values already built elsewhere
        (an update has its old state's, and the new last times as an Index), so that they are
        not rebuilt from the lists with a loop over the symbols."""
        if symbol_index is not None:
            self.__dict__["_symbol_index"] = symbol_index
        if last_times is not None:
            self.__dict__["last_times"] = last_times

    @classmethod
    def empty(cls, config: ATCConfig, *, window: int | None = None,
              separate_source: bool = False) -> "ATCState":
        """A state that knows no symbol yet: an update from it computes every symbol fresh."""
        width = config.state_window if window is None else window
        rows = state_rows(np, 0)
        return cls(config, [], [], np.zeros(0, np.int64), np.empty((0, width)),
                   np.empty((0, width)) if separate_source else None, *rows,
                   last=np.empty((0, 8)), since=np.empty((0, 2)))

    def __repr__(self) -> str:
        listed = int((np.asarray(self.bars) > 0).sum())
        return (f"ATCState({len(self.symbols)} symbols, {listed} listed, window "
                f"{self.window}, gpu-trend {self.version})")

    def to_host(self) -> "ATCState":
        """The same state with NumPy arrays."""
        def host(a):
            return None if a is None else to_host(a)
        return dataclasses.replace(
            self, bars=np.asarray(self.bars), last=host(self.last), since=host(self.since),
            close_window=host(self.close_window),
            source_window=host(self.source_window), member=host(self.member),
            layer2=host(self.layer2), final=host(self.final))

    # -- persistence -----------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the state to an ``.npz`` file (atomically; no pickles).

        The layout, version :data:`STATE_FORMAT`: ``format`` (int), ``version`` (str),
        ``config`` (JSON of the ATCConfig fields), ``symbols`` (str), ``last_time`` with
        ``time_kind`` ("datetime" as int64 ns UTC with ``tz``, "number" as float64, or
        "none"; NaN/NaT where a symbol has no bar; the clock last), ``bars``, ``last``, ``since``,
        ``close_window``,
        ``source_window`` (absent without a separate source), ``member``, ``layer2``,
        ``final``. Any backend's state saves; the file loads on either.
        """
        host = self.to_host()
        kind, times, tz = _encode_times(host.last_time + [host.clock])
        arrays = dict(format=np.int64(STATE_FORMAT), version=np.str_(host.version),
                      config=np.str_(json.dumps(dataclasses.asdict(host.config))),
                      symbols=np.asarray(host.symbols, dtype=np.str_), time_kind=np.str_(kind),
                      tz=np.str_(tz), last_time=times, bars=host.bars.astype(np.int64),
                      last=host.last, since=host.since,
                      close_window=host.close_window, member=host.member, layer2=host.layer2,
                      final=host.final)
        if host.source_window is not None:
            arrays["source_window"] = host.source_window

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return write_atomically(path, write)

    @classmethod
    def load(cls, path, *, config=None) -> "ATCState":
        """Read a state written by :meth:`save` (NumPy arrays).

        Parameters
        ----------
        path : str or os.PathLike
        config : ATCConfig, optional
            The config the caller will continue with: a state made with another is
            refused, naming the fields that differ.

        Raises
        ------
        ValueError
            A file of another layout version, or a config mismatch.
        """
        with np.load(path, allow_pickle=False) as z:
            fmt = int(z["format"])
            if fmt != STATE_FORMAT:
                raise ValueError(f"{path}: state layout version {fmt}, this gpu-trend reads "
                                 f"version {STATE_FORMAT}; recompute the state")
            saved = ATCConfig(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in json.loads(str(z["config"])).items()})
            times = _decode_times(str(z["time_kind"]), z["last_time"], str(z["tz"]))
            state = cls(config=saved, symbols=[str(s) for s in z["symbols"]],
                        last_time=times[:-1], clock=times[-1],
                        bars=z["bars"].astype(np.int64), last=z["last"], since=z["since"],
                        close_window=z["close_window"],
                        source_window=z["source_window"] if "source_window" in z else None,
                        member=z["member"], layer2=z["layer2"], final=z["final"],
                        version=str(z["version"]))
        if config is not None:
            check_config(state, config, where=str(path))
        return state


def check_config(state: ATCState, config: ATCConfig, *, where: str = "the state") -> None:
    """Refuse to continue `state` with another config; the message names the fields."""
    if config == state.config:
        return
    ours, theirs = dataclasses.asdict(config), dataclasses.asdict(state.config)
    diff = ", ".join(f"{k}={theirs[k]!r} in the state, {ours[k]!r} here" for k in ours
                     if ours[k] != theirs[k])
    raise ValueError(f"{where} was computed with another config: {diff}")


def _encode_times(times: list) -> tuple:
    """(kind, values, tz) of per-symbol last times for an npz file."""
    present = [t for t in times if t is not None]
    if not present:
        return "none", np.full(len(times), np.nan), ""
    if all(isinstance(t, (pd.Timestamp, np.datetime64)) for t in present):
        stamps = pd.DatetimeIndex([pd.NaT if t is None else t for t in times])
        tz = str(stamps.tz) if stamps.tz is not None else ""
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        return "datetime", stamps.as_unit("ns").asi8, tz
    return "number", np.array([np.nan if t is None else float(t) for t in times]), ""


def _decode_times(kind: str, values: np.ndarray, tz: str) -> list:
    if kind == "none":
        return [None] * len(values)
    if kind == "datetime":
        stamps = pd.DatetimeIndex(values.astype("datetime64[ns]"))
        if tz:
            stamps = stamps.tz_localize("UTC").tz_convert(tz)
        return [None if t is pd.NaT else t for t in stamps]
    return [None if v != v else (int(v) if float(v).is_integer() else float(v)) for v in values]
