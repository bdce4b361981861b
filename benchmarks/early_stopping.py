"""Early stopping on a real sweep, and what one stop decision costs.

Default mode: `sweepd launch snake` twice at the same budget of trial time (`--max-total-cost`),
the same per-trial cap, seed and slots, once with `[sweep] early_stopping = "on"` (the default) and
once "off" (each a short sweep file extending snake, so nothing else differs), each on its own
SQLite file under --out, without wandb. Both set `budget_param = "train.total_timesteps"`
(`--budget-param`; "" keeps the file's): sweeps/snake.toml names none, and then every run the
worker cuts at the cap (all of them at a 45 s cap on this box) stands for no config the searcher
can model, so carbs never leaves its warm-up and nothing is ever stopped (measured here: 12 random
trials, all cut, none stopped). With it, `launch` fits the step range to the cap (sweepd/budget.py)
and a cut or stopped run is observed at the steps it trained, as PufferLib configs have it.
For both it prints:
- trials run (finished: succeeded, failed or abandoned) and trials stopped early;
- compute saved: over the stopped trials, what each was planned to cost (the searcher's predicted
  cost, at most the cap the worker holds it to) minus what it spent;
- best score: the best config on the front (configs seed-averaged, sweepd.front);
- hypervolume: the area the front dominates in (log cost, score) inside a fixed box (cost from
  --box-low-cost to where the worker stops a trial, score from --score-floor), the same
  `sweepd.search.pareto.hypervolume` that benchmarks/real_sweep.py uses.
The target (issue 11): at least 1.5x the trials for the same budget, and a front no worse.

`--latency`: a SQLite store holding one sweep of 200 finished trials with 20 curve points each;
prints the time of the whole history read, of the first stop decision (the searcher rebuilt and
its surrogates fitted) and the median of the next ones (what each progress point costs the agent
while no trial finishes: the sweep row, the history's version and the decision on a curve of up
to 20 points).

    .venv/bin/python benchmarks/early_stopping.py --out /tmp/early_stopping   # ~15 min on 2 cores
    .venv/bin/python benchmarks/early_stopping.py --latency                   # ~1 min
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """One sweep as it ended."""

    label: str
    exit_code: int
    wall_seconds: float
    trials: int = 0
    stopped: int = 0
    spent: float = 0.0
    saved: float = 0.0
    best_score: float | None = None
    hypervolume: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default="snake", help="sweep name or file (default: snake)")
    parser.add_argument("--cap", type=float, default=45.0, help="max_suggestion_cost, seconds per trial")
    parser.add_argument("--budget", type=float, default=720.0, help="max_total_cost per sweep, seconds")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-param", default="train.total_timesteps",
                        help="[sweep] budget_param for both sweeps (\"\": the sweep file's)")
    parser.add_argument("--box-low-cost", type=float, default=10.0,
                        help="the box's low cost, seconds (about a snake trial's start-up plus evaluation)")
    parser.add_argument("--score-floor", type=float, default=2.0, help="the box's score floor (untrained snake)")
    parser.add_argument("--out", type=Path, help="folder for the sweep files, databases and logs")
    parser.add_argument("--latency", action="store_true", help="time stop decisions at 200 trials x 20 points")
    args = parser.parse_args()
    if args.latency:
        latency()
        return
    if args.out is None:
        parser.error("--out is required (or --latency)")
    real_sweeps(args)


def real_sweeps(args: argparse.Namespace) -> None:
    """The two sweeps, stopping on and off, and the table."""
    from sweepd.spec import find_sweep_file, load_spec

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    base = find_sweep_file(args.sweep)
    runs = []
    for label in ("on", "off"):
        path = out / f"early-stopping-{label}.toml"
        budget = f'budget_param = "{args.budget_param}"\n' if args.budget_param else ""
        path.write_text(f'extends = "{base.with_suffix("")}"\n\n[sweep]\nearly_stopping = "{label}"\n{budget}')
        hard_cap = load_spec(str(path), {"max_suggestion_cost": args.cap}).settings.cost_cap
        runs.append(run_sweep(args, out, path, label, hard_cap))
    box = (args.box_low_cost, hard_cap)
    print()
    print(f"{args.sweep} (budget_param {args.budget_param or 'as in the file'}): budget {args.budget:g} s of trial "
          f"time per sweep, cap {args.cap:g} s/trial (the worker stops a trial at {hard_cap:g} s), {args.slots} "
          f"slots, seed {args.seed}; hypervolume box: cost "
          f"{box[0]:g}-{box[1]:g} s (log), score from {args.score_floor:g}")
    header = (f"{'stopping':<9} {'trials':>6} {'stopped':>7} {'spent s':>8} {'saved s':>8} {'best':>7} "
              f"{'hypervolume':>11} {'wall min':>8}")
    print(header)
    print("-" * len(header))
    for r in runs:
        best = f"{r.best_score:.3f}" if r.best_score is not None else "-"
        print(f"{r.label:<9} {r.trials:>6} {r.stopped:>7} {r.spent:>8.0f} {r.saved:>8.0f} {best:>7} "
              f"{r.hypervolume:>11.3f} {r.wall_seconds / 60:>8.1f}" + (f"  exit {r.exit_code}" if r.exit_code else ""))
    on, off = runs
    ratio = on.trials / off.trials if off.trials else math.nan
    print(f"\ntrials on/off: {ratio:.2f}x (target >= 1.5x); hypervolume on - off: "
          f"{on.hypervolume - off.hypervolume:+.3f} (target >= 0); best on - off: "
          f"{(on.best_score or math.nan) - (off.best_score or math.nan):+.3f}")


def run_sweep(args: argparse.Namespace, out: Path, path: Path, label: str, hard_cap: float) -> Run:
    """`sweepd launch` of one sweep file in a subprocess (its output in out/LABEL.log), then its figures."""
    name = f"stopping-{label}"
    url = f"sqlite:///{out / name}.db"
    log = out / f"{name}.log"
    command = [sys.executable, "-m", "sweepd.cli", "launch", str(path), "--db", url, "--name", name,
               "--seed", str(args.seed), "--max-suggestion-cost", f"{args.cap:g}", "--max-total-cost",
               f"{args.budget:g}", "--max-trials", "0", "--slots", str(args.slots), "--no-live", "--no-wandb"]
    say(f"{name}: {' '.join(command[2:])}")
    t0 = time.monotonic()
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=dict(os.environ)).returncode
    run = Run(label=label, exit_code=code, wall_seconds=time.monotonic() - t0)
    summarize(run, url, name, hard_cap, (args.box_low_cost, hard_cap), args.score_floor)
    say(f"{name}: {run.trials} trials, {run.stopped} stopped, hypervolume {run.hypervolume:.3f}, "
        f"{run.wall_seconds / 60:.1f} min")
    return run


def summarize(run: Run, url: str, name: str, hard_cap: float, box: tuple[float, float], floor: float) -> None:
    """Fill ``run`` from its database."""
    from sweepd.front import load_front
    from sweepd.search.pareto import hypervolume
    from sweepd.store.db import open_store
    from sweepd.store.review import list_trials

    engine = open_store(url)
    result = load_front(engine, name)
    trials = list_trials(engine, result.sweep.id)
    engine.dispose()
    run.trials = sum(t.status in ("succeeded", "failed", "abandoned") for t in trials)
    run.stopped = sum(t.stopped for t in trials)
    run.spent = sum(t.spent for t in trials)
    run.saved = sum(min(t.predicted_cost or hard_cap, hard_cap) - (t.cost or 0.0) for t in trials if t.stopped)
    run.hypervolume = hypervolume([p.cost for p in result.points], [p.score for p in result.points], box, floor)
    run.best_score = max((p.score for p in result.points), default=None)


def latency() -> None:
    """Stop-decision latency at 200 finished trials x 20 curve points (see the module docstring)."""
    import numpy as np

    from sweepd.advisor import StopAdvisor
    from sweepd.spec import load_spec
    from sweepd.store.db import open_store
    from sweepd.store.enqueue import FinishedTrial, import_trials
    from sweepd.store.history import history_version, sweep_history
    from sweepd.store.sweeps import create_sweep, find_sweep

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "latency.toml"
        path.write_text(LATENCY_SWEEP)
        spec = load_spec(str(path))
        engine = open_store(f"sqlite:///{folder}/latency.db")
        sweep = create_sweep(engine, spec.to_json(), owner="bench")
        finished = [finished_trial(rng, FinishedTrial) for _ in range(200)]
        import_trials(engine, sweep.id, finished)
        t0 = time.perf_counter()
        history = sweep_history(engine, sweep.id)
        read_ms = (time.perf_counter() - t0) * 1e3
        advisor = StopAdvisor()
        importlib.import_module("sweepd.search.carbs")  # torch's import is not the decision's cost
        running = dict(finished_trial(rng, FinishedTrial).params)
        curve = [[running["train.total_timesteps"] * (i + 1) / 40, 1.0 + 0.01 * i, 5.0 + 2.0 * i] for i in range(20)]
        t0 = time.perf_counter()
        advisor.should_stop(find_sweep(engine, sweep.id), history, running, "search", curve)
        first_ms = (time.perf_counter() - t0) * 1e3
        times = []
        for n in range(40):  # as the agent asks at each progress point (sweepd/agent.py)
            t0 = time.perf_counter()
            kept = advisor.kept_history(sweep.id, history_version(engine, sweep.id)) \
                or sweep_history(engine, sweep.id)
            advisor.should_stop(find_sweep(engine, sweep.id), kept, running, "search", curve[: 1 + n % 20])
            times.append((time.perf_counter() - t0) * 1e3)
        engine.dispose()
    points = sum(len(o.curve) for o in history.observations)
    print(f"200 finished trials x 20 curve points (SQLite): history read {read_ms:.1f} ms ({points} curve points "
          f"handed to the searcher after sampling); first decision (rebuild + fit) {first_ms:.0f} ms; "
          f"next decisions (sweep row + history version + decision): median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms over {len(times)}")


LATENCY_SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["true", "{train.learning_rate}", "{train.total_timesteps}"]

[sweep]
max_suggestion_cost = 300.0
max_trials = 1000
budget_param = "train.total_timesteps"

[search.train.learning_rate]
space = "log"
min = 1e-4
max = 1e-1
center = 3e-3

[search.train.total_timesteps]
space = "log"
min = 1e5
max = 1e7
center = 1e6
integer = true

[search.train.gamma]
space = "logit"
min = 0.9
max = 0.999
center = 0.99

[search.train.ent_coef]
space = "log"
min = 1e-4
max = 1e-1
center = 1e-2
"""


def finished_trial(rng: Any, kind: type) -> Any:
    """A synthetic finished trial with a 20-point curve (score grows with steps, peaks at lr 3e-3)."""
    lr, steps = 10 ** rng.uniform(-4, -1), int(10 ** rng.uniform(5, 7))
    gamma, ent = 1 - 10 ** rng.uniform(-3, -1), 10 ** rng.uniform(-4, -1)
    quality = math.exp(-((math.log10(lr) + 2.5) ** 2))
    cost = 5.0 + steps / 5e4

    def score(s: float) -> float:
        return 10 * quality * (1 - math.exp(-s / 1e6)) + rng.normal(0, 0.05)

    curve = [[steps * (i + 1) / 21, score(steps * (i + 1) / 21), cost * (i + 1) / 21] for i in range(20)]
    params = {"train.learning_rate": lr, "train.total_timesteps": steps, "train.gamma": gamma,
              "train.ent_coef": ent}
    return kind(params=params, score=score(steps), cost=cost, kind="search", steps=float(steps),
                metrics={"curve": curve})


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
