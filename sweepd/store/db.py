"""Engines by URL: SQLite (the embedded default) or PostgreSQL (teams), and the schema's
migrations. How the two backends differ lives in store/dialect.py.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import Engine, inspect, select

from sweepd.store.dialect import dialect_for_url

# The newest migration in migrations/versions/: bump it with each new one (tests/store/test_migrations.py
# checks). `open_store` compares a database with it instead of asking alembic, whose import and script
# scan cost every command ~0.5 s (seconds on a busy box) when the schema is already current.
SCHEMA_REVISION = "0005"


class StoreError(RuntimeError):
    """The database cannot be used as asked (bad URL, unreachable, schema too old)."""


def data_dir() -> Path:
    """Where sweepd keeps its SQLite file and artifacts: $SWEEPD_HOME or the user's data dir."""
    path = Path(os.environ.get("SWEEPD_HOME") or platformdirs.user_data_dir("sweepd"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_url() -> str:
    """$SWEEPD_DB, else a SQLite file in the data dir."""
    return os.environ.get("SWEEPD_DB") or f"sqlite:///{data_dir() / 'sweepd.db'}"


def normalize_url(url: str) -> str:
    """Accept the URL forms users paste; psycopg 3 is the PostgreSQL driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str | None = None, read_only: bool = False) -> Engine:
    """An engine for `url` (default: `default_url()`); `read_only` engines never take write locks."""
    url = normalize_url(url or default_url())
    backend = dialect_for_url(url)
    if backend is None:
        raise StoreError(f"unsupported database URL '{url}': use sqlite:///PATH or postgresql://...")
    return backend.engine(url, read_only)


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("sweepd.migrations")))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with the bundled alembic migrations."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def head_revision() -> str:
    """The newest migration bundled with this sweepd."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    if not inspect(engine).has_table("alembic_version"):
        return None
    from sqlalchemy import column, table

    with engine.connect() as conn:
        return conn.execute(select(column("version_num")).select_from(table("alembic_version"))).scalar()


def open_store(url: str | None = None) -> Engine:
    """An engine whose schema is current: an empty database is created, an old one upgraded."""
    engine = make_engine(url)
    try:
        if current_revision(engine) != SCHEMA_REVISION:
            upgrade(engine)
    except Exception as exc:  # the driver's own errors are many; one line for the user
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return engine
