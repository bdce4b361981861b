"""The queue: sweeps, trials and their leases. The only code that changes a trial's status.

Every transition is one small function named for it, run in one transaction, and every write
about a leased trial is guarded by `id AND lock_token AND status IN (leased, running)`: zero rows
updated means the lease was lost (reaped, re-queued, leased again) and the write is dropped.

Two agents never get the same trial (a queued trial is claimed by one guarded UPDATE whose
subquery uses `FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serializes writers with BEGIN
IMMEDIATE) nor the same new config (a new trial is inserted under the sweep's row lock only if
the searcher saw every trial made before it; see "leasing" below). Hot paths (claim, heartbeat,
finish) are single Core statements: a lease -> finish cycle is a handful of round trips.
"""

from __future__ import annotations

import math
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Engine, Float, bindparam, case, func, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sweepd.settings import SweepSettings
from sweepd.store.db import clock, epoch_now
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
    Reservation,
    Sweep,
    Trial,
    check_length,
    finite,
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

    @classmethod
    def of(cls, row: Sweep) -> SweepInfo:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


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

    @classmethod
    def of(cls, row: Trial) -> TrialInfo:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


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
    max_trials: int = 0          # the sweep's budget: finishing a trial checks it only when set
    max_total_cost: float = 0.0


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


def record_event(session: Session, at: float, actor: str, kind: str, detail: str = "", *, box: str | None = None,
                 sweep_id: int | None = None, trial_id: int | None = None) -> None:
    """Append to the audit log (`sweepd events`) in the caller's transaction."""
    session.add(Event(at=at, actor=actor, kind=kind, box=box, sweep_id=sweep_id, trial_id=trial_id,
                      detail=detail or None))


def trial_seed(sweep_seed: int, number: int) -> int:
    """Each trial's training seed: distinct per trial, reproducible from the sweep's seed."""
    return (sweep_seed * 1_000_003 + number * 7_919 + 17) % (2**31 - 1)


# --- sweeps -----------------------------------------------------------------------------------

def create_sweep(engine: Engine, spec: dict[str, Any], owner: str, name: str | None = None) -> SweepInfo:
    """Write a new running sweep from a resolved spec (`SweepSpec.to_json()`); names are unique."""
    settings = spec["settings"]
    base = name or spec["name"]
    check_length(Sweep.owner, owner, "the sweep's owner (user name)")
    check_length(Sweep.env, spec["env"], "the env name")
    for attempt in range(100):
        with Session(engine) as session, session.begin():
            now = clock(session)
            if name is None:
                taken = session.scalars(select(Sweep.name).where(Sweep.name.like(f"{base}-%"))).all()
                numbers = [int(n.rsplit("-", 1)[1]) for n in taken if n.rsplit("-", 1)[1].isdigit()]
                candidate = f"{base}-{max(numbers, default=0) + 1 + attempt}"
            else:
                candidate = base
            check_length(Sweep.name, candidate, "the sweep name" + (" (--name)" if name is not None else ""))
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
            record_event(session, now, owner, "sweep_created", spec.get("source", ""), sweep_id=row.id)
            return SweepInfo.of(row)
    raise RuntimeError(f"could not find a free sweep name for '{base}'")


def get_sweep(engine: Engine, ref: str | int) -> SweepInfo:
    """A sweep by id or name."""
    with Session(engine) as session:
        row = find_sweep_row(session, ref)
        return SweepInfo.of(row)


def find_sweep_row(session: Session, ref: str | int) -> Sweep:
    """The Sweep row by name or id in the caller's session; NotFound names the recent sweeps."""
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
        return [SweepInfo.of(r) for r in session.scalars(select(Sweep).order_by(Sweep.id.desc()))]


def set_sweep_status(engine: Engine, ref: str | int, status: str, actor: str, reason: str = "") -> SweepInfo:
    """Stop, pause or resume a sweep (its running trials are stopped by their agents)."""
    if status not in (SWEEP_RUNNING, SWEEP_PAUSED, SWEEP_STOPPED):
        raise ValueError(f"cannot set a sweep to '{status}'")
    with Session(engine) as session, session.begin():
        row = find_sweep_row(session, ref)
        now = clock(session)
        row.status, row.status_reason = status, reason or None
        row.finished_at = now if status == SWEEP_STOPPED else None
        record_event(session, now, actor, f"sweep_{status}", reason, sweep_id=row.id)
        return SweepInfo.of(row)


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
        return [TrialInfo.of(r) for r in rows]


def enqueue_trial(engine: Engine, sweep_id: int, params: dict[str, Any], kind: str = "user",
                  actor: str = "") -> TrialInfo:
    """Queue a given config (baselines, user requests): leased before any new suggestion."""
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = _lock_sweep(session, sweep_id)
        number = _next_number(session, sweep_id)
        row = Trial(sweep_id=sweep_id, number=number, kind=kind, params=dict(params),
                    seed=trial_seed(sweep.seed, number), status=QUEUED, attempts=0, metrics={}, created_at=now)
        session.add(row)
        session.flush()
        record_event(session, now, actor or sweep.owner, "trial_enqueued", kind, sweep_id=sweep_id, trial_id=row.id)
        return TrialInfo.of(row)


