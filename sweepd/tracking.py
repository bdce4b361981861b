"""wandb tracking: one wandb run per finished trial, and per sweep a summary run holding the
seed-averaged Pareto front as a `wandb.Table` and a cost-vs-score plot.

Who talks to wandb: the agent, never the workers, and never in the agent's own process. When a
trial ends the agent queues its id here; `WandbTracker.poll()` (called from the agent loop) hands
the queued ids to a short-lived `python -m sweepd.tracking` subprocess, one at a time, that reads
the trials from the database (read-only) and writes their runs. Why a subprocess written after the
trial ends rather than "each worker logs its own run":
- workers stay free of wandb (no import cost, no wandb-core service, no network per trial, and a
  worker killed at its cost cap cannot leave a run "running" forever);
- a wandb hang or crash (network, service start-up) cannot stall the agent's loop: the subprocess
  is time-boxed (`TIMEOUT_S`) and killed past it; its failure is one log line, never a failed trial;
- the run is built from what the agent recorded (curve, score, cost, status), so the wandb run and
  the database tell the same story, and failed/abandoned trials finish with exit code 1.

Mode: `--no-wandb` or WANDB_MODE=disabled turn it off; WANDB_MODE=offline|online is obeyed;
otherwise online when the user is logged in (WANDB_API_KEY or a netrc entry for the wandb host),
else offline (runs kept under the wandb dir for `wandb sync`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import netrc
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sweepd.store.models import ABANDONED, FAILED, SUCCEEDED, finite
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo

TIMEOUT_S = 120.0            # one batch of runs; past it the subprocess is killed and the batch dropped
CLOSE_TIMEOUT_S = 120.0      # what an exiting agent waits for its last batch
MAX_BATCH = 2000             # trial ids per subprocess (its stdin stays one small JSON object)
DEFAULT_PROJECT = "sweepd"
FINISHED = (SUCCEEDED, FAILED, ABANDONED)


def resolve_mode(enabled: bool = True) -> str:
    """disabled | offline | online, from `--no-wandb`, WANDB_MODE and whether the user is logged in."""
    if not enabled or os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return "disabled"
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("disabled", "offline", "online"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if logged_in() else "offline"


def logged_in() -> bool:
    """Whether wandb has credentials here, read without importing wandb (it is slow to import)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_dir() -> Path:
    """Where offline runs are kept: $WANDB_DIR, else the sweepd data dir (runs land in its wandb/)."""
    from sweepd.store.db import data_dir

    return Path(os.environ.get("WANDB_DIR") or data_dir())


def project_of(sweep: SweepInfo, override: str | None) -> str:
    """`--wandb-project`, else the sweep file's `[sweep] wandb_project`, else "sweepd"."""
    return override or sweep.spec.get("settings", {}).get("wandb_project") or DEFAULT_PROJECT


def sweep_tag(sweep: SweepInfo) -> str:
    """A run-id prefix unique to this sweep: its name plus a hash of (name, creation time), so two
    databases that both have a "snake-1" never write into each other's runs."""
    digest = hashlib.sha1(f"{sweep.name}:{sweep.created_at!r}".encode()).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', sweep.name)}-{digest}"


def trial_run_id(sweep: SweepInfo, number: int) -> str:
    """The wandb run id of a trial: stable, so the Pareto table can link to it before it exists."""
    return f"{sweep_tag(sweep)}-t{number}"


def summary_run_id(sweep: SweepInfo) -> str:
    return f"{sweep_tag(sweep)}-pareto"


# --- the agent's side: queue trial ids, run one time-boxed subprocess at a time ------------------

