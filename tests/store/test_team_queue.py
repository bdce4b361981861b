"""Team-mode queue rules on SQLite and PostgreSQL: fair share, slot caps, reservations at lease
time, the broken-setup rule, `retry_sweep`, and suggestions that never block on the searcher."""

from __future__ import annotations

import threading

import pytest

from sweepd.store import boxes, db, dialect, leasing
from sweepd.store.boxes import register_box
from sweepd.store.enqueue import enqueue_trial, enqueue_trials
from sweepd.store.history import Evidence, Proposal, sweep_history
from sweepd.store.leasing import Holder, Lease, lease_trial, plan_sweeps
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep, set_sweep_status
from sweepd.store.transitions import (
    MAX_ATTEMPTS,
    SETUP_CHECK_TRIALS,
    SETUP_FAST_SECONDS,
    fail_trial,
    finish_trial,
    retry_sweep,
)


def spec(name: str = "toy", *, max_trials: int = 0, priority: int = 0, max_slots: int = 0) -> dict:
    return {"name": name, "env": "snake", "source": "test",
            "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": max_trials,
                         "max_total_cost": 0.0, "priority": priority, "max_slots": max_slots,
                         "direction": "maximize"}}


def counting_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random")


def holder(slot: int = 0, box: str = "box-1", agent: str = "agent-a") -> Holder:
    return Holder(agent=agent, box=box, slot=slot, user="tester")


@pytest.fixture
def engine(db_url, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)  # each lease plans afresh: tests change the world between leases
    return db.open_store(db_url)


def run_for(engine, lease: Lease, seconds: float) -> None:
    """Pretend the trial ran `seconds`: what fair share counts."""
    from sqlalchemy import update

    from sweepd.store.models import Trial

    with engine.begin() as conn:
        conn.execute(update(Trial).where(Trial.id == lease.trial_id)
                     .values(started_at=Trial.heartbeat_at - seconds))


def test_fair_share_serves_the_owner_with_the_least_recent_usage_first(engine):
    alice = create_sweep(engine, spec("a", priority=5), owner="alice")
    bob = create_sweep(engine, spec("b"), owner="bob")
    assert plan_sweeps(engine, holder()) == [alice.id, bob.id]  # no usage yet: priority decides
    first = lease_trial(engine, holder(0), counting_proposer)
    assert first.sweep_id == alice.id
    run_for(engine, first, 600.0)
    # Alice holds 600 slot-seconds, Bob none: Bob's sweep goes first despite its lower priority.
    assert plan_sweeps(engine, holder(1)) == [bob.id, alice.id]
    assert lease_trial(engine, holder(1), counting_proposer).sweep_id == bob.id


def test_priority_orders_one_owners_sweeps(engine):
    low = create_sweep(engine, spec("low"), owner="alice")
    high = create_sweep(engine, spec("high", priority=2), owner="alice")
    assert plan_sweeps(engine, holder()) == [high.id, low.id]
    assert lease_trial(engine, holder(), counting_proposer).sweep_id == high.id


def test_max_slots_caps_concurrent_trials_then_falls_through(engine):
    capped = create_sweep(engine, spec("capped", priority=1, max_slots=2), owner="alice")
    other = create_sweep(engine, spec("other"), owner="alice")
    enqueue_trials(engine, capped.id, [{"x": i} for i in range(5)])
    got = [lease_trial(engine, holder(i), counting_proposer) for i in range(3)]
    assert [g.sweep_id for g in got] == [capped.id, capped.id, other.id]
    finish_trial(engine, got[0], 1.0, 1.0)
    assert lease_trial(engine, holder(3), counting_proposer).sweep_id == capped.id


def test_a_reserved_slot_serves_only_its_holders_sweeps(engine):
    register_box(engine, "box-1", 2, "cpu", "ops", "agent-a")
    bobs = create_sweep(engine, spec("b"), owner="bob")
    boxes.reserve_box(engine, "box-1", "alice", 3600, slots=1, note="paper deadline")
    assert lease_trial(engine, holder(0), counting_proposer) is None  # slot 0 is Alice's
    assert lease_trial(engine, holder(1), counting_proposer).sweep_id == bobs.id  # slot 1 is free
    alices = create_sweep(engine, spec("a"), owner="alice")
    assert lease_trial(engine, holder(0), counting_proposer).sweep_id == alices.id


def test_a_cached_plan_never_leases_onto_a_slot_reserved_since(engine, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 60.0)
    register_box(engine, "box-1", 1, "cpu", "ops", "agent-a")
    bobs = create_sweep(engine, spec("b"), owner="bob")
    enqueue_trials(engine, bobs.id, [{"x": i} for i in range(3)])
    assert lease_trial(engine, holder(0), counting_proposer).sweep_id == bobs.id  # plan cached
    boxes.reserve_box(engine, "box-1", "alice", 3600, note="mine now")
    assert lease_trial(engine, holder(0), counting_proposer) is None


def test_a_paused_sweep_is_not_leased_from_even_with_a_cached_plan(engine, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 60.0)
    sweep = create_sweep(engine, spec(), owner="alice")
    enqueue_trials(engine, sweep.id, [{"x": i} for i in range(3)])
    assert lease_trial(engine, holder(0), counting_proposer) is not None
    set_sweep_status(engine, sweep.id, "paused", "alice")
    assert lease_trial(engine, holder(0), counting_proposer) is None


