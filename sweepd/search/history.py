"""What a searcher knows: the observations in order, their learning curves, the pending configs.

A searcher is rebuilt from the DB for every suggestion (observations in trial order, then in-flight
trials as pending), so everything it decides must follow from this history and the seed. A stop
decision (``Searcher.report``) follows from the finished observations and the running trial's own
curve points, so an agent rebuilt from the DB that replays that trial's points decides the same.

A trial is identified by its config as suggested (the planned config). A run that ended before
its planned training (stopped early, or cut at the cost cap) is *truncated*; when the sweep has a
``budget_param`` (the param that sets training length, in agent steps) and the steps trained are
known, it stands for the config as trained: the planned config with the budget param set to the
steps it reached. Without them, a truncated run is only evidence about its planned config's curve
(see ``sweepd.search.carbs``).
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
class CurvePoint:
    """One point of a trial's learning curve: seconds spent so far and the score there.

    ``steps`` is the budget param's value trained so far (agent steps), when the sweep has a
    ``budget_param`` and the trainer reports steps; None otherwise.
    """

    cost: float
    score: float
    steps: float | None = None


@dataclass(frozen=True)
class Observation:
    """A finished trial: its params as suggested, score (higher is better), cost (seconds), failure.

    ``curve``: the trial's earlier learning-curve points, in order (its end is the observation
    itself). ``truncated``: the run ended before its planned training (stopped early or cut at the
    cap); ``steps``: the budget param's value it trained (None: unknown, or not truncated). A
    non-finite score counts as a failure.
    """

    params: Mapping[str, Any]
    score: float
    cost: float
    failed: bool = False
    curve: tuple[CurvePoint, ...] = ()
    truncated: bool = False
    steps: float | None = None


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

    def report(self, params: Mapping[str, Any], cost: float, score: float, *,
               steps: float | None = None, stoppable: bool = True) -> bool: ...


Key = tuple[float, ...]


@dataclass(frozen=True)
class CurveRecord:
    """A curve point in basic coordinates: the config it stands for and the fraction of its run done.

    ``fraction`` is steps trained / planned steps when both are known, else cost so far / the run's
    final cost; NaN for a truncated run without steps (the searcher estimates it from its cost model).
    """

    x: np.ndarray
    fraction: float
    cost: float
    score: float


class History:
    """Observations (in order) and pending configs, in basic coordinates, keyed by config.

    Per observation: ``x`` / ``keys`` are the config it stands for (as trained), ``planned_keys``
    the config as suggested, ``end_fraction`` the fraction of its planned training it reached
    (1 for a full run, steps trained / planned for a truncated run with known steps, NaN for a
    truncated run without: no config stands for it) and ``curves`` its earlier points.
    """

    def __init__(self, params: Sequence[Param], budget_param: str | None = None) -> None:
        self.params = tuple(params)
        names = [p.name for p in self.params]
        if budget_param and budget_param not in names:
            raise ValueError(f"budget_param {budget_param!r} names no searched param")
        self.budget_index = names.index(budget_param) if budget_param else None
        self.x: list[np.ndarray] = []
        self.keys: list[Key] = []
        self.planned_keys: list[Key] = []
        self.scores: list[float] = []
        self.costs: list[float] = []
        self.failed: list[bool] = []
        self.end_fraction: list[float] = []
        self.curves: list[list[CurveRecord]] = []
        self.pending_x: list[np.ndarray] = []
        self.pending_keys: list[Key] = []
        # Curve points of running trials (from ``report``), and the trials told to stop, by planned key.
        self.running: dict[Key, list[CurvePoint]] = {}
        self.stopped: set[Key] = set()

    def key(self, x: np.ndarray) -> Key:
        """Identity of a config: its basic coordinates to 9 decimals (robust to a JSON round trip)."""
        return tuple(np.round(x, 9).tolist())

    def unseen(self, xs: np.ndarray, *, allow_observed: bool = False) -> np.ndarray:
        """Mask of the rows of ``xs`` that are not pending configs (nor observed ones, by default)."""
        taken = set(self.pending_keys)
        if not allow_observed:
            taken |= set(self.keys) | set(self.planned_keys)
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

    def seen(self, values: Mapping[str, Any]) -> bool:
        """Whether this config was observed before (as suggested or as trained): a repeat of it."""
        k = self.key(self.basic(values))
        return k in set(self.planned_keys) or k in set(self.keys)

    def _at_steps(self, x: np.ndarray, steps: float | None) -> tuple[np.ndarray, float]:
        """The config ``x`` with the budget param at ``steps``, and the fraction of ``x``'s steps that is.

        (x, NaN) when there is no budget param or ``steps`` is unknown.
        """
        j = self.budget_index
        if j is None or steps is None or not math.isfinite(steps) or steps <= 0:
            return x, math.nan
        p = self.params[j]
        planned = float(p.from_basic(float(x[j])))
        trained = x.copy()
        trained[j] = p.to_basic(p.round(steps))
        return trained, min(float(steps) / planned, 1.0) if planned > 0 else math.nan

    def observe(self, obs: Observation) -> None:
        """Record a finished trial and clear the first pending config equal to it.

        Curve points this searcher received through ``report`` for the config join the observation
        when it carries none; a config the searcher told to stop is observed as truncated.
        """
        planned = self.basic(obs.params)
        pk = self.key(planned)
        score, cost = float(obs.score), float(obs.cost)
        failed = bool(obs.failed) or not math.isfinite(score)
        cost = cost if math.isfinite(cost) and cost > 0 else 0.0
        reported = self.running.pop(pk, [])
        points = obs.curve or tuple(reported)
        truncated = bool(obs.truncated) or pk in self.stopped
        self.stopped.discard(pk)
        steps = obs.steps
        if truncated and steps is None:  # stopped at a reported point: the run ends where it was
            steps = next((pt.steps for pt in reversed(points) if pt.cost >= cost), None)
        x, end = self._at_steps(planned, steps) if truncated else (planned, 1.0)
        records = []
        for pt in points:
            s, c = float(pt.score), float(pt.cost)
            if not (math.isfinite(s) and math.isfinite(c) and 0 < c < cost):
                continue
            xp, frac = self._at_steps(planned, pt.steps)
            if math.isnan(frac):
                frac = c / cost * end  # NaN for a truncated run of unknown length
            records.append(CurveRecord(xp, frac, c, s))
        self.x.append(x)
        self.keys.append(self.key(x))
        self.planned_keys.append(pk)
        self.scores.append(score if not failed else math.nan)
        self.costs.append(cost)
        self.failed.append(failed)
        self.end_fraction.append(end)
        self.curves.append(records)
        self.forget_key(pk)

    def report(self, values: Mapping[str, Any], point: CurvePoint) -> Key:
        """Record a curve point of a running trial; its planned config's key."""
        k = self.key(self.basic(values))
        self.running.setdefault(k, []).append(point)
        return k

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
        """Drop a pending config that will never report (no-op if it is not pending), and its curve."""
        k = self.key(self.basic(values))
        self.forget_key(k)
        if k not in self.pending_keys:
            self.running.pop(k, None)
            self.stopped.discard(k)

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
    """The bookkeeping every searcher shares: observe / forget / add_pending update ``self.history``.

    ``report`` records the curve point (it joins the trial's observation) and never stops a trial;
    searchers with a stop rule override it.
    """

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

    def report(self, params: Mapping[str, Any], cost: float, score: float, *,
               steps: float | None = None, stoppable: bool = True) -> bool:
        """Record a curve point of the running trial ``params``; False: never stop it."""
        self.history.report(params, CurvePoint(float(cost), float(score), steps))
        return False
