"""The worker protocol: what the agent sends a worker, and what the worker says back.

The agent starts `python -m sweepd.worker`, writes one `TrialPayload` as JSON on its stdin and
reads JSON-line events from the file descriptor named by `SWEEPD_REPORT_FD` (a worker run by
hand, with no such fd, writes them to stdout): `started`, then `progress` points
(`step`, `score`, `elapsed`), then `result` (exit 0) or `failed` with a `reason` and a `category`
(exit 1; exit 2 when the payload itself is unusable). Both halves live here: `EventWriter` is the
worker's, `parse_event` the agent's. Command trainers reach the worker through the same
environment variable with `sweepd.report.report()`.

The agent's one message back is `STOP_SIGNAL`, sent to the worker process alone (never its
process group: PufferLib's env processes and a command's children have no handler for it): stop
training early, evaluate as usual and report a result with `stopped: true` (and `truncated: true`)
and the `steps` trained (sweepd/worker/stopping.py).

Imports only the standard library: the worker loads it before torch, and the cost clock of a
trial starts at the worker process's start, so every import here is paid by every trial.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepd.jsonsafe import json_safe

REPORT_FD_ENV = "SWEEPD_REPORT_FD"
STOP_SIGNAL = signal.SIGUSR1       # agent -> worker process: stop training early (the searcher said so)
EVENTS = ("started", "progress", "result", "failed")
# The failure categories a worker may report: the same strings as the store's (sweepd.store.models),
# which the worker cannot import without paying for SQLAlchemy in every trial's cost.
SETUP = "setup"                    # no searched value can cause it: the sweep is paused
HYPERPARAMETER = "hyperparameter"  # the searched values caused it: the searcher observes it


class TrialFormatError(ValueError):
    """The trial JSON lacks a key or carries a value of the wrong kind."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value = key, value
        super().__init__(f"trial key '{key}' must be {expected}, got {value!r}")


class TrialFailed(Exception):
    """The trial failed for a reason the worker reports (a `failed` event), with its category."""

    def __init__(self, category: str, reason: str) -> None:
        self.category, self.reason = category, reason
        super().__init__(f"{category}: {reason}")


@dataclass(frozen=True)
class TrialPayload:
    """One trial as the agent sends it on the worker's stdin."""

    env: str
    trainer: str
    config: dict[str, dict[str, Any]]
    seed: int
    cost_cap: float
    eval_episodes: int
    eval_seeds: int
    artifact_dir: Path
    device: str
    command: tuple[str, ...] = ()
    trial_id: int | None = None
    sweep: str | None = None
    number: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the searched values, for the trial log
    metric: str = "score"  # `[sweep] metric`: the reported key that is the score

    def encode(self) -> bytes:
        """The payload as the JSON the worker reads (`from_json`)."""
        return json.dumps({
            "trial_id": self.trial_id, "sweep": self.sweep, "number": self.number, "env": self.env,
            "trainer": self.trainer, "command": list(self.command) or None, "config": self.config,
            "params": self.params, "seed": self.seed, "cost_cap": self.cost_cap,
            "eval_episodes": self.eval_episodes, "eval_seeds": self.eval_seeds,
            "artifact_dir": str(self.artifact_dir), "device": self.device, "metric": self.metric,
        }).encode()

    @classmethod
    def from_json(cls, obj: object) -> TrialPayload:
        """Validate the decoded trial JSON; raises `TrialFormatError` naming the bad key."""
        if not isinstance(obj, dict):
            raise TrialFormatError("<trial>", obj, "a JSON object")

        def take(key: str, kind: type | tuple[type, ...], expected: str, default: Any = ...) -> Any:
            if key not in obj:
                if default is ...:
                    raise TrialFormatError(key, None, expected)
                return default
            value = obj[key]
            # JSON true/false decode to bool, which Python counts as int: reject them for numbers.
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TrialFormatError(key, value, expected)
            return value

        trainer = take("trainer", str, '"puffer" or "command"', "puffer")
        if trainer not in ("puffer", "command"):
            raise TrialFormatError("trainer", trainer, '"puffer" or "command"')
        config = take("config", dict, "an object of sections", {})
        for section, values in config.items():
            if not isinstance(values, dict):
                raise TrialFormatError(f"config.{section}", values, "an object")
        command = take("command", (list, type(None)), "a list of strings or null", None) or []
        if trainer == "command" and (not command or not all(isinstance(c, str) for c in command)):
            raise TrialFormatError("command", command, "a non-empty list of strings")
        cost_cap = float(take("cost_cap", (int, float), "a number of seconds > 0"))
        if not cost_cap > 0:
            raise TrialFormatError("cost_cap", cost_cap, "a number of seconds > 0")
        eval_episodes = take("eval_episodes", int, "an integer >= 1", 8)
        eval_seeds = take("eval_seeds", int, "an integer >= 1", 2)
        if eval_episodes < 1 or eval_seeds < 1:
            raise TrialFormatError("eval_episodes/eval_seeds", (eval_episodes, eval_seeds), "integers >= 1")
        return cls(
            env=take("env", str, "an env name", ""),
            trainer=trainer,
            config=config,
            seed=take("seed", int, "an integer", 0),
            cost_cap=cost_cap,
            eval_episodes=eval_episodes,
            eval_seeds=eval_seeds,
            artifact_dir=Path(take("artifact_dir", str, "a folder path")).resolve(),
            device=take("device", str, '"cpu" or "cuda[:n]"', "cpu"),
            command=tuple(command),
            trial_id=take("trial_id", (int, type(None)), "an integer", None),
            sweep=take("sweep", (str, type(None)), "a sweep name", None),
            number=take("number", (int, type(None)), "an integer", None),
            params=take("params", dict, "an object of searched values", {}),
            metric=take("metric", str, "a metric name", "score") or "score",
        )


