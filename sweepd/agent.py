"""The daemon on a box: lease work for free slots, run one worker subprocess per trial, heartbeat
the leases, record what the workers report. It is the only process on its box that writes to
the database; workers talk to it over a pipe (JSON lines, see sweepd/worker.py).

The loop, top to bottom: heartbeat our leases and the box, reap expired leases -> lease work for
free slots -> read worker reports -> collect exited workers -> enforce deadlines and shutdown.
A database outage stops none of it but the writes: workers keep training, writes are retried
with backoff, and the agent re-attaches to its leases by token when the database is back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from sweepd.lifeline import die_with_parent
from sweepd.search import Observation, create_searcher
from sweepd.spec import SweepSpec
from sweepd.store import queue
from sweepd.store.db import data_dir
from sweepd.store.models import HYPERPARAMETER, INFRA, SETUP, SWEEP_PAUSED, SWEEP_RUNNING

LOG_TAIL_LINES = 20
CURVE_POINTS = 400           # learning-curve points kept per trial (older ones thinned)
KILL_AFTER_CAP = 1.5         # a worker still alive at cost_cap * this (+ startup slack) is killed
STARTUP_SLACK_S = 60.0       # interpreter, torch and env start-up are not the trial's fault
TERM_GRACE_S = 10.0          # SIGTERM -> SIGKILL
EXIT_GRACE_S = 10.0          # a worker that reported its result or failure has this long to exit
KILL_WAIT_S = 5.0            # after SIGKILL, how long an exiting agent waits for its workers to go
IDLE_POLL_S = 2.0            # a slot that found no work asks again after this long
SPAWN_RETRY_S = 10.0         # after this box failed to start a worker, lease nothing for this long
OUTAGE_RETRY_S = 0.25        # first retry after a database error; doubles up to the heartbeat interval
WORKER_COMMAND = (sys.executable, "-m", "sweepd.worker")


def current_user() -> str:
    """The user sweepd acts for: $SWEEPD_USER, else the OS login."""
    import getpass

    return os.environ.get("SWEEPD_USER") or getpass.getuser()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs), without
    importing torch (the agent stays light). Slot i of a cuda agent runs on entry i: an agent
    started with CUDA_VISIBLE_DEVICES=4,5 runs its trials on GPUs 4 and 5, not 0 and 1."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA ignores an invalid entry and every entry after it ("-1": no GPU)
            ids.append(entry)
        return ids
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i in range(sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")))]


def detect_gpus() -> int:
    """How many GPUs this process may use (`visible_gpus`)."""
    return len(visible_gpus())


class ProposalFailed(Exception):
    """The sweep's searcher (or its stored spec) raised while proposing a trial: that sweep is
    broken, not the agent, which pauses it and keeps serving the others."""

    def __init__(self, sweep: queue.SweepInfo, error: Exception) -> None:
        self.sweep, self.error = sweep, error
        super().__init__(f"sweep {sweep.name}: {type(error).__name__}: {error}")


def propose_next(sweep: queue.SweepInfo, history: queue.History) -> queue.Proposal:
    """Rebuild the sweep's searcher from its history and ask it for the next config.

    The searcher holds no state the database cannot rebuild, so any agent on any box gets the
    same answer for the same history; minimized metrics are negated so searchers always maximize.
    """
    spec = SweepSpec.from_json(sweep.spec)
    sign = 1.0 if spec.settings.direction == "maximize" else -1.0
    options: dict[str, Any] = {}
    if sweep.searcher == "carbs":
        options = {"num_random_samples": spec.settings.num_random_samples,
                   "resample_frequency": spec.settings.resample_frequency}
    searcher = create_searcher(sweep.searcher, list(spec.params), seed=sweep.seed,
                               max_suggestion_cost=sweep.max_suggestion_cost, **options)
    for seen in history.observations:
        score = seen.score * sign if not seen.failed else seen.score
        searcher.observe(Observation(params=seen.params, score=score, cost=seen.cost, failed=seen.failed))
    for params in history.pending:
        searcher.add_pending(params)
    suggestion = searcher.suggest()
    predicted = suggestion.predicted_score
    return queue.Proposal(params=dict(suggestion.params), kind=suggestion.kind,
                          predicted_score=None if predicted is None else predicted * sign,
                          predicted_cost=suggestion.predicted_cost)


def parse_event(line: bytes) -> dict[str, Any] | None:
    """One line from a worker's report pipe as a protocol event the agent can trust, or None.

    Workers are user code at one remove (a command trainer, a PufferLib env): a line that is not
    a JSON object with a known `event` is ignored; numbers that are missing, not numbers or not
    finite become None (PostgreSQL's JSON has no NaN: one would fail every heartbeat); a failure
    category other than setup or hyperparameter becomes hyperparameter; a result without a finite
    score becomes a failure saying so. Everything else is kept, made JSON-safe.
    """
    try:
        message = json.loads(line)
    except ValueError:
        return None  # a stray write to the report pipe is no reason to fail the trial
    if not isinstance(message, dict) or message.get("event") not in ("started", "progress", "result", "failed"):
        return None
    event: dict[str, Any] = {str(key): _json_safe(value) for key, value in message.items()}
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
        event.update(score=float(score), score_stderr=_number(event.get("score_stderr")),
                     cost=cost if cost is not None and cost >= 0 else None, truncated=event.get("truncated") is True)
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


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Worker:
    """One trial's subprocess as the agent tracks it."""

    lease: queue.Lease
    slot: int
    proc: subprocess.Popen[bytes]
    report_fd: int
    log_path: Path
    spawned: float
    kill_at: float
    buffer: bytes = b""
    training_started: bool = False
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    curve: list[list[float]] = field(default_factory=list)
    last_progress: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None     # why the agent is stopping it (shutdown, lease lost, ...)
    term_sent_at: float | None = None
    ended_at: float | None = None      # when it reported its result or failure: it only has to exit now
    timed_out: bool = False            # killed at `kill_at` without having reported an end
    timed_out_after: float = 0.0       # seconds from spawn to that kill
    exit_overdue: bool = False         # killed for not exiting within EXIT_GRACE_S of reporting its end
    eof: bool = False
    # Wall-clock times (epoch s) of spawn, training start, first and last progress, and result:
    # where a trial's time went besides training (benchmarks/trial_overhead.py reads them).
    timeline: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {"curve": self.curve, "progress": self.last_progress, "log": str(self.log_path),
                "timeline": self.timeline}

    @property
    def label(self) -> str:
        return f"{self.lease.sweep_name}#{self.lease.number}"


class TrialTracker(Protocol):
    """Told of each trial end the agent records (sweepd.tracking.WandbTracker); never raises, never blocks."""

    def trial_ended(self, trial_id: int) -> None: ...

    def poll(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class Agent:
    """Runs trials on this box's slots until stopped (or until its sweep is done, for `launch`)."""

    engine: Engine
    slots: int
    device: str = "cpu"                     # "cuda": slot i runs with CUDA_VISIBLE_DEVICES=gpus[i]
    gpus: list[str] | None = None           # CUDA device ids by slot (default: `visible_gpus()`)
    box: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=current_user)
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 10.0
    grace_seconds: float = 30.0
    sweep_ids: list[int] | None = None      # lease only from these sweeps
    until_sweep: int | None = None          # exit once this sweep no longer runs
    exit_when_idle: bool = False            # exit when no sweep has work and no worker runs
    artifacts: Path = field(default_factory=lambda: data_dir() / "artifacts")
    on_tick: Callable[[Agent], None] | None = None
    tracker: TrialTracker | None = None     # wandb runs, written off the loop (sweepd/tracking.py)
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))
    worker_command: tuple[str, ...] = WORKER_COMMAND  # reads the trial on stdin (sweepd/worker.py)

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"an agent needs at least one slot, got {self.slots}")
        if not (self.lease_seconds > 0 and math.isfinite(self.lease_seconds)):
            raise ValueError(f"lease expiry must be a positive number of seconds, got {self.lease_seconds}")
        if self.device == "cuda":
            self.gpus = list(self.gpus) if self.gpus is not None else visible_gpus()
            if len(self.gpus) < self.slots:
                raise ValueError(f"{self.slots} cuda slot(s) but {len(self.gpus)} visible GPU(s): {self.gpus}")
        if self.heartbeat_seconds > self.lease_seconds / 3:
            raise ValueError(f"heartbeat interval {self.heartbeat_seconds} s must be <= lease expiry / 3 "
                             f"({self.lease_seconds / 3:.1f} s): one missed beat must not lose a lease")
        self.id = f"{self.box}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers: dict[int, Worker] = {}          # slot -> worker
        self.unrecorded: deque[Callable[[], Any]] = deque()  # writes that failed on a DB outage
        self.stopping = False
        self.stop_deadline = math.inf
        self.selector = selectors.DefaultSelector()
        self._next_beat = 0.0
        self._next_lease = 0.0         # no leasing before this (database outage, worker start failure)
        self._poll_at: dict[int, float] = {}  # slot -> when a slot that found no work asks again
        self._empty: set[int] = set()  # slots whose last ask found no work
        self._backoff = 0.0            # current retry delay while the database is unreachable
        self._reap_after = 0.0         # monotonic time before which this agent does not reap

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a signal (graceful: running trials get `grace_seconds`) or done."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            queue.register_box(self.engine, self.box, self.slots, self.device, self.user, self.id)
            self.log(f"agent {self.id}: {self.slots} {self.device} slot(s) on {self.box}")
            while not self._done():
                self._periodic()
                if not self.stopping:
                    self._lease_free_slots()
                self._read_reports(timeout=0.5)
                self._collect_exited()
                self._enforce_deadlines()
                if self.on_tick:
                    self.on_tick(self)
                if self.tracker:
                    self.tracker.poll()
        finally:
            self._terminate_all("agent exiting")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._flush_unrecorded(final=True)
            # `launch` looks for a live agent on this box: say that this one is gone.
            with contextlib.suppress(DBAPIError):
                queue.heartbeat_box(self.engine, self.box, self.id, "offline")
            if self.tracker:
                self.tracker.close()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping:  # a second Ctrl-C: do not wait for the grace period
            self.stop_deadline = 0.0
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.grace_seconds
        self.log(f"{signal.Signals(signum).name}: no new trials; running ones get {self.grace_seconds:.0f} s")

    def _done(self) -> bool:
        if self.stopping:
            return not self.workers
        if self.workers:
            return False
        if self.until_sweep is not None:
            try:
                status = queue.sweep_statuses(self.engine, [self.until_sweep]).get(self.until_sweep)
            except DBAPIError as exc:
                self._database_down(exc)
                return False  # an outage is no reason to stop: ask again next round
            return status != SWEEP_RUNNING
        # Idle only when every slot asked and found nothing: one reserved or filtered slot is not the box.
        return self.exit_when_idle and len(self._empty) == self.slots

    # --- leasing and spawning -----------------------------------------------------------------

    def _lease_free_slots(self) -> None:
        """Ask for work for every free slot. Slots differ (a reservation holds some for one user),
        so a slot that finds nothing only delays its own next ask, never the other slots'."""
        now = time.monotonic()
        if now < self._next_lease:
            return
        for slot in range(self.slots):
            if slot in self.workers or now < self._poll_at.get(slot, 0.0):
                continue
            holder = queue.Holder(agent=self.id, box=self.box, slot=slot, user=self.user)
            try:
                lease = queue.lease_trial(self.engine, holder, self._propose, self.lease_seconds, self.sweep_ids)
            except DBAPIError as exc:
                self._database_down(exc)
                self._next_lease = now + self._backoff
                return
            except ProposalFailed as failed:
                self._empty.discard(slot)  # the sweep is paused now: this slot asks again next round
                self._pause_broken_sweep(failed)
                continue
            if lease is None:
                # Nothing for this slot now: ask again shortly rather than hammer the write lock.
                self._empty.add(slot)
                self._poll_at[slot] = now + IDLE_POLL_S
                continue
            self._empty.discard(slot)
            if not self._spawn(lease, slot):
                self._next_lease = now + SPAWN_RETRY_S  # this box cannot start workers: stop taking trials
                return

    def _propose(self, sweep: queue.SweepInfo, history: queue.History) -> queue.Proposal:
        """`propose_next`, with whatever the sweep's searcher or spec raises tagged with the sweep."""
        try:
            return propose_next(sweep, history)
        except Exception as exc:
            raise ProposalFailed(sweep, exc) from exc

    def _pause_broken_sweep(self, failed: ProposalFailed) -> None:
        """A sweep whose searcher raises would fail on every agent that reaches it: pause it with the
        reason (`sweepd status` shows it; `sweepd retry` resumes it once fixed)."""
        error = failed.error
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        reason = f"the searcher failed to propose a trial: {type(error).__name__}: {_first_line(error)}{where}"
        try:
            queue.set_sweep_status(self.engine, failed.sweep.id, SWEEP_PAUSED, self.id, reason)
        except DBAPIError as exc:
            self._database_down(exc)
            return
        except queue.NotFound:
            return
        self.log(f"sweep {failed.sweep.name} paused: {reason}")

    def _spawn(self, lease: queue.Lease, slot: int) -> bool:
        """Start the leased trial's worker on `slot`. False when this box could not start it (the
        trial is failed as infra and re-queued); a spec that cannot make the trial fails it as setup."""
        artifact_dir = self.artifacts / lease.sweep_name / f"trial-{lease.number}"
        try:
            spec = SweepSpec.from_json(lease.spec)
            payload = json.dumps({
                "trial_id": lease.trial_id, "sweep": lease.sweep_name, "number": lease.number, "env": spec.env,
                "trainer": spec.trainer, "command": list(spec.command) or None,
                "config": spec.trial_config(lease.params), "params": lease.params, "seed": lease.seed,
                "cost_cap": spec.settings.cost_cap, "eval_episodes": spec.settings.eval_episodes,
                "eval_seeds": spec.settings.eval_seeds, "artifact_dir": str(artifact_dir), "device": self.device,
            }).encode()
        except Exception as exc:  # the stored spec cannot make this trial: neither can any other box
            self._fail_unstarted(lease, f"cannot build the trial from the sweep's spec: "
                                        f"{type(exc).__name__}: {_first_line(exc)}", SETUP)
            return True
        try:
            proc, report_fd, log_path = self._start_worker(lease, slot, spec, artifact_dir)
        except OSError as exc:  # mkdir, the log file, the pipe, fork or exec: this box's trouble
            self._fail_unstarted(lease, f"cannot start a worker on {self.box}: {exc}", INFRA)
            return False
        assert proc.stdin is not None
        # A worker that died at once (BrokenPipeError) is collected and classified like any exit.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(payload)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        now = time.monotonic()
        worker = Worker(lease=lease, slot=slot, proc=proc, report_fd=report_fd, log_path=log_path, spawned=now,
                        kill_at=now + spec.settings.cost_cap * KILL_AFTER_CAP + STARTUP_SLACK_S,
                        timeline={"spawned": time.time()})
        self.workers[slot] = worker
        self.selector.register(report_fd, selectors.EVENT_READ, worker)
        self._write(lambda: queue.start_trial(self.engine, lease), lease)
        self.log(f"trial {worker.label} ({lease.kind}) on slot {slot}: {_short(lease.params)}")
        return True

    def _start_worker(self, lease: queue.Lease, slot: int, spec: SweepSpec,
                      artifact_dir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
        """The worker process and the read end of its report pipe; no fd is left open on OSError."""
        artifact_dir.mkdir(parents=True, exist_ok=True)
        log_path = artifact_dir / "worker.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.device == "cuda":
            assert self.gpus is not None
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["OMP_NUM_THREADS"] = "1"  # 2 torch threads on a busy 2-core box run small ops 30-50x slower
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(read_fd, False)
            env["SWEEPD_REPORT_FD"] = str(write_fd)
            with open(log_path, "ab") as log:
                log.write(f"--- trial {lease.number} attempt {lease.attempt} ({lease.kind}) {lease.params}\n".encode())
                log.flush()
                proc = subprocess.Popen(list(self.worker_command), stdin=subprocess.PIPE, stdout=log,
                                        stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
                                        start_new_session=True, preexec_fn=die_with_parent,
                                        # `import pufferlib` symlinks ./resources into its cwd: keep that in
                                        # the trial's dir, not the user's; a command trainer keeps the user's.
                                        cwd=artifact_dir if spec.trainer == "puffer" else None)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker holds its copy; EOF comes when it exits
        return proc, read_fd, log_path

    def _fail_unstarted(self, lease: queue.Lease, reason: str, category: str) -> None:
        """Record a leased trial that never got a worker (no fd, no process is left behind)."""
        self.log(f"trial {lease.sweep_name}#{lease.number} failed ({category}): {reason}")
        self._write(lambda: queue.fail_trial(self.engine, lease, reason, category, cost=0.0), lease)
        if self.tracker is not None:
            self.tracker.trial_ended(lease.trial_id)

    # --- reports from workers -----------------------------------------------------------------

    def _read_reports(self, timeout: float) -> None:
        if not self.workers:
            time.sleep(timeout)
            return
        if any(w.eof for w in self.workers.values()):
            timeout = 0.01  # a worker closed its pipe and is exiting: collect it promptly
        for key, _mask in self.selector.select(timeout):
            worker: Worker = key.data
            try:
                chunk = os.read(worker.report_fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                worker.eof = True
                self.selector.unregister(worker.report_fd)
                continue
            worker.buffer += chunk
            *lines, worker.buffer = worker.buffer.split(b"\n")
            for line in lines:
                self._handle_report(worker, line)

    def _handle_report(self, worker: Worker, line: bytes) -> None:
        event = parse_event(line)
        if event is None:
            return
        kind, now = event["event"], time.time()
        if kind == "progress":
            worker.timeline.setdefault("first_progress", now)
            worker.timeline["last_progress"] = now
            worker.last_progress = event
            if event["score"] is not None:  # a point without a score is no point of the learning curve
                step = event["step"] if event["step"] is not None else (worker.curve[-1][0] if worker.curve else 0.0)
                elapsed = event["elapsed"] if event["elapsed"] is not None else time.monotonic() - worker.spawned
                worker.curve.append([step, event["score"], elapsed])
                if len(worker.curve) > CURVE_POINTS:
                    worker.curve = worker.curve[::2]
            return
        worker.timeline[kind] = now
        if kind == "started":
            worker.training_started = True
            return
        if worker.ended_at is None:
            worker.ended_at = time.monotonic()
        if kind == "result":
            worker.result = event
        else:
            worker.failure = event

    # --- exits --------------------------------------------------------------------------------

    def _collect_exited(self) -> None:
        for slot, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                continue
            if not worker.eof:  # drain what the worker wrote before exiting
                self._drain(worker)
            del self.workers[slot]
            self._signal(worker, signal.SIGKILL)  # whatever the trial left behind in its process group
            self._record_exit(worker, code)
            if self.tracker is not None and worker.stop_reason != "lease lost":
                self.tracker.trial_ended(worker.lease.trial_id)

    def _drain(self, worker: Worker) -> None:
        while True:
            try:
                chunk = os.read(worker.report_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            worker.buffer += chunk
        for line in worker.buffer.split(b"\n"):
            if line.strip():
                self._handle_report(worker, line)
        worker.buffer = b""
        self.selector.unregister(worker.report_fd)
        worker.eof = True

    def _record_exit(self, worker: Worker, code: int) -> None:
        os.close(worker.report_fd)
        lease, label = worker.lease, worker.label
        metrics = worker.metrics()
        elapsed = time.monotonic() - worker.spawned
        if worker.stop_reason == "lease lost":
            self.log(f"trial {label}: lease lost, its result is not recorded")
            return
        # A reported result stands when the worker exited cleanly, or when the agent ended it
        # afterwards (it hung on its way out, or the agent or the sweep stopped meanwhile).
        ended_by_agent = worker.exit_overdue or worker.term_sent_at is not None
        if worker.result is not None and (code == 0 or ended_by_agent):
            result = worker.result
            metrics.update({k: v for k, v in result.items() if k not in ("event", "score", "cost")})
            score, cost = result["score"], result["cost"] if result["cost"] is not None else elapsed
            self._write(lambda: queue.finish_trial(self.engine, lease, score, cost,
                                                   score_stderr=result["score_stderr"],
                                                   truncated=result["truncated"], metrics=metrics), lease)
            self.log(f"trial {label}: score {score:.4g} in {cost:.0f} s"
                     + (" (truncated at the cost cap)" if result["truncated"] else "")
                     + (f" (killed {EXIT_GRACE_S:g} s after its result: it did not exit)" if worker.exit_overdue
                        else ""))
            return
        tail = _log_tail(worker.log_path)
        metrics["log_tail"] = tail
        if worker.timed_out:
            # A worker past its cap is the config's failure (it hung or ignored the cap), not infra.
            reason = f"timeout: still running {worker.timed_out_after:.0f} s after start, past the cost cap"
            category = HYPERPARAMETER
        elif worker.stop_reason is not None:
            reason, category = worker.stop_reason, INFRA
        elif worker.failure is not None:
            reason, category = worker.failure["reason"], worker.failure["category"]
        elif code < 0:
            reason, category = f"worker killed by {_signal_name(-code)}", HYPERPARAMETER
        elif worker.training_started:
            reason, category = f"worker exited with code {code} after training started", HYPERPARAMETER
        else:
            reason, category = f"worker exited with code {code} before training started", SETUP
        last = next((line for line in reversed(tail) if line.strip() and not line.startswith("---")), "")
        if last and category != INFRA:
            reason = f"{reason}: {last.strip()[:300]}"
        self._write(lambda: queue.fail_trial(self.engine, lease, reason, category, cost=elapsed, metrics=metrics),
                    lease)
        self.log(f"trial {label} failed ({category}): {reason}")

    # --- heartbeats, deadlines, shutdown ------------------------------------------------------

    def _periodic(self) -> None:
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + self.heartbeat_seconds
        try:
            self._flush_unrecorded()
            # Our own leases first: back from an outage, we re-attach (the token is still ours
            # unless someone reaped it) before this agent reaps anybody.
            for worker in list(self.workers.values()):
                if worker.stop_reason is None and not queue.heartbeat_trial(
                        self.engine, worker.lease, self.lease_seconds, worker.metrics()):
                    self._stop_worker(worker, "lease lost")
            queue.heartbeat_box(self.engine, self.box, self.id, "draining" if self.stopping else "online")
            statuses = queue.sweep_statuses(self.engine, {w.lease.sweep_id for w in self.workers.values()})
            for worker in list(self.workers.values()):
                if worker.stop_reason is None and statuses.get(worker.lease.sweep_id) != SWEEP_RUNNING:
                    self._stop_worker(worker, f"sweep {statuses.get(worker.lease.sweep_id)}")
            self._database_up()
            if now >= self._reap_after:
                reaped = queue.reap_expired(self.engine, self.id)
                if reaped:
                    self.log(f"reaped {len(reaped)} expired lease(s): trials {reaped}")
        except DBAPIError as exc:
            # Workers keep training through a database outage; their leases stay ours until reaped.
            self._database_down(exc)
            self._next_beat = now + self._backoff

    def _database_down(self, exc: DBAPIError) -> None:
        """Back off (doubling, at most one heartbeat interval, so a lease is never left to lapse
        for want of trying) and hold off reaping until the database has been back a while."""
        if not self._backoff:
            self.log(f"database unavailable ({_first_line(exc)}); workers keep running, retrying")
        self._backoff = min(max(2 * self._backoff, OUTAGE_RETRY_S), self.heartbeat_seconds)
        self._reap_after = math.inf

    def _database_up(self) -> None:
        if not self._backoff:
            return
        self._backoff = 0.0
        # Every agent cut off by the same outage retries at least once per heartbeat interval: a
        # full lease period gives each one its chance to re-attach before its leases are reaped.
        self._reap_after = time.monotonic() + self.lease_seconds
        self.log(f"database back; re-attached to {len(self.workers)} running trial(s)")

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.ended_at is not None:
                # It reported its result or failure, which stands; it only has to exit, and soon.
                if not worker.exit_overdue and now > worker.ended_at + EXIT_GRACE_S:
                    worker.exit_overdue = True
                    self._signal(worker, signal.SIGKILL)
            elif not worker.timed_out and worker.stop_reason is None and now > worker.kill_at:
                worker.timed_out, worker.timed_out_after = True, now - worker.spawned
                self._signal(worker, signal.SIGKILL)
            if self.stopping and now > self.stop_deadline and worker.stop_reason is None:
                self._stop_worker(worker, "agent shutdown")
            if worker.term_sent_at is not None and now > worker.term_sent_at + TERM_GRACE_S:
                self._signal(worker, signal.SIGKILL)

    def _stop_worker(self, worker: Worker, reason: str) -> None:
        worker.stop_reason = reason
        worker.term_sent_at = time.monotonic()
        self._signal(worker, signal.SIGTERM)

    def _signal(self, worker: Worker, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, sig)

    def _terminate_all(self, reason: str) -> None:
        for worker in self.workers.values():
            if worker.stop_reason is None:
                self._stop_worker(worker, reason)
        deadline = time.monotonic() + TERM_GRACE_S
        while self.workers and time.monotonic() < deadline:
            self._read_reports(timeout=0.2)
            self._collect_exited()
        for worker in self.workers.values():
            self._signal(worker, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_S
        for worker in self.workers.values():
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # stuck in the kernel (a dead NFS mount, a GPU driver)
                self.log(f"trial {worker.label}: worker {worker.proc.pid} survived SIGKILL for {KILL_WAIT_S:g} s; "
                         f"leaving it, its lease expires and another agent re-queues the trial")
        self._collect_exited()

    # --- database writes that survive an outage -----------------------------------------------

    def _write(self, write: Callable[[], Any], lease: queue.Lease) -> None:
        try:
            write()
        except DBAPIError as exc:
            self.log(f"database unavailable recording trial {lease.sweep_name}#{lease.number} "
                     f"({_first_line(exc)}); will retry")
            self.unrecorded.append(write)
            self._database_down(exc)

    def _flush_unrecorded(self, final: bool = False) -> None:
        attempts = 5 if final else 1
        for attempt in range(attempts):
            while self.unrecorded:
                try:
                    self.unrecorded[0]()
                except DBAPIError:
                    break
                self.unrecorded.popleft()
            if not self.unrecorded:
                return
            if final:
                time.sleep(2.0 * (attempt + 1))
        if final and self.unrecorded:
            self.log(f"{len(self.unrecorded)} result(s) could not be recorded: the database stayed unreachable")


def _log_tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            return handle.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                     for k, v in params.items())
