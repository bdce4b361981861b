"""Searchers: pure optimizer code (no DB, no wandb, no subprocess).

    s = create_searcher("carbs", params, seed=0, max_suggestion_cost=3600.0)
    sug = s.suggest()                        # recorded as pending
    s.observe(Observation(sug.params, score=12.5, cost=300.0, failed=False))

A searcher is fully determined by (seed, observations in order, pending configs): the agent rebuilds
one for every suggestion from the DB and gets exactly the suggestion the previous one would have made.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sweepd.search.dependency import SearcherUnavailable, require_dependency
from sweepd.search.history import Observation, Searcher, Suggestion
from sweepd.space import Param

__all__ = ["SEARCHERS", "Observation", "Searcher", "SearcherUnavailable", "Suggestion", "create_searcher",
           "require_dependency"]

SEARCHERS = ("carbs", "random", "optuna", "protein")

def create_searcher(name: str, params: Sequence[Param], seed: int = 0,
                    max_suggestion_cost: float = math.inf, **options: Any) -> Searcher:
    """A new searcher by name (one of SEARCHERS); ``options`` are that searcher's keyword options.

    Raises ValueError for an unknown name, TypeError for an unknown option and SearcherUnavailable
    when the searcher's optional dependency is missing.
    """
    if name == "carbs":
        from sweepd.search.carbs import CarbsSearcher

        return CarbsSearcher(params, seed, max_suggestion_cost, **options)
    if name == "random":
        from sweepd.search.random import RandomSearcher

        return RandomSearcher(params, seed, max_suggestion_cost, **options)
    if name == "optuna":
        from sweepd.search.optuna import OptunaSearcher

        return OptunaSearcher(params, seed, max_suggestion_cost, **options)
    if name == "protein":
        from sweepd.search.protein import ProteinSearcher

        return ProteinSearcher(params, seed, max_suggestion_cost, **options)
    raise ValueError(f"unknown searcher {name!r}: choose one of {', '.join(SEARCHERS)}")
