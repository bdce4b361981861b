"""Each transition, on SQLite and PostgreSQL: claim, start, heartbeat, finish, fail, stale token, reap,
retry, pause, stop and resume."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import event

from sweepd.store import boxes, db
from sweepd.store.audit import events
from sweepd.store.boxes import register_box
from sweepd.store.enqueue import enqueue_trial
from sweepd.store.history import Evidence, Outcome, Proposal, sweep_history
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep, list_sweeps, set_sweep_status
from sweepd.store.transitions import fail_trial, finish_trial, heartbeat_trial, reap_expired, retry_sweep, start_trial

SPEC = {"name": "toy", "env": "snake", "source": "test",
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 3,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def counting_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    n = len(history.observations) + len(history.pending)
    return Proposal(params={"x": n}, kind="random", predicted_cost=1.0)


@pytest.fixture
def engine(db_url):
    return db.open_store(db_url)


def holder(slot: int = 0, agent: str = "agent-a") -> Holder:
    return Holder(agent=agent, box="box-1", slot=slot, user="tester")


def test_lease_creates_a_trial_with_a_fresh_token(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    first = lease_trial(engine, holder(0), counting_proposer)
    second = lease_trial(engine, holder(1), counting_proposer)
    assert (first.number, second.number) == (1, 2)
    assert first.token != second.token and first.params != second.params
    assert first.seed != second.seed
    trials = list_trials(engine, sweep.id)
    assert [t.status for t in trials] == ["leased", "leased"]
    assert trials[0].lock_expires_at > trials[0].heartbeat_at


def test_searcher_sees_open_trials_as_pending(engine):
    create_sweep(engine, SPEC, owner="tester")
    seen = []

    def propose(sweep, history):
        seen.append(history.pending)
        return counting_proposer(sweep, history)

    lease_trial(engine, holder(0), propose)
    lease_trial(engine, holder(1), propose)
    assert seen == [(), ({"x": 0},)]


def test_finish_records_result_and_history_observes_it(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert start_trial(engine, lease)
    assert heartbeat_trial(engine, lease, 30.0, {"curve": [[1, 0.5, 1.0]]})
    assert finish_trial(engine, lease, 2.5, 7.0, score_stderr=0.1, metrics={"steps": 10})
    trial = list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.score, trial.cost, trial.metrics["steps"]) == ("succeeded", 2.5, 7.0, 10)
    assert sweep_history(engine, sweep.id).observations == (Outcome({"x": 0}, 2.5, 7.0, False),)


def test_stale_token_writes_are_dropped(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    again = lease_trial(engine, holder(agent="agent-b"), counting_proposer)
    assert again.trial_id == lease.trial_id and again.token != lease.token and again.attempt == 2
    assert not heartbeat_trial(engine, lease, 30.0)
    assert not finish_trial(engine, lease, 99.0, 1.0)
    assert fail_trial(engine, lease, "late", "hyperparameter") is None
    assert finish_trial(engine, again, 1.0, 2.0)
    assert list_trials(engine, sweep.id)[0].score == 1.0


def test_infra_failure_requeues_once_then_abandons(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "agent shutdown", "infra") == "abandoned"
    assert sweep_history(engine, sweep.id).observations == ()


def test_hyperparameter_failure_is_observed_as_failed(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "worker killed by SIGSEGV", "hyperparameter", cost=3.0) == "failed"
    (seen,) = sweep_history(engine, sweep.id).observations
    assert seen.failed and math.isnan(seen.score) and seen.cost == 3.0


def test_setup_failure_pauses_the_sweep_with_the_reason(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    fail_trial(engine, lease, "ModuleNotFoundError: No module named 'gym_typo'", "setup")
    info = find_sweep(engine, sweep.id)
    assert info.status == "paused" and "gym_typo" in info.status_reason
    assert lease_trial(engine, holder(), counting_proposer) is None


def test_expired_lease_is_reaped_and_requeued(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer, lease_seconds=0.2)
    time.sleep(0.4)
    assert reap_expired(engine, "agent-b") == [lease.trial_id]
    trial = list_trials(engine, sweep.id)[0]
    assert trial.status == "queued" and "lease expired" in trial.failure_reason
    assert not finish_trial(engine, lease, 1.0, 1.0)


def test_sweep_finishes_when_budget_spent_and_nothing_open(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    leases = [lease_trial(engine, holder(i), counting_proposer) for i in range(3)]
    assert lease_trial(engine, holder(3), counting_proposer) is None  # max_trials = 3
    for lease in leases:
        finish_trial(engine, lease, 1.0, 1.0)
    assert find_sweep(engine, sweep.id).status == "finished"


def test_queued_trials_are_leased_before_new_suggestions(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    enqueue_trial(engine, sweep.id, {"x": 42}, kind="baseline")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert lease.params == {"x": 42} and lease.kind == "baseline"


def test_sweep_names_are_unique_and_numbered(engine):
    assert create_sweep(engine, SPEC, owner="tester").name == "toy-1"
    assert create_sweep(engine, SPEC, owner="tester").name == "toy-2"
    with pytest.raises(ValueError, match="exists already"):
        create_sweep(engine, SPEC, owner="tester", name="toy-1")


def test_success_after_an_infra_requeue_clears_the_failure_and_the_event_names_the_box(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert fail_trial(engine, lease, "lease expired", "infra") == "queued"
    queued = list_trials(engine, sweep.id)[0]
    assert (queued.failure_reason, queued.failure_category) == ("lease expired", "infra")  # why it waits again
    assert finish_trial(engine, lease_trial(engine, holder(), counting_proposer), 1.0, 2.0)
    trial = list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.failure_reason, trial.failure_category) == ("succeeded", None, None)
    # The history stays in the audit log, with the box the failed attempt ran on.
    (requeued,) = events(engine, sweep_id=sweep.id, kind="trial_requeued")
    assert (requeued.box, requeued.detail, requeued.trial_id) == ("box-1", "lease expired", lease.trial_id)


def test_retry_clears_the_last_failure(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    fail_trial(engine, lease, "NaN loss", "hyperparameter", cost=3.0)
    retry_sweep(engine, sweep.id, "tester", failed=True)
    trial = list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.failure_reason, trial.failure_category) == ("queued", None, None)
    assert [e.detail for e in events(engine, sweep_id=sweep.id, kind="trial_failed")] == ["NaN loss"]


def test_a_claim_is_the_last_statement_of_its_lease(db_url):
    """Everything the lease needs is read before the claim: on PostgreSQL the claim commits by
    itself, so a statement after it that failed would leave the trial leased to nobody."""
    engine = db.open_store(db_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    enqueue_trial(engine, sweep.id, {"x": 1})
    fresh = db.make_engine(db_url)  # no cached plan or sweep constants
    statements: list[str] = []
    event.listen(fresh, "before_cursor_execute", lambda *args: statements.append(args[2].lstrip().split()[0]))
    lease = lease_trial(fresh, holder(), counting_proposer)
    assert lease is not None and lease.sweep_name == sweep.name and lease.spec == SPEC
    claim = statements.index("UPDATE")
    assert statements[claim + 1:] in ([], ["COMMIT"]), statements


def test_names_longer_than_their_columns_are_refused_in_one_line(engine):
    with pytest.raises(ValueError, match=r"the sweep name \(--name\) is 201 characters long; at most 200"):
        create_sweep(engine, SPEC, owner="tester", name="n" * 201)
    with pytest.raises(ValueError, match=r"the box name \(--box\) is 201 characters long; at most 200"):
        register_box(engine, "b" * 201, 1, "cpu", "tester", "agent-a")
    with pytest.raises(ValueError, match=r"the agent id .* is 215 characters long; at most 200"):
        register_box(engine, "b" * 200, 1, "cpu", "tester", "b" * 200 + ":12345:abcdef01")
    assert list_sweeps(engine) == [] and boxes.box_status(engine) == []
    # At the limits everything works, PostgreSQL included: an agent id is also the actor of its events.
    box, agent = "b" * 180, "b" * 180 + ":12345:abcdef01"
    register_box(engine, box, 1, "cpu", "tester", agent)
    sweep = create_sweep(engine, SPEC, owner="tester", name="n" * 200)
    lease = lease_trial(engine, Holder(agent=agent, box=box, slot=0, user="tester"), counting_proposer)
    assert fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    assert [e.actor for e in events(engine, sweep_id=sweep.id, kind="trial_requeued")] == [agent]


def test_start_moves_a_leased_trial_to_running_and_refuses_a_lost_lease(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    assert start_trial(engine, lease)
    trial = list_trials(engine, sweep.id)[0]
    assert trial.status == "running" and trial.started_at is not None
    assert fail_trial(engine, lease, "agent shutdown", "infra") == "queued"
    assert not start_trial(engine, lease)
    assert list_trials(engine, sweep.id)[0].status == "queued"


def test_heartbeat_extends_the_lease_by_the_database_clock(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer, lease_seconds=5.0)
    assert heartbeat_trial(engine, lease, 600.0)
    trial = list_trials(engine, sweep.id)[0]
    assert trial.lock_expires_at - trial.heartbeat_at == pytest.approx(600.0, abs=1.0)


def test_a_reaped_lease_is_requeued_once_then_abandoned(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    for status in ("queued", "abandoned"):
        lease = lease_trial(engine, holder(), counting_proposer, lease_seconds=0.1)
        time.sleep(0.3)
        assert reap_expired(engine, "agent-b") == [lease.trial_id]
        trial = list_trials(engine, sweep.id)[0]
        assert (trial.status, trial.lock_token, trial.lock_expires_at) == (status, None, None)
    kinds = [e.kind for e in events(engine, sweep_id=sweep.id) if e.kind.startswith("trial_")]
    assert kinds == ["trial_requeued", "trial_abandoned"]


def test_retry_requeues_abandoned_trials_as_fresh_attempts_and_resumes_a_paused_sweep(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    for _ in range(2):
        fail_trial(engine, lease_trial(engine, holder(), counting_proposer), "agent shutdown", "infra")
    set_sweep_status(engine, sweep.id, "paused", "tester", "looking")
    retried = retry_sweep(engine, sweep.name, "tester")
    assert retried.requeued == (1,) and retried.resumed and retried.sweep.status == "running"
    trial = list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.attempts, trial.box, trial.failure_reason) == ("queued", 0, None, None)
    assert [e.detail for e in events(engine, sweep_id=sweep.id, kind="sweep_retried")] == [
        "re-queued 1 trial(s) [1]; resumed"]


def test_a_setup_failure_pauses_only_a_running_sweep(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(), counting_proposer)
    set_sweep_status(engine, sweep.id, "stopped", "tester", "enough")
    assert fail_trial(engine, lease, "ImportError: gym_typo", "setup") == "failed"
    info = find_sweep(engine, sweep.id)
    assert (info.status, info.status_reason) == ("stopped", "enough")
    assert events(engine, sweep_id=sweep.id, kind="sweep_paused") == []


def test_pause_and_resume_set_the_sweep_status_and_leave_an_event_and_stop_is_final(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    paused = set_sweep_status(engine, sweep.name, "paused", "tester", "looking")
    assert (paused.status, paused.status_reason) == ("paused", "looking")
    assert lease_trial(engine, holder(), counting_proposer) is None
    resumed = set_sweep_status(engine, sweep.id, "running", "tester")
    assert (resumed.status, resumed.status_reason, resumed.finished_at) == ("running", None, None)
    stopped = set_sweep_status(engine, sweep.name, "stopped", "tester", "enough")
    assert (stopped.status, stopped.status_reason) == ("stopped", "enough") and stopped.finished_at is not None
    assert lease_trial(engine, holder(1), counting_proposer) is None
    assert set_sweep_status(engine, sweep.id, "running", "tester").status == "stopped"  # final
    assert [e.kind for e in events(engine, sweep_id=sweep.id)] == [
        "sweep_created", "sweep_paused", "sweep_running", "sweep_stopped"]
