"""Boxes and who may use them: each box's agent and heartbeat, reservations, and the slot map
`sweepd boxes` prints.

A reservation gives a user some slots of a box for a while. Active reservations on a box take
its slot indices in the order they were made (the first reservation of 2 slots holds slots 0-1,
the next one of 1 slot holds slot 2; `slots` None takes every remaining slot), so an agent asking
for work on (box, slot) learns in one small query whose trials it may start there
(`slot_reserved_by`, called inside the lease transaction).

Nobody takes a reserved box by accident: reserving slots another user holds, or releasing
another user's reservation, needs `force` and a note, and leaves a `reservation_forced` event
naming who took what from whom and why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.orm import Session

from sweepd.store.audit import record_event
from sweepd.store.dialect import clock, epoch_now
from sweepd.store.models import ACTIVE, Box, InvalidRequest, Reservation, Sweep, Trial, check_length
from sweepd.store.sweeps import NotFound


class ReservationConflict(ValueError):
    """The slots asked for are reserved by someone else; `holders` names them."""

    def __init__(self, box: str, holders: list[ReservationInfo], message: str) -> None:
        super().__init__(message)
        self.box, self.holders = box, holders


@dataclass(frozen=True)
class ReservationInfo:
    id: int
    box: str
    user: str
    slots: int | None      # None: every slot of the box
    starts_at: float
    until: float
    note: str | None


@dataclass(frozen=True)
class SlotView:
    """One slot of a box now: the trial in it (if any) and the reservation covering it (if any)."""

    slot: int
    gpu: str | None             # the GPU it runs on (a CUDA_VISIBLE_DEVICES entry); None on a CPU box
    user: str | None            # the owner of the sweep whose trial runs here
    sweep: str | None
    sweep_id: int | None
    trial: int | None           # the trial's number in its sweep
    trial_id: int | None
    status: str | None          # leased | running
    since: float | None         # when the trial started (or was leased), DB clock
    heartbeat_age: float | None  # seconds since its agent last heartbeated the lease
    reserved_by: str | None
    reserved_until: float | None


@dataclass(frozen=True)
class BoxStatus:
    """A box as `sweepd boxes` shows it."""

    name: str
    slots: int
    device: str
    owner: str
    agent: str | None
    state: str
    last_seen: float
    seen_ago: float
    slot_views: tuple[SlotView, ...]
    reservations: tuple[ReservationInfo, ...]


def register_box(engine: Engine, name: str, slots: int, device: str, owner: str, agent: str,
                 gpus: list[str] | None = None, serves: list[int] | None = None) -> None:
    """Create or update this box's row; the agent that calls it becomes the box's agent. `device` is
    its hardware class ("cpu" or "cuda"), `gpus` the GPU of each slot on a cuda box, `serves` the
    sweep ids the agent leases from (None: every sweep), which `live_agent` reports to `launch`.

    Names too long for their columns are refused here, once, with one line: on PostgreSQL they would
    fail every later claim, which an agent cannot tell from a database outage."""
    check_length(Box.name, name, "the box name (--box)")
    check_length(Trial.lock_owner, agent, "the agent id (the box name, pid and a tag: use a shorter --box)")
    check_length(Box.owner, owner, "the user name")
    with Session(engine) as session, session.begin():
        now = clock(session)
        row = session.scalar(select(Box).where(Box.name == name).with_for_update())
        if row is None:
            session.add(Box(name=name, slots=slots, device=device, owner=owner, agent=agent, last_seen=now,
                            state="online", gpus=list(gpus) if gpus else None, serves=_serves(serves)))
        else:
            row.slots, row.device, row.owner, row.agent, row.last_seen, row.state = (
                slots, device, owner, agent, now, "online")
            row.gpus = list(gpus) if gpus else None
            row.serves = _serves(serves)
        record_event(session, now, owner, "agent_started", f"{agent}: {slots} {device} slots", box=name)


def heartbeat_box(engine: Engine, name: str, agent: str, state: str = "online", *,
                  serves: list[int] | None = None) -> None:
    """Mark the box seen now (an agent is alive on it), with the sweeps its agent serves (None: all)."""
    with Session(engine) as session, session.begin():
        session.execute(update(Box).where(Box.name == name, Box.agent == agent)
                        .values(last_seen=epoch_now(), state=state, serves=_serves(serves)))


def _serves(sweep_ids: list[int] | None) -> list[int] | None:
    return sorted(set(sweep_ids)) if sweep_ids is not None else None


@dataclass(frozen=True)
class LiveAgent:
    """The agent heartbeating a box, its hardware class and the sweeps it serves (None: every sweep)."""

    agent: str
    serves: tuple[int, ...] | None
    device: str = "cpu"

    def serves_sweep(self, sweep_id: int, device: str) -> bool:
        """Whether this agent leases trials of sweep `sweep_id`, whose class is `device`."""
        return self.device == device and (self.serves is None or sweep_id in self.serves)


def live_agent(engine: Engine, box: str, within: float) -> LiveAgent | None:
    """The agent that heartbeated `box` online in the last `within` seconds, if any."""
    with Session(engine) as session:
        now = clock(session)
        row = session.scalar(select(Box).where(Box.name == box, Box.state == "online"))
        if row is None or row.agent is None or now - row.last_seen > within:
            return None
        return LiveAgent(row.agent, tuple(int(i) for i in row.serves) if row.serves is not None else None,
                         row.device)


def slot_owners(reservations: list[tuple[str, int | None]]) -> list[tuple[int, float, str]]:
    """(first slot, slot count, user) for a box's active reservations given in the order they were
    made: each takes the next free slot indices; `None` slots takes every slot left."""
    ranges: list[tuple[int, float, str]] = []
    cursor = 0
    for user, slots in reservations:
        if slots is None:
            ranges.append((cursor, math.inf, user))
            break  # it holds everything left; later reservations cover no slot until it ends
        ranges.append((cursor, slots, user))
        cursor += slots
    return ranges


def slot_owner(ranges: list[tuple[int, float, str]], slot: int) -> str | None:
    """The user whose range (from `slot_owners`) covers `slot`, if any."""
    return next((user for first, count, user in ranges if first <= slot < first + count), None)


def slot_reserved_by(conn: Connection, box: str, slot: int) -> str | None:
    """The user whose active reservation covers (box, slot) now, if any."""
    rows = conn.execute(select(Reservation.user, Reservation.slots)
                        .where(Reservation.box == box, Reservation.until > epoch_now(),
                               Reservation.starts_at <= epoch_now())
                        .order_by(Reservation.id)).all()
    return slot_owner(slot_owners([(user, slots) for user, slots in rows]), slot) if rows else None


def _info(row: Reservation) -> ReservationInfo:
    return ReservationInfo(id=row.id, box=row.box, user=row.user, slots=row.slots, starts_at=row.starts_at,
                           until=row.until, note=row.note)


def _active(session: Session, box: str, now: float) -> list[Reservation]:
    return list(session.scalars(select(Reservation).where(Reservation.box == box, Reservation.until > now,
                                                          Reservation.starts_at <= now)
                                .order_by(Reservation.id).with_for_update()))


def _find_box(session: Session, name: str) -> Box:
    row = session.scalar(select(Box).where(Box.name == name))
    if row is None:
        names = session.scalars(select(Box.name).order_by(Box.name)).all()
        raise NotFound(f"no box '{name}' (a box appears when `sweepd agent` first runs on it)"
                       + (f"; known: {', '.join(names)}" if names else ""))
    return row


def _describe(row: Reservation | ReservationInfo) -> str:
    slots = "all slots" if row.slots is None else f"{row.slots} slot(s)"
    return f"{row.user} ({slots}" + (f": {row.note}" if row.note else "") + ")"


def reserve_box(engine: Engine, box: str, user: str, seconds: float, *, slots: int | None = None,
                note: str = "", force: bool = False) -> ReservationInfo:
    """Reserve `slots` (None: all) of `box` for `user` for `seconds` from now.

    The user's own earlier reservation of the box is replaced. Slots held by another user's
    reservation raise ReservationConflict unless `force`, which ends those reservations and records
    who took the box from whom and why (`note`, required with `force`).
    """
    if seconds <= 0:
        raise InvalidRequest(f"a reservation must last more than 0 s, got {seconds:g} s")
    if force and not note.strip():
        raise InvalidRequest("taking a box reserved by someone else needs a reason: add --note '...'")
    check_length(Reservation.user, user, "the user name")
    with Session(engine) as session, session.begin():
        now = clock(session)
        row = _find_box(session, box)
        if slots is not None and not 1 <= slots <= row.slots:
            raise InvalidRequest(f"box {box} has {row.slots} slot(s); cannot reserve {slots}")
        active = _active(session, box, now)
        mine = [r for r in active if r.user == user]
        others = [r for r in active if r.user != user]
        wanted = row.slots if slots is None else slots
        held = sum(row.slots if r.slots is None else r.slots for r in others)
        if others and held + wanted > row.slots:
            if not force:
                holders = "; ".join(f"{_describe(r)} until {_clock(r.until)}" for r in others)
                raise ReservationConflict(box, [_info(r) for r in others],
                                          f"box {box} is reserved by {holders}: ask them, or take it with "
                                          f"--force --note 'why'")
            for other in others:
                other.until = now
                record_event(session, now, user, "reservation_forced",
                             f"{user} took {box} from {_describe(other)}: {note}", box=box)
        for old in mine:
            old.until = now  # a new reservation by the same user replaces the old one
        new = Reservation(box=box, user=user, slots=slots, starts_at=now, until=now + seconds, note=note or None)
        session.add(new)
        session.flush()
        what = f"{'all' if slots is None else slots} slot(s) for {seconds / 3600:.3g} h"
        record_event(session, now, user, "box_reserved", what + (f": {note}" if note else ""), box=box)
        return _info(new)


def release_box(engine: Engine, box: str, user: str, *, force: bool = False, note: str = "") -> list[ReservationInfo]:
    """End `user`'s reservations of `box` now; with `force`, everyone's (recorded with `note`)."""
    if force and not note.strip():
        raise InvalidRequest("releasing someone else's reservation needs a reason: add --note '...'")
    with Session(engine) as session, session.begin():
        now = clock(session)
        _find_box(session, box)
        active = _active(session, box, now)
        ending = [r for r in active if r.user == user or force]
        if not ending:
            holders = ", ".join(_describe(r) for r in active)
            raise InvalidRequest(f"{user} holds no reservation of box {box}"
                             + (f" (held by {holders}; --force --note 'why' to end theirs)" if holders else ""))
        for row in ending:
            row.until = now
            if row.user == user:
                record_event(session, now, user, "box_released", _describe(row), box=box)
            else:
                record_event(session, now, user, "reservation_forced",
                             f"{user} released {_describe(row)} on {box}: {note}", box=box)
        return [_info(r) for r in ending]


def box_status(engine: Engine) -> list[BoxStatus]:
    """Every box, each slot's holder (user, sweep, trial, since) and reservation, and its last heartbeat."""
    with Session(engine) as session:
        now = clock(session)
        boxes = session.scalars(select(Box).order_by(Box.name)).all()
        held = session.execute(
            select(Trial.box, Trial.slot, Trial.id, Trial.number, Trial.status, Trial.started_at, Trial.heartbeat_at,
                   Sweep.name, Sweep.owner, Sweep.id.label("sweep_id"))
            .join(Sweep, Sweep.id == Trial.sweep_id).where(Trial.status.in_(ACTIVE))).all()
        reservations = session.scalars(select(Reservation).where(Reservation.until > now)
                                       .order_by(Reservation.id)).all()
    by_slot = {(r.box, r.slot): r for r in held}
    out = []
    for box in boxes:
        mine = [r for r in reservations if r.box == box.name]
        ranges = slot_owners([(r.user, r.slots) for r in mine if r.starts_at <= now])
        until = {r.user: r.until for r in mine}
        views = []
        for slot in range(box.slots):
            trial = by_slot.get((box.name, slot))
            user = slot_owner(ranges, slot)
            views.append(SlotView(
                slot=slot, gpu=box.gpus[slot] if box.gpus and slot < len(box.gpus) else None,
                user=trial.owner if trial else None, sweep=trial.name if trial else None,
                sweep_id=trial.sweep_id if trial else None,
                trial=trial.number if trial else None, trial_id=trial.id if trial else None,
                status=trial.status if trial else None,
                since=(trial.started_at or trial.heartbeat_at) if trial else None,
                heartbeat_age=now - trial.heartbeat_at if trial and trial.heartbeat_at else None,
                reserved_by=user, reserved_until=until.get(user) if user else None))
        out.append(BoxStatus(name=box.name, slots=box.slots, device=box.device, owner=box.owner, agent=box.agent,
                             state=box.state, last_seen=box.last_seen, seen_ago=now - box.last_seen,
                             slot_views=tuple(views), reservations=tuple(_info(r) for r in mine)))
    return out


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))