# -- the worker's half ----------------------------------------------------------------------------

class EventWriter:
    """Writes protocol events as JSON lines to one file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> EventWriter:
        """The fd named by SWEEPD_REPORT_FD, else stdout."""
        return cls(int(os.environ.get(REPORT_FD_ENV, sys.stdout.fileno())))

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event; non-finite numbers become null so the line stays valid JSON."""
        line = json.dumps({"event": event, **json_safe(fields)}, allow_nan=False) + "\n"
        data = line.encode()
        while data:
            data = data[os.write(self.fd, data):]


# -- the agent's half -----------------------------------------------------------------------------

def parse_event(line: bytes) -> dict[str, Any] | None:
    """One line from a worker's report pipe as a protocol event the agent can trust, or None.

    Workers are user code at one remove (a command trainer, a PufferLib env): a line that is not
    a JSON object with a known `event` is ignored; numbers that are missing, not numbers or not
    finite become None (PostgreSQL's JSON has no NaN: one would fail every heartbeat); a failure
    category other than setup or hyperparameter becomes hyperparameter; a result without a finite
    score becomes a failure saying so; a result's `stopped` and `truncated` are booleans (a stopped
    result is truncated) and its `steps` a number >= 0 or None. Everything else is kept, made JSON-safe.
    """
    try:
        message = json.loads(line)
    except ValueError:
        return None  # a stray write to the report pipe is no reason to fail the trial
    if not isinstance(message, dict) or message.get("event") not in EVENTS:
        return None
    event: dict[str, Any] = json_safe(message)
    kind = event["event"]
    if kind == "progress":
        event.update(step=_number(event.get("step")), score=_number(event.get("score")),
                     elapsed=_number(event.get("elapsed")))
    elif kind == "result":
        score = message.get("score")
        if _number(score) is None:
            # NaN or inf is what the config trained to (a diverged run); anything else is a broken worker.
            diverged = isinstance(score, float) and not math.isfinite(score)
            return {"event": "failed", "category": HYPERPARAMETER if diverged else SETUP,
                    "reason": f"worker reported a result without a finite score (score: {score!r})"}
        cost = _number(event.get("cost"))
        steps = _number(event.get("steps"))
        stopped = event.get("stopped") is True
        event.update(score=float(score), score_stderr=_number(event.get("score_stderr")),
                     cost=cost if cost is not None and cost >= 0 else None, stopped=stopped,
                     truncated=stopped or event.get("truncated") is True,
                     steps=steps if steps is not None and steps >= 0 else None)
    elif kind == "failed":
        reason = event.get("reason")
        event["reason"] = reason if isinstance(reason, str) and reason.strip() else "worker reported a failure"
        if event.get("category") not in (SETUP, HYPERPARAMETER):
            event["category"] = HYPERPARAMETER
    return event


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (bool, str, null, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