class WandbTracker:
    """Queues finished trials and writes them to wandb in a time-boxed subprocess.

    Never raises into the agent: every failure is logged and the trials concerned are skipped.
    """

    def __init__(self, db_url: str, mode: str, project: str | None = None, directory: Path | None = None,
                 timeout: float = TIMEOUT_S, log: Callable[[str], None] | None = None) -> None:
        self.db_url, self.mode, self.project = db_url, mode, project
        self.directory = directory or wandb_dir()
        self.timeout = timeout
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.pending: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.batch: list[int] = []
        self.deadline = math.inf
        self.failures = 0
        self.batches = 0
        self.command = [sys.executable, "-m", "sweepd.tracking"]  # what runs a batch (tests swap it)

    def trial_ended(self, trial_id: int) -> None:
        """A trial's end was recorded (or queued for recording): write its run soon."""
        self.pending.append(trial_id)

    def poll(self) -> None:
        """Reap a finished or overdue batch; start the next one. Cheap: called every agent tick."""
        try:
            if self.proc is not None and not self._reap():
                return
            if self.pending:
                self._start()
        except Exception as exc:  # tracking must never take the agent down
            self.log(f"wandb: tracking error ({type(exc).__name__}: {exc}); trials not logged")
            self.pending.clear()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush what is queued, waiting at most `timeout` seconds in all (Ctrl-C skips)."""
        end = time.monotonic() + timeout
        try:
            while self.proc is not None or self.pending:
                if self.proc is None:
                    self.log(f"wandb: writing {len(self.pending)} trial run(s) ({self.mode}; at most {timeout:.0f} s)")
                self.deadline = min(self.deadline, end)
                self.poll()
                if self.proc is not None:
                    time.sleep(0.1)
        except KeyboardInterrupt:
            self._kill("interrupted")
        if self.mode == "offline" and self.batches and not self.failures:
            self.log(f"wandb: offline runs in {self.directory / 'wandb'}; upload with `wandb sync --sync-all`")

    def _start(self) -> None:
        self.batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        self.directory.mkdir(parents=True, exist_ok=True)
        job = {"db": self.db_url, "mode": self.mode, "project": self.project, "dir": str(self.directory),
               "trials": self.batch}
        with open(self.directory / "sweepd-tracking.log", "ab") as log:
            # Its own session: a kill on timeout takes wandb's service process with it.
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, WANDB_SILENT="true"))
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a child that died at once is reaped like any other
            self.proc.stdin.write(json.dumps(job).encode())  # ids only: far below a pipe's buffer
            self.proc.stdin.close()
        self.deadline = time.monotonic() + self.timeout
        self.batches += 1

    def _reap(self) -> bool:
        """True when no batch is running any more."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            if time.monotonic() < self.deadline:
                return False
            self._kill(f"still running after {self.timeout:.0f} s")
            return True
        if code != 0:
            self.failures += 1
            self.log(f"wandb: logging {len(self.batch)} trial(s) failed (exit {code}); "
                     f"see {self.directory / 'sweepd-tracking.log'}")
        self.proc, self.deadline = None, math.inf
        return True

    def _kill(self, why: str) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.failures += 1
        self.log(f"wandb: gave up on {len(self.batch)} trial run(s): {why}")
        self.proc, self.deadline = None, math.inf


def make_tracker(db_url: str, enabled: bool = True, project: str | None = None,
                 log: Callable[[str], None] | None = None) -> WandbTracker | None:
    """The agent's tracker, or None when wandb is disabled."""
    mode = resolve_mode(enabled)
    if mode == "disabled":
        return None
    return WandbTracker(db_url, mode, project=project, log=log)


# --- the subprocess: read the trials, write their runs and the sweeps' Pareto tables -----------

def write_runs(job: dict[str, Any]) -> int:
    """Write the runs of `job["trials"]` and refresh their sweeps' summary runs; returns runs written."""
    import wandb

    from sweepd.store import review
    from sweepd.store.db import make_engine
    from sweepd.store.sweeps import find_sweep

    engine = make_engine(job["db"], read_only=True)
    directory = Path(job["dir"])
    trials = [t for t in review.trials_by_id(engine, job["trials"]) if t.status in FINISHED]
    sweeps = {sid: find_sweep(engine, sid) for sid in {t.sweep_id for t in trials}}
    written = 0
    try:
        for trial in trials:
            sweep = sweeps[trial.sweep_id]
            try:
                log_trial_run(wandb, trial, sweep, project_of(sweep, job.get("project")), job["mode"], directory)
                written += 1
            except Exception as exc:  # one bad run must not lose the others
                print(f"trial {sweep.name}#{trial.number}: {type(exc).__name__}: {exc}", file=sys.stderr)
        for sweep in sweeps.values():
            log_front_if_changed(wandb, sweep, review.trial_table(engine, sweep.id),
                                 project_of(sweep, job.get("project")), job["mode"], directory)
    finally:
        wandb.teardown()  # stops wandb's service process: every run file is complete when this returns
    return written


def _settings(wandb: Any) -> Any:
    # No console capture, system stats, git or code snapshot: these runs are written after the fact.
    return wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True, disable_git=True,
                          save_code=False, disable_job_creation=True, silent=True)


