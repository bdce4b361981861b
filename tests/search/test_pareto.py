import math

import numpy as np
import pytest

from sweepd.search.pareto import cheap_group_cost, front_value, hypervolume, pareto_front


def test_front_keeps_points_no_cheaper_point_beats():
    costs = [10, 20, 30, 40, 15, 50]
    scores = [1, 3, 2, 5, 0.5, 5]
    assert pareto_front(costs, scores).tolist() == [0, 1, 3]


def test_runs_cheaper_than_the_group_cost_count_as_one():
    costs = [1, 2, 3, 4, 100, 200, 300, 400, 500, 600]
    scores = [1, 2, 3, 0, 10, 20, 30, 40, 50, 60]
    assert pareto_front(costs, scores).tolist()[:3] == [0, 1, 2]
    grouped = pareto_front(costs, scores, group_below=2.5).tolist()
    assert grouped[:2] == [1, 2] and 0 not in grouped


def test_cheap_group_cost_is_a_fraction_of_the_log_cost_span():
    assert cheap_group_cost([10.0, 50.0, 1000.0], 1000.0, 0.5) == pytest.approx(100.0)
    assert cheap_group_cost([10.0], 1000.0, 0.0) == pytest.approx(10.0)


def test_hypervolume_of_hand_made_front_in_log_cost():
    # staircase: score 1 from e^0 to e^1, score 3 from e^1 to e^2 (the cap)
    hv = hypervolume([1.0, math.e, 5.0], [1.0, 3.0, 2.0], (1.0, math.e**2), 0.0)
    assert hv == pytest.approx(1.0 + 3.0)
    # points over the cap do not count, the floor is subtracted
    assert hypervolume([1.0, 100.0], [2.0, 9.0], (1.0, math.e), 1.0) == pytest.approx(1.0)


def test_front_value_interpolates_in_log_cost_and_is_flat_beyond_the_ends():
    fc, fs = np.array([1.0, 100.0]), np.array([2.0, 6.0])
    assert front_value(fc, fs, np.array([10.0]))[0] == pytest.approx(4.0)
    assert front_value(fc, fs, np.array([0.1, 1e4])).tolist() == [2.0, 6.0]
    assert np.isfinite(front_value(fc, fs, np.array([0.0]))).all()
