"""What readers see of a leased trial: `sweepd status/pareto/boxes/events --json` and every dashboard
endpoint show who holds it (box, slot, agent) but never its lease's fencing token, which is what
lets the holder write the trial's result. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sweepd.store import db
from sweepd.store.boxes import register_box
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, Lease, lease_trial
from sweepd.store.sweeps import SweepInfo, create_sweep
from sweepd.store.transitions import finish_trial, start_trial

PARAMS = [{"name": "train.x", "space": "linear", "min": 0.0, "max": 10.0, "center": 5.0, "integer": True}]
SPEC = {"name": "private", "env": "snake", "trainer": "command", "source": "test", "command": [], "defaults": {},
        "params": PARAMS,
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 0,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}
AGENT = "gpu-1:4242:abc"


def proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"train.x": len(history.observations) + len(history.pending)}, kind="random")


@pytest.fixture
def leased(db_url: str) -> tuple[SweepInfo, Lease]:
    """A sweep with one finished trial and one running under a live lease."""
    engine = db.open_store(db_url)
    sweep = create_sweep(engine, SPEC, owner="alice")
    register_box(engine, "gpu-1", 2, "cuda", "alice", AGENT)
    holder = Holder(agent=AGENT, box="gpu-1", slot=0, user="alice")
    done = lease_trial(engine, holder, proposer)
    assert done is not None
    start_trial(engine, done)
    finish_trial(engine, done, 3.0, 2.0)
    running = lease_trial(engine, holder, proposer)
    assert running is not None
    start_trial(engine, running)
    return sweep, running


def sweepd(*args: str) -> str:
    """`sweepd ARGS` through the installed console script; its stdout."""
    result = subprocess.run([str(Path(sys.executable).with_name("sweepd")), *args], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def dashboard(db_url: str, leased: tuple[SweepInfo, Lease]) -> Iterator[str]:
    from sweepd.dashboard.server import make_server

    server = make_server(db_url, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


def get(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.load(response)


def test_json_output_never_shows_the_lease_token(db_url, leased):
    sweep, lease = leased
    outputs = {args: sweepd(*args, "--json", "--db", db_url) for args in
               [("status",), ("status", sweep.name), ("pareto", sweep.name), ("boxes",), ("events",)]}
    for args, out in outputs.items():
        assert lease.token not in out and "lock_token" not in out, args
    trials = json.loads(outputs[("status", sweep.name)])["trials"]
    assert [(t["number"], t["status"]) for t in trials] == [(1, "succeeded"), (2, "running")]
    assert (trials[1]["box"], trials[1]["slot"], trials[1]["lock_owner"]) == ("gpu-1", 0, AGENT)


def test_the_dashboard_never_shows_the_lease_token(dashboard, leased):
    sweep, lease = leased
    paths = ["api/sweeps", f"api/sweeps/{sweep.id}", f"api/sweeps/{sweep.id}/trials", f"api/sweeps/{sweep.id}/front",
             f"api/sweeps/{sweep.id}/trials/1", f"api/sweeps/{sweep.id}/trials/2", "api/boxes"]
    for path in paths:
        text = json.dumps(get(dashboard + path))
        assert lease.token not in text and "lock_token" not in text, path
    assert get(f"{dashboard}api/sweeps/{sweep.id}/trials/2")["status"] == "running"
