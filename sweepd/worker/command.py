"""Trainer "command": run the user's command with the trial's values in its arguments, relay the
scores it reports (stdout JSON lines or `sweepd.report.report()`), stop its process group at the
cost cap or when the agent asks to stop early (sweepd/worker/stopping.py), and report its last score."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sweepd.lifeline import launcher_argv, lifeline_env
from sweepd.protocol import HYPERPARAMETER, REPORT_FD_ENV, SETUP, EventWriter, TrialFailed, TrialPayload
from sweepd.worker.clock import COMMAND_KILL_BEFORE_S, COMMAND_TERM_BEFORE_S, CostClock
from sweepd.worker.stopping import StopRequest

# Why the relay ended the command before it ended by itself.
AT_CAP, STOPPED_EARLY = "cap", "stopped"

_REPORT_FIELDS = ("step", "final", "checkpoint")  # a report's fields that are not metrics
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w]*)(?:\.([A-Za-z_][\w]*))?\}")


class PlaceholderError(KeyError):
    """A command argument names a `{section.key}` the trial config does not have."""

    def __init__(self, placeholder: str, argument: str) -> None:
        self.placeholder, self.argument = placeholder, argument
        super().__init__(placeholder)

    def __str__(self) -> str:
        return f"command argument {self.argument!r}: no value for {{{self.placeholder}}} in the trial"


def fill_command(command: Iterable[str], trial: TrialPayload) -> list[str]:
    """The command with `{train.learning_rate}`-style placeholders filled from the trial config;
    `{seed}`, `{artifact_dir}` and `{trial_id}` are filled from the trial itself."""
    own = {"seed": trial.seed, "artifact_dir": str(trial.artifact_dir), "trial_id": trial.trial_id}

    def format_value(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def fill(argument: str) -> str:
        def replace(match: re.Match[str]) -> str:
            section, key = match.group(1), match.group(2)
            if key is None:
                if section in own and own[section] is not None:
                    return format_value(own[section])
                raise PlaceholderError(section, argument)
            values = trial.config.get(section, {})
            if key not in values:
                raise PlaceholderError(f"{section}.{key}", argument)
            return format_value(values[key])

        return _PLACEHOLDER.sub(replace, argument)

    return [fill(argument) for argument in command]


@dataclass
class CommandReports:
    """What a command reported: its last score (the value of `metric`, `[sweep] metric`), step,
    final flag and checkpoint, and every numeric key its reports carried."""

    metric: str = "score"
    score: float | None = None
    step: int = 0
    final: bool = False
    checkpoint: str | None = None
    count: int = 0
    keys: set[str] = field(default_factory=set)

    def take(self, message: Mapping[str, Any]) -> bool:
        """Record one report; False when it is not a usable report (it lacks the metric)."""
        self.keys.update(key for key, value in message.items() if key not in _REPORT_FIELDS
                         and isinstance(value, int | float) and not isinstance(value, bool))
        score = message.get(self.metric)
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            return False
        if self.final:
            return False  # nothing after the final score counts
        self.score = float(score)
        step = message.get("step")
        self.step = int(step) if isinstance(step, int | float) and not isinstance(step, bool) else self.count
        self.final = message.get("final") is True
        if isinstance(message.get("checkpoint"), str):
            self.checkpoint = message["checkpoint"]
        self.count += 1
        return True

    def unknown_metric(self) -> str | None:
        """Why the trial cannot be scored when the command reported numbers but never the metric."""
        if self.score is not None or not self.keys:
            return None
        return (f"metric '{self.metric}' was never reported; the command reported: {', '.join(sorted(self.keys))} "
                f"(set [sweep] metric to one of them, or report it: sweepd/report.py)")


def run_command(trial: TrialPayload, events: EventWriter, clock: CostClock, stop: StopRequest) -> None:
    """Run the trial's command, relay its reports, stop it at the cap or on the agent's `stop`,
    report its score (after a stop, its last report stands as a truncated, stopped result)."""
    try:
        argv = fill_command(trial.command, trial)
        trial.artifact_dir.mkdir(parents=True, exist_ok=True)
    except (PlaceholderError, OSError) as exc:
        raise TrialFailed(SETUP, str(exc)) from exc
    report_read, report_write = os.pipe()
    exec_read, exec_write = os.pipe()
    env = lifeline_env(dict(os.environ, **{REPORT_FD_ENV: str(report_write)},
                            SWEEPD_ARTIFACT_DIR=str(trial.artifact_dir)))
    try:
        # Its own process group, killed as one; the launcher (sweepd/lifeline.py) SIGKILLs it if
        # the worker dies first, then execs the command, or says on exec_write why it could not.
        proc = subprocess.Popen(launcher_argv(argv, exec_write), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, env=env, pass_fds=(report_write, exec_write),
                                start_new_session=True)
    except OSError as exc:
        os.close(report_read)
        raise TrialFailed(SETUP, f"cannot start sweepd's command launcher: {exc}") from exc
    finally:
        os.close(report_write)  # the child holds its copy; EOF comes when it exits
        os.close(exec_write)
    exec_error = _read_all(exec_read)
    if exec_error:
        proc.wait()
        os.close(report_read)
        raise TrialFailed(SETUP, f"cannot start command {argv[0]!r}: {exec_error}")

    # If the agent stops the worker, stop the command's process group with it.
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    events.emit("started", time=time.time())
    start = time.time()
    reports = CommandReports(metric=trial.metric)
    ended_by = _relay(proc, report_read, reports, events, clock, stop)
    returncode = proc.wait()
    train_seconds = time.time() - start

    unknown = reports.unknown_metric()
    if unknown is not None and (ended_by is not None or returncode == 0):
        raise TrialFailed(SETUP, unknown)  # it ran and reported, never the key the sweep file names
    if ended_by is not None:
        if reports.score is None:
            raise TrialFailed(HYPERPARAMETER, f"no score reported before the cost cap ({trial.cost_cap:.0f} s)"
                              if ended_by == AT_CAP else "stopped early before it reported a score")
    elif returncode < 0:
        # A signal (SIGSEGV, the OOM killer's SIGKILL) is the config's doing even before the first
        # report: a broken install exits with an error code instead.
        raise TrialFailed(HYPERPARAMETER, f"command killed by {signal.Signals(-returncode).name}")
    elif returncode != 0:
        category = HYPERPARAMETER if reports.count else SETUP
        raise TrialFailed(category, f"command exited with code {returncode}")
    elif reports.score is None:
        raise TrialFailed(SETUP, "command exited 0 without reporting a score (see sweepd/report.py)")
    events.emit("result", score=reports.score, score_stderr=0.0, per_seed=[reports.score],
                cost=clock.elapsed(), train_seconds=train_seconds, eval_seconds=0.0, steps=reports.step,
                truncated=ended_by is not None and not reports.final,
                stopped=ended_by == STOPPED_EARLY and not reports.final, checkpoint=reports.checkpoint)


def _relay(proc: subprocess.Popen[bytes], report_fd: int, reports: CommandReports, events: EventWriter,
           clock: CostClock, stop: StopRequest) -> str | None:
    """Relay reports from the command's stdout and report fd until it ends; AT_CAP or STOPPED_EARLY
    when the relay ended it (SIGTERM to its process group, SIGKILL 0.75 s later), else None."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    pending = {proc.stdout.fileno(): b"", report_fd: b""}
    for fd in pending:
        selector.register(fd, selectors.EVENT_READ)
    selector.register(stop.fd, selectors.EVENT_READ)  # wakes the select below at the agent's word
    term_at, kill_at = clock.at(COMMAND_TERM_BEFORE_S), clock.at(COMMAND_KILL_BEFORE_S)
    ended_by: str | None = None
    while pending or proc.poll() is None:
        now = time.time()
        if ended_by is None and (stop.requested or now >= term_at):
            ended_by = STOPPED_EARLY if stop.requested and now < term_at else AT_CAP
            kill_at = min(kill_at, now + COMMAND_TERM_BEFORE_S - COMMAND_KILL_BEFORE_S)
            _signal_group(proc, signal.SIGTERM)
        stopped = ended_by is not None
        if stopped and now >= kill_at:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
            elif now >= kill_at + COMMAND_KILL_BEFORE_S:
                break  # a descendant that left the process group still holds the pipes open
        # Wake for the next deadline, or every 50 ms once only the process is left to reap.
        wake = term_at if not stopped else kill_at
        timeout = min(max(wake - now, 0.01), 0.05) if not pending or stopped else max(0.0, wake - now)
        if not pending:
            time.sleep(timeout)
            continue
        for key, _ in selector.select(timeout=timeout):
            fd = key.fd
            if fd == stop.fd:
                stop.drain()
                continue
            data = os.read(fd, 65536)
            if not data:
                selector.unregister(fd)
                _handle_lines(pending.pop(fd), fd == report_fd, reports, events, clock)
                continue
            buffered = pending[fd] + data
            *lines, pending[fd] = buffered.split(b"\n")
            _handle_lines(b"\n".join(lines), fd == report_fd, reports, events, clock)
    selector.close()
    os.close(report_fd)
    return ended_by


def _read_all(fd: int) -> str:
    """Everything written to `fd` until EOF (the launcher's exec error, empty on success); closes it."""
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _handle_lines(chunk: bytes, from_report_fd: bool, reports: CommandReports, events: EventWriter,
                  clock: CostClock) -> None:
    for raw in chunk.split(b"\n"):
        if not raw.strip():
            continue
        text = raw.decode(errors="replace")
        message = None
        with contextlib.suppress(ValueError):
            message = json.loads(text)
        if isinstance(message, dict) and reports.take(message):
            events.emit("progress", step=reports.step, score=reports.score, elapsed=clock.elapsed())
        elif from_report_fd:
            print(f"sweepd worker: ignored report line {text!r}", file=sys.stderr, flush=True)
        else:
            # The command's own output goes to the trial log, as it would without sweepd.
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
