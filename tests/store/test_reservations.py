"""Reservations and the box view on SQLite and PostgreSQL: a reserved box runs only its holder's
trials, nobody takes it by accident, and taking it with force is on the record."""

from __future__ import annotations

import pytest

from sweepd.store import boxes, db, leasing
from sweepd.store.audit import events
from sweepd.store.boxes import register_box, slot_owner, slot_owners
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, Lease, lease_trial
from sweepd.store.sweeps import NotFound, SweepInfo, create_sweep, set_sweep_status
from sweepd.store.transitions import start_trial

SPEC = {"name": "toy", "env": "snake", "source": "test",
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 0,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random")


@pytest.fixture
def engine(db_url, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)
    engine = db.open_store(db_url)
    register_box(engine, "gpu-1", 4, "cuda", "ops", "agent-1")
    return engine


def reservations(engine, box: str | None = None) -> list[boxes.ReservationInfo]:
    """Reservations not ended yet (active or future), oldest first, as `sweepd boxes` shows them."""
    return [r for b in boxes.box_status(engine) if box in (None, b.name) for r in b.reservations]


def lease_on(engine, slot: int) -> Lease | None:
    return lease_trial(engine, Holder(agent="agent-1", box="gpu-1", slot=slot, user="ops"), proposer)


def test_slot_owners_follow_reservation_order():
    assert slot_owners([("alice", 2), ("bob", 1)]) == [(0, 2, "alice"), (2, 1, "bob")]
    ranges = slot_owners([("alice", None), ("bob", 1)])
    assert slot_owner(ranges, 3) == "alice" and len(ranges) == 1


def test_a_reserved_box_runs_only_its_holders_trials(engine):
    bob = create_sweep(engine, SPEC, owner="bob", name="bob-sweep")
    boxes.reserve_box(engine, "gpu-1", "alice", 4 * 3600, note="ablation for the paper")
    assert all(lease_on(engine, slot) is None for slot in range(4))
    alice = create_sweep(engine, SPEC, owner="alice", name="alice-sweep")
    leases = [lease_on(engine, slot) for slot in range(4)]
    assert {lease.sweep_id for lease in leases} == {alice.id}
    boxes.release_box(engine, "gpu-1", "alice")
    set_sweep_status(engine, alice.id, "paused", "alice")
    assert lease_on(engine, 0).sweep_id == bob.id


def test_reserving_slots_someone_else_holds_needs_force_and_a_reason(engine):
    boxes.reserve_box(engine, "gpu-1", "alice", 3600, slots=3, note="deadline")
    boxes.reserve_box(engine, "gpu-1", "bob", 3600, slots=1)  # the one slot left: no conflict
    with pytest.raises(boxes.ReservationConflict, match="reserved by alice") as conflict:
        boxes.reserve_box(engine, "gpu-1", "carol", 3600, slots=2)
    assert [h.user for h in conflict.value.holders] == ["alice", "bob"]
    with pytest.raises(ValueError, match="--note"):
        boxes.reserve_box(engine, "gpu-1", "carol", 3600, slots=2, force=True)
    taken = boxes.reserve_box(engine, "gpu-1", "carol", 3600, slots=2, force=True, note="prod incident")
    assert [r.user for r in reservations(engine, "gpu-1")] == ["carol"]
    forced = events(engine, kind="reservation_forced")
    assert len(forced) == 2 and all(e.actor == "carol" and "prod incident" in e.detail for e in forced)
    assert {"alice", "bob"} == {e.detail.split(" from ")[1].split(" ")[0] for e in forced}
    assert taken.user == "carol" and taken.slots == 2


def test_a_new_reservation_by_the_same_user_replaces_the_old(engine):
    boxes.reserve_box(engine, "gpu-1", "alice", 3600, slots=1)
    boxes.reserve_box(engine, "gpu-1", "alice", 7200, slots=4)
    (only,) = reservations(engine, "gpu-1")
    assert only.slots == 4 and only.until - only.starts_at == pytest.approx(7200)


def test_releasing_someone_elses_reservation_needs_force(engine):
    boxes.reserve_box(engine, "gpu-1", "alice", 3600)
    with pytest.raises(ValueError, match="holds no reservation"):
        boxes.release_box(engine, "gpu-1", "bob")
    ended = boxes.release_box(engine, "gpu-1", "bob", force=True, note="alice is on leave")
    assert [r.user for r in ended] == ["alice"] and reservations(engine) == []
    assert "alice is on leave" in events(engine, kind="reservation_forced")[-1].detail


def test_unknown_box_and_bad_slot_counts_are_refused(engine):
    with pytest.raises(NotFound, match="known: gpu-1"):
        boxes.reserve_box(engine, "gpu-9", "alice", 3600)
    with pytest.raises(ValueError, match="has 4 slot"):
        boxes.reserve_box(engine, "gpu-1", "alice", 3600, slots=5)


def test_box_status_shows_each_slots_holder_and_reservation(engine):
    boxes.reserve_box(engine, "gpu-1", "alice", 3600, slots=2, note="deadline")
    create_sweep(engine, SPEC, owner="alice", name="alice-sweep")
    lease = lease_on(engine, 1)
    start_trial(engine, lease)
    (box,) = boxes.box_status(engine)
    assert (box.name, box.slots, box.agent) == ("gpu-1", 4, "agent-1") and box.seen_ago >= 0
    slot = box.slot_views[1]
    assert (slot.user, slot.sweep, slot.trial, slot.status) == ("alice", "alice-sweep", lease.number, "running")
    assert slot.since is not None and slot.reserved_by == "alice"
    assert box.slot_views[2].reserved_by is None and box.slot_views[2].trial is None
    assert [r.note for r in box.reservations] == ["deadline"]
