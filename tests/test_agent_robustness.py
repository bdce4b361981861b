"""The agent keeps serving whatever its workers, sweeps and slots do: real agents (in this process
or through the CLI), real worker processes, real databases. A scripted worker (WORKER below)
speaks the worker protocol badly on purpose; the toy trainer (tests/toy.py) runs real trials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from toy import write_toy_sweep

from sweepd import agent as agent_module
from sweepd.agent import Agent
from sweepd.host import visible_gpus
from sweepd.protocol import parse_event
from sweepd.spec import load_spec
from sweepd.store.boxes import register_box, reserve_box
from sweepd.store.db import open_store
from sweepd.store.enqueue import enqueue_trial
from sweepd.store.review import TrialInfo, list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep

# A worker that reads its trial from stdin like sweepd.worker, then does what argv[1] says.
WORKER = """\
import json, math, os, sys, time
trial = json.load(sys.stdin)
fd = int(os.environ["SWEEPD_REPORT_FD"])
def say(text):
    os.write(fd, (text + "\\n").encode())
def event(**fields):
    say(json.dumps(fields))
mode = sys.argv[1]
event(event="started", time=time.time())
if mode == "gpu":
    event(event="result", score=float(os.environ["CUDA_VISIBLE_DEVICES"]), cost=0.1)
elif mode == "junk":
    for line in ('[1, 2]', '"text"', '{"event": 3}', '{"event": "progress", "step": null, "score": null}',
                 '{"event": "progress", "step": 1, "score": NaN, "elapsed": Infinity}', '{"event": "progress"}',
                 '{"event": "progress", "step": "two", "score": 0.5, "extra": [NaN]}', '{"event": "spawned"}'):
        say(line)
    time.sleep(float(os.environ.get("JUNK_LINGER", "0")))  # heartbeats carry the junk meanwhile
    event(event="result", cost=1.0, per_seed=[])  # no score
elif mode == "nan_result":
    say('{"event": "result", "score": NaN, "cost": 1.0}')
elif mode == "bad_category":
    event(event="failed", reason="[rank0]: CUDA error: arr[i] out of range", category="oops")
    sys.exit(1)
elif mode == "result_then_hang":
    event(event="result", score=7.0, cost=0.5)
    time.sleep(600)
elif mode == "failed_then_hang":
    event(event="failed", reason="diverged", category="hyperparameter")
    time.sleep(600)
elif mode == "hang":
    time.sleep(600)