def enqueue_trials(engine: Engine, sweep_id: int, configs: Iterable[dict[str, Any]], kind: str = "user",
                   actor: str = "") -> int:
    """Queue many given configs in one transaction (one INSERT); returns how many."""
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = _lock_sweep(session, sweep_id)
        first = _next_number(session, sweep_id)
        rows = [{"sweep_id": sweep_id, "number": number, "kind": kind, "params": dict(params),
                 "seed": trial_seed(sweep.seed, number), "status": QUEUED, "attempts": 0, "metrics": {},
                 "truncated": False, "created_at": now} for number, params in enumerate(configs, start=first)]
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


def import_trials(engine: Engine, sweep_id: int, results: Iterable[FinishedTrial], actor: str = "") -> int:
    """Append finished trials to a sweep in one transaction (no lease: they never run); returns the count.

    One bulk INSERT rather than a lease and finish per trial, so that 10,000 imported results take
    seconds (the dashboard benchmark builds its sweep this way).
    """
    with Session(engine) as session, session.begin():
        now = clock(session)
        sweep = _lock_sweep(session, sweep_id)
        first = _next_number(session, sweep_id)
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
                         "truncated": False, "created_at": now, "started_at": now, "finished_at": now})
        if rows:
            session.execute(Trial.__table__.insert(), rows)
            record_event(session, now, actor or sweep.owner, "trials_imported", f"{len(rows)} trials",
                         sweep_id=sweep_id)
            session.flush()
            # An import that spends the budget (max_trials) finishes the sweep, as a last result would.
            _finish_sweep_if_done(session.connection(), sweep_id, actor or sweep.owner)
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


# --- leasing ----------------------------------------------------------------------------------
#
# A lease is taken in up to two steps, and no step holds a lock while the searcher runs:
# 1. One short transaction plans and claims: the running sweeps this slot may serve (reservations),
#    in fair-share order, then the first queued trial of the first such sweep, claimed by a single
#    `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`: concurrent agents skip each
#    other's rows instead of queueing behind them. Only sweeps with a `max_slots` cap lock their
#    sweep row here, so that the cap holds exactly.
# 2. When the sweep next in line has nothing queued, the searcher proposes a new config with
#    every trial made so far in its history (in-flight ones as pending), and the trial is inserted
#    under the sweep's row lock, so two agents never get the same config:
#    - PostgreSQL: the searcher runs while holding that sweep's row lock. The lock blocks only
#      what must take turns anyway (other suggestions for the same sweep, slot-capped claims on
#      it), never results, heartbeats, queued claims or other sweeps; racing agents queue on the
#      lock instead of each computing a proposal that only one of them could use.
#    - SQLite: its only lock is the whole database's write lock, which every heartbeat and result
#      needs, so the searcher runs outside any transaction on a snapshot, and the insert (under
#      the write lock) happens only if no trial was added since: a proposal that may not have
#      seen another agent's new trial as pending is thrown away and made again. After
#      OPTIMISTIC_TRIES lost races it runs under the lock, so a busy sweep still progresses.

OPTIMISTIC_TRIES = {"sqlite": 2, "postgresql": 0}  # proposals from a snapshot before one under the lock
FAIR_SHARE_WINDOW_S = 24 * 3600  # "recently" for fair share: slot-seconds used in the last day
SETUP_CHECK_TRIALS = 3           # the first N trials of a sweep all failing fast ...
SETUP_FAST_SECONDS = 20.0        # ... each within this many seconds: a broken setup, not bad luck


# The hot statements are built once with bind parameters: constructing a SQLAlchemy statement
# per call cost more client CPU than the database spent running it (benchmarks/queue_throughput.py).
# Bind names carry a `b_` prefix because SQLAlchemy reserves column names in SET clauses.
def _is(status: str) -> Any:
    """A status written into the SQL, not bound: PostgreSQL can use a partial index (WHERE
    status = 'queued') in a prepared statement's generic plan only when it sees the value."""
    return literal_column(f"'{status}'")


_HELD = [_is(LEASED), _is(RUNNING)]
_HAS_QUEUED = select(Trial.id).where(Trial.sweep_id == Sweep.id, Trial.status == _is(QUEUED)).exists()
# Whether the box has a reservation now rides along with the plan: an unreserved box costs no query.
_BOX_RESERVED = select(Reservation.id).where(Reservation.box == bindparam("b_box"), Reservation.until > epoch_now(),
                                             Reservation.starts_at <= epoch_now()).exists()
_PLAN = select(Sweep.id, Sweep.owner, Sweep.priority, Sweep.max_slots, Sweep.max_total_cost, _HAS_QUEUED,
               _BOX_RESERVED).where(Sweep.status == SWEEP_RUNNING)
_PLAN_SOME = _PLAN.where(Sweep.id.in_(bindparam("b_sweep_ids", expanding=True)))


def _lock_values(box: Any, slot: Any, agent: Any, token: Any, lease_seconds: Any) -> dict[str, Any]:
    """The lease columns, as a claim and a new leased trial set them (values, or the claim's binds)."""
    return {"status": LEASED, "box": box, "slot": slot, "lock_owner": agent, "lock_token": token,
            "lock_expires_at": epoch_now() + lease_seconds, "heartbeat_at": epoch_now()}


