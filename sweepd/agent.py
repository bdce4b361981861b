"""The daemon on a box: lease work for free slots, run one worker subprocess per trial, heartbeat
the leases, record what the workers report. It is the only process on its box that writes to
the database; workers talk to it over a pipe (sweepd/protocol.py).

The loop, top to bottom: heartbeat our leases and the box, reap expired leases -> lease work for
free slots -> read worker reports -> collect exited workers -> enforce deadlines and shutdown.
A database outage stops none of it but the writes: workers keep training, writes are retried
with backoff, and the agent re-attaches to its leases by token when the database is back.

Over 400 lines on purpose: this is the loop and only the loop (what a trial is to the store,
what a worker process is, what runs next and what this host offers live in store/, worker_process.py,
advisor.py and host.py), kept in one file so that it reads top to bottom like CleanRL's.
"""

from __future__ import annotations

import contextlib
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from sweepd.advisor import ProposalFailed, StopAdvisor, propose
from sweepd.errors import first_line
from sweepd.host import current_user, visible_gpus
from sweepd.protocol import STOP_SIGNAL, TrialPayload
from sweepd.settings import SweepSettings
from sweepd.spec import SweepSpec
from sweepd.store.boxes import heartbeat_box, register_box
from sweepd.store.db import data_dir
from sweepd.store.history import history_version, sweep_history
from sweepd.store.leasing import Holder, Lease, lease_trial
from sweepd.store.models import INFRA, SETUP, SWEEP_PAUSED, SWEEP_RUNNING, InvalidRequest
from sweepd.store.sweeps import NotFound, find_sweep, set_sweep_status, sweep_statuses
from sweepd.store.transitions import fail_trial, finish_trial, heartbeat_trial, reap_expired, start_trial
from sweepd.worker.clock import process_start_time
from sweepd.worker_process import WORKER_COMMAND, Worker, log_tail, start_process

