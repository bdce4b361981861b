"""What a searcher knows: the observations in order and the pending configs, nothing else.

A searcher is rebuilt from the DB for every suggestion (observations in trial order, then in-flight
trials as pending), so everything it decides must follow from this history and the seed.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from sweepd.space import Param, to_basic

SuggestionKind = Literal["random", "search", "resample"]


@dataclass(frozen=True)
class Observation:
    """A finished trial: its params, score (higher is better), cost (seconds) and whether it failed.

    A non-finite score counts as a failure.
    """

    params: Mapping[str, Any]
    score: float
    cost: float
    failed: bool = False


@dataclass(frozen=True)
class Suggestion:
    """A config to run, with the searcher's median predictions (None where it has no model yet)."""

    params: dict[str, Any]
    predicted_score: float | None
    predicted_cost: float | None
    kind: SuggestionKind


class Searcher(Protocol):
    """The interface every searcher implements (see docs/architecture.md, "Search API")."""

    def suggest(self) -> Suggestion: ...

    def observe(self, observation: Observation) -> None: ...

    def forget(self, params: Mapping[str, Any]) -> None: ...

    def add_pending(self, params: Mapping[str, Any]) -> None: ...


Key = tuple[float, ...]


class History:
    """Observations (in order) and pending configs, in basic coordinates, keyed by config."""

    def __init__(self, params: Sequence[Param]) -> None:
        self.params = tuple(params)
        self.x: list[np.ndarray] = []
        self.keys: list[Key] = []
        self.scores: list[float] = []
        self.costs: list[float] = []
        self.failed: list[bool] = []
        self.pending_x: list[np.ndarray] = []
        self.pending_keys: list[Key] = []

    def key(self, x: np.ndarray) -> Key:
        """Identity of a config: its basic coordinates to 9 decimals (robust to a JSON round trip)."""
        return tuple(np.round(x, 9).tolist())

    def unseen(self, xs: np.ndarray, *, allow_observed: bool = False) -> np.ndarray:
        """Mask of the rows of ``xs`` that are not pending configs (nor observed ones, by default)."""
        taken = set(self.pending_keys) if allow_observed else set(self.keys) | set(self.pending_keys)
        return np.array([k not in taken for k in map(tuple, np.round(xs, 9).tolist())], dtype=bool)

    def prefer_unseen(self, xs: np.ndarray) -> np.ndarray:
        """The rows of ``xs`` that are new configs; failing that, those not pending; failing that, all.

        Only a tiny, exhausted discrete space reaches the last case.
        """
        for allow_observed in (False, True):
            mask = self.unseen(xs, allow_observed=allow_observed)
            if mask.any():
                return xs[mask]
        return xs

    def basic(self, values: Mapping[str, Any]) -> np.ndarray:
        """Basic coordinates of the valid config nearest to ``values`` (what actually ran)."""
        return np.array([p.to_basic(p.round(values.get(p.name, p.center))) for p in self.params])

    def observe(self, obs: Observation) -> None:
        """Record a finished trial and clear the first pending config equal to it."""
        x = self.basic(obs.params)
        k = self.key(x)
        score, cost = float(obs.score), float(obs.cost)
        failed = bool(obs.failed) or not math.isfinite(score)
        self.x.append(x)
        self.keys.append(k)
        self.scores.append(score if not failed else math.nan)
        self.costs.append(cost if math.isfinite(cost) and cost > 0 else 0.0)
        self.failed.append(failed)
        self.forget_key(k)

    def add_pending(self, values: Mapping[str, Any]) -> None:
        """Record an in-flight config."""
        x = self.basic(values)
        self.pending_x.append(x)
        self.pending_keys.append(self.key(x))

    def forget_key(self, k: Key) -> bool:
        """Drop the first pending config with key ``k``; False if none."""
        try:
            i = self.pending_keys.index(k)
        except ValueError:
            return False
        del self.pending_keys[i]
        del self.pending_x[i]
        return True

    def forget(self, values: Mapping[str, Any]) -> None:
        """Drop a pending config that will never report (no-op if it is not pending)."""
        self.forget_key(self.key(self.basic(values)))

    @property
    def n_observed(self) -> int:
        return len(self.x)

    @property
    def n_pending(self) -> int:
        return len(self.pending_x)

    def rng(self, seed: int, salt: int = 0) -> np.random.Generator:
        """A private generator determined by the seed and the history's counts, so rebuilds agree."""
        n_failed = sum(self.failed)
        entropy = [int(seed) % 2**63, self.n_observed, n_failed, self.n_pending, salt]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def center(self) -> np.ndarray:
        """Basic coordinates of the (rounded) search centre."""
        return to_basic(self.params, {p.name: p.round(p.center) for p in self.params})


class HistorySearcher:
    """The bookkeeping every searcher shares: observe / forget / add_pending update ``self.history``."""

    history: History

    def observe(self, observation: Observation) -> None:
        """Record a finished trial (it clears the matching pending config)."""
        self.history.observe(observation)

    def forget(self, params: Mapping[str, Any]) -> None:
        """Drop a pending config that will never report."""
        self.history.forget(params)

    def add_pending(self, params: Mapping[str, Any]) -> None:
        """Record an in-flight config (when rebuilding from the DB)."""
        self.history.add_pending(params)