_CLAIM = (update(Trial)
          .where(Trial.id == select(Trial.id).where(Trial.sweep_id == bindparam("b_sweep_id"),
                                                    Trial.status == _is(QUEUED))
                 .order_by(Trial.number).limit(1).with_for_update(skip_locked=True).scalar_subquery(),
                 Trial.status == _is(QUEUED),
                 select(Sweep.id).where(Sweep.id == bindparam("b_sweep_id"), Sweep.status == SWEEP_RUNNING).exists())
          .values(attempts=Trial.attempts + 1,
                  **_lock_values(bindparam("b_box"), bindparam("b_slot"), bindparam("b_agent"), bindparam("b_token"),
                                 bindparam("b_lease_seconds", type_=Float)))
          .returning(Trial.id, Trial.number, Trial.kind, Trial.params, Trial.seed, Trial.attempts,
                     Trial.lock_expires_at))
_CLAIM_CAUTIOUS = _CLAIM.where(~select(Reservation.id).where(
    Reservation.box == bindparam("b_box"), Reservation.until > epoch_now(), Reservation.starts_at <= epoch_now(),
    Reservation.user != select(Sweep.owner).where(Sweep.id == bindparam("b_sweep_id")).scalar_subquery()).exists())
_GUARD = (Trial.id == bindparam("b_trial_id"), Trial.lock_token == bindparam("b_token"), Trial.status.in_(ACTIVE))
_START = update(Trial).where(*_GUARD).values(status=RUNNING, started_at=epoch_now())
_BEAT = update(Trial).where(*_GUARD).values(lock_expires_at=epoch_now() + bindparam("b_lease_seconds", type_=Float),
                                            heartbeat_at=epoch_now())
_BEAT_METRICS = _BEAT.values(metrics=bindparam("b_metrics"))
# A success clears the failure of an earlier attempt: that history is in the events table.
_FINISH = update(Trial).where(*_GUARD).values(
    status=SUCCEEDED, score=bindparam("b_score"), cost=bindparam("b_cost"), score_stderr=bindparam("b_stderr"),
    spent=Trial.spent + bindparam("b_spent", type_=Float), truncated=bindparam("b_truncated"),
    metrics=bindparam("b_metrics"), finished_at=epoch_now(), lock_expires_at=None, failure_reason=None,
    failure_category=None)


def _guard(lease: Lease) -> dict[str, Any]:
    return {"b_trial_id": lease.trial_id, "b_token": lease.token}


@dataclass(frozen=True)
class _Candidate:
    """A running sweep this slot may serve, as the planner sees it."""

    id: int
    owner: str
    priority: int
    max_slots: int
    max_total_cost: float
    has_queued: bool


def lease_trial(engine: Engine, holder: Holder, propose: Propose, lease_seconds: float = 60.0,
                sweep_ids: Iterable[int] | None = None) -> Lease | None:
    """Lease one trial for `holder`'s slot: a queued one, else a new suggestion; None if no work.

    Sweeps are served in fair-share order (`plan_sweeps`); a slot reserved by someone else only
    serves that user's sweeps.
    """
    wanted = None if sweep_ids is None else tuple(sweep_ids)
    plans = _PLANS.setdefault(engine, {})
    cached = plans.get((holder, wanted))
    if cached is not None and time.monotonic() < cached[0] and cached[1] and cached[1][0].has_queued:
        # The slot's recent plan still names a sweep with queued work: one claim statement, which
        # re-checks everything a stale plan could get wrong (sweep running, cap, reservations).
        with _statements(engine) as (conn, autocommit):
            lease = _claim(engine, conn, autocommit, cached[1][0], holder, lease_seconds, cautious=True)
        if isinstance(lease, Lease):
            return lease
    plan: list[_Candidate] | None = None
    start = 0
    while True:
        with _statements(engine) as (conn, autocommit):
            if plan is None:
                plan = _plan(conn, holder, wanted)
                plans[(holder, wanted)] = (time.monotonic() + PLAN_TTL_S, plan)
            for index in range(start, len(plan)):
                sweep = plan[index]
                lease = _claim(engine, conn, autocommit, sweep, holder, lease_seconds, cautious=False)
                if isinstance(lease, Lease):
                    return lease
                if lease is _FULL or sweep.has_queued:
                    continue  # at its cap, or every queued trial is being leased by someone else
                break  # this sweep needs a new suggestion: outside this transaction
            else:
                return None
        lease = _suggest_and_lease(engine, plan[index], holder, propose, lease_seconds)
        if lease is not None:
            return lease
        start = index + 1


# The plan each slot last made, per engine: reused for PLAN_TTL_S to skip re-reading the sweeps on
# every lease (the benchmark's 16 agents spent a third of their time planning).
PLAN_TTL_S = 1.0
_PLANS: weakref.WeakKeyDictionary[Engine, dict[tuple[Holder, tuple[int, ...] | None], tuple[float, list[_Candidate]]]]
_PLANS = weakref.WeakKeyDictionary()


