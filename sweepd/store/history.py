"""The searcher as the store sees it: what a sweep's searcher is rebuilt from (`Evidence`, read
from the trial table in trial order) and what it answers (`Proposal`).

The store keeps no searcher state: after a crash any agent rebuilds the searcher from this and,
since (seed, outcomes in order) determine the next suggestion, continues exactly.

A finished trial's learning curve comes along, downsampled: the worker keeps up to 400 points
(`metrics["curve"]`, rows `[step, score, elapsed]`), the searcher uses a few per run, spaced by
halvings of the run's length (sweepd/search/carbs.py), so the store hands it the points nearest
1/2, 1/4, ... 1/2**CURVE_SAMPLE of the run's end (in steps when the trainer reports them, else in
seconds). Only the curve is read out of the metrics JSON (`metrics["curve"]`, extracted in SQL),
never the rest (log tail, timeline, result fields). benchmarks/early_stopping_latency.py measures
the read at 200 trials x 20 points.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from sweepd.store.models import FAILED, HYPERPARAMETER, OPEN, SUCCEEDED, Trial
from sweepd.store.sweeps import SweepInfo

# Curve points per finished trial handed to the searcher: the ones nearest 1/2, 1/4, ... of its run.
CURVE_SAMPLE = 8

# A curve point as stored: (step, score, elapsed seconds since the worker started).
CurveRow = tuple[float | None, float, float]


@dataclass(frozen=True)
class Outcome:
    """A finished trial as the searcher sees it (scores as stored: the agent applies direction).

    `curve`: its learning curve before the end, downsampled (`sample_curve`), as `CurveRow`s in
    order. `truncated`: it ended before its planned training (cut at the cost cap, or `stopped`
    early on the searcher's word); `steps`: the steps it trained (None: the trainer did not say).
    """

    params: dict[str, Any]
    score: float
    cost: float
    failed: bool
    curve: tuple[CurveRow, ...] = ()
    truncated: bool = False
    stopped: bool = False
    steps: float | None = None


# What identifies a history's outcomes: (how many, the sum of their trial ids, the latest finish
# time). It changes whenever an outcome is added or replaced (`sweepd retry`), so a searcher rebuilt
# from the outcomes can be kept until it does (sweepd/advisor.py's stop decisions); `history_version`
# reads it without the outcomes themselves.
HistoryVersion = tuple[int, int, float]


@dataclass(frozen=True)
class Evidence:
    """A sweep's outcomes in trial order and the params of its open trials (pending points)."""

    observations: tuple[Outcome, ...]
    pending: tuple[dict[str, Any], ...]
    version: HistoryVersion = (0, 0, 0.0)   # of the observations (see HistoryVersion)


@dataclass(frozen=True)
class Proposal:
    """What the searcher wants run next."""

    params: dict[str, Any]
    kind: str
    predicted_score: float | None = None
    predicted_cost: float | None = None


# The searcher, as leasing calls it: None when it has nothing to propose.
Propose = Callable[[SweepInfo, Evidence], Proposal | None]


# The trials a searcher observes: results (a finite score; NaN is stored as NULL), and failures the
# searched values caused.
_OBSERVED = or_(and_(Trial.status == SUCCEEDED, Trial.score.is_not(None)),
                and_(Trial.status == FAILED, Trial.failure_category == HYPERPARAMETER))


def history_version(engine: Engine, sweep_id: int) -> HistoryVersion:
    """The version `sweep_history` would report now, from one aggregate query (no params, no curves):
    what a progress point pays when the searcher kept for stop decisions is still current."""
    with Session(engine) as session:
        count, ids, last = session.execute(
            select(func.count(), func.coalesce(func.sum(Trial.id), 0), func.coalesce(func.max(Trial.finished_at), 0.0))
            .where(Trial.sweep_id == sweep_id, _OBSERVED)).one()
    return int(count), int(ids), float(last)


def sweep_history(engine: Engine, sweep_id: int) -> Evidence:
    """What a sweep's searcher is rebuilt from."""
    with Session(engine) as session:
        return read_history(session, sweep_id)


def read_history(session: Session, sweep_id: int) -> Evidence:
    """`sweep_history` in the caller's transaction (leasing reads it under the sweep's lock)."""
    rows = session.execute(
        select(Trial.id, Trial.params, Trial.status, Trial.score, Trial.cost, Trial.failure_category,
               Trial.truncated, Trial.stopped, Trial.steps, Trial.finished_at, Trial.metrics["curve"])
        .where(Trial.sweep_id == sweep_id).order_by(Trial.number)).all()
    observations, pending = [], []
    ids, last = 0, 0.0
    for trial_id, params, status, score, cost, category, truncated, stopped, steps, finished, curve in rows:
        if status == SUCCEEDED and score is not None and math.isfinite(score):
            cost = float(cost or 0.0)
            observations.append(Outcome(params, float(score), cost, False, sample_curve(curve, cost, steps),
                                        bool(truncated or stopped), bool(stopped), steps))
        elif status == FAILED and category == HYPERPARAMETER:
            observations.append(Outcome(params, math.nan, float(cost or 0.0), True))
        elif status in OPEN:
            pending.append(params)
            continue
        else:
            continue
        ids, last = ids + int(trial_id), max(last, float(finished or 0.0))
    return Evidence(tuple(observations), tuple(pending), (len(observations), ids, last))


def sample_curve(rows: Any, cost: float, steps: float | None = None, n: int = CURVE_SAMPLE) -> tuple[CurveRow, ...]:
    """The stored curve points (`[step, score, elapsed]` rows) nearest 1/2, 1/4, ... 1/2**n of the run,
    in order; points at or past the run's end (the result is the end) and malformed rows are dropped.

    Positions are steps when every kept row has one and `steps` (the steps trained) is known, else
    elapsed seconds against the run's `cost`.
    """
    points = _curve_rows(rows, cost)
    if not points:
        return ()
    by_step = steps is not None and steps > 0 and all(p[0] is not None and p[0] > 0 for p in points)
    order = sorted(range(len(points)), key=lambda j: points[j][0] if by_step else points[j][2])
    logs = [math.log(points[j][0] if by_step else points[j][2]) for j in order]  # type: ignore[arg-type]
    end = math.log(float(steps) if by_step and steps is not None else cost)
    chosen: set[int] = set()
    for k in range(1, n + 1):
        target = end - k * math.log(2.0)
        i = bisect.bisect_left(logs, target)
        near = min((c for c in (i - 1, i) if 0 <= c < len(logs)), key=lambda c: abs(logs[c] - target))
        chosen.add(order[near])
    return tuple(points[j] for j in sorted(chosen))


def _curve_rows(rows: Any, cost: float) -> list[CurveRow]:
    """Well-formed rows strictly inside the run (0 < elapsed < cost, finite score), as tuples."""
    if not isinstance(rows, list) or not cost > 0:
        return []
    points: list[CurveRow] = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 3:
            continue
        step, score, elapsed = row[0], row[1], row[2]
        if _is_number(score) and _is_number(elapsed) and 0 < elapsed < cost:
            points.append((float(step) if _is_number(step) else None, float(score), float(elapsed)))
    return points


def _is_number(value: Any) -> bool:
    """A finite int or float (JSON's numbers; not bool)."""
    return type(value) in (int, float) and math.isfinite(value)