"""


@pytest.fixture
def fake_worker(tmp_path: Path):
    script = tmp_path / "fake_worker.py"
    script.write_text(WORKER)
    return lambda mode: (sys.executable, str(script), mode)


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    return write_toy_sweep(tmp_path, trials=2, steps=2)


def new_sweep(engine, toy_file: Path, trials: int = 1, name: str | None = None, searcher: str = "random",
              drop: str | None = None, device: str = "cpu") -> SweepInfo:
    """The toy sweep in the database, its stored spec optionally broken (an unknown searcher, a key dropped)."""
    spec = load_spec(str(toy_file), {"max_trials": trials, "device": device}).to_json()
    spec["settings"]["searcher"] = searcher
    if drop is not None:
        del spec[drop]
    return create_sweep(engine, spec, owner="tester", name=name)


def open_pipes() -> int:
    return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}"))


def run_agent(engine, tmp_path: Path, **options) -> list[str]:
    """Run an agent in this process until it is idle; its log lines."""
    lines: list[str] = []
    options = {"slots": 1, "lease_seconds": 30.0, "heartbeat_seconds": 10.0, **options}
    agent = Agent(engine=engine, box="box-t", exit_when_idle=True, artifacts=tmp_path / "artifacts",
                  log=lines.append, **options)
    agent.run()
    return lines


def only_trial(engine, sweep: SweepInfo) -> TrialInfo:
    trials = list_trials(engine, sweep.id)
    assert len(trials) == 1, trials
    return trials[0]


# --- slots --------------------------------------------------------------------------------------

def test_a_slot_reserved_for_someone_else_does_not_stop_the_other_slots(tmp_path, toy_file):
    engine = open_store()
    register_box(engine, "box-r", 2, "cpu", "ops", "earlier-agent")
    reserve_box(engine, "box-r", "alice", 3600, slots=1)  # slot 0: alice's, and alice has nothing queued
    sweep = new_sweep(engine, toy_file, trials=2)

    done = subprocess.run([sys.executable, "-m", "sweepd.cli", "agent", "--box", "box-r", "--slots", "2",
                           "--exit-when-idle", "--no-wandb"], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    trials = list_trials(engine, sweep.id)
    assert [(t.status, t.slot) for t in trials] == [("succeeded", 1), ("succeeded", 1)]
    assert find_sweep(engine, sweep.id).status == "finished"


def test_cuda_slots_run_on_the_inherited_visible_devices(sqlite_url, tmp_path, toy_file, fake_worker, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file, trials=2, device="cuda")  # a cuda agent serves cuda sweeps only

    run_agent(engine, tmp_path, slots=2, device="cuda", worker_command=fake_worker("gpu"))

    assert sorted(t.score for t in list_trials(engine, sweep.id)) == [4.0, 5.0]


@pytest.mark.parametrize(("visible", "gpus"), [("4,5", ["4", "5"]), (" 1 , 0 ", ["1", "0"]), ("", []),
                                               ("GPU-3f2a,-1,2", ["GPU-3f2a"]), ("-1", []), ("0,,1", ["0"])])
def test_visible_gpus_follow_cuda_visible_devices(visible, gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == gpus


def test_agent_refuses_settings_that_cannot_work(sqlite_url, monkeypatch):
    engine = open_store(sqlite_url)
    for lease in (0.0, -5.0, float("nan")):
        with pytest.raises(ValueError, match="lease expiry"):
            Agent(engine=engine, slots=1, lease_seconds=lease)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(ValueError, match="visible GPU"):
        Agent(engine=engine, slots=2, device="cuda")


# --- a broken sweep is that sweep's problem -----------------------------------------------------

def test_a_sweep_whose_searcher_raises_is_paused_and_the_agent_serves_the_next(sqlite_url, tmp_path, toy_file):
    engine = open_store(sqlite_url)
    broken = new_sweep(engine, toy_file, name="broken", searcher="no-such-searcher")  # older: planned first
    good = new_sweep(engine, toy_file, name="good")

    lines = run_agent(engine, tmp_path)

    paused = find_sweep(engine, broken.id)
    assert paused.status == "paused"
    assert "searcher failed to propose a trial: ValueError: unknown searcher 'no-such-searcher'" in paused.status_reason
    assert sum("sweep broken paused" in line for line in lines) == 1
    assert find_sweep(engine, good.id).status == "finished"
    assert only_trial(engine, good).status == "succeeded"


def test_a_spec_that_cannot_make_a_queued_trial_pauses_its_sweep(sqlite_url, tmp_path, toy_file):
    engine = open_store(sqlite_url)
    broken = new_sweep(engine, toy_file, name="broken", drop="trainer")  # the stored spec lost a key
    enqueue_trial(engine, broken.id, {"train.lr": 0.01})
    good = new_sweep(engine, toy_file, name="good")

    run_agent(engine, tmp_path)

    failed = only_trial(engine, broken)
    assert (failed.status, failed.failure_category) == ("failed", "setup")
    assert "cannot build the trial from the sweep's spec: KeyError" in failed.failure_reason
    assert find_sweep(engine, broken.id).status == "paused"
    assert find_sweep(engine, good.id).status == "finished"


def test_a_box_that_cannot_start_workers_fails_trials_as_infra_and_leaks_no_fd(sqlite_url, tmp_path, toy_file,
                                                                                monkeypatch):
    monkeypatch.setattr(agent_module, "SPAWN_RETRY_S", 0.0)
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file)
    (tmp_path / "artifacts").write_text("a file where the artifacts folder should be")
    pipes_before = open_pipes()

    run_agent(engine, tmp_path, until_sweep=sweep.id)

    trial = only_trial(engine, sweep)
    assert (trial.status, trial.failure_category, trial.attempts) == ("abandoned", "infra", 2)
    assert "cannot start a worker on box-t" in trial.failure_reason
    assert open_pipes() == pipes_before


# --- what workers report ------------------------------------------------------------------------

def test_junk_from_a_worker_is_dropped_and_a_result_without_score_fails_the_trial(db_url, tmp_path, toy_file,
                                                                                  fake_worker, monkeypatch):
    # On PostgreSQL a NaN in the metrics would fail every heartbeat and the final write.
    engine = open_store(db_url)
    sweep = new_sweep(engine, toy_file)
    monkeypatch.setenv("JUNK_LINGER", "1.5")  # a few heartbeats while the junk is the latest progress

    lines = run_agent(engine, tmp_path, worker_command=fake_worker("junk"), lease_seconds=1.5,
                      heartbeat_seconds=0.5)

    trial = only_trial(engine, sweep)
    assert (trial.status, trial.failure_category) == ("failed", "setup")
    assert "worker reported a result without a finite score (score: None)" in trial.failure_reason
    assert trial.metrics["curve"] == [[0.0, 0.5, trial.metrics["curve"][0][2]]]  # the one point with a score
    assert trial.metrics["progress"] == {"event": "progress", "step": None, "score": 0.5,
                                         "elapsed": None, "extra": [None]}
    assert not any("database unavailable" in line for line in lines), lines


def test_a_non_finite_result_is_the_configs_failure(sqlite_url, tmp_path, toy_file, fake_worker):
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file)
    run_agent(engine, tmp_path, worker_command=fake_worker("nan_result"))
    trial = only_trial(engine, sweep)
    assert (trial.status, trial.failure_category) == ("failed", "hyperparameter")
    assert "without a finite score (score: nan)" in trial.failure_reason


def test_an_unknown_failure_category_is_a_hyperparameter_failure(sqlite_url, tmp_path, toy_file, fake_worker):
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file)
    run_agent(engine, tmp_path, worker_command=fake_worker("bad_category"))
    trial = only_trial(engine, sweep)
    assert (trial.status, trial.failure_category) == ("failed", "hyperparameter")
    assert trial.failure_reason.startswith("[rank0]: CUDA error: arr[i] out of range")


@pytest.mark.parametrize(("line", "event"), [
    (b"not json", None),
    (b"[1, 2]", None),
    (b'{"event": "spawned"}', None),
    (b'{"score": 1}', None),
    (b'{"event": "progress", "step": true, "score": "1", "elapsed": -Infinity}',
     {"event": "progress", "step": None, "score": None, "elapsed": None}),
    (b'{"event": "result", "score": 2, "cost": -1, "score_stderr": NaN, "truncated": "yes"}',
     {"event": "result", "score": 2.0, "cost": None, "score_stderr": None, "truncated": False,
      "stopped": False, "steps": None}),
    (b'{"event": "failed", "reason": 42, "category": "infra"}',
     {"event": "failed", "reason": "worker reported a failure", "category": "hyperparameter"}),
])
def test_parse_event_keeps_only_what_the_agent_can_record(line, event):
    assert parse_event(line) == event


# --- deadlines ----------------------------------------------------------------------------------

def test_a_result_stands_when_the_worker_hangs_on_its_way_out(sqlite_url, tmp_path, toy_file, fake_worker,
                                                              monkeypatch):
    monkeypatch.setattr(agent_module, "EXIT_GRACE_S", 0.3)
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file)
    run_agent(engine, tmp_path, worker_command=fake_worker("result_then_hang"))
    trial = only_trial(engine, sweep)
    assert (trial.status, trial.score, trial.cost) == ("succeeded", 7.0, 0.5)


def test_a_reported_failure_stands_when_the_worker_hangs_after_it(sqlite_url, tmp_path, toy_file, fake_worker,
                                                                  monkeypatch):
    monkeypatch.setattr(agent_module, "EXIT_GRACE_S", 0.3)
    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file)
    run_agent(engine, tmp_path, worker_command=fake_worker("failed_then_hang"))
    trial = only_trial(engine, sweep)
    assert (trial.status, trial.failure_category) == ("failed", "hyperparameter")
    assert trial.failure_reason.startswith("diverged")


# A worker past its cost cap plus grace: tests/test_budget_bound.py.


# --- the live view ------------------------------------------------------------------------------

class RecordingLive:
    """Stands in for rich's Live: keeps what the view drew."""

    def __init__(self) -> None:
        self.drawn: list = []

    def update(self, renderable) -> None:
        self.drawn.append(renderable)


