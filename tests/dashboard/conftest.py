"""A small finished sweep, built through the store, and a dashboard serving it on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sweepd.store import db
from sweepd.store.boxes import register_box
from sweepd.store.enqueue import FinishedTrial, import_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep

PARAMS = [{"name": "train.learning_rate", "space": "log", "min": 1e-4, "max": 1e-1, "center": 1e-2, "integer": False},
          {"name": "train.total_timesteps", "space": "log", "min": 1e3, "max": 1e6, "center": 10_000,
           "integer": True}]
SPEC = {"name": "review", "env": "snake", "trainer": "command", "source": "test", "command": [], "defaults": {},
        "params": PARAMS,
        "settings": {"searcher": "carbs", "seed": 1, "max_suggestion_cost": 100.0, "max_trials": 12,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def curve(score: float, steps: int, cost: float, points: int = 20) -> list[list[float]]:
    return [[steps * (i + 1) / points, score * (i + 1) / points, cost * (i + 1) / points] for i in range(points)]


def results() -> list[FinishedTrial]:
    """12 trials: a config run with three seeds, two failures, and a front of four configs."""
    def ok(lr: float, steps: int, score: float, cost: float, predicted: float | None = None) -> FinishedTrial:
        return FinishedTrial({"train.learning_rate": lr, "train.total_timesteps": steps}, score, cost,
                             predicted_cost=predicted, metrics={"curve": curve(score, steps, cost)}, kind="search")

    def failed(lr: float, steps: int, cost: float) -> FinishedTrial:
        return FinishedTrial({"train.learning_rate": lr, "train.total_timesteps": steps}, None, cost, status="failed",
                             failure_reason="loss became NaN\nTraceback ...")

    return [ok(1e-2, 10_000, 5.0, 10.0), ok(3e-2, 3_000, 2.0, 3.0), ok(1e-3, 30_000, 4.0, 30.0, 25.0),
            ok(1e-2, 100_000, 9.0, 95.0, 80.0), ok(1e-2, 10_000, 6.0, 11.0), failed(1e-1, 50_000, 20.0),
            ok(5e-3, 20_000, 7.5, 40.0, 45.0), ok(2e-2, 5_000, 1.0, 8.0, 6.0), ok(1e-2, 10_000, 5.5, 12.0),
            failed(9e-2, 80_000, 4.0), ok(3e-3, 60_000, 6.5, 70.0, 50.0), ok(1e-4, 1_000, 0.5, 1.0, 1.2)]


def make_marked_sweep(db_url: str) -> SweepInfo:
    """A sweep with a budget_param whose runs ended three ways. Trial 1: the centre run in full
    (10,240 steps); 2: the centre cut at the cost cap after 4,000 steps; 3 and 4: another config
    stopped early by the searcher at 2,000 steps (two seeds). Its front is 3+4 (stopped), 2 (cut), 1."""
    engine = db.open_store(db_url)
    spec = {**SPEC, "name": "marked", "settings": {**SPEC["settings"], "budget_param": "train.total_timesteps"}}
    sweep = create_sweep(engine, spec, owner="alice")
    centre = {"train.learning_rate": 1e-2, "train.total_timesteps": 10_000}
    other = {"train.learning_rate": 3e-3, "train.total_timesteps": 10_000}
    import_trials(engine, sweep.id, [
        FinishedTrial(centre, 5.0, 20.0, steps=10_240, kind="search"),
        FinishedTrial(centre, 3.0, 8.0, truncated=True, steps=4_000, kind="search"),
        FinishedTrial(other, 2.0, 4.0, stopped=True, steps=2_000, kind="search"),
        FinishedTrial(other, 2.4, 4.2, stopped=True, steps=2_000, kind="search")])
    return find_sweep(engine, sweep.id)


@dataclass(frozen=True)
class Served:
    url: str           # the dashboard's base URL, ending in "/"
    db_url: str
    sweep: SweepInfo


def make_review_sweep(db_url: str) -> SweepInfo:
    """A finished 12-trial sweep and a registered box in the (empty) database at `db_url`."""
    engine = db.open_store(db_url)
    sweep = create_sweep(engine, SPEC, owner="alice")
    import_trials(engine, sweep.id, results())
    register_box(engine, "gpu-box-1", 2, "cuda", "alice", "gpu-box-1:1:abc")
    return find_sweep(engine, sweep.id)


def serve(db_url: str, sweep: SweepInfo) -> Iterator[Served]:
    """A dashboard over `db_url` on a free port, in a thread, for the test's duration."""
    from sweepd.dashboard.server import make_server

    server = make_server(db_url, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(server.url, db_url, sweep)
    server.shutdown()
    server.server_close()


@pytest.fixture
def review_sweep(sqlite_url: str) -> tuple[str, SweepInfo]:
    """A finished 12-trial sweep in a fresh SQLite file."""
    return sqlite_url, make_review_sweep(sqlite_url)


@pytest.fixture
def served(review_sweep: tuple[str, SweepInfo]) -> Iterator[Served]:
    """The dashboard over the SQLite review sweep."""
    yield from serve(*review_sweep)


@pytest.fixture
def marked_sweep(served: Served) -> SweepInfo:
    """`make_marked_sweep` in the database the dashboard serves."""
    return make_marked_sweep(served.db_url)


@pytest.fixture
def served_on_each_db(db_url: str) -> Iterator[Served]:
    """The dashboard over the review sweep, once on SQLite and once on PostgreSQL."""
    yield from serve(db_url, make_review_sweep(db_url))
