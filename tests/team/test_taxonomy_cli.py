"""Failure taxonomy end to end: a sweep whose first trials all crash within seconds is paused as a
broken setup, `sweepd status` says why, and `sweepd retry --failed` runs them again after the fix."""

from __future__ import annotations

import pytest
from harness import Team

from sweepd.store.history import sweep_history
from sweepd.store.review import list_trials
from sweepd.store.sweeps import find_sweep
from sweepd.store.transitions import SETUP_CHECK_TRIALS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_first_trials_crashing_fast_pause_the_sweep_and_retry_resumes_it(team: Team):
    sweep = team.launch(trials=SETUP_CHECK_TRIALS + 1, steps=2)
    team.agent("box-a", step_seconds=0.05, TOY_CRASH_AFTER_FIRST_STEP="1")
    team.wait_all()  # --until-done: the agent leaves once the sweep is paused
    info = find_sweep(team.engine, sweep.id)
    assert info.status == "paused" and "first 3 trials all failed" in info.status_reason
    shown = team.cli("status")
    assert "paused (broken setup? the first 3 trials all failed" in shown.stdout
    trials = list_trials(team.engine, sweep.id)
    assert len(trials) == SETUP_CHECK_TRIALS and {t.failure_category for t in trials} == {"setup"}
    assert sweep_history(team.engine, sweep.id).observations == ()  # the searcher learned nothing false

    retried = team.cli("retry", team.name, "--failed")
    assert retried.returncode == 0 and "re-queued 3 trial(s)" in retried.stdout and "resumed" in retried.stdout
    team.agent("box-a", step_seconds=0.05)  # the fix: no more crash
    team.wait_all()
    rows = team.assert_complete(trials=SETUP_CHECK_TRIALS + 1)
    assert all(t.status == "succeeded" for t in rows)
