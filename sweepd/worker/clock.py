"""The worker's cost clock: wall seconds since the worker process started, against the trial's cap,
and how far ahead of the cap the worker stops what it cannot interrupt cleanly."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def _process_start_time() -> float:
    """Epoch seconds at which this process was created (Linux /proc, to 10 ms), else now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), in clock ticks since boot
        # /proc/stat's btime is whole seconds; the boot clock gives boot time to the microsecond.
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


WORKER_START = _process_start_time()

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
