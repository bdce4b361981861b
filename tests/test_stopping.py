"""Early stopping end to end: the store records a stopped or truncated trial and hands the searcher
its curve and trained steps; the advisor decides from the database's history and the trial's own
curve (the same answer from any advisor); the agent stops a real trial on the searcher's word and
the sweep goes on; the workers stop on the stop signal and still report a result."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from toy import wait_for, write_toy_sweep

from sweepd.advisor import StopAdvisor, rebuild
from sweepd.settings import SpecError
from sweepd.spec import SweepSpec, load_spec
from sweepd.store import db
from sweepd.store.audit import events
from sweepd.store.enqueue import FinishedTrial, import_trials
from sweepd.store.history import CURVE_SAMPLE, Outcome, Proposal, history_version, sample_curve, sweep_history
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import create_sweep, find_sweep
from sweepd.store.transitions import finish_trial, heartbeat_trial, start_trial

# A toy command sweep whose budget param is the step count the toy trainer reports.
SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{train.lr}}", "{{train.steps}}", "{{artifact_dir}}", "{{trial_id}}"]

[sweep]
searcher = "carbs"
max_suggestion_cost = 60.0
max_trials = {trials}
num_random_samples = 3
resample_frequency = 0
budget_param = "train.steps"
early_stopping = "{early_stopping}"
eval_episodes = 1
eval_seeds = 1

[train]
steps = 20

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
center = 0.01

[search.train.steps]
space = "log"
min = 10
max = 40
center = 20
integer = true
"""


def sweep_file(folder: Path, trials: int = 5, early_stopping: str = "on") -> Path:
    """The stopping sweep over tests/toy.py's trainer."""
    write_toy_sweep(folder, 1, 1, name="plain")  # writes toy_train.py
    path = folder / f"stop-{early_stopping}.toml"
    path.write_text(SWEEP.format(python=sys.executable, script=folder / "toy_train.py", trials=trials,
                                 early_stopping=early_stopping))
    return path


def score_at(params: dict[str, Any], step: float) -> float:
    """The toy trainer's score (tests/toy.py)."""
    return step * 0.01 - abs(params["train.lr"] - 0.01)


def elapsed_at(step: float) -> float:
    return 0.6 + 0.05 * step


def curve_of(params: dict[str, Any], steps: int, score: Any = score_at) -> list[list[float]]:
    """Curve rows as the worker stores them: [step, score, elapsed]."""
    return [[float(s), score(params, s), elapsed_at(s)] for s in range(1, steps + 1)]


FINISHED = [{"train.lr": lr, "train.steps": steps}
            for lr, steps in [(0.01, 20), (0.013, 14), (0.02, 10), (0.011, 38), (0.007, 25), (0.009, 30)]]
RUNNING = {"train.lr": 0.005, "train.steps": 30}


def hopeless(_params: dict[str, Any], _step: float) -> float:
    return -5.0


@pytest.fixture
def stop_sweep(tmp_path, sqlite_url):
    """A sweep with six finished toy trials (curves included) in a real SQLite store."""
    def make(early_stopping: str = "on", finished: int = len(FINISHED)):
        engine = db.open_store(sqlite_url)
        spec = load_spec(str(sweep_file(tmp_path, trials=20, early_stopping=early_stopping)))
        sweep = create_sweep(engine, spec.to_json(), owner="tester", name=f"stop-{early_stopping}")
        import_trials(engine, sweep.id, [
            FinishedTrial(params=p, score=score_at(p, p["train.steps"]), cost=elapsed_at(p["train.steps"]) + 0.2,
                          kind="search", steps=p["train.steps"], metrics={"curve": curve_of(p, p["train.steps"])})
            for p in FINISHED[:finished]])
        return engine, find_sweep(engine, sweep.id)
    return make


def decide(advisor: StopAdvisor, engine, sweep, curve, kind: str = "search", params=RUNNING):
    return advisor.should_stop(sweep, sweep_history(engine, sweep.id), params, kind, curve)


# -- the decision -------------------------------------------------------------------------------------

def test_hopeless_curve_is_stopped_and_a_promising_one_is_not(stop_sweep):
    engine, sweep = stop_sweep()
    advisor = StopAdvisor()
    bad = decide(advisor, engine, sweep, curve_of(RUNNING, 12, hopeless))
    assert bad.stop and "probability of improving the front" in bad.reason
    assert not decide(advisor, engine, sweep, curve_of(RUNNING, 12)).stop
    # Too early in its run (under early_stop_min_fraction of its steps) even a hopeless curve runs on.
    assert not decide(advisor, engine, sweep, curve_of(RUNNING, 3, hopeless)).stop


