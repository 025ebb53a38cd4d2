"""The shared work of a parameter sweep: which stage results its configurations have in common.

The ATC of one configuration is a chain of stages (spec sections 3–7), each depending on
fewer parameters than the next:

======================  ==================================================  ==============
stage                   depends on                                          kept as
======================  ==================================================  ==============
returns r_t             close, λ, cutout (the growth row)                   ``growth``
MA and signal q         source, close, family, member length, tie rule      a *q key*
Layer-1 equity E        q, r, decay, cutout                                 a member slot
Layer 2 (X_k, S_k)      nine members' q and E, the family's weight          a *family set*
Average, direction      six families' X and S, thresholds, direction        a configuration
                        source, strategy view
======================  ==================================================  ==============

:func:`build_plan` gives every distinct key of every stage one row, and the index arrays
that tie each row to the rows it reads, so that a backend computes each distinct MA once
per symbol, however many configurations use it. An *equity key* is a distinct (q key, growth
row, cutout, decay). A *member set* is the nine members of one family with one (tie rule,
λ, decay, cutout); its nine members are its *slots*. The first slot that needs a q key is
the key's *primary* slot: ``Cores.member_core`` computes q and that slot's E in one pass.
The CPU computes every other equity key once from the stored q and runs Layer 2 on the
rows where they are (:mod:`cpu_fallback.sweep`); the GPU computes q and E straight into the
slots, side by side as ``Cores.layer2_core`` reads them, every slot but the primary one from
the stored q (:mod:`gpu_trend.gpu_sweep`).

A *family set* is one configuration's six (member set, weight) pairs: configurations that
differ only in thresholds, direction source or strategy view share it, and with it their
Layer-2 outputs.

Window families (SMA, WMA, LSMA, KAMA's noise) get their window sums on the CPU from
``Cores.window_rows``, nine lengths per backward pass: the plan sorts the q keys of each
family by length and cuts them into *batches* of at most nine distinct lengths, the short
remainder first (a pass walks back as far as its longest length).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import ATCConfig
from .cores import DEMA, EMA, N_FAMILIES, N_MEMBERS
from .memory import F8

#: Bytes one symbol's outputs of one configuration take per bar: Average_Signal and
#: direction (float64), two event flags (bool).
FINAL_BYTES_PER_BAR = 2 * F8 + 2
#: ... and of one family set: six X_k and six S_k (float64).
FAMILY_BYTES_PER_BAR = 2 * N_FAMILIES * F8
#: One member slot per bar: q (int8) and E (float64).
SLOT_BYTES_PER_BAR = 1 + F8
#: A sweep stores X_k as the int8 r of round2's r / 100 (an integer in [−100, 100]), NaN as
#: this code; :func:`decode_signals` gives back the float64 bits. The direction (NaN or ±1)
#: is stored as the int8 0 or ±1.
SIGNAL_NAN = -128
#: Direction codes 0, 1, −1 → NaN, +1.0, −1.0 (by index; −1 is the last).
_DIRECTIONS = np.array([np.nan, 1.0, -1.0])


def encode_signals(xs, xp=np):
    """A sweep's int8 codes of float64 X_k (the CPU kernel encodes them the same way)."""
    return xp.where(xp.isnan(xs), SIGNAL_NAN, xp.floor(xs * 100.0 + 0.5)).astype(np.int8)


def decode_signals(codes) -> np.ndarray:
    """float64 X_k from a sweep's int8 codes (NumPy or CuPy): round2's last operations,
    ``r / 100.0 + 0.0``, on the same r, so the same bits."""
    out = codes / 100.0 + 0.0
    out[codes == SIGNAL_NAN] = np.nan
    return out


def encode_directions(directions, xp=np):
    """A sweep's int8 codes of float64 directions (NaN or ±1)."""
    return xp.nan_to_num(directions).astype(np.int8)


def decode_directions(codes) -> np.ndarray:
    """float64 directions (NaN or ±1) from a sweep's int8 codes (NumPy)."""
    return _DIRECTIONS[codes]


