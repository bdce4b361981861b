"""The queue: sweeps, trials and their leases. The only code that changes a trial's status.

Every transition is one small function named for it, run in one transaction, and every write
about a leased trial is guarded by `id AND lock_token AND status IN (leased, running)`: zero rows
updated means the lease was lost (reaped, re-queued, leased again) and the write is dropped.

Leasing holds the sweep's row lock (PostgreSQL `FOR UPDATE`; SQLite serializes writers with
BEGIN IMMEDIATE) while it picks a queued trial or asks the searcher for a new one, so that two
agents never get the same trial nor the same new config.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sweepd.store.db import epoch_now
from sweepd.store.models import (
    ABANDONED,
    ACTIVE,
    FAILED,
    HYPERPARAMETER,
    INFRA,
    LEASED,
    OPEN,
    QUEUED,
    RUNNING,
    SETUP,
    SUCCEEDED,
    SWEEP_FINISHED,
    SWEEP_PAUSED,
    SWEEP_RUNNING,
    SWEEP_STOPPED,
    Box,
    Event,
    Sweep,
    Trial,
)

MAX_ATTEMPTS = 2  # an infrastructure failure re-queues a trial once, then it is abandoned


class NotFound(LookupError):
    """No sweep or box by that name or id."""


@dataclass(frozen=True)
class Holder:
    """Who asks for work: the agent (lock owner), its box and slot, and the user it runs as."""

    agent: str
    box: str
    slot: int
    user: str


@dataclass(frozen=True)
class SweepInfo:
    id: int
    name: str
    env: str
    owner: str
    spec: dict[str, Any]
    status: str
    status_reason: str | None
    searcher: str
    seed: int
    max_suggestion_cost: float
    max_trials: int
    max_total_cost: float
    priority: int
    max_slots: int
    created_at: float
    finished_at: float | None


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


@dataclass(frozen=True)
class Lease:
    """A trial held by an agent until `expires_at` (DB clock); `token` fences every write."""

    trial_id: int
    token: str
    sweep_id: int
    sweep_name: str
    number: int
    kind: str
    params: dict[str, Any]
    seed: int
    attempt: int
    spec: dict[str, Any]
    expires_at: float


@dataclass(frozen=True)
class Observed:
    """A finished trial as the searcher sees it (scores as stored: the agent applies direction)."""

    params: dict[str, Any]
    score: float
    cost: float
    failed: bool


@dataclass(frozen=True)
class History:
    """A sweep's observations in trial order and the params of its open trials."""

    observations: tuple[Observed, ...]
    pending: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Proposal:
    """What the searcher wants run next."""

    params: dict[str, Any]
    kind: str
    predicted_score: float | None = None
    predicted_cost: float | None = None


Propose = Callable[[SweepInfo, History], Proposal | None]


def _sweep_info(row: Sweep) -> SweepInfo:
    return SweepInfo(**{f.name: getattr(row, f.name) for f in fields(SweepInfo)})


def _trial_info(row: Trial) -> TrialInfo:
    return TrialInfo(**{f.name: getattr(row, f.name) for f in fields(TrialInfo)})


def _now(session: Session) -> float:
    return float(session.scalar(select(epoch_now())))


def _event(session: Session, now: float, actor: str, kind: str, detail: str = "", *, box: str | None = None,
           sweep_id: int | None = None, trial_id: int | None = None) -> None:
    session.add(Event(at=now, actor=actor, kind=kind, box=box, sweep_id=sweep_id, trial_id=trial_id,
                      detail=detail or None))


def trial_seed(sweep_seed: int, number: int) -> int:
    """Each trial's training seed: distinct per trial, reproducible from the sweep's seed."""
    return (sweep_seed * 1_000_003 + number * 7_919 + 17) % (2**31 - 1)


# --- sweeps -----------------------------------------------------------------------------------

