"""Random search: uniform in the box of basic coordinates (log-uniform for log params; every value
of a choice equally often, as each owns a cell of the same width, sweepd/space.py).

The baseline the CARBS-style searcher is judged against. It ignores costs, scores and learning
curves: ``report`` records a curve point and never stops a trial. ``num_random_samples``,
``resample_frequency`` and the early-stopping options (``budget_param``, ``curve_points``,
``early_stop``, ``early_stop_probability``, ``early_stop_min_fraction``) are accepted (a sweep file
may set them for any searcher) and ignored.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from sweepd.search.history import History, HistorySearcher, Suggestion
from sweepd.space import Param, bounds, from_basic, snap

_MAX_DRAWS = 100


class RandomSearcher(HistorySearcher):
    """Uniform random configs, never one that is already pending."""

    def __init__(self, params: Sequence[Param], seed: int = 0, max_suggestion_cost: float = math.inf,
                 *, num_random_samples: int = 0, resample_frequency: int = 0, budget_param: str | None = None,
                 curve_points: int = 0, early_stop: bool = False, early_stop_probability: float = 0.0,
                 early_stop_min_fraction: float = 0.0) -> None:
        if not params:
            raise ValueError("a searcher needs at least one parameter")
        self.params, self.seed = tuple(params), int(seed)
        self.max_suggestion_cost = float(max_suggestion_cost)
        self.history = History(self.params, budget_param)

    def suggest(self) -> Suggestion:
        """A uniform random config (recorded as pending)."""
        rng = self.history.rng(self.seed)
        lo, hi = bounds(self.params)
        pending = set(self.history.pending_keys)
        for _ in range(_MAX_DRAWS):
            x = snap(self.params, rng.uniform(lo, hi)[None, :])[0]
            if self.history.key(x) not in pending:
                break
        values = from_basic(self.params, x)
        self.history.add_pending(values)
        return Suggestion(params=values, predicted_score=None, predicted_cost=None, kind="random")
