"""The tables: Sweep, Trial, Box, Reservation, Event. Every time is epoch seconds (float) from the DB clock.

Epoch floats rather than DateTime columns: SQLite has no timestamp type, and lease expiry must
compare the same way on both backends without time-zone conversions.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, literal_column, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Trial statuses. A trial moves queued -> leased -> running -> succeeded | failed | abandoned,
# or back to queued when an infrastructure failure is retried.
QUEUED, LEASED, RUNNING = "queued", "leased", "running"
SUCCEEDED, FAILED, ABANDONED = "succeeded", "failed", "abandoned"
ACTIVE = (LEASED, RUNNING)
OPEN = (QUEUED, LEASED, RUNNING)

# Why a trial failed decides what the searcher learns from it.
INFRA = "infra"                    # lease expired, box lost, agent shutdown: retried, not observed
HYPERPARAMETER = "hyperparameter"  # OOM, NaN, crash after training started: observed as a failure
SETUP = "setup"                    # import or config error: pauses the sweep, not observed



def literal_status(status: str) -> Any:
    """A status written into the SQL, not bound: PostgreSQL can use a partial index (WHERE
    status = 'queued') in a prepared statement's generic plan only when it sees the value."""
    return literal_column(f"'{status}'")


# Sweep statuses.
SWEEP_RUNNING, SWEEP_PAUSED, SWEEP_STOPPED, SWEEP_FINISHED = "running", "paused", "stopped", "finished"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    env: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=SWEEP_RUNNING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    searcher: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    max_suggestion_cost: Mapped[float] = mapped_column(Float)
    max_trials: Mapped[int] = mapped_column(Integer, default=0)
    max_total_cost: Mapped[float] = mapped_column(Float, default=0.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_slots: Mapped[int] = mapped_column(Integer, default=0)
    # The hardware class its trials run on ("cpu" or "cuda"): only boxes of that class serve it, so
    # the cost model never mixes one machine's seconds with another's.
    device: Mapped[str] = mapped_column(String(16), default="cpu", server_default=text("'cpu'"))
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number", name="uq_trials_sweep_number"),
        Index("ix_trials_sweep_status", "sweep_id", "status"),
        # The queue itself: only queued rows, in the order leases take them. Partial, so that the
        # claim never wades through a sweep's finished trials (uq_trials_sweep_number would).
        Index("ix_trials_queued", "sweep_id", "number", postgresql_where=text("status = 'queued'"),
              sqlite_where=text("status = 'queued'")),
        # The reaper's index: only held leases, so finishing a trial costs no entry here.
        Index("ix_trials_lease_expiry", "lock_expires_at", postgresql_where=text("status IN ('leased', 'running')"),
              sqlite_where=text("status IN ('leased', 'running')")),
        # Fair share sums each owner's recent slot-seconds: trials finished inside the window.
        # Partial: a lease (finished_at NULL) then costs no entry here.
        Index("ix_trials_finished_at", "finished_at", postgresql_where=text("finished_at IS NOT NULL"),
              sqlite_where=text("finished_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    box: Mapped[str | None] = mapped_column(String(200))
    slot: Mapped[int | None] = mapped_column(Integer)
    lock_owner: Mapped[str | None] = mapped_column(String(200))
    lock_token: Mapped[str | None] = mapped_column(String(64))
    lock_expires_at: Mapped[float | None] = mapped_column(Float)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    predicted_score: Mapped[float | None] = mapped_column(Float)
    predicted_cost: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    score_stderr: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)      # the last attempt's cost: what the searcher sees
    # Every attempt's cost added up (infra re-runs and `sweepd retry` included): what the budget counts.
    spent: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    truncated: Mapped[bool] = mapped_column(default=False)
    # Ended early on the searcher's word (a succeeded trial, truncated at what it had trained).
    stopped: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Agent steps trained when the trial ended (None: the trainer did not say).
    steps: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_category: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class Box(Base):
    __tablename__ = "boxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slots: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(100))
    agent: Mapped[str | None] = mapped_column(String(200))
    # The sweep ids its agent serves (None: every sweep), so `launch` knows whether it picks a sweep up.
    serves: Mapped[list[Any] | None] = mapped_column(JSON)
    # The CUDA_VISIBLE_DEVICES entry each slot runs on (None: a CPU box); `--trials-per-gpu 2`
    # on GPUs 0 and 1 gives ["0", "0", "1", "1"].
    gpus: Mapped[list[Any] | None] = mapped_column(JSON)
    last_seen: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="online")


class Reservation(Base):
    """A user's claim on a box's slots from `starts_at` to `until` (DB clock). Rows are kept when a
    reservation ends (`until` is set to the end time) so that `sweepd events` and `boxes` can explain
    who had a box when. `slots` None means every slot of the box."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_box_until", "box", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    box: Mapped[str] = mapped_column(String(200))
    user: Mapped[str] = mapped_column(String(100))
    slots: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[float] = mapped_column(Float)
    until: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # a user or an agent id (box:pid:tag, as lock_owner)
    kind: Mapped[str] = mapped_column(String(32))
    box: Mapped[str | None] = mapped_column(String(200))
    sweep_id: Mapped[int | None] = mapped_column(Integer)
    trial_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


def finite(value: float | None) -> float | None:
    """A float column's value: NaN and infinities are stored as NULL (JSON and SQL agree on that)."""
    return float(value) if value is not None and math.isfinite(value) else None


class InvalidRequest(ValueError):
    """Input the store refuses as given (a name too long or taken, a transition the sweep's state
    does not allow): the user's to fix, said in one line by the CLI, unlike any other ValueError."""


def check_length(column: Any, value: str, what: str) -> None:
    """One-line InvalidRequest when `value` is longer than the String `column` holds: PostgreSQL would
    refuse the row (SQLite stores it), and cutting it short would silently change a name."""
    limit = column.type.length
    if len(value) > limit:
        raise InvalidRequest(f"{what} is {len(value)} characters long; at most {limit} fit: '{value[:40]}...'")
