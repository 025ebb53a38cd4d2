"""ATCConfig validates on construction (spec section 8) with messages naming field and value."""

import pytest

from gpu_trend import FAMILIES, ATCConfig, member_names


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
