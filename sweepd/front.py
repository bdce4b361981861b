"""A sweep's reviewed Pareto front: trials grouped by config, seed repeats averaged.

`sweepd status`, `sweepd pareto`, the dashboard and the wandb summary all show this one front.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from sweepd.search.pareto import pareto_front
from sweepd.store.models import SUCCEEDED
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo


@dataclass(frozen=True)
class ConfigResult:
    """One config's seed-averaged result."""

    params: dict
    score: float            # mean over its succeeded trials, in the metric's own direction
    score_stderr: float     # standard error across trials (0 with one trial; then the trial's own)
    cost: float             # mean cost (seconds)
    seeds: int
    trials: tuple[int, ...]  # trial numbers


def config_results(trials: Iterable[TrialInfo]) -> list[ConfigResult]:
    """Succeeded trials grouped by identical params, in order of first appearance."""
    groups: dict[str, list[TrialInfo]] = {}
    for trial in trials:
        if trial.status == SUCCEEDED and trial.score is not None and math.isfinite(trial.score):
            groups.setdefault(json.dumps(trial.params, sort_keys=True), []).append(trial)
    results = []
    for group in groups.values():
        scores = [t.score for t in group]
        n = len(scores)
        mean = sum(scores) / n
        if n > 1:
            stderr = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n)
        else:
            stderr = group[0].score_stderr or 0.0
        cost = sum(t.cost or 0.0 for t in group) / n
        results.append(ConfigResult(params=dict(group[0].params), score=mean, score_stderr=stderr, cost=cost,
                                    seeds=n, trials=tuple(t.number for t in group)))
    return results


def front(trials: Iterable[TrialInfo], direction: str = "maximize") -> list[ConfigResult]:
    """The configs not dominated in (lower cost, better score), cheapest first."""
    results = config_results(trials)
    sign = 1.0 if direction == "maximize" else -1.0
    keep = pareto_front([r.cost for r in results], [sign * r.score for r in results])
    return [results[i] for i in keep]


def front_records(points: Iterable[ConfigResult], center: dict | None = None) -> list[dict]:
    """The front as JSON-able rows, the one shape `sweepd pareto --json/--csv`, the dashboard's
    `/api/sweeps/{id}/front` and the wandb Pareto table share; `changed` holds the params that
    differ from the search centre (all of them without a centre)."""
    rows = []
    for p in points:
        changed = {k: v for k, v in p.params.items() if center is None or center.get(k) != v}
        rows.append({"cost": p.cost, "score": p.score, "score_stderr": p.score_stderr, "seeds": p.seeds,
                     "trials": list(p.trials), "params": dict(p.params), "changed": changed})
    return rows


@dataclass(frozen=True)
class SweepFront:
    """A sweep, its trials (without curves) and its front: what `sweepd pareto` and the dashboard show."""

    sweep: SweepInfo
    trials: list[TrialInfo]
    points: list[ConfigResult]

    @property
    def center(self) -> dict:
        return {p["name"]: p["center"] for p in self.sweep.spec.get("params", [])}

    def records(self) -> list[dict]:
        return front_records(self.points, self.center)


def load_front(engine: Engine, ref: str | int) -> SweepFront:
    """Read a sweep by name or id and compute its front (one query for the trials, O(n log n))."""
    from sweepd.store import review
    from sweepd.store.sweeps import find_sweep

    sweep = find_sweep(engine, ref)
    trials = review.trial_table(engine, sweep.id)
    return SweepFront(sweep, trials, front(trials, sweep.spec["settings"]["direction"]))


def write_csv(result: SweepFront, path: str | Path) -> Path:
    """The front as CSV: cost, score, score_stderr, seeds, trials (';'-separated), then one column per param."""
    names = [p["name"] for p in result.sweep.spec.get("params", [])] or sorted(
        {k for p in result.points for k in p.params})
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cost", "score", "score_stderr", "seeds", "trials", *names])
        for r in result.records():
            writer.writerow([repr(r["cost"]), repr(r["score"]), repr(r["score_stderr"]), r["seeds"],
                             ";".join(map(str, r["trials"])), *[r["params"].get(n, "") for n in names]])
    return path