def create_sweep(engine: Engine, spec: dict[str, Any], owner: str, name: str | None = None) -> SweepInfo:
    """Write a new running sweep from a resolved spec (`SweepSpec.to_json()`); names are unique."""
    settings = spec["settings"]
    base = name or spec["name"]
    for attempt in range(100):
        with Session(engine) as session, session.begin():
            now = _now(session)
            if name is None:
                taken = session.scalars(select(Sweep.name).where(Sweep.name.like(f"{base}-%"))).all()
                numbers = [int(n.rsplit("-", 1)[1]) for n in taken if n.rsplit("-", 1)[1].isdigit()]
                candidate = f"{base}-{max(numbers, default=0) + 1 + attempt}"
            else:
                candidate = base
            row = Sweep(name=candidate, env=spec["env"], owner=owner, spec=spec, status=SWEEP_RUNNING,
                        searcher=settings["searcher"], seed=settings["seed"],
                        max_suggestion_cost=settings["max_suggestion_cost"], max_trials=settings["max_trials"],
                        max_total_cost=settings["max_total_cost"], priority=settings["priority"],
                        max_slots=settings["max_slots"], created_at=now)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                if name is not None:
                    raise ValueError(f"a sweep named '{name}' exists already") from None
                session.rollback()
                continue
            _event(session, now, owner, "sweep_created", spec.get("source", ""), sweep_id=row.id)
            return _sweep_info(row)
    raise RuntimeError(f"could not find a free sweep name for '{base}'")


def get_sweep(engine: Engine, ref: str | int) -> SweepInfo:
    """A sweep by id or name."""
    with Session(engine) as session:
        row = _find_sweep(session, ref)
        return _sweep_info(row)


def _find_sweep(session: Session, ref: str | int) -> Sweep:
    ref_text = str(ref)
    row = session.scalar(select(Sweep).where(Sweep.name == ref_text))
    if row is None and ref_text.isdigit():
        row = session.get(Sweep, int(ref_text))
    if row is None:
        names = session.scalars(select(Sweep.name).order_by(Sweep.id.desc()).limit(5)).all()
        raise NotFound(f"no sweep '{ref}'" + (f"; recent: {', '.join(names)}" if names else ""))
    return row


def list_sweeps(engine: Engine) -> list[SweepInfo]:
    """All sweeps, newest first."""
    with Session(engine) as session:
        return [_sweep_info(r) for r in session.scalars(select(Sweep).order_by(Sweep.id.desc()))]


def set_sweep_status(engine: Engine, ref: str | int, status: str, actor: str, reason: str = "") -> SweepInfo:
    """Stop, pause or resume a sweep (its running trials are stopped by their agents)."""
    if status not in (SWEEP_RUNNING, SWEEP_PAUSED, SWEEP_STOPPED):
        raise ValueError(f"cannot set a sweep to '{status}'")
    with Session(engine) as session, session.begin():
        row = _find_sweep(session, ref)
        now = _now(session)
        row.status, row.status_reason = status, reason or None
        row.finished_at = now if status == SWEEP_STOPPED else None
        _event(session, now, actor, f"sweep_{status}", reason, sweep_id=row.id)
        return _sweep_info(row)


def sweep_statuses(engine: Engine, ids: Iterable[int]) -> dict[int, str]:
    """Current status of each sweep id: agents stop trials of sweeps no longer running."""
    ids = list(ids)
    if not ids:
        return {}
    with Session(engine) as session:
        return dict(session.execute(select(Sweep.id, Sweep.status).where(Sweep.id.in_(ids))).all())


# --- trials -----------------------------------------------------------------------------------

def list_trials(engine: Engine, sweep_id: int) -> list[TrialInfo]:
    """A sweep's trials in number order."""
    with Session(engine) as session:
        rows = session.scalars(select(Trial).where(Trial.sweep_id == sweep_id).order_by(Trial.number))
        return [_trial_info(r) for r in rows]


def enqueue_trial(engine: Engine, sweep_id: int, params: dict[str, Any], kind: str = "user",
                  actor: str = "") -> TrialInfo:
    """Queue a given config (baselines, user requests): leased before any new suggestion."""
    with Session(engine) as session, session.begin():
        now = _now(session)
        sweep = _lock_sweep(session, sweep_id)
        number = _next_number(session, sweep_id)
        row = Trial(sweep_id=sweep_id, number=number, kind=kind, params=dict(params),
                    seed=trial_seed(sweep.seed, number), status=QUEUED, attempts=0, metrics={}, created_at=now)
        session.add(row)
        session.flush()
        _event(session, now, actor or sweep.owner, "trial_enqueued", kind, sweep_id=sweep_id, trial_id=row.id)
        return _trial_info(row)


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


