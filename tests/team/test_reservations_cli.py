"""Reservations through the real CLI and agent: a reserved box runs only its holder's trials, and
taking it with --force is on the record."""

from __future__ import annotations

import json

import pytest
from harness import Team

from sweepd.store.boxes import register_box
from sweepd.store.review import list_trials
from sweepd.store.sweeps import find_sweep

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_reserved_box_runs_only_its_holders_trials_and_force_is_recorded(team: Team):
    bobs = team.launch(trials=2, steps=3, name="bobs", user="bob")
    alices = team.launch(trials=2, steps=3, name="alices", user="alice")
    register_box(team.engine, "box-r", 1, "cpu", "ops", "earlier-agent")  # an agent ran here before

    made = team.cli("reserve", "box-r", "--for", "1h", "--note", "paper deadline", user="alice")
    assert made.returncode == 0, made.stderr
    team.agent("box-r", any_sweep=True)
    team.wait_all()
    assert find_sweep(team.engine, alices.id).status == "finished"
    assert list_trials(team.engine, bobs.id) == []  # bob's sweep waited: the box is alice's

    refused = team.cli("reserve", "box-r", "--for", "2h", user="bob")
    assert refused.returncode == 1 and "reserved by alice" in refused.stderr and "--force" in refused.stderr
    taken = team.cli("reserve", "box-r", "--for", "2h", "--force", "--note", "prod incident", user="bob")
    assert taken.returncode == 0, taken.stderr
    forced = json.loads(team.cli("events", "--kind", "reservation_forced", "--json").stdout)
    assert [(e["actor"], e["box"]) for e in forced] == [("bob", "box-r")]
    assert "from alice" in forced[0]["detail"] and "prod incident" in forced[0]["detail"]

    boxes = json.loads(team.cli("boxes", "--json").stdout)
    assert [s["reserved_by"] for s in boxes[0]["slot_views"]] == ["bob"]
    team.agent("box-r", any_sweep=True)
    team.wait_all()
    assert find_sweep(team.engine, bobs.id).status == "finished"
    assert {t.box for t in list_trials(team.engine, bobs.id)} == {"box-r"}
