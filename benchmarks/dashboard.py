"""Dashboard latency on a big sweep: the page and every API endpoint for a 10,000-trial sweep.

Usage: python benchmarks/dashboard.py [--trials 10000] [--curve-points 100] [--db sqlite:///PATH]

Builds a finished sweep directly through the store (`enqueue.import_trials`: one bulk insert; 8% of
trials failed, a third of configs re-run with more seeds, each trial with a learning curve in its
metrics like the agent stores), serves it with `sweepd.dashboard.server` on a free port, and times
each request over HTTP: cold (first request, nothing cached) and warm (median of 5). "page" sums
what the browser fetches to show one sweep: the HTML, its assets, and /api/sweeps/{id},
/trials and /front. Also times the front alone at n and 10n trials: O(n log n) shows as ~10x.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sweepd.front import front
from sweepd.store import db, review
from sweepd.store.enqueue import FinishedTrial, import_trials
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import create_sweep

PARAMS = [{"name": "train.learning_rate", "space": "log", "min": 1e-4, "max": 3e-2, "center": 3e-3, "integer": False},
          {"name": "train.total_timesteps", "space": "log", "min": 2e5, "max": 2e7, "center": 2_000_000,
           "integer": True},
          {"name": "train.gamma", "space": "logit", "min": 0.9, "max": 0.999, "center": 0.99, "integer": False},
          {"name": "train.ent_coef", "space": "log", "min": 1e-4, "max": 0.1, "center": 0.01, "integer": False}]
SPEC: dict[str, Any] = {
    "name": "bench-dashboard", "env": "snake", "trainer": "command", "source": "benchmarks/dashboard.py",
    "command": [], "defaults": {}, "params": PARAMS,
    "settings": {"searcher": "carbs", "seed": 0, "max_suggestion_cost": 600.0, "max_trials": 0,
                 "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def synthetic_results(n: int, curve_points: int, seed: int = 0) -> list[FinishedTrial]:
    """n finished trials: score grows with log(steps) and peaks at a learning rate; cost ~ steps."""
    rng = random.Random(seed)
    out: list[FinishedTrial] = []
    while len(out) < n:
        lr = 10 ** rng.uniform(-4, math.log10(3e-2))
        steps = int(10 ** rng.uniform(math.log10(2e5), math.log10(2e7)))
        params = {"train.learning_rate": lr, "train.total_timesteps": steps,
                  "train.gamma": 1 - 10 ** rng.uniform(-3, -1), "train.ent_coef": 10 ** rng.uniform(-4, -1)}
        cost = steps / 27_000 * rng.uniform(0.9, 1.1)
        for _ in range(3 if rng.random() < 1 / 3 else 1):  # resampled configs: seed-averaged on the front
            if len(out) == n:
                break
            if rng.random() < 0.08:
                out.append(FinishedTrial(params, None, cost * rng.random(), status="failed",
                                         failure_reason="loss became NaN at step 12000", predicted_cost=cost))
                continue
            peak = 1 - (math.log10(lr) + 2.5) ** 2 / 6
            score = max(0.0, peak * math.log10(steps) * 8 + rng.gauss(0, 1.5))
            curve = [[steps * (i + 1) / curve_points, score * (1 - math.exp(-3 * (i + 1) / curve_points)),
                      cost * (i + 1) / curve_points] for i in range(curve_points)]
            out.append(FinishedTrial(params, score, cost, score_stderr=0.5, predicted_cost=cost * rng.uniform(0.7, 1.4),
                                     metrics={"curve": curve}, kind="search"))
    return out


def timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        size = len(response.read())
    return time.perf_counter() - start, size


def front_seconds(trials: list[TrialInfo], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        front(trials, "maximize")
        best = min(best, time.perf_counter() - start)
    return best


def scaled_trials(trials: list[TrialInfo], factor: int) -> list[TrialInfo]:
    """`factor` copies of the trials with distinct params (so no config groups merge)."""
    from dataclasses import replace

    return [replace(t, number=t.number + k * len(trials), params={**t.params, "copy": k})
            for k in range(factor) for t in trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--curve-points", type=int, default=100)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.open_store(url)
        start = time.perf_counter()
        spec = {**SPEC, "settings": {**SPEC["settings"], "max_trials": args.trials}}  # finished once imported
        sweep = create_sweep(engine, spec, owner="bench")
        import_trials(engine, sweep.id, synthetic_results(args.trials, args.curve_points))
        print(f"built sweep {sweep.name}: {args.trials} trials with {args.curve_points}-point curves "
              f"in {time.perf_counter() - start:.1f} s ({url.split(':', 1)[0]})")

        from sweepd.dashboard.server import make_server

        server = make_server(url, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = server.url.rstrip("/")
        paths = {"page (html)": "/", "app.js": "/static/app.js", "style.css": "/static/style.css",
                 "/api/sweeps": "/api/sweeps", "/api/sweeps/{id}": f"/api/sweeps/{sweep.id}",
                 "/api/sweeps/{id}/trials": f"/api/sweeps/{sweep.id}/trials",
                 "/api/sweeps/{id}/front": f"/api/sweeps/{sweep.id}/front",
                 "/api/sweeps/{id}/trials/{n}": f"/api/sweeps/{sweep.id}/trials/{args.trials // 2}",
                 "/api/boxes": "/api/boxes"}
        print(f"\n{'request':32} {'cold ms':>9} {'warm ms':>9} {'bytes':>11}")
        cold: dict[str, float] = {}
        for label, path in paths.items():
            cold[label], size = timed_get(base + path)
            warm = statistics.median(timed_get(base + path)[0] for _ in range(5))
            print(f"{label:32} {cold[label] * 1000:9.1f} {warm * 1000:9.1f} {size:11,d}")
        page = sum(cold[k] for k in ("page (html)", "app.js", "style.css", "/api/sweeps/{id}",
                                     "/api/sweeps/{id}/trials", "/api/sweeps/{id}/front"))
        print(f"\none sweep's page, cold, all requests in sequence: {page * 1000:.0f} ms (target < 2000 ms)")
        server.shutdown()
        server.server_close()

        trials = review.trial_table(engine, sweep.id)
        small, big = front_seconds(trials), front_seconds(scaled_trials(trials, 10))
        print(f"front of {len(trials):,} trials: {small * 1000:.1f} ms; of {10 * len(trials):,}: {big * 1000:.1f} ms "
              f"(x{big / small:.1f} for 10x the trials; O(n log n) gives ~10-12x, O(n^2) 100x)")


if __name__ == "__main__":
    main()
