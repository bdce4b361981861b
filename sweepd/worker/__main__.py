"""`python -m sweepd.worker`: run the trial on stdin with its trainer (sweepd/worker/__init__.py)."""

from __future__ import annotations

import json
import os
import sys

from sweepd.lifeline import die_with_parent
from sweepd.protocol import SETUP, EventWriter, TrialFailed, TrialFormatError, TrialPayload
from sweepd.worker.clock import WORKER_START, CostClock
from sweepd.worker.command import run_command
from sweepd.worker.puffer import run_puffer
from sweepd.worker.stopping import StopRequest


def main() -> int:
    """Run the trial on stdin; returns the process exit status."""
    die_with_parent()  # first: a worker must not outlive its agent (sweepd/lifeline.py)
    clock_start = WORKER_START
    stop = StopRequest()
    stop.install()  # before the trial is read: the agent's stop signal must never meet its default action
    events = EventWriter.from_env()
    try:
        trial = TrialPayload.from_json(json.load(sys.stdin))
    except (ValueError, TrialFormatError) as exc:
        events.emit("failed", reason=f"bad trial: {exc}", category=SETUP)
        return 2
    clock = CostClock(start=clock_start, cap=trial.cost_cap)
    try:
        if trial.trainer == "puffer":
            run_puffer(trial, events, clock, stop)
        else:
            run_command(trial, events, clock, stop)
    except TrialFailed as failure:
        events.emit("failed", reason=failure.reason, category=failure.category)
        print(f"sweepd worker: trial failed ({failure.category}): {failure.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    # Skip interpreter teardown: PufferLib's utilization thread sleeps up to a second before it
    # sees its stop flag, and torch's teardown is slow; the trial's events are already written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
