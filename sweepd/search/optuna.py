"""Optuna's multi-objective TPE (score up, cost down), rebuilt from the history for every suggestion.

Each ``suggest()`` builds a fresh in-memory study and replays the history into it: finished
trials as COMPLETE (values ``[score, cost]``) or FAIL, pending configs as RUNNING trials, which
Optuna's constant-liar TPE (``TPESampler(constant_liar=True)``) counts as bad outcomes so that
parallel agents are steered away from each other's configs. The sampler's seed comes from the
sweep's seed and the history's counts (``History.rng``): a fixed seed would replay the same
random start-up draw for every suggestion, and a rebuild from the same history gives the same one.

Parameters map onto Optuna distributions:

- ``log``: ``FloatDistribution(min, max, log=True)`` (``IntDistribution(..., log=True)`` if integer)
- ``linear``: ``FloatDistribution(min, max)`` (``IntDistribution`` if integer)
- ``logit``: a float in log10-odds, ``FloatDistribution(logit(min), logit(max))``, so TPE's kernels
  are as wide near 0.999 as near 0.9, as sweepd's own search sees the space
- ``pow2``: the integer exponent, ``IntDistribution(log2(min), log2(max))``
- ``choice``: ``CategoricalDistribution(values)`` (``suggest_categorical``): TPE models each value's
  frequency among good trials, so list order means nothing to it (sweepd's own search treats it
  as distance, sweepd/space.py)

The cost cap is Optuna's constraint ``cost - max_suggestion_cost <= 0`` on finished trials: TPE
ranks trials over the cap below every feasible one. Optuna has no cost model, so it cannot keep a
new config under the cap; the worker stops every trial at the cap as it does for any searcher.

Options (keyword arguments of ``create_searcher("optuna", ...)``): ``num_random_samples`` (10,
Optuna's default; a sweep passes its ``[sweep] num_random_samples``, the warm-up every searcher
gets): random configs before TPE starts, Optuna's ``n_startup_trials``. ``resample_frequency`` and
the early-stopping options (``budget_param``, ``curve_points``,
``early_stop``, ``early_stop_probability``, ``early_stop_min_fraction``) are accepted (a sweep file
may set them for any searcher) and ignored: ``report`` records a curve point and never stops a trial.
"""
from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sweepd.search.history import History, HistorySearcher, Suggestion
from sweepd.space import Param, Value, from_basic

_MAX_ASKS = 20  # asks before a pending config is proposed again (only a tiny discrete space gets there)


class OptunaSearcher(HistorySearcher):
    """Optuna's TPE on (score, cost), from the history alone (see the module docstring)."""

    def __init__(self, params: Sequence[Param], seed: int = 0, max_suggestion_cost: float = math.inf, *,
                 num_random_samples: int = 10, resample_frequency: int = 0,
                 budget_param: str | None = None, curve_points: int = 0, early_stop: bool = False,
                 early_stop_probability: float = 0.0, early_stop_min_fraction: float = 0.0) -> None:
        from sweepd.search.dependency import require_dependency

        self._optuna = require_dependency("optuna")
        if not params:
            raise ValueError("a searcher needs at least one parameter")
        if num_random_samples < 0:
            raise ValueError(f"num_random_samples must be >= 0, got {num_random_samples}")
        self.params, self.seed = tuple(params), int(seed)
        self.max_suggestion_cost = float(max_suggestion_cost)
        self.n_startup_trials = int(num_random_samples)
        self.history = History(self.params)
        self._distributions = {p.name: _distribution(self._optuna, p) for p in self.params}

    def suggest(self) -> Suggestion:
        """TPE's next config for a study holding the whole history (recorded as pending)."""
        h = self.history
        sampler_seed = int(h.rng(self.seed).integers(2**31))
        with _quiet(self._optuna):
            study = self._study(sampler_seed)
            pending = set(h.pending_keys)
            for _ in range(_MAX_ASKS):
                # Each ask stays RUNNING in the study, so the next one is steered away from it too.
                trial = study.ask(self._distributions)
                values = {p.name: _from_optuna(p, trial.params[p.name]) for p in self.params}
                if h.key(h.basic(values)) not in pending:
                    break
        n_ok = h.n_observed - sum(h.failed)
        kind = "random" if n_ok < self.n_startup_trials else "search"
        self.history.add_pending(values)
        return Suggestion(params=values, predicted_score=None, predicted_cost=None, kind=kind)

    def _study(self, sampler_seed: int) -> Any:
        """A fresh in-memory study holding the history: finished trials, then pending ones."""
        optuna = self._optuna
        h = self.history
        sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True,
                                             n_startup_trials=self.n_startup_trials)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        capped = math.isfinite(self.max_suggestion_cost)
        state = optuna.trial.TrialState
        for x, score, cost, failed in zip(h.x, h.scores, h.costs, h.failed, strict=True):
            params = self._optuna_params(x)
            if failed:
                trial = optuna.trial.create_trial(state=state.FAIL, params=params, distributions=self._distributions)
            else:
                constraints = {"cost_cap": cost - self.max_suggestion_cost} if capped else None
                trial = optuna.trial.create_trial(values=[score, cost], params=params,
                                                  distributions=self._distributions, constraints=constraints)
            study.add_trial(trial)
        for x in h.pending_x:
            study.add_trial(optuna.trial.create_trial(state=state.RUNNING, params=self._optuna_params(x),
                                                      distributions=self._distributions))
        return study

    def _optuna_params(self, x: np.ndarray) -> dict[str, Any]:
        values = from_basic(self.params, x)
        return {p.name: _to_optuna(p, values[p.name], self._distributions[p.name]) for p in self.params}


def _distribution(optuna: Any, p: Param) -> Any:
    """The Optuna distribution that searches ``p`` (see the module docstring)."""
    dist = optuna.distributions
    if p.is_choice:
        return dist.CategoricalDistribution(p.values)
    if p.space == "pow2":
        return dist.IntDistribution(math.ceil(math.log2(p.min)), math.floor(math.log2(p.max)))
    if p.space == "logit":
        return dist.FloatDistribution(_logit(p.min), _logit(p.max))
    if p.integer:
        return dist.IntDistribution(math.ceil(p.min), math.floor(p.max), log=p.space == "log")
    return dist.FloatDistribution(p.min, p.max, log=p.space == "log")


def _to_optuna(p: Param, value: Value, distribution: Any) -> Value:
    """A valid sweepd value as the value of its Optuna distribution (inside its bounds)."""
    if p.is_choice:
        return p.round(value)
    if p.space == "pow2":
        return round(math.log2(value))
    if p.is_integer:
        return int(value)
    v = _logit(value) if p.space == "logit" else float(value)
    return min(max(v, distribution.low), distribution.high)


def _from_optuna(p: Param, value: Any) -> Value:
    """The sweepd value (valid, rounded) of an Optuna sample."""
    if p.is_choice:
        return p.round(value)
    if p.space == "pow2":
        return p.round(2.0 ** int(value))
    if p.space == "logit":
        return p.round(1.0 / (1.0 + 10.0 ** (-float(value))))
    return p.round(value)


def _logit(v: float) -> float:
    return math.log10(v / (1.0 - v))


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna's per-study INFO log and experimental-feature warnings, off for one suggestion only
    (the caller's logging and warning filters are restored)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
