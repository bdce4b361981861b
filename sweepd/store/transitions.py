"""A trial's transitions once it exists: start, heartbeat, finish, fail, reap, retry, and the
pause a broken setup causes. The only code besides leasing that changes a trial's status.

Each transition is one guarded UPDATE: a write about a leased trial names `id AND lock_token AND
status IN (leased, running)`, so zero rows updated means the lease was lost (reaped, re-queued,
leased again) and the write is dropped. Where the new values depend on the row (fail, reap: the
attempt count decides between re-queue and give up), the row is first read under its lock in the
same transaction. The hot ones (start, heartbeat, finish) are single prebuilt statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Float, Row, bindparam, func, select, update

from sweepd.store.audit import record_event
from sweepd.store.budget import finish_sweep_if_spent, max_charge
from sweepd.store.dialect import clock, dialect, epoch_now
from sweepd.store.leasing import Lease
from sweepd.store.models import (
    ABANDONED,
    ACTIVE,
    FAILED,
    HYPERPARAMETER,
    INFRA,
    LEASED,
    QUEUED,
    RUNNING,
    SETUP,
    SUCCEEDED,
    SWEEP_FINISHED,
    SWEEP_PAUSED,
    SWEEP_RUNNING,
    Sweep,
    Trial,
    finite,
    literal_status,
)
from sweepd.store.sweeps import SweepInfo, find_sweep, sweep_constants

MAX_ATTEMPTS = 2                 # an infrastructure failure re-queues a trial once, then it is abandoned
SETUP_CHECK_TRIALS = 3           # the first N trials of a sweep all failing fast ...
SETUP_FAST_SECONDS = 20.0        # ... each within this many seconds: a broken setup, not bad luck

# The hot statements are built once with bind parameters: constructing a SQLAlchemy statement
# per call cost more client CPU than the database spent running it (benchmarks/queue_throughput.py).
# Bind names carry a `b_` prefix because SQLAlchemy reserves column names in SET clauses.
_GUARD = (Trial.id == bindparam("b_trial_id"), Trial.lock_token == bindparam("b_token"), Trial.status.in_(ACTIVE))
_START = update(Trial).where(*_GUARD).values(status=RUNNING, started_at=epoch_now())
_BEAT = update(Trial).where(*_GUARD).values(lock_expires_at=epoch_now() + bindparam("b_lease_seconds", type_=Float),
                                            heartbeat_at=epoch_now())
_BEAT_METRICS = _BEAT.values(metrics=bindparam("b_metrics"))
# A success clears the failure of an earlier attempt: that history is in the events table.
_FINISH = update(Trial).where(*_GUARD).values(
    status=SUCCEEDED, score=bindparam("b_score"), cost=bindparam("b_cost"), score_stderr=bindparam("b_stderr"),
    spent=Trial.spent + bindparam("b_spent", type_=Float), truncated=bindparam("b_truncated"),
    stopped=bindparam("b_stopped"), steps=bindparam("b_steps", type_=Float), metrics=bindparam("b_metrics"),
    finished_at=epoch_now(), lock_expires_at=None, failure_reason=None, failure_category=None)
# What ending an attempt needs to know of its row (read under the row's lock).
_ATTEMPT = (Trial.id, Trial.sweep_id, Trial.number, Trial.attempts, Trial.box, Trial.lock_owner, Trial.lock_token,
            Trial.started_at, Trial.heartbeat_at)
_HELD = [literal_status(LEASED), literal_status(RUNNING)]


def _guard(lease: Lease) -> dict[str, Any]:
    return {"b_trial_id": lease.trial_id, "b_token": lease.token}


def start_trial(engine: Engine, lease: Lease) -> bool:
    """leased -> running, when the worker process is up. False: the lease is lost."""
    with dialect(engine).statements(engine) as statements:
        return statements.conn.execute(_START, _guard(lease)).rowcount == 1


def heartbeat_trial(engine: Engine, lease: Lease, lease_seconds: float,
                    metrics: dict[str, Any] | None = None) -> bool:
    """Extend the lease (and store live metrics). False: the lease is lost, stop the worker.

    A lease past its expiry that no reaper has taken yet is still this holder's: the token is
    the only authority, so an agent back from a database outage re-attaches to its trials.
    """
    params = {**_guard(lease), "b_lease_seconds": lease_seconds}
    with dialect(engine).statements(engine) as statements:
        if metrics is None:
            return statements.conn.execute(_BEAT, params).rowcount == 1
        return statements.conn.execute(_BEAT_METRICS, {**params, "b_metrics": metrics}).rowcount == 1


def finish_trial(engine: Engine, lease: Lease, score: float, cost: float, *, score_stderr: float | None = None,
                 truncated: bool = False, metrics: dict[str, Any] | None = None, steps: float | None = None,
                 stop_reason: str | None = None, actor: str = "agent") -> bool:
    """running -> succeeded with its result. False: the lease was lost and the result dropped.

    `steps`: the steps it trained (None: the trainer did not say). `stop_reason`: why it was
    stopped early on the searcher's word (None: it was not); such a trial is recorded stopped and
    truncated, counts in the budget at what it spent, and leaves a `trial_stopped_early` event.
    """
    stopped = stop_reason is not None
    with dialect(engine).statements(engine) as statements:
        done = statements.conn.execute(_FINISH, {
            **_guard(lease), "b_score": score, "b_cost": cost, "b_spent": finite(cost) or 0.0,
            "b_stderr": finite(score_stderr), "b_truncated": truncated or stopped, "b_stopped": stopped,
            "b_steps": finite(steps), "b_metrics": metrics or {}}).rowcount == 1
        if done and (stopped or lease.max_trials or lease.max_total_cost):
            # Where the result committed by itself (PostgreSQL) this runs after it: of two last
            # trials finishing at once, the second to take the sweep's lock sees both results.
            with statements.transaction() as tx:
                if stopped:
                    trained = f", {steps:.0f} steps" if finite(steps) is not None else ""
                    record_event(tx, clock(tx), actor, "trial_stopped_early",
                                 f"trial {lease.number} at {cost:.1f} s{trained}: {stop_reason}",
                                 sweep_id=lease.sweep_id, trial_id=lease.trial_id)
                if lease.max_trials or lease.max_total_cost:  # a sweep without a budget never finishes
                    finish_sweep_if_spent(tx, lease.sweep_id, actor)
        return done


def fail_trial(engine: Engine, lease: Lease, reason: str, category: str, *, cost: float | None = None,
               metrics: dict[str, Any] | None = None) -> str | None:
    """A trial ended without a result. Infrastructure causes re-queue it once; setup errors pause
    the sweep, and so do the sweep's first SETUP_CHECK_TRIALS trials all failing within
    SETUP_FAST_SECONDS. Returns the trial's new status, or None when the lease was already lost."""
    if category not in (INFRA, HYPERPARAMETER, SETUP):
        raise ValueError(f"unknown failure category '{category}'")
    with engine.begin() as conn:
        row = conn.execute(select(*_ATTEMPT).where(Trial.id == lease.trial_id, Trial.lock_token == lease.token,
                                                   Trial.status.in_(ACTIVE)).with_for_update()).first()
        if row is None:
            return None
        now, actor = clock(conn), row.lock_owner or "agent"
        status = _end_attempt(conn, row, reason, category, now, actor, cost=cost, metrics=metrics)
        if category == SETUP:
            _pause(conn, row.sweep_id, f"trial {row.number}: {reason}", now, actor)
        elif category == HYPERPARAMETER and row.number <= SETUP_CHECK_TRIALS:
            _pause_if_setup_broken(conn, row.sweep_id, now, actor)
        finish_sweep_if_spent(conn, row.sweep_id, actor)
        return status


