"""The kill matrix, with real `sweepd agent` processes on PostgreSQL and 3 s leases: whatever dies
(a worker, an agent, a frozen box, the database connection), the sweep completes with one
observation per trial, none lost, none doubled, nothing left running."""

from __future__ import annotations

import signal
import subprocess

import pytest
from harness import Team, alive, descendants, retry_db, signal_pid, wait_for, worker_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def running(team: Team, number: int) -> bool:
    trials = [t for t in team.trials() if t.number == number]
    return bool(trials) and trials[0].status == "running" and bool(team.runs(number))


def test_sigkilled_worker_fails_its_trial_and_the_sweep_goes_on(team: Team):
    team.launch(trials=3, steps=10)
    agent = team.agent("box-a", step_seconds=0.2)
    wait_for(lambda: running(team, 1), what="trial 1 running")
    signal_pid(worker_of(agent), signal.SIGKILL)
    team.wait_all()
    rows = team.assert_complete(trials=3)
    assert [t.status for t in rows] == ["failed", "succeeded", "succeeded"]
    # Killed by a signal after training started, as the OOM killer would: the config's failure,
    # observed by the searcher, not re-run.
    assert rows[0].failure_category == "hyperparameter" and "SIGKILL" in rows[0].failure_reason
    assert rows[0].attempts == 1 and len(team.runs(1)) == 1


def test_sigkilled_agent_leases_expire_and_another_agent_reruns_them(team: Team):
    team.launch(trials=4, steps=8)
    doomed = team.agent("box-a", slots=2, step_seconds=0.3)
    wait_for(lambda: running(team, 1) and running(team, 2), what="trials 1 and 2 running on box-a")
    orphans = descendants(doomed.pid)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in orphans), timeout=10, what="its workers dying with it")
    assert {t.status for t in team.trials() if t.number <= 2} <= {"leased", "running"}  # nobody told the DB
    team.agent("box-b", slots=2, step_seconds=0.1)
    team.wait_all()
    rows = team.assert_complete(trials=4)
    assert all(t.status == "succeeded" for t in rows)
    assert [t.attempts for t in rows[:2]] == [2, 2]  # re-queued once by box-b's reaper, run again
    assert {t.box for t in rows} == {"box-b"}
    assert all(len(team.runs(n)) == 2 for n in (1, 2))


def test_frozen_box_past_its_lease_has_its_late_result_rejected(team: Team):
    team.launch(trials=2, steps=10)
    frozen = team.agent("box-a", step_seconds=0.2)
    wait_for(lambda: running(team, 1), what="trial 1 running on box-a")
    first_run = team.runs(1)[0]
    tree = [frozen.pid, *descendants(frozen.pid)]
    for pid in tree:  # the whole box stops: agent, worker and training, like a paused VM
        signal_pid(pid, signal.SIGSTOP)
    try:
        team.agent("box-b", step_seconds=0.1)
        # box-b reaps the expired lease and runs trial 1 again, to the end.
        wait_for(lambda: len(team.runs(1)) == 2 and team.trial(1).status == "succeeded", timeout=40,
                 what="trial 1 re-run and recorded by box-b")
    finally:
        for pid in tree:
            signal_pid(pid, signal.SIGCONT)
    team.wait_all()
    rows = team.assert_complete(trials=2)
    trial = rows[0]
    # The frozen run finished after it thawed, but its token was gone: only the re-run's result counts.
    assert trial.metrics["checkpoint"] == f"run-{team.runs(1)[1]}" != f"run-{first_run}"
    assert trial.attempts == 2 and trial.box == "box-b"
    assert "lease lost" in team.logs() or "not recorded" in team.logs()


def pg_restart() -> None:
    """Restart the local PostgreSQL cluster (never leave it stopped)."""
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
    try:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                       capture_output=True, timeout=120)
    finally:
        state = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
        if "online" not in state:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                           capture_output=True, timeout=120)


def test_database_restart_mid_sweep_workers_keep_going_and_the_sweep_completes(team: Team):
    team.launch(trials=4, steps=15)
    team.agent("box-a", step_seconds=0.3)
    team.agent("box-b", step_seconds=0.3)
    wait_for(lambda: sum(running(team, n) for n in (1, 2)) == 2, what="two trials running")
    in_flight = {n: team.runs(n)[0] for n in (1, 2)}
    pg_restart()
    team.engine.dispose()  # the test's own pooled connections died with the server
    retry_db(lambda: team.trials())
    team.wait_all(timeout=90)
    rows = team.assert_complete(trials=4)
    assert all(t.status == "succeeded" for t in rows)
    # The trials running through the restart were never stopped: first attempt, first run, recorded.
    for number, pid in in_flight.items():
        assert rows[number - 1].attempts == 1 and team.runs(number) == [pid]
        assert rows[number - 1].metrics["checkpoint"] == f"run-{pid}"
    assert "database unavailable" in team.logs() and "database back" in team.logs()
