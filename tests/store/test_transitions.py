"""Each queue transition, on SQLite and PostgreSQL: claim, heartbeat, finish, stale token, reap."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import event

from sweepd.store import boxes, db, queue

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


def test_success_after_an_infra_requeue_clears_the_failure_and_the_event_names_the_box(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    assert queue.fail_trial(engine, lease, "lease expired", "infra") == "queued"
    queued = queue.list_trials(engine, sweep.id)[0]
    assert (queued.failure_reason, queued.failure_category) == ("lease expired", "infra")  # why it waits again
    assert queue.finish_trial(engine, queue.lease_trial(engine, holder(), counting_proposer), 1.0, 2.0)
    trial = queue.list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.failure_reason, trial.failure_category) == ("succeeded", None, None)
    # The history stays in the audit log, with the box the failed attempt ran on.
    (requeued,) = boxes.events(engine, sweep_id=sweep.id, kind="trial_requeued")
    assert (requeued.box, requeued.detail, requeued.trial_id) == ("box-1", "lease expired", lease.trial_id)


def test_retry_clears_the_last_failure(engine):
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    lease = queue.lease_trial(engine, holder(), counting_proposer)
    queue.fail_trial(engine, lease, "NaN loss", "hyperparameter", cost=3.0)
    queue.retry_sweep(engine, sweep.id, "tester", failed=True)
    trial = queue.list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.failure_reason, trial.failure_category) == ("queued", None, None)
    assert [e.detail for e in boxes.events(engine, sweep_id=sweep.id, kind="trial_failed")] == ["NaN loss"]


def test_a_claim_is_the_last_statement_of_its_lease(db_url):
    """Everything the lease needs is read before the claim: on PostgreSQL the claim commits by
    itself, so a statement after it that failed would leave the trial leased to nobody."""
    engine = db.open_store(db_url)
    sweep = queue.create_sweep(engine, SPEC, owner="tester")
    queue.enqueue_trial(engine, sweep.id, {"x": 1})
    fresh = db.make_engine(db_url)  # no cached plan or sweep constants
    statements: list[str] = []
    event.listen(fresh, "before_cursor_execute", lambda *args: statements.append(args[2].lstrip().split()[0]))
    lease = queue.lease_trial(fresh, holder(), counting_proposer)
    assert lease is not None and lease.sweep_name == sweep.name and lease.spec == SPEC
    claim = statements.index("UPDATE")
    assert statements[claim + 1:] in ([], ["COMMIT"]), statements


def test_names_longer_than_their_columns_are_refused_in_one_line(engine):
    with pytest.raises(ValueError, match=r"the sweep name \(--name\) is 201 characters long; at most 200"):
        queue.create_sweep(engine, SPEC, owner="tester", name="n" * 201)
    with pytest.raises(ValueError, match=r"the box name \(--box\) is 201 characters long; at most 200"):
        queue.register_box(engine, "b" * 201, 1, "cpu", "tester", "agent-a")
    with pytest.raises(ValueError, match=r"the agent id .* is 215 characters long; at most 200"):
        queue.register_box(engine, "b" * 200, 1, "cpu", "tester", "b" * 200 + ":12345:abcdef01")
    assert queue.list_sweeps(engine) == [] and boxes.box_status(engine) == []
    # At the limits everything works, PostgreSQL included: an agent id is also the actor of its events.
    box, agent = "b" * 180, "b" * 180 + ":12345:abcdef01"
    queue.register_box(engine, box, 1, "cpu", "tester", agent)
    sweep = queue.create_sweep(engine, SPEC, owner="tester", name="n" * 200)
    lease = queue.lease_trial(engine, queue.Holder(agent=agent, box=box, slot=0, user="tester"), counting_proposer)
    assert queue.fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    assert [e.actor for e in boxes.events(engine, sweep_id=sweep.id, kind="trial_requeued")] == [agent]
