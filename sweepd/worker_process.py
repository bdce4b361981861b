"""One worker subprocess as the agent tracks it: how it starts (environment, report pipe, trial
log), what its events add up to (learning curve, result or failure, timeline), and what its exit
means when it reported no result (the failure reason and category recorded).

The agent (sweepd/agent.py) decides when to start, stop and record a worker; this module holds
what one worker is. The events themselves are sweepd/protocol.py's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepd.lifeline import lifeline_env
from sweepd.protocol import REPORT_FD_ENV, TrialPayload, parse_event
from sweepd.settings import COST_GRACE_S
from sweepd.store.leasing import Lease
from sweepd.store.models import HYPERPARAMETER, INFRA, SETUP

LOG_TAIL_LINES = 20
CURVE_POINTS = 400           # learning-curve points kept per trial (older ones thinned)
WORKER_COMMAND = (sys.executable, "-m", "sweepd.worker")


@dataclass
class Worker:
    """One trial's subprocess as the agent tracks it."""

    lease: Lease
    slot: int
    proc: subprocess.Popen[bytes]
    report_fd: int
    log_path: Path
    spawned: float
    kill_at: float
    buffer: bytes = b""
    training_started: bool = False
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    curve: list[list[float]] = field(default_factory=list)
    last_progress: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None     # why the agent is stopping it (shutdown, lease lost, ...)
    early_stop: str | None = None      # why the searcher asked it to stop early (sweepd/advisor.py)
    term_sent_at: float | None = None
    ended_at: float | None = None      # when it reported its result or failure: it only has to exit now
    timed_out: bool = False            # killed at `kill_at` without having reported an end
    timed_out_after: float = 0.0       # seconds from its process start to that kill
    exit_overdue: bool = False         # killed for not exiting within the agent's grace after its end
    eof: bool = False
    # Wall-clock times (epoch s) of spawn, training start, first and last progress, and result:
    # where a trial's time went besides training (benchmarks/trial_overhead.py reads them).
    timeline: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {"curve": self.curve, "progress": self.last_progress, "log": str(self.log_path),
                "timeline": self.timeline}

    @property
    def label(self) -> str:
        return f"{self.lease.sweep_name}#{self.lease.number}"

    def take_report(self, line: bytes) -> str | None:
        """Fold one line of the report pipe into this worker's state; the event's kind ("progress"
        only when it added a learning-curve point), None for a line that is no protocol event."""
        event = parse_event(line)
        if event is None:
            return None
        kind, now = event["event"], time.time()
        if kind == "progress":
            self.timeline.setdefault("first_progress", now)
            self.timeline["last_progress"] = now
            self.last_progress = event
            if event["score"] is not None:  # a point without a score is no point of the learning curve
                step = event["step"] if event["step"] is not None else (self.curve[-1][0] if self.curve else 0.0)
                elapsed = event["elapsed"] if event["elapsed"] is not None else time.monotonic() - self.spawned
                self.curve.append([step, event["score"], elapsed])
                if len(self.curve) > CURVE_POINTS:
                    self.curve = self.curve[::2]
                return kind
            return None
        self.timeline[kind] = now
        if kind == "started":
            self.training_started = True
            return kind
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        if kind == "result":
            self.result = event
        else:
            self.failure = event
        return kind

    def exit_failure(self, code: int, tail: list[str]) -> tuple[str, str]:
        """The failure (reason, category) of a worker that exited with `code` and no result that
        stands; `tail` is the end of its log, whose last line is quoted in the reason."""
        if self.timed_out:
            # A worker past its cap is the config's failure (it hung or ignored the cap), not infra.
            reason = (f"timeout: still running {self.timed_out_after:.0f} s after start, past the cost cap and "
                      f"its {COST_GRACE_S:g} s grace")
            category = HYPERPARAMETER
        elif self.stop_reason is not None:
            reason, category = self.stop_reason, INFRA
        elif self.failure is not None:
            reason, category = self.failure["reason"], self.failure["category"]
        elif code < 0:
            reason, category = f"worker killed by {_signal_name(-code)}", HYPERPARAMETER
        elif self.training_started:
            reason, category = f"worker exited with code {code} after training started", HYPERPARAMETER
        else:
            reason, category = f"worker exited with code {code} before training started", SETUP
        last = next((line for line in reversed(tail) if line.strip() and not line.startswith("---")), "")
        if last and category != INFRA:
            reason = f"{reason}: {last.strip()[:300]}"
        return reason, category


def start_process(command: tuple[str, ...], payload: TrialPayload, lease: Lease, gpu: str | None,
                  ) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start a worker for `payload` (written to its stdin by the caller) on one GPU, or on CPU when
    `gpu` is None; returns the process, the read end of its report pipe and its log. No fd is
    left open on OSError."""
    artifact_dir = payload.artifact_dir
    artifact_dir.mkdir(parents=True, exist_ok=True)
    log_path = artifact_dir / "worker.log"
    env = lifeline_env(dict(os.environ, PYTHONUNBUFFERED="1"))  # the worker dies with this agent
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["OMP_NUM_THREADS"] = "1"  # 2 torch threads on a busy 2-core box run small ops 30-50x slower
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(read_fd, False)
        env[REPORT_FD_ENV] = str(write_fd)
        with open(log_path, "ab") as log:
            log.write(f"--- trial {lease.number} attempt {lease.attempt} ({lease.kind}) {lease.params}\n".encode())
            log.flush()
            proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
                                    # No preexec_fn (unsafe next to the live view's thread): the
                                    # worker asks for its parent-death signal itself (sweepd/lifeline.py).
                                    start_new_session=True,
                                    # `import pufferlib` symlinks ./resources into its cwd: keep that in
                                    # the trial's dir, not the user's; a command trainer keeps the user's.
                                    cwd=artifact_dir if payload.trainer == "puffer" else None)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the worker holds its copy; EOF comes when it exits
    return proc, read_fd, log_path


def log_tail(path: Path) -> list[str]:
    """The last LOG_TAIL_LINES lines of a trial log ([] when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            return handle.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
