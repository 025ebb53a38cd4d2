"""Access to the golden outputs of the original ATC script, for any test in this suite.

The fixtures ``tests/data/golden_<set>.npz`` are built by ``tests/data/make_fixtures.py`` from
the shared golden files and hold, per set, the ``params`` JSON string and, per symbol, the input
``close`` plus the golden arrays the tests compare (float64, NaN where the script gives ``na``).

The comparison helpers implement the acceptance rules of the golden README: discrete outputs
exactly equal (NaN positions included), Average_Signal within 1e-7 absolute, equities / MA values
/ R / growth within 1e-7 relative.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"

#: Parameter sets with fixtures.
SET_NAMES = ("set_a", "set_b", "set_e")

#: Family order of the engine and the reference outputs.
FAMILIES = ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")

#: Golden prefix of the Layer-1 equities and (with an "s" in front) member signals per family.
EQUITY_PREFIXES = ("E", "H", "W", "D", "L", "K")

#: Golden suffix of members 0..8 (section-2 order L, L+o1..L+o4, L-o1..L-o4).
MEMBER_SUFFIXES = ("", "1", "2", "3", "4", "_1", "_2", "_3", "_4")

ABS_TOL_AVERAGE = 1e-7
REL_TOL = 1e-7


def member_key_names(index):
    """Golden key names of one of the 54 members.

    Parameters
    ----------
    index : int
        Member row 0..53, family-major (EMA, HMA, WMA, DEMA, LSMA, KAMA), members in
        section-2 order within a family.

    Returns
    -------
    dict
        ``{"ma": ..., "equity": ..., "signal": ...}``, e.g. index 8 gives
        ``{"ma": "EMA_4", "equity": "E_4", "signal": "sE_4"}``.
    """
    if not 0 <= index < 54:
        raise IndexError(f"member index {index} outside 0..53")
    k, i = divmod(index, 9)
    suf = MEMBER_SUFFIXES[i]
    return {
        "ma": FAMILIES[k] + suf,
        "equity": EQUITY_PREFIXES[k] + suf,
        "signal": "s" + EQUITY_PREFIXES[k] + suf,
    }


def member_keys():
    """List of :func:`member_key_names` for all 54 members, in row order."""
    return [member_key_names(i) for i in range(54)]


def fixture_path(set_name):
    """Path of the fixture file of `set_name` (one of :data:`SET_NAMES`)."""
    if set_name not in SET_NAMES:
        raise ValueError(f"unknown golden set {set_name!r}; expected one of {SET_NAMES}")
    return DATA_DIR / f"golden_{set_name}.npz"


@lru_cache(maxsize=None)
def load_golden(set_name):
    """Load one golden set.

    Parameters
    ----------
    set_name : {"set_a", "set_b", "set_e"}

    Returns
    -------
    params : dict
        The set's parameters in TradingView dialog units (keys ``La``, ``De``, ``cutout``,
        ``robustness``, ``lengths``, ``weights``, ``Long_threshold``, ``Short_threshold``).
    symbols : dict
        ``{symbol: {name: ndarray}}`` in the file's symbol order; each inner dict holds
        ``close`` and the golden outputs under their golden names (``Average_Signal``,
        ``EMA_Signal``, ``EMA_S``, ``direction``, ``long_arrow``, ``short_arrow``, ``R``,
        ``e_La`` and the member keys present, e.g. ``EMA_3``, ``K_1``, ``sK2``).

    Notes
    -----
    The result is cached; treat the arrays as read-only.
    """
    with np.load(fixture_path(set_name), allow_pickle=False) as z:
        params = json.loads(str(z["params"]))
        order = [str(s) for s in z["symbols"]]
        symbols = {s: {} for s in order}
        for key in z.files:
            if "/" not in key:
                continue
            sym, name = key.split("/", 1)
            arr = z[key]
            arr.setflags(write=False)
            symbols[sym][name] = arr
    return params, symbols


def params_to_kwargs(params):
    """Map a golden ``params`` dict to the keyword arguments of ``reference_atc``.

    Parameters
    ----------
    params : dict
        As returned by :func:`load_golden`.

    Returns
    -------
    dict
        ``la``, ``de``, ``cutout``, ``robustness``, ``lengths``, ``weights``,
        ``long_threshold``, ``short_threshold``.
    """
    return {
        "la": float(params["La"]),
        "de": float(params["De"]),
        "cutout": int(params["cutout"]),
        "robustness": str(params["robustness"]),
        "lengths": tuple(int(v) for v in params["lengths"]),
        "weights": tuple(float(v) for v in params["weights"]),
        "long_threshold": float(params["Long_threshold"]),
        "short_threshold": float(params["Short_threshold"]),
    }


def _where(label, idx, got, expected):
    show = idx[:5]
    return (
        f"{label}: {idx.size} bar(s) differ, first bars {show.tolist()}: "
        f"got {np.asarray(got)[show].tolist()}, expected {np.asarray(expected)[show].tolist()}"
    )


def assert_discrete_equal(got, expected, label=""):
    """Assert exact equality of a discrete output, NaN positions included."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{label}: shape {got.shape} != {expected.shape}"
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    if not same.all():
        raise AssertionError(_where(label, np.flatnonzero(~same), got, expected))


def _assert_close(got, expected, label, tol, relative):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{label}: shape {got.shape} != {expected.shape}"
    gn, en = np.isnan(got), np.isnan(expected)
    if not np.array_equal(gn, en):
        raise AssertionError(_where(f"{label} NaN positions", np.flatnonzero(gn != en), got, expected))
    ok = ~en
    diff = np.abs(got[ok] - expected[ok])
    limit = tol * np.abs(expected[ok]) if relative else np.full(diff.shape, tol)
    bad = ~(diff <= limit)
    if bad.any():
        idx = np.flatnonzero(ok)[bad]
        kind = "relative" if relative else "absolute"
        raise AssertionError(_where(f"{label} ({kind} tol {tol:g})", idx, got, expected))


def assert_rel_close(got, expected, label="", rtol=REL_TOL):
    """Assert ``|got - expected| <= rtol * |expected|`` bar by bar, with equal NaN positions."""
    _assert_close(got, expected, label, rtol, relative=True)


def assert_abs_close(got, expected, label="", atol=ABS_TOL_AVERAGE):
    """Assert ``|got - expected| <= atol`` bar by bar, with equal NaN positions."""
    _assert_close(got, expected, label, atol, relative=False)