class SweepPlan(NamedTuple):
    """The stage rows of a group of configurations, and how they read each other.

    Attributes
    ----------
    growth : (Kg, T) float64
        One growth row (``KernelParams.growth``) per distinct (λ, cutout).
    b_fam : (B,) int64
        Family of each batch of q keys.
    b_lens : (B, 9) int64
        A window family's batch: the lengths of its backward pass (repeated to nine).
    b_lo : (B + 1,) int64
        Batch b holds q keys ``b_lo[b]:b_lo[b + 1]``.
    q_fam, q_len : (Kq,) int64
    q_tie : (Kq,) float64
    q_row : (Kq,) int64
        Row of the key's length in its batch's window pass.
    q_set, q_member : (Kq,) int64
        The key's primary slot: (member set, member).
    q_e : (Kq,) int64
        The equity key of the primary slot (the CPU computes it in the key's ``member_core``
        pass, with q).
    set_q : (G, 9) int64
        The q key of every slot.
    set_e : (G, 9) int64
        The equity key of every slot: a distinct (q key, growth row, cutout, decay).
    e_q, e_g, e_cut : (Ke,) int64
    e_d : (Ke,) float64
        What each equity key is of (the CPU computes each once per symbol).
    set_g : (G,) int64
        The member set's growth row.
    set_cut : (G,) int64
    set_d : (G,) float64
    f_set : (F, 6) int64
        Member set of each family of a family set.
    f_w : (F, 6) float64
        Weights of a family set.
    p_f : (P,) int64
        Family set of each configuration.
    p_long, p_short : (P,) float64
    p_dsrc : (P,) int64
    p_shift : (P,) bool
    """

    growth: np.ndarray
    b_fam: np.ndarray
    b_lens: np.ndarray
    b_lo: np.ndarray
    q_fam: np.ndarray
    q_len: np.ndarray
    q_tie: np.ndarray
    q_row: np.ndarray
    q_set: np.ndarray
    q_member: np.ndarray
    q_e: np.ndarray
    set_q: np.ndarray
    set_e: np.ndarray
    e_q: np.ndarray
    e_g: np.ndarray
    e_cut: np.ndarray
    e_d: np.ndarray
    set_g: np.ndarray
    set_cut: np.ndarray
    set_d: np.ndarray
    f_set: np.ndarray
    f_w: np.ndarray
    p_f: np.ndarray
    p_long: np.ndarray
    p_short: np.ndarray
    p_dsrc: np.ndarray
    p_shift: np.ndarray

    @property
    def counts(self) -> dict:
        """Rows of each stage: what one symbol's work is made of."""
        return {"growth": len(self.growth), "q_keys": len(self.q_len),
                "equity_keys": len(self.e_q), "member_sets": len(self.set_q),
                "family_sets": len(self.f_set), "configs": len(self.p_f)}


class BlockRows(NamedTuple):
    """Where one block's results go in a sweep's outputs.

    Attributes
    ----------
    s0 : int
        Its first symbol.
    f0 : int
        Row of its plan's first family set (family outputs are (F, S, 6, T)).
    p_row : (P,) int64
        Row of each of its plan's configurations (configuration outputs are (P, S, T)).
    """

    s0: int
    f0: int
    p_row: np.ndarray


class _Keys:
    """Distinct keys in order of first appearance, each with its row number."""

    def __init__(self):
        self.rows: dict = {}

    def __call__(self, key) -> int:
        return self.rows.setdefault(key, len(self.rows))

    def __len__(self):
        return len(self.rows)


def _stage_keys(cfg: ATCConfig):
    """(growth key, six member-set keys) of one configuration."""
    g_key = (cfg.la, cfg.cutout)
    lens = cfg.member_lengths()
    sets = [(f, tuple(int(x) for x in lens[f]), cfg.tie_rtol, g_key, cfg.de)
            for f in range(N_FAMILIES)]
    return g_key, sets


class _Sizes:
    """The distinct keys of each stage of a growing group of configurations."""

    def __init__(self):
        self.keys = {"growth": set(), "q_keys": set(), "equity_keys": set(),
                     "member_sets": set(), "family_sets": set()}
        self.configs = 0

    @staticmethod
    def _of(cfg: ATCConfig) -> dict:
        g_key, sets = _stage_keys(cfg)
        return {"growth": {g_key}, "member_sets": set(sets),
                "q_keys": {(m[0], length, m[2]) for m in sets for length in m[1]},
                "equity_keys": {(m[0], length, m[2], m[3], m[4]) for m in sets
                                for length in m[1]},
                "family_sets": {tuple(sets) + (cfg.weights,)}}

    def with_(self, cfg: ATCConfig) -> tuple:
        """(sizes, keys) of the group with ``cfg`` added; ``commit(keys)`` adds it."""
        new = self._of(cfg)
        sizes = {k: len(self.keys[k] | new[k]) for k in self.keys}
        sizes["configs"] = self.configs + 1
        return sizes, new

    def commit(self, new: dict) -> None:
        for k, v in new.items():
            self.keys[k] |= v
        self.configs += 1


