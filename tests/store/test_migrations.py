"""The alembic migrations build exactly the models' schema, and upgrading keeps existing rows."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from sweepd.store import db
from sweepd.store.models import Base
from sweepd.store.review import list_trials
from sweepd.store.sweeps import find_sweep

SPEC = {"name": "old", "env": "snake", "source": "test",
        "settings": {"searcher": "random", "seed": 1, "max_suggestion_cost": 10.0, "max_trials": 5,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def test_there_are_at_least_two_revisions_in_a_line():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db._alembic_config(None))  # type: ignore[arg-type]
    revisions = list(script.walk_revisions())
    assert len(revisions) >= 2 and len(script.get_heads()) == 1


def test_open_store_expects_the_newest_migration():
    assert db.head_revision() == db.SCHEMA_REVISION


def test_upgrade_head_on_an_empty_database_matches_the_models(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_upgrading_a_first_revision_database_keeps_its_rows(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine, "0001")
    assert not inspect(engine).has_table("reservations")
    # Rows written by 0001-era code: raw SQL, because today's models have tables 0001 lacks.
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO sweeps (id, name, env, owner, spec, status, searcher, seed, max_suggestion_cost, "
            "max_trials, max_total_cost, priority, max_slots, created_at) VALUES "
            "(1, 'old-1', 'snake', 'alice', :spec, 'running', 'random', 1, 10.0, 5, 0.0, 0, 0, 100.0)"),
            {"spec": __import__("json").dumps(SPEC)})
        conn.execute(text(
            "INSERT INTO trials (sweep_id, number, kind, params, seed, status, attempts, truncated, metrics, "
            "score, cost, created_at, finished_at) VALUES "
            "(1, 1, 'random', '{\"x\": 1}', 7, 'succeeded', 1, false, '{}', 2.5, 3.0, 100.0, 110.0)"))
    store = db.open_store(db_url)  # what every command does: upgrade an old database to head
    assert db.current_revision(store) == db.head_revision()
    (trial,) = list_trials(store, 1)
    assert (trial.params, trial.score, trial.status) == ({"x": 1}, 2.5, "succeeded")
    assert trial.spent == 3.0  # 0003: what a trial spent starts from its recorded cost
    assert find_sweep(store, "old-1").owner == "alice"
    assert inspect(store).has_table("reservations")


@pytest.mark.parametrize("revision", ["0001", "base"])
def test_downgrade_then_upgrade_round_trips(db_url, revision):
    from alembic import command

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    command.downgrade(db._alembic_config(engine), revision)
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
