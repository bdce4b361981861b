"""The cost/score Pareto front: which points it holds, its hypervolume, its value at a given cost.

Costs are compared in log space everywhere (a run twice as long is the same step at any scale);
costs at or below ``COST_FLOOR`` seconds are treated as ``COST_FLOOR`` so that a cost of 0 stays finite.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

COST_FLOOR = 1e-3


def log_cost(costs: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """Natural log of costs, floored at ``COST_FLOOR``."""
    return np.log(np.maximum(np.asarray(costs, dtype=np.float64), COST_FLOOR))


def pareto_front(costs: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                 *, group_below: float = 0.0) -> np.ndarray:
    """Indices of the points not dominated in (lower cost, higher score), sorted by cost.

    Every point cheaper than ``group_below`` counts as costing ``group_below``, so only the best of
    those cheap (and noisy) runs is kept.
    """
    c = np.asarray(costs, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if len(c) == 0:
        return np.zeros(0, dtype=np.int64)
    eff = np.maximum(c, group_below)
    order = np.lexsort((c, -s, eff))
    keep, best = [], -math.inf
    for i in order:
        if s[i] > best:
            keep.append(i)
            best = s[i]
    keep_arr = np.array(keep, dtype=np.int64)
    return keep_arr[np.argsort(c[keep_arr], kind="stable")]


def cheap_group_cost(costs: Sequence[float] | np.ndarray, top: float, fraction: float) -> float:
    """The cost below which runs are grouped: ``fraction`` of the way from the cheapest to ``top`` in log cost.

    Measured along the cost axis rather than as a quantile of the runs (as CARBS does), so that how
    many trials the search happened to spend on expensive configs does not move it.
    """
    lo = float(log_cost(np.min(costs)))
    hi = max(float(log_cost(top)), lo)
    return float(np.exp(lo + fraction * (hi - lo)))


def front_value(front_costs: np.ndarray, front_scores: np.ndarray, costs: np.ndarray | float) -> np.ndarray:
    """The front's score at ``costs``: linear in log cost between front points, flat beyond its ends.

    ``front_costs`` must be increasing and ``front_scores`` non-decreasing (as ``pareto_front`` gives).
    """
    return np.interp(log_cost(costs), log_cost(front_costs), np.maximum.accumulate(front_scores))


def hypervolume(costs: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                cost_range: tuple[float, float], score_floor: float) -> float:
    """Area dominated by the points' front in (log cost, score), inside cost_range and above score_floor.

    Points above ``cost_range[1]`` do not count; cheaper ones count from ``cost_range[0]``.
    """
    c = np.asarray(costs, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    inside = c <= cost_range[1]
    c, s = c[inside], s[inside]
    idx = pareto_front(c, s)
    lo, hi = math.log(cost_range[0]), math.log(cost_range[1])
    lc = np.clip(log_cost(c[idx]), lo, hi)
    right = np.append(lc[1:], hi)
    return float(np.sum(np.maximum(right - lc, 0.0) * np.maximum(s[idx] - score_floor, 0.0)))