TERM_GRACE_S = 10.0          # SIGTERM -> SIGKILL
EXIT_GRACE_S = 10.0          # a worker that reported its result or failure has this long to exit
KILL_WAIT_S = 5.0            # after SIGKILL, how long an exiting agent waits for its workers to go
IDLE_POLL_S = 2.0            # a slot that found no work asks again after this long
SPAWN_RETRY_S = 10.0         # after this box failed to start a worker, lease nothing for this long
OUTAGE_RETRY_S = 0.25        # first retry after a database error; doubles up to the heartbeat interval
LEASE_WAIT_S = 0.5           # the loop waits this long for a lease; a slower searcher answers on a later turn
DEFERRED = object()          # `_write`'s answer when the database was down: recorded later, if at all


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
    worker_command: tuple[str, ...] = WORKER_COMMAND  # reads the trial on stdin (sweepd/worker/)

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise InvalidRequest(f"an agent needs at least one slot, got {self.slots}")
        if not (self.lease_seconds > 0 and math.isfinite(self.lease_seconds)):
            raise InvalidRequest(f"lease expiry must be a positive number of seconds, got {self.lease_seconds}")
        if self.device == "cuda":
            self.gpus = list(self.gpus) if self.gpus is not None else visible_gpus()
            if len(self.gpus) < self.slots:
                raise InvalidRequest(f"{self.slots} cuda slot(s) but {len(self.gpus)} visible GPU(s): {self.gpus}")
        if self.heartbeat_seconds > self.lease_seconds / 3:
            raise InvalidRequest(f"heartbeat interval {self.heartbeat_seconds} s must be <= lease expiry / 3 "
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
        self.advisor = StopAdvisor()   # stop decisions: a searcher per sweep, kept until a trial finishes
        self._undecidable: set[int] = set()  # trials whose stop decision raised: they run to their end
        # Leases are asked for on a thread of their own: a searcher may think for a minute (Protein
        # does) and the loop must keep heartbeating its running trials meanwhile. One ask at a time.
        self._lease_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweepd-lease")
        self._asking: tuple[int, Future[Lease | None]] | None = None  # the slot asked for and its answer

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a signal (graceful: running trials get `grace_seconds`) or done."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            register_box(self.engine, self.box, self.slots, self.device, self.user, self.id,
                         gpus=self.gpus if self.device == "cuda" else None, serves=self.sweep_ids)
            self.log(f"agent {self.id}: {self.slots} {self.device} slot(s) on {self.box}")
            while not self._done():
                self._periodic()
                self._lease_free_slots()
                self._read_reports(timeout=0.5)
                self._collect_exited()
                self._enforce_deadlines()
                if self.on_tick:
                    self.on_tick(self)
                if self.tracker:
                    self.tracker.poll()
        finally:
            self._hand_back_asked_lease()
            self._terminate_all("agent exiting")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._flush_unrecorded(final=True)
            # `launch` looks for a live agent on this box: say that this one is gone.
            with contextlib.suppress(DBAPIError):
                heartbeat_box(self.engine, self.box, self.id, "offline", serves=self.sweep_ids)
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
        if self._asking is not None:
            return False  # a lease may be on its way: it is run, or handed back when stopping
        if self.stopping:
            return not self.workers
        if self.workers:
            return False
        if self.until_sweep is not None:
            try:
                status = sweep_statuses(self.engine, [self.until_sweep]).get(self.until_sweep)
            except DBAPIError as exc:
                self._database_down(exc)
                return False  # an outage is no reason to stop: ask again next round
            return status != SWEEP_RUNNING
        # Idle only when every slot asked and found nothing: one reserved or filtered slot is not the box.
        return self.exit_when_idle and len(self._empty) == self.slots

    # --- leasing and spawning -----------------------------------------------------------------

    def _lease_free_slots(self) -> None:
        """Ask for work for every free slot. Slots differ (a reservation holds some for one user),
        so a slot that finds nothing only delays its own next ask, never the other slots'. Each ask
        runs on the lease thread; one the searcher answers within LEASE_WAIT_S is taken at once,
        a slower one on a later turn of the loop, which heartbeats and reads reports meanwhile."""
        while True:
            if self._asking is None and (self.stopping or not self._ask_for_a_free_slot()):
                return
            assert self._asking is not None
            slot, answer = self._asking
            try:
                lease = answer.result(timeout=LEASE_WAIT_S)
            except TimeoutError:
                return
            except DBAPIError as exc:
                self._asking = None
                self._database_down(exc)
                self._next_lease = time.monotonic() + self._backoff
                return
            except ProposalFailed as failed:
                self._asking = None
                self._empty.discard(slot)  # the sweep is paused now: this slot asks again next round
                self._pause_broken_sweep(failed)
                continue
            self._asking = None
            if self.stopping:
                self._hand_back(lease)
                return
            if not self._take(lease, slot):
                return

    def _ask_for_a_free_slot(self) -> bool:
        """Start a lease ask for the first free slot that is due one; False when none is."""
        now = time.monotonic()
        if now < self._next_lease:
            return False
        for slot in range(self.slots):
            if slot in self.workers or now < self._poll_at.get(slot, 0.0):
                continue
            holder = Holder(agent=self.id, box=self.box, slot=slot, user=self.user, device=self.device)
            self._asking = (slot, self._lease_pool.submit(lease_trial, self.engine, holder, propose,
                                                          self.lease_seconds, self.sweep_ids))
            return True
        return False

    def _take(self, lease: Lease | None, slot: int) -> bool:
        """Run a lease on its slot; False when this box should ask for no more work for now."""
        if lease is None:
            # Nothing for this slot now: ask again shortly rather than hammer the write lock.
            self._empty.add(slot)
            self._poll_at[slot] = time.monotonic() + IDLE_POLL_S
            return True
        self._empty.discard(slot)
        if not self._spawn(lease, slot):
            self._next_lease = time.monotonic() + SPAWN_RETRY_S  # this box cannot start workers
            return False
        return True

    def _hand_back_asked_lease(self) -> None:
        """On exit: wait for an ask still in flight and re-queue what it leased (no worker will run it)."""
        if self._asking is not None:
            _slot, answer = self._asking
            self._asking = None
            with contextlib.suppress(Exception):
                self._hand_back(answer.result())
        self._lease_pool.shutdown(wait=True)

    def _hand_back(self, lease: Lease | None) -> None:
        if lease is not None:
            self._write(lambda: fail_trial(self.engine, lease, "agent shutdown before the trial started", INFRA,
                                           cost=0.0), lease)

    def _pause_broken_sweep(self, failed: ProposalFailed) -> None:
        """A sweep whose searcher raises would fail on every agent that reaches it: pause it with the
        reason (`sweepd status` shows it; `sweepd retry` resumes it once fixed)."""
        error = failed.error
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        reason = f"the searcher failed to propose a trial: {type(error).__name__}: {first_line(error)}{where}"
        try:
            set_sweep_status(self.engine, failed.sweep.id, SWEEP_PAUSED, self.id, reason)
        except DBAPIError as exc:
            self._database_down(exc)
            return
        except NotFound:
            return
        self.log(f"sweep {failed.sweep.name} paused: {reason}")

    def _spawn(self, lease: Lease, slot: int) -> bool:
        """Start the leased trial's worker on `slot`. False when this box could not start it (the
        trial is failed as infra and re-queued); a spec that cannot make the trial fails it as setup."""
        artifact_dir = self.artifacts / lease.sweep_name / f"trial-{lease.number}"
        try:
            spec = SweepSpec.from_json(lease.spec)
            payload = TrialPayload(
                trial_id=lease.trial_id, sweep=lease.sweep_name, number=lease.number, env=spec.env,
                trainer=spec.trainer, command=tuple(spec.command), config=spec.trial_config(lease.params),
                params=lease.params, seed=lease.seed, cost_cap=spec.settings.cost_cap,
                eval_episodes=spec.settings.eval_episodes, eval_seeds=spec.settings.eval_seeds,
                artifact_dir=artifact_dir, device=self.device, metric=spec.settings.metric)
            data = payload.encode()
        except Exception as exc:  # the stored spec cannot make this trial: neither can any other box
            self._fail_unstarted(lease, f"cannot build the trial from the sweep's spec: "
                                        f"{type(exc).__name__}: {first_line(exc)}", SETUP)
            return True
        try:
            gpu = self.gpus[slot] if self.device == "cuda" and self.gpus is not None else None
            proc, report_fd, log_path = start_process(self.worker_command, payload, lease, gpu)
        except OSError as exc:  # mkdir, the log file, the pipe, fork or exec: this box's trouble
            self._fail_unstarted(lease, f"cannot start a worker on {self.box}: {exc}", INFRA)
            return False
        assert proc.stdin is not None
        # A worker that died at once (BrokenPipeError) is collected and classified like any exit.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(data)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        now = time.monotonic()
        # Killed when its own cost clock (from its process start) reaches the most it may be charged.
        kill_at = now + process_start_time(proc.pid) + spec.settings.max_charge - time.time()
        worker = Worker(lease=lease, slot=slot, proc=proc, report_fd=report_fd, log_path=log_path, spawned=now,
                        kill_at=kill_at,
                        timeline={"spawned": time.time()})
        self.workers[slot] = worker
        self.selector.register(report_fd, selectors.EVENT_READ, worker)
        self._write(lambda: start_trial(self.engine, lease), lease)
        self.log(f"trial {worker.label} ({lease.kind}) on slot {slot}: {_short(lease.params)}")
        return True

    def _fail_unstarted(self, lease: Lease, reason: str, category: str) -> None:
        """Record a leased trial that never got a worker (no fd, no process is left behind)."""
        self.log(f"trial {lease.sweep_name}#{lease.number} failed ({category}): {reason}")
        self._write(lambda: fail_trial(self.engine, lease, reason, category, cost=0.0), lease)
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
                if worker.take_report(line) == "progress":
                    self._consider_stopping(worker)

    def _consider_stopping(self, worker: Worker) -> None:
        """Put the trial's curve so far to its sweep's searcher (sweepd/advisor.py); on its word,
        ask the worker to stop early: STOP_SIGNAL to the worker process alone, never its group (its
        children have no handler for it). The worker stops training, evaluates, reports a result."""
        lease = worker.lease
        if worker.early_stop is not None or worker.ended_at is not None or worker.stop_reason is not None \
                or lease.trial_id in self._undecidable:
            return
        try:
            # The whole history only when a trial finished since the last decision on this sweep.
            history = self.advisor.kept_history(lease.sweep_id, history_version(self.engine, lease.sweep_id)) \
                or sweep_history(self.engine, lease.sweep_id)
            decision = self.advisor.should_stop(find_sweep(self.engine, lease.sweep_id), history,
                                                lease.params, lease.kind, worker.curve)
        except DBAPIError as exc:
            self._database_down(exc)
            return
        except Exception as exc:  # the sweep's searcher or spec: the trial runs on, the agent serves on
            self._undecidable.add(lease.trial_id)
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
            self.log(f"trial {worker.label}: no stop decision, it runs to its end: "
                     f"{type(exc).__name__}: {first_line(exc)}{where}")
            return
        if decision.stop:
            worker.early_stop = decision.reason
            # Said now: a worker already past its last epoch finishes as planned (not marked stopped).
            self.log(f"trial {worker.label}: asked to stop early ({decision.reason})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.proc.pid, STOP_SIGNAL)

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
                worker.take_report(line)
        worker.buffer = b""
        self.selector.unregister(worker.report_fd)
        worker.eof = True

    def _record_exit(self, worker: Worker, code: int) -> None:
        os.close(worker.report_fd)
        lease, label = worker.lease, worker.label
        metrics = worker.metrics()
        # No attempt is charged more than its most (what the budget counts for it in flight): a
        # reported cost past it is clamped, and so is this agent's own count (from before the spawn).
        most = SweepSettings.from_json(lease.spec["settings"]).max_charge
        elapsed = min(time.monotonic() - worker.spawned, most)
        if worker.stop_reason == "lease lost":
            self.log(f"trial {label}: lease lost, its result is not recorded")
            return
        # A reported result stands when the worker exited cleanly, or when the agent ended it
        # afterwards (it hung on its way out, or the agent or the sweep stopped meanwhile).
        ended_by_agent = worker.exit_overdue or worker.term_sent_at is not None
        if worker.result is not None and (code == 0 or ended_by_agent):
            result = worker.result
            metrics.update({k: v for k, v in result.items() if k not in ("event", "score", "cost")})
            score, cost = result["score"], min(result["cost"] if result["cost"] is not None else elapsed, most)
            # Stopped early: the worker says it stopped on this agent's word (not at the cap or its end).
            stop_reason = (worker.early_stop or "stopped early") if result["stopped"] else None
            recorded = self._write(lambda: finish_trial(self.engine, lease, score, cost,
                                                        score_stderr=result["score_stderr"],
                                                        truncated=result["truncated"], metrics=metrics,
                                                        steps=result["steps"], stop_reason=stop_reason,
                                                        actor=self.id), lease)
            if recorded is False:  # the token was rejected: another agent took the trial meanwhile
                self.log(f"trial {label}: lease lost, result not recorded (score {score:.4g})")
                return
            if stop_reason is not None:
                self.log(f"trial {label} stopped early at {cost:.0f} s ({stop_reason}); score {score:.4g}")
                return
            self.log(f"trial {label}: score {score:.4g} in {cost:.0f} s"
                     + (" (truncated at the cost cap)" if result["truncated"] else "")
                     + (f" (killed {EXIT_GRACE_S:g} s after its result: it did not exit)" if worker.exit_overdue
                        else ""))
            return
        tail = log_tail(worker.log_path)
        metrics["log_tail"] = tail
        reason, category = worker.exit_failure(code, tail)
        status = self._write(lambda: fail_trial(self.engine, lease, reason, category, cost=elapsed,
                                                metrics=metrics), lease)
        if status is None:
            self.log(f"trial {label}: lease lost, failure not recorded ({category}: {reason})")
            return
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
                if worker.stop_reason is None and not heartbeat_trial(
                        self.engine, worker.lease, self.lease_seconds, worker.metrics()):
                    self._stop_worker(worker, "lease lost")
            heartbeat_box(self.engine, self.box, self.id, "draining" if self.stopping else "online",
                          serves=self.sweep_ids)
            statuses = sweep_statuses(self.engine, {w.lease.sweep_id for w in self.workers.values()})
            for worker in list(self.workers.values()):
                # A paused sweep's running trials finish (`sweepd pause --requeue` takes their leases instead).
                if worker.stop_reason is None and statuses.get(worker.lease.sweep_id) not in (SWEEP_RUNNING,
                                                                                             SWEEP_PAUSED):
                    self._stop_worker(worker, f"sweep {statuses.get(worker.lease.sweep_id)}")
            self._database_up()
            if now >= self._reap_after:
                reaped = reap_expired(self.engine, self.id)
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
            self.log(f"database unavailable ({first_line(exc)}); workers keep running, retrying")
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
                worker.timed_out, worker.timed_out_after = True, time.time() - process_start_time(worker.proc.pid)
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

    def _write(self, write: Callable[[], Any], lease: Lease) -> Any:
        """Run `write` and return what it returns; on a database outage queue it for a retry and
        return DEFERRED (whether the token still holds is known only once it runs)."""
        try:
            return write()
        except DBAPIError as exc:
            self.log(f"database unavailable recording trial {lease.sweep_name}#{lease.number} "
                     f"({first_line(exc)}); will retry")
            self.unrecorded.append(write)
            self._database_down(exc)
            return DEFERRED

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


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                     for k, v in params.items())