def plan_sizes(configs) -> dict:
    """:attr:`SweepPlan.counts` of ``configs`` without building the arrays."""
    acc = _Sizes()
    sizes = {k: 0 for k in ("growth", "q_keys", "equity_keys", "member_sets", "family_sets",
                            "configs")}
    for cfg in configs:
        sizes, new = acc.with_(cfg)
        acc.commit(new)
    return sizes


def build_plan(configs, n_bars: int) -> SweepPlan:
    """The :class:`SweepPlan` of ``configs`` (ATCConfig, one nan_policy) on ``n_bars`` bars."""
    growth_keys, set_keys, fam_keys = _Keys(), _Keys(), _Keys()
    growth_rows, set_rows, f_rows, p_rows = [], [], [], []
    for cfg in configs:
        kp = cfg.kernel_params(n_bars)  # the very values compute_atc runs on
        g_key, sets = _stage_keys(cfg)
        g = growth_keys(g_key)
        if g == len(growth_rows):
            growth_rows.append(kp.growth)
        ids = []
        for key in sets:
            k = set_keys(key)
            if k == len(set_rows):
                set_rows.append((key[0], key[1], kp.tie_rtol, g, kp.cutout, kp.decay))
            ids.append(k)
        f = fam_keys((tuple(ids), tuple(kp.weights)))
        if f == len(f_rows):
            f_rows.append((ids, kp.weights))
        p_rows.append((f, kp.long_threshold, kp.short_threshold, kp.direction_source,
                       kp.strategy_view))

    # Member sets in order of family and lengths: consecutive sets then share most of their q
    # and E rows, which the Layer-2 sums read while they are still in cache.
    order = sorted(range(len(set_rows)), key=lambda g: set_rows[g])
    new_id = np.argsort(order)
    set_rows = [set_rows[g] for g in order]
    f_rows = [([int(new_id[g]) for g in ids], w) for ids, w in f_rows]

    q_keys = sorted({(fam, length, tie) for fam, lens, tie, *_ in set_rows for length in lens})
    q_index = {key: k for k, key in enumerate(q_keys)}
    b_fam, b_lens, b_lo, q_row = _batches(q_keys)

    set_q = np.array([[q_index[(fam, length, tie)] for length in lens]
                      for fam, lens, tie, *_ in set_rows], dtype=np.int64).reshape(-1, N_MEMBERS)
    # The primary slot of a q key: its first use, whose member_core call also gives its E.
    q_set = np.full(len(q_keys), -1, dtype=np.int64)
    q_member = np.full(len(q_keys), -1, dtype=np.int64)
    for g in range(len(set_q)):
        for i in range(N_MEMBERS):
            k = set_q[g, i]
            if q_set[k] < 0:
                q_set[k], q_member[k] = g, i

    e_keys = _Keys()
    set_e = np.array([[e_keys((k, r[3], r[4], r[5])) for k in row]
                      for row, r in zip(set_q, set_rows)], dtype=np.int64).reshape(-1, N_MEMBERS)
    q_e = set_e[q_set, q_member]
    e_rows = list(e_keys.rows)
    f_set = np.array([r[0] for r in f_rows], dtype=np.int64).reshape(-1, N_FAMILIES)
    i64, f8 = np.int64, np.float64
    return SweepPlan(
        growth=np.array(growth_rows, dtype=f8).reshape(len(growth_rows), -1),
        b_fam=np.array(b_fam, dtype=i64), b_lens=np.array(b_lens, dtype=i64).reshape(-1, 9),
        b_lo=np.array(b_lo, dtype=i64),
        q_fam=np.array([k[0] for k in q_keys], dtype=i64),
        q_len=np.array([k[1] for k in q_keys], dtype=i64),
        q_tie=np.array([k[2] for k in q_keys], dtype=f8),
        q_row=np.array(q_row, dtype=i64), q_set=q_set, q_member=q_member, q_e=q_e, set_q=set_q,
        set_e=set_e, e_q=np.array([e[0] for e in e_rows], dtype=i64),
        e_g=np.array([e[1] for e in e_rows], dtype=i64),
        e_cut=np.array([e[2] for e in e_rows], dtype=i64),
        e_d=np.array([e[3] for e in e_rows], dtype=f8),
        set_g=np.array([r[3] for r in set_rows], dtype=i64),
        set_cut=np.array([r[4] for r in set_rows], dtype=i64),
        set_d=np.array([r[5] for r in set_rows], dtype=f8),
        f_set=f_set,
        f_w=np.array([r[1] for r in f_rows], dtype=f8).reshape(-1, N_FAMILIES),
        p_f=np.array([r[0] for r in p_rows], dtype=i64),
        p_long=np.array([r[1] for r in p_rows], dtype=f8),
        p_short=np.array([r[2] for r in p_rows], dtype=f8),
        p_dsrc=np.array([r[3] for r in p_rows], dtype=i64),
        p_shift=np.array([r[4] for r in p_rows], dtype=np.bool_),
    )


