"""How a training command run by sweepd (`trainer = "command"`) reports its learning curve and score.

sweepd starts the command (with `{train.learning_rate}`-style placeholders filled from the trial's
config) in its own process group and reads JSON lines, one object per line, from two places:

- the command's **stdout**: a line that is a JSON object with a `"score"` key is a report; every
  other line is copied to the trial's log unchanged;
- the file descriptor named by the environment variable **`SWEEPD_REPORT_FD`**, which is what
  `report()` below writes to from Python.

A report is `{"step": int, "score": float}`; optional keys: `"final": true` (this is the final
score), `"checkpoint": "path"` (the trained model, relayed with the result), and any other metrics
by name (`"accuracy": 0.93`). The trial is scored by the key `[sweep] metric` names ("score" by
default): a report is a line carrying that key (a stdout line without it goes to the log), each one
becomes a `progress` event of the trial, and the trial's score is the `final` report's value, else
the last one reported; reports from the two channels count in the order they arrive. A command that
reports other numbers but never the metric fails its trial as a setup error naming the keys it did
report. The cost cap is enforced
by terminating the process group (SIGTERM, then SIGKILL shortly after) when the trial's wall time
reaches its cap; the last score reported before that is the trial's (truncated) result. A command
that exits non-zero, dies by a signal, or exits 0 without reporting a score is a failed trial.

Example, from a Python training script::

    from sweepd.report import report
    for step in range(0, total_steps, 10_000):
        ...
        report(step=step, score=mean_return)
    report(step=total_steps, score=final_return, final=True)

or from any language: `print(json.dumps({"step": 1000, "score": 3.2}), flush=True)`.
"""

from __future__ import annotations

import json
import math
import os
import sys

from sweepd.protocol import REPORT_FD_ENV


class ReportValueError(ValueError):
    """A report carries a value sweepd cannot record (a non-finite score, a negative step)."""

    def __init__(self, key: str, value: object) -> None:
        self.key, self.value = key, value
        super().__init__(f"report {key} must be a finite number >= 0 for step, finite for a metric; "
                         f"got {value!r}")


def report(*, step: int | None = None, score: float | None = None, final: bool = False,
           checkpoint: str | None = None, **metrics: float) -> None:
    """Report a score and any other metrics by name (at `step`) to sweepd; the sweep's `[sweep]
    metric` picks the one the trial is scored by. `final=True` marks the trial's final values.

    Writes one JSON line to the file descriptor in `SWEEPD_REPORT_FD`, or to stdout when the
    script runs outside sweepd (where sweepd would read it too).
    """
    values = {"score": score, **metrics} if score is not None else dict(metrics)
    if not values:
        raise TypeError("report() needs score= or another metric by name (accuracy=0.9)")
    message: dict[str, object] = {}
    for key, value in values.items():
        number = float(value)
        if not math.isfinite(number):
            raise ReportValueError(key, value)
        message[key] = number
    if step is not None:
        if int(step) < 0:
            raise ReportValueError("step", step)
        message["step"] = int(step)
    if final:
        message["final"] = True
    if checkpoint is not None:
        message["checkpoint"] = str(checkpoint)
    line = json.dumps(message) + "\n"
    fd = os.environ.get(REPORT_FD_ENV)
    if fd is None:
        sys.stdout.write(line)
        sys.stdout.flush()
        return
    # os.write on the raw fd: no buffering to lose if the process is killed at the cap.
    os.write(int(fd), line.encode())
