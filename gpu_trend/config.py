"""ATC parameters: the inputs of the TradingView dialog, validated once.

Every rule here follows section 8 of the spec (``shared/spec/ATC.md``): a
parameter the original script would accept silently but which produces a
meaningless result is rejected with a message naming the field and value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Set, Sized
from dataclasses import dataclass, fields

import numpy as np

from .cores import N_FAMILIES, N_MEMBERS, N_SIGNALS, KernelParams

#: The six moving-average families, in the order the script sums them.
FAMILIES = ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")

#: Offsets (o1, o2, o3, o4) of the nine members around a base length.
ROBUSTNESS_OFFSETS = {
    "Narrow": (1, 2, 3, 4),
    "Medium": (1, 2, 4, 6),
    "Wide": (1, 3, 5, 7),
}

NAN_POLICIES = ("raise", "ffill", "pine", "skip")

#: What drives the direction state machine: the Average_Signal or one family.
DIRECTION_SOURCES = ("Average",) + FAMILIES

#: Longest member length (base length plus the robustness offset) ATCConfig accepts.
#: 100,000 bars is about a year of one-minute bars of a US stock and four centuries of daily
#: bars: no trend window on bars is longer. The bound also keeps the cost finite (the CPU
#: kernel sums every SMA/WMA/LSMA window directly, O(length) per bar, and holds two
#: length-sized float64 buffers per thread) and every product such as length·(length + 1)
#: far inside int64 and exact in float64. Without it, (10**9,)*6 asked the memory planner
#: for 29.8 GiB of scratch and 2**63 overflowed int64 building the member-length array.
MAX_MEMBER_LENGTH = 100_000

#: Largest cutout ATCConfig accepts. A cutout at or past a symbol's last bar is valid (every
#: equity is NaN, spec section 8), so the bound must exceed any history that can be computed:
#: 10**9 bars is a bar every 3 seconds, day and night, for a century, and 8 GB of closes per
#: symbol before the 54 members' outputs. A larger cutout can only mean "never", which 10**9
#: already says; the bound keeps bar arithmetic such as ``n_bars - 1 - cutout`` inside int64
#: (2**63 raised OverflowError there, after the inputs had been read and checked).
MAX_CUTOUT = 10**9

__all__ = ["FAMILIES", "ROBUSTNESS_OFFSETS", "NAN_POLICIES", "DIRECTION_SOURCES", "N_FAMILIES",
           "N_MEMBERS", "N_SIGNALS", "MAX_MEMBER_LENGTH", "MAX_CUTOUT", "ATCConfig",
           "ATCConfigTypeError", "member_names", "member_lengths_for"]


class ATCConfigTypeError(TypeError, ValueError):
    """A parameter of :class:`ATCConfig` has the wrong type (a text flag, a scalar for six lengths).

    It is a ``TypeError``; it is also a ``ValueError`` because ATCConfig raised ValueError
    for wrong types before (``cutout=1.5``, ``la="0.1"``), and callers catching that must
    keep working.
    """


def member_lengths_for(base: int, robustness: str) -> tuple:
    """The nine member lengths of one family, in spec section-2 order."""
    o = ROBUSTNESS_OFFSETS[robustness]
    return (base, base + o[0], base + o[1], base + o[2], base + o[3],
            base - o[0], base - o[1], base - o[2], base - o[3])


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x) -> bool:
    # np.number would let complex through, and float() of a NumPy complex silently drops
    # the imaginary part; bool is an int subclass but never a meaningful number here.
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _got(value) -> str:
    """``value!r (type)``: the type tells "28" from 28 and np.True_ from True in a message."""
    return f"{value!r} ({type(value).__name__})"


def _finite_float(name: str, value, what: str = "a finite number") -> float:
    """``float(value)`` for a real, finite number; else an error naming ``name``."""
    if not _is_real(value):
        raise ATCConfigTypeError(f"{name} must be {what} (int or float), got {_got(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def _bounded_int(name: str, value, low: int, high: int) -> int:
    """``int(value)`` for a Python or NumPy integer in ``[low, high]``; else an error."""
    if not _is_int(value):
        raise ATCConfigTypeError(f"{name} must be an int (Python int or NumPy integer), "
                                 f"got {_got(value)}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return int(value)


def as_flag(name: str, value) -> bool:
    """A Python bool from a bool or NumPy bool; anything else is an error.

    ``bool("no")`` is True, so truthiness would turn a typo or a text value read from a file
    into the opposite setting without notice.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ATCConfigTypeError(f"{name} must be a bool (True or False, or a NumPy bool), "
                                 f"got {_got(value)}")
    return bool(value)


