"""A box's agent says which sweeps it serves (boxes.serves), and `sweepd launch` runs its own agent
when the live one on this box would never lease the new sweep: real launches on one SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from toy import wait_for, write_toy_sweep

from sweepd.store.boxes import heartbeat_box, live_agent, register_box
from sweepd.store.db import open_store


def test_a_box_row_tells_which_sweeps_its_live_agent_serves(db_url):
    engine = open_store(db_url)
    register_box(engine, "box-s", 1, "cpu", "tester", "agent-1", serves=[7, 3])
    running = live_agent(engine, "box-s", within=60.0)
    assert running is not None and running.serves == (3, 7)
    assert running.serves_sweep(3, "cpu") and not running.serves_sweep(4, "cpu")
    heartbeat_box(engine, "box-s", "agent-1", serves=None)  # an agent serving every sweep
    running = live_agent(engine, "box-s", within=60.0)
    assert running is not None and running.serves is None and running.serves_sweep(4, "cpu")
    # ... of its own hardware class: a CPU agent never leases a cuda sweep (issue 15).
    assert not running.serves_sweep(4, "cuda")
    heartbeat_box(engine, "box-s", "agent-1", "offline", serves=None)
    assert live_agent(engine, "box-s", within=60.0) is None


def sweepd_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweepd.cli", *args]


def test_a_second_launch_runs_its_own_agent_beside_a_launch_that_serves_only_its_sweep(tmp_path: Path):
    env = dict(os.environ, COLUMNS="400")
    # The first launch's trial runs until the test stops it (200 steps of 0.5 s).
    first_file = write_toy_sweep(tmp_path, trials=1, steps=200, name="first")
    first = subprocess.Popen(sweepd_cli("launch", str(first_file), "--no-live", "--name", "first",
                                        "--lease-seconds", "30", "--grace-seconds", "1"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(env, TOY_STEP_SECONDS="0.5"))
    try:
        engine = open_store(os.environ["SWEEPD_DB"])
        wait_for(lambda: live_agent(engine, socket.gethostname(), within=60.0), timeout=60,
                 what="the first launch's agent")
        second_file = write_toy_sweep(tmp_path, trials=2, steps=2, name="second")
        second = subprocess.run(sweepd_cli("launch", str(second_file), "--no-live", "--name", "second"),
                                capture_output=True, text=True, env=env, timeout=180)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "will pick it up" not in second.stdout
        assert "running an agent for second here" in second.stdout
        status = subprocess.run(sweepd_cli("status", "second", "--json"), capture_output=True,
                                text=True, env=env, timeout=60)
        data = json.loads(status.stdout)
        assert data["sweep"]["status"] == "finished"
        assert [t["status"] for t in data["trials"]] == ["succeeded", "succeeded"]
        assert first.poll() is None, "the first launch's agent still serves its own sweep"
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.communicate(timeout=60)
        finally:
            first.kill()
