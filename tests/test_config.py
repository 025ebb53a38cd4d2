"""ATCConfig validates on construction (spec section 8) with messages naming field and value."""

import numpy as np
import pytest

from gpu_trend import FAMILIES, ATCConfig, member_names
from gpu_trend.config import MAX_CUTOUT, MAX_MEMBER_LENGTH, NAN_POLICIES, ATCConfigTypeError


def test_defaults_and_internal_units():
    cfg = ATCConfig()
    assert FAMILIES == ("EMA", "HMA", "WMA", "DEMA", "LSMA", "KAMA")
    assert cfg.lengths == (28,) * 6 and cfg.weights == (1.0,) * 6
    assert cfg.lam == pytest.approx(2e-5) and cfg.decay == pytest.approx(0.9997)
    assert cfg.nan_policy == "raise" and cfg.tie_rtol == 1e-12


@pytest.mark.parametrize("robustness, expected", [
    ("Narrow", [28, 29, 30, 31, 32, 27, 26, 25, 24]),
    ("Medium", [28, 29, 30, 32, 34, 27, 26, 24, 22]),
    ("Wide", [28, 29, 31, 33, 35, 27, 25, 23, 21]),
])
def test_member_lengths_follow_section_2(robustness, expected):
    lens = ATCConfig(robustness=robustness).member_lengths()
    assert lens.shape == (6, 9) and all(list(row) == expected for row in lens)
    assert member_names(ATCConfig(robustness=robustness))[:2] == ["EMA_28", "EMA_29"]


@pytest.mark.parametrize("kwargs, match", [
    ({"lengths": (28, 28, 28, 6, 28, 28)}, r"family DEMA with base length 6 and robustness 'Medium'"),
    ({"lengths": (5, 28, 28, 28, 28, 28), "robustness": "Wide"}, r"family EMA with base length 5 and robustness 'Wide'"),
    ({"lengths": (28,) * 5}, r"lengths must be six ints"),
    ({"lengths": (28.5,) * 6}, r"lengths must be six ints"),
    ({"cutout": -1}, r"cutout must be >= 0, got -1"),
    ({"cutout": 1.5}, r"cutout must be an int"),
    ({"weights": (1, 1, 0, 1, 1, 1)}, r"weight of WMA must be a finite number > 0, got 0"),
    ({"weights": (1, 1, 1, 1, 1, -2.0)}, r"weight of KAMA .* got -2.0"),
    ({"weights": (1,) * 7}, r"weights must be six numbers"),
    ({"robustness": "Huge"}, r"robustness must be one of .*'Huge'"),
    ({"nan_policy": "drop"}, r"nan_policy must be one of .*'drop'"),
    ({"de": 100}, r"de is a percentage .* got 100"),
    ({"la": -0.1}, r"la must be >= 0, got -0.1"),
    ({"la": float("nan")}, r"la must be a finite number"),
    ({"tie_rtol": -1e-12}, r"tie_rtol must be >= 0"),
    ({"long_threshold": -0.5}, r"long_threshold \(-0.5\) must be >= short_threshold"),
    ({"direction_source": "SMA"}, r"direction_source must be one of"),
])
def test_invalid_parameters_name_field_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ATCConfig(**kwargs)


def test_weight_below_floor_is_allowed_and_frozen():
    cfg = ATCConfig(weights=(0.1, 1, 1, 1, 1, 2))
    assert cfg.weights[0] == 0.1
    with pytest.raises(Exception):
        cfg.la = 1.0


def test_from_tradingview_keys():
    cfg = ATCConfig.from_tradingview({"La": 0.1, "De": 0.1, "cutout": 100, "robustness": "Wide",
                                      "lengths": [10, 28, 28, 28, 15, 28],
                                      "weights": [0.1, 1, 1, 1, 1, 2],
                                      "Long_threshold": 0.1, "Short_threshold": -0.1})
    assert cfg.la == 0.1 and cfg.lengths == (10, 28, 28, 28, 15, 28) and cfg.cutout == 100


# --- Hardening (issue 9): flags, bounds and containers --------------------------------------
# The tests that expect an error failed on the code before the fix: a wrong-typed flag was
# silently True, an absurd integer passed and failed later (OverflowError, a 29.8 GiB budget),
# a scalar or None for a six-value field raised Python's bare "'float' object is not iterable".
# The others pin what stays accepted, so that valid configs keep their meaning.

