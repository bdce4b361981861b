"""Suggest latency of the CARBS-style searcher at 50, 200 and 1000 observations.

Two paths are timed, each the median of ``--repeats`` runs, in wall seconds and in CPU seconds of
this process (the CPU figure is the steadier one on a machine shared with other work):
- rebuild+suggest: what the agent does per suggestion: create_searcher, observe every finished
  trial in order, add_pending the in-flight ones, suggest;
- suggest alone: one more suggest() on a searcher that already holds the history.

The history is synthetic (a PPO-like score and cost over 6 mixed-space params, 5% failures, 4
trials in flight), spread around the centre the way a local search spreads its trials.

Then the stop decision (``Searcher.report``) at ``--report-trials`` finished trials (200) with
``--curve-points`` (20) learning-curve points each, timed over the curve points of 4 running
trials: the median of every decision past the minimum spent fraction (earlier points return at
once), what an agent that keeps its searcher pays, and the first
decision after a new observation (when the surrogates are refitted), in wall and CPU seconds.

Usage: python benchmarks/suggest_latency.py [--sizes 50,200,1000] [--repeats 7]
       [--report-trials 200] [--curve-points 20]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from sweepd.search import Observation, create_searcher
from sweepd.search.history import CurvePoint
from sweepd.space import Param, bounds, from_basic, to_basic

PARAMS = [
    Param("train.learning_rate", "log", 1e-5, 1e-1, 3e-4),
    Param("train.total_timesteps", "log", 1e5, 1e9, 5e6, integer=True),
    Param("train.num_envs", "pow2", 8, 4096, 128),
    Param("train.update_epochs", "linear", 1, 8, 3, integer=True),
    Param("train.gamma", "logit", 0.8, 0.9999, 0.97),
    Param("train.ent_coef", "log", 1e-5, 1e-1, 1e-3),
]
CAP = 3600.0


def objective(p: dict) -> tuple[float, float, bool]:
    """A PPO-like (score, cost, failed): cost grows with timesteps, too high a learning rate crashes."""
    sps = 1e6 * p["train.num_envs"] / (p["train.num_envs"] + 512) / (1 + 0.3 * p["train.update_epochs"])
    cost = p["train.total_timesteps"] / sps + 5.0
    lr_term = math.exp(-(math.log10(p["train.learning_rate"] / 3e-4) ** 2) / 0.32)
    gamma_term = math.exp(-((math.log10(1 - p["train.gamma"]) + 2.3) ** 2) / 0.25)
    score = 100 * (0.2 + 0.8 * gamma_term) * (1 - math.exp(-p["train.total_timesteps"] * lr_term / 5e6))
    return score, cost, p["train.learning_rate"] > 1e-2


def history(n: int, seed: int = 0) -> tuple[list[Observation], list[dict]]:
    """n finished trials and 4 in flight, Gaussian around the centre (radius 0.6 basic units)."""
    rng = np.random.default_rng(seed)
    lo, hi = bounds(PARAMS)
    center = to_basic(PARAMS, {p.name: p.center for p in PARAMS})
    configs = [from_basic(PARAMS, np.clip(center + rng.normal(0, 0.6, len(PARAMS)), lo, hi))
               for _ in range(n + 4)]
    observations = []
    for cfg in configs[:n]:
        score, cost, failed = objective(cfg)
        observations.append(Observation(cfg, score * float(rng.lognormal(0, 0.05)), cost, failed))
    return observations, configs[n:]


def rebuild_and_suggest(observations: list[Observation], pending: list[dict]) -> tuple[float, float]:
    """(wall, CPU) seconds for the agent's path: a fresh searcher fed the whole history, then suggest()."""
    t0, c0 = time.perf_counter(), time.process_time()
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=CAP)
    for obs in observations:
        s.observe(obs)
    for cfg in pending:
        s.add_pending(cfg)
    s.suggest()
    return time.perf_counter() - t0, time.process_time() - c0


