"""Chaos soak: a sweep of short command-trainer trials on PostgreSQL, served by real `sweepd agent`
processes while faults are injected at random, then checked from the database.

Usage: python benchmarks/chaos_soak.py [--trials 150] [--agents 3] [--seed 0] [--fault-every 10:30]
       [--pg postgresql://127.0.0.1:5432/test | --own-cluster] [--steps 40] [--time-limit 900]

Every `--fault-every` seconds (uniform between the two bounds) one fault, chosen at random:
- kill-worker: SIGKILL one agent's worker process (its trial fails, as after an OOM kill);
- kill-agent: SIGKILL an agent with its workers and start another on a new box name (its leases
  expire and are re-run by the others);
- freeze-agent: SIGSTOP an agent with its workers and trainers for longer than its lease, then
  SIGCONT (its leases are reaped meanwhile; its late writes must be refused);
- restart-db: restart the PostgreSQL server (agents ride it out and re-attach to their leases).

Then, from the database alone (plain SQL, so the check does not depend on the store's code):
every trial number once, none left queued/leased/running, every re-run matched by a requeue event
(attempts = 1 + requeues), every run of the trainer backed by an attempt, succeeded trials with a
finite score and cost and the result of one of their own runs, the sweep finished. Prints the
faults injected and each invariant; exits 1 if one fails, 2 if the sweep did not end within
`--time-limit`.

The sweep runs in a scratch database dropped afterwards. `--own-cluster` runs it on a throwaway
PostgreSQL cluster (initdb in a temporary folder, needs root and the postgres binaries): restarting
it then disturbs nobody else's tests on a shared server. Without it the server behind `--pg` is
restarted with pg_ctlcluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from toy import descendants, write_toy_sweep  # the test suite's tiny command trainer and /proc walk

PG_BIN = Path("/usr/lib/postgresql")
LEASE_SECONDS = 3.0
FAULTS = ("kill-worker", "kill-agent", "freeze-agent", "restart-db")


# --- the PostgreSQL server under test -----------------------------------------------------------

class Server:
    """The PostgreSQL server the sweep runs on, and how to restart it."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def restart(self) -> None:
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        try:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                           check=True, capture_output=True, timeout=120)
        finally:
            state = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
            if "online" not in state:  # never leave the shared server stopped
                subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                               capture_output=True, timeout=120)

    def close(self) -> None:
        pass


