"""Leasing: which sweep a free slot serves (fair share, priority, reservations, slot caps and
budgets) and the trial it gets there, queued or newly proposed by the sweep's searcher.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Float, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from sweepd.store.boxes import slot_reserved_by
from sweepd.store.budget import budget_covers, budget_spent, finish_sweep_if_spent, spending
from sweepd.store.dialect import Statements, clock, dialect, epoch_now
from sweepd.store.history import Proposal, Propose, read_history
from sweepd.store.models import (
    ACTIVE,
    LEASED,
    QUEUED,
    SWEEP_RUNNING,
    Reservation,
    Sweep,
    Trial,
    finite,
    literal_status,
)
from sweepd.store.sweeps import SweepConstants, SweepInfo, lock_sweep, next_number, sweep_constants, trial_seed


@dataclass(frozen=True)
class Holder:
    """Who asks for work: the agent (lock owner), its box and slot, the user it runs as, and the
    slot's hardware class ("cpu" or "cuda"): it serves only sweeps of that class."""

    agent: str
    box: str
    slot: int
    user: str
    device: str = "cpu"


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
#      `optimistic_tries` lost races (store/dialect.py) it runs under the lock, so a busy sweep
#      still progresses.

FAIR_SHARE_WINDOW_S = 24 * 3600  # "recently" for fair share: slot-seconds used in the last day


# The hot statements are built once with bind parameters: constructing a SQLAlchemy statement
# per call cost more client CPU than the database spent running it (benchmarks/queue_throughput.py).
# Bind names carry a `b_` prefix because SQLAlchemy reserves column names in SET clauses.
_HAS_QUEUED = select(Trial.id).where(Trial.sweep_id == Sweep.id, Trial.status == literal_status(QUEUED)).exists()
# Whether the box has a reservation now rides along with the plan: an unreserved box costs no query.
_BOX_RESERVED = select(Reservation.id).where(Reservation.box == bindparam("b_box"), Reservation.until > epoch_now(),
                                             Reservation.starts_at <= epoch_now()).exists()
_PLAN = select(Sweep.id, Sweep.owner, Sweep.priority, Sweep.max_slots, Sweep.max_total_cost, Sweep.max_trials,
               _HAS_QUEUED, _BOX_RESERVED).where(Sweep.status == SWEEP_RUNNING)
# A slot serves only sweeps of its hardware class (like a reservation, in the plan): one sweep's
# costs all come from one kind of hardware, so its cost model never mixes a GPU's seconds with a CPU's.
_PLAN_CLASS = _PLAN.where(Sweep.device == bindparam("b_device"))
_PLAN_SOME = _PLAN_CLASS.where(Sweep.id.in_(bindparam("b_sweep_ids", expanding=True)))


def _lock_values(box: Any, slot: Any, agent: Any, token: Any, lease_seconds: Any) -> dict[str, Any]:
    """The lease columns, as a claim and a new leased trial set them (values, or the claim's binds)."""
    return {"status": LEASED, "box": box, "slot": slot, "lock_owner": agent, "lock_token": token,
            "lock_expires_at": epoch_now() + lease_seconds, "heartbeat_at": epoch_now()}


_CLAIM = (update(Trial)
          .where(Trial.id == select(Trial.id).where(Trial.sweep_id == bindparam("b_sweep_id"),
                                                    Trial.status == literal_status(QUEUED))
                 .order_by(Trial.number).limit(1).with_for_update(skip_locked=True).scalar_subquery(),
                 Trial.status == literal_status(QUEUED),
                 select(Sweep.id).where(Sweep.id == bindparam("b_sweep_id"), Sweep.status == SWEEP_RUNNING).exists())
          .values(attempts=Trial.attempts + 1,
                  **_lock_values(bindparam("b_box"), bindparam("b_slot"), bindparam("b_agent"), bindparam("b_token"),
                                 bindparam("b_lease_seconds", type_=Float)))
          .returning(Trial.id, Trial.number, Trial.kind, Trial.params, Trial.seed, Trial.attempts,
                     Trial.lock_expires_at))
_CLAIM_CAUTIOUS = _CLAIM.where(~select(Reservation.id).where(
    Reservation.box == bindparam("b_box"), Reservation.until > epoch_now(), Reservation.starts_at <= epoch_now(),
    Reservation.user != select(Sweep.owner).where(Sweep.id == bindparam("b_sweep_id")).scalar_subquery()).exists())


