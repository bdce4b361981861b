"""Team-mode test harness: real `sweepd agent` processes on named boxes against one PostgreSQL, a tiny
command trainer, and helpers to find, freeze and kill the processes of a trial."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toy import alive, descendants, toy_runs, wait_for, write_toy_sweep  # noqa: F401 (re-exported to the team tests)

from sweepd.store import db
from sweepd.store.history import sweep_history
from sweepd.store.review import TrialInfo, list_trials
from sweepd.store.sweeps import SweepInfo, find_sweep


class Team:
    """A sweep in a fresh PostgreSQL database and the agents working on it."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.home = tmp / "home"
        self.agents: list[subprocess.Popen[str]] = []
        self.engine = db.open_store(url)
        self.name = ""            # the sweep most helpers look at: the first launched

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, SWEEPD_DB=self.url, SWEEPD_HOME=str(self.home), WANDB_MODE="disabled", **extra)

    def launch(self, trials: int, steps: int, name: str = "toy", user: str = "tester") -> SweepInfo:
        """Queue a sweep owned by `user` without running it (agents are started separately)."""
        path = write_toy_sweep(self.tmp, trials, steps, name)
        done = self.cli("launch", str(path), "--detach", "--name", name, user=user)
        assert done.returncode == 0, done.stdout + done.stderr
        self.name = self.name or name
        return find_sweep(self.engine, name)

    def cli(self, *args: str, user: str = "tester", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a `sweepd` command as `user` (on a terminal wide enough that tables do not wrap)."""
        return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True,
                              env=self.env(SWEEPD_USER=user, COLUMNS="400"), timeout=timeout)

    def agent(self, box: str, slots: int = 1, step_seconds: float = 0.1, *, any_sweep: bool = False,
              **env: str) -> subprocess.Popen[str]:
        """Start `sweepd agent` on `box` with 3 s leases (heartbeat each second) until the sweep is
        done, or with `any_sweep` on every sweep until none has work it may take."""
        log = open(self.tmp / f"agent-{box}-{len(self.agents)}.log", "w")  # noqa: SIM115 - closed with the process
        until = ["--exit-when-idle"] if any_sweep else ["--sweep", self.name, "--until-done"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweepd.cli", "agent", "--box", box, "--slots", str(slots), *until,
             "--lease-seconds", "3", "--grace-seconds", "2", "--no-wandb"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env(TOY_STEP_SECONDS=str(step_seconds), **env))
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.agents.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path}\n" + Path(p.log_path).read_text() for p in self.agents)  # type: ignore

    def trials(self) -> list[TrialInfo]:
        return retry_db(lambda: list_trials(self.engine, find_sweep(self.engine, self.name).id))

    def trial(self, number: int) -> TrialInfo:
        return next(t for t in self.trials() if t.number == number)

    def runs(self, number: int) -> list[int]:
        """Pids of every run of trial `number`, in start order."""
        return toy_runs(self.home / "artifacts", self.name, number)

    def wait_all(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.agents:
            if proc.poll() is None:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"agents still running after {timeout} s\n{self.logs()}") from None

    def close(self) -> None:
        for proc in self.agents:
            if proc.poll() is None:
                for pid in [*descendants(proc.pid), proc.pid]:
                    signal_pid(pid, signal.SIGCONT)
                proc.kill()
                proc.wait(10)
        self.engine.dispose()

    def assert_complete(self, trials: int) -> list[TrialInfo]:
        """The sweep finished: every trial ended once with one result, nothing open, nothing lost."""
        rows = self.trials()
        sweep = find_sweep(self.engine, self.name)
        assert sweep.status == "finished", self.logs()
        assert [t.number for t in rows] == list(range(1, trials + 1))
        assert all(t.status in ("succeeded", "failed") for t in rows), [(t.number, t.status) for t in rows]
        assert all(t.lock_expires_at is None for t in rows)  # no lease left held
        history = sweep_history(self.engine, sweep.id)
        assert len(history.observations) == trials and history.pending == ()  # one observation per trial
        for t in rows:
            if t.status == "succeeded":  # the result kept is one run's own report
                assert t.metrics["checkpoint"] in {f"run-{pid}" for pid in self.runs(t.number)}
        return rows


def retry_db(read: Callable[[], Any], timeout: float = 30.0) -> Any:
    """A read from the test process that outlives a database restart."""
    from sqlalchemy.exc import DBAPIError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def worker_of(agent: subprocess.Popen[str]) -> int:
    """The agent's worker process (`python -m sweepd.worker`)."""
    def find() -> int | None:
        for child in descendants(agent.pid):
            try:
                if b"sweepd.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except OSError:
                continue
        return None

    return wait_for(find, what="a worker process")


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def status_json(team: Team) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "sweepd.cli", "status", team.name, "--json"], capture_output=True,
                          text=True, env=team.env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