def curve(cfg: dict, score: float, cost: float, n: int) -> tuple[CurvePoint, ...]:
    """n points before the end of a run: the score of the same run stopped at i/(n+1) of its steps."""
    steps = cfg["train.total_timesteps"]
    points = []
    for i in range(1, n + 1):
        f = i / (n + 1)
        partial, _, _ = objective({**cfg, "train.total_timesteps": steps * f})
        points.append(CurvePoint(cost * f, partial * score / max(objective(cfg)[0], 1e-9), steps * f))
    return tuple(points)


def report_latency(n: int, points: int) -> tuple[list[float], list[float], float, float]:
    """Every stop decision over 4 running trials' curves, and the first one after an observation.

    Returns (wall seconds per decision, CPU seconds per decision, refit wall, refit CPU).
    """
    observations, running = history(n)
    with_curves = [Observation(o.params, o.score, o.cost, o.failed,
                               curve=() if o.failed else curve(dict(o.params), o.score, o.cost, points))
                   for o in observations]
    s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=CAP,
                        budget_param="train.total_timesteps")
    for obs in with_curves[:-1]:
        s.observe(obs)
    for cfg in running:
        s.add_pending(cfg)
    s.suggest()  # the surrogates are fitted, as after any suggestion
    s.observe(with_curves[-1])
    t0, c0 = time.perf_counter(), time.process_time()
    first = running[0]
    score, cost, _ = objective(first)
    pts = curve(first, score, cost, points)
    s.report(first, pts[0].cost, pts[0].score, steps=pts[0].steps)
    refit = (time.perf_counter() - t0, time.process_time() - c0)
    wall, cpu = [], []
    for cfg in running:
        score, cost, _ = objective(cfg)
        for pt in curve(cfg, score, cost, points):
            t0, c0 = time.perf_counter(), time.process_time()
            s.report(cfg, pt.cost, pt.score, steps=pt.steps)
            if pt.steps >= s.stop_min_fraction * cfg["train.total_timesteps"]:  # earlier ones return at once
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    return wall, cpu, refit[0], refit[1]


def main() -> None:
    """Print one row per history size: median rebuild+suggest and suggest-alone seconds."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200,1000")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--report-trials", type=int, default=200)
    ap.add_argument("--curve-points", type=int, default=20)
    args = ap.parse_args()
    print(f"{'observations':>12s} {'rebuild+suggest_s':>18s} {'suggest_s':>10s} {'rebuild_cpu_s':>14s} "
          f"{'suggest_cpu_s':>14s}")
    for n in (int(v) for v in args.sizes.split(",")):
        observations, pending = history(n)
        rebuild_and_suggest(observations, pending)  # warm up imports and caches
        rebuild = [rebuild_and_suggest(observations, pending) for _ in range(args.repeats)]
        s = create_searcher("carbs", PARAMS, seed=0, max_suggestion_cost=CAP)
        for obs in observations:
            s.observe(obs)
        for cfg in pending:
            s.add_pending(cfg)
        alone = []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            sug = s.suggest()
            alone.append((time.perf_counter() - t0, time.process_time() - c0))
            s.forget(sug.params)  # keep the history identical between repeats

        def med(runs: list[tuple[float, float]], i: int) -> float:
            return statistics.median(r[i] for r in runs)

        print(f"{n:12d} {med(rebuild, 0):18.4f} {med(alone, 0):10.4f} {med(rebuild, 1):14.4f} "
              f"{med(alone, 1):14.4f}", flush=True)
    wall, cpu, refit_wall, refit_cpu = report_latency(args.report_trials, args.curve_points)
    print(f"report (stop decision) at {args.report_trials} trials x {args.curve_points} curve points: "
          f"median {statistics.median(wall) * 1e3:.2f} ms wall, {statistics.median(cpu) * 1e3:.2f} ms CPU "
          f"over {len(wall)} decisions; first after a new observation (refit) {refit_wall * 1e3:.0f} ms wall, "
          f"{refit_cpu * 1e3:.0f} ms CPU")


if __name__ == "__main__":
    main()
