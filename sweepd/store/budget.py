"""A sweep's budget: `max_trials` trials made, or `max_total_cost` seconds spent (every attempt's
cost, re-runs included, in `trials.spent`). New trials start only while the budget covers them
even if every trial in flight costs its most (`max_charge`: the cost cap plus the agent's kill
grace, which is all any attempt is ever charged); a sweep whose budget is spent and that has
nothing in flight is finished. Hence spent + max_charge x (trials in flight) <= max_total_cost holds
at every moment, and the sum of `spent` never exceeds max_total_cost (docs/architecture.md).
"""

from __future__ import annotations

from sqlalchemy import Connection, case, func, select, update
from sqlalchemy.orm import Session

from sweepd.settings import COST_GRACE_S
from sweepd.store.audit import record_event
from sweepd.store.dialect import clock
from sweepd.store.models import ACTIVE, QUEUED, SWEEP_FINISHED, SWEEP_RUNNING, Sweep, Trial
from sweepd.store.sweeps import cost_cap, next_number, sweep_constants


def spending(conn: Connection | Session, sweep_id: int, *, costed: bool) -> tuple[float, int]:
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


def max_charge(cap: float) -> float:
    """The most one attempt of a sweep whose cost cap is `cap` is charged (`SweepSettings.max_charge`):
    the agent kills its worker at the cap plus COST_GRACE_S and records no more than that."""
    return cap + COST_GRACE_S


def budget_covers(spent: float, active: int, max_total_cost: float, cap: float) -> bool:
    """Whether one more trial fits the cost budget even if it and every trial in flight are charged
    their most (`max_charge(cap)`): spent + in-flight charges never exceed max_total_cost."""
    return spent + (active + 1) * max_charge(cap) <= max_total_cost * (1 + 1e-9)


def budget_spent(session: Session, sweep: Sweep) -> tuple[bool, int]:
    """Whether no new trial may start (max_trials made, or max_total_cost cannot cover one more at
    its most on top of what was spent and every trial in flight at its most), and how many
    trials are in flight."""
    spent, active = spending(session, sweep.id, costed=bool(sweep.max_total_cost))
    if sweep.max_trials and next_number(session, sweep.id) > sweep.max_trials:
        return True, active
    if sweep.max_total_cost and not budget_covers(spent, active, sweep.max_total_cost, cost_cap(sweep.spec)):
        return True, active
    return False, active


def finish_sweep_if_spent(conn: Connection, sweep_id: int, actor: str) -> None:
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
        spent, _ = spending(conn, sweep_id, costed=True)
        done = not budget_covers(spent, 0, max_total_cost, sweep_constants(conn, sweep_id).cost_cap)
    if done:
        now = clock(conn)
        conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SWEEP_FINISHED, finished_at=now))
        record_event(conn, now, actor, "sweep_finished", "budget spent", sweep_id=sweep_id)