def log_trial_run(wandb: Any, trial: TrialInfo, sweep: SweepInfo, project: str, mode: str, directory: Path) -> None:
    """One trial as one finished wandb run: config = params and seed, curve by step, result summary
    (with the steps it trained and `stopped`); a run cut at the cost cap or stopped early by the
    searcher is also tagged so ("cut", "stopped"), to filter on in the wandb UI."""
    from sweepd.front import end_mark

    config = {**trial.params, "seed": trial.seed, "trial": trial.number, "kind": trial.kind, "sweep": sweep.name}
    mark = end_mark(trial.truncated, trial.stopped) if trial.status == SUCCEEDED else ""
    run = wandb.init(project=project, group=sweep.name, job_type="trial", name=f"{sweep.name}#{trial.number}",
                     id=trial_run_id(sweep, trial.number), resume="allow", config=config, mode=mode,
                     dir=str(directory), reinit="create_new", tags=[trial.kind, *([mark] if mark else [])],
                     settings=_settings(wandb))
    exit_code = 0 if trial.status == SUCCEEDED else 1
    try:
        last = -1
        for step, score, elapsed in trial.metrics.get("curve", []):
            # wandb drops non-increasing steps with a warning; the agent's thinned curve is ordered anyway.
            if int(step) <= last or not math.isfinite(score):
                continue
            last = int(step)
            run.log({"curve/score": score, "curve/elapsed": elapsed}, step=last)
        run.summary.update({k: v for k, v in {
            "status": trial.status, "score": finite(trial.score), "score_stderr": finite(trial.score_stderr),
            "cost": finite(trial.cost), "predicted_cost": finite(trial.predicted_cost),
            "predicted_score": finite(trial.predicted_score), "truncated": trial.truncated,
            "stopped": trial.stopped, "steps": finite(trial.steps),
            "failure_reason": trial.failure_reason, "failure_category": trial.failure_category,
            "box": trial.box}.items() if v is not None})
    finally:
        run.finish(exit_code=exit_code)


def log_front_if_changed(wandb: Any, sweep: SweepInfo, trials: list[TrialInfo], project: str, mode: str,
                         directory: Path) -> bool:
    """Log the sweep's Pareto table and plot to its summary run when the front differs from the last
    one logged from this wandb dir; True if logged."""
    from sweepd.front import front_records, sweep_front
    from sweepd.view import center_of

    points = sweep_front(sweep, trials)
    records = front_records(points, center_of(sweep))
    state = directory / "sweepd-fronts" / f"{summary_run_id(sweep)}.json"
    key = json.dumps(records, sort_keys=True, default=str)
    if state.exists() and state.read_text() == key:
        return False
    param_names = [p["name"] for p in sweep.spec["params"]]
    run = wandb.init(project=project, group=sweep.name, job_type="summary", name=f"{sweep.name} pareto",
                     id=summary_run_id(sweep), resume="allow", mode=mode, dir=str(directory),
                     reinit="create_new", config={"sweep": sweep.name, "env": sweep.env, "searcher": sweep.searcher,
                                                  "settings": sweep.spec["settings"], "params": sweep.spec["params"]},
                     settings=_settings(wandb))
    try:
        base = run.url.rsplit("/runs/", 1)[0] + "/runs/" if mode == "online" and run.url else ""  # online only
        # As `sweepd pareto --csv`: steps trained, and how the point ended (truncated: cut at the cost
        # cap or stopped; stopped: early, by the searcher); params as planned.
        columns = ["cost", "score", "score_stderr", "seeds", "steps", "truncated", "stopped", "trials", "runs",
                   *param_names]
        table = wandb.Table(columns=columns)
        for r in records:
            runs = " ".join(base + trial_run_id(sweep, n) for n in r["trials"])
            table.add_data(r["cost"], r["score"], r["score_stderr"], r["seeds"], r["steps"], r["truncated"],
                           r["stopped"], ",".join(map(str, r["trials"])), runs,
                           *[r["params"].get(name) for name in param_names])
        logged: dict[str, Any] = {"pareto": table}
        with tempfile.TemporaryDirectory() as tmp:
            from sweepd.plot import PlotUnavailable, save_pareto_png

            with contextlib.suppress(PlotUnavailable):  # no matplotlib: the table alone
                png = save_pareto_png(trials, points, Path(tmp) / "pareto.png", title=f"{sweep.name}: cost vs score")
                logged["pareto_plot"] = wandb.Image(str(png))
            run.log(logged)
        # The front is sorted by cost and improves along it: its last point is the best score.
        run.summary.update({"front_size": len(points), "trials": len(trials),
                            "best_score": points[-1].score if points else None})
    finally:
        run.finish()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(key)
    return True


def main() -> None:
    """`python -m sweepd.tracking`: one batch, described by a JSON object on stdin."""
    job = json.loads(sys.stdin.read())
    written = write_runs(job)
    print(f"sweepd.tracking: {written} trial run(s) written ({job['mode']})")


if __name__ == "__main__":
    main()