class OwnCluster(Server):
    """A throwaway cluster in a temporary folder, on a free port, run as the postgres user."""

    def __init__(self) -> None:
        versions = sorted(PG_BIN.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
        self.bin = versions[-1] / "bin"
        self.folder = Path(tempfile.mkdtemp(prefix="sweepd-chaos-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._ctl("start")
        super().__init__(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-m", "fast",
                 "-w", action)

    def restart(self) -> None:
        self._ctl("restart")

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("stop")
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the processes under test -------------------------------------------------------------------

def is_worker(pid: int) -> bool:
    try:
        return b"sweepd.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class Soak:
    """The sweep, its agents, and the faults injected so far."""

    url: str                # what the agents connect to
    check_url: str          # the same database, as psycopg's own URL for the checks
    folder: Path
    sweep: str
    step_seconds: float
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def env(self) -> dict[str, str]:
        return dict(os.environ, SWEEPD_DB=self.url, SWEEPD_HOME=str(self.folder / "home"), WANDB_MODE="disabled",
                    SWEEPD_USER="chaos", TOY_STEP_SECONDS=str(self.step_seconds), OMP_NUM_THREADS="1")

    def sweepd(self, *args: str) -> list[str]:
        """The `sweepd` console script next to this Python (whatever module the CLI lives in)."""
        return [str(Path(sys.executable).parent / "sweepd"), *args]

    def start_agent(self) -> subprocess.Popen[bytes]:
        box = f"chaos-{len(self.agents) + 1}"
        log = open(self.folder / f"agent-{box}.log", "wb")  # noqa: SIM115 - the agent writes it until it exits
        proc = subprocess.Popen(
            self.sweepd("agent", "--box", box, "--sweep", self.sweep, "--until-done",
                        "--lease-seconds", f"{LEASE_SECONDS:g}", "--grace-seconds", "2", "--no-wandb"),
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        log.close()
        self.agents.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.agents if p.poll() is None]

    def note(self, began: float, what: str) -> None:
        line = f"{began - self.started:6.1f}s  {what}"
        self.faults.append(line)
        print(f"  fault {line}", flush=True)

    def inject(self, kind: str, rng: random.Random, server: Server) -> bool:
        """Inject one fault of `kind`; False when there was nothing to inject it into."""
        agents, began = self.alive(), time.monotonic()
        if kind == "restart-db":
            server.restart()
            self.note(began, f"restart-db: PostgreSQL restarted ({time.monotonic() - began:.1f} s)")
            return True
        if not agents:
            return False
        agent = rng.choice(agents)
        if kind == "kill-worker":
            workers = [pid for pid in descendants(agent.pid) if is_worker(pid)]
            if not workers:
                return False
            worker = rng.choice(workers)
            send(worker, signal.SIGKILL)
            self.note(began, f"kill-worker: SIGKILL worker {worker} of agent {agent.pid}")
        elif kind == "kill-agent":
            tree = descendants(agent.pid)
            agent.kill()
            agent.wait(10)
            for pid in tree:  # a dead box's processes die with it
                send(pid, signal.SIGKILL)
            replacement = self.start_agent()
            self.note(began, f"kill-agent: SIGKILL agent {agent.pid} (+{len(tree)} children), "
                             f"started {replacement.pid}")
        elif kind == "freeze-agent":
            tree = [agent.pid, *descendants(agent.pid)]
            for pid in tree:
                send(pid, signal.SIGSTOP)
            frozen = LEASE_SECONDS * 2 + 1
            time.sleep(frozen)
            for pid in tree:
                send(pid, signal.SIGCONT)
            self.note(began, f"freeze-agent: SIGSTOP agent {agent.pid} (+{len(tree) - 1}) for {frozen:g} s "
                      f"(lease {LEASE_SECONDS:g} s), SIGCONT")
        return True

    def close(self) -> None:
        for proc in self.agents:
            tree = [proc.pid, *descendants(proc.pid)]
            for pid in tree:
                send(pid, signal.SIGCONT)
            for pid in tree:
                send(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


# --- the checks ---------------------------------------------------------------------------------

def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql`, retried while the server restarts."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                return conn.execute(sql, args).fetchall()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def runs_of(soak: Soak, number: int) -> list[int]:
    """Pids of each run of the toy trainer for trial `number` (it appends its pid when it starts)."""
    path = soak.folder / "home" / "artifacts" / soak.sweep / f"trial-{number}" / "runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def check(soak: Soak, trials: int) -> list[tuple[str, bool, str]]:
    """Each invariant: (what, held, detail)."""
    (sweep_id, status), = query(soak.check_url, "SELECT id, status FROM sweeps WHERE name = %s", soak.sweep)
    rows = query(soak.check_url, "SELECT id, number, status, attempts, score, cost, metrics, lock_expires_at, "
                           "failure_category FROM trials WHERE sweep_id = %s ORDER BY number", sweep_id)
    requeues = dict(query(soak.check_url, "SELECT trial_id, count(*) FROM events WHERE kind = 'trial_requeued' "
                                    "AND sweep_id = %s GROUP BY trial_id", sweep_id))
    numbers = [r[1] for r in rows]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    open_rows = [r[1] for r in rows if r[2] in ("queued", "leased", "running") or r[7] is not None]
    unmatched = [(r[1], r[3], requeues.get(r[0], 0)) for r in rows if r[3] != 1 + requeues.get(r[0], 0)]
    runs = {r[1]: runs_of(soak, r[1]) for r in rows}
    unbacked = [(r[1], len(runs[r[1]]), r[3]) for r in rows if len(runs[r[1]]) > r[3]]
    bad_results = []
    for _, number, state, _, score, cost, metrics, _, _ in rows:
        if state != "succeeded":
            continue
        metrics = metrics if isinstance(metrics, dict) else json.loads(metrics or "{}")
        own = metrics.get("checkpoint") in {f"run-{pid}" for pid in runs[number]}
        if score is None or cost is None or not cost > 0 or not own:
            bad_results.append((number, score, cost, metrics.get("checkpoint")))
    reruns = sum(r[3] - 1 for r in rows)
    return [
        ("every trial number once", numbers == list(range(1, trials + 1)),
         f"{len(numbers)} trials, numbers 1..{max(numbers, default=0)}, {len(set(numbers))} distinct"),
        ("none left queued/leased/running", not open_rows,
         f"statuses {statuses}" + (f"; open: {open_rows[:10]}" if open_rows else "")),
        ("every re-run matched by a requeue event", not unmatched,
         f"{reruns} re-runs, {sum(requeues.values())} requeue events"
         + (f"; (trial, attempts, requeues) off: {unmatched[:10]}" if unmatched else "")),
        ("every trainer run backed by an attempt", not unbacked,
         f"{sum(len(v) for v in runs.values())} runs for {sum(r[3] for r in rows)} attempts"
         + (f"; (trial, runs, attempts) off: {unbacked[:10]}" if unbacked else "")),
        ("succeeded trials with score, cost and their own run's result", not bad_results,
         f"{statuses.get('succeeded', 0)} succeeded" + (f"; bad: {bad_results[:10]}" if bad_results else "")),
        ("the sweep finished", status == "finished", f"status {status}"),
    ]


# --- the soak -----------------------------------------------------------------------------------

def soak(args: argparse.Namespace, server: Server, folder: Path) -> int:
    rng = random.Random(args.seed)
    name = f"sweepd_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = server.admin_url.rsplit("/", 1)[0].split("://", 1)[1]
    run = Soak(url=f"postgresql+psycopg://{base}/{name}", check_url=f"postgresql://{base}/{name}", folder=folder,
               sweep="chaos", step_seconds=args.step_seconds)
    try:
        sweep_file = write_toy_sweep(folder, args.trials, args.steps, name="chaos")
        done = subprocess.run(run.sweepd("launch", str(sweep_file), "--detach", "--name", run.sweep),
                              capture_output=True, text=True, env=run.env(), timeout=120)
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        print(f"sweep {run.sweep}: {args.trials} trials x {args.steps} steps of {args.step_seconds:g} s, "
              f"{args.agents} agents, leases {LEASE_SECONDS:g} s, faults every {args.fault_every} s, "
              f"seed {args.seed}, database {name}", flush=True)
        return drive(run, args, server, rng)
    finally:
        run.close()
        with contextlib.suppress(psycopg.Error), psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drive(run: Soak, args: argparse.Namespace, server: Server, rng: random.Random) -> int:
    low, high = (float(x) for x in args.fault_every.split(":"))
    for _ in range(args.agents):
        run.start_agent()
    next_fault = time.monotonic() + rng.uniform(low, high)
    next_report = time.monotonic()
    deadline = run.started + args.time_limit
    timed_out = False
    while run.alive():
        now = time.monotonic()
        if now > deadline:
            timed_out = True
            break
        if now >= next_report:
            counts = dict(query(run.check_url, "SELECT status, count(*) FROM trials GROUP BY status"))
            print(f"{now - run.started:6.1f}s  trials {counts}  agents alive {len(run.alive())}  "
                  f"faults {len(run.faults)}", flush=True)
            next_report = now + 10
        if now >= next_fault:
            kinds = list(FAULTS)
            rng.shuffle(kinds)
            for kind in kinds:  # the first kind that finds something to hit
                if run.inject(kind, rng, server):
                    break
            next_fault = time.monotonic() + rng.uniform(low, high)
        time.sleep(0.2)
    elapsed = time.monotonic() - run.started
    run.close()
    print(f"\nfaults injected: {len(run.faults)}")
    for line in run.faults:
        print(f"  {line}")
    print(f"\ninvariants ({elapsed:.0f} s{', TIME LIMIT HIT' if timed_out else ''}):")
    results = check(run, args.trials)
    for what, held, detail in results:
        print(f"  {'PASS' if held else 'FAIL'}  {what}: {detail}")
    if timed_out:
        print(f"the sweep did not end within --time-limit {args.time_limit:g} s; agent logs in {run.folder}")
        return 2
    if not all(held for _, held, _ in results):
        print(f"agent logs in {run.folder}")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-every", default="10:30", help="seconds between faults: MIN:MAX (uniform)")
    parser.add_argument("--steps", type=int, default=40, help="toy trainer steps per trial")
    parser.add_argument("--step-seconds", type=float, default=0.1, help="toy trainer seconds per step")
    parser.add_argument("--time-limit", type=float, default=900.0, help="stop (and fail) after this many seconds")
    parser.add_argument("--pg", default=os.environ.get("SWEEPD_TEST_PG", "postgresql://127.0.0.1:5432/test"),
                        help="admin URL of the server to run on (and restart)")
    parser.add_argument("--own-cluster", action="store_true",
                        help="run on a throwaway PostgreSQL cluster instead of --pg's server")
    parser.add_argument("--keep", action="store_true", help="keep the agents' logs and artifacts")
    args = parser.parse_args()
    server: Server = OwnCluster() if args.own_cluster else Server(args.pg)
    folder = Path(tempfile.mkdtemp(prefix="sweepd-chaos-"))
    code = 1
    try:
        code = soak(args, server, folder)
    finally:
        server.close()
        if code == 0 and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
