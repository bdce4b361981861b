"""The worker as the agent runs it: `python -m sweepd.worker` in a subprocess, one JSON trial on
stdin, JSON-line events on the fd named by SWEEPD_REPORT_FD (docs/architecture.md).

Budgets are seconds. Cost-cap tolerance: the reported `cost` is counted from the worker process's
creation, so it must be <= the cap itself (plus 0.25 s for saving the policy and writing the result
after the evaluation deadline); the subprocess's whole wall time, seen from here, may exceed the cap
by at most 2 s (spawning the interpreter and reaping it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

COST_SLACK_S = 0.25
WALL_SLACK_S = 2.0


def run_worker(trial: dict[str, Any], timeout: float = 120) -> tuple[list[dict[str, Any]], int, str, float]:
    """Run one trial; returns (events, exit status, log text, wall seconds)."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), OMP_NUM_THREADS="1")
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "sweepd.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            pass_fds=(write_fd,))
    os.close(write_fd)
    log, _ = proc.communicate(json.dumps(trial).encode(), timeout=timeout)
    wall = time.time() - start
    with os.fdopen(read_fd, "rb") as events_pipe:
        events = [json.loads(line) for line in events_pipe.read().splitlines() if line.strip()]
    return events, proc.returncode, log.decode(errors="replace"), wall