def test_resample_user_and_baseline_trials_are_never_stopped(stop_sweep):
    engine, sweep = stop_sweep()
    advisor = StopAdvisor()
    curve = curve_of(RUNNING, 12, hopeless)
    assert decide(advisor, engine, sweep, curve, kind="random").stop
    for kind in ("resample", "user", "baseline"):
        decision = decide(advisor, engine, sweep, curve, kind=kind)
        assert not decision.stop and kind in decision.reason
    # A searcher's own suggestion that repeats an observed config is a resample too.
    assert not decide(advisor, engine, sweep, curve_of(FINISHED[0], 12, hopeless), params=FINISHED[0]).stop


def test_early_stopping_off_never_stops(stop_sweep):
    engine, sweep = stop_sweep(early_stopping="off")
    decision = decide(StopAdvisor(), engine, sweep, curve_of(RUNNING, 12, hopeless))
    assert not decision.stop and "off" in decision.reason


def test_decisions_are_identical_from_any_advisor_and_from_the_stored_curve(stop_sweep):
    engine, sweep = stop_sweep()
    warm = StopAdvisor()  # one agent's advisor, asked about other trials in between
    other = {"train.lr": 0.03, "train.steps": 12}
    mixed = [-5.0 if s > 4 else score_at(RUNNING, s) for s in range(1, 16)]
    curve = [[float(s), mixed[s - 1], elapsed_at(s)] for s in range(1, 16)]
    answers_warm, answers_fresh = [], []
    for n in (1, 4, 8, 12, 15):
        decide(warm, engine, sweep, curve_of(other, n, hopeless), params=other)
        answers_warm.append(decide(warm, engine, sweep, curve[:n]).stop)
        answers_fresh.append(decide(StopAdvisor(), engine, sweep, curve[:n]).stop)
    assert answers_warm == answers_fresh
    assert not answers_warm[0] and answers_warm[-1]

    # The curve the heartbeat stores decides the same; a running trial leaves the history's version
    # (what the kept searcher is keyed by) as it was.
    version = sweep_history(engine, sweep.id).version
    lease = lease_trial(engine, Holder("agent-b", "box", 0, "tester"),
                        lambda s, h: Proposal(params=dict(RUNNING), kind="search"))
    assert start_trial(engine, lease) and heartbeat_trial(engine, lease, 30.0, {"curve": curve})
    (stored,) = [t.metrics["curve"] for t in list_trials(engine, sweep.id) if t.status == "running"]
    assert sweep_history(engine, sweep.id).version == version
    assert decide(StopAdvisor(), engine, sweep, stored).stop == answers_warm[-1]


def test_the_kept_searcher_is_rebuilt_when_a_trial_finishes(stop_sweep):
    engine, sweep = stop_sweep(finished=2)
    advisor = StopAdvisor()
    curve = curve_of(RUNNING, 12, hopeless)
    before = sweep_history(engine, sweep.id).version
    assert not decide(advisor, engine, sweep, curve).stop  # two finished runs: no model, no stop
    import_trials(engine, sweep.id, [
        FinishedTrial(params=p, score=score_at(p, p["train.steps"]), cost=elapsed_at(p["train.steps"]) + 0.2,
                      kind="search", steps=p["train.steps"], metrics={"curve": curve_of(p, p["train.steps"])})
        for p in FINISHED[2:]])
    assert history_version(engine, sweep.id) == sweep_history(engine, sweep.id).version != before
    assert advisor.kept_history(sweep.id, before) is not None  # the kept searcher, at the old version
    assert advisor.kept_history(sweep.id, history_version(engine, sweep.id)) is None
    assert decide(advisor, engine, sweep, curve).stop
    assert advisor.kept_history(sweep.id, history_version(engine, sweep.id)) is not None


# -- what the store records and the searcher observes ----------------------------------------------------

def run_one(engine, sweep, params, curve):
    lease = lease_trial(engine, Holder("agent-a", "box", 0, "tester"),
                        lambda s, h: Proposal(params=dict(params), kind="search"))
    assert start_trial(engine, lease) and heartbeat_trial(engine, lease, 30.0, {"curve": curve})
    return lease


