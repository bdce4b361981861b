"""What a sweep runs next: its searcher rebuilt from the store's history and asked for a config.

The searcher holds no state the database cannot rebuild, so any agent on any box gets the same
answer for the same history. The store calls `propose` under the sweep's lock while it leases a
slot (sweepd.store leasing); the agent only passes it along.
"""

from __future__ import annotations

from typing import Any

from sweepd.search import Observation, create_searcher
from sweepd.spec import SweepSpec
from sweepd.store.history import Evidence, Proposal
from sweepd.store.sweeps import SweepInfo


class ProposalFailed(Exception):
    """The sweep's searcher (or its stored spec) raised while proposing a trial: that sweep is
    broken, not the agent, which pauses it and keeps serving the others."""

    def __init__(self, sweep: SweepInfo, error: Exception) -> None:
        self.sweep, self.error = sweep, error
        super().__init__(f"sweep {sweep.name}: {type(error).__name__}: {error}")


def propose_next(sweep: SweepInfo, history: Evidence) -> Proposal:
    """Rebuild the sweep's searcher from its history and ask it for the next config;
    minimized metrics are negated so searchers always maximize."""
    spec = SweepSpec.from_json(sweep.spec)
    sign = 1.0 if spec.settings.direction == "maximize" else -1.0
    options: dict[str, Any] = {}
    if sweep.searcher == "carbs":
        options = {"num_random_samples": spec.settings.num_random_samples,
                   "resample_frequency": spec.settings.resample_frequency}
    searcher = create_searcher(sweep.searcher, list(spec.params), seed=sweep.seed,
                               max_suggestion_cost=sweep.max_suggestion_cost, **options)
    for seen in history.observations:
        score = seen.score * sign if not seen.failed else seen.score
        searcher.observe(Observation(params=seen.params, score=score, cost=seen.cost, failed=seen.failed))
    for params in history.pending:
        searcher.add_pending(params)
    suggestion = searcher.suggest()
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
