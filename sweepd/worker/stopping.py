"""The agent's word to stop a trial early: `STOP_SIGNAL` (SIGUSR1) to the worker process.

The handler only records the request; the trainers act on it where stopping is cheap and safe:
the puffer trainer before its next epoch (then it evaluates as at the cap), the command relay at
once (the command's process group gets SIGTERM, then SIGKILL, as at the cap). The handler is
installed before the worker reads its trial, long before the agent can ask (it asks only about a
trial that has reported progress), so the signal's default action (terminate) never applies.
Only the worker process gets the signal: its children (PufferLib's env processes, a command and
its children) keep the default action and would die of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from sweepd.protocol import STOP_SIGNAL


class StopRequest:
    """Whether the agent asked this worker to stop early, and a file descriptor that becomes
    readable when it does (a relay waiting in `select` wakes at once)."""

    def __init__(self) -> None:
        self.requested = False
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> None:
        """Handle STOP_SIGNAL from now on."""
        signal.signal(STOP_SIGNAL, self._on_signal)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.requested = True
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            os.write(self._write_fd, b"!")

    def drain(self) -> None:
        """Empty the wake-up pipe (after `fd` was readable)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 64):
                pass
