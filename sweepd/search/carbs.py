"""CARBS-style cost-aware Bayesian search (after Fetterman et al. 2023, arXiv 2306.08055).

The search is local: it proposes configs near the cost/score Pareto front of what has been
observed, and picks the one whose predicted score most improves on the front at its predicted cost.

Over 400 lines on purpose: suggestions and stop decisions share one set of surrogates, fitted once
per observation and cached here; splitting them would pass that cache between modules. The
generic pieces live apart (gp.py, pareto.py, history.py).

One suggestion, from the history alone (seed, observations in order, pending configs):

1. Warm-up (the first ``num_random_samples`` suggestions, counting observed and pending, or while
   fewer than 3 runs succeeded): the search centre first, then the centre plus Gaussian noise of
   ``initial_search_radius`` basic units; once costs are known, draws predicted over the cap are
   redrawn.
2. Every ``resample_frequency``-th suggestion after warm-up re-runs the least-sampled Pareto config
   (cheapest first among ties) that is not already pending.
3. Otherwise fit three GPs on basic coordinates (``sweepd.search.gp``): score, log cost, and
   success (0/1 labels, only when some run failed). Repeated configs are averaged (mean score,
   mean log cost) for the Pareto front; the GPs see every run, so repeats inform the noise level.
   Pending configs join the score GP at its own predicted mean (kriging believer), which flattens
   the expected improvement there, and are never proposed again. The GPs depend on the finished
   history only and are refitted once per new observation (``suggest`` and ``report`` share them).
4. Candidates are Gaussian steps around Pareto configs at radii {1/4, 1/2, 1, 2} x the search
   radius, reflected into the box and rounded to valid values; per dimension the step is scaled by
   the score GP's lengthscale over their geometric mean (clipped to [1/4, 4]), as TuRBO shapes its
   trust region. The radius starts at ``initial_search_radius`` and follows the one-fifth success
   rule over the sweep's first 60 runs: a run that improves the front inside the span of costs
   already explored adds 0.32 doublings, one that does not (or crashes) takes 0.08, one that is
   cheaper or costlier than every earlier run is neutral; every later run counts as a miss, so a
   long sweep settles back to the local search. On top, it doubles per ``stale_window`` runs
   without any front improvement; at most 4x. A search that keeps improving takes longer steps,
   so an optimum far from the centre is reached within a short sweep.
5. Acquisition = EI(score over baseline) x P(success) x locality, where the baseline is the front
   (linear in log cost) at max(predicted cost, a target cost drawn log-uniformly between the
   cheapest front cost and the cap), and locality = exp(-d^2 / (2 D r^2)) with d the (shaped)
   distance to the nearest Pareto config, D the dimension and r the radius.
6. Candidates whose ``cost_quantile`` upper quantile of predicted cost exceeds
   ``max_suggestion_cost`` are dropped. When none is left, candidates shrink toward the cheapest
   Pareto config; if even that is predicted over the cap, the cheapest-predicted candidate wins. The
   cap is never ignored.

Learning curves (``report`` and ``Observation.curve``, see ``sweepd.search.history``): the score GP
gains an input u = -log10(fraction of its run a point had trained), 0 for a full run and for every
prediction. Each run adds at most ``curve_points`` curve points, those nearest 1/2, 1/4, 1/8 ... of
its training; with a ``budget_param`` and known steps a point is the config with the budget param
at the steps trained, else the planned config. Curve rows take at most half of
``max_train_points`` and a third of ``max_fit_points``, on top of the finals (front runs first, then
the most recent); they never enter the front, the resample choice or the cost GP. A run truncated
at an unknown length enters only as curve points, its fractions from the cost GP's prediction of
its planned cost (and the cost GP at its cost only when it reached the cap).

Early stopping (``report``): a running trial is stopped when, after it has trained
``early_stop_min_fraction`` of its planned run (steps trained / planned steps, else seconds spent /
the cost GP's predicted cost), the score GP given its own curve (its latest point and those nearest
1/2, 1/4 ... of it) puts the probability that its final score beats the best front score at or
below its planned cost under ``early_stop_probability``. Never stopped: a repeat of an observed
config (a resample), a trial reported with ``stoppable=False`` (queued by a user), a trial before
the model exists (3 finished runs with curves). The decision follows from the finished history and
the trial's own points only, so a rebuilt searcher decides the same.

Options (keyword arguments of ``create_searcher("carbs", ...)``):

- ``num_random_samples`` (4): warm-up suggestions.
- ``resample_frequency`` (5): every n-th suggestion after warm-up is a resample; 0 disables.
- ``initial_search_radius`` (0.3): Gaussian step, in basic units (``sweepd.space``).
- ``min_pareto_cost_fraction`` (0.1): runs in the cheapest fraction of the log-cost span (from
  the cheapest run to the cap) count as one cost on the front.
- ``cost_quantile`` (0.9): the quantile of predicted cost that must fit under the cap.
- ``stale_window`` (10): runs without front improvement that double the search radius.
- ``max_train_points`` (128): GP training set cap (the Pareto runs, then the most recent).
- ``max_fit_points`` (48): runs used to fit kernel hyperparameters (same order).
- ``fit_iterations`` (20): L-BFGS iterations for the score GP's hyperparameters; the cost and
  success GPs get half (log cost is close to linear in basic coordinates in practice, and the
  success model only needs the rough shape of a crash region).
- ``num_candidates`` (0): candidates per suggestion; 0 means 100 per dimension, 500 to 2000.
- ``budget_param`` (None): the param that sets training length in steps (the sweep file's
  ``[sweep] budget_param``): curve points and truncated runs stand for that config at the steps
  they trained.
- ``curve_points`` (3): curve points per run in the score GP; 0 ignores curves (and never stops).
- ``early_stop`` (True): stop hopeless running trials; False: ``report`` only records the point.
- ``early_stop_probability`` (0.01): stop below this probability of improving the front.
- ``early_stop_min_fraction`` (0.25): never stop before this fraction of the planned run.

``suggest()`` runs torch with one thread (fastest for these small matrices) and restores the
caller's thread count on return; importing this module changes no global state.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special
import scipy.stats
import torch

from sweepd.search.gp import GaussianProcess
from sweepd.search.history import CurvePoint, CurveRecord, History, HistorySearcher, Suggestion
from sweepd.search.pareto import cheap_group_cost, front_value, log_cost, pareto_front
from sweepd.space import Param, bounds, from_basic, snap

_MIN_SUCCESSES = 3
_RADIUS_MULTIPLIERS = np.array([0.25, 0.5, 1.0, 2.0])
_MAX_RADIUS_DOUBLINGS = 2.0
# The one-fifth success rule (Rechenberg's step-size rule for evolution strategies): the radius
# grows while more than a fifth of the runs improve the front and shrinks back while fewer do;
# a success adds _SUCCESS_GAIN * 4/5 doublings, a miss takes _SUCCESS_GAIN / 5 (3 straight
# successes: about one doubling).
_SUCCESS_RATE = 0.2
_SUCCESS_GAIN = 0.4
_SUCCESS_HORIZON = 60
_SHRINK_FACTORS = (0.5, 0.25, 0.1)
# A front config is resampled only while its lead over every cheaper config is under this many
# standard errors of its mean score (the score GP's noise over sqrt(runs)): its place on the front
# may be luck. A lead beyond that would survive a repeat, which would then only cost a run.
_RESAMPLE_MARGIN = 2.0
_WARMUP_DRAWS = 64
_MIN_FRACTION = 1e-3  # a curve point's fraction of its run is floored here (u stays finite)


@dataclass(frozen=True)
class _Front:
    """Averaged successful configs and which of them form the Pareto front."""

    x: np.ndarray  # basic coordinates of each distinct config
    score: np.ndarray  # mean score
    stderr: np.ndarray  # standard error of the mean score (0 for a single run)
    cost: np.ndarray  # geometric mean cost
    count: np.ndarray  # runs of the config
    runnable: np.ndarray  # False for a run cut at an unknown length: its outcome, not a config to repeat
    front: np.ndarray  # indices into the above, sorted by cost
    group: float  # runs cheaper than this count as costing this much (cheap runs are noisy)

    def margin(self, i: int) -> float:
        """How much config ``i`` beats every cheaper config (inf for the cheapest group)."""
        cheaper = np.maximum(self.cost, self.group) <= max(self.cost[i], self.group)
        cheaper[i] = False
        return float(self.score[i] - self.score[cheaper].max()) if cheaper.any() else math.inf

    def dominated_below(self, cost: float) -> float:
        """The best front score at or below ``cost``: a run must beat it to improve the front there."""
        c = max(cost, self.group)
        on = [i for i in self.front if max(self.cost[i], self.group) <= c]
        return float(self.score[on].max()) if on else -math.inf


@dataclass(frozen=True)
class _Models:
    """The surrogates fitted on the finished history (no pending configs): reused until it grows."""

    score: GaussianProcess  # inputs: basic coordinates, plus u = -log10(fraction of the run) if with_u
    cost: GaussianProcess  # log cost of full (or as-trained) runs
    success: GaussianProcess | None  # 0/1 labels, only when some run failed
    with_u: bool


class CarbsSearcher(HistorySearcher):
    """Cost-aware local Bayesian search around the Pareto front (see the module docstring)."""

    def __init__(self, params: Sequence[Param], seed: int = 0, max_suggestion_cost: float = math.inf, *,
                 num_random_samples: int = 4, resample_frequency: int = 5,
                 initial_search_radius: float = 0.3, min_pareto_cost_fraction: float = 0.1,
                 cost_quantile: float = 0.9, stale_window: int = 10, max_train_points: int = 128,
                 max_fit_points: int = 48, fit_iterations: int = 20, num_candidates: int = 0,
                 budget_param: str | None = None, curve_points: int = 3, early_stop: bool = True,
                 early_stop_probability: float = 0.01, early_stop_min_fraction: float = 0.25) -> None:
        if not params:
            raise ValueError("a searcher needs at least one parameter")
        if len({p.name for p in params}) != len(params):
            raise ValueError("parameter names must be unique")
        if not max_suggestion_cost > 0:
            raise ValueError("max_suggestion_cost must be positive")
        if num_random_samples < 0 or resample_frequency < 0 or stale_window < 1:
            raise ValueError("num_random_samples and resample_frequency must be >= 0, stale_window >= 1")
        if not initial_search_radius > 0 or not 0 <= min_pareto_cost_fraction < 1:
            raise ValueError("initial_search_radius must be > 0 and min_pareto_cost_fraction in [0, 1)")
        if not 0 < cost_quantile < 1:
            raise ValueError("cost_quantile must be in (0, 1)")
        if max_fit_points < _MIN_SUCCESSES or max_train_points < max_fit_points or fit_iterations < 0:
            raise ValueError("need 3 <= max_fit_points <= max_train_points and fit_iterations >= 0")
        if curve_points < 0:
            raise ValueError("curve_points must be >= 0")
        if not 0 < early_stop_probability < 1 or not 0 < early_stop_min_fraction <= 1:
            raise ValueError("early_stop_probability must be in (0, 1) and early_stop_min_fraction in (0, 1]")
        self.params, self.seed = tuple(params), int(seed)
        self.max_suggestion_cost = float(max_suggestion_cost)
        self.num_random_samples, self.resample_frequency = int(num_random_samples), int(resample_frequency)
        self.radius, self.cheap_fraction = float(initial_search_radius), float(min_pareto_cost_fraction)
        self.cost_z = float(scipy.stats.norm.ppf(cost_quantile))
        self.stale_window, self.fit_iterations = int(stale_window), int(fit_iterations)
        self.max_train_points, self.max_fit_points = int(max_train_points), int(max_fit_points)
        d = len(self.params)
        self.num_candidates = int(num_candidates) or min(2000, max(500, 100 * d))
        self.curve_points, self.early_stop = int(curve_points), bool(early_stop)
        self.stop_probability, self.stop_min_fraction = float(early_stop_probability), float(early_stop_min_fraction)
        self.history = History(self.params, budget_param)
        self._lo, self._hi = bounds(self.params)
        self._front_cache: tuple[int, _Front | None] = (-1, None)
        self._models_cache: tuple[int, _Models | None] = (-1, None)

    # -- the public interface ------------------------------------------------------------------

    def suggest(self) -> Suggestion:
        """The next config to run (recorded as pending)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            sug = self._suggest()
        finally:
            torch.set_num_threads(threads)
        self.history.add_pending(sug.params)
        return Suggestion(dict(sug.params), sug.predicted_score, sug.predicted_cost, sug.kind)

    def report(self, params: Mapping[str, Any], cost: float, score: float, *,
               steps: float | None = None, stoppable: bool = True) -> bool:
        """A curve point of the running trial ``params``: True means stop that trial now.

        ``cost`` is the seconds it has spent, ``score`` its score there, ``steps`` the budget
        param's value trained so far (when the sweep has a ``budget_param``). The point is kept
        and joins the trial's observation. Never True for a trial that is not ``stoppable`` (one a
        user queued), a repeat of an observed config (a resample), or before the model exists; see
        the module docstring for the rule. The trial's final observation arrives through
        ``observe`` as usual (a trial told to stop is observed as truncated).
        """
        h = self.history
        key = h.report(params, CurvePoint(float(cost), float(score), steps))
        if not (self.early_stop and stoppable) or h.seen(params):
            return False
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            stop = self._hopeless(params, h.running[key])
        finally:
            torch.set_num_threads(threads)
        if stop:
            h.stopped.add(key)
        return stop

    # -- one suggestion -------------------------------------------------------------------------

    def _suggest(self) -> Suggestion:
        h = self.history
        index = h.n_observed + h.n_pending  # this suggestion's number, the same after a rebuild
        rng = h.rng(self.seed)
        n_ok = int(self._finals().sum())
        if index < self.num_random_samples or n_ok < _MIN_SUCCESSES:
            return self._warmup(rng, index)
        f = self.resample_frequency
        if f and (index - self.num_random_samples) % f == f - 1:
            sug = self._resample()
            if sug is not None:
                return sug
        return self._search(rng)

    def _warmup(self, rng: np.random.Generator, index: int) -> Suggestion:
        h = self.history
        center = h.center()
        if index == 0 and h.unseen(center[None, :])[0]:
            return self._make(center, None, None, "random")
        # Runs that all crash near the centre widen the net, as a stale front does in the search.
        radius = self.radius * 2.0 ** min(_MAX_RADIUS_DOUBLINGS, sum(h.failed) / self.stale_window)
        draws = self._reflect(center + rng.normal(0.0, radius, (_WARMUP_DRAWS, len(center))))
        draws = h.prefer_unseen(snap(self.params, draws))
        cost_gp = self._cost_gp_or_none()
        if cost_gp is None:
            return self._make(draws[0], None, None, "random")
        mu, upper = self._cost_upper(cost_gp, draws)
        fits = upper <= math.log(self.max_suggestion_cost)
        i = int(np.argmax(fits)) if fits.any() else int(np.argmin(upper))
        return self._make(draws[i], None, float(np.exp(mu[i])), "random")

    def _resample(self) -> Suggestion | None:
        h = self.history
        fr = self._front()
        if fr is None:
            return None
        models = self._models()
        if models is None:
            return None
        pending = set(h.pending_keys)
        noise = math.sqrt(models.score.noise_var)
        options = [i for i in fr.front
                   if fr.runnable[i] and h.key(fr.x[i]) not in pending and fr.cost[i] <= self.max_suggestion_cost
                   and fr.margin(i) < _RESAMPLE_MARGIN * noise / math.sqrt(fr.count[i])]
        if not options:
            return None
        i = min(options, key=lambda j: (fr.count[j], fr.cost[j]))
        return self._make(fr.x[i], float(fr.score[i]), float(fr.cost[i]), "resample")

    def _search(self, rng: np.random.Generator) -> Suggestion:
        h = self.history
        fr = self._front()
        models = self._models()
        assert fr is not None and models is not None  # at least _MIN_SUCCESSES runs succeeded
        score_gp, cost_gp, success_gp = models.score, models.cost, models.success
        if h.n_pending:
            pending = self._inputs(np.array(h.pending_x), models.with_u)
            believed, _ = score_gp.predict(pending)
            score_gp = score_gp.condition(pending, believed)

        radius = self.radius * 2.0 ** min(_MAX_RADIUS_DOUBLINGS,
                                          self._success_doublings() + self._stale_runs() / self.stale_window)
        shape = self._step_shape(models)
        origins = fr.x[fr.front]
        cands = h.prefer_unseen(self._candidates(rng, origins, radius * shape))

        front_cost, front_score = fr.cost[fr.front], fr.score[fr.front]
        cap = self.max_suggestion_cost
        top = cap if math.isfinite(cap) else float(front_cost.max()) * 2.0
        lo_target = min(float(front_cost.min()), top)
        target = float(np.exp(rng.uniform(math.log(lo_target), math.log(top))))

        def log_acquisition(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            mu_s, var_s = score_gp.predict(self._inputs(xs, models.with_u))
            mu_c, upper_c = self._cost_upper(cost_gp, xs)
            baseline = front_value(front_cost, front_score, np.maximum(np.exp(mu_c), target))
            acq = _log_expected_improvement(mu_s, np.sqrt(var_s), baseline)
            if success_gp is not None:
                acq = acq + self._log_success(success_gp, xs)
            d2 = (((xs[:, None, :] - origins[None, :, :]) / shape) ** 2).sum(-1).min(1)
            acq = acq - 0.5 * d2 / (len(self.params) * radius**2)
            return acq, mu_s, mu_c, upper_c

        acq, mu_s, mu_c, upper_c = log_acquisition(cands)
        fits = upper_c <= math.log(cap)
        if not fits.any():
            cands, acq, mu_s, mu_c, upper_c, fits = self._shrink(rng, fr, radius * shape, log_acquisition)
        i = int(np.argmax(np.where(fits, acq, -np.inf))) if fits.any() else int(np.argmin(upper_c))
        return self._make(cands[i], float(mu_s[i]), float(np.exp(mu_c[i])), "search")

    def _shrink(self, rng: np.random.Generator, fr: _Front, radius: np.ndarray,
                log_acquisition: Any) -> tuple[np.ndarray, ...]:
        """Candidates ever closer to the cheapest Pareto config, when none fits under the cap."""
        h = self.history
        cheapest = fr.x[fr.front[0]][None, :]
        sets = []
        for factor in _SHRINK_FACTORS:
            cands = h.prefer_unseen(self._candidates(rng, cheapest, radius * factor))
            acq, mu_s, mu_c, upper_c = log_acquisition(cands)
            fits = upper_c <= math.log(self.max_suggestion_cost)
            sets.append((cands, acq, mu_s, mu_c, upper_c, fits))
            if fits.any():
                return sets[-1]
        # Nothing fits: the cheapest-predicted of everything tried.
        return tuple(np.concatenate(parts) for parts in zip(*sets, strict=True))

    # -- models ---------------------------------------------------------------------------------

    def _finals(self) -> np.ndarray:
        """Mask of the runs that stand for a config: succeeded, and not truncated at an unknown length."""
        h = self.history
        return ~np.array(h.failed, dtype=bool) & np.isfinite(np.array(h.end_fraction, dtype=np.float64))

    def _front(self) -> _Front | None:
        """Successful runs averaged per config, and the Pareto front over configs under the cap."""
        h = self.history
        if self._front_cache[0] != h.n_observed:  # observations only ever grow
            self._front_cache = (h.n_observed, self._compute_front())
        return self._front_cache[1]

    def _compute_front(self) -> _Front | None:
        h = self.history
        groups: dict[tuple, list[int]] = {}
        finals = self._finals()
        for i in np.flatnonzero(finals):
            groups.setdefault(h.keys[i], []).append(int(i))
        # A run stopped or cut at an unknown length still showed that its score is reachable at its
        # cost (rerun the config, stop at that cost): a point of the front on its own, never averaged
        # with full runs of its config nor repeated as a resample.
        for i in np.flatnonzero(~finals & ~np.array(h.failed, dtype=bool)):
            groups[("cut", int(i))] = [int(i)]
        if not groups:
            return None
        idx = list(groups.values())
        runnable = np.array([bool(finals[g[0]]) for g in idx])
        scores = [np.array([h.scores[i] for i in g]) for g in idx]
        x = np.array([h.x[g[0]] for g in idx])
        score = np.array([s.mean() for s in scores])
        stderr = np.array([s.std(ddof=1) / math.sqrt(len(s)) if len(s) > 1 else 0.0 for s in scores])
        cost = np.array([float(np.exp(log_cost([h.costs[i] for i in g]).mean())) for g in idx])
        count = np.array([len(g) for g in idx])
        under = np.flatnonzero(cost <= self.max_suggestion_cost)
        if len(under) == 0:
            under = np.arange(len(cost))
        top = self.max_suggestion_cost if math.isfinite(self.max_suggestion_cost) else float(cost.max())
        group = cheap_group_cost(cost[under], top, self.cheap_fraction)
        front = under[pareto_front(cost[under], score[under], group_below=group)]
        return _Front(x, score, stderr, cost, count, runnable, front, group)

    def _training_indices(self, fr: _Front, limit: int, among: np.ndarray | None = None) -> np.ndarray:
        """Runs for the GPs (``among``, default the finals): Pareto configs' runs first, then the most recent."""
        h = self.history
        among = self._finals() if among is None else among
        front_keys = {h.key(fr.x[i]) for i in fr.front}
        recent = [i for i in range(h.n_observed - 1, -1, -1) if among[i]]
        on_front = [i for i in recent if h.keys[i] in front_keys][: limit // 2]
        chosen = set(on_front)
        rest = [i for i in recent if i not in chosen][: limit - len(on_front)]
        return np.array(on_front + rest, dtype=np.int64)

    def _models(self) -> _Models | None:
        """The score, cost and success GPs of the finished history (cached until it grows)."""
        h = self.history
        if self._models_cache[0] != h.n_observed:
            self._models_cache = (h.n_observed, self._fit_models())
        return self._models_cache[1]

    def _fit_models(self) -> _Models | None:
        h = self.history
        fr = self._front()
        finals = self._finals()
        if fr is None or finals.sum() < _MIN_SUCCESSES:
            return None
        x_all = np.array(h.x)
        failed = np.array(h.failed, dtype=bool)
        train = self._training_indices(fr, self.max_train_points)
        fit = self._training_indices(fr, self.max_fit_points)
        costed = self._costed()
        cost_train = self._training_indices(fr, self.max_train_points, costed)
        cost_fit = self._training_indices(fr, self.max_fit_points, costed)
        y_cost = log_cost(h.costs)
        cost_gp = self._fit(x_all[cost_fit], y_cost[cost_fit], x_all[cost_train], y_cost[cost_train],
                            iterations=self.fit_iterations // 2)
        # Score GP rows: the finals at u = -log10(fraction of the run they trained) (0 for a full run),
        # failed runs at the worst score seen, then curve points (see the module docstring).
        u_all = -np.log10(np.maximum(np.nan_to_num(np.array(h.end_fraction), nan=1.0), _MIN_FRACTION))
        y_score = np.array(h.scores)
        x_train, y_train = np.c_[x_all[train], u_all[train]], y_score[train]
        x_fit, y_fit = np.c_[x_all[fit], u_all[fit]], y_score[fit]
        success_gp = None
        if failed.any():
            # Failed runs also enter the score GP at the worst score seen: with P(success) alone, a
            # front that ends at a crash region keeps proposing crashes, since only there does the
            # score GP promise any improvement (SMAC imputes crashed runs the same way).
            failures = np.flatnonzero(failed)[::-1][: self.max_train_points // 4]
            worst = float(np.nanmin(y_score[train]))
            train = np.concatenate([train[: self.max_train_points - len(failures)], failures])
            fit = np.concatenate([fit[: self.max_fit_points - len(failures) // 2], failures[: len(failures) // 2]])
            y_imputed = np.where(failed, worst, y_score)
            x_train, y_train = np.c_[x_all[train], u_all[train]], y_imputed[train]
            x_fit, y_fit = np.c_[x_all[fit], u_all[fit]], y_imputed[fit]
            labels = (~failed).astype(np.float64)
            success_gp = self._fit(x_all[fit], labels[fit], x_all[train], labels[train],
                                   iterations=self.fit_iterations // 2)
        curve_x, curve_y = self._curve_rows(fr, cost_gp)
        with_u = len(curve_y) > 0 or bool(np.any(u_all[finals] > 0))
        if not with_u:
            x_train, x_fit = x_train[:, :-1], x_fit[:, :-1]
        else:
            n_train, n_fit = self.max_train_points // 2, self.max_fit_points // 3
            x_train, y_train = np.r_[x_train, curve_x[:n_train]], np.r_[y_train, curve_y[:n_train]]
            x_fit, y_fit = np.r_[x_fit, curve_x[:n_fit]], np.r_[y_fit, curve_y[:n_fit]]
        score_gp = self._fit(x_fit, y_fit, x_train, y_train)
        return _Models(score_gp, cost_gp, success_gp, with_u)

    def _costed(self) -> np.ndarray:
        """Mask of the runs the cost GP learns from: the finals, and runs cut at the cap (a lower bound)."""
        h = self.history
        at_cap = np.array(h.costs) >= self.max_suggestion_cost
        return self._finals() | (~np.array(h.failed, dtype=bool) & at_cap)

    def _curve_rows(self, fr: _Front, cost_gp: GaussianProcess) -> tuple[np.ndarray, np.ndarray]:
        """Score-GP rows from learning curves, most useful first: up to ``curve_points`` per run.

        Runs on the front first, then the most recent. A finished run contributes the points nearest
        1/2, 1/4, 1/8 ... of its training; a run truncated at an unknown length, its end and the
        points nearest 1/2, 1/4 ... of it, with fractions from the cost GP's prediction of its length.
        """
        h = self.history
        d = len(self.params)
        if self.curve_points == 0:
            return np.zeros((0, d + 1)), np.zeros(0)
        ok = ~np.array(h.failed, dtype=bool)
        rows_x: list[np.ndarray] = []
        rows_y: list[float] = []
        for i in self._training_indices(fr, h.n_observed, ok):
            records = list(h.curves[i])
            end = h.end_fraction[i]
            if math.isnan(end):
                records.append(CurveRecord(h.x[i], math.nan, h.costs[i], h.scores[i]))
                planned = float(np.exp(cost_gp.predict(h.x[i][None, :])[0][0]))
                records = [r if math.isfinite(r.fraction) else
                           CurveRecord(r.x, min(r.cost / planned, 1.0), r.cost, r.score) for r in records]
                anchor, first = records[-1].fraction, 0
            else:
                anchor, first = end, 1
            for r in _spaced(records, anchor, first, self.curve_points):
                rows_x.append(np.r_[r.x, -math.log10(max(r.fraction, _MIN_FRACTION))])
                rows_y.append(r.score)
        if not rows_y:
            return np.zeros((0, d + 1)), np.zeros(0)
        return np.array(rows_x), np.array(rows_y)

    @staticmethod
    def _inputs(xs: np.ndarray, with_u: bool, u: float = 0.0) -> np.ndarray:
        """Score-GP inputs for configs ``xs`` run to the fraction 10**-u of their training (u=0: to the end)."""
        return np.c_[xs, np.full(len(xs), u)] if with_u else xs

    def _fit(self, x_fit: np.ndarray, y_fit: np.ndarray, x_train: np.ndarray, y_train: np.ndarray,
             iterations: int | None = None) -> GaussianProcess:
        """Hyperparameters from the (smaller) fit set, posterior on the training set."""
        gp = GaussianProcess.fit(x_fit, y_fit, max_iter=self.fit_iterations if iterations is None else iterations)
        if len(x_train) == len(x_fit):
            return gp
        return GaussianProcess(x_train, y_train, gp.hyper, gp.y_mean, gp.y_std, x_fit.mean(0))

    def _cost_gp_or_none(self) -> GaussianProcess | None:
        h = self.history
        ok = np.flatnonzero(self._costed())
        if len(ok) < _MIN_SUCCESSES or not math.isfinite(self.max_suggestion_cost):
            return None
        ok = ok[-self.max_fit_points:]
        return GaussianProcess.fit(np.array(h.x)[ok], log_cost(h.costs)[ok], max_iter=self.fit_iterations // 2)

    def _cost_upper(self, gp: GaussianProcess, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted median log cost and its upper ``cost_quantile`` (model and run-to-run noise)."""
        mu, var = gp.predict(xs)
        return mu, mu + self.cost_z * np.sqrt(var + gp.noise_var)

    @staticmethod
    def _log_success(gp: GaussianProcess, xs: np.ndarray) -> np.ndarray:
        """log P(success): the label GP's mean above 1/2, in units of its predictive std."""
        mu, var = gp.predict(xs)
        return scipy.special.log_ndtr((mu - 0.5) / np.sqrt(var + 1e-6))

    def _step_shape(self, models: _Models) -> np.ndarray:
        """Per-dimension step sizes relative to the radius: the score GP's lengthscales over their
        geometric mean (as TuRBO shapes its trust region), clipped to [1/4, 4].

        Parameters the score barely depends on get longer steps, sensitive ones shorter, at the same
        overall volume, so a wider radius does not scatter a many-knob search.
        """
        d = len(self.params)
        log_ls = models.score.hyper.log_lengthscales[:d]
        return np.exp(np.clip(log_ls - log_ls.mean(), -math.log(4.0), math.log(4.0)))

    def _improvements(self, horizon: int) -> np.ndarray:
        """For each of the first ``horizon`` finished or failed runs: +1 if it improved the front inside
        the span of costs already explored, -1 if it did not (or failed), 0 if it extended that span.

        A run cheaper or costlier than every earlier one is on the front whatever its config: it
        says nothing about whether the step that made it was a good one.
        """
        h = self.history
        finals, failed = self._finals(), np.array(h.failed, dtype=bool)
        runs = np.flatnonzero(finals | failed)[:horizon]
        ok = np.flatnonzero(finals)
        scores, costs = np.array(h.scores)[ok], np.array(h.costs)[ok]
        out = []
        for i in runs:
            if failed[i]:
                out.append(-1)
                continue
            earlier = ok < i
            cheaper = earlier & (costs <= h.costs[i])
            if not cheaper.any() or not (earlier & (costs >= h.costs[i])).any():
                out.append(0)
            else:
                out.append(1 if h.scores[i] > scores[cheaper].max() else -1)
        return np.array(out, dtype=np.int64)

    def _success_doublings(self) -> float:
        """Radius doublings by the one-fifth success rule (0 to the maximum).

        The rule sizes the walk of a sweep's first ``_SUCCESS_HORIZON`` runs; every later run counts
        as a miss, so a long sweep settles back to the local search (its front is dense by then,
        and small refinements would otherwise keep the radius wide).
        """
        level = 0.0
        flags = self._improvements(_SUCCESS_HORIZON)
        for flag in flags[self.num_random_samples:]:
            step = {1: 1.0 - _SUCCESS_RATE, -1: -_SUCCESS_RATE, 0: 0.0}[int(flag)]
            level = min(max(level + _SUCCESS_GAIN * step, 0.0), _MAX_RADIUS_DOUBLINGS)
        h = self.history
        later = int((self._finals() | np.array(h.failed, dtype=bool)).sum()) - len(flags)
        return max(level - _SUCCESS_GAIN * _SUCCESS_RATE * later, 0.0)

    def _stale_runs(self) -> int:
        """Finished runs since the last one that beat every cheaper-or-equal earlier run.

        Counted up to the point where the radius stops growing, so a long sweep pays no more.
        """
        h = self.history
        ok = np.flatnonzero(self._finals())
        scores, costs = np.array(h.scores)[ok], np.array(h.costs)[ok]
        horizon = math.ceil(_MAX_RADIUS_DOUBLINGS * self.stale_window)
        for back, i in enumerate(range(len(ok) - 1, max(len(ok) - 1 - horizon, -1), -1)):
            cheaper = costs[:i] <= costs[i]
            if not cheaper.any() or scores[i] > scores[:i][cheaper].max():
                return back
        return min(len(ok), horizon)

    # -- early stopping ---------------------------------------------------------------------------

    def _hopeless(self, params: Mapping[str, Any], points: list[CurvePoint]) -> bool:
        """Whether the running trial's curve so far makes improving the front at its planned cost unlikely."""
        h = self.history
        models, fr = self._models(), self._front()
        if models is None or fr is None or not models.with_u:
            return False
        planned = h.basic(params)
        planned_cost = float(np.exp(models.cost.predict(planned[None, :])[0][0]))
        records = []
        for pt in points:
            x, fraction = h._at_steps(planned, pt.steps)
            if math.isnan(fraction):
                fraction = min(pt.cost / planned_cost, 1.0)
            if math.isfinite(pt.score) and math.isfinite(pt.cost):
                records.append(CurveRecord(x, fraction, pt.cost, pt.score))
        if not records or records[-1].fraction < self.stop_min_fraction:
            return False
        seen = _spaced(records, records[-1].fraction, 0, max(self.curve_points, 1))
        bar = fr.dominated_below(planned_cost)
        if not math.isfinite(bar):
            return False
        gp = models.score
        mu, var = gp.predict_given(
            self._inputs(planned[None, :], True),
            np.array([np.r_[r.x, -math.log10(max(r.fraction, _MIN_FRACTION))] for r in seen]),
            np.array([r.score for r in seen]))
        p_improve = float(scipy.special.ndtr((mu[0] - bar) / math.sqrt(var[0] + gp.noise_var)))
        return p_improve < self.stop_probability

    # -- candidates -------------------------------------------------------------------------------

    def _candidates(self, rng: np.random.Generator, origins: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Gaussian steps of per-dimension size ``radius`` (times 1/4 to 2) around random ``origins``."""
        n, d = self.num_candidates, origins.shape[1]
        base = origins[rng.integers(0, len(origins), n)]
        scale = _RADIUS_MULTIPLIERS[rng.integers(0, len(_RADIUS_MULTIPLIERS), n)]
        return snap(self.params, self._reflect(base + rng.normal(0.0, 1.0, (n, d)) * scale[:, None] * radius))

    def _reflect(self, xs: np.ndarray) -> np.ndarray:
        """Mirror steps that leave the box back into it (clipping would pile candidates on its walls)."""
        lo, hi = self._lo, self._hi
        xs = np.where(xs < lo, 2 * lo - xs, xs)
        xs = np.where(xs > hi, 2 * hi - xs, xs)
        return np.clip(xs, lo, hi)

    def _make(self, x: np.ndarray, score: float | None, cost: float | None, kind: str) -> Suggestion:
        return Suggestion(from_basic(self.params, x), score, cost, kind)  # type: ignore[arg-type]


def _spaced(records: list[CurveRecord], anchor: float, first: int, n: int) -> list[CurveRecord]:
    """Up to ``n`` records nearest the fractions anchor / 2**k, k = first, first + 1, ... (each used once).

    Halving spacing: points closer than a factor of two in training length say little more than one
    of them, and the earliest (noisiest) points are reached last.
    """
    chosen: list[CurveRecord] = []
    left = [r for r in records if r.fraction > 0]
    for k in range(first, first + n):
        if not left:
            break
        target = math.log(anchor / 2**k)
        j = min(range(len(left)), key=lambda i: abs(math.log(left[i].fraction) - target))
        if abs(math.log(left[j].fraction) - target) > math.log(2.0) / 2 and k > first:
            continue
        chosen.append(left.pop(j))
    return chosen


def _log_expected_improvement(mu: np.ndarray, sigma: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """log E[max(f - baseline, 0)] for f ~ N(mu, sigma^2), stable far below the baseline."""
    sigma = np.maximum(sigma, 1e-9)
    z = (mu - baseline) / sigma
    # h(z) = z Phi(z) + phi(z); for z < 0 write it as phi(z) (1 - |z| Phi(z) / phi(z)) via erfcx.
    t = np.abs(np.minimum(z, 0.0))
    mills = scipy.special.erfcx(t / math.sqrt(2.0)) * math.sqrt(math.pi / 2.0)
    log_h_neg = scipy.stats.norm.logpdf(z) + np.log(np.maximum(1.0 - t * mills, 1e-300))
    h_pos = z * scipy.special.ndtr(z) + scipy.stats.norm.pdf(z)
    log_h = np.where(z < 0, log_h_neg, np.log(np.maximum(h_pos, 1e-300)))
    return np.log(sigma) + log_h