def _claim(engine: Engine, conn: Connection, autocommit: bool, sweep: _Candidate, holder: Holder,
           lease_seconds: float, *, cautious: bool) -> Lease | _Full | None:
    """Claim a queued trial of `sweep`; `cautious` (a cached plan) also refuses any box reserved by
    a user other than the sweep's owner, leaving the exact slot check to a fresh plan."""
    limited = sweep.max_slots or sweep.max_total_cost
    if not (limited or sweep.has_queued):
        return None
    # What the lease needs of its sweep is read before the claim, never after it: on PostgreSQL the
    # claim commits by itself, and a failed read after it would leave the trial leased to nobody.
    constants = _sweep_constants(conn, sweep.id)
    if limited:
        if autocommit:  # the limits need the sweep's lock held to the claim: a transaction
            with engine.begin() as tx:
                return _claim_under_limits(tx, sweep, constants, holder, lease_seconds, cautious)
        return _claim_under_limits(conn, sweep, constants, holder, lease_seconds, cautious)
    return _claim_queued(conn, constants, holder, lease_seconds, cautious)


def plan_sweeps(engine: Engine, holder: Holder, sweep_ids: Iterable[int] | None = None) -> list[int]:
    """The sweeps `holder`'s slot would serve, best first: fewest recent slot-seconds used by the
    sweep's owner, then higher priority, then older. (What `lease_trial` follows; for tests and views.)"""
    with _statements(engine) as (conn, _):
        return [c.id for c in _plan(conn, holder, None if sweep_ids is None else list(sweep_ids))]


def _plan(conn: Connection, holder: Holder, sweep_ids: list[int] | None) -> list[_Candidate]:
    if sweep_ids is None:
        rows = conn.execute(_PLAN, {"b_box": holder.box}).all()
    else:
        rows = conn.execute(_PLAN_SOME, {"b_box": holder.box, "b_sweep_ids": sweep_ids}).all()
    if not rows:
        return []
    sweeps = [_Candidate(*row[:6]) for row in rows]
    reserved_by = slot_reserved_by(conn, holder.box, holder.slot) if rows[0][6] else None
    if reserved_by is not None:
        sweeps = [s for s in sweeps if s.owner == reserved_by]
    owners = {s.owner for s in sweeps}
    usage = _usage_by_owner(conn, owners) if len(owners) > 1 else {}
    return sorted(sweeps, key=lambda s: (usage.get(s.owner, 0.0), -s.priority, s.id))


def usage_by_owner(engine: Engine, owners: Iterable[str] | None = None) -> dict[str, float]:
    """Slot-seconds each sweep owner used in the last FAIR_SHARE_WINDOW_S (running trials up to now)."""
    with engine.connect() as conn:
        return _usage_by_owner(conn, owners)


def _usage_by_owner(conn: Connection, owners: Iterable[str] | None) -> dict[str, float]:
    now = float(conn.scalar(select(epoch_now())))
    since = now - FAIR_SHARE_WINDOW_S
    # Each trial's [start, end] clipped to the window; portable CASEs (SQLite has no GREATEST).
    start = func.coalesce(Trial.started_at, Trial.heartbeat_at, now)
    end = func.coalesce(Trial.finished_at, now)
    clipped = case((start > since, start), else_=since)
    query = (select(Sweep.owner, func.sum(end - clipped)).join(Sweep, Sweep.id == Trial.sweep_id)
             .where(or_(Trial.status.in_(ACTIVE), Trial.finished_at >= since)).group_by(Sweep.owner))
    if owners is not None:
        query = query.where(Sweep.owner.in_(list(owners)))
    return {owner: max(0.0, float(used or 0.0)) for owner, used in conn.execute(query)}


@contextmanager
def _statements(engine: Engine) -> Iterator[tuple[Connection, bool]]:
    """A connection for the lease's plan and claim. On PostgreSQL it autocommits: each statement is
    its own transaction and one round trip (no BEGIN, no COMMIT), which is safe because the claim
    is a single guarded statement. SQLite: one BEGIN IMMEDIATE transaction, so a claim's read and
    write can never be split by another writer (WAL cannot upgrade a stale read to a write)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn, True
    else:
        with engine.begin() as conn:
            yield conn, False


class _Full:
    """`_claim_under_limits`'s answer when the sweep uses all its slots or its cost budget cannot
    cover one more trial."""


_FULL = _Full()


def _claim_under_limits(conn: Connection, sweep: _Candidate, constants: _Constants, holder: Holder,
                        lease_seconds: float, cautious: bool = False) -> Lease | _Full | None:
    """In a transaction: lock the sweep's row (held to commit), then claim a queued trial only below
    its slot cap and only if its cost budget covers one more trial. None: room, but nothing queued."""
    conn.execute(select(Sweep.id).where(Sweep.id == sweep.id).with_for_update())
    spent, active = _spending(conn, sweep.id, costed=bool(sweep.max_total_cost))
    if sweep.max_slots and active >= sweep.max_slots:
        return _FULL
    if sweep.max_total_cost and not _budget_covers(spent, active, sweep.max_total_cost, constants.cost_cap):
        if not active:  # with nothing in flight no finish can make room: the sweep is done
            _finish_sweep_if_done(conn, sweep.id, holder.agent)
        return _FULL
    return _claim_queued(conn, constants, holder, lease_seconds, cautious) if sweep.has_queued else None


def _claim_queued(conn: Connection, constants: _Constants, holder: Holder, lease_seconds: float,
                  cautious: bool = False) -> Lease | None:
    """Claim the sweep's lowest-numbered queued trial in one statement, skipping rows others hold."""
    token = uuid.uuid4().hex
    params = {"b_sweep_id": constants.id, "b_box": holder.box, "b_slot": holder.slot, "b_agent": holder.agent,
              "b_token": token, "b_lease_seconds": lease_seconds}
    row = conn.execute(_CLAIM_CAUTIOUS if cautious else _CLAIM, params).first()
    if row is None:
        return None
    return _make_lease(constants, token, *row)