def test_stopped_trial_is_recorded_and_observed_as_stopped(tmp_path, db_url):
    engine = db.open_store(db_url)
    spec = load_spec(str(sweep_file(tmp_path)))
    sweep = create_sweep(engine, spec.to_json(), owner="tester")
    curve = curve_of(RUNNING, 9, hopeless)
    lease = run_one(engine, sweep, RUNNING, curve)
    assert finish_trial(engine, lease, -5.0, 1.3, metrics={"curve": curve}, steps=9,
                        stop_reason="hopeless", actor="agent-a")
    (trial,) = list_trials(engine, sweep.id)
    assert (trial.status, trial.stopped, trial.truncated, trial.steps, trial.spent) == ("succeeded", True, True, 9, 1.3)
    (event,) = events(engine, sweep_id=sweep.id, kind="trial_stopped_early")
    assert event.trial_id == trial.id and "hopeless" in event.detail and "9 steps" in event.detail
    (seen,) = sweep_history(engine, sweep.id).observations
    assert (seen.stopped, seen.truncated, seen.steps) == (True, True, 9.0)
    assert history_version(engine, sweep.id) == sweep_history(engine, sweep.id).version
    assert seen.curve and all(row[2] < 1.3 for row in seen.curve)
    # The next searcher rebuilt from the database sees the run at the 9 of its 30 planned steps.
    history = rebuild(sweep, spec, sweep_history(engine, sweep.id)).history
    assert history.end_fraction == [pytest.approx(9 / 30)]
    assert len(history.curves[0]) == len(seen.curve)


def test_truncated_run_is_observed_at_its_trained_steps(tmp_path, sqlite_url):
    engine = db.open_store(sqlite_url)
    spec = load_spec(str(sweep_file(tmp_path)))
    sweep = create_sweep(engine, spec.to_json(), owner="tester")
    curve = curve_of(RUNNING, 12)
    lease = run_one(engine, sweep, RUNNING, curve)
    assert finish_trial(engine, lease, score_at(RUNNING, 12), 1.4, truncated=True, steps=12, metrics={"curve": curve})
    (seen,) = sweep_history(engine, sweep.id).observations
    assert (seen.truncated, seen.stopped, seen.steps) == (True, False, 12.0)
    history = rebuild(sweep, spec, sweep_history(engine, sweep.id)).history
    steps = next(p for p in spec.params if p.name == "train.steps")
    assert history.x[0][history.budget_index] == pytest.approx(steps.to_basic(12))
    assert history.end_fraction == [pytest.approx(12 / 30)]


def test_a_full_run_is_observed_as_planned_with_its_curve(tmp_path, sqlite_url):
    engine = db.open_store(sqlite_url)
    spec = load_spec(str(sweep_file(tmp_path)))
    sweep = create_sweep(engine, spec.to_json(), owner="tester")
    lease = run_one(engine, sweep, RUNNING, [])
    assert finish_trial(engine, lease, 0.3, 2.2, steps=30, metrics={"curve": curve_of(RUNNING, 30), "log": "x"})
    (seen,) = sweep_history(engine, sweep.id).observations
    assert seen == Outcome(RUNNING, 0.3, 2.2, False, seen.curve, False, False, 30.0)
    assert [row[0] for row in seen.curve] == [1.0, 2.0, 4.0, 8.0, 15.0]  # nearest 1/32 ... 1/2 of 30 steps


def test_stored_curves_are_sampled_at_halvings_of_the_run():
    rows = [[float(s), s / 400, 1.0 + s / 100] for s in range(1, 401)]
    sampled = sample_curve(rows, cost=6.0, steps=400.0)
    assert [row[0] for row in sampled] == [2.0, 3.0, 6.0, 13.0, 25.0, 50.0, 100.0, 200.0]
    assert len(sampled) == CURVE_SAMPLE
    # Without steps, positions are seconds; rows at or past the end and malformed rows are dropped.
    by_time = sample_curve([[None, 1.0, 1.0], [None, 2.0, 2.0], [None, 3.0, 4.0], ["x"], [None, 9.0, 8.0]], cost=8.0)
    assert by_time == ((None, 1.0, 1.0), (None, 2.0, 2.0), (None, 3.0, 4.0))
    assert sample_curve(None, cost=5.0) == ()