def import_trials(engine: Engine, sweep_id: int, results: Iterable[FinishedTrial], actor: str = "") -> int:
    """Append finished trials to a sweep in one transaction (no lease: they never run); returns the count.

    One bulk INSERT rather than a lease and finish per trial, so that 10,000 imported results take
    seconds (the dashboard benchmark builds its sweep this way).
    """
    with Session(engine) as session, session.begin():
        now = _now(session)
        sweep = _lock_sweep(session, sweep_id)
        first = _next_number(session, sweep_id)
        rows = []
        for number, r in enumerate(results, start=first):
            if r.status not in (SUCCEEDED, FAILED, ABANDONED):
                raise ValueError(f"an imported trial must be finished, not '{r.status}'")
            rows.append({"sweep_id": sweep_id, "number": number, "kind": r.kind, "params": dict(r.params),
                         "seed": trial_seed(sweep.seed, number), "status": r.status, "attempts": 1,
                         "score": _finite(r.score), "score_stderr": _finite(r.score_stderr), "cost": r.cost,
                         "predicted_cost": _finite(r.predicted_cost), "metrics": r.metrics or {},
                         "failure_reason": r.failure_reason,
                         "failure_category": HYPERPARAMETER if r.status == FAILED else None,
                         "truncated": False, "created_at": now, "started_at": now, "finished_at": now})
        if rows:
            session.execute(Trial.__table__.insert(), rows)
            _event(session, now, actor or sweep.owner, "trials_imported", f"{len(rows)} trials", sweep_id=sweep_id)
        return len(rows)


def history(engine: Engine, sweep_id: int) -> History:
    """What a searcher is rebuilt from."""
    with Session(engine) as session:
        return _history(session, sweep_id)


def _history(session: Session, sweep_id: int) -> History:
    rows = session.execute(
        select(Trial.params, Trial.status, Trial.score, Trial.cost, Trial.failure_category)
        .where(Trial.sweep_id == sweep_id).order_by(Trial.number)).all()
    observations, pending = [], []
    for params, status, score, cost, category in rows:
        if status == SUCCEEDED and score is not None and math.isfinite(score):
            observations.append(Observed(params, float(score), float(cost or 0.0), False))
        elif status == FAILED and category == HYPERPARAMETER:
            observations.append(Observed(params, math.nan, float(cost or 0.0), True))
        elif status in OPEN:
            pending.append(params)
    return History(tuple(observations), tuple(pending))


def _lock_sweep(session: Session, sweep_id: int) -> Sweep:
    row = session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())
    if row is None:
        raise NotFound(f"no sweep {sweep_id}")
    return row


def _next_number(session: Session, sweep_id: int) -> int:
    return int(session.scalar(select(func.coalesce(func.max(Trial.number), 0)).where(Trial.sweep_id == sweep_id))) + 1


def lease_trial(engine: Engine, holder: Holder, propose: Propose, lease_seconds: float = 60.0,
                sweep_ids: Iterable[int] | None = None) -> Lease | None:
    """Lease one trial for `holder`'s slot: a queued one, else a new suggestion; None if no work."""
    with Session(engine) as session, session.begin():
        query = select(Sweep.id).where(Sweep.status == SWEEP_RUNNING).order_by(Sweep.priority.desc(), Sweep.id)
        if sweep_ids is not None:
            query = query.where(Sweep.id.in_(list(sweep_ids)))
        for sweep_id in session.scalars(query).all():
            lease = _lease_from_sweep(session, _lock_sweep(session, sweep_id), holder, propose, lease_seconds)
            if lease is not None:
                return lease
    return None


