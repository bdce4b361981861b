"""Sweeps: create, find, list; their lifecycle (pause, resume, stop, extend); what never changes
about one (its constants).

A sweep is found by name or id through `find_sweep`, the one lookup every command uses. Its
trials are numbered densely from 1 (`next_number`) under the sweep's row lock (`lock_sweep`),
and each trial's seed follows from the sweep's seed and the trial's number.

Lifecycle, each step one guarded UPDATE and one event:
- running -> paused (`pause_sweep`): no new leases; running trials finish, or with `requeue` are
  taken back at once and run again on resume. paused -> running (`resume_sweep`).
- running|paused -> stopped (`stop_sweep`): final. No new leases, agents stop its running trials,
  nothing resumes it (a new sweep can start from its results: `launch --warm-start`).
- running -> finished: its budget is spent (store/budget.py). `extend_sweep` raises the budget and
  sets a finished sweep running again.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sweepd.settings import SweepSettings
from sweepd.store.audit import record_event
from sweepd.store.dialect import clock
from sweepd.store.models import (
    ACTIVE,
    QUEUED,
    SWEEP_FINISHED,
    SWEEP_PAUSED,
    SWEEP_RUNNING,
    SWEEP_STOPPED,
    InvalidRequest,
    Sweep,
    Trial,
    check_length,
)

MAX_ID = 2**31 - 1  # the id column's range on every database: a larger number can only be a name


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
    """Write a new running sweep from a resolved spec (`SweepSpec.to_json()`); names are unique. Its
    hardware class (sweeps.device, what agents filter on) is the spec's `device` setting."""
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
                        max_slots=settings["max_slots"], device=settings.get("device") or "cpu", created_at=now)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                if name is not None:
                    raise InvalidRequest(f"a sweep named '{name}' exists already") from None
                session.rollback()
                continue
            record_event(session, now, owner, "sweep_created", spec.get("source", ""), sweep_id=row.id)
            return SweepInfo.of(row)
    raise RuntimeError(f"could not find a free sweep name for '{base}'")


def find_sweep(engine: Engine, ref: str | int) -> SweepInfo:
    """A sweep by name or id; NotFound names the recent sweeps. Only ASCII digits within the id
    column's range are tried as an id ('²' and 20-digit numbers are looked up as names only)."""
    ref_text = str(ref)
    with Session(engine) as session:
        row = session.scalar(select(Sweep).where(Sweep.name == ref_text))
        if row is None and ref_text.isascii() and ref_text.isdigit() and int(ref_text) <= MAX_ID:
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
    """Set a sweep running, paused or stopped with a reason (the agent pauses a sweep whose searcher
    fails this way). A stopped sweep is left as it is: stop is final. The user's verbs are
    `pause_sweep`, `resume_sweep` and `stop_sweep`, which also say why a change cannot apply."""
    if status not in (SWEEP_RUNNING, SWEEP_PAUSED, SWEEP_STOPPED):
        raise ValueError(f"cannot set a sweep to '{status}'")
    sweep_id = find_sweep(engine, ref).id
    with engine.begin() as conn:
        now = clock(conn)
        row = conn.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status != SWEEP_STOPPED)
                           .values(status=status, status_reason=reason or None,
                                   finished_at=now if status == SWEEP_STOPPED else None)
                           .returning(*Sweep.__table__.columns)).first()
        if row is None:
            return _read(conn, sweep_id)
        record_event(conn, now, actor, f"sweep_{status}", reason, sweep_id=sweep_id)
        return SweepInfo.of(row)


@dataclass(frozen=True)
class Steered:
    """What a lifecycle step did: the sweep as it is now, and the trial numbers it re-queued."""

    sweep: SweepInfo
    requeued: tuple[int, ...] = ()


def pause_sweep(engine: Engine, ref: str | int, actor: str, *, requeue: bool = False) -> Steered:
    """running -> paused: no new leases. Its running trials finish and are recorded as usual; with
    `requeue` they are taken back at once (queued again, this attempt not counted against their
    retries, what it spent up to its last heartbeat charged to the budget), their agents stop them
    at their next heartbeat (the lease is gone), and they run again on resume. Pausing a paused
    sweep again with `requeue` takes back what still runs."""
    info = find_sweep(engine, ref)
    sweep_id = info.id
    # What an attempt taken back spent: start to last heartbeat, never over what any attempt may be
    # charged (max_charge: the bound store/budget.py counts every attempt at).
    ran = Trial.heartbeat_at - Trial.started_at
    most = SweepSettings.from_json(info.spec["settings"]).max_charge
    charge = case((Trial.started_at.is_(None) | Trial.heartbeat_at.is_(None) | (ran <= 0), 0.0),
                  (ran > most, most), else_=ran)
    with engine.begin() as conn:
        now = clock(conn)
        paused = conn.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SWEEP_RUNNING)
                              .values(status=SWEEP_PAUSED, status_reason=f"paused by {actor}")).rowcount == 1
        status = conn.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
        if status != SWEEP_PAUSED:
            raise InvalidRequest(_cannot("pause", ref, status))
        numbers: tuple[int, ...] = ()
        if requeue:
            numbers = tuple(sorted(conn.scalars(
                update(Trial).where(Trial.sweep_id == sweep_id, Trial.status.in_(ACTIVE))
                .values(status=QUEUED, attempts=case((Trial.attempts > 0, Trial.attempts - 1), else_=0),
                        spent=Trial.spent + charge,
                        box=None, slot=None, lock_owner=None, lock_token=None, lock_expires_at=None,
                        started_at=None)
                .returning(Trial.number)).all()))
        if paused or numbers:
            record_event(conn, now, actor, "sweep_paused",
                         "running trials finish" if not requeue else
                         f"re-queued {len(numbers)} running trial(s)" + (f" {list(numbers)}" if numbers else ""),
                         sweep_id=sweep_id)
        return Steered(_read(conn, sweep_id), numbers)