def test_live_view_shows_trials_and_skips_a_redraw_the_database_refuses(sqlite_url, tmp_path, toy_file):
    from rich.console import Console
    from sqlalchemy import text

    from sweepd.view import LiveSweep

    engine = open_store(sqlite_url)
    sweep = new_sweep(engine, toy_file, trials=2, name="shown")
    run_agent(engine, tmp_path)
    live = RecordingLive()
    view = LiveSweep(engine, find_sweep(engine, sweep.id), live, slots=1)

    view.update()
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(live.drawn[-1])
    shown = console.export_text()
    assert "shown" in shown and shown.count("succeeded") == 2 and "Pareto front" in shown

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE trials RENAME TO trials_away"))
    view._next = 0.0
    view.update()  # no exception: this redraw is skipped
    assert len(live.drawn) == 1


def test_status_prints_bracketed_reasons_as_they_are(sqlite_url, tmp_path, toy_file, fake_worker):
    engine = open_store(sqlite_url)
    new_sweep(engine, toy_file, name="brackets")
    run_agent(engine, tmp_path, worker_command=fake_worker("bad_category"))
    shown = subprocess.run([sys.executable, "-m", "sweepd.cli", "status", "brackets", "--db", sqlite_url],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="250"))
    assert shown.returncode == 0, shown.stderr
    assert "[rank0]: CUDA error: arr[i] out of range" in shown.stdout
