"""Child processes that must not outlive their parent: the agent's workers, a worker's command.

A killed agent (or worker) cannot clean up after itself, so its children ask the kernel to kill
them when their parent dies; no training is left running on a slot nobody tracks. Imports only
the standard library: the agent stays light, and the worker loads it before torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Run in the child between fork and exec (`subprocess.Popen(preexec_fn=die_with_parent)`):
    SIGKILL this process when its parent dies. Linux only; elsewhere (or without libc) a no-op.

    Pair it with `start_new_session=True`, so the child leads its own process group and the parent
    can kill the whole group (the trial and anything it started) with one `os.killpg`.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
