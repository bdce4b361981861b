"""Queue throughput and correctness: many agent processes leasing and finishing no-op trials.

Usage: python benchmarks/queue_throughput.py [--backend both|postgres|sqlite] [--agents 16]
       [--seconds 10] [--mode queued|suggest] [--pg postgresql://127.0.0.1:5432/test]

Each agent is its own process with its own engine and runs lease -> finish cycles through the
store's public functions (`lease_trial`, `finish_trial`) for `--seconds`. `queued` mode leases
pre-queued trials (the claim path); `suggest` mode makes every lease a new suggestion from a
trivial proposer (the sweep-lock path). PostgreSQL runs in a scratch database that is dropped
afterwards; SQLite in a temporary file. Prints cycles per second and double leases (a trial
leased by two agents, or leased twice: must be 0), checked from both the agents' logs and the DB,
and the CPU each cycle costs (agents, and the local PostgreSQL server's processes): on a shared
machine the rate depends on what else runs, the CPU per cycle much less.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue as queue_module
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepd.store import db
from sweepd.store.enqueue import enqueue_trials
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep
from sweepd.store.transitions import finish_trial

SPEC: dict[str, Any] = {
    "name": "bench", "env": "noop", "source": "benchmarks/queue_throughput.py",
    "settings": {"searcher": "random", "seed": 0, "max_suggestion_cost": 1.0, "max_trials": 0,
                 "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


@dataclass(frozen=True)
class Figures:
    backend: str
    mode: str
    agents: int
    cycles: int
    seconds: float
    double_leases: int
    agent_cpu_ms: float        # client CPU per cycle, all agents
    server_cpu_ms: float       # PostgreSQL's CPU per cycle (all its processes; 0 when not measurable)

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0

    @property
    def idle_capacity(self) -> float:
        """Cycles/s the measured CPU cost allows on this many idle cores (machine load aside)."""
        cost = self.agent_cpu_ms + self.server_cpu_ms
        return (os.cpu_count() or 1) * 1000.0 / cost if cost else 0.0


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the local PostgreSQL server's processes (0 if none are visible)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def counting_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    """A distinct no-op config per trial, as cheap as a searcher can be."""
    return Proposal(params={"n": len(history.observations) + len(history.pending)}, kind="random")


def _agent(url: str, sweep_id: int, index: int, seconds: float, go: Any, out: Any, done: Any) -> None:
    engine = db.make_engine(url)
    holder = Holder(agent=f"bench-{index}", box=f"bench-box-{index}", slot=0, user="bench")
    leased: list[int] = []
    go.wait()
    cpu = time.process_time()
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        lease = lease_trial(engine, holder, counting_proposer, 600.0, [sweep_id])
        if lease is None:
            break  # out of queued trials
        leased.append(lease.trial_id)
        if not finish_trial(engine, lease, 0.0, 0.0):
            leased.append(-lease.trial_id)  # a lost lease in a run without reaping: a bug
    out.put((leased, start, time.monotonic(), time.process_time() - cpu))
    done.wait()  # keep our server process alive until its CPU time has been read
    engine.dispose()


def run(url: str, backend: str, agents: int, seconds: float, mode: str) -> Figures:
    """One measurement on an empty database at `url`."""
    engine = db.open_store(url)
    sweep = create_sweep(engine, SPEC, owner="bench")
    if mode == "queued":
        # More than the fastest run could take: running dry would end the measurement early.
        enqueue_trials(engine, sweep.id, ({"n": n} for n in range(int(agents * seconds * 150))))
    engine.dispose()
    ctx = mp.get_context("fork")
    go, out, done = ctx.Event(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_agent, args=(url, sweep.id, i, seconds, go, out, done)) for i in range(agents)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # let every process import and connect before the clock starts
    server_cpu = postgres_cpu_seconds() if backend == "postgres" else 0.0
    go.set()
    try:
        results = [out.get(timeout=seconds + 120) for _ in procs]
    except queue_module.Empty:
        codes = [proc.exitcode for proc in procs]
        raise SystemExit(f"an agent process never reported (exit codes {codes}); see its traceback above") from None
    server_cpu = postgres_cpu_seconds() - server_cpu if backend == "postgres" else 0.0
    done.set()
    for proc in procs:
        proc.join()
    leased = [t for r in results for t in r[0]]
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    engine = db.make_engine(url)
    trials = [t for t in list_trials(engine, sweep.id) if t.status != "queued"]
    engine.dispose()
    doubles = (len(leased) - len(set(leased)) + sum(1 for t in leased if t < 0)
               + sum(1 for t in trials if t.attempts != 1 or t.status != "succeeded")
               + sum(1 for n in Counter(t.number for t in trials).values() if n > 1))
    cycles = len([t for t in leased if t > 0])
    per = 1000.0 / max(1, cycles)
    return Figures(backend, mode, agents, cycles, elapsed, doubles, sum(r[3] for r in results) * per,
                   server_cpu * per)


def _pg_scratch(admin_url: str) -> tuple[str, Any]:
    import psycopg

    name = f"sweepd_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base}/{name}", drop


def main(argv: list[str]) -> int:
    """Run the measurements asked for and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["both", "postgres", "sqlite"], default="both")
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=["queued", "suggest"], default="queued")
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/test", help="an existing PostgreSQL database "
                        "to connect to; the benchmark creates and drops its own scratch database next to it")
    args = parser.parse_args(argv)
    backends = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    failed = False
    for backend in backends:
        if backend == "postgres":
            url, cleanup = _pg_scratch(args.pg)
        else:
            tmp = tempfile.TemporaryDirectory()
            url, cleanup = f"sqlite:///{Path(tmp.name) / 'bench.db'}", tmp.cleanup
        try:
            fig = run(url, backend, args.agents, args.seconds, args.mode)
        finally:
            cleanup()
        print(f"{fig.backend:8s} {fig.mode:7s} agents={fig.agents:2d} cycles={fig.cycles:6d} "
              f"in {fig.seconds:5.1f} s: {fig.rate:7.1f} lease->finish cycles/s, double leases: {fig.double_leases}; "
              f"CPU/cycle {fig.agent_cpu_ms:.2f} ms agents + {fig.server_cpu_ms:.2f} ms server "
              f"(~{fig.idle_capacity:.0f}/s on {os.cpu_count()} idle cores); load avg {os.getloadavg()[0]:.1f}",
              flush=True)
        failed |= fig.double_leases != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