@dataclass(frozen=True)
class _Candidate:
    """A running sweep this slot may serve, as the planner sees it."""

    id: int
    owner: str
    priority: int
    max_slots: int
    max_total_cost: float      # the budget as the plan read it: `sweepd extend` changes it
    max_trials: int
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
        with dialect(engine).statements(engine) as statements:
            lease = _claim(statements, cached[1][0], holder, lease_seconds, cautious=True)
        if isinstance(lease, Lease):
            return lease
    plan: list[_Candidate] | None = None
    start = 0
    while True:
        with dialect(engine).statements(engine) as statements:
            if plan is None:
                plan = _plan(statements.conn, holder, wanted)
                plans[(holder, wanted)] = (time.monotonic() + PLAN_TTL_S, plan)
            for index in range(start, len(plan)):
                sweep = plan[index]
                lease = _claim(statements, sweep, holder, lease_seconds, cautious=False)
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


def _claim(statements: Statements, sweep: _Candidate, holder: Holder, lease_seconds: float, *,
           cautious: bool) -> Lease | _Full | None:
    """Claim a queued trial of `sweep`; `cautious` (a cached plan) also refuses any box reserved by
    a user other than the sweep's owner, leaving the exact slot check to a fresh plan."""
    limited = sweep.max_slots or sweep.max_total_cost
    if not (limited or sweep.has_queued):
        return None
    # What the lease needs of its sweep is read before the claim, never after it: on PostgreSQL the
    # claim commits by itself, and a failed read after it would leave the trial leased to nobody.
    constants = sweep_constants(statements.conn, sweep.id)
    if limited:
        with statements.transaction() as tx:  # the limits need the sweep's lock held to the claim
            return _claim_under_limits(tx, sweep, constants, holder, lease_seconds, cautious)
    return _claim_queued(statements.conn, sweep, constants, holder, lease_seconds, cautious)


def plan_sweeps(engine: Engine, holder: Holder, sweep_ids: Iterable[int] | None = None) -> list[int]:
    """The sweeps `holder`'s slot would serve, best first: fewest recent slot-seconds used by the
    sweep's owner, then higher priority, then older. (What `lease_trial` follows; for tests and views.)"""
    with dialect(engine).statements(engine) as statements:
        return [c.id for c in _plan(statements.conn, holder, None if sweep_ids is None else list(sweep_ids))]


def _plan(conn: Connection, holder: Holder, sweep_ids: list[int] | None) -> list[_Candidate]:
    if sweep_ids is None:
        rows = conn.execute(_PLAN_CLASS, {"b_box": holder.box, "b_device": holder.device}).all()
    else:
        rows = conn.execute(_PLAN_SOME, {"b_box": holder.box, "b_device": holder.device,
                                         "b_sweep_ids": sweep_ids}).all()
    if not rows:
        return []
    sweeps = [_Candidate(*row[:7]) for row in rows]
    reserved_by = slot_reserved_by(conn, holder.box, holder.slot) if rows[0][7] else None
    if reserved_by is not None:
        sweeps = [s for s in sweeps if s.owner == reserved_by]
    owners = {s.owner for s in sweeps}
    usage = _usage_by_owner(conn, owners) if len(owners) > 1 else {}
    return sorted(sweeps, key=lambda s: (usage.get(s.owner, 0.0), -s.priority, s.id))


def _usage_by_owner(conn: Connection, owners: Iterable[str]) -> dict[str, float]:
    """Slot-seconds each of `owners` used in the last FAIR_SHARE_WINDOW_S (running trials up to now)."""
    now = clock(conn)
    since = now - FAIR_SHARE_WINDOW_S
    # Each trial's [start, end] clipped to the window; portable CASEs (SQLite has no GREATEST).
    start = func.coalesce(Trial.started_at, Trial.heartbeat_at, now)
    end = func.coalesce(Trial.finished_at, now)
    clipped = case((start > since, start), else_=since)
    query = (select(Sweep.owner, func.sum(end - clipped)).join(Sweep, Sweep.id == Trial.sweep_id)
             .where(or_(Trial.status.in_(ACTIVE), Trial.finished_at >= since), Sweep.owner.in_(list(owners)))
             .group_by(Sweep.owner))
    return {owner: max(0.0, float(used or 0.0)) for owner, used in conn.execute(query)}


class _Full:
    """`_claim_under_limits`'s answer when the sweep uses all its slots or its cost budget cannot
    cover one more trial."""


_FULL = _Full()