def _make_lease(sweep: _Constants, token: str, trial_id: int, number: int, kind: str, params: dict[str, Any],
                seed: int, attempts: int, expires_at: float) -> Lease:
    """A Lease from a claimed row and its sweep's constants: no database access."""
    return Lease(trial_id=trial_id, token=token, sweep_id=sweep.id, sweep_name=sweep.name, number=number, kind=kind,
                 params=dict(params), seed=seed, attempt=attempts, spec=sweep.spec, expires_at=float(expires_at),
                 max_trials=sweep.max_trials, max_total_cost=sweep.max_total_cost)


@dataclass(frozen=True)
class _Constants:
    """What never changes about a sweep after it is made: its name, spec and budget."""

    id: int
    name: str
    spec: dict[str, Any]
    max_trials: int
    max_total_cost: float

    @property
    def cost_cap(self) -> float:
        return cost_cap(self.spec)

    @classmethod
    def of(cls, row: Sweep) -> _Constants:
        return cls(row.id, row.name, row.spec, int(row.max_trials), float(row.max_total_cost))


# Read once per engine and sweep.
_CONSTANTS: weakref.WeakKeyDictionary[Engine, dict[int, _Constants]] = weakref.WeakKeyDictionary()


def _sweep_constants(conn: Connection, sweep_id: int) -> _Constants:
    known = _CONSTANTS.setdefault(conn.engine, {})
    if sweep_id not in known:
        row = conn.execute(select(Sweep.name, Sweep.spec, Sweep.max_trials, Sweep.max_total_cost)
                           .where(Sweep.id == sweep_id)).one()
        known[sweep_id] = _Constants(sweep_id, row[0], row[1], int(row[2]), float(row[3]))
    return known[sweep_id]


def cost_cap(spec: dict[str, Any]) -> float:
    """One trial's worst-case cost from a stored spec: `SweepSettings.cost_cap`, the wall seconds
    after which its worker stops training (max_suggestion_cost x cost_tolerance)."""
    return SweepSettings.from_json(spec["settings"]).cost_cap


def _spending(conn: Connection | Session, sweep_id: int, *, costed: bool) -> tuple[float, int]:
    """(cost spent by the sweep's attempts so far, its trials in flight); with `costed` False the
    sum is skipped (0.0) and only the in-flight trials are counted, an index range."""
    if not costed:
        active = conn.scalar(select(func.count()).where(Trial.sweep_id == sweep_id, Trial.status.in_(ACTIVE)))
        return 0.0, int(active or 0)
    spent, active = conn.execute(
        select(func.coalesce(func.sum(Trial.spent), 0.0),
               func.coalesce(func.sum(case((Trial.status.in_(ACTIVE), 1), else_=0)), 0))
        .where(Trial.sweep_id == sweep_id)).one()
    return float(spent), int(active)


def _budget_covers(spent: float, active: int, max_total_cost: float, cap: float) -> bool:
    """Whether one more trial fits the cost budget even if it and every trial in flight run to the
    cost cap: spent + in-flight caps never exceed max_total_cost."""
    return spent + (active + 1) * cap <= max_total_cost * (1 + 1e-9)


def _suggest_and_lease(engine: Engine, candidate: _Candidate, holder: Holder, propose: Propose,
                       lease_seconds: float) -> Lease | None:
    """Lease a new trial proposed by the sweep's searcher, or None when the sweep can take none."""
    tries = OPTIMISTIC_TRIES.get(engine.dialect.name, 0)
    for attempt in range(tries + 1):
        under_lock = attempt == tries
        if not under_lock:
            with Session(engine) as session:
                sweep = session.get(Sweep, candidate.id)
                if sweep is None or sweep.status != SWEEP_RUNNING or _budget_spent(session, sweep)[0]:
                    break  # the locked step below finishes a spent sweep
                seen = _next_number(session, candidate.id)
                info, past = SweepInfo.of(sweep), _history(session, candidate.id)
            proposal = propose(info, past)  # no transaction open: SQLite's write lock is free meanwhile
            if proposal is None:
                return None
        with Session(engine) as session, session.begin():
            sweep = _lock_sweep(session, candidate.id)
            if not _may_add_trial(session, sweep, holder):
                return None
            number = _next_number(session, sweep.id)
            if under_lock:
                proposal = propose(SweepInfo.of(sweep), _history(session, sweep.id))
                if proposal is None:
                    return None
            elif number != seen:
                continue  # another trial was added since our snapshot: propose again with it pending
            return _insert_leased(session, sweep, number, proposal, holder, lease_seconds)
    # The snapshot said the sweep is done or not running: settle it under the lock.
    with Session(engine) as session, session.begin():
        _may_add_trial(session, _lock_sweep(session, candidate.id), holder)
    return None


