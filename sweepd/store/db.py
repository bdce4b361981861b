"""Engines by URL: SQLite (the embedded default) or PostgreSQL (teams), and the DB clock.

SQLite write transactions start with BEGIN IMMEDIATE so that a lease is taken under the write
lock from its first read (no lost-update window between SELECT and UPDATE); WAL mode lets the
dashboard and `sweepd status` read while agents write. PostgreSQL gets row locks in the queue.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The database cannot be used as asked (bad URL, unreachable, schema too old)."""


class epoch_now(FunctionElement):
    """The database's clock in epoch seconds: leases expire by one clock, whatever box asks."""

    type = Float()
    inherit_cache = True


@compiles(epoch_now, "postgresql")
def _epoch_now_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return "EXTRACT(EPOCH FROM clock_timestamp())::float8"


@compiles(epoch_now, "sqlite")
def _epoch_now_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


def clock(conn: Session | Connection) -> float:
    """The database's clock now, in epoch seconds (one round trip)."""
    return float(conn.scalar(select(epoch_now())))


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
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine, read_only)
        return engine
    if url.startswith("postgresql"):
        args = {"options": "-c default_transaction_read_only=on"} if read_only else {}
        # No pool_pre_ping: it costs a round trip per transaction. A connection broken by a server
        # restart fails its next statement with a DBAPIError, SQLAlchemy then discards the pool,
        # and callers that must survive outages (the agent) retry.
        return create_engine(url, connect_args=args)
    raise StoreError(f"unsupported database URL '{url}': use sqlite:///PATH or postgresql://...")


def _configure_sqlite(engine: Engine, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" hook below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


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
        if current_revision(engine) != head_revision():
            upgrade(engine)
    except Exception as exc:  # the driver's own errors are many; one line for the user
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot open database {engine.url.render_as_string(hide_password=True)}: "
                         f"{str(exc).splitlines()[0]}") from exc
    return engine