def _claim_under_limits(conn: Connection, sweep: _Candidate, constants: SweepConstants, holder: Holder,
                        lease_seconds: float, cautious: bool = False) -> Lease | _Full | None:
    """In a transaction: lock the sweep's row (held to commit), then claim a queued trial only below
    its slot cap and only if its cost budget covers one more trial. None: room, but nothing queued."""
    conn.execute(select(Sweep.id).where(Sweep.id == sweep.id).with_for_update())
    spent, active = spending(conn, sweep.id, costed=bool(sweep.max_total_cost))
    if sweep.max_slots and active >= sweep.max_slots:
        return _FULL
    if sweep.max_total_cost and not budget_covers(spent, active, sweep.max_total_cost, constants.cost_cap):
        if not active:  # with nothing in flight no finish can make room: the sweep is done
            finish_sweep_if_spent(conn, sweep.id, holder.agent)
        return _FULL
    return _claim_queued(conn, sweep, constants, holder, lease_seconds, cautious) if sweep.has_queued else None


def _claim_queued(conn: Connection, sweep: _Candidate, constants: SweepConstants, holder: Holder,
                  lease_seconds: float, cautious: bool = False) -> Lease | None:
    """Claim the sweep's lowest-numbered queued trial in one statement, skipping rows others hold."""
    token = uuid.uuid4().hex
    params = {"b_sweep_id": constants.id, "b_box": holder.box, "b_slot": holder.slot, "b_agent": holder.agent,
              "b_token": token, "b_lease_seconds": lease_seconds}
    row = conn.execute(_CLAIM_CAUTIOUS if cautious else _CLAIM, params).first()
    if row is None:
        return None
    return _make_lease(constants, (sweep.max_trials, sweep.max_total_cost), token, *row)


def _make_lease(sweep: SweepConstants, budget: tuple[int, float], token: str, trial_id: int, number: int, kind: str,
                params: dict[str, Any], seed: int, attempts: int, expires_at: float) -> Lease:
    """A Lease from a claimed row, its sweep's constants and its budget as last read: no database access."""
    return Lease(trial_id=trial_id, token=token, sweep_id=sweep.id, sweep_name=sweep.name, number=number, kind=kind,
                 params=dict(params), seed=seed, attempt=attempts, spec=sweep.spec, expires_at=float(expires_at),
                 max_trials=int(budget[0]), max_total_cost=float(budget[1]))


def _suggest_and_lease(engine: Engine, candidate: _Candidate, holder: Holder, propose: Propose,
                       lease_seconds: float) -> Lease | None:
    """Lease a new trial proposed by the sweep's searcher, or None when the sweep can take none."""
    tries = dialect(engine).optimistic_tries
    for attempt in range(tries + 1):
        under_lock = attempt == tries
        if not under_lock:
            with Session(engine) as session:
                sweep = session.get(Sweep, candidate.id)
                if sweep is None or sweep.status != SWEEP_RUNNING or budget_spent(session, sweep)[0]:
                    break  # the locked step below finishes a spent sweep
                seen = next_number(session, candidate.id)
                info, past = SweepInfo.of(sweep), read_history(session, candidate.id)
            proposal = propose(info, past)  # no transaction open: SQLite's write lock is free meanwhile
            if proposal is None:
                return None
        with Session(engine) as session, session.begin():
            sweep = lock_sweep(session, candidate.id)
            if not _may_add_trial(session, sweep, holder):
                return None
            number = next_number(session, sweep.id)
            if under_lock:
                proposal = propose(SweepInfo.of(sweep), read_history(session, sweep.id))
                if proposal is None:
                    return None
            elif number != seen:
                continue  # another trial was added since our snapshot: propose again with it pending
            return _insert_leased(session, sweep, number, proposal, holder, lease_seconds)
    # The snapshot said the sweep is done or not running: settle it under the lock.
    with Session(engine) as session, session.begin():
        _may_add_trial(session, lock_sweep(session, candidate.id), holder)
    return None


def _may_add_trial(session: Session, sweep: Sweep, holder: Holder) -> bool:
    """Under the sweep's lock: running, budget left, under its slot cap, slot not reserved for another."""
    if sweep.status != SWEEP_RUNNING:
        return False
    spent, active = budget_spent(session, sweep)
    if spent:
        if not active:
            finish_sweep_if_spent(session.connection(), sweep.id, holder.agent)
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
    return _make_lease(SweepConstants.of(sweep), (sweep.max_trials, sweep.max_total_cost), token, row.id, row.number,
                       row.kind, row.params, row.seed, row.attempts, row.lock_expires_at)


