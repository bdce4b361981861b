"""Children die with their parent without `preexec_fn` (sweepd/lifeline.py): no module starts a
process with it, the launcher's command dies when the process that started it is SIGKILLed, and a
child whose parent is already gone by the time it asks never runs its command. Real processes."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

from toy import alive, wait_for

import sweepd
from sweepd.lifeline import EXEC_FAILED, LIFELINE_ENV, launcher_argv

# Starts the launcher running `sleep`, prints the sleep's pid, then waits to be killed.
PARENT = """\
import os, subprocess, sys, time
from sweepd.lifeline import launcher_argv, lifeline_env
read_fd, write_fd = os.pipe()
child = subprocess.Popen(launcher_argv(["sleep", "300"], write_fd), env=lifeline_env(os.environ),
                         pass_fds=(write_fd,), start_new_session=True)
os.close(write_fd)
assert os.read(read_fd, 100) == b""  # EOF: the exec succeeded
print(child.pid, flush=True)
time.sleep(300)
"""


def test_no_child_process_is_started_with_preexec_fn():
    package = Path(sweepd.__file__).parent
    users = [f"{path.relative_to(package.parent)}:{node.lineno}"
             for path in sorted(package.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.keyword) and node.arg == "preexec_fn"]
    assert users == []


def test_a_launched_command_dies_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        assert Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"  # exec'd in place
        assert os.getsid(child) == child  # its own session and process group
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not alive(child), timeout=10, what="the orphaned command to die")
    finally:
        parent.kill()


def test_a_child_whose_parent_is_already_gone_never_runs_its_command(tmp_path):
    marker = tmp_path / "ran"
    read_fd, write_fd = os.pipe()
    # Its parent (this process) is not the one the environment names: as if that one had died.
    env = dict(os.environ, **{LIFELINE_ENV: str(os.getpid() + 1_000_000)})
    done = subprocess.run(launcher_argv(["touch", str(marker)], write_fd), env=env, pass_fds=(write_fd,),
                          timeout=30)
    os.close(write_fd)
    os.close(read_fd)
    assert done.returncode == -signal.SIGKILL
    assert not marker.exists()


def test_the_launcher_says_why_a_command_cannot_start(tmp_path):
    read_fd, write_fd = os.pipe()
    done = subprocess.run(launcher_argv([str(tmp_path / "missing")], write_fd), pass_fds=(write_fd,),
                          env=dict(os.environ, **{LIFELINE_ENV: str(os.getpid())}), timeout=30)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        error = pipe.read().decode()
    assert done.returncode == EXEC_FAILED
    assert "No such file or directory" in error