def resume_sweep(engine: Engine, ref: str | int, actor: str) -> Steered:
    """paused -> running, whatever it was paused for and whatever was re-queued meanwhile. A
    stopped sweep stays stopped (stop is final); a finished one needs `extend_sweep`."""
    sweep_id = find_sweep(engine, ref).id
    with engine.begin() as conn:
        now = clock(conn)
        resumed = conn.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SWEEP_PAUSED)
                               .values(status=SWEEP_RUNNING, status_reason=None, finished_at=None)).rowcount == 1
        status = conn.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
        if not resumed and status != SWEEP_RUNNING:
            raise InvalidRequest(_cannot("resume", ref, status))
        if resumed:
            record_event(conn, now, actor, "sweep_running", "resumed", sweep_id=sweep_id)
        return Steered(_read(conn, sweep_id))


def stop_sweep(engine: Engine, ref: str | int, actor: str, reason: str = "") -> Steered:
    """running|paused -> stopped, for good: no new leases, its agents stop its running trials (what
    they reported by then is kept), and nothing sets it running again."""
    sweep_id = find_sweep(engine, ref).id
    with engine.begin() as conn:
        now = clock(conn)
        stopped = conn.execute(update(Sweep).where(Sweep.id == sweep_id,
                                                   Sweep.status.in_((SWEEP_RUNNING, SWEEP_PAUSED)))
                               .values(status=SWEEP_STOPPED, status_reason=reason or f"stopped by {actor}",
                                       finished_at=now)).rowcount == 1
        if not stopped:
            status = conn.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
            raise InvalidRequest(_cannot("stop", ref, status))
        record_event(conn, now, actor, "sweep_stopped", reason, sweep_id=sweep_id)
        return Steered(_read(conn, sweep_id))


def extend_sweep(engine: Engine, ref: str | int, actor: str, *, trials: int = 0, cost: float = 0.0) -> Steered:
    """Raise the sweep's budget by `trials` trials and/or `cost` seconds, and set it running again
    if it had finished (its budget spent). Only a budget the sweep has can be raised (0 means
    unlimited already); a stopped sweep stays stopped."""
    info = find_sweep(engine, ref)
    if trials < 0 or cost < 0 or not (trials or cost):
        raise InvalidRequest("extend needs a positive --trials or --cost")
    if trials and not info.max_trials:
        raise InvalidRequest(f"sweep {info.name} has no max_trials budget (unlimited): nothing to extend")
    if cost and not info.max_total_cost:
        raise InvalidRequest(f"sweep {info.name} has no max_total_cost budget (unlimited): nothing to extend")
    with engine.begin() as conn:
        now = clock(conn)
        changed = conn.execute(
            update(Sweep).where(Sweep.id == info.id, Sweep.status != SWEEP_STOPPED)
            .values(max_trials=Sweep.max_trials + trials, max_total_cost=Sweep.max_total_cost + cost,
                    status=case((Sweep.status == SWEEP_FINISHED, SWEEP_RUNNING), else_=Sweep.status),
                    finished_at=case((Sweep.status == SWEEP_FINISHED, None), else_=Sweep.finished_at))
            .returning(*Sweep.__table__.columns)).first()
        if changed is None:
            raise InvalidRequest(_cannot("extend", ref, SWEEP_STOPPED))
        record_event(conn, now, actor, "sweep_extended",
                     ", ".join(part for part in (f"+{trials} trials" if trials else "",
                                                 f"+{cost:g} s" if cost else "") if part)
                     + f" (now {changed.max_trials} trials, {changed.max_total_cost:g} s)", sweep_id=info.id)
        return Steered(SweepInfo.of(changed))


def _cannot(verb: str, ref: str | int, status: str | None) -> str:
    why = {SWEEP_STOPPED: "stopped, which is final (start a new sweep from its results: "
                          "sweepd launch FILE --warm-start " + str(ref) + ")",
           SWEEP_FINISHED: "finished: its budget is spent (sweepd extend raises it)",
           SWEEP_RUNNING: "running", SWEEP_PAUSED: "paused"}.get(status or "", status or "gone")
    return f"cannot {verb} sweep {ref}: it is {why}"


def _read(conn: Connection, sweep_id: int) -> SweepInfo:
    return SweepInfo.of(conn.execute(select(Sweep.__table__).where(Sweep.id == sweep_id)).one())


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
    """What never changes about a sweep after it is made: its name and spec. Not its budget, which
    `sweepd extend` raises: every budget check reads the sweep's row."""

    id: int
    name: str
    spec: dict[str, Any]

    @property
    def cost_cap(self) -> float:
        return cost_cap(self.spec)

    @classmethod
    def of(cls, row: Sweep) -> SweepConstants:
        return cls(row.id, row.name, row.spec)


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
        row = conn.execute(select(Sweep.name, Sweep.spec).where(Sweep.id == sweep_id)).one()
        known[sweep_id] = SweepConstants(sweep_id, row[0], row[1])
    return known[sweep_id]