@pytest.mark.parametrize("value", ["no", "False", "", "True", 1, 0, 1.0, None, np.int64(1), [True]])
def test_flag_accepts_only_bools(value):
    # "no" and "False" were True: bool() of any non-empty string.
    with pytest.raises(TypeError, match=r"ATCConfig\.strategy_view must be a bool .*NumPy bool.*got "
                                        + r".*\(" + type(value).__name__ + r"\)"):
        ATCConfig(strategy_view=value)


@pytest.mark.parametrize("value, expected", [(True, True), (False, False),
                                             (np.True_, True), (np.False_, False)])
def test_flag_bools_and_numpy_bools_become_python_bools(value, expected):
    cfg = ATCConfig(strategy_view=value)
    assert cfg.strategy_view is expected


@pytest.mark.parametrize("kwargs, match", [
    ({"cutout": 2**63}, rf"cutout must be <= {MAX_CUTOUT}, got {2**63}"),
    ({"cutout": MAX_CUTOUT + 1}, rf"cutout must be <= {MAX_CUTOUT}"),
    ({"cutout": np.uint64(2**63)}, rf"cutout must be <= {MAX_CUTOUT}"),
    ({"lengths": (2**63,) * 6}, rf"family EMA with base length {2**63} .* every member length "
                                rf"must be <= {MAX_MEMBER_LENGTH} \(base length <= 99994\)"),
    ({"lengths": (10**9,) * 6}, rf"family EMA with base length {10**9} .*<= {MAX_MEMBER_LENGTH}"),
    ({"lengths": (28, 28, 28, 28, 28, 99_994), "robustness": "Wide"},
     r"family KAMA with base length 99994 and robustness 'Wide' has a member of length 100001"),
])
def test_absurd_integers_fail_at_construction_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ATCConfig(**kwargs)


def test_bounds_are_inclusive_and_large_la_stays_allowed():
    assert MAX_MEMBER_LENGTH == 100_000 and MAX_CUTOUT == 10**9
    assert ATCConfig(cutout=MAX_CUTOUT).cutout == MAX_CUTOUT
    assert ATCConfig(lengths=(99_994,) * 6).member_lengths().max() == MAX_MEMBER_LENGTH
    assert ATCConfig(lengths=(99_993,) * 6, robustness="Wide").member_lengths().max() == 100_000
    # A large λ is the growth warning's business (its overflow is handled where growth is
    # computed), not a construction error.
    assert ATCConfig(la=1e300).la == 1e300


