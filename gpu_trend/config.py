"""ATC parameters: the inputs of the TradingView dialog, validated once.

Every rule here follows section 8 of the spec (``shared/spec/ATC.md``): a
parameter the original script would accept silently but which produces a
meaningless result is rejected with a message naming the field and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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

__all__ = ["FAMILIES", "ROBUSTNESS_OFFSETS", "NAN_POLICIES", "DIRECTION_SOURCES", "N_FAMILIES",
           "N_MEMBERS", "N_SIGNALS", "ATCConfig", "member_names", "member_lengths_for"]


def member_lengths_for(base: int, robustness: str) -> tuple:
    """The nine member lengths of one family, in spec section-2 order."""
    o = ROBUSTNESS_OFFSETS[robustness]
    return (base, base + o[0], base + o[1], base + o[2], base + o[3],
            base - o[0], base - o[1], base - o[2], base - o[3])


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True)
class ATCConfig:
    """Parameters of the Adaptive Trend Classification indicator.

    Parameters
    ----------
    la : float
        "Lambda" in the TradingView dialog's units (0.02 means 2e-5 per bar).
    de : float
        "Decay (%)" in the dialog's units (0.03 means a 0.9997 multiplier).
    cutout : int
        First bar (counted from each symbol's first valid close) on which
        equities exist.
    robustness : {"Narrow", "Medium", "Wide"}
        Picks the nine member lengths around each base length.
    lengths : tuple of six int
        Base lengths of EMA, HMA, WMA, DEMA, LSMA, KAMA.
    weights : tuple of six float
        Starting equities of the six Layer-2 curves; must be > 0.
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
        "strategy" view).

    Raises
    ------
    ValueError
        On construction, naming the offending field and value.
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
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("la", "de", "long_threshold", "short_threshold", "tie_rtol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                raise ValueError(f"ATCConfig.{name} must be a finite number, got {value!r}")
            set_(name, float(value))
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
        if not _is_int(self.cutout):
            raise ValueError(f"ATCConfig.cutout must be an int, got {self.cutout!r}")
        if self.cutout < 0:
            raise ValueError(f"ATCConfig.cutout must be >= 0, got {self.cutout!r}")
        set_("cutout", int(self.cutout))
        if self.robustness not in ROBUSTNESS_OFFSETS:
            raise ValueError(f"ATCConfig.robustness must be one of {tuple(ROBUSTNESS_OFFSETS)}, "
                             f"got {self.robustness!r}")
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"ATCConfig.nan_policy must be one of {NAN_POLICIES}, "
                             f"got {self.nan_policy!r}")
        if self.direction_source not in DIRECTION_SOURCES:
            raise ValueError(f"ATCConfig.direction_source must be one of {DIRECTION_SOURCES}, "
                             f"got {self.direction_source!r}")
        set_("strategy_view", bool(self.strategy_view))

        lengths = tuple(self.lengths)
        if len(lengths) != N_FAMILIES or not all(_is_int(x) for x in lengths):
            raise ValueError(f"ATCConfig.lengths must be six ints (family order {FAMILIES}), "
                             f"got {self.lengths!r}")
        lengths = tuple(int(x) for x in lengths)
        for fam, base in zip(FAMILIES, lengths):
            shortest = min(member_lengths_for(base, self.robustness))
            if shortest <= 0:
                raise ValueError(
                    f"ATCConfig.lengths: family {fam} with base length {base} and robustness "
                    f"{self.robustness!r} has a member of length {shortest}; every member "
                    f"length must be >= 1 (base length >= {base - shortest + 1})")
        set_("lengths", lengths)

        weights = tuple(self.weights)
        if len(weights) != N_FAMILIES:
            raise ValueError(f"ATCConfig.weights must be six numbers, got {self.weights!r}")
        for fam, w in zip(FAMILIES, weights):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) \
                    or not math.isfinite(w) or w <= 0:
                raise ValueError(f"ATCConfig.weights: the weight of {fam} must be a finite "
                                 f"number > 0, got {w!r}")
        set_("weights", tuple(float(w) for w in weights))

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

    def kernel_params(self, n_bars: int) -> KernelParams:
        """The :class:`~gpu_trend.cores.KernelParams` both backends run on, for ``n_bars`` bars."""
        tau = np.arange(max(n_bars, 1), dtype=np.float64)
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
    def from_tradingview(cls, params: dict) -> "ATCConfig":
        """Build from a dict with TradingView-style keys (``La``, ``De``, ...)."""
        aliases = {"La": "la", "De": "de", "Long_threshold": "long_threshold",
                   "Short_threshold": "short_threshold"}
        return cls(**{aliases.get(k, k): (tuple(v) if isinstance(v, list) else v)
                      for k, v in params.items()})


def member_names(config: ATCConfig | None = None) -> list:
    """Labels of the 54 members, e.g. ``"EMA_28"``, family-major."""
    config = config or ATCConfig()
    lens = config.member_lengths()
    return [f"{fam}_{int(lens[k, i])}" for k, fam in enumerate(FAMILIES) for i in range(N_MEMBERS)]
