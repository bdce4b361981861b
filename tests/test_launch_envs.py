"""`sweepd launch` runs real trials of every env family on this CPU box with its bundled sweep file
(a tiny cost cap: each trial is stopped at the cap, evaluated and recorded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# env -> the per-trial cap for this test (Atari's worker spends ~30 s starting and evaluating;
# snake's sweep file has a budget_param, so its launch probes first and refuses a cap that leaves no
# training time after start-up and evaluation: 7 s on an idle 2-core box, 21 s on a loaded one)
CAPS = {"snake": 30.0, "puffer_breakout": 20.0, "gpudrive": 30.0, "breakout": 90.0}


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(CAPS))
def test_launch_runs_a_real_trial_of_each_family(env):
    cap = CAPS[env]
    run = subprocess.run([sys.executable, "-m", "sweepd.cli", "launch", env, "--max-trials", "1",
                          "--max-suggestion-cost", str(cap), "--no-live", "--no-wandb", "--name", f"{env}-t"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    status = subprocess.run([sys.executable, "-m", "sweepd.cli", "status", f"{env}-t", "--json"],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    (trial,) = json.loads(status.stdout)["trials"]
    assert trial["status"] == "succeeded", trial["failure_reason"]
    assert trial["score"] is not None and trial["metrics"]["steps"] > 0
    # the worker stops at max_suggestion_cost x cost_tolerance (1.25); the agent adds no cost of its own
    assert trial["cost"] <= cap * 1.25 + 1.0
