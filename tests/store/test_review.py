"""Read-only review queries, on SQLite and PostgreSQL: summaries, the light trial table, imports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sweepd.store import db, review
from sweepd.store.enqueue import FinishedTrial, enqueue_trial, import_trials
from sweepd.store.review import list_trials
from sweepd.store.sweeps import create_sweep

SPEC = {"name": "rev", "env": "snake", "source": "test", "params": [],
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 0,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "minimize"}}


@pytest.fixture
def engine(db_url):
    return db.open_store(db_url)


def test_summaries_count_statuses_and_pick_best_by_direction(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    import_trials(engine, sweep.id, [FinishedTrial({"x": 1}, 4.0, 2.0), FinishedTrial({"x": 2}, 1.5, 3.0),
                                           FinishedTrial({"x": 3}, None, 1.0, status="failed"),
                                           FinishedTrial({"x": 4}, None, 0.5, status="abandoned")])
    enqueue_trial(engine, sweep.id, {"x": 5})
    other = create_sweep(engine, {**SPEC, "settings": {**SPEC["settings"], "direction": "maximize"}},
                               owner="bob")
    import_trials(engine, other.id, [FinishedTrial({"x": 1}, 4.0, 2.0), FinishedTrial({"x": 2}, 1.5, 3.0)])

    mine, theirs = review.sweep_summaries(engine, [sweep.name, other.id])[::-1]
    assert (mine.trials, mine.succeeded, mine.failed, mine.queued, mine.running) == (5, 2, 2, 1, 0)
    assert mine.best_score == 1.5 and theirs.best_score == 4.0  # minimize vs maximize
    assert mine.cost_spent == pytest.approx(6.5)
    assert [s.name for s in review.sweep_summaries(engine)] == [other.name, sweep.name]  # newest first


def test_trial_table_is_list_trials_without_metrics(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    import_trials(engine, sweep.id, [FinishedTrial({"x": 1}, 4.0, 2.0, metrics={"curve": [[1, 2, 3]]})])
    (full,) = list_trials(engine, sweep.id)
    (light,) = review.trial_table(engine, sweep.id)
    assert light == replace(full, metrics={})
    assert review.get_trial(engine, sweep.id, 1).metrics == {"curve": [[1, 2, 3]]}


def test_import_rejects_unfinished_trials(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    with pytest.raises(ValueError, match="finished"):
        import_trials(engine, sweep.id, [FinishedTrial({"x": 1}, None, 0.0, status="running")])
    assert list_trials(engine, sweep.id) == []
