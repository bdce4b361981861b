"""max_total_cost is a real bound: no attempt is charged more than its cost cap plus the agent's
kill grace (`SweepSettings.max_charge`), the agent kills a worker at that point of its own cost
clock, a reported or reaped cost past it is clamped, and the budget counts every trial in flight
at it, so the sum of what a sweep spends never passes max_total_cost. Real agents, workers and
databases; the worker for a first epoch longer than the cap is PufferLib's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from toy import write_toy_sweep

from sweepd.agent import Agent
from sweepd.settings import COST_GRACE_S
from sweepd.spec import load_spec
from sweepd.store import db, leasing
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.models import Trial
from sweepd.store.review import TrialInfo, list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep
from sweepd.store.transitions import finish_trial, reap_expired, start_trial

# A worker that reads its trial like sweepd.worker, then hangs or overstates its cost.
WORKER = """\
import json, os, sys, time
json.load(sys.stdin)
fd = int(os.environ["SWEEPD_REPORT_FD"])
os.write(fd, (json.dumps({"event": "started", "time": time.time()}) + "\\n").encode())
if sys.argv[1] == "hang":
    time.sleep(600)
os.write(fd, (json.dumps({"event": "result", "score": 1.0, "cost": 1000.0}) + "\\n").encode())
"""
SMALL_CAP = 0.8 * 1.25  # max_suggestion_cost 0.8 s x the default cost_tolerance


def run_one_trial(tmp_path: Path, mode: str) -> TrialInfo:
    """A one-trial toy sweep with a 1 s cap, run by an agent whose worker does `mode`."""
    engine = db.open_store(f"sqlite:///{tmp_path / 'bound.db'}")
    toy_file = write_toy_sweep(tmp_path, trials=1, steps=2)
    spec = load_spec(str(toy_file), {"max_trials": 1, "max_suggestion_cost": 0.8}).to_json()
    sweep = create_sweep(engine, spec, owner="tester")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    Agent(engine=engine, slots=1, box="box-b", lease_seconds=30.0, heartbeat_seconds=10.0, exit_when_idle=True,
          artifacts=tmp_path / "artifacts", log=lambda _line: None,
          worker_command=(sys.executable, str(worker), mode)).run()
    (trial,) = list_trials(engine, sweep.id)
    return trial


def test_a_hung_worker_is_killed_at_its_cap_plus_grace_and_charged_no_more(tmp_path):
    trial = run_one_trial(tmp_path, "hang")
    assert (trial.status, trial.failure_category) == ("failed", "hyperparameter")
    assert trial.failure_reason.startswith("timeout: still running")
    assert f"past the cost cap and its {COST_GRACE_S:g} s grace" in trial.failure_reason
    # The agent counts from before the spawn, so its own count is past the bound: clamped to it.
    assert trial.cost == trial.spent == SMALL_CAP + COST_GRACE_S


def test_a_reported_cost_past_the_bound_is_clamped_to_it(tmp_path):
    trial = run_one_trial(tmp_path, "overcharge")
    assert (trial.status, trial.score) == ("succeeded", 1.0)
    assert trial.cost == trial.spent == SMALL_CAP + COST_GRACE_S


# --- the budget in the store, on SQLite and PostgreSQL --------------------------------------------

CAP = 60.0  # max_suggestion_cost 48 s x cost_tolerance 1.25
MOST = CAP + COST_GRACE_S


def costly(max_total_cost: float) -> dict:
    return {"name": "costly", "env": "snake", "source": "test",
            "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 48.0, "cost_tolerance": 1.25,
                         "max_trials": 0, "max_total_cost": max_total_cost, "priority": 0, "max_slots": 0,
                         "direction": "maximize"}}


def proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random")


@pytest.fixture
def engine(db_url, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)
    return db.open_store(db_url)


def lease_all(engine, slots: int = 4) -> list:
    leases = [lease_trial(engine, Holder(agent="agent-a", box="box-1", slot=slot, user="tester"), proposer)
              for slot in range(slots)]
    return [lease for lease in leases if lease is not None]


def test_trials_in_flight_count_at_their_cap_plus_grace(engine):
    # Two trials at the bare cap would fit 120 s; at the cap plus grace (130 s) only one does.
    sweep = create_sweep(engine, costly(2 * CAP), owner="tester")
    (only,) = lease_all(engine)
    finish_trial(engine, only, 1.0, 50.0)
    # 50 s spent + one more at its most: 115 s, within the budget.
    (second,) = lease_all(engine)
    finish_trial(engine, second, 1.0, MOST)
    assert find_sweep(engine, sweep.id).status == "finished"
    assert sum(t.spent for t in list_trials(engine, sweep.id)) <= 2 * CAP


def test_a_reaped_attempt_is_charged_no_more_than_the_bound(engine):
    sweep = create_sweep(engine, costly(10 * CAP), owner="tester")
    (lease,) = lease_all(engine, slots=1)
    assert start_trial(engine, lease)
    with engine.begin() as conn:  # its holder heartbeated it for 1000 s, then the lease lapsed
        conn.execute(update(Trial).where(Trial.id == lease.trial_id)
                     .values(started_at=Trial.heartbeat_at - 1000.0, lock_expires_at=Trial.heartbeat_at - 1.0))
    assert reap_expired(engine, "agent-b") == [lease.trial_id]
    (trial,) = list_trials(engine, sweep.id)
    assert trial.status == "queued" and trial.spent == pytest.approx(MOST)


# --- a first epoch longer than the cap -----------------------------------------------------------

needs_pufferlib = pytest.mark.pufferlib  # skipped without PufferLib's trainer (conftest.py checks once per run)


@pytest.mark.slow
@needs_pufferlib
def test_a_first_epoch_longer_than_the_cap_fails_naming_the_cause(tmp_path):
    # 64 rollouts of PufferLib's 256 snakes per epoch (4M agent steps): minutes on CPU, cap 20 s.
    cap = 20.0
    trial = {"trial_id": 1, "sweep": "test", "env": "snake", "trainer": "puffer", "command": None,
             "config": {"train": {"batch_size": 256 * 64 * 64, "total_timesteps": 10**9}, "env": {}, "policy": {}},
             "seed": 1, "cost_cap": cap, "eval_episodes": 1, "eval_seeds": 1,
             "artifact_dir": str(tmp_path / "trial-1"), "device": "cpu"}
    read_fd, write_fd = os.pipe()
    proc = subprocess.run([sys.executable, "-m", "sweepd.worker"], input=json.dumps(trial).encode(),
                          capture_output=True, pass_fds=(write_fd,), timeout=cap + 60,
                          env=dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), OMP_NUM_THREADS="1"))
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        events = [json.loads(line) for line in pipe.read().splitlines()]
    assert proc.returncode == 1, proc.stdout.decode(errors="replace")[-2000:]
    assert [e["event"] for e in events] == ["started", "failed"]
    failed = events[-1]
    assert failed["category"] == "hyperparameter"
    assert failed["reason"].startswith("the first training epoch took over ")
    assert f"more than the cost cap {cap:.0f} s" in failed["reason"]
    assert "lower batch_size" in failed["reason"] and "raise max_suggestion_cost" in failed["reason"]
