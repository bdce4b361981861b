"""Sweeps: create, find, list, and set their status; what never changes about one (its constants).

A sweep is found by name or id through `find_sweep`, the one lookup every command uses. Its
trials are numbered densely from 1 (`next_number`) under the sweep's row lock (`lock_sweep`),
and each trial's seed follows from the sweep's seed and the trial's number.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sweepd.settings import SweepSettings
from sweepd.store.audit import record_event
from sweepd.store.dialect import clock
from sweepd.store.models import SWEEP_PAUSED, SWEEP_RUNNING, SWEEP_STOPPED, Sweep, Trial, check_length


class NotFound(LookupError):
    """No sweep or box by that name or id."""


@dataclass(frozen=True)
class SweepInfo:
    id: int
    name: str
    env: str
    owner: str
    spec: dict[str, Any]
    status: str
    status_reason: str | None
    searcher: str
    seed: int
    max_suggestion_cost: float
    max_trials: int
    max_total_cost: float
    priority: int
    max_slots: int
    created_at: float
    finished_at: float | None

    @classmethod
    def of(cls, row: Any) -> SweepInfo:
        """From a Sweep row (ORM object or a row of `select(Sweep.__table__)`)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def trial_seed(sweep_seed: int, number: int) -> int:
    """Each trial's training seed: distinct per trial, reproducible from the sweep's seed."""
    return (sweep_seed * 1_000_003 + number * 7_919 + 17) % (2**31 - 1)


def create_sweep(engine: Engine, spec: dict[str, Any], owner: str, name: str | None = None) -> SweepInfo:
    """Write a new running sweep from a resolved spec (`SweepSpec.to_json()`); names are unique."""
    settings = spec["settings"]
    base = name or spec["name"]
    check_length(Sweep.owner, owner, "the sweep's owner (user name)")
    check_length(Sweep.env, spec["env"], "the env name")
    for attempt in range(100):
        with Session(engine) as session, session.begin():
            now = clock(session)
            if name is None:
                taken = session.scalars(select(Sweep.name).where(Sweep.name.like(f"{base}-%"))).all()
                numbers = [int(n.rsplit("-", 1)[1]) for n in taken if n.rsplit("-", 1)[1].isdigit()]
                candidate = f"{base}-{max(numbers, default=0) + 1 + attempt}"
            else:
                candidate = base
            check_length(Sweep.name, candidate, "the sweep name" + (" (--name)" if name is not None else ""))
            row = Sweep(name=candidate, env=spec["env"], owner=owner, spec=spec, status=SWEEP_RUNNING,
                        searcher=settings["searcher"], seed=settings["seed"],
                        max_suggestion_cost=settings["max_suggestion_cost"], max_trials=settings["max_trials"],
                        max_total_cost=settings["max_total_cost"], priority=settings["priority"],
                        max_slots=settings["max_slots"], created_at=now)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                if name is not None:
                    raise ValueError(f"a sweep named '{name}' exists already") from None
                session.rollback()
                continue
            record_event(session, now, owner, "sweep_created", spec.get("source", ""), sweep_id=row.id)
            return SweepInfo.of(row)
    raise RuntimeError(f"could not find a free sweep name for '{base}'")


def find_sweep(engine: Engine, ref: str | int) -> SweepInfo:
    """A sweep by name or id; NotFound names the recent sweeps."""
    ref_text = str(ref)
    with Session(engine) as session:
        row = session.scalar(select(Sweep).where(Sweep.name == ref_text))
        if row is None and ref_text.isdigit():
            row = session.get(Sweep, int(ref_text))
        if row is None:
            names = session.scalars(select(Sweep.name).order_by(Sweep.id.desc()).limit(5)).all()
            raise NotFound(f"no sweep '{ref}'" + (f"; recent: {', '.join(names)}" if names else ""))
        return SweepInfo.of(row)


def list_sweeps(engine: Engine) -> list[SweepInfo]:
    """All sweeps, newest first."""
    with Session(engine) as session:
        return [SweepInfo.of(r) for r in session.scalars(select(Sweep).order_by(Sweep.id.desc()))]


def set_sweep_status(engine: Engine, ref: str | int, status: str, actor: str, reason: str = "") -> SweepInfo:
    """Stop, pause or resume a sweep (its running trials are stopped by their agents)."""
    if status not in (SWEEP_RUNNING, SWEEP_PAUSED, SWEEP_STOPPED):
        raise ValueError(f"cannot set a sweep to '{status}'")
    sweep_id = find_sweep(engine, ref).id
    with engine.begin() as conn:
        now = clock(conn)
        row = conn.execute(update(Sweep).where(Sweep.id == sweep_id)
                           .values(status=status, status_reason=reason or None,
                                   finished_at=now if status == SWEEP_STOPPED else None)
                           .returning(*Sweep.__table__.columns)).one()
        record_event(conn, now, actor, f"sweep_{status}", reason, sweep_id=sweep_id)
        return SweepInfo.of(row)


def sweep_statuses(engine: Engine, ids: Iterable[int]) -> dict[int, str]:
    """Current status of each sweep id: agents stop trials of sweeps no longer running."""
    ids = list(ids)
    if not ids:
        return {}
    with Session(engine) as session:
        return dict(session.execute(select(Sweep.id, Sweep.status).where(Sweep.id.in_(ids))).all())


def lock_sweep(session: Session, sweep_id: int) -> Sweep:
    """The Sweep row, locked to the end of the caller's transaction: what adds trials to a sweep
    or decides its status takes turns on it."""
    row = session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())
    if row is None:
        raise NotFound(f"no sweep {sweep_id}")
    return row


def next_number(session: Session | Connection, sweep_id: int) -> int:
    """The number the sweep's next trial gets (numbers are dense: also how many trials it has + 1)."""
    return int(session.scalar(select(func.coalesce(func.max(Trial.number), 0))
                              .where(Trial.sweep_id == sweep_id))) + 1


@dataclass(frozen=True)
class SweepConstants:
    """What never changes about a sweep after it is made: its name, spec and budget."""

    id: int
    name: str
    spec: dict[str, Any]
    max_trials: int
    max_total_cost: float

    @property
    def cost_cap(self) -> float:
        return cost_cap(self.spec)

    @classmethod
    def of(cls, row: Sweep) -> SweepConstants:
        return cls(row.id, row.name, row.spec, int(row.max_trials), float(row.max_total_cost))


def cost_cap(spec: dict[str, Any]) -> float:
    """One trial's worst-case cost from a stored spec: `SweepSettings.cost_cap`, the wall seconds
    after which its worker stops training (max_suggestion_cost x cost_tolerance)."""
    return SweepSettings.from_json(spec["settings"]).cost_cap


# Read once per engine and sweep: leases and finishes need them on every call.
_CONSTANTS: weakref.WeakKeyDictionary[Engine, dict[int, SweepConstants]] = weakref.WeakKeyDictionary()


def sweep_constants(conn: Connection, sweep_id: int) -> SweepConstants:
    """The sweep's constants, read from the database the first time this engine asks."""
    known = _CONSTANTS.setdefault(conn.engine, {})
    if sweep_id not in known:
        row = conn.execute(select(Sweep.name, Sweep.spec, Sweep.max_trials, Sweep.max_total_cost)
                           .where(Sweep.id == sweep_id)).one()
        known[sweep_id] = SweepConstants(sweep_id, row[0], row[1], int(row[2]), float(row[3]))
    return known[sweep_id]
