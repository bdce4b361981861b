import math

import numpy as np
import pytest

from sweepd.search.pareto import front_value, hypervolume, pareto_front


def test_front_keeps_points_no_cheaper_point_beats():
    costs = [10, 20, 30, 40, 15, 50]
    scores = [1, 3, 2, 5, 0.5, 5]
    assert pareto_front(costs, scores).tolist() == [0, 1, 3]


def test_cheap_fraction_keeps_only_the_best_cheap_run():
    costs = [1, 2, 3, 4, 100, 200, 300, 400, 500, 600]
    scores = [1, 2, 3, 0, 10, 20, 30, 40, 50, 60]
    assert pareto_front(costs, scores).tolist()[:3] == [0, 1, 2]
    # the cheapest 20% (costs 1 and 2) count as costing 2: only the better one stays
    grouped = pareto_front(costs, scores, cheap_fraction=0.2).tolist()
    assert grouped[:2] == [1, 2] and 0 not in grouped


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