def test_spec_validates_the_early_stopping_settings(tmp_path):
    path = sweep_file(tmp_path)
    spec = load_spec(str(path))
    assert spec.settings.early_stopping == "on" and 0 < spec.settings.early_stop_probability < 1
    assert SweepSpec.from_json(spec.to_json()).settings == spec.settings
    for key, value in [("early_stopping", "maybe"), ("early_stop_probability", 1.5),
                       ("early_stop_min_fraction", 0.0), ("curve_points", -1)]:
        with pytest.raises(SpecError, match=key):
            load_spec(str(path), {key: value})


# -- the agent and the workers -------------------------------------------------------------------------

def sweepd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=180,
                          env=env or dict(os.environ))


def test_agent_stops_a_hopeless_command_trial_and_the_sweep_goes_on(tmp_path):
    # Trials 1-3 are the warm-up (the model needs 3 finished runs); trial 4 reports a flat -5.
    env = dict(os.environ, TOY_HOPELESS_TRIAL="4")
    result = sweepd("launch", str(sweep_file(tmp_path, trials=5)), "--no-live", "--name", "stops", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trial stops#4 stopped early at" in result.stderr
    status = json.loads(sweepd("status", "stops", "--json").stdout)
    assert status["sweep"]["status"] == "finished"
    trials = status["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 5
    assert [t["number"] for t in trials if t["stopped"]] == [4]
    stopped = trials[3]
    assert stopped["truncated"] and stopped["score"] == -5.0
    assert 0 < stopped["steps"] < stopped["params"]["train.steps"]


def run_worker_until_progress(payload: dict[str, Any], progress: int, timeout: float = 120):
    """Run `python -m sweepd.worker`, send it the stop signal after `progress` progress events; its
    events, exit status and log."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "sweepd.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, pass_fds=(write_fd,))
    os.close(write_fd)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(payload).encode())
    proc.stdin.close()
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            got.append(json.loads(line))
            if sum(e["event"] == "progress" for e in got) == progress and got[-1]["event"] == "progress":
                os.kill(proc.pid, signal.SIGUSR1)  # the worker process alone, as the agent does
            assert time.monotonic() < deadline, got
    assert proc.stdout is not None
    log = proc.stdout.read().decode(errors="replace")
    return got, proc.wait(timeout=30), log


def test_command_trainer_stops_on_the_stop_signal_and_its_last_report_stands(tmp_path):
    seen = tmp_path / "signal"
    body = f"""
import itertools, json, signal, sys, time
def on_term(signum, frame):
    open({str(seen)!r}, "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
for step in itertools.count(1):
    print(json.dumps({{"step": step, "score": float(step)}}), flush=True)
    time.sleep(0.1)
"""
    script = tmp_path / "forever.py"
    script.write_text(body)
    payload = {"trial_id": 1, "env": "toy", "trainer": "command", "command": [sys.executable, str(script)],
               "config": {}, "seed": 1, "cost_cap": 60.0, "eval_episodes": 1, "eval_seeds": 1,
               "artifact_dir": str(tmp_path / "trial-1"), "device": "cpu"}
    got, status, log = run_worker_until_progress(payload, progress=3)
    assert status == 0, log
    result = got[-1]
    assert result["event"] == "result" and result["stopped"] is True and result["truncated"] is True
    assert result["score"] == [e for e in got if e["event"] == "progress"][-1]["score"] >= 3
    assert result["steps"] == result["score"] and result["cost"] < 30
    # The command got the relay's SIGTERM (as at the cap), never the agent's signal.
    assert wait_for(lambda: seen.exists() and seen.read_text()) == "SIGTERM"


needs_pufferlib = pytest.mark.pufferlib  # skipped without PufferLib's trainer (conftest.py checks once per run)


@pytest.mark.slow
@needs_pufferlib
def test_puffer_trainer_stops_on_the_stop_signal_and_still_evaluates(tmp_path):
    payload = {"trial_id": 1, "env": "snake", "trainer": "puffer", "config": {"train": {"total_timesteps": 10**9}},
               "seed": 1234, "cost_cap": 120.0, "eval_episodes": 16, "eval_seeds": 2,
               "artifact_dir": str(tmp_path / "trial-1"), "device": "cpu"}
    got, status, log = run_worker_until_progress(payload, progress=1)
    assert status == 0, log
    result = got[-1]
    assert result["event"] == "result" and result["stopped"] is True and result["truncated"] is True
    assert 0 < result["steps"] < 10**9 and math.isfinite(result["score"])
    assert len(result["per_seed"]) == 2 and all(done >= 16 for done in result["eval_episodes_done"])
    assert result["cost"] < 60  # it stopped at the next epoch, not at the cap
