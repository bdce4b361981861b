"""Trials given rather than proposed: configs queued by hand or by a baseline (leased before any
new suggestion), and results obtained elsewhere imported as finished trials.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sweepd.store.audit import record_event
from sweepd.store.budget import finish_sweep_if_spent
from sweepd.store.dialect import clock
from sweepd.store.models import ABANDONED, FAILED, HYPERPARAMETER, QUEUED, SUCCEEDED, InvalidRequest, Trial, finite
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import lock_sweep, next_number, trial_seed


def enqueue_trial(engine: Engine, sweep_id: int, params: dict[str, Any], kind: str = "user",
                  actor: str = "") -> TrialInfo:
    """Queue a given config (baselines, user requests): leased before any new suggestion."""
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = lock_sweep(session, sweep_id)
        number = next_number(session, sweep_id)
        row = Trial(sweep_id=sweep_id, number=number, kind=kind, params=dict(params),
                    seed=trial_seed(sweep.seed, number), status=QUEUED, attempts=0, metrics={}, created_at=now)
        session.add(row)
        session.flush()
        record_event(session, now, actor or sweep.owner, "trial_enqueued", kind, sweep_id=sweep_id, trial_id=row.id)
        return TrialInfo.of(row)


def enqueue_trials(engine: Engine, sweep_id: int, configs: Iterable[dict[str, Any]], kind: str = "user",
                   actor: str = "", *, within_max_trials: bool = False) -> int:
    """Queue many given configs in one transaction (one INSERT); returns how many. With
    `within_max_trials` (what `sweepd enqueue` asks), configs past the sweep's max_trials are refused
    (InvalidRequest, nothing queued): queued trials are leased whatever their number, so the count
    is checked here, under the sweep's lock."""
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = lock_sweep(session, sweep_id)
        first = next_number(session, sweep_id)
        rows = [{"sweep_id": sweep_id, "number": number, "kind": kind, "params": dict(params),
                 "seed": trial_seed(sweep.seed, number), "status": QUEUED, "attempts": 0, "metrics": {},
                 "truncated": False, "created_at": now} for number, params in enumerate(configs, start=first)]
        if within_max_trials and sweep.max_trials and first - 1 + len(rows) > sweep.max_trials:
            raise InvalidRequest(f"sweep {sweep.name} has {first - 1} of its {sweep.max_trials} trials: "
                                 f"{len(rows)} more do not fit (sweepd extend {sweep.name} --trials "
                                 f"{first - 1 + len(rows) - sweep.max_trials} first)")
        if rows:
            session.execute(Trial.__table__.insert(), rows)
            record_event(session, now, actor or sweep.owner, "trials_enqueued", f"{len(rows)} {kind} trials",
                         sweep_id=sweep_id)
        return len(rows)


@dataclass(frozen=True)
class FinishedTrial:
    """A result obtained outside sweepd's agents (an earlier sweep, a benchmark), to import as-is."""

    params: dict[str, Any]
    score: float | None
    cost: float
    status: str = SUCCEEDED          # succeeded | failed | abandoned
    kind: str = "user"
    score_stderr: float | None = None
    predicted_cost: float | None = None
    metrics: dict[str, Any] | None = None
    failure_reason: str | None = None
    truncated: bool = False          # ended before its planned training (at the cap, or stopped)
    stopped: bool = False            # stopped early on a searcher's word
    steps: float | None = None       # agent steps trained


def import_trials(engine: Engine, sweep_id: int, results: Iterable[FinishedTrial], actor: str = "", *,
                  beside_budget: bool = False) -> int:
    """Append finished trials to a sweep in one transaction (no lease: they never run); returns the count.

    With `beside_budget` (a warm start) they leave the sweep's budget for its own trials: max_trials
    and max_total_cost, where set, are raised by the trials imported and the cost they spent.

    One bulk INSERT rather than a lease and finish per trial, so that 10,000 imported results take
    seconds (the dashboard benchmark builds its sweep this way).
    """
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = lock_sweep(session, sweep_id)
        first = next_number(session, sweep_id)
        rows = []
        for number, r in enumerate(results, start=first):
            if r.status not in (SUCCEEDED, FAILED, ABANDONED):
                raise ValueError(f"an imported trial must be finished, not '{r.status}'")
            rows.append({"sweep_id": sweep_id, "number": number, "kind": r.kind, "params": dict(r.params),
                         "seed": trial_seed(sweep.seed, number), "status": r.status, "attempts": 1,
                         "score": finite(r.score), "score_stderr": finite(r.score_stderr), "cost": r.cost,
                         "spent": finite(r.cost) or 0.0,
                         "predicted_cost": finite(r.predicted_cost), "metrics": r.metrics or {},
                         "failure_reason": r.failure_reason,
                         "failure_category": HYPERPARAMETER if r.status == FAILED else None,
                         "truncated": r.truncated or r.stopped, "stopped": r.stopped, "steps": finite(r.steps),
                         "created_at": now, "started_at": now, "finished_at": now})
        if rows:
            session.execute(Trial.__table__.insert(), rows)
            record_event(session, now, actor or sweep.owner, "trials_imported", f"{len(rows)} trials"
                         + (" beside the budget" if beside_budget else ""), sweep_id=sweep_id)
            if beside_budget:
                if sweep.max_trials:
                    sweep.max_trials += len(rows)
                if sweep.max_total_cost:
                    sweep.max_total_cost += sum(row["spent"] for row in rows)
            session.flush()
            # An import that spends the budget (max_trials) finishes the sweep, as a last result would.
            finish_sweep_if_spent(session.connection(), sweep_id, actor or sweep.owner)
        return len(rows)