def _may_add_trial(session: Session, sweep: Sweep, holder: Holder) -> bool:
    """Under the sweep's lock: running, budget left, under its slot cap, slot not reserved for another."""
    if sweep.status != SWEEP_RUNNING:
        return False
    spent, active = _budget_spent(session, sweep)
    if spent:
        if not active:
            _finish_sweep_if_done(session.connection(), sweep.id, holder.agent)
        return False
    if sweep.max_slots and active >= sweep.max_slots:
        return False
    reserved_by = slot_reserved_by(session.connection(), holder.box, holder.slot)
    return reserved_by is None or reserved_by == sweep.owner


def _insert_leased(session: Session, sweep: Sweep, number: int, proposal: Proposal, holder: Holder,
                   lease_seconds: float) -> Lease:
    token = uuid.uuid4().hex
    row = Trial(sweep_id=sweep.id, number=number, kind=proposal.kind, params=dict(proposal.params),
                seed=trial_seed(sweep.seed, number), attempts=1, metrics={}, created_at=epoch_now(),
                predicted_score=finite(proposal.predicted_score), predicted_cost=finite(proposal.predicted_cost),
                **_lock_values(holder.box, holder.slot, holder.agent, token, lease_seconds))
    session.add(row)
    session.flush()
    session.refresh(row, ["lock_expires_at"])
    return _make_lease(_Constants.of(sweep), token, row.id, row.number, row.kind, row.params, row.seed,
                       row.attempts, row.lock_expires_at)


# --- reservations as the lease sees them ------------------------------------------------------

def slot_owners(reservations: list[tuple[str, int | None]]) -> list[tuple[int, float, str]]:
    """(first slot, slot count, user) for a box's active reservations given in the order they were
    made: each takes the next free slot indices; `None` slots takes every slot left."""
    ranges: list[tuple[int, float, str]] = []
    cursor = 0
    for user, slots in reservations:
        if slots is None:
            ranges.append((cursor, math.inf, user))
            break  # it holds everything left; later reservations cover no slot until it ends
        ranges.append((cursor, slots, user))
        cursor += slots
    return ranges


def slot_owner(ranges: list[tuple[int, float, str]], slot: int) -> str | None:
    """The user whose range (from `slot_owners`) covers `slot`, if any."""
    return next((user for first, count, user in ranges if first <= slot < first + count), None)


def slot_reserved_by(conn: Connection, box: str, slot: int) -> str | None:
    """The user whose active reservation covers (box, slot) now, if any."""
    rows = conn.execute(select(Reservation.user, Reservation.slots)
                        .where(Reservation.box == box, Reservation.until > epoch_now(),
                               Reservation.starts_at <= epoch_now())
                        .order_by(Reservation.id)).all()
    return slot_owner(slot_owners([(user, slots) for user, slots in rows]), slot) if rows else None


# --- a leased trial's transitions -------------------------------------------------------------

def start_trial(engine: Engine, lease: Lease) -> bool:
    """leased -> running, when the worker process is up. False: the lease is lost."""
    with _statements(engine) as (conn, _):
        return conn.execute(_START, _guard(lease)).rowcount == 1


def heartbeat_trial(engine: Engine, lease: Lease, lease_seconds: float,
                    metrics: dict[str, Any] | None = None) -> bool:
    """Extend the lease (and store live metrics). False: the lease is lost, stop the worker.

    A lease past its expiry that no reaper has taken yet is still this holder's: the token is
    the only authority, so an agent back from a database outage re-attaches to its trials.
    """
    params = {**_guard(lease), "b_lease_seconds": lease_seconds}
    with _statements(engine) as (conn, _):
        if metrics is None:
            return conn.execute(_BEAT, params).rowcount == 1
        return conn.execute(_BEAT_METRICS, {**params, "b_metrics": metrics}).rowcount == 1


def finish_trial(engine: Engine, lease: Lease, score: float, cost: float, *, score_stderr: float | None = None,
                 truncated: bool = False, metrics: dict[str, Any] | None = None) -> bool:
    """running -> succeeded with its result. False: the lease was lost and the result dropped."""
    with _statements(engine) as (conn, autocommit):
        done = conn.execute(_FINISH, {**_guard(lease), "b_score": score, "b_cost": cost,
                                      "b_spent": finite(cost) or 0.0, "b_stderr": finite(score_stderr),
                                      "b_truncated": truncated, "b_metrics": metrics or {}}).rowcount == 1
        if not done or not (lease.max_trials or lease.max_total_cost):
            return done  # a sweep without a budget never finishes by itself
        if not autocommit:
            _finish_sweep_if_done(conn, lease.sweep_id, "agent")
            return done
    # After our result is committed: of two last trials finishing at once, the second to take the
    # sweep's lock sees both results and finishes the sweep.
    with engine.begin() as conn:
        _finish_sweep_if_done(conn, lease.sweep_id, "agent")
    return done


