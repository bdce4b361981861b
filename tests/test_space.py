import math

import numpy as np
import pytest

from sweepd.space import CHOICE_SPACING, Param, from_basic, snap, to_basic


def test_log_space_is_decades_in_basic_units():
    p = Param("lr", "log", 1e-5, 1e-1, 3e-4)
    assert p.to_basic(1e-3) - p.to_basic(1e-4) == pytest.approx(1.0)
    assert p.basic_bounds == pytest.approx((-5.0, -1.0))


@pytest.mark.parametrize("param, values", [
    (Param("lr", "log", 1e-5, 1e-1, 3e-4), [1e-5, 3e-4, 0.0123, 1e-1]),
    (Param("gamma", "logit", 0.8, 0.9999, 0.97), [0.8, 0.97, 0.995, 0.9999]),
    (Param("x", "linear", -5.0, 10.0, 2.5), [-5.0, 0.0, 2.5, 9.75]),
])
def test_continuous_values_round_trip(param, values):
    for v in values:
        assert param.from_basic(param.to_basic(v)) == pytest.approx(v, rel=1e-12)


def test_integer_params_round_in_param_space_and_stay_in_range():
    p = Param("epochs", "linear", 1, 8, 3, integer=True)
    lo, hi = p.basic_bounds
    for x in np.linspace(lo - 1, hi + 1, 101):
        v = p.from_basic(x)
        assert isinstance(v, int) and 1 <= v <= 8
    assert p.from_basic(p.to_basic(3)) == 3


def test_integer_rounding_reaches_the_neighbouring_integers():
    p = Param("envs", "log", 8, 4096, 128, integer=True)
    x = p.to_basic(128)
    step = math.log10(129 / 128) / p.basic_scale
    assert p.from_basic(x + 0.6 * step) == 129
    assert p.from_basic(x - 0.6 * step) == 127
    assert p.from_basic(x + 0.4 * step) == 128


def test_pow2_gives_powers_of_two_between_min_and_max():
    p = Param("batch", "pow2", 100, 5000, 1024)
    lo, hi = p.basic_bounds
    seen = {p.from_basic(x) for x in np.linspace(lo - 1, hi + 1, 200)}
    assert seen == {128, 256, 512, 1024, 2048, 4096}
    assert all(isinstance(v, int) for v in seen)
    # one doubling is one step of 0.301 basic units, as in a log space
    assert p.to_basic(2048) - p.to_basic(1024) == pytest.approx(math.log10(2))


def test_snap_matches_from_basic_then_to_basic():
    params = [Param("a", "log", 8, 4096, 128, integer=True), Param("b", "pow2", 1, 1024, 32),
              Param("c", "linear", 1, 8, 3, integer=True), Param("d", "logit", 0.01, 0.99, 0.5)]
    rng = np.random.default_rng(0)
    lo = np.array([p.basic_bounds[0] for p in params])
    hi = np.array([p.basic_bounds[1] for p in params])
    xs = rng.uniform(lo, hi, (200, 4))
    expected = np.array([to_basic(params, from_basic(params, x)) for x in xs])
    assert np.allclose(snap(params, xs), expected, atol=1e-12)


def test_missing_values_take_the_center():
    params = [Param("a", "linear", 0, 1, 0.25), Param("b", "log", 1, 100, 10)]
    assert to_basic(params, {"b": 100}).tolist() == pytest.approx([0.25 / 0.25, 2.0])


@pytest.mark.parametrize("kwargs", [
    dict(space="log", min=1.0, max=1.0, center=1.0),
    dict(space="linear", min=2.0, max=1.0, center=1.5),
    dict(space="log", min=0.0, max=1.0, center=0.5),
    dict(space="logit", min=0.0, max=0.9, center=0.5),
    dict(space="logit", min=0.1, max=1.0, center=0.5),
    dict(space="linear", min=0.0, max=1.0, center=2.0),
    dict(space="pow2", min=5.0, max=7.0, center=6.0),
    dict(space="linear", min=0.2, max=0.8, center=0.5, integer=True),
    dict(space="cosine", min=0.0, max=1.0, center=0.5),
])
def test_impossible_params_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Param("p", **kwargs)