def reap_expired(engine: Engine, actor: str) -> list[int]:
    """Take back leases whose holder stopped heartbeating: re-queue once, then abandon."""
    with engine.begin() as conn:
        now = clock(conn)
        rows = conn.execute(select(*_ATTEMPT).where(Trial.status.in_(_HELD), Trial.lock_expires_at < now)
                            .with_for_update(skip_locked=True)).all()
        for row in rows:
            # Never more than an attempt is charged: its holder kills the worker at that point.
            cost = min(_known_cost(row), max_charge(sweep_constants(conn, row.sweep_id).cost_cap))
            _end_attempt(conn, row, f"lease expired (holder {row.lock_owner} on {row.box} stopped heartbeating)",
                         INFRA, now, actor, cost=cost)
        for sweep_id in {r.sweep_id for r in rows}:
            finish_sweep_if_spent(conn, sweep_id, actor)
        return [r.id for r in rows]


def _end_attempt(conn: Connection, row: Row[Any], reason: str, category: str, now: float, actor: str, *,
                 cost: float | None = None, metrics: dict[str, Any] | None = None) -> str:
    """The guarded UPDATE that ends a held attempt without a result: re-queued (an infrastructure
    cause, attempts left) or failed/abandoned; its cost counts against the budget either way."""
    retry = category == INFRA and row.attempts < MAX_ATTEMPTS
    values: dict[str, Any] = {
        "failure_reason": reason, "failure_category": category, "lock_token": None, "lock_expires_at": None,
        "spent": func.coalesce(Trial.spent, 0.0) + (finite(cost) or 0.0)}  # a re-queued attempt spent budget too
    if metrics is not None:
        values["metrics"] = metrics
    if retry:
        status = QUEUED
        values.update(status=status, box=None, slot=None, lock_owner=None, started_at=None)
    else:
        status = ABANDONED if category == INFRA else FAILED
        values.update(status=status, cost=cost, finished_at=now)
    conn.execute(update(Trial).where(Trial.id == row.id, Trial.lock_token == row.lock_token,
                                     Trial.status.in_(ACTIVE)).values(**values))
    # The event names the box the attempt ran on; a re-queue clears it from the row.
    record_event(conn, now, actor, "trial_requeued" if retry else f"trial_{status}", reason,
                 box=row.box, sweep_id=row.sweep_id, trial_id=row.id)
    return status