def fail_trial(engine: Engine, lease: Lease, reason: str, category: str, *, cost: float | None = None,
               metrics: dict[str, Any] | None = None) -> str | None:
    """A trial ended without a result. Infrastructure causes re-queue it once; setup errors pause
    the sweep, and so do the sweep's first SETUP_CHECK_TRIALS trials all failing within
    SETUP_FAST_SECONDS. Returns the trial's new status, or None when the lease was already lost."""
    if category not in (INFRA, HYPERPARAMETER, SETUP):
        raise ValueError(f"unknown failure category '{category}'")
    with Session(engine) as session, session.begin():
        row = session.scalar(select(Trial).where(Trial.id == lease.trial_id, Trial.lock_token == lease.token,
                                                 Trial.status.in_(ACTIVE)).with_for_update())
        if row is None:
            return None
        now, actor = clock(session), row.lock_owner or "agent"
        status = _fail_row(session, row, reason, category, now, actor, cost=cost, metrics=metrics)
        if category == SETUP:
            _pause(session, row.sweep_id, f"trial {row.number}: {reason}", now, actor)
        elif category == HYPERPARAMETER and row.number <= SETUP_CHECK_TRIALS:
            _pause_if_setup_broken(session, row.sweep_id, now, actor)
        session.flush()
        _finish_sweep_if_done(session.connection(), row.sweep_id, actor)
        return status


def _pause(session: Session, sweep_id: int, reason: str, now: float, actor: str) -> None:
    sweep = _lock_sweep(session, sweep_id)
    if sweep.status == SWEEP_RUNNING:
        sweep.status, sweep.status_reason = SWEEP_PAUSED, reason
        record_event(session, now, actor, "sweep_paused", reason, sweep_id=sweep.id)


def _pause_if_setup_broken(session: Session, sweep_id: int, now: float, actor: str) -> None:
    """The first trials all failing within seconds says the setup is broken (a wrong path, a
    missing dependency that only bites at run time), not that those configs are bad: pause the
    sweep, and keep those failures away from the searcher (re-labelled setup failures)."""
    first = session.scalars(select(Trial).where(Trial.sweep_id == sweep_id)
                            .order_by(Trial.number).limit(SETUP_CHECK_TRIALS)).all()
    if len(first) < SETUP_CHECK_TRIALS or not all(
            t.status == FAILED and t.cost is not None and t.cost < SETUP_FAST_SECONDS for t in first):
        return
    for trial in first:
        trial.failure_category = SETUP
    last = (first[-1].failure_reason or "").splitlines()[0][:200] if first[-1].failure_reason else ""
    _pause(session, sweep_id, f"broken setup? the first {SETUP_CHECK_TRIALS} trials all failed within "
                              f"{SETUP_FAST_SECONDS:g} s (last: {last}); fix it, then `sweepd retry SWEEP --failed`",
           now, actor)


def _fail_row(session: Session, row: Trial, reason: str, category: str, now: float, actor: str, *,
              cost: float | None = None, metrics: dict[str, Any] | None = None) -> str:
    retry = category == INFRA and row.attempts < MAX_ATTEMPTS
    box = row.box  # the event names the box the attempt ran on; a re-queue clears it from the row
    row.failure_reason, row.failure_category = reason, category
    row.lock_token, row.lock_expires_at = None, None
    row.spent = (row.spent or 0.0) + (finite(cost) or 0.0)  # a re-queued attempt spent budget too
    if metrics is not None:
        row.metrics = metrics
    if retry:
        row.status, row.box, row.slot, row.lock_owner, row.started_at = QUEUED, None, None, None, None
    else:
        row.status = ABANDONED if category == INFRA else FAILED
        row.cost, row.finished_at = cost, now
    record_event(session, now, actor, "trial_requeued" if retry else f"trial_{row.status}", reason,
                 box=box, sweep_id=row.sweep_id, trial_id=row.id)
    return row.status


def _finish_sweep_if_done(conn: Connection, sweep_id: int, actor: str) -> None:
    """Mark the sweep finished when its budget is spent and no trial is in flight: max_trials made
    and none of them left queued, or max_total_cost unable to cover one more trial at its cost cap
    (trials still queued then never start).

    A cheap unlocked look first (the trial count is the highest number: numbers are dense), so
    that finishing a trial locks the sweep's row only when its budget may be spent.
    """
    status, max_trials, max_total_cost, made = conn.execute(
        select(Sweep.status, Sweep.max_trials, Sweep.max_total_cost,
               select(func.coalesce(func.max(Trial.number), 0)).where(Trial.sweep_id == sweep_id).scalar_subquery())
        .where(Sweep.id == sweep_id)).one()
    if status != SWEEP_RUNNING or not (max_total_cost or (max_trials and made >= max_trials)):
        return
    status = conn.scalar(select(Sweep.status).where(Sweep.id == sweep_id).with_for_update())
    if status != SWEEP_RUNNING:
        return
    if conn.scalar(select(Trial.id).where(Trial.sweep_id == sweep_id, Trial.status.in_(ACTIVE)).limit(1)):
        return
    done = bool(max_trials and made >= max_trials) and not conn.scalar(
        select(Trial.id).where(Trial.sweep_id == sweep_id, Trial.status == QUEUED).limit(1))
    if not done and max_total_cost:
        spent, _ = _spending(conn, sweep_id, costed=True)
        done = not _budget_covers(spent, 0, max_total_cost, _sweep_constants(conn, sweep_id).cost_cap)
    if done:
        now = clock(conn)
        conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SWEEP_FINISHED, finished_at=now))
        conn.execute(Event.__table__.insert().values(at=now, actor=actor, kind="sweep_finished",
                                                     detail="budget spent", sweep_id=sweep_id))


