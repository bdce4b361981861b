"""What a sweep runs next, and whether a running trial goes on: its searcher rebuilt from the
store's history and asked.

The searcher holds no state the database cannot rebuild, so any agent on any box gets the same
answer for the same history. The store calls `propose` under the sweep's lock while it leases a
slot (sweepd.store leasing); the agent only passes it along.

Stop decisions (`StopAdvisor.should_stop`, asked by the agent at each progress point of a running
trial) follow from the sweep's finished outcomes (their curves included) and the trial's own
learning curve so far, and from nothing else: not from pending configs, other running trials or
earlier decisions. The curve is the one the agent's worker holds (`Worker.curve`, the rows the
heartbeat stores as `metrics["curve"]`); it is replayed whole through `Searcher.report` for every
decision, so a decision is a function of (history, curve). After an agent restart the trial's
worker is gone with it (sweepd/lifeline.py) and the trial runs again from its start, so the curve
the next agent replays is that attempt's, from its first point: replaying the stored heartbeat
curve of the dead attempt would judge a run that no longer exists. Two agents (or one agent and a
rebuild from the database) given the same history and curve decide the same; the test suite
checks it. A searcher rebuilt from the finished outcomes is kept per sweep until the history's
version changes (a trial finishes), so a decision costs milliseconds once the surrogates are fitted
(`benchmarks/early_stopping.py --latency` prints the figure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sweepd.search import Observation, Searcher, create_searcher
from sweepd.search.history import CurvePoint
from sweepd.spec import SweepSpec
from sweepd.store.history import Evidence, HistoryVersion, Outcome, Proposal
from sweepd.store.sweeps import SweepInfo

# Trial kinds a stop decision may end: the searcher's own proposals. A resample (a seed repeat of a
# front point), a user's queued config and a baseline run to their end whatever their curve says.
STOPPABLE_KINDS = ("random", "search")
CACHED_SWEEPS = 8            # searchers kept for stop decisions (one per sweep, the least recent dropped)


class ProposalFailed(Exception):
    """The sweep's searcher (or its stored spec) raised while proposing a trial: that sweep is
    broken, not the agent, which pauses it and keeps serving the others."""

    def __init__(self, sweep: SweepInfo, error: Exception) -> None:
        self.sweep, self.error = sweep, error
        super().__init__(f"sweep {sweep.name}: {type(error).__name__}: {error}")


def searcher_options(sweep: SweepInfo, spec: SweepSpec) -> dict[str, Any]:
    """The sweep's searcher options, from its `[sweep]` settings: every searcher takes the warm-up
    length, the resample cadence and the learning-curve and stop options (only carbs stops trials);
    carbs also its radius, cheap-cost grouping and cost quantile."""
    settings = spec.settings
    options: dict[str, Any] = {
        "budget_param": settings.budget_param or None, "curve_points": settings.curve_points,
        "early_stop": settings.early_stopping == "on", "early_stop_probability": settings.early_stop_probability,
        "early_stop_min_fraction": settings.early_stop_min_fraction,
        "num_random_samples": settings.num_random_samples, "resample_frequency": settings.resample_frequency}
    if sweep.searcher == "carbs":
        options.update(initial_search_radius=settings.initial_search_radius,
                       min_pareto_cost_fraction=settings.min_pareto_cost_fraction,
                       cost_quantile=settings.cost_quantile)
    return options


def observation(outcome: Outcome, sign: float) -> Observation:
    """A stored outcome as the searcher observes it: scores times `sign` (-1 for a minimized metric,
    so searchers always maximize), its curve points as `CurvePoint(elapsed, score, step)`."""
    score = outcome.score * sign if not outcome.failed else outcome.score
    curve = tuple(CurvePoint(elapsed, value * sign, step) for step, value, elapsed in outcome.curve)
    return Observation(params=outcome.params, score=score, cost=outcome.cost, failed=outcome.failed, curve=curve,
                       truncated=outcome.truncated, steps=outcome.steps)


def rebuild(sweep: SweepInfo, spec: SweepSpec, history: Evidence, *, pending: bool = True) -> Searcher:
    """The sweep's searcher fed its outcomes in trial order (and, with `pending`, its open trials)."""
    sign = _sign(spec)
    searcher = create_searcher(sweep.searcher, list(spec.params), seed=sweep.seed,
                               max_suggestion_cost=sweep.max_suggestion_cost, **searcher_options(sweep, spec))
    for seen in history.observations:
        searcher.observe(observation(seen, sign))
    if pending:
        for params in history.pending:
            searcher.add_pending(params)
    return searcher


