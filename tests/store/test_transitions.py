"""Each queue transition, on SQLite and PostgreSQL: claim, heartbeat, finish, stale token, reap."""

from __future__ import annotations

import math
import time

import pytest

from sweepd.store import db, queue

SPEC = {"name": "toy", "env": "snake", "source": "test",
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 3,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def counting_proposer(sweep: queue.SweepInfo, history: queue.History) -> queue.Proposal:
    n = len(history.observations) + len(history.pending)
    return queue.Proposal(params={"x": n}, kind="random", predicted_cost=1.0)


@pytest.fixture
def engine(db_url):
    return db.open_store(db_url)


def holder(slot: int = 0, agent: str = "agent-a") -> queue.Holder:
    return queue.Holder(agent=agent, box="box-1", slot=slot, user="tester")


def test_lease_creates_a_trial_with_a_fresh_token(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    first = queue.lease_trial(engine, holder(0), counting_proposer)
    second = queue.lease_trial(engine, holder(1), counting_proposer)
    assert (first.number, second.number) == (1, 2)
    assert first.token != second.token and first.params != second.params
    assert first.seed != second.seed
    trials = queue.list_trials(engine, sweep.id)
    assert [t.status for t in trials] == ["leased", "leased"]
    assert trials[0].lock_expires_at > trials[0].heartbeat_at


def test_searcher_sees_open_trials_as_pending(engine):
    queue.create_sweep(engine, SPEC, owner="tester")
    seen = []

    def propose(sweep, history):
        seen.append(history.pending)
        return counting_proposer(sweep, history)

    queue.lease_trial(engine, holder(0), propose)
    queue.lease_trial(engine, holder(1), propose)
    assert seen == [(), ({"x": 0},)]


def test_finish_records_result_and_history_observes_it(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.start_trial(engine, lease)
    assert queue.heartbeat_trial(engine, lease, 30.0, {"curve": [[1, 0.5, 1.0]]})
    assert queue.finish_trial(engine, lease, 2.5, 7.0, score_stderr=0.1, metrics={"steps": 10})
    trial = queue.list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.score, trial.cost, trial.metrics["steps"]) == ("succeeded", 2.5, 7.0, 10)
    assert queue.history(engine, sweep.id).observations == (queue.Observed({"x": 0}, 2.5, 7.0, False),)


def test_stale_token_writes_are_dropped(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    again = queue.lease_trial(engine, holder(agent="agent-b"), counting_proposer)
    assert again.trial_id == lease.trial_id and again.token != lease.token and again.attempt == 2
    assert not queue.heartbeat_trial(engine, lease, 30.0)
    assert not queue.finish_trial(engine, lease, 99.0, 1.0)
    assert queue.fail_trial(engine, lease, "late", "hyperparameter") is None
    assert queue.finish_trial(engine, again, 1.0, 2.0)
    assert queue.list_trials(engine, sweep.id)[0].score == 1.0


def test_infra_failure_requeues_once_then_abandons(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.fail_trial(engine, lease, "agent shutdown", "infra") == "abandoned"
    assert queue.history(engine, sweep.id).observations == ()


def test_hyperparameter_failure_is_observed_as_failed(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.fail_trial(engine, lease, "worker killed by SIGSEGV", "hyperparameter", cost=3.0) == "failed"
    (seen,) = queue.history(engine, sweep.id).observations
    assert seen.failed and math.isnan(seen.score) and seen.cost == 3.0


def test_setup_failure_pauses_the_sweep_with_the_reason(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    queue.fail_trial(engine, lease, "ModuleNotFoundError: No module named 'gym_typo'", "setup")
    info = queue.get_sweep(engine, sweep.id)
    assert info.status == "paused" and "gym_typo" in info.status_reason
    assert queue.lease_trial(engine, holder(), counting_proposer) is None


def test_expired_lease_is_reaped_and_requeued(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer, lease_seconds=0.2)
    time.sleep(0.4)
    assert queue.reap_expired(engine, "agent-b") == [lease.trial_id]
    trial = queue.list_trials(engine, sweep.id)[0]
    assert trial.status == "queued" and "lease expired" in trial.failure_reason
    assert not queue.finish_trial(engine, lease, 1.0, 1.0)


def test_sweep_finishes_when_budget_spent_and_nothing_open(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    leases = [queue.lease_trial(engine, holder(i), counting_proposer) for i in range(3)]
    assert queue.lease_trial(engine, holder(3), counting_proposer) is None  # max_trials = 3
    for lease in leases:
        queue.finish_trial(engine, lease, 1.0, 1.0)
    assert queue.get_sweep(engine, sweep.id).status == "finished"


def test_queued_trials_are_leased_before_new_suggestions(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    queue.enqueue_trial(engine, sweep.id, {"x": 42}, kind="baseline")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert lease.params == {"x": 42} and lease.kind == "baseline"


def test_sweep_names_are_unique_and_numbered(engine):
    assert queue.create_sweep(engine, SPEC, owner="tester").name == "toy-1"
    assert queue.create_sweep(engine, SPEC, owner="tester").name == "toy-2"
    with pytest.raises(ValueError, match="exists already"):
        queue.create_sweep(engine, SPEC, owner="tester", name="toy-1")