# -- choices --------------------------------------------------------------------------------------

CHOICES = [Param.choice("policy.activation", ["tanh", "relu", "gelu"], "relu"),
           Param.choice("train.flag", [False, True]),
           Param.choice("train.clip", [0.1, 0.2, 0.3, 1]),
           Param.choice("env.layers", [1, 2, 4, 8], 4)]


@pytest.mark.parametrize("param", CHOICES, ids=lambda p: p.name)
def test_every_value_of_a_choice_round_trips_through_basic_coordinates(param):
    for value in param.values:
        assert type(param.from_basic(param.to_basic(value))) is type(value)
        assert param.from_basic(param.to_basic(value)) == value
    assert param.round(param.center) == param.center


@pytest.mark.parametrize("param", CHOICES, ids=lambda p: p.name)
def test_a_choice_is_an_ordinal_coordinate_with_one_equal_cell_per_value(param):
    n = len(param.values)
    lo, hi = param.basic_bounds
    assert (lo, hi) == pytest.approx((-CHOICE_SPACING / 2, (n - 0.5) * CHOICE_SPACING))
    assert param.to_basic(param.values[1]) - param.to_basic(param.values[0]) == pytest.approx(CHOICE_SPACING)
    xs = np.random.default_rng(0).uniform(lo, hi, 40_000)  # what the random searcher draws
    counts = np.bincount([param.index(param.from_basic(x)) for x in xs], minlength=n)
    assert counts.min() > 0.9 * len(xs) / n  # every value about equally often, the ends too
    assert np.allclose(param.snap_basic(xs), [param.to_basic(param.from_basic(x)) for x in xs], atol=1e-12)


def test_a_step_of_half_the_spacing_reaches_the_neighbouring_value():
    p = CHOICES[0]
    x = p.to_basic("relu")
    assert p.from_basic(x + 0.45 * CHOICE_SPACING) == "relu"
    assert p.from_basic(x + 0.55 * CHOICE_SPACING) == "gelu"
    assert p.from_basic(x - 0.55 * CHOICE_SPACING) == "tanh"
    assert p.from_basic(x + 10) == "gelu" and p.from_basic(x - 10) == "tanh"


def test_choice_values_keep_their_kind_and_are_never_confused():
    flag = Param.choice("train.flag", [False, True])
    with pytest.raises(ValueError, match="1 is not one of false, true"):
        flag.round(1)  # True == 1 in Python, not in a sweep
    with pytest.raises(ValueError, match="swish is not one of tanh, relu, gelu"):
        CHOICES[0].to_basic("swish")
    assert CHOICES[2].round(1.0) == 1 and CHOICES[2].round(0.24) == 0.2  # numbers: the nearest listed


def test_a_choice_survives_a_json_round_trip_of_its_fields():
    import dataclasses
    import json

    for p in CHOICES:
        fields = json.loads(json.dumps(dataclasses.asdict(p)))  # values come back as a list
        assert Param(**fields) == p and hash(Param(**fields)) == hash(p)


@pytest.mark.parametrize(("values", "center", "message"), [
    (["a", 1], None, "values mix numbers and strings (a, 1): list one kind"),
    ([True, 0], None, "values mix booleans and numbers (true, 0): list one kind"),
    (["relu"], None, "at least 2 values"),
    (["relu", "tanh", "relu"], None, "values list relu twice"),
    ([1, 1.0], None, "values list 1.0 twice"),
    ([0.1, math.inf], None, "values must be finite numbers"),
    ([[1], [2]], None, "values must be strings, numbers or booleans, got [1]"),
    (["relu", "tanh"], "gelu", "center gelu is not one of the values (relu, tanh)"),
])
def test_impossible_choices_raise_value_error(values, center, message):
    with pytest.raises(ValueError) as info:
        Param.choice("policy.activation", values, center)
    assert message in str(info.value)
