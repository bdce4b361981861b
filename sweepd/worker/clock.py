"""The worker's cost clock: wall seconds since the worker process started, against the trial's cap,
how far ahead of the cap the worker stops what it cannot interrupt cleanly, and the watch on a
first training epoch that alone outlasts the cap."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

from sweepd.protocol import HYPERPARAMETER, EventWriter


def process_start_time(pid: int | None = None) -> float:
    """Epoch seconds at which process `pid` (None: this one) was created (Linux /proc, to 10 ms),
    else now. The agent reads its workers' with it: it counts their cost as their own clock does."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), in clock ticks since boot
        # /proc/stat's btime is whole seconds; the boot clock gives boot time to the microsecond.
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


WORKER_START = process_start_time()

# How far ahead of the cap the worker stops work it cannot interrupt cleanly.
REPORT_MARGIN_S = 0.5         # saving the policy and writing the result
COMMAND_TERM_BEFORE_S = 1.0   # SIGTERM to the command's process group this long before the cap
COMMAND_KILL_BEFORE_S = 0.25  # then SIGKILL


@dataclass(frozen=True)
class CostClock:
    """Wall seconds since the worker started, against the trial's cap."""

    start: float
    cap: float

    def elapsed(self) -> float:
        """Seconds since the worker process started."""
        return time.time() - self.start

    def remaining(self) -> float:
        """Seconds left before the cap (negative past it)."""
        return self.cap - self.elapsed()

    def at(self, before_cap: float) -> float:
        """Epoch time `before_cap` seconds ahead of the cap."""
        return self.start + self.cap - before_cap


class FirstEpochWatch:
    """Fails the trial at its cost cap while the first training epoch still runs.

    The trainer stops before an epoch that would overrun the cap by timing the previous one, so
    nothing stops a first epoch longer than the cap: without this the agent kills the worker at
    the cap plus its grace with a bare "timeout". This says the real cause instead, and exits.
    """

    def __init__(self, clock: CostClock, events: EventWriter) -> None:
        self.started = time.time()
        self._clock, self._events = clock, events
        self._lock = threading.Lock()
        self._finished = False
        delay = clock.at(0.0) - self.started
        self._timer = threading.Timer(delay, self._overrun)
        self._timer.daemon = True
        if delay >= REPORT_MARGIN_S:  # less: the trainer stops before any epoch, so there is none to watch
            self._timer.start()

    def done(self) -> None:
        """The first epoch ended (or training did): nothing to watch any more."""
        with self._lock:
            self._finished = True
        self._timer.cancel()

    def _overrun(self) -> None:
        with self._lock:  # held until the process exits: `done()` never returns after this fired
            if self._finished:
                return
            reason = first_epoch_reason(time.time() - self.started, self._clock.cap)
            self._events.emit("failed", reason=reason, category=HYPERPARAMETER)
            print(f"sweepd worker: trial failed ({HYPERPARAMETER}): {reason}", file=sys.stderr, flush=True)
            os._exit(1)


def first_epoch_reason(seconds: float, cap: float) -> str:
    """Why a trial whose first training epoch outlasted its cost cap failed, and the fix."""
    return (f"the first training epoch took over {seconds:.0f} s, more than the cost cap {cap:.0f} s "
            f"leaves after start-up: lower batch_size (the steps of one epoch) or raise max_suggestion_cost")
