"""The searcher as the store sees it: what a sweep's searcher is rebuilt from (`Evidence`, read
from the trial table in trial order) and what it answers (`Proposal`).

The store keeps no searcher state: after a crash any agent rebuilds the searcher from this and,
since (seed, outcomes in order) determine the next suggestion, continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sweepd.store.models import FAILED, HYPERPARAMETER, OPEN, SUCCEEDED, Trial
from sweepd.store.sweeps import SweepInfo


@dataclass(frozen=True)
class Outcome:
    """A finished trial as the searcher sees it (scores as stored: the agent applies direction)."""

    params: dict[str, Any]
    score: float
    cost: float
    failed: bool


@dataclass(frozen=True)
class Evidence:
    """A sweep's outcomes in trial order and the params of its open trials (pending points)."""

    observations: tuple[Outcome, ...]
    pending: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Proposal:
    """What the searcher wants run next."""

    params: dict[str, Any]
    kind: str
    predicted_score: float | None = None
    predicted_cost: float | None = None


# The searcher, as leasing calls it: None when it has nothing to propose.
Propose = Callable[[SweepInfo, Evidence], Proposal | None]


def sweep_history(engine: Engine, sweep_id: int) -> Evidence:
    """What a sweep's searcher is rebuilt from."""
    with Session(engine) as session:
        return read_history(session, sweep_id)


def read_history(session: Session, sweep_id: int) -> Evidence:
    """`sweep_history` in the caller's transaction (leasing reads it under the sweep's lock)."""
    rows = session.execute(
        select(Trial.params, Trial.status, Trial.score, Trial.cost, Trial.failure_category)
        .where(Trial.sweep_id == sweep_id).order_by(Trial.number)).all()
    observations, pending = [], []
    for params, status, score, cost, category in rows:
        if status == SUCCEEDED and score is not None and math.isfinite(score):
            observations.append(Outcome(params, float(score), float(cost or 0.0), False))
        elif status == FAILED and category == HYPERPARAMETER:
            observations.append(Outcome(params, math.nan, float(cost or 0.0), True))
        elif status in OPEN:
            pending.append(params)
    return Evidence(tuple(observations), tuple(pending))
