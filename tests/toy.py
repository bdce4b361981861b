"""A tiny command trainer and its sweep file, for tests that need real trials in a second or two.

The trainer reports JSON lines like any user script (sweepd/report.py) and leaves its pid in
`<artifact_dir>/runs` (one line per run of the trial), so tests can find, freeze or kill it.
Knobs (environment): TOY_STEP_SECONDS (sleep per step, default 0.05), TOY_SEGV_TRIAL (the trial
id that segfaults at step 2), TOY_CRASH_AFTER_FIRST_STEP (exit 3 once training has reported),
TOY_HOPELESS_TRIAL (the trial id whose curve stays at -5, far below any other, and whose steps
take 5x as long: a run early stopping should end).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRAINER = """\
import json, os, signal, sys, time
lr, steps, art, trial = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
os.makedirs(art, exist_ok=True)
with open(os.path.join(art, "runs"), "a") as f:
    f.write(f"{os.getpid()}\\n")
pause = float(os.environ.get("TOY_STEP_SECONDS", "0.05"))
hopeless = os.environ.get("TOY_HOPELESS_TRIAL") == str(trial)
for step in range(1, steps + 1):
    if os.environ.get("TOY_SEGV_TRIAL") == str(trial) and step == 2:
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(pause * (5 if hopeless else 1))
    print(json.dumps({"step": step, "score": -5.0 if hopeless else step * 0.01 - abs(lr - 0.01)}), flush=True)
    if os.environ.get("TOY_CRASH_AFTER_FIRST_STEP"):  # a bug that bites once training runs
        sys.exit(3)
# Which run's result the database keeps is told by the checkpoint it names.
print(json.dumps({"step": steps, "score": -5.0 if hopeless else steps * 0.01 - abs(lr - 0.01), "final": True,
                  "checkpoint": f"run-{os.getpid()}"}), flush=True)
"""

SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.lr}}", "{{train.steps}}", "{{artifact_dir}}", "{{trial_id}}"]

[sweep]
searcher = "random"
max_suggestion_cost = 60.0
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


def write_toy_sweep(folder: Path, trials: int, steps: int, name: str = "toy") -> Path:
    """Write the trainer (once) and a sweep file `<name>.toml` running it; returns the sweep file."""
    script = folder / "toy_train.py"
    if not script.exists():
        script.write_text(TRAINER)
    path = folder / f"{name}.toml"
    path.write_text(SWEEP.format(python=sys.executable, script=script, trials=trials, steps=steps))
    return path


def toy_runs(artifacts: Path, sweep: str, number: int) -> list[int]:
    """Pids of each run of trial `number` of `sweep`, oldest first."""
    path = artifacts / sweep / f"trial-{number}" / "runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
