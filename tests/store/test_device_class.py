"""One hardware class per sweep, on SQLite and PostgreSQL: a sweep records its class at creation
and a slot leases only from sweeps of its own class, queued trials and new suggestions alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sweepd.store import db, leasing
from sweepd.store.boxes import box_status, register_box
from sweepd.store.enqueue import enqueue_trials
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, lease_trial, plan_sweeps
from sweepd.store.models import Sweep
from sweepd.store.sweeps import SweepInfo, create_sweep


def spec(name: str, device: str | None) -> dict:
    settings = {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 0,
                "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}
    if device is not None:
        settings["device"] = device
    return {"name": name, "env": "snake", "source": "test", "settings": settings}


def proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random")


def holder(device: str, slot: int = 0) -> Holder:
    return Holder(agent=f"agent-{device}", box=f"box-{device}", slot=slot, user="tester", device=device)


@pytest.fixture
def engine(db_url, monkeypatch):
    monkeypatch.setattr(leasing, "PLAN_TTL_S", 0.0)
    return db.open_store(db_url)


def test_a_sweep_records_its_class_and_an_old_spec_without_one_is_cpu(engine):
    cuda = create_sweep(engine, spec("g", "cuda"), owner="tester")
    old = create_sweep(engine, spec("c", None), owner="tester")
    with engine.connect() as conn:
        devices = dict(conn.execute(select(Sweep.id, Sweep.device)).all())
    assert devices == {cuda.id: "cuda", old.id: "cpu"}


def test_a_slot_plans_and_leases_only_sweeps_of_its_class(engine):
    cpu = create_sweep(engine, spec("c", "cpu"), owner="tester")
    cuda = create_sweep(engine, spec("g", "cuda"), owner="tester")
    enqueue_trials(engine, cuda.id, [{"x": 10}])
    assert plan_sweeps(engine, holder("cpu")) == [cpu.id]
    assert plan_sweeps(engine, holder("cuda")) == [cuda.id]
    # The queued trial goes to the cuda slot; the cpu slot gets a new suggestion of the cpu sweep.
    assert lease_trial(engine, holder("cpu"), proposer).sweep_id == cpu.id
    got = lease_trial(engine, holder("cuda"), proposer)
    assert (got.sweep_id, got.params) == (cuda.id, {"x": 10})
    assert lease_trial(engine, holder("cuda", 1), proposer).sweep_id == cuda.id  # a suggestion, same class
    # Asked for the other class's sweep by id, a slot gets nothing.
    assert lease_trial(engine, holder("cpu", 1), proposer, sweep_ids=[cuda.id]) is None


def test_box_status_shows_each_boxs_class_and_the_gpu_of_each_slot(engine):
    register_box(engine, "gpubox", 4, "cuda", "ops", "agent-g", gpus=["0", "0", "1", "1"])
    register_box(engine, "laptop", 1, "cpu", "ops", "agent-c")
    boxes = {b.name: b for b in box_status(engine)}
    assert boxes["gpubox"].device == "cuda" and [v.gpu for v in boxes["gpubox"].slot_views] == ["0", "0", "1", "1"]
    assert boxes["laptop"].device == "cpu" and [v.gpu for v in boxes["laptop"].slot_views] == [None]
    register_box(engine, "gpubox", 1, "cpu", "ops", "agent-g2")  # restarted with --slots: a CPU box now
    assert [v.gpu for v in {b.name: b for b in box_status(engine)}["gpubox"].slot_views] == [None]
