"""Shared fixtures: real databases (a SQLite file per test, a fresh PostgreSQL database per run)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("SWEEPD_TEST_PG", "postgresql://127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked `pufferlib` where PufferLib's trainer cannot be imported. One check per
    run, and only when a selected test needs it: importing it takes seconds (torch and its envs)."""
    needing = [item for item in items if item.get_closest_marker("pufferlib")]
    if not needing:
        return
    check = subprocess.run([sys.executable, "-c", "import pufferlib.pufferl"], capture_output=True)
    if check.returncode != 0:
        skip = pytest.mark.skip(reason="pufferlib not installed: run scripts/install_pufferlib.sh")
        for item in needing:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database made for this test run and dropped after it."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    import psycopg

    name = f"sweepd_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The run's PostgreSQL database, emptied before each test."""
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield pg_database


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sweepd.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> None:
    """Never touch the user's real data dir or database from a test."""
    monkeypatch.setenv("SWEEPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWEEPD_DB", f"sqlite:///{tmp_path / 'home' / 'sweepd.db'}")
    monkeypatch.setenv("SWEEPD_USER", "tester")
    monkeypatch.setenv("WANDB_MODE", "disabled")
