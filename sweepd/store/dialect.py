"""What differs between SQLite and PostgreSQL, behind one small interface (`Dialect`): how an
engine is set up, how the queue's hot statements run, how often a proposal is first made from a
snapshot, and the database clock. The rest of the store writes its SQL once for both.

- PostgreSQL has row locks. The hot statements (claim, heartbeat, finish) autocommit: each is its
  own transaction and one round trip, safe because each is a single guarded statement.
  `FOR UPDATE SKIP LOCKED` lets concurrent claims skip each other's rows.
- SQLite has one write lock for the whole database. Write transactions start with BEGIN
  IMMEDIATE, so a claim's read and write are never split by another writer (WAL cannot upgrade a
  stale read to a write); WAL mode lets readers (dashboard, `sweepd status`) read meanwhile.
  SQLAlchemy renders `FOR UPDATE [SKIP LOCKED]` as nothing there: the write lock already holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

BUSY_TIMEOUT_MS = 30_000


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


@dataclass(frozen=True)
class Statements:
    """A connection for a lease's plan and claim, or a trial's heartbeat and finish."""

    conn: Connection
    autocommit: bool   # each statement on `conn` commits by itself

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside a transaction, for steps that must hold a lock to their end: the
        statements' own transaction where there is one, else a new one (after what `conn` did
        has committed)."""
        if not self.autocommit:
            yield self.conn
            return
        with self.conn.engine.begin() as tx:
            yield tx


class Dialect(ABC):
    """One database backend as the store sees it."""

    name: ClassVar[str]
    # Proposals made from a snapshot (no lock held while the searcher runs) before one is made
    # under the sweep's lock (store/leasing.py explains why the two backends differ).
    optimistic_tries: ClassVar[int]

    @abstractmethod
    def engine(self, url: str, read_only: bool) -> Engine:
        """A new engine for `url`; `read_only` engines never take write locks."""

    @abstractmethod
    def statements(self, engine: Engine) -> AbstractContextManager[Statements]:
        """A connection for the queue's hot statements (`Statements`)."""


class PostgreSQL(Dialect):
    name = "postgresql"
    optimistic_tries = 0

    def engine(self, url: str, read_only: bool) -> Engine:
        args = {"options": "-c default_transaction_read_only=on"} if read_only else {}
        # No pool_pre_ping: it costs a round trip per transaction. A connection broken by a server
        # restart fails its next statement with a DBAPIError, SQLAlchemy then discards the pool,
        # and callers that must survive outages (the agent) retry.
        return create_engine(url, connect_args=args)

    @contextmanager
    def statements(self, engine: Engine) -> Iterator[Statements]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield Statements(conn, autocommit=True)


class SQLite(Dialect):
    name = "sqlite"
    optimistic_tries = 2

    def engine(self, url: str, read_only: bool) -> Engine:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

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

        return engine

    @contextmanager
    def statements(self, engine: Engine) -> Iterator[Statements]:
        with engine.begin() as conn:
            yield Statements(conn, autocommit=False)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (PostgreSQL(), SQLite())}


def dialect(engine: Engine) -> Dialect:
    """The engine's backend."""
    return DIALECTS[engine.dialect.name]


def dialect_for_url(url: str) -> Dialect | None:
    """The backend a (normalized) URL names, or None for one sweepd does not support."""
    return DIALECTS.get(url.split(":", 1)[0].split("+", 1)[0])