def trial(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    base = {"trial_id": 1, "sweep": "test", "env": "snake", "trainer": "puffer", "command": None,
            "config": {"train": {}, "env": {}, "policy": {}}, "seed": 1234, "cost_cap": 60.0,
            "eval_episodes": 16, "eval_seeds": 2, "artifact_dir": str(tmp_path / "trial-1"), "device": "cpu"}
    base.update(fields)
    return base


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def only(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


# -- trainer "puffer" -----------------------------------------------------------------------------

needs_pufferlib = pytest.mark.pufferlib  # skipped without PufferLib's trainer (conftest.py checks once per run)


@needs_pufferlib
def test_snake_trial_reports_started_progress_result_and_checkpoint(tmp_path):
    events, status, log, _ = run_worker(trial(tmp_path, config={"train": {"total_timesteps": 100_000}}))
    assert status == 0, log
    assert events[0]["event"] == "started"
    assert events[-1]["event"] == "result"
    assert only(events, "progress"), events
    for point in only(events, "progress"):
        assert point["step"] > 0 and point["elapsed"] > 0 and isinstance(point["score"], float)
    result = events[-1]
    assert result["truncated"] is False
    assert result["steps"] >= 100_000
    assert len(result["per_seed"]) == 2
    assert result["score"] == pytest.approx(sum(result["per_seed"]) / 2)
    assert result["score_stderr"] >= 0
    assert all(done >= 16 for done in result["eval_episodes_done"])
    assert 0 < result["train_seconds"] < result["cost"]
    assert 0 < result["eval_seconds"] < result["cost"] <= 60.0

    import torch

    state = torch.load(result["checkpoint"], map_location="cpu")
    assert Path(result["checkpoint"]) == tmp_path / "trial-1" / "policy.pt"
    assert any("lstm" in key for key in state)


@needs_pufferlib
def test_total_timesteps_under_one_batch_trains_one_batch(tmp_path):
    # 1,000 steps is under snake's batch of 256 snakes x 64 steps: PuffeRL would divide by 0 epochs.
    events, status, log, _ = run_worker(trial(tmp_path, config={"train": {"total_timesteps": 1_000}}))
    assert status == 0, log
    result = events[-1]
    assert result["event"] == "result" and result["truncated"] is False
    assert result["steps"] == 256 * 64


@needs_pufferlib
def test_tiny_cost_cap_truncates_training_and_the_trial_ends_inside_the_cap(tmp_path):
    cap = 15.0
    events, status, log, wall = run_worker(
        trial(tmp_path, cost_cap=cap, config={"train": {"total_timesteps": 10**9}}))
    assert status == 0, log
    result = events[-1]
    assert result["event"] == "result"
    assert result["truncated"] is True
    assert result["steps"] < 10**9
    assert result["cost"] <= cap + COST_SLACK_S
    assert wall <= cap + WALL_SLACK_S


@needs_pufferlib
def test_unknown_env_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(trial(tmp_path, env="no_such_env"))
    assert status == 1
    assert [e["event"] for e in events] == ["failed"]
    assert events[0]["category"] == "setup"
    assert "unknown env 'no_such_env'" in events[0]["reason"]


@needs_pufferlib
def test_unknown_config_key_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(trial(tmp_path, config={"train": {"learning_rat": 0.1}}))
    assert status == 1
    assert events == [{"event": "failed", "category": "setup", "reason": events[0]["reason"]}]
    assert "learning_rat" in events[0]["reason"] and "learning_rate" in events[0]["reason"]


@needs_pufferlib
def test_batch_geometry_pufferlib_rejects_is_a_hyperparameter_failure(tmp_path):
    config = {"train": {"minibatch_size": 65536}}  # larger than the 16,384-step batch
    events, status, _, _ = run_worker(trial(tmp_path, config=config))
    assert status == 1
    assert events[-1]["event"] == "failed"
    assert events[-1]["category"] == "hyperparameter"


@needs_pufferlib
def test_diverging_loss_is_a_hyperparameter_failure(tmp_path):
    config = {"train": {"learning_rate": 1e30, "total_timesteps": 10**6}}
    events, status, _, _ = run_worker(trial(tmp_path, config=config))
    assert status == 1
    assert events[0]["event"] == "started"
    assert events[-1]["event"] == "failed"
    assert events[-1]["category"] == "hyperparameter"
    assert "non-finite" in events[-1]["reason"]


def test_malformed_trial_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(trial(tmp_path, cost_cap="soon"))
    assert status == 2
    assert events[0]["event"] == "failed" and events[0]["category"] == "setup"
    assert "cost_cap" in events[0]["reason"]


# -- trainer "command" ----------------------------------------------------------------------------

def command_trial(tmp_path: Path, body: str, *args: str, **fields: Any) -> dict[str, Any]:
    return trial(tmp_path, trainer="command", command=[sys.executable, script(tmp_path, body), *args],
                 **fields)


def test_command_reports_from_stdout_and_report_fd_become_progress_and_result(tmp_path):
    # The two channels are read as lines arrive: the pauses keep this test's order deterministic.
    body = """
        import json, sys, time
        from sweepd.report import report
        lr = float(sys.argv[2])
        print("plain log line")
        print(json.dumps({"step": 10, "score": 1.5}), flush=True)
        time.sleep(0.3)
        report(step=20, score=lr * 1000)
        time.sleep(0.3)
        print(json.dumps({"step": 30, "score": 7.0, "final": True, "checkpoint": "model.bin"}), flush=True)
    """
    events, status, log, _ = run_worker(
        command_trial(tmp_path, body, "--lr", "{train.learning_rate}",
                      config={"train": {"learning_rate": 0.003}}))
    assert status == 0, log
    assert [e["event"] for e in events] == ["started", "progress", "progress", "progress", "result"]
    assert [(e["step"], e["score"]) for e in only(events, "progress")] == [(10, 1.5), (20, 3.0), (30, 7.0)]
    result = events[-1]
    assert result["score"] == 7.0 and result["steps"] == 30 and result["truncated"] is False
    assert result["checkpoint"] == "model.bin"
    assert "plain log line" in log


def test_command_without_final_uses_the_last_score(tmp_path):
    body = """
        import json
        for step, score in [(1, 0.5), (2, 0.25)]:
            print(json.dumps({"step": step, "score": score}), flush=True)
    """
    events, status, _, _ = run_worker(command_trial(tmp_path, body))
    assert status == 0
    assert events[-1]["score"] == 0.25 and events[-1]["steps"] == 2


def test_command_is_stopped_at_the_cost_cap_with_its_last_score_truncated(tmp_path):
    body = """
        import itertools, json, time
        for step in itertools.count():
            print(json.dumps({"step": step, "score": float(step)}), flush=True)
            time.sleep(0.2)
    """
    cap = 3.0
    events, status, log, wall = run_worker(command_trial(tmp_path, body, cost_cap=cap))
    assert status == 0, log
    result = events[-1]
    assert result["event"] == "result" and result["truncated"] is True
    assert result["score"] == only(events, "progress")[-1]["score"] > 0
    assert result["cost"] <= cap + COST_SLACK_S
    assert wall <= cap + WALL_SLACK_S


def test_command_crashing_after_reports_is_a_hyperparameter_failure(tmp_path):
    body = """
        import json, sys
        print(json.dumps({"step": 1, "score": 1.0}), flush=True)
        sys.exit(3)
    """
    events, status, _, _ = run_worker(command_trial(tmp_path, body))
    assert status == 1
    assert events[-1] == {"event": "failed", "reason": "command exited with code 3", "category": "hyperparameter"}


def test_command_segfaulting_is_a_failure_naming_the_signal(tmp_path):
    body = """
        import os, signal
        os.kill(os.getpid(), signal.SIGSEGV)
    """
    events, status, _, _ = run_worker(command_trial(tmp_path, body))
    assert status == 1
    assert events[-1] == {"event": "failed", "reason": "command killed by SIGSEGV", "category": "hyperparameter"}


def test_command_with_a_broken_import_is_a_setup_failure(tmp_path):
    events, status, log, _ = run_worker(command_trial(tmp_path, "import no_such_module_for_sweepd\n"))
    assert status == 1
    assert events[-1]["category"] == "setup"
    assert "no_such_module_for_sweepd" in log  # the traceback is in the trial log


def test_command_that_cannot_start_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(trial(tmp_path, trainer="command", command=["/nonexistent/train"]))
    assert status == 1
    assert events == [{"event": "failed", "category": "setup", "reason": events[0]["reason"]}]


def test_command_placeholder_missing_from_the_config_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(command_trial(tmp_path, "pass\n", "{train.gamma}"))
    assert status == 1
    assert events[0]["category"] == "setup" and "train.gamma" in events[0]["reason"]


def test_command_exiting_zero_without_a_score_is_a_setup_failure(tmp_path):
    events, status, _, _ = run_worker(command_trial(tmp_path, "print('trained, forgot to report')\n"))
    assert status == 1
    assert events[-1]["category"] == "setup" and "without reporting" in events[-1]["reason"]


def test_build_failures_pause_only_for_what_no_searched_value_causes():
    from sweepd.envs import UnknownEnvError
    from sweepd.envs.family import ConfigKeyError

    from sweepd.worker.puffer import _build_failure

    for exc in (ModuleNotFoundError("no module named 'gym_typo'"), UnknownEnvError("snak", ["snake"]),
                ConfigKeyError("snake", "train", "learning_rat", ["learning_rate"]), FileNotFoundError("map.bin")):
        assert _build_failure(exc).category == "setup", exc
    for exc in (ValueError("num_snakes must be positive"), RuntimeError("CUDA out of memory")):
        assert _build_failure(exc).category == "hyperparameter", exc
