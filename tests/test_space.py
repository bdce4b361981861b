import math

import numpy as np
import pytest

from sweepd.space import Param, from_basic, snap, to_basic


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
