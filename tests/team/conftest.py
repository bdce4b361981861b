"""The `team` fixture: a sweep in the run's PostgreSQL database and the agents working on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Team


@pytest.fixture
def team(pg_url: str, tmp_path: Path) -> Iterator[Team]:
    team = Team(pg_url, tmp_path)
    try:
        yield team
    finally:
        team.close()
