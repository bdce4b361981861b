"""Real PufferLib sweeps through the real agent, one per (searcher, seed), at equal compute.

Every searcher runs the same sweep file with the same per-trial cap (`--max-suggestion-cost`),
the same budget of trial time (`--max-total-cost`) and the same slots, through `sweepd launch`
(called in this process, so that the time spent in the searcher can be counted), each sweep on
its own SQLite file under --out. The sweeps run seed-major (seed 0 of every searcher, then seed 1,
...) so that whatever else loads the machine meanwhile hits every searcher alike.

The box for the hypervolume is fixed before any sweep runs, by one calibration trial of the
search centre with no training (total steps 0): its cost (start-up plus evaluation, what any trial
costs at least) is the box's low cost, its score (the untrained policy's) the score floor. The
box's high cost is the cap every trial is held to: the worker stops each one at `--cap` times the
sweep's cost_tolerance (1.25), so every trial that ran counts, a run cut there included (it is a
real point at what it cost); the `>cap` column counts the trials that cost more than `--cap`, the
cost the searchers were asked to stay under. The hypervolume is the area the sweep's front
(sweepd.front: configs seed-averaged) dominates in (log cost, score) inside that box
(sweepd.search.pareto.hypervolume).

Then each searcher's best config at or under the cap (over all its sweeps) is re-trained with
fresh seeds under the same cap, so a lucky seed cannot win the table.

Prints one row per searcher: median hypervolume over seeds [min, max]; the best seed-averaged
config's score at or under the cap (mean over sweep seeds [min, max]); the re-trained best config
(mean +- standard error); trials run, failed, over `--cap`; and the seconds spent in the searcher
(rebuilt from the history, then suggest; all its sweeps).
Writes under --out: trials.csv (every trial: searcher, seed, params, score, cost, steps, curve),
fronts.png (one colour per searcher, one line per seed), summary.json, logs/ and db/.

    .venv/bin/python benchmarks/real_sweep.py --out /tmp/real_sweep           # ~75 min on 2 cores
    .venv/bin/python benchmarks/real_sweep.py --quick --out /tmp/real_sweep_q # ~10 min
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RETRAIN_SEED = 1_000  # the re-training sweep's seed: its trial seeds differ from every search sweep's


@dataclass
class SweepRun:
    """One (searcher, seed) sweep as it ended."""

    searcher: str
    seed: int
    name: str
    exit_code: int
    wall_seconds: float
    searcher_seconds: float
    trials: int = 0
    failed: int = 0
    over_cap: int = 0
    hypervolume: float = 0.0
    best_score: float | None = None         # best seed-averaged config at or under the cap
    best_params: dict[str, Any] | None = None
    front: list[dict[str, float]] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default="snake", help="sweep name or file (default: snake)")
    parser.add_argument("--searchers", default="carbs,random,optuna,protein")
    parser.add_argument("--seeds", type=int, default=3, help="sweeps per searcher (sweep seeds 0..n-1)")
    parser.add_argument("--cap", type=float, default=45.0,
                        help="max_suggestion_cost, seconds per trial (the worker stops trials at cost_tolerance x)")
    parser.add_argument("--budget", type=float, default=720.0, help="max_total_cost per sweep, seconds")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=600.0,
                        help="lease expiry: a searcher that takes long to suggest stalls the agent's heartbeats, "
                             "which must not reap its trials")
    parser.add_argument("--quick", action="store_true", help="cap 30 s, budget 120 s, one seed (~10 min)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV, PNG, logs and databases")
    args = parser.parse_args()
    if args.quick:
        # A cap well above start-up plus evaluation (12-25 s on a loaded 2-core box), so trials train.
        args.cap, args.budget, args.seeds = 30.0, 120.0, 1
    searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    out: Path = args.out
    (out / "db").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)

    from sweepd.search import SEARCHERS, require_dependency
    from sweepd.spec import load_spec

    for name in searchers:
        if name not in SEARCHERS:
            sys.exit(f"unknown searcher {name!r}: choose from {', '.join(SEARCHERS)}")
        require_dependency(name)
    spec = load_spec(args.sweep, {"max_suggestion_cost": args.cap})
    budget_param = spec.settings.budget_param or "train.total_timesteps"
    center = {p.name: p.round(p.center) for p in spec.params}
    hard_cap = spec.settings.cost_cap
    started = time.monotonic()
    say(f"{args.sweep}: {len(searchers)} searchers x {args.seeds} seeds, cap {args.cap:g} s/trial "
        f"(the worker stops trials at {hard_cap:g} s), {args.budget:g} s of trial time per sweep, "
        f"{args.slots} slots; out: {out}")

    calibration = run_fixed(args, out, "calibrate", [{**center, budget_param: 0}], seed=RETRAIN_SEED + 1)[0]
    if calibration["score"] is None:
        sys.exit(f"the calibration trial (no training) failed: {calibration['failure_reason']}")
    low_cost, floor = float(calibration["cost"]), float(calibration["score"])
    box = (low_cost, hard_cap)
    say(f"box: cost {low_cost:.1f} s (an untrained trial: start-up + evaluation) to {hard_cap:g} s (where the "
        f"worker stops a trial), score from {floor:.4g} (the untrained policy's)")

    timer = SearcherTimer()
    runs: list[SweepRun] = []
    rows: list[dict[str, Any]] = []
    with timer.installed():
        for seed in range(args.seeds):
            for searcher in searchers:
                run = run_sweep(args, out, timer, searcher, seed)
                rows += summarize(run, out, args.cap, box, floor)
                runs.append(run)
                say(f"{searcher} seed {seed}: {run.trials} trials ({run.failed} failed), hypervolume "
                    f"{run.hypervolume:.3f}, best {fmt(run.best_score)}, searcher {run.searcher_seconds:.0f} s, "
                    f"{run.wall_seconds / 60:.1f} min" + (f", exit {run.exit_code}" if run.exit_code else ""))

    best = {s: best_config([r for r in runs if r.searcher == s]) for s in searchers}
    retrain_configs = [(s, cfg) for s, cfg in best.items() if cfg is not None]
    retrained: dict[str, list[float]] = {s: [] for s in searchers}
    if retrain_configs and args.retrain_seeds:
        # Seed-major like the sweeps: load while re-training hits every searcher's config alike.
        order = [(s, cfg) for _ in range(args.retrain_seeds) for s, cfg in retrain_configs]
        results = run_fixed(args, out, "retrain", [cfg for _, cfg in order], seed=RETRAIN_SEED)
        for (searcher, _), result in zip(order, results, strict=True):
            if result["score"] is not None:
                retrained[searcher].append(float(result["score"]))

    write_csv(out / "trials.csv", rows)
    plot_fronts(out / "fronts.png", runs, searchers, box, floor, args.sweep)
    table = format_table(searchers, runs, retrained, args.retrain_seeds)
    (out / "summary.json").write_text(json.dumps({
        "sweep": args.sweep, "cap": args.cap, "budget": args.budget, "slots": args.slots, "seeds": args.seeds,
        "box": {"low_cost": low_cost, "high_cost": hard_cap, "score_floor": floor},
        "runs": [asdict(r) for r in runs], "retrained": retrained,
        "best_configs": best, "table": table}, indent=2, default=str))
    print()
    print(f"box: log cost from {low_cost:.1f} s (untrained trial) to {hard_cap:g} s (the worker's stop at "
          f"{args.cap:g} s x {spec.settings.cost_tolerance:g}); score from {floor:.4g} (untrained policy)")
    print(table)
    print(f"\ntotal {(time.monotonic() - started) / 60:.1f} min; CSV, PNG and summary in {out}")


class SearcherTimer:
    """Seconds spent proposing (searcher rebuilt from the history, then suggest) per sweep name.

    The agent asks `sweepd.advisor.propose_next` for every new config; wrapping it counts exactly
    the searcher's share of the agent loop."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from sweepd import advisor

        inner = advisor.propose_next

        def timed(sweep: Any, history: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(sweep, history)
            finally:
                self.seconds[sweep.name] = self.seconds.get(sweep.name, 0.0) + time.perf_counter() - t0

        advisor.propose_next = timed
        try:
            yield
        finally:
            advisor.propose_next = inner


def sweepd_cli(args: list[str], log: Path) -> int:
    """Run one `sweepd` command in this process, its output appended to ``log``; its exit code."""
    import typer

    from sweepd.cli import app

    with log.open("a") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        print(f"$ sweepd {' '.join(args)}", flush=True)
        try:
            code = app(args=args, standalone_mode=False, prog_name="sweepd")
        except typer.Exit as exc:
            code = exc.exit_code
    return code if isinstance(code, int) else 0


def db_url(out: Path, name: str) -> str:
    return f"sqlite:///{out / 'db' / name}.db"


def run_sweep(args: argparse.Namespace, out: Path, timer: SearcherTimer, searcher: str, seed: int) -> SweepRun:
    """One real sweep, `sweepd launch` with this searcher and seed, served by an agent in this process."""
    name = f"{searcher}-seed{seed}"
    t0 = time.monotonic()
    code = sweepd_cli(["launch", args.sweep, "--db", db_url(out, name), "--name", name, "--searcher", searcher,
                       "--seed", str(seed), "--max-suggestion-cost", f"{args.cap:g}", "--max-total-cost",
                       f"{args.budget:g}", "--max-trials", "0", "--slots", str(args.slots), "--no-live",
                       "--no-wandb", "--lease-seconds", f"{args.lease_seconds:g}"], out / "logs" / f"{name}.log")
    return SweepRun(searcher=searcher, seed=seed, name=name, exit_code=code, wall_seconds=time.monotonic() - t0,
                    searcher_seconds=timer.seconds.get(name, 0.0))


def run_fixed(args: argparse.Namespace, out: Path, name: str, configs: list[dict[str, Any]],
              seed: int) -> list[dict[str, Any]]:
    """Given configs run as queued trials of one sweep (trial seeds from ``seed``), through the agent;
    each one's score (None if it failed), cost and failure reason, in order."""
    from sweepd.store.db import open_store
    from sweepd.store.enqueue import enqueue_trials
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import find_sweep

    url, log = db_url(out, name), out / "logs" / f"{name}.log"
    code = sweepd_cli(["launch", args.sweep, "--db", url, "--name", name, "--searcher", "random", "--seed",
                       str(seed), "--max-suggestion-cost", f"{args.cap:g}", "--max-trials", str(len(configs)),
                       "--detach", "--no-wandb"], log)
    if code:
        sys.exit(f"cannot create the {name} sweep: see {log}")
    engine = open_store(url)
    sweep_id = find_sweep(engine, name).id
    enqueue_trials(engine, sweep_id, configs)
    say(f"{name}: {len(configs)} given trial(s) at the cap")
    sweepd_cli(["agent", "--db", url, "--sweep", name, "--until-done", "--slots", str(args.slots), "--no-wandb",
                "--lease-seconds", f"{args.lease_seconds:g}"], log)
    trials = list_trials(engine, sweep_id)
    engine.dispose()
    return [{"score": t.score if t.status == "succeeded" else None, "cost": t.cost,
             "failure_reason": t.failure_reason} for t in trials]


def summarize(run: SweepRun, out: Path, cap: float, box: tuple[float, float], floor: float) -> list[dict[str, Any]]:
    """Fill ``run`` from its database (front from sweepd.front); its trials as CSV rows."""
    from sweepd.front import config_results, load_front
    from sweepd.search.pareto import hypervolume
    from sweepd.store.db import open_store
    from sweepd.store.review import list_trials

    engine = open_store(db_url(out, run.name))
    result = load_front(engine, run.name)
    trials = list_trials(engine, result.sweep.id)
    engine.dispose()
    run.trials = sum(t.status in ("succeeded", "failed", "abandoned") for t in trials)
    run.failed = sum(t.status in ("failed", "abandoned") for t in trials)
    run.over_cap = sum(t.cost is not None and t.cost > cap for t in trials if t.status == "succeeded")
    run.front = [{"cost": p.cost, "score": p.score} for p in result.points]
    run.hypervolume = hypervolume([p.cost for p in result.points], [p.score for p in result.points], box, floor)
    under = [c for c in config_results(trials) if c.cost <= box[1]]
    if under:
        top = max(under, key=lambda c: c.score)
        run.best_score, run.best_params = top.score, dict(top.params)
    return [{"searcher": run.searcher, "seed": run.seed, "trial": t.number, "kind": t.kind, "status": t.status,
             "params": json.dumps(t.params, sort_keys=True), "score": t.score, "cost": t.cost,
             "steps": t.metrics.get("steps"), "truncated": t.truncated, "failure": t.failure_reason or "",
             "curve": json.dumps(t.metrics.get("curve", []))} for t in trials]


def best_config(runs: list[SweepRun]) -> dict[str, Any] | None:
    """The searcher's best config at or under the cap over all its sweeps."""
    found = [r for r in runs if r.best_score is not None]
    return max(found, key=lambda r: r.best_score or -math.inf).best_params if found else None


def format_table(searchers: list[str], runs: list[SweepRun], retrained: dict[str, list[float]],
                 retrain_seeds: int) -> str:
    header = (f"{'searcher':<9} {'hypervolume median [min, max]':<31} {'best@cap mean [min, max]':<27} "
              f"{'re-trained best (n)':<22} {'trials':>6} {'failed':>6} {'>cap':>5} {'searcher s':>10}")
    lines = [header, "-" * len(header)]
    for s in searchers:
        mine = [r for r in runs if r.searcher == s]
        hv = [r.hypervolume for r in mine]
        best = [r.best_score for r in mine if r.best_score is not None]
        hv_text = f"{statistics.median(hv):.3f} [{min(hv):.3f}, {max(hv):.3f}]" if hv else "-"
        best_text = f"{statistics.fmean(best):.3f} [{min(best):.3f}, {max(best):.3f}]" if best else "-"
        scores = retrained.get(s, [])
        if len(scores) > 1:
            se = statistics.stdev(scores) / math.sqrt(len(scores))
            re_text = f"{statistics.fmean(scores):.3f} ± {se:.3f} ({len(scores)}/{retrain_seeds})"
        elif scores:
            re_text = f"{scores[0]:.3f} (1/{retrain_seeds})"
        else:
            re_text = "-"
        lines.append(f"{s:<9} {hv_text:<31} {best_text:<27} {re_text:<22} {sum(r.trials for r in mine):>6} "
                     f"{sum(r.failed for r in mine):>6} {sum(r.over_cap for r in mine):>5} "
                     f"{sum(r.searcher_seconds for r in mine):>10.1f}")
    lines += margins(searchers, runs, retrained)
    return "\n".join(lines)


def margins(searchers: list[str], runs: list[SweepRun], retrained: dict[str, list[float]]) -> list[str]:
    """carbs (sweepd's default) against the best of the others, on both headline figures."""
    others = [s for s in searchers if s != "carbs"]
    if "carbs" not in searchers or not others:
        return []

    def median_hv(s: str) -> float:
        return statistics.median([r.hypervolume for r in runs if r.searcher == s] or [math.nan])

    def retrained_mean(s: str) -> float:
        return statistics.fmean(retrained[s]) if retrained.get(s) else math.nan

    lines = [""]
    for label, figure in (("median hypervolume", median_hv), ("re-trained best", retrained_mean)):
        rival = max(others, key=lambda s: -math.inf if math.isnan(figure(s)) else figure(s))
        lines.append(f"carbs - best other ({rival}), {label}: {figure('carbs') - figure(rival):+.3f}")
    return lines


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["searcher", "seed", "trial", "kind", "status", "params", "score", "cost", "steps", "truncated",
               "failure", "curve"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot_fronts(path: Path, runs: list[SweepRun], searchers: list[str], box: tuple[float, float], floor: float,
                title: str) -> None:
    """Each sweep's front as a step line in (cost, score), log cost axis; one colour per searcher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for i, s in enumerate(searchers):
        for j, run in enumerate(r for r in runs if r.searcher == s):
            if not run.front:
                continue
            costs = [p["cost"] for p in run.front] + [box[1]]
            scores = [p["score"] for p in run.front]
            ax.step(costs, [*scores, scores[-1]], where="post", color=colours(i), alpha=0.8,
                    label=s if j == 0 else None)
            ax.scatter(costs[:-1], scores, color=colours(i), s=12)
    ax.axhline(floor, color="grey", linestyle=":", label="untrained policy")
    ax.axvline(box[1], color="grey", linestyle="--", label="cap (where the worker stops)")
    ax.set_xscale("log")
    ax.set_xlim(box[0] * 0.9, box[1] * 1.3)
    ax.set_xlabel("cost (s)")
    ax.set_ylabel("score")
    ax.set_title(f"{title}: Pareto fronts, one line per seed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    main()