def _choice(name: str, value, choices: tuple) -> str:
    """``value`` if it is one of the strings ``choices``; else an error listing them."""
    if not isinstance(value, str):  # and never hash it: a list would raise "unhashable"
        raise ATCConfigTypeError(f"{name} must be one of {choices}, got {_got(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def _six(name: str, value, what: str) -> tuple:
    """The six items of a per-family field, read at most seven deep.

    Accepts any ordered iterable (tuple, list, 1-D array, generator). Text, mappings and
    sets are refused although they iterate: their items are characters, keys or in no
    particular order, never six values in family order.
    """
    accepted = f"{name} must be {what}, one per family in the order {FAMILIES}, as a tuple, " \
               f"list or 1-D array"
    if isinstance(value, (str, bytes, Mapping, Set)) or not isinstance(value, Iterable):
        raise ATCConfigTypeError(f"{accepted}; got {_got(value)}")
    try:
        # A sized container is read whole, so that the error can count it; an iterator
        # only seven deep, so that an endless one cannot hang the constructor.
        items = tuple(value) if isinstance(value, Sized) else \
            tuple(itertools.islice(value, N_FAMILIES + 1))
    except TypeError:  # Iterable but not iterable, e.g. a 0-d NumPy array
        raise ATCConfigTypeError(f"{accepted}; got {_got(value)}") from None
    if len(items) != N_FAMILIES:
        count = (f"{len(items)} items" if isinstance(value, Sized) or len(items) < N_FAMILIES
                 else "more than six")
        shown = value if isinstance(value, Sized) else items  # not "<generator object ...>"
        raise ValueError(f"{accepted}; got {count}: {shown!r}")
    return items


@dataclass(frozen=True)
class ATCConfig:
    """Parameters of the Adaptive Trend Classification indicator.

    Parameters
    ----------
    la : float
        "Lambda" in the TradingView dialog's units (0.02 means 2e-5 per bar);
        finite and >= 0, with no upper bound (a large value is computed and
        reported by a growth warning).
    de : float
        "Decay (%)" in the dialog's units (0.03 means a 0.9997 multiplier).
    cutout : int
        First bar (counted from each symbol's first valid close) on which
        equities exist; in ``[0, MAX_CUTOUT]`` (10**9).
    robustness : {"Narrow", "Medium", "Wide"}
        Picks the nine member lengths around each base length.
    lengths : tuple of six int
        Base lengths of EMA, HMA, WMA, DEMA, LSMA, KAMA (any ordered iterable
        of six Python or NumPy ints; stored as a tuple). Every member length
        must lie in ``[1, MAX_MEMBER_LENGTH]`` (100,000).
    weights : tuple of six float
        Starting equities of the six Layer-2 curves; finite and > 0 (any
        ordered iterable of six real numbers; stored as a tuple of floats).
    long_threshold, short_threshold : float
        Thresholds of the direction state machine (never used by Cut).
    tie_rtol : float
        ``|c - m| <= tie_rtol * |c|`` counts as ``c == m`` in the member
        crossover tests; 0 means raw comparisons.
    nan_policy : {"raise", "ffill", "pine", "skip"}
        What a NaN close or source inside a symbol's history does: raise an
        error naming it, carry the last value forward, follow the script's
        NaN arithmetic, or (``"skip"``) treat a cell without a close as not a
        bar of that symbol, so that each symbol is computed on its own
        calendar (for wide tables, where "no bar" and "missing close" look
        the same).
    direction_source : {"Average", "EMA", ..., "KAMA"}
        Series that drives the direction (the script's signal selector).
    strategy_view : bool
        Use the previous bar's value of that series (the script's
        "strategy" view). A bool or NumPy bool only: text such as ``"no"``
        is refused, not read as truthy.

    Raises
    ------
    ATCConfigTypeError
        On construction, for a field of the wrong type (a ``TypeError`` that
        is also a ``ValueError``), naming the field, the value and what is
        accepted.
    ValueError
        On construction, for a value out of range, naming the field and value.
    """

    la: float = 0.02
    de: float = 0.03
    cutout: int = 0
    robustness: str = "Medium"
    lengths: tuple = (28, 28, 28, 28, 28, 28)
    weights: tuple = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    long_threshold: float = 0.1
    short_threshold: float = -0.1
    tie_rtol: float = 1e-12
    nan_policy: str = "raise"
    direction_source: str = "Average"
    strategy_view: bool = False

    def __post_init__(self):
        # Each validator returns the normalised value (Python float/int/bool/str, tuples),
        # so equal settings give equal, hashable configs whatever types they came in.
        self._validate_scalars()
        self._validate_choices()
        self._validate_lengths()
        self._validate_weights()

    def _set(self, name, value):
        object.__setattr__(self, name, value)  # the dataclass is frozen

    def _validate_scalars(self):
        """la, de, thresholds, tie_rtol, cutout and strategy_view: types and ranges."""
        for name in ("la", "de", "long_threshold", "short_threshold", "tie_rtol"):
            self._set(name, _finite_float(f"ATCConfig.{name}", getattr(self, name)))
        # No upper bound on la: a large λ is computed and reported by the growth warning
        # (spec section 8), which handles the overflow of exp(λt) itself.
        if self.la < 0:
            raise ValueError(f"ATCConfig.la must be >= 0, got {self.la!r}")
        if not 0 <= self.de < 100:
            raise ValueError(f"ATCConfig.de is a percentage and must be in [0, 100), got {self.de!r}")
        if self.tie_rtol < 0:
            raise ValueError(f"ATCConfig.tie_rtol must be >= 0, got {self.tie_rtol!r}")
        if self.long_threshold < self.short_threshold:
            raise ValueError(
                f"ATCConfig.long_threshold ({self.long_threshold!r}) must be >= "
                f"short_threshold ({self.short_threshold!r})")
        self._set("cutout", _bounded_int("ATCConfig.cutout", self.cutout, 0, MAX_CUTOUT))
        self._set("strategy_view", as_flag("ATCConfig.strategy_view", self.strategy_view))

    def _validate_choices(self):
        """robustness, nan_policy and direction_source: one of their listed strings."""
        self._set("robustness", _choice("ATCConfig.robustness", self.robustness,
                                        tuple(ROBUSTNESS_OFFSETS)))
        self._set("nan_policy", _choice("ATCConfig.nan_policy", self.nan_policy, NAN_POLICIES))
        self._set("direction_source", _choice("ATCConfig.direction_source",
                                              self.direction_source, DIRECTION_SOURCES))

    def _validate_lengths(self):
        """Six int base lengths whose nine members all lie in [1, MAX_MEMBER_LENGTH]."""
        lengths = _six("ATCConfig.lengths", self.lengths, "six ints")
        for fam, base in zip(FAMILIES, lengths):
            if not _is_int(base):
                raise ATCConfigTypeError(
                    f"ATCConfig.lengths must be six ints (Python int or NumPy integer), one per "
                    f"family in the order {FAMILIES}; the length of {fam} is {_got(base)}")
        lengths = tuple(int(x) for x in lengths)
        for fam, base in zip(FAMILIES, lengths):
            members = member_lengths_for(base, self.robustness)
            where = (f"ATCConfig.lengths: family {fam} with base length {base} and robustness "
                     f"{self.robustness!r} has a member of length")
            if min(members) < 1:
                raise ValueError(f"{where} {min(members)}; every member length must be >= 1 "
                                 f"(base length >= {base - min(members) + 1})")
            if max(members) > MAX_MEMBER_LENGTH:
                raise ValueError(f"{where} {max(members)}; every member length must be <= "
                                 f"{MAX_MEMBER_LENGTH} (base length <= "
                                 f"{MAX_MEMBER_LENGTH - (max(members) - base)})")
        self._set("lengths", lengths)

    def _validate_weights(self):
        """Six finite starting equities > 0 (spec section 8: the script floors them instead)."""
        weights = _six("ATCConfig.weights", self.weights, "six numbers")
        floats = []
        for fam, w in zip(FAMILIES, weights):
            what = f"ATCConfig.weights: the weight of {fam}"
            floats.append(_finite_float(what, w, "a finite number > 0"))
            if floats[-1] <= 0:
                raise ValueError(f"{what} must be a finite number > 0, got {w!r}")
        self._set("weights", tuple(floats))

    # Derived values: the internal units of spec section 1.
    @property
    def lam(self) -> float:
        """λ per bar (``la / 1000``)."""
        return self.la / 1000.0

    @property
    def decay(self) -> float:
        """Decay multiplier d = 1 − De/100."""
        return 1.0 - self.de / 100.0

    def member_lengths(self) -> np.ndarray:
        """(6, 9) int64 array of member lengths, family-major, section-2 order."""
        return np.array([member_lengths_for(b, self.robustness) for b in self.lengths],
                        dtype=np.int64)

    @property
    def warmup_bars(self) -> int:
        """Bars from a symbol's listing to the first bar on which all 54 MAs can be valid.

        ``max(ℓ_max − 1, 2·ℓ_DEMA,max − 2)`` with ℓ_max over the EMA, SMA, WMA and
        LSMA members: their windows (or EMA seeds) fill on bar ℓ − 1, and a
        DEMA's second EMA is seeded on bar 2ℓ − 2. KAMA starts from zero and is
        valid from the listing bar on, whatever its length.
        """
        lens = self.member_lengths()
        dema, kama = FAMILIES.index("DEMA"), FAMILIES.index("KAMA")
        windowed = np.delete(lens, kama, axis=0)
        return int(max(windowed.max() - 1, 2 * lens[dema].max() - 2))

    @property
    def state_window(self) -> int:
        """Bars of history a resumed computation needs before its new bars.

        The longest window (ℓ values) plus the bar before it, which KAMA's noise
        and signal reach back to.
        """
        return int(self.member_lengths().max()) + 1

    def kernel_params(self, n_bars: int) -> KernelParams:
        """The :class:`~gpu_trend.cores.KernelParams` both backends run on, for ``n_bars`` bars."""
        tau = np.arange(max(n_bars, 1), dtype=np.float64)
        # A large la overflows exp to inf: IEEE's answer, kept as is. The engine's growth
        # warning reports it (and says when results become meaningless), so NumPy's own
        # "overflow encountered in exp" would only repeat it, or fail under -W error.
        with np.errstate(over="ignore"):
            growth = np.where(tau < self.cutout, 1.0, np.exp(self.lam * (tau - self.cutout)))
        return KernelParams(
            growth=growth,
            lengths=self.member_lengths(),
            weights=np.asarray(self.weights, dtype=np.float64),
            cutout=self.cutout,
            decay=self.decay,
            tie_rtol=self.tie_rtol,
            long_threshold=self.long_threshold,
            short_threshold=self.short_threshold,
            direction_source=(-1 if self.direction_source == "Average"
                              else FAMILIES.index(self.direction_source)),
            strategy_view=self.strategy_view,
        )

    @classmethod
    def from_tradingview(cls, params: Mapping) -> "ATCConfig":
        """Build from a dict with TradingView-style keys (``La``, ``De``, ...).

        Parameters
        ----------
        params : mapping
            ``La``, ``De``, ``Long_threshold`` and ``Short_threshold`` as the dialog names
            them, or their field names; every other field (``cutout``, ``lengths``, ...)
            by its field name.

        Returns
        -------
        ATCConfig

        Raises
        ------
        TypeError
            If ``params`` is not a mapping, or a key is unknown (the error lists the
            known keys).
        ValueError
            If a dialog key and its field name are both given, or a value is invalid.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"ATCConfig.from_tradingview expects a mapping of parameters, "
                            f"got {type(params).__name__}")
        names = [f.name for f in fields(cls)]
        known = list(_TRADINGVIEW_KEYS) + names
        kwargs, given_as = {}, {}
        for key, value in params.items():
            name = _TRADINGVIEW_KEYS.get(key, key)
            if name not in names:
                raise TypeError(f"ATCConfig.from_tradingview: unknown key {key!r}; "
                                f"known keys: {', '.join(map(repr, known))}")
            if name in kwargs:
                # {"La": 0.1, "la": 0.2} would otherwise keep whichever came last.
                raise ValueError(f"ATCConfig.from_tradingview: {given_as[name]!r} and {key!r} "
                                 f"both give {name}; give one")
            kwargs[name], given_as[name] = value, key
        return cls(**kwargs)


#: TradingView dialog names of the fields whose names differ.
_TRADINGVIEW_KEYS = {"La": "la", "De": "de", "Long_threshold": "long_threshold",
                     "Short_threshold": "short_threshold"}


def member_names(config: ATCConfig | None = None) -> list:
    """Labels of the 54 members, e.g. ``"EMA_28"``, family-major."""
    config = config or ATCConfig()
    lens = config.member_lengths()
    return [f"{fam}_{int(lens[k, i])}" for k, fam in enumerate(FAMILIES) for i in range(N_MEMBERS)]
