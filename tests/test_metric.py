"""`[sweep] metric` decides what a trial is scored by: a PufferLib env log key (`environment/<key>`
or `<key>`; the bare default "score" is the env family's own score), or a key a command trainer
reports (sweepd/report.py). A metric that cannot exist is refused in one line at launch when the
env family declares its keys, else the first trial fails as a setup error naming the keys that do
exist. Real CLI, agent, worker and PufferLib processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sweepd.settings import SpecError
from sweepd.spec import load_spec

SNAKE_METRIC = """\
extends = "snake"
[sweep]
metric = "{metric}"
"""

# Reports a score, a loss and an accuracy at each step, through sweepd.report.report().
TRAINER = """\
import sys
from sweepd.report import report
lr = float(sys.argv[1])
for step in range(1, 4):
    report(step=step, score=step * 10.0, loss=1.0 / step, accuracy=0.5 + lr * step)
"""

COMMAND_SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.lr}}"]

[sweep]
metric = "{metric}"
searcher = "random"
max_suggestion_cost = 60.0
max_trials = 1

[train]
lr = 0.01

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
center = 0.01
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, COLUMNS="400"))


def command_sweep(tmp_path: Path, metric: str) -> Path:
    script = tmp_path / "train.py"
    script.write_text(TRAINER)
    path = tmp_path / f"by_{metric}.toml"
    path.write_text(COMMAND_SWEEP.format(python=sys.executable, script=script, metric=metric))
    return path


# --- at launch ----------------------------------------------------------------------------------

def test_a_metric_the_env_family_never_logs_is_refused_at_launch_in_one_line(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(SNAKE_METRIC.format(metric="environment/lenght"))
    launched = cli("launch", str(path), "--detach")
    assert launched.returncode == 2
    (line,) = launched.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}:3: [sweep] metric 'environment/lenght' is not logged by env 'snake'")
    assert "perf, score, episode_return, episode_length" in line
    assert cli("status", "--json").stdout.count("typo") == 0  # nothing was written


@pytest.mark.parametrize("metric", ["score", "episode_length", "environment/episode_return"])
def test_metrics_the_env_family_logs_are_accepted(tmp_path, metric):
    path = tmp_path / "ok.toml"
    path.write_text(SNAKE_METRIC.format(metric=metric))
    assert load_spec(str(path)).settings.metric == metric


def test_a_pufferlib_config_metric_is_checked_against_the_family(tmp_path):
    path = tmp_path / "atari_typo.toml"
    path.write_text('extends = "breakout"\n[sweep]\nmetric = "score_per_life"\n')
    with pytest.raises(SpecError, match="its episode logs carry: episode_return, episode_length"):
        load_spec(str(path))


# --- command trainers, through `sweepd launch` ------------------------------------------------------

def trials_of(name: str) -> list[dict[str, Any]]:
    shown = cli("status", name, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["trials"]


def test_a_command_trial_is_scored_by_the_metric_it_names(tmp_path):
    launched = cli("launch", str(command_sweep(tmp_path, "accuracy")), "--no-live", "--name", "by-accuracy")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    (trial,) = trials_of("by-accuracy")
    assert trial["status"] == "succeeded"
    lr = trial["params"]["train.lr"]
    assert trial["score"] == pytest.approx(0.5 + lr * 3)  # the last accuracy, not the last score (30)
    assert [point[1] for point in trial["metrics"]["curve"]] == pytest.approx([0.5 + lr * s for s in (1, 2, 3)])


def test_a_command_that_never_reports_the_metric_fails_its_first_trial_naming_the_keys(tmp_path):
    launched = cli("launch", str(command_sweep(tmp_path, "val_accuracy")), "--no-live", "--name", "by-typo")
    assert launched.returncode == 1, launched.stdout + launched.stderr  # the sweep is paused
    (trial,) = trials_of("by-typo")
    assert (trial["status"], trial["failure_category"]) == ("failed", "setup")
    assert trial["failure_reason"].startswith(
        "metric 'val_accuracy' was never reported; the command reported: accuracy, loss, score")


# --- PufferLib trials, through the worker --------------------------------------------------------

needs_pufferlib = pytest.mark.pufferlib  # skipped without PufferLib's trainer (conftest.py checks once per run)


def run_worker(tmp_path: Path, env: str, metric: str) -> list[dict[str, Any]]:
    """One short PufferLib trial scored by `metric`; its events."""
    trial = {"trial_id": 1, "sweep": "test", "env": env, "trainer": "puffer", "command": None,
             "config": {"train": {"total_timesteps": 50_000}, "env": {}, "policy": {}}, "seed": 7,
             "cost_cap": 90.0, "eval_episodes": 16, "eval_seeds": 1, "metric": metric,
             "artifact_dir": str(tmp_path / f"trial-{metric.replace('/', '-')}"), "device": "cpu"}
    read_fd, write_fd = os.pipe()
    done = subprocess.run([sys.executable, "-m", "sweepd.worker"], input=json.dumps(trial).encode(),
                          capture_output=True, pass_fds=(write_fd,), timeout=180,
                          env=dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), OMP_NUM_THREADS="1"))
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        events = [json.loads(line) for line in pipe.read().splitlines()]
    assert events, textwrap.shorten(done.stdout.decode(errors="replace"), 2000)
    return events


@pytest.mark.slow
@needs_pufferlib
def test_a_puffer_trial_is_scored_by_the_env_log_key_the_metric_names(tmp_path):
    by_score = run_worker(tmp_path, "snake", "score")[-1]
    by_length = run_worker(tmp_path, "snake", "environment/episode_length")[-1]
    assert by_score["event"] == by_length["event"] == "result"
    # A snake's score is its length at death, at most one more than the steps it lived.
    assert by_length["score"] > by_score["score"] + 1


@pytest.mark.slow
@needs_pufferlib
def test_a_puffer_metric_no_log_carries_fails_the_first_trial_as_setup_naming_the_keys(tmp_path):
    # puffer_squared is PufferLib's generic family: it declares no keys, so its first trial checks.
    events = run_worker(tmp_path, "puffer_squared", "environment/win_rate")
    assert events[0]["event"] == "started"
    failed = events[-1]
    assert (failed["event"], failed["category"]) == ("failed", "setup")
    assert failed["reason"].startswith("metric 'environment/win_rate' is not logged by env 'puffer_squared' "
                                       "(its episode logs carry: ")
    assert "score" in failed["reason"]
