"""The audit log (`sweepd events`): who created, leased, failed, retried, reserved or released what.

Append-only: every transition that a person may later ask about writes one event in its own
transaction, so the log and the state it explains never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from sweepd.store.models import Event


def record_event(conn: Session | Connection, at: float, actor: str, kind: str, detail: str = "", *,
                 box: str | None = None, sweep_id: int | None = None, trial_id: int | None = None) -> None:
    """Append to the audit log in the caller's transaction."""
    conn.execute(Event.__table__.insert().values(at=at, actor=actor, kind=kind, box=box, sweep_id=sweep_id,
                                                 trial_id=trial_id, detail=detail or None))


@dataclass(frozen=True)
class EventInfo:
    id: int
    at: float
    actor: str
    kind: str
    box: str | None
    sweep_id: int | None
    trial_id: int | None
    detail: str | None


def events(engine: Engine, limit: int = 50, *, box: str | None = None, sweep_id: int | None = None,
           kind: str | None = None) -> list[EventInfo]:
    """The newest `limit` events of the audit log, oldest first, optionally for one box, sweep or kind."""
    with Session(engine) as session:
        query = select(Event).order_by(Event.id.desc()).limit(limit)
        if box is not None:
            query = query.where(Event.box == box)
        if sweep_id is not None:
            query = query.where(Event.sweep_id == sweep_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        rows = session.scalars(query).all()
        return [EventInfo(id=r.id, at=r.at, actor=r.actor, kind=r.kind, box=r.box, sweep_id=r.sweep_id,
                          trial_id=r.trial_id, detail=r.detail) for r in reversed(rows)]