def _budget_spent(session: Session, sweep: Sweep) -> tuple[bool, int]:
    """Whether no new trial may start (max_trials made, or max_total_cost cannot cover one more at
    its cost cap on top of what was spent and every trial in flight at its cap), and how many
    trials are in flight."""
    spent, active = _spending(session, sweep.id, costed=bool(sweep.max_total_cost))
    if sweep.max_trials and _next_number(session, sweep.id) > sweep.max_trials:
        return True, active
    if sweep.max_total_cost and not _budget_covers(spent, active, sweep.max_total_cost, cost_cap(sweep.spec)):
        return True, active
    return False, active


def reap_expired(engine: Engine, actor: str) -> list[int]:
    """Take back leases whose holder stopped heartbeating: re-queue once, then abandon."""
    with Session(engine) as session, session.begin():
        now = clock(session)
        rows = session.scalars(select(Trial).where(Trial.status.in_(_HELD), Trial.lock_expires_at < now)
                               .with_for_update(skip_locked=True)).all()
        for row in rows:
            _fail_row(session, row, f"lease expired (holder {row.lock_owner} on {row.box} stopped heartbeating)",
                      INFRA, now, actor, cost=_known_cost(row))
        session.flush()
        for sweep_id in {r.sweep_id for r in rows}:
            _finish_sweep_if_done(session.connection(), sweep_id, actor)
        return [r.id for r in rows]


def _known_cost(row: Trial) -> float:
    """What a reaped attempt is known to have spent: from its start to its holder's last heartbeat."""
    if row.started_at is None or row.heartbeat_at is None:
        return 0.0
    return max(0.0, row.heartbeat_at - row.started_at)


@dataclass(frozen=True)
class Retried:
    """What `retry_sweep` did."""

    sweep: SweepInfo
    requeued: tuple[int, ...]   # trial numbers
    resumed: bool


def retry_sweep(engine: Engine, ref: str | int, actor: str, *, failed: bool = False) -> Retried:
    """Re-queue a sweep's abandoned trials (with `failed`, its failed ones too) as fresh attempts,
    and set the sweep running again if it was paused or finished."""
    statuses = (ABANDONED, FAILED) if failed else (ABANDONED,)
    with Session(engine) as session, session.begin():
        sweep = find_sweep_row(session, ref)
        sweep = _lock_sweep(session, sweep.id)
        now = clock(session)
        rows = session.scalars(select(Trial).where(Trial.sweep_id == sweep.id, Trial.status.in_(statuses))
                               .order_by(Trial.number).with_for_update()).all()
        for row in rows:
            # A fresh attempt: its last result and failure go (the events keep them); `spent` stays,
            # the budget has paid for those attempts.
            row.status, row.attempts, row.cost, row.score, row.finished_at, row.started_at = (
                QUEUED, 0, None, None, None, None)
            row.score_stderr, row.truncated, row.failure_reason, row.failure_category = None, False, None, None
            row.box, row.slot, row.lock_owner = None, None, None
        resumed = sweep.status in (SWEEP_PAUSED, SWEEP_FINISHED) or (sweep.status == SWEEP_STOPPED and bool(rows))
        if resumed:
            sweep.status, sweep.status_reason, sweep.finished_at = SWEEP_RUNNING, None, None
        numbers = tuple(r.number for r in rows)
        record_event(session, now, actor, "sweep_retried",
                     f"re-queued {len(rows)} trial(s)" + (f" {list(numbers)}" if numbers else "")
                     + ("; resumed" if resumed else ""), sweep_id=sweep.id)
        session.flush()
        return Retried(sweep=SweepInfo.of(sweep), requeued=numbers, resumed=resumed)


# --- boxes and events -------------------------------------------------------------------------

def register_box(engine: Engine, name: str, slots: int, device: str, owner: str, agent: str) -> None:
    """Create or update this box's row; the agent that calls it becomes the box's agent.

    Names too long for their columns are refused here, once, with one line: on PostgreSQL they would
    fail every later claim, which an agent cannot tell from a database outage."""
    check_length(Box.name, name, "the box name (--box)")
    check_length(Trial.lock_owner, agent, "the agent id (the box name, pid and a tag: use a shorter --box)")
    check_length(Box.owner, owner, "the user name")
    with Session(engine) as session, session.begin():
        now = clock(session)
        row = session.scalar(select(Box).where(Box.name == name).with_for_update())
        if row is None:
            session.add(Box(name=name, slots=slots, device=device, owner=owner, agent=agent, last_seen=now,
                            state="online"))
        else:
            row.slots, row.device, row.owner, row.agent, row.last_seen, row.state = (
                slots, device, owner, agent, now, "online")
        record_event(session, now, owner, "agent_started", f"{agent}: {slots} {device} slots", box=name)


def heartbeat_box(engine: Engine, name: str, agent: str, state: str = "online") -> None:
    """Mark the box seen now (an agent is alive on it)."""
    with Session(engine) as session, session.begin():
        session.execute(update(Box).where(Box.name == name, Box.agent == agent)
                        .values(last_seen=epoch_now(), state=state))


def agent_alive(engine: Engine, box: str, within: float) -> str | None:
    """The agent id that heartbeated `box` in the last `within` seconds, if any."""
    with Session(engine) as session:
        now = clock(session)
        row = session.scalar(select(Box).where(Box.name == box, Box.state == "online"))
        return row.agent if row is not None and now - row.last_seen <= within else None
