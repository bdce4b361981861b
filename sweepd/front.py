"""A sweep's reviewed Pareto front: trials grouped by config, seed repeats averaged.

`sweepd status`, `sweepd pareto`, the dashboard and the wandb summary all show this one front.

A run that ended before its planned training (cut at the cost cap, or stopped early by the
searcher) is a point of the front at what it trained and what it cost, never the result of its
planned config: it is grouped apart from full runs of the same params, and apart from other cut
runs that trained a different number of steps. Its `params` stay the config as planned (what ran);
`steps` says how far it got.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from sweepd.search.pareto import pareto_front
from sweepd.space import as_text
from sweepd.store.models import SUCCEEDED
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo

CUT, STOPPED = "cut", "stopped"
MARK_LEGEND = {CUT: "ended at the cost cap before its planned steps",
               STOPPED: "ended early on the searcher's word"}


def end_mark(truncated: bool, stopped: bool) -> str:
    """How a run ended, as every surface marks it: "stopped" (early, on the searcher's word), "cut"
    (at the cost cap, before its planned steps) or "" (it trained what it planned)."""
    if stopped:
        return STOPPED
    return CUT if truncated else ""


@dataclass(frozen=True)
class ConfigResult:
    """One config's seed-averaged result."""

    params: dict
    score: float            # mean over its succeeded trials, in the metric's own direction
    score_stderr: float     # standard error across trials (0 with one trial; then the trial's own)
    cost: float             # mean cost (seconds)
    seeds: int
    trials: tuple[int, ...]  # trial numbers
    # Agent steps trained (mean over its trials); for full runs whose trainer did not say, the
    # planned value of the sweep's budget_param; None when neither is known.
    steps: float | None = None
    truncated: bool = False  # its runs ended before their planned training (cut or stopped)
    stopped: bool = False    # ... because the searcher stopped them early

    @property
    def mark(self) -> str:
        return end_mark(self.truncated, self.stopped)


def _group_key(trial: TrialInfo) -> str:
    """Same params and the same end: full runs together; a cut or stopped run with the runs of its
    params that ended the same way at the same trained steps (seed repeats stopped at one point)."""
    mark = end_mark(trial.truncated, trial.stopped)
    trained = trial.steps if mark and trial.steps is not None and math.isfinite(trial.steps) else None
    return json.dumps([trial.params, mark, None if trained is None else round(trained)], sort_keys=True)


def config_results(trials: Iterable[TrialInfo], budget_param: str | None = None) -> list[ConfigResult]:
    """Succeeded trials grouped by identical params and end (see `_group_key`), in order of first
    appearance. `budget_param` (the sweep's) gives full runs without reported steps their steps."""
    groups: dict[str, list[TrialInfo]] = {}
    for trial in trials:
        if trial.status == SUCCEEDED and trial.score is not None and math.isfinite(trial.score):
            groups.setdefault(_group_key(trial), []).append(trial)
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
        first = group[0]
        results.append(ConfigResult(params=dict(first.params), score=mean, score_stderr=stderr, cost=cost,
                                    seeds=n, trials=tuple(t.number for t in group),
                                    steps=_steps(group, budget_param), truncated=first.truncated or first.stopped,
                                    stopped=first.stopped))
    return results


def _steps(group: list[TrialInfo], budget_param: str | None) -> float | None:
    known = [t.steps for t in group if t.steps is not None and math.isfinite(t.steps)]
    if known:
        return sum(known) / len(known)
    first = group[0]
    planned = first.params.get(budget_param) if budget_param else None
    if end_mark(first.truncated, first.stopped) or not isinstance(planned, int | float):
        return None  # a cut run without reported steps trained an unknown part of its plan
    return float(planned)


def front(trials: Iterable[TrialInfo], direction: str = "maximize",
          budget_param: str | None = None) -> list[ConfigResult]:
    """The configs not dominated in (lower cost, better score), cheapest first."""
    results = config_results(trials, budget_param)
    sign = 1.0 if direction == "maximize" else -1.0
    keep = pareto_front([r.cost for r in results], [sign * r.score for r in results])
    return [results[i] for i in keep]


def sweep_front(sweep: SweepInfo, trials: Iterable[TrialInfo]) -> list[ConfigResult]:
    """A sweep's front, in its direction, with steps from its budget_param."""
    settings: dict[str, Any] = sweep.spec.get("settings", {})
    return front(trials, settings.get("direction", "maximize"), settings.get("budget_param") or None)


def front_records(points: Iterable[ConfigResult], center: dict | None = None) -> list[dict]:
    """The front as JSON-able rows, the one shape `sweepd pareto --json/--csv`, the dashboard's
    `/api/sweeps/{id}/front` and the wandb Pareto table share; `steps` is what it trained, `truncated`
    and `stopped` how it ended (see `end_mark`); `changed` holds the params that differ from the
    search centre (all of them without a centre)."""
    rows = []
    for p in points:
        changed = {k: v for k, v in p.params.items() if center is None or center.get(k) != v}
        rows.append({"cost": p.cost, "score": p.score, "score_stderr": p.score_stderr, "seeds": p.seeds,
                     "steps": p.steps, "truncated": p.truncated, "stopped": p.stopped,
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
    return SweepFront(sweep, trials, sweep_front(sweep, trials))


def write_csv(result: SweepFront, path: str | Path) -> Path:
    """The front as CSV: cost, score, score_stderr, seeds, steps (empty when unknown), truncated,
    stopped (true/false), trials (';'-separated), then one column per param (as planned, as a sweep
    file writes it: a boolean choice true/false)."""
    names = [p["name"] for p in result.sweep.spec.get("params", [])] or sorted(
        {k for p in result.points for k in p.params})
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cost", "score", "score_stderr", "seeds", "steps", "truncated", "stopped", "trials", *names])
        for r in result.records():
            writer.writerow([repr(r["cost"]), repr(r["score"]), repr(r["score_stderr"]), r["seeds"],
                             "" if r["steps"] is None else repr(r["steps"]), _flag(r["truncated"]),
                             _flag(r["stopped"]), ";".join(map(str, r["trials"])),
                             *[as_text(r["params"][n]) if n in r["params"] else "" for n in names]])
    return path


def _flag(value: bool) -> str:
    return "true" if value else "false"  # as JSON writes it, so the CSV and --json read alike