def _batches(q_keys):
    """(b_fam, b_lens, b_lo, q_row) of q keys sorted by (family, length, tie).

    A window family's distinct lengths are cut into batches of nine in length order, the
    remainder first: a backward pass walks as far as its longest length, so the short
    batch goes where the lengths are shortest. EMA and DEMA keys are one batch (no pass).
    """
    b_fam, b_lens, b_lo, q_row = [], [], [], []
    for fam in sorted({key[0] for key in q_keys}):
        keys = [(k, key[1]) for k, key in enumerate(q_keys) if key[0] == fam]
        if fam in (EMA, DEMA):
            b_fam.append(fam)
            b_lens.append([1] * N_MEMBERS)
            b_lo.append(keys[0][0])
            q_row += [0] * len(keys)
            continue
        lengths = sorted({length for _, length in keys})
        first = len(lengths) % N_MEMBERS or N_MEMBERS
        cuts = [lengths[:first]] + [lengths[i:i + N_MEMBERS]
                                    for i in range(first, len(lengths), N_MEMBERS)]
        where = {length: (b, i) for b, lens in enumerate(cuts) for i, length in enumerate(lens)}
        seen = len(b_fam)
        for k, length in keys:
            b, i = where[length]
            if seen + b == len(b_fam):
                b_fam.append(fam)
                b_lens.append((cuts[b] + [cuts[b][-1]] * N_MEMBERS)[:N_MEMBERS])
                b_lo.append(k)
            q_row.append(i)
    b_lo.append(len(q_keys))
    return b_fam, b_lens, b_lo, q_row


def slot_bytes_per_bar(sizes: dict) -> int:
    """Per-bar bytes of one symbol's growth-applied returns and member slots of every set."""
    return sizes["growth"] * F8 + sizes["member_sets"] * N_MEMBERS * SLOT_BYTES_PER_BAR


def output_bytes_per_bar(sizes: dict) -> int:
    """Per-bar bytes of one symbol's outputs: its family sets' and its configurations'."""
    return sizes["family_sets"] * FAMILY_BYTES_PER_BAR + sizes["configs"] * FINAL_BYTES_PER_BAR


def group_configs(configs, fits) -> list:
    """Split configuration numbers into groups of one nan policy whose work ``fits``.

    Configurations are taken in an order that keeps shared stages together (by nan policy,
    lengths and robustness, tie rule, λ, cutout, decay, then weights), and a group grows
    while ``fits(plan_sizes(group))``; a configuration that does not fit alone still gets a
    group (the planner then reports that its work exceeds the budget).

    Returns
    -------
    list of lists of int
    """
    order = sorted(range(len(configs)), key=lambda i: _sharing_order(configs[i]))
    groups, current, acc = [], [], _Sizes()
    for i in order:
        sizes, new = acc.with_(configs[i])
        other_input = current and configs[current[0]].nan_policy != configs[i].nan_policy
        if current and (other_input or not fits(sizes)):
            groups.append(current)
            current, acc = [], _Sizes()
            new = acc.with_(configs[i])[1]
        acc.commit(new)
        current.append(i)
    if current:
        groups.append(current)
    return groups


def _sharing_order(cfg: ATCConfig) -> tuple:
    return (cfg.nan_policy, cfg.lengths, cfg.robustness, cfg.tie_rtol, cfg.la, cfg.cutout,
            cfg.de, cfg.weights)
