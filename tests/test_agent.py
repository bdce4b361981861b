"""The sweep loop end to end through the real CLI, agent and worker processes, with a tiny
command trainer: a sweep runs to completion, and killed workers or agents lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toy import alive, toy_runs, wait_for, write_toy_sweep


@pytest.fixture
def toy(tmp_path: Path):
    def make(trials: int = 3, steps: int = 5) -> Path:
        return write_toy_sweep(tmp_path, trials, steps, name=f"toy{trials}x{steps}")

    return make


def sweepd(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 180), env=kwargs.pop("env", dict(os.environ)), **kwargs)


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sweepd.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env or dict(os.environ))


def status(name: str) -> dict:
    result = sweepd("status", name, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def pid_of(sweep: str, number: int) -> int | None:
    runs = toy_runs(Path(os.environ["SWEEPD_HOME"]) / "artifacts", sweep, number)
    return runs[-1] if runs else None


def test_sweep_runs_to_completion_with_front(toy):
    result = sweepd("launch", str(toy(trials=3)), "--no-live", "--name", "toy-run", "--searcher", "carbs")
    assert result.returncode == 0, result.stdout + result.stderr
    data = status("toy-run")
    assert data["sweep"]["status"] == "finished"
    assert [t["status"] for t in data["trials"]] == ["succeeded"] * 3
    assert all(t["cost"] > 0 and t["score"] is not None for t in data["trials"])
    assert data["trials"][0]["params"] == {"train.lr": 0.01}  # carbs runs the centre (the defaults) first
    assert data["front"], "a finished sweep has a Pareto front"
    assert len(data["trials"][0]["metrics"]["curve"]) >= 3


def test_segfaulting_trial_fails_with_reason_and_sweep_finishes(toy):
    env = dict(os.environ, TOY_SEGV_TRIAL="2")
    result = sweepd("launch", str(toy(trials=3)), "--no-live", "--name", "toy-crash", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = status("toy-crash")["trials"]
    assert [t["status"] for t in trials] == ["succeeded", "failed", "succeeded"]
    assert "SIGSEGV" in trials[1]["failure_reason"]
    assert trials[1]["failure_category"] == "hyperparameter"


def test_worker_killed_mid_trial_fails_and_sweep_goes_on(toy):
    env = dict(os.environ, TOY_STEP_SECONDS="0.5")
    agent = start("launch", str(toy(trials=2, steps=6)), "--no-live", "--name", "toy-kill", env=env)
    try:
        pid = wait_for(lambda: pid_of("toy-kill", 1))
        time.sleep(0.6)
        os.kill(pid, signal.SIGKILL)
        out, _ = agent.communicate(timeout=120)
    finally:
        agent.kill()
    assert agent.returncode == 0, out
    trials = status("toy-kill")["trials"]
    assert [t["status"] for t in trials] == ["failed", "succeeded"], out
    assert "SIGKILL" in trials[0]["failure_reason"]


def test_killed_agent_is_resumed_by_another_and_nothing_is_lost(toy):
    env = dict(os.environ, TOY_STEP_SECONDS="0.3")
    first = start("launch", str(toy(trials=2, steps=8)), "--no-live", "--name", "toy-resume",
                  "--lease-seconds", "3", env=env)
    try:
        worker_pid = wait_for(lambda: pid_of("toy-resume", 1))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # The worker dies with its agent: no orphan keeps training on the slot.
        wait_for(lambda: not alive(worker_pid), timeout=10)
        running = status("toy-resume")["trials"]
        assert [t["status"] for t in running] in (["leased"], ["running"])
    finally:
        first.kill()
    second = sweepd("agent", "--sweep", "toy-resume", "--exit-when-idle", "--lease-seconds", "3", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    data = status("toy-resume")
    assert data["sweep"]["status"] == "finished"
    assert [t["status"] for t in data["trials"]] == ["succeeded", "succeeded"]
    assert data["trials"][0]["attempts"] == 2  # re-queued once after its lease expired


def test_sigterm_gives_grace_then_requeues_running_trial(toy):
    env = dict(os.environ, TOY_STEP_SECONDS="0.5")
    agent = start("launch", str(toy(trials=1, steps=20)), "--no-live", "--name", "toy-term",
                  "--grace-seconds", "1", env=env)
    try:
        wait_for(lambda: pid_of("toy-term", 1))
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=60)
    finally:
        agent.kill()
    trial = status("toy-term")["trials"][0]
    assert trial["status"] == "queued", out
    assert trial["failure_reason"] == "agent shutdown"
    assert trial["lock_owner"] is None and trial["lock_expires_at"] is None  # the lease is released
