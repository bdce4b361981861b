"""wandb tracking: trial runs and the Pareto summary run, read back from wandb's offline files;
the tracker's mode, its time box, and a real sweep through the CLI logging offline."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sweepd import tracking
from sweepd.store import db, review
from sweepd.store.enqueue import FinishedTrial, enqueue_trial, import_trials
from sweepd.store.sweeps import create_sweep, find_sweep

PARAMS = [{"name": "train.lr", "space": "log", "min": 1e-3, "max": 1e-1, "center": 1e-2, "integer": False}]
SPEC = {"name": "tracked", "env": "toy", "trainer": "command", "source": "test", "command": [], "defaults": {},
        "params": PARAMS,
        "settings": {"searcher": "random", "seed": 0, "max_suggestion_cost": 60.0, "max_trials": 4,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize",
                     "wandb_project": "sweepd-tests"}}


# --- reading wandb's offline run files ------------------------------------------------------------

def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a `.wandb` file (LevelDB log format: 32 KiB blocks of framed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        if kind in (1, 2):  # full, first
            pending = chunk
        elif kind in (3, 4):  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


class OfflineRun:
    """What a `.wandb` file says about one run: identity, config, history rows, summary, exit code."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.tags: list[str] = []
        for record in wandb_records(next(run_dir.glob("run-*.wandb"))):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
                self.id, self.project, self.group, self.job_type = run.run_id, run.project, run.run_group, run.job_type
                self.tags = list(run.tags)
                self.config.update({u.key: json.loads(u.value_json) for u in run.config.update})
            elif kind == "config":
                self.config.update({u.key: json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                self.history.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                                     for i in record.history.item})
            elif kind == "summary":
                for u in record.summary.update:
                    if u.key:
                        self.summary[u.key] = json.loads(u.value_json)
            elif kind == "exit":
                self.exit_code = record.exit.exit_code

    def table(self, key: str) -> dict[str, Any]:
        """A logged wandb.Table, read from the run's media files."""
        (path,) = self.dir.glob(f"files/media/table/{key}_*.table.json")
        return json.loads(path.read_text())


def offline_runs(directory: Path) -> dict[str, list[OfflineRun]]:
    """Runs under `directory/wandb`, by run id, oldest first (a resumed summary run has several dirs)."""
    runs: dict[str, list[OfflineRun]] = {}
    for run_dir in sorted((directory / "wandb").glob("offline-run-*"), key=lambda p: p.stat().st_mtime_ns):
        run = OfflineRun(run_dir)
        runs.setdefault(run.id, []).append(run)
    return runs


# --- runs written from the database --------------------------------------------------------------