def test_first_trials_all_failing_fast_pause_the_sweep_as_broken_setup(engine):
    sweep = create_sweep(engine, spec(), owner="alice")
    for _ in range(SETUP_CHECK_TRIALS):
        lease = lease_trial(engine, holder(), counting_proposer)
        assert fail_trial(engine, lease, "worker exited with code 1 after training started: KeyError 'obs'",
                                "hyperparameter", cost=2.0) == "failed"
    info = find_sweep(engine, sweep.id)
    assert info.status == "paused" and "first 3 trials all failed" in info.status_reason
    assert "KeyError" in info.status_reason
    # Those failures say nothing about the configs: the searcher does not learn from them.
    assert sweep_history(engine, sweep.id).observations == ()
    assert {t.failure_category for t in list_trials(engine, sweep.id)} == {"setup"}


def test_slow_failures_are_hyperparameter_failures_not_a_broken_setup(engine):
    sweep = create_sweep(engine, spec(), owner="alice")
    for _ in range(SETUP_CHECK_TRIALS):
        lease = lease_trial(engine, holder(), counting_proposer)
        fail_trial(engine, lease, "NaN loss", "hyperparameter", cost=SETUP_FAST_SECONDS + 5)
    assert find_sweep(engine, sweep.id).status == "running"
    assert len(sweep_history(engine, sweep.id).observations) == SETUP_CHECK_TRIALS


def test_retry_requeues_abandoned_and_with_failed_also_failed_trials_and_resumes(engine):
    sweep = create_sweep(engine, spec(max_trials=3), owner="alice")
    ok, hp, infra = (lease_trial(engine, holder(i), counting_proposer) for i in range(3))
    finish_trial(engine, ok, 1.0, 30.0)
    fail_trial(engine, hp, "NaN loss", "hyperparameter", cost=40.0)
    for _ in range(MAX_ATTEMPTS):  # infra failures: re-queued once, then abandoned
        fail_trial(engine, infra, "agent shutdown", "infra")
        infra = lease_trial(engine, holder(2), counting_proposer) or infra
    assert [t.status for t in list_trials(engine, sweep.id)] == ["succeeded", "failed", "abandoned"]
    assert find_sweep(engine, sweep.id).status == "finished"

    done = retry_sweep(engine, sweep.name, "alice")
    assert done.requeued == (3,) and done.resumed and done.sweep.status == "running"
    assert retry_sweep(engine, sweep.name, "alice", failed=True).requeued == (2,)
    trials = list_trials(engine, sweep.id)
    assert [t.status for t in trials] == ["succeeded", "queued", "queued"]
    assert trials[2].attempts == 0 and trials[1].cost is None
    assert lease_trial(engine, holder(), counting_proposer).number == 2  # leased before anything new


def test_retry_resumes_a_sweep_paused_by_a_setup_failure(engine):
    sweep = create_sweep(engine, spec(), owner="alice")
    lease = lease_trial(engine, holder(), counting_proposer)
    fail_trial(engine, lease, "ModuleNotFoundError: No module named 'gym_typo'", "setup")
    assert find_sweep(engine, sweep.id).status == "paused"
    done = retry_sweep(engine, sweep.id, "alice", failed=True)
    assert done.resumed and done.requeued == (1,)
    assert lease_trial(engine, holder(), counting_proposer).number == 1


def test_budget_is_exact_and_the_last_finish_finishes_the_sweep(engine):
    sweep = create_sweep(engine, spec(max_trials=2), owner="alice")
    a, b = (lease_trial(engine, holder(i), counting_proposer) for i in range(2))
    assert lease_trial(engine, holder(2), counting_proposer) is None
    finish_trial(engine, a, 1.0, 1.0)
    assert find_sweep(engine, sweep.id).status == "running"
    finish_trial(engine, b, 1.0, 1.0)
    assert find_sweep(engine, sweep.id).status == "finished"


def test_a_slow_searcher_blocks_neither_results_nor_queued_leases(db_url, monkeypatch):
    """The searcher runs outside any transaction: while one agent waits on a slow suggestion,
    another records a result and leases a queued trial (SQLite included: no write lock is held)."""
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)
    engine = db.open_store(db_url)
    slow = create_sweep(engine, spec("slow", priority=1), owner="alice")
    other = create_sweep(engine, spec("other"), owner="alice")
    running = lease_trial(engine, holder(9), counting_proposer)  # a trial of `slow`, in flight
    enqueue_trials(engine, other.id, [{"x": 1}])
    entered, release = threading.Event(), threading.Event()

    def slow_proposer(sweep, history):
        entered.set()
        release.wait(30)
        return counting_proposer(sweep, history)

    result: list = []
    thread = threading.Thread(target=lambda: result.append(lease_trial(engine, holder(0), slow_proposer)))
    thread.start()
    try:
        assert entered.wait(10)
        assert finish_trial(engine, running, 1.0, 1.0)
        assert lease_trial(engine, holder(1), counting_proposer, sweep_ids=[other.id]).sweep_id == other.id
        assert thread.is_alive()  # both went through while the searcher was still thinking
    finally:
        release.set()
        thread.join(30)
    assert result[0].sweep_id == slow.id and result[0].number == 2


def test_a_suggestion_made_from_a_stale_history_is_proposed_again(engine, monkeypatch):
    """Another trial added while the searcher ran on a snapshot: that proposal is discarded."""
    monkeypatch.setattr(dialect.PostgreSQL, "optimistic_tries", 2)  # SQLite makes 2 already
    sweep = create_sweep(engine, spec(), owner="alice")
    seen: list[int] = []

    def racing_proposer(info, history):
        seen.append(len(history.pending))
        if len(seen) == 1:  # someone else adds a trial while we think
            enqueue_trial(engine, sweep.id, {"x": "theirs"})
        return counting_proposer(info, history)

    lease = lease_trial(engine, holder(), racing_proposer)
    # The queued trial added mid-suggestion would normally be leased first; here the agent already
    # chose to suggest, so it proposes again with that trial pending.
    assert seen == [0, 1] and lease.params == {"x": 1} and lease.number == 2
