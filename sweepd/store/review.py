"""Read-only queries for reviewing sweeps: summaries, a sweep's trials (with or without their
curves), one trial, and a cheap fingerprint of a sweep's changes. `sweepd status`, `pareto`, the
dashboard and the wandb tracker read through these.

Every function only SELECTs and runs one short transaction, so a read-only engine
(`make_engine(url, read_only=True)`) serves them and a reader never holds up an agent: in SQLite's
WAL mode readers never block the writer, on PostgreSQL plain SELECTs take no row locks.
Learning curves (trial.metrics) are the bulk of the data, so list queries leave them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from sweepd.store.models import (
    ABANDONED,
    FAILED,
    LEASED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Sweep,
    Trial,
    finite,
)
from sweepd.store.sweeps import NotFound, find_sweep


@dataclass(frozen=True)
class TrialInfo:
    id: int
    sweep_id: int
    number: int
    kind: str
    params: dict[str, Any]
    seed: int
    status: str
    box: str | None
    slot: int | None
    lock_owner: str | None
    lock_token: str | None
    lock_expires_at: float | None
    heartbeat_at: float | None
    attempts: int
    predicted_score: float | None
    predicted_cost: float | None
    score: float | None
    score_stderr: float | None
    cost: float | None
    truncated: bool
    metrics: dict[str, Any]
    failure_reason: str | None
    failure_category: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    spent: float = 0.0    # every attempt's cost added up: what the sweep's budget counts
    stopped: bool = False  # ended early on the searcher's word (then also truncated)
    steps: float | None = None  # agent steps trained (None: the trainer did not say)

    @classmethod
    def of(cls, row: Trial) -> TrialInfo:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})



_LIGHT_COLUMNS = [f.name for f in fields(TrialInfo) if f.name != "metrics"]


@dataclass(frozen=True)
class SweepSummary:
    """One sweep as the sweeps list shows it: the same numbers as `sweepd status`."""

    id: int
    name: str
    env: str
    owner: str
    status: str
    reason: str | None
    searcher: str
    trials: int
    max_trials: int
    succeeded: int
    failed: int          # failed + abandoned
    stopped: int         # succeeded, stopped early by the searcher
    cut: int             # succeeded, truncated at the cost cap (not stopped)
    running: int         # leased + running
    queued: int
    best_score: float | None
    cost_spent: float    # every attempt's cost added up (trials.spent), re-runs included
    created_at: float
    finished_at: float | None


def sweep_summaries(engine: Engine, refs: Iterable[str | int] | None = None) -> list[SweepSummary]:
    """Every sweep (or the given ones), newest first, counted in one GROUP BY over trials."""
    query = select(Sweep).order_by(Sweep.id.desc())
    if refs is not None:
        query = query.where(Sweep.id.in_([find_sweep(engine, ref).id for ref in refs]))
    with Session(engine) as session:
        sweeps = session.scalars(query).all()
        stats = session.execute(
            select(Trial.sweep_id, Trial.status, func.count(), func.coalesce(func.sum(Trial.spent), 0.0),
                   func.max(Trial.score), func.min(Trial.score),
                   func.sum(case((Trial.stopped, 1), else_=0)),
                   func.sum(case((Trial.truncated & ~Trial.stopped, 1), else_=0)))
            .where(Trial.sweep_id.in_([s.id for s in sweeps]))
            .group_by(Trial.sweep_id, Trial.status)).all()
    by_sweep: dict[int, dict[str, _Stats]] = {}
    for sweep_id, status, count, spent, high, low, stopped, cut in stats:
        by_sweep.setdefault(sweep_id, {})[status] = _Stats(int(count), float(spent), high, low, int(stopped or 0),
                                                           int(cut or 0))
    return [_summary(s, by_sweep.get(s.id, {})) for s in sweeps]


@dataclass(frozen=True)
class _Stats:
    """One (sweep, status) group of trials, as the summaries' GROUP BY counts it."""

    count: int
    spent: float
    high: float | None
    low: float | None
    stopped: int
    cut: int


def _summary(sweep: Sweep, stats: dict[str, _Stats]) -> SweepSummary:
    def count(*statuses: str) -> int:
        return sum(stats[s].count for s in statuses if s in stats)

    best = None
    done = stats.get(SUCCEEDED)
    if done is not None:
        best = done.high if sweep.spec["settings"].get("direction", "maximize") == "maximize" else done.low
    return SweepSummary(
        id=sweep.id, name=sweep.name, env=sweep.env, owner=sweep.owner, status=sweep.status,
        reason=sweep.status_reason, searcher=sweep.searcher, trials=sum(s.count for s in stats.values()),
        max_trials=sweep.max_trials, succeeded=count(SUCCEEDED), failed=count(FAILED, ABANDONED),
        stopped=done.stopped if done else 0, cut=done.cut if done else 0,
        running=count(LEASED, RUNNING), queued=count(QUEUED), best_score=finite(best),
        cost_spent=sum(s.spent for s in stats.values()), created_at=sweep.created_at, finished_at=sweep.finished_at)


def list_trials(engine: Engine, sweep_id: int) -> list[TrialInfo]:
    """A sweep's trials in number order."""
    with Session(engine) as session:
        rows = session.scalars(select(Trial).where(Trial.sweep_id == sweep_id).order_by(Trial.number))
        return [TrialInfo.of(r) for r in rows]


def trial_table(engine: Engine, sweep_id: int) -> list[TrialInfo]:
    """A sweep's trials in number order, without their metrics (curves): `metrics` is {}.

    Plain column tuples, not ORM objects: a 10,000-trial sweep loads in a fraction of a second.
    """
    columns = [getattr(Trial, name) for name in _LIGHT_COLUMNS]
    with Session(engine) as session:
        rows = session.execute(select(*columns).where(Trial.sweep_id == sweep_id).order_by(Trial.number)).all()
    return [TrialInfo(metrics={}, **dict(zip(_LIGHT_COLUMNS, row, strict=True))) for row in rows]


def get_trial(engine: Engine, sweep_id: int, number: int) -> TrialInfo:
    """One trial with its metrics (learning curve, log tail)."""
    with Session(engine) as session:
        row = session.scalar(select(Trial).where(Trial.sweep_id == sweep_id, Trial.number == number))
        if row is None:
            raise NotFound(f"sweep {sweep_id} has no trial {number}")
        return TrialInfo.of(row)


def trials_by_id(engine: Engine, trial_ids: Iterable[int]) -> list[TrialInfo]:
    """Trials with their metrics, by primary key, in id order (the tracker's batch)."""
    ids = sorted(set(trial_ids))
    if not ids:
        return []
    with Session(engine) as session:
        return [TrialInfo.of(r) for r in session.scalars(select(Trial).where(Trial.id.in_(ids)).order_by(Trial.id))]


def sweep_version(engine: Engine, sweep_id: int) -> list[Any]:
    """A cheap fingerprint of a sweep's trials: changes when a trial is added, starts, beats or ends.

    The dashboard polls this and refetches the trial table only when it changes.
    """
    with Session(engine) as session:
        row = session.execute(select(func.count(), func.count(Trial.started_at), func.count(Trial.finished_at),
                                     func.max(Trial.heartbeat_at), func.max(Trial.finished_at))
                              .where(Trial.sweep_id == sweep_id)).one()
        status = session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
    return [status, *row]