def _lease_from_sweep(session: Session, sweep: Sweep, holder: Holder, propose: Propose,
                      lease_seconds: float) -> Lease | None:
    if sweep.status != SWEEP_RUNNING:
        return None
    now = _now(session)
    counts = dict(session.execute(select(Trial.status, func.count()).where(Trial.sweep_id == sweep.id)
                                  .group_by(Trial.status)).all())
    active = counts.get(LEASED, 0) + counts.get(RUNNING, 0)
    if sweep.max_slots and active >= sweep.max_slots:
        return None
    token = uuid.uuid4().hex
    lock = {"status": LEASED, "box": holder.box, "slot": holder.slot, "lock_owner": holder.agent,
            "lock_token": token, "lock_expires_at": now + lease_seconds, "heartbeat_at": now}
    queued = session.scalar(select(Trial).where(Trial.sweep_id == sweep.id, Trial.status == QUEUED)
                            .order_by(Trial.number).limit(1).with_for_update(skip_locked=True))
    if queued is not None:
        for key, value in lock.items():
            setattr(queued, key, value)
        queued.attempts += 1
        return _lease(queued, sweep, token)
    if _budget_spent(session, sweep):
        if active == 0:
            _finish_sweep_if_done(session, sweep.id, holder.agent)
        return None
    proposal = propose(_sweep_info(sweep), _history(session, sweep.id))
    if proposal is None:
        return None
    number = _next_number(session, sweep.id)
    row = Trial(sweep_id=sweep.id, number=number, kind=proposal.kind, params=dict(proposal.params),
                seed=trial_seed(sweep.seed, number), attempts=1, metrics={}, created_at=now,
                predicted_score=_finite(proposal.predicted_score), predicted_cost=_finite(proposal.predicted_cost),
                **lock)
    session.add(row)
    session.flush()
    return _lease(row, sweep, token)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _lease(row: Trial, sweep: Sweep, token: str) -> Lease:
    return Lease(trial_id=row.id, token=token, sweep_id=sweep.id, sweep_name=sweep.name, number=row.number,
                 kind=row.kind, params=dict(row.params), seed=row.seed, attempt=row.attempts,
                 spec=sweep.spec, expires_at=float(row.lock_expires_at or 0.0))


def _guarded(lease: Lease):
    return update(Trial).where(Trial.id == lease.trial_id, Trial.lock_token == lease.token,
                               Trial.status.in_(ACTIVE))


def start_trial(engine: Engine, lease: Lease) -> bool:
    """leased -> running, when the worker process is up. False: the lease is lost."""
    with Session(engine) as session, session.begin():
        return session.execute(_guarded(lease).values(status=RUNNING, started_at=epoch_now())).rowcount == 1


def heartbeat_trial(engine: Engine, lease: Lease, lease_seconds: float,
                    metrics: dict[str, Any] | None = None) -> bool:
    """Extend the lease (and store live metrics). False: the lease is lost, stop the worker."""
    values: dict[str, Any] = {"lock_expires_at": epoch_now() + lease_seconds, "heartbeat_at": epoch_now()}
    if metrics is not None:
        values["metrics"] = metrics
    with Session(engine) as session, session.begin():
        return session.execute(_guarded(lease).values(**values)).rowcount == 1


def finish_trial(engine: Engine, lease: Lease, score: float, cost: float, *, score_stderr: float | None = None,
                 truncated: bool = False, metrics: dict[str, Any] | None = None) -> bool:
    """running -> succeeded with its result. False: the lease was lost and the result dropped."""
    with Session(engine) as session, session.begin():
        done = session.execute(_guarded(lease).values(
            status=SUCCEEDED, score=score, cost=cost, score_stderr=_finite(score_stderr), truncated=truncated,
            metrics=metrics or {}, finished_at=epoch_now(), lock_expires_at=None)).rowcount == 1
        if done:
            _finish_sweep_if_done(session, lease.sweep_id, "agent")
        return done


def fail_trial(engine: Engine, lease: Lease, reason: str, category: str, *, cost: float | None = None,
               metrics: dict[str, Any] | None = None) -> str | None:
    """A trial ended without a result. Infrastructure causes re-queue it once; setup errors pause
    the sweep. Returns the trial's new status, or None when the lease was already lost."""
    if category not in (INFRA, HYPERPARAMETER, SETUP):
        raise ValueError(f"unknown failure category '{category}'")
    with Session(engine) as session, session.begin():
        row = session.scalar(select(Trial).where(Trial.id == lease.trial_id, Trial.lock_token == lease.token,
                                                 Trial.status.in_(ACTIVE)).with_for_update())
        if row is None:
            return None
        now, actor = _now(session), row.lock_owner or "agent"
        status = _fail_row(session, row, reason, category, now, actor, cost=cost, metrics=metrics)
        if category == SETUP:
            sweep = _lock_sweep(session, row.sweep_id)
            if sweep.status == SWEEP_RUNNING:
                sweep.status, sweep.status_reason = SWEEP_PAUSED, f"trial {row.number}: {reason}"
                _event(session, now, actor, "sweep_paused", sweep.status_reason, sweep_id=sweep.id)
        _finish_sweep_if_done(session, row.sweep_id, actor)
        return status


