"""Child processes that must not outlive their parent: the agent's workers, a worker's command.

A killed agent (or worker) cannot clean up after itself, so its children ask the kernel to kill
them when their parent dies; no training is left running on a slot nobody tracks. Imports only
the standard library: the agent stays light, and the worker loads it before torch.

No child is started with `preexec_fn`: Python runs it between fork and exec, where a lock held by
another thread of the parent (rich's live-view thread in `sweepd launch`) can deadlock the child.
Instead the parent starts the child with `start_new_session=True` (its own process group, killed
as one with `os.killpg`) and `lifeline_env()` in its environment, and the child calls
`die_with_parent()` first thing in its own code: the worker at the top of `python -m sweepd.worker`;
a command trainer, which is not sweepd's code, through the launcher `python -m sweepd.lifeline`
(`launcher_argv`), which asks for the signal and then execs the command in the same process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Mapping, Sequence

PR_SET_PDEATHSIG = 1  # linux/prctl.h
LIFELINE_ENV = "SWEEPD_LIFELINE_PID"  # the pid of the parent a child must not outlive
EXEC_FAILED = 127  # the launcher's exit status when the command cannot be executed


def lifeline_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` naming this process as the parent its child must not outlive (see `die_with_parent`)."""
    return {**env, LIFELINE_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies: call it first thing in a child started with
    `lifeline_env()`. Linux only; elsewhere (or without libc) a no-op.

    The kernel's parent-death signal covers only a parent dying after the request, so a parent
    already gone by then (the child was reparented: its parent is no longer the pid in
    `SWEEPD_LIFELINE_PID`) kills the child at once.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    expected = os.environ.get(LIFELINE_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):
        os.kill(os.getpid(), signal.SIGKILL)


def launcher_argv(argv: Sequence[str], error_fd: int) -> list[str]:
    """The command line that runs `argv` under the launcher: it dies with the process that starts
    it (given `lifeline_env()`), and writes why to `error_fd` when `argv` cannot be executed; the
    fd is closed on a successful exec, so the parent reads EOF and nothing else."""
    return [sys.executable, "-m", "sweepd.lifeline", str(error_fd), *argv]


def launch(args: Sequence[str]) -> None:
    """`python -m sweepd.lifeline ERROR_FD COMMAND [ARG...]`: `die_with_parent()`, then exec."""
    error_fd, argv = int(args[0]), list(args[1:])
    die_with_parent()
    os.set_inheritable(error_fd, False)  # closed by a successful exec: the parent's EOF
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(error_fd, str(exc).encode(errors="replace"))
        os._exit(EXEC_FAILED)


if __name__ == "__main__":
    launch(sys.argv[1:])