@pytest.mark.parametrize("kwargs, match", [
    ({"la": 10**400}, r"ATCConfig\.la must be a finite number, got 1000"),  # was OverflowError
    ({"weights": (1, 1, 10**400, 1, 1, 1)}, r"weight of WMA must be a finite number > 0"),
    ({"weights": (1, 1, 1, np.complex128(1 + 2j), 1, 1)},  # was silently 1.0
     r"weight of DEMA must be a finite number > 0 \(int or float\), got .*complex"),
    ({"la": "0.1"}, r"ATCConfig\.la must be a finite number \(int or float\), got '0\.1' \(str\)"),
    ({"cutout": 28.0}, r"ATCConfig\.cutout must be an int \(Python int or NumPy integer\), "
                       r"got 28\.0 \(float\)"),
    ({"cutout": True}, r"ATCConfig\.cutout must be an int .*got True \(bool\)"),
    ({"lengths": (28, 28, 28.0, 28, 28, 28)}, r"ATCConfig\.lengths must be six ints.*"
                                              r"the length of WMA is 28\.0 \(float\)"),
])
def test_numbers_must_be_real_numbers_of_the_right_kind(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ATCConfig(**kwargs)


def _seven_then_fail():
    yield from (28,) * 7
    raise AssertionError("read past the seventh item: an endless iterator would never stop")


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": 1.0}, r"ATCConfig\.weights must be six numbers.*got 1\.0 \(float\)"),
    ({"weights": None}, r"ATCConfig\.weights must be six numbers.*got None \(NoneType\)"),
    ({"weights": "111111"}, r"ATCConfig\.weights must be six numbers.*got '111111' \(str\)"),
    ({"lengths": 28}, r"ATCConfig\.lengths must be six ints.*got 28 \(int\)"),
    ({"lengths": None}, r"ATCConfig\.lengths must be six ints.*got None \(NoneType\)"),
    ({"lengths": "282828"}, r"ATCConfig\.lengths must be six ints.*got '282828' \(str\)"),
    ({"lengths": b"\x1c" * 6}, r"ATCConfig\.lengths must be six ints.*\(bytes\)"),
    ({"lengths": dict.fromkeys(FAMILIES, 28)}, r"ATCConfig\.lengths must be six ints.*\(dict\)"),
    ({"lengths": {28, 29, 30, 31, 32, 33}}, r"ATCConfig\.lengths must be six ints.*\(set\)"),
    ({"lengths": np.array(28)}, r"ATCConfig\.lengths must be six ints.*\(ndarray\)"),
    ({"lengths": (x for x in (28,) * 5)}, r"ATCConfig\.lengths must be six ints.*got 5 items"),
    ({"lengths": _seven_then_fail()}, r"ATCConfig\.lengths must be six ints.*got more than six"),
    ({"weights": [1.0] * 7}, r"ATCConfig\.weights must be six numbers.*got 7 items"),
])
def test_six_value_fields_say_what_is_accepted(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match) as info:
        ATCConfig(**kwargs)
    assert "tuple, list or 1-D array" in str(info.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"robustness": None}, r"ATCConfig\.robustness must be one of \('Narrow', 'Medium', 'Wide'\), "
                           r"got None \(NoneType\)"),
    ({"robustness": ["Medium"]}, r"ATCConfig\.robustness must be one of .*got \['Medium'\] \(list\)"),
    ({"nan_policy": 1}, r"ATCConfig\.nan_policy must be one of \('raise', 'ffill', 'pine', 'skip'\), "
                        r"got 1 \(int\)"),
    ({"direction_source": None}, r"ATCConfig\.direction_source must be one of \('Average', 'EMA', "
                                 r".*got None \(NoneType\)"),
    ({"direction_source": "ema"}, r"ATCConfig\.direction_source must be one of .*got 'ema'$"),
])
def test_choice_fields_list_the_accepted_values(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ATCConfig(**kwargs)


def test_type_errors_stay_value_errors_for_existing_callers():
    # Type errors used to be ValueErrors (cutout=1.5, la="0.1"); both clauses still catch them.
    with pytest.raises(ATCConfigTypeError) as info:
        ATCConfig(strategy_view="no")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_every_nan_policy_is_accepted():
    assert NAN_POLICIES == ("raise", "ffill", "pine", "skip")
    assert [ATCConfig(nan_policy=p).nan_policy for p in NAN_POLICIES] == list(NAN_POLICIES)


def test_valid_inputs_of_other_types_normalise_to_the_same_config():
    loose = ATCConfig(la=np.float32(0.5), cutout=np.int64(3), lengths=np.arange(20, 26),
                      weights=[1, 2, np.float64(0.5), 1, 1, 1], strategy_view=np.True_)
    strict = ATCConfig(la=0.5, cutout=3, lengths=(20, 21, 22, 23, 24, 25),
                       weights=(1.0, 2.0, 0.5, 1.0, 1.0, 1.0), strategy_view=True)
    assert loose == strict and hash(loose) == hash(strict)
    assert type(loose.cutout) is int and all(type(v) is int for v in loose.lengths)
    assert all(type(v) is float for v in loose.weights) and type(loose.la) is float
    assert ATCConfig(lengths=(x for x in (28,) * 6)).lengths == (28,) * 6


def test_from_tradingview_unknown_key_names_it_and_lists_the_known_ones():
    with pytest.raises(TypeError, match=r"unknown key 'Lambda'.*known keys: .*'La'.*'De'.*"
                                        r"'cutout'.*'strategy_view'"):
        ATCConfig.from_tradingview({"Lambda": 0.1})


def test_from_tradingview_rejects_a_key_given_twice_and_a_non_mapping():
    # "La" and "la" both mean la; silently keeping the later one would hide a conflict.
    with pytest.raises(ValueError, match=r"'La' and 'la' both give la"):
        ATCConfig.from_tradingview({"La": 0.1, "la": 0.2})
    with pytest.raises(TypeError, match=r"from_tradingview expects a mapping .*got list"):
        ATCConfig.from_tradingview([("La", 0.1)])