def test_each_trial_is_a_finished_run_and_the_front_a_table(sqlite_url, tmp_path):
    engine = db.open_store(sqlite_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    curve = [[100, 0.5, 1.0], [200, 0.8, 2.0], [300, 1.0, 3.0]]
    import_trials(engine, sweep.id, [
        FinishedTrial({"train.lr": 0.01}, 1.0, 10.0, metrics={"curve": curve}),
        FinishedTrial({"train.lr": 0.01}, 1.4, 12.0, metrics={"curve": curve}),
        FinishedTrial({"train.lr": 0.05}, 2.0, 30.0, metrics={"curve": curve}),
        FinishedTrial({"train.lr": 0.09}, None, 5.0, status="failed", failure_reason="NaN loss")])
    trials = review.trial_table(engine, sweep.id)

    written = tracking.write_runs({"db": sqlite_url, "mode": "offline", "project": None, "dir": str(tmp_path),
                                   "trials": [t.id for t in trials]})

    assert written == 4
    runs = offline_runs(tmp_path)
    for t in trials:
        (run,) = runs[tracking.trial_run_id(sweep, t.number)]
        assert (run.project, run.group, run.job_type) == ("sweepd-tests", sweep.name, "trial")
        assert run.config["train.lr"] == t.params["train.lr"] and run.config["seed"] == t.seed
        assert run.summary["status"] == t.status
        assert run.exit_code == (0 if t.status == "succeeded" else 1)
    first = runs[tracking.trial_run_id(sweep, 1)][0]
    assert [(h["_step"], h["curve/score"]) for h in first.history] == [(100, 0.5), (200, 0.8), (300, 1.0)]
    assert (first.summary["score"], first.summary["cost"]) == (1.0, 10.0)
    assert runs[tracking.trial_run_id(sweep, 4)][0].summary["failure_reason"] == "NaN loss"

    (summary,) = runs[tracking.summary_run_id(sweep)]
    assert (summary.group, summary.job_type) == (sweep.name, "summary")
    table = summary.table("pareto")
    assert table["columns"][:9] == ["cost", "score", "score_stderr", "seeds", "steps", "truncated", "stopped",
                                    "trials", "runs"]
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [(r["cost"], r["score"], r["seeds"], r["trials"]) for r in rows] == [(11.0, 1.2, 2, "1,2"),
                                                                                  (30.0, 2.0, 1, "3")]
    assert rows[0]["runs"].split() == [tracking.trial_run_id(sweep, 1), tracking.trial_run_id(sweep, 2)]
    assert summary.summary["front_size"] == 2
    assert list(summary.dir.glob("files/media/images/pareto_plot_*.png")), "the cost-vs-score plot"

    # Same front again: the summary run is not rewritten.
    tracking.write_runs({"db": sqlite_url, "mode": "offline", "project": None, "dir": str(tmp_path), "trials": []})
    assert len(offline_runs(tmp_path)[tracking.summary_run_id(sweep)]) == 1


def test_open_trials_are_not_logged(sqlite_url, tmp_path):
    engine = db.open_store(sqlite_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    queued = enqueue_trial(engine, sweep.id, {"train.lr": 0.01})
    written = tracking.write_runs({"db": sqlite_url, "mode": "offline", "project": "p", "dir": str(tmp_path),
                                   "trials": [queued.id]})
    assert written == 0


BUDGETED = {**SPEC, "name": "budgeted",
            "params": [*PARAMS, {"name": "train.total_timesteps", "space": "log", "min": 100, "max": 10_000,
                                 "center": 1000, "integer": True}],
            "settings": {**SPEC["settings"], "budget_param": "train.total_timesteps"}}


def test_cut_and_stopped_trials_show_their_steps_in_runs_and_the_pareto_table(sqlite_url, tmp_path):
    engine = db.open_store(sqlite_url)
    sweep = create_sweep(engine, BUDGETED, owner="tester")
    planned = {"train.lr": 0.01, "train.total_timesteps": 1000}
    import_trials(engine, sweep.id, [
        FinishedTrial(planned, 1.2, 12.0, steps=1024),
        FinishedTrial(planned, 0.8, 5.0, truncated=True, steps=400),
        FinishedTrial({"train.lr": 0.05, "train.total_timesteps": 1000}, 0.5, 3.0, stopped=True, steps=300)])
    trials = review.trial_table(engine, sweep.id)

    tracking.write_runs({"db": sqlite_url, "mode": "offline", "project": None, "dir": str(tmp_path),
                         "trials": [t.id for t in trials]})

    logged = offline_runs(tmp_path)
    runs = {t.number: logged[tracking.trial_run_id(sweep, t.number)][0] for t in trials}
    assert [runs[n].tags for n in (1, 2, 3)] == [["user"], ["user", "cut"], ["user", "stopped"]]
    assert [(runs[n].summary["steps"], runs[n].summary["truncated"], runs[n].summary["stopped"])
            for n in (1, 2, 3)] == [(1024, False, False), (400, True, False), (300, True, True)]
    (summary,) = logged[tracking.summary_run_id(sweep)]
    table = summary.table("pareto")
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    # The cut run is its own front point at the steps it trained, not averaged into its plan's full run.
    assert [(r["trials"], r["steps"], r["truncated"], r["stopped"], r["train.total_timesteps"]) for r in rows] == [
        ("3", 300, True, True, 1000), ("2", 400, True, False, 1000), ("1", 1024, False, False, 1000)]


# --- the tracker in the agent --------------------------------------------------------------------

def test_mode_follows_flag_env_and_login(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert tracking.resolve_mode(enabled=False) == "disabled"
    assert tracking.resolve_mode() == "offline"  # not logged in
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    assert tracking.resolve_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.resolve_mode() == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.resolve_mode() == "offline"
    assert tracking.make_tracker("sqlite://", enabled=False) is None


def test_a_hung_batch_is_killed_and_the_tracker_carries_on(tmp_path):
    messages: list[str] = []
    tracker = tracking.WandbTracker("sqlite://", "offline", directory=tmp_path, timeout=0.2, log=messages.append)
    tracker.command = [sys.executable, "-c", "import time; time.sleep(600)"]  # wandb hanging on the network
    tracker.trial_ended(1)
    tracker.poll()
    hung = tracker.proc
    assert hung is not None
    for _ in range(200):
        tracker.poll()
        if tracker.proc is None:
            break
        time.sleep(0.05)
    assert tracker.proc is None and hung.returncode is not None
    assert any("gave up" in m for m in messages)
    tracker.command = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    tracker.trial_ended(2)
    tracker.close(timeout=60)
    assert tracker.proc is None and not tracker.pending


# --- a real sweep through the CLI ----------------------------------------------------------------

TRAINER = """\
import json, os, sys
lr = float(sys.argv[1])
fd = int(os.environ["SWEEPD_REPORT_FD"]) if "SWEEPD_REPORT_FD" in os.environ else None
for step in range(1, 6):
    print(json.dumps({"step": step * 100, "score": step * (1 - abs(lr - 0.02) * 10)}), flush=True)
"""

SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.lr}}"]

[sweep]
searcher = "random"
max_suggestion_cost = 30.0
max_trials = 10
eval_episodes = 1
eval_seeds = 1
wandb_project = "toy-project"

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
center = 0.01
"""


@pytest.fixture
def toy_sweep(tmp_path: Path) -> Path:
    try:
        import sweepd.worker  # noqa: F401
    except ImportError:
        pytest.skip("sweepd.worker (the command trainer) is not in this checkout yet")
    script = tmp_path / "toy_train.py"
    script.write_text(TRAINER)
    path = tmp_path / "toy.toml"
    path.write_text(SWEEP.format(python=sys.executable, script=script))
    return path


def launch(sweep_file: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", "launch", str(sweep_file), "--max-trials", "4",
                           "--no-live", "--name", "toy-wandb", *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.slow
def test_a_real_sweep_logs_offline_runs_and_its_front(toy_sweep, tmp_path):
    wandb_dir = tmp_path / "wandb-home"
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(wandb_dir))
    result = launch(toy_sweep, env=env)
    assert result.returncode == 0, result.stdout + result.stderr

    engine = db.make_engine(os.environ["SWEEPD_DB"], read_only=True)
    sweep = find_sweep(engine, "toy-wandb")
    trials = review.trial_table(engine, sweep.id)
    assert len(trials) == 4 and all(t.status == "succeeded" for t in trials)
    runs = offline_runs(wandb_dir)
    for t in trials:
        (run,) = runs[tracking.trial_run_id(sweep, t.number)]
        assert (run.project, run.group, run.job_type) == ("toy-project", "toy-wandb", "trial")
        assert run.config["train.lr"] == pytest.approx(t.params["train.lr"]) and run.config["seed"] == t.seed
        assert run.summary["score"] == pytest.approx(t.score) and run.summary["status"] == "succeeded"
        assert [h["_step"] for h in run.history] == [100, 200, 300, 400, 500]
        assert run.exit_code == 0
    from sweepd.front import load_front

    expected = load_front(engine, sweep.id).records()
    latest = runs[tracking.summary_run_id(sweep)][-1]  # one offline dir per front change
    table = latest.table("pareto")
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [(r["cost"], r["score"], r["trials"]) for r in rows] == [
        (pytest.approx(p["cost"]), pytest.approx(p["score"]), ",".join(map(str, p["trials"]))) for p in expected]


@pytest.mark.slow
def test_wandb_failing_never_fails_a_trial(toy_sweep, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("wandb cannot write under a file")
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(blocked))
    result = launch(toy_sweep, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wandb:" in result.stderr  # the failure is reported as one line
    engine = db.make_engine(os.environ["SWEEPD_DB"], read_only=True)
    trials = review.trial_table(engine, find_sweep(engine, "toy-wandb").id)
    assert [t.status for t in trials] == ["succeeded"] * 4
