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

TRAINER = """\
import json, os, signal, sys, time
lr, steps, trial = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
art = sys.argv[4]
with open(os.path.join(art, "pid"), "w") as f:
    f.write(str(os.getpid()))
crash = os.environ.get("TOY_CRASH_TRIAL")
for step in range(1, steps + 1):
    if crash and int(crash) == trial and step == 2:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(float(os.environ.get("TOY_STEP_SECONDS", "0.05")))
    print(json.dumps({"step": step, "score": -(lr - 0.01) ** 2 * 1e4 + step * 0.01}), flush=True)
"""

SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.lr}}", "{{train.steps}}", "{{trial_id}}", "{{artifact_dir}}"]

[sweep]
searcher = "random"
max_suggestion_cost = 30.0
max_trials = {trials}
eval_episodes = 1
eval_seeds = 1

[train]
steps = {steps}

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
center = 0.01
"""


@pytest.fixture
def toy(tmp_path: Path):
    script = tmp_path / "toy_train.py"
    script.write_text(TRAINER)

    def make(trials: int = 3, steps: int = 5) -> Path:
        path = tmp_path / f"toy{trials}x{steps}.toml"
        path.write_text(SWEEP.format(python=sys.executable, script=script, trials=trials, steps=steps))
        return path

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


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def pid_file(trial_id: int) -> int | None:
    home = Path(os.environ["SWEEPD_HOME"]) / "artifacts"
    found = list(home.glob(f"*/trial-{trial_id}/pid"))
    text = found[0].read_text() if found else ""
    return int(text) if text else None


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
    env = dict(os.environ, TOY_CRASH_TRIAL="2")
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
        pid = wait_for(lambda: pid_file(1))
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
        worker_pid = wait_for(lambda: pid_file(1))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # The worker dies with its agent: no orphan keeps training on the slot.
        wait_for(lambda: not _alive(worker_pid), timeout=10)
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
        wait_for(lambda: pid_file(1))
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=60)
    finally:
        agent.kill()
    trial = status("toy-term")["trials"][0]
    assert trial["status"] == "queued", out
    assert trial["failure_reason"] == "agent shutdown" and trial["lock_token"] is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False
