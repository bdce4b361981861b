"""An agent whose lease was taken over while its worker ran (the agent froze past its lease, another
agent reaped it) must not log the worker's result as recorded: the store rejected its token.

Real agent (in this process), real worker process, real database; the takeover is the store's own
reaper run on a lease whose expiry has passed, exactly what another agent does to a frozen one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import update
from toy import write_toy_sweep

from sweepd.agent import Agent
from sweepd.spec import load_spec
from sweepd.store.db import open_store
from sweepd.store.models import Trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import create_sweep
from sweepd.store.transitions import reap_expired

# Reads its trial like sweepd.worker, trains for a moment, reports a result and exits 0.
WORKER = """\
import json, os, sys, time
json.load(sys.stdin)
fd = int(os.environ["SWEEPD_REPORT_FD"])
os.write(fd, (json.dumps({"event": "started", "time": time.time()}) + "\\n").encode())
time.sleep(0.5)
os.write(fd, (json.dumps({"event": "result", "score": 7.0, "cost": 0.5}) + "\\n").encode())
"""


def test_a_result_whose_lease_was_taken_over_is_logged_as_not_recorded(sqlite_url, tmp_path: Path):
    engine = open_store(sqlite_url)
    spec = load_spec(str(write_toy_sweep(tmp_path, trials=1, steps=2)), {"max_trials": 1}).to_json()
    sweep = create_sweep(engine, spec, owner="tester", name="toy-lost")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    taken_over: list[int] = []

    def take_over(agent: Agent) -> None:
        """Once the first attempt runs, let its lease lapse and have another agent reap it."""
        if taken_over or not agent.workers:
            return
        with engine.begin() as conn:
            conn.execute(update(Trial).where(Trial.sweep_id == sweep.id).values(lock_expires_at=0.0))
        taken_over.extend(reap_expired(engine, "other-box:1:agent"))

    lines: list[str] = []
    # Heartbeats every 10 s: the result (0.5 s in) arrives before this agent could notice the loss.
    agent = Agent(engine=engine, slots=1, box="box-l", lease_seconds=30.0, heartbeat_seconds=10.0,
                  exit_when_idle=True, artifacts=tmp_path / "artifacts", log=lines.append, on_tick=take_over,
                  worker_command=(sys.executable, str(worker)))
    agent.run()

    assert taken_over, "the first attempt's lease was reaped"
    ends = [line for line in lines if line.startswith("trial toy-lost#1:")]
    assert ends[0] == "trial toy-lost#1: lease lost, result not recorded (score 7)", lines
    # The re-queued trial ran again under a fresh lease, and that result is the one recorded.
    assert ends[1].startswith("trial toy-lost#1: score 7 in"), lines
    (trial,) = list_trials(engine, sweep.id)
    assert (trial.status, trial.attempts) == ("succeeded", 2)