def _fail_row(session: Session, row: Trial, reason: str, category: str, now: float, actor: str, *,
              cost: float | None = None, metrics: dict[str, Any] | None = None) -> str:
    retry = category == INFRA and row.attempts < MAX_ATTEMPTS
    row.failure_reason, row.failure_category = reason, category
    row.lock_token, row.lock_expires_at = None, None
    if metrics is not None:
        row.metrics = metrics
    if retry:
        row.status, row.box, row.slot, row.lock_owner, row.started_at = QUEUED, None, None, None, None
    else:
        row.status = ABANDONED if category == INFRA else FAILED
        row.cost, row.finished_at = cost, now
    _event(session, now, actor, "trial_requeued" if retry else f"trial_{row.status}", reason,
           box=row.box, sweep_id=row.sweep_id, trial_id=row.id)
    return row.status


def _finish_sweep_if_done(session: Session, sweep_id: int, actor: str) -> None:
    sweep = _lock_sweep(session, sweep_id)
    if sweep.status != SWEEP_RUNNING:
        return
    open_count = session.scalar(select(func.count()).where(Trial.sweep_id == sweep_id, Trial.status.in_(OPEN)))
    if open_count:
        return
    if _budget_spent(session, sweep):
        now = _now(session)
        sweep.status, sweep.finished_at = SWEEP_FINISHED, now
        _event(session, now, actor, "sweep_finished", "budget spent", sweep_id=sweep_id)


def _budget_spent(session: Session, sweep: Sweep) -> bool:
    """No new trial may start: max_trials made, or max_total_cost spent."""
    total, spent = session.execute(select(func.count(), func.coalesce(func.sum(Trial.cost), 0.0))
                                   .where(Trial.sweep_id == sweep.id)).one()
    return bool((sweep.max_trials and total >= sweep.max_trials)
                or (sweep.max_total_cost and float(spent) >= sweep.max_total_cost))


def reap_expired(engine: Engine, actor: str) -> list[int]:
    """Take back leases whose holder stopped heartbeating: re-queue once, then abandon."""
    with Session(engine) as session, session.begin():
        now = _now(session)
        rows = session.scalars(select(Trial).where(Trial.status.in_(ACTIVE), Trial.lock_expires_at < now)
                               .with_for_update(skip_locked=True)).all()
        for row in rows:
            _fail_row(session, row, f"lease expired (holder {row.lock_owner} on {row.box} stopped heartbeating)",
                      INFRA, now, actor)
        for sweep_id in {r.sweep_id for r in rows}:
            _finish_sweep_if_done(session, sweep_id, actor)
        return [r.id for r in rows]


# --- boxes and events -------------------------------------------------------------------------

def register_box(engine: Engine, name: str, slots: int, device: str, owner: str, agent: str) -> None:
    """Create or update this box's row; the agent that calls it becomes the box's agent."""
    with Session(engine) as session, session.begin():
        now = _now(session)
        row = session.scalar(select(Box).where(Box.name == name).with_for_update())
        if row is None:
            session.add(Box(name=name, slots=slots, device=device, owner=owner, agent=agent, last_seen=now,
                            state="online"))
        else:
            row.slots, row.device, row.owner, row.agent, row.last_seen, row.state = (
                slots, device, owner, agent, now, "online")
        _event(session, now, owner, "agent_started", f"{agent}: {slots} {device} slots", box=name)


def heartbeat_box(engine: Engine, name: str, agent: str, state: str = "online") -> None:
    """Mark the box seen now (an agent is alive on it)."""
    with Session(engine) as session, session.begin():
        session.execute(update(Box).where(Box.name == name, Box.agent == agent)
                        .values(last_seen=epoch_now(), state=state))


def agent_alive(engine: Engine, box: str, within: float) -> str | None:
    """The agent id that heartbeated `box` in the last `within` seconds, if any."""
    with Session(engine) as session:
        now = _now(session)
        row = session.scalar(select(Box).where(Box.name == box, Box.state == "online"))
        return row.agent if row is not None and now - row.last_seen <= within else None


def list_events(engine: Engine, limit: int = 50) -> list[Event]:
    """The newest events of the audit log, newest first (detached rows)."""
    with Session(engine, expire_on_commit=False) as session:
        rows = session.scalars(select(Event).order_by(Event.id.desc()).limit(limit)).all()
        session.expunge_all()
        return list(rows)