def _known_cost(row: Row[Any]) -> float:
    """What a reaped attempt is known to have spent: from its start to its holder's last heartbeat."""
    if row.started_at is None or row.heartbeat_at is None:
        return 0.0
    return max(0.0, row.heartbeat_at - row.started_at)


def _pause(conn: Connection, sweep_id: int, reason: str, now: float, actor: str) -> None:
    """running -> paused, with the reason; a sweep not running is left as it is."""
    paused = conn.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SWEEP_RUNNING)
                          .values(status=SWEEP_PAUSED, status_reason=reason)).rowcount == 1
    if paused:
        record_event(conn, now, actor, "sweep_paused", reason, sweep_id=sweep_id)


def _pause_if_setup_broken(conn: Connection, sweep_id: int, now: float, actor: str) -> None:
    """The first trials all failing within seconds says the setup is broken (a wrong path, a
    missing dependency that only bites at run time), not that those configs are bad: pause the
    sweep, and keep those failures away from the searcher (re-labelled setup failures)."""
    first = conn.execute(select(Trial.id, Trial.status, Trial.cost, Trial.failure_reason)
                         .where(Trial.sweep_id == sweep_id).order_by(Trial.number).limit(SETUP_CHECK_TRIALS)).all()
    if len(first) < SETUP_CHECK_TRIALS or not all(
            t.status == FAILED and t.cost is not None and t.cost < SETUP_FAST_SECONDS for t in first):
        return
    conn.execute(update(Trial).where(Trial.id.in_([t.id for t in first]), Trial.status == FAILED)
                 .values(failure_category=SETUP))
    last = (first[-1].failure_reason or "").splitlines()[0][:200] if first[-1].failure_reason else ""
    _pause(conn, sweep_id, f"broken setup? the first {SETUP_CHECK_TRIALS} trials all failed within "
                           f"{SETUP_FAST_SECONDS:g} s (last: {last}); fix it, then `sweepd retry SWEEP --failed`",
           now, actor)


@dataclass(frozen=True)
class Retried:
    """What `retry_sweep` did."""

    sweep: SweepInfo
    requeued: tuple[int, ...]   # trial numbers
    resumed: bool


def retry_sweep(engine: Engine, ref: str | int, actor: str, *, failed: bool = False) -> Retried:
    """Re-queue a sweep's abandoned trials (with `failed`, its failed ones too) as fresh attempts,
    and set the sweep running again if it was paused or finished (never if stopped: that is final)."""
    statuses = (ABANDONED, FAILED) if failed else (ABANDONED,)
    sweep_id = find_sweep(engine, ref).id
    with engine.begin() as conn:
        status = conn.scalar(select(Sweep.status).where(Sweep.id == sweep_id).with_for_update())
        now = clock(conn)
        # A fresh attempt: its last result and failure go (the events keep them); `spent` stays,
        # the budget has paid for those attempts.
        numbers = tuple(sorted(conn.scalars(
            update(Trial).where(Trial.sweep_id == sweep_id, Trial.status.in_(statuses))
            .values(status=QUEUED, attempts=0, cost=None, score=None, finished_at=None, started_at=None,
                    score_stderr=None, truncated=False, failure_reason=None, failure_category=None, box=None,
                    slot=None, lock_owner=None)
            .returning(Trial.number)).all()))
        resumed = status in (SWEEP_PAUSED, SWEEP_FINISHED)  # a stopped sweep stays stopped: stop is final
        if resumed:
            conn.execute(update(Sweep).where(Sweep.id == sweep_id)
                         .values(status=SWEEP_RUNNING, status_reason=None, finished_at=None))
        record_event(conn, now, actor, "sweep_retried",
                     f"re-queued {len(numbers)} trial(s)" + (f" {list(numbers)}" if numbers else "")
                     + ("; resumed" if resumed else ""), sweep_id=sweep_id)
        sweep = SweepInfo.of(conn.execute(select(Sweep.__table__).where(Sweep.id == sweep_id)).one())
        return Retried(sweep=sweep, requeued=numbers, resumed=resumed)
