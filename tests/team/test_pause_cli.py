"""Pause and resume with real agents: a paused sweep's running trial finishes and is recorded (or,
with --requeue, is taken back from its agent and run again after resume), and the sweep completes."""

from __future__ import annotations

import pytest
from harness import Team, wait_for

from sweepd.store.audit import events
from sweepd.store.sweeps import find_sweep

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_pause_lets_the_running_trial_finish_then_resume_completes_the_sweep(team: Team):
    # ~10 s a trial at 0.1 s a step: the pause (a CLI start-up, seconds on a busy box) must land while trial 1 runs
    sweep = team.launch(trials=2, steps=100)
    team.agent("box-a")
    wait_for(lambda: [t for t in team.trials() if t.status == "running"], what="trial 1 running")
    paused = team.cli("pause", team.name)
    assert paused.returncode == 0, paused.stderr
    team.wait_all()  # --until-done: the agent leaves once its trial is done and the sweep is not running
    assert [(t.number, t.status, t.attempts) for t in team.trials()] == [(1, "succeeded", 1)], team.logs()
    assert find_sweep(team.engine, sweep.id).status == "paused"
    assert team.cli("resume", team.name).returncode == 0
    team.agent("box-a")
    team.wait_all()
    team.assert_complete(trials=2)


def test_pause_requeue_stops_the_running_trial_and_resume_runs_it_again(team: Team):
    sweep = team.launch(trials=1, steps=200)  # long enough to be running when paused
    team.agent("box-a")
    first = wait_for(lambda: team.runs(1), what="trial 1's first run")
    paused = team.cli("pause", team.name, "--requeue")
    assert paused.returncode == 0 and "re-queued 1 running trial(s) [1]" in paused.stdout, paused.stderr
    team.wait_all()
    assert "lease lost" in team.logs()
    assert [(t.status, t.attempts) for t in team.trials()] == [("queued", 0)]
    assert team.cli("resume", team.name).returncode == 0
    team.agent("box-a", step_seconds=0.01)
    team.wait_all()
    team.assert_complete(trials=1)
    assert len(team.runs(1)) == 2 and team.runs(1)[0] == first[0]  # run again from the start, once
    assert [e.kind for e in events(team.engine, sweep_id=sweep.id) if e.kind.startswith("sweep_")] == [
        "sweep_created", "sweep_paused", "sweep_running", "sweep_finished"]
