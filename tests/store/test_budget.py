"""The cost budget on SQLite and PostgreSQL: a trial starts only while max_total_cost covers what was
spent plus every trial in flight at its cost cap, and every attempt's cost is spent."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from sweepd.settings import COST_GRACE_S
from sweepd.store import db, leasing, review
from sweepd.store.enqueue import enqueue_trials
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, Lease, lease_trial
from sweepd.store.models import Trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, cost_cap, create_sweep, find_sweep
from sweepd.store.transitions import fail_trial, finish_trial, reap_expired, retry_sweep, start_trial

# max_suggestion_cost 48 s x cost_tolerance 1.25: each trial may run up to 60 s, and is charged at
# most that plus the agent's kill grace.
CAP = 60.0
MOST = CAP + COST_GRACE_S


def spec(max_total_cost: float, *, max_trials: int = 0) -> dict:
    return {"name": "costly", "env": "snake", "source": "test",
            "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 48.0, "cost_tolerance": 1.25,
                         "max_trials": max_trials, "max_total_cost": max_total_cost, "priority": 0,
                         "max_slots": 0, "direction": "maximize"}}


def counting_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random")


def holder(slot: int = 0) -> Holder:
    return Holder(agent="agent-a", box="box-1", slot=slot, user="tester")


@pytest.fixture
def engine(db_url, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)
    return db.open_store(db_url)


def lease_all(engine, slots: int = 6) -> list[Lease]:
    leases = [lease_trial(engine, holder(slot), counting_proposer) for slot in range(slots)]
    return [lease for lease in leases if lease is not None]


def test_trials_in_flight_count_at_their_cost_cap(engine):
    """The review's case: budget 100 s, cap 60 s, 6 free slots. One trial fits, not six."""
    sweep = create_sweep(engine, spec(100.0), owner="tester")
    (only,) = lease_all(engine)
    assert cost_cap(sweep.spec) == CAP
    finish_trial(engine, only, 1.0, 55.0)
    # 55 s spent: another trial could bring it to 115 s. Nothing may start; the sweep is done.
    assert lease_all(engine) == []
    assert find_sweep(engine, sweep.id).status == "finished"
    assert review.sweep_summaries(engine, [sweep.id])[0].cost_spent == 55.0


def test_as_many_trials_start_as_the_budget_covers_at_the_cap(engine):
    sweep = create_sweep(engine, spec(3 * MOST), owner="tester")
    first = lease_all(engine)
    assert len(first) == 3
    finish_trial(engine, first[0], 1.0, 20.0)  # 20 s spent + 2 in flight at their most: no room for a third
    assert lease_all(engine) == []
    for lease in first[1:]:
        finish_trial(engine, lease, 1.0, 20.0)
    # 60 s spent: two more fit at their most, and the sum never passes the budget.
    second = lease_all(engine)
    assert len(second) == 2
    for lease in second:
        finish_trial(engine, lease, 1.0, CAP)
    assert find_sweep(engine, sweep.id).status == "finished"
    assert sum(t.spent for t in list_trials(engine, sweep.id)) <= 3 * MOST


def test_queued_trials_start_only_within_the_budget(engine):
    sweep = create_sweep(engine, spec(100.0), owner="tester")
    enqueue_trials(engine, sweep.id, [{"x": i} for i in range(4)])
    (only,) = lease_all(engine)
    assert only.number == 1
    finish_trial(engine, only, 1.0, 50.0)
    # Nothing can start any more: the sweep finishes, leaving the trials it cannot pay for queued.
    assert find_sweep(engine, sweep.id).status == "finished"
    assert [t.status for t in list_trials(engine, sweep.id)] == ["succeeded", "queued", "queued", "queued"]


def test_an_infra_requeue_spends_the_attempts_cost(engine):
    sweep = create_sweep(engine, spec(3 * CAP), owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "agent shutdown", "infra", cost=45.0) == "queued"
    (trial,) = list_trials(engine, sweep.id)
    assert (trial.status, trial.spent, trial.cost) == ("queued", 45.0, None)
    # 45 s spent: two trials at their most fit (175 s of 180), a third would not (240 s).
    again, _new = lease_all(engine)
    assert again.trial_id == lease.trial_id and again.attempt == 2
    finish_trial(engine, again, 1.0, 30.0)
    (trial, _) = list_trials(engine, sweep.id)
    assert (trial.cost, trial.spent) == (30.0, 75.0)


def test_a_reaped_attempt_spends_what_it_ran_until_its_last_heartbeat(engine):
    sweep = create_sweep(engine, spec(10 * CAP), owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert start_trial(engine, lease)
    with engine.begin() as conn:  # it started 40 s before its last heartbeat, and that lease is over
        conn.execute(update(Trial).where(Trial.id == lease.trial_id)
                     .values(started_at=Trial.heartbeat_at - 40.0, lock_expires_at=Trial.heartbeat_at - 1.0))
    assert reap_expired(engine, "agent-b") == [lease.trial_id]
    (trial,) = list_trials(engine, sweep.id)
    assert trial.status == "queued" and trial.spent == pytest.approx(40.0)


def test_retry_keeps_what_earlier_attempts_spent(engine):
    sweep = create_sweep(engine, spec(10 * CAP), owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    fail_trial(engine, lease, "NaN loss", "hyperparameter", cost=40.0)
    assert retry_sweep(engine, sweep.id, "tester", failed=True).requeued == (1,)
    (trial,) = list_trials(engine, sweep.id)
    assert (trial.cost, trial.spent) == (None, 40.0)
    finish_trial(engine, lease_trial(engine, holder(), counting_proposer), 1.0, 10.0)
    assert list_trials(engine, sweep.id)[0].spent == 50.0
    assert review.sweep_summaries(engine, [sweep.id])[0].cost_spent == 50.0


def test_a_trial_budget_alone_still_counts_trials_not_cost(engine):
    sweep = create_sweep(engine, spec(0.0, max_trials=3), owner="tester")
    leases = lease_all(engine)
    assert len(leases) == 3
    for lease in leases:
        finish_trial(engine, lease, 1.0, 1000.0)
    assert find_sweep(engine, sweep.id).status == "finished"