def propose_next(sweep: SweepInfo, history: Evidence) -> Proposal:
    """Rebuild the sweep's searcher from its history and ask it for the next config;
    minimized metrics are negated so searchers always maximize."""
    spec = SweepSpec.from_json(sweep.spec)
    sign = _sign(spec)
    suggestion = rebuild(sweep, spec, history).suggest()
    predicted = suggestion.predicted_score
    return Proposal(params=dict(suggestion.params), kind=suggestion.kind,
                    predicted_score=None if predicted is None else predicted * sign,
                    predicted_cost=suggestion.predicted_cost)


def propose(sweep: SweepInfo, history: Evidence) -> Proposal:
    """`propose_next`, with whatever the sweep's searcher or spec raises tagged with the sweep
    (`ProposalFailed`)."""
    try:
        return propose_next(sweep, history)
    except Exception as exc:
        raise ProposalFailed(sweep, exc) from exc


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop a running trial now, and why (the reason is logged and kept in the events)."""

    stop: bool
    reason: str


@dataclass
class _Rebuilt:
    history: Evidence       # what the searcher was rebuilt from (its version is the key)
    searcher: Searcher
    sign: float


class StopAdvisor:
    """Stop decisions for running trials, one searcher per sweep kept until its history changes."""

    def __init__(self) -> None:
        self._rebuilt: dict[int, _Rebuilt] = {}

    def should_stop(self, sweep: SweepInfo, history: Evidence, params: dict[str, Any], kind: str,
                    curve: Sequence[Sequence[Any]]) -> StopDecision:
        """Whether the running trial `params` (of `kind`) should stop now, given the sweep's `history`
        and the trial's learning curve so far (`[step, score, elapsed]` rows, oldest first; the
        last is the point being judged).

        Never for a kind outside STOPPABLE_KINDS, nor when the sweep's `early_stopping` is "off";
        the searcher itself never stops a repeat of an observed config or before its model exists.
        """
        spec = SweepSpec.from_json(sweep.spec)
        if spec.settings.early_stopping != "on":
            return StopDecision(False, "early stopping is off for this sweep")
        if kind not in STOPPABLE_KINDS:
            return StopDecision(False, f"a {kind} trial runs to its end")
        points = [(step, score, elapsed) for step, score, elapsed, *_ in curve
                  if _finite(score) and _finite(elapsed)]
        if not points:
            return StopDecision(False, "no curve point yet")
        rebuilt = self._searcher(sweep, spec, history)
        searcher, sign = rebuilt.searcher, rebuilt.sign
        searcher.forget(params)  # whatever an earlier decision replayed of this trial
        try:
            for step, score, elapsed in points[:-1]:
                searcher.report(params, float(elapsed), float(score) * sign, steps=_steps(step), stoppable=False)
            step, score, elapsed = points[-1]
            stop = searcher.report(params, float(elapsed), float(score) * sign, steps=_steps(step))
        finally:
            searcher.forget(params)
        if not stop:
            return StopDecision(False, "the searcher gives it a chance")
        settings = spec.settings
        return StopDecision(True, f"score {score:.4g} after {elapsed:.0f} s: the {sweep.searcher} searcher gives it "
                                  f"under {settings.early_stop_probability:g} probability of improving the front "
                                  f"at its planned cost")

    def kept_history(self, sweep_id: int, version: HistoryVersion) -> Evidence | None:
        """The history the sweep's kept searcher was rebuilt from, if it is still at `version`
        (`sweepd.store.history.history_version`): the caller then needs not read it again."""
        kept = self._rebuilt.get(sweep_id)
        return kept.history if kept is not None and kept.history.version == version else None

    def _searcher(self, sweep: SweepInfo, spec: SweepSpec, history: Evidence) -> _Rebuilt:
        """The sweep's searcher fed its finished outcomes (no pending configs: a decision must not
        depend on them), rebuilt only when the history's version changed."""
        kept = self._rebuilt.pop(sweep.id, None)
        if kept is None or kept.history.version != history.version:
            kept = _Rebuilt(history, rebuild(sweep, spec, history, pending=False), _sign(spec))
        self._rebuilt[sweep.id] = kept  # most recent last
        while len(self._rebuilt) > CACHED_SWEEPS:
            del self._rebuilt[next(iter(self._rebuilt))]
        return kept


def _sign(spec: SweepSpec) -> float:
    return 1.0 if spec.settings.direction == "maximize" else -1.0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _steps(value: Any) -> float | None:
    return float(value) if _finite(value) and value > 0 else None
