"""Runs that ended before their planned training are told the truth: a run cut at the cost cap or
stopped early by the searcher is a point of the front at the steps it trained, never averaged into
its planned config's full runs, and every reader (the store's reads, `sweepd pareto` as a table,
--json, --csv and --png, `sweepd status`) shows its steps and marks it ("cut", "stopped")."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from sweepd.front import config_results, load_front
from sweepd.plot import pareto_series
from sweepd.store import db, review
from sweepd.store.enqueue import FinishedTrial, enqueue_trial, import_trials
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.sweeps import SweepInfo, create_sweep
from sweepd.store.transitions import finish_trial, start_trial

BUDGET = "train.total_timesteps"
PARAMS = [{"name": "train.learning_rate", "space": "log", "min": 1e-4, "max": 1e-1, "center": 1e-2, "integer": False},
          {"name": BUDGET, "space": "log", "min": 1e3, "max": 1e6, "center": 10_000, "integer": True}]
SPEC = {"name": "cut", "env": "snake", "trainer": "command", "source": "test", "command": [], "defaults": {},
        "params": PARAMS,
        "settings": {"searcher": "carbs", "seed": 1, "max_suggestion_cost": 25.0, "max_trials": 0,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize",
                     "budget_param": BUDGET}}
PLAN = {"train.learning_rate": 1e-2, BUDGET: 10_000}
OTHER = {"train.learning_rate": 3e-3, BUDGET: 10_000}


def make_sweep(db_url: str) -> SweepInfo:
    """Trials 1-2: PLAN run in full (two seeds); 3: PLAN cut at the cap after 4,000 steps; 4-5: OTHER
    stopped early by the searcher at the same point (2,000 steps); 6: failed."""
    engine = db.open_store(db_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    import_trials(engine, sweep.id, [
        FinishedTrial(PLAN, 5.0, 20.0, steps=10_240), FinishedTrial(PLAN, 6.0, 22.0, steps=10_240),
        FinishedTrial(PLAN, 3.0, 8.0, truncated=True, steps=4_000),
        FinishedTrial(OTHER, 2.0, 4.0, stopped=True, steps=2_000),
        FinishedTrial(OTHER, 2.4, 4.2, stopped=True, steps=2_000),
        FinishedTrial(OTHER, None, 1.0, status="failed", failure_reason="NaN loss")])
    return sweep


def sweepd(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    return result


def test_the_store_reads_how_a_trial_ended_and_the_steps_it_trained(db_url):
    sweep = make_sweep(db_url)
    engine = db.open_store(db_url)

    for trials in (review.list_trials(engine, sweep.id), review.trial_table(engine, sweep.id)):
        assert [(t.truncated, t.stopped, t.steps) for t in trials] == [
            (False, False, 10_240), (False, False, 10_240), (True, False, 4_000), (True, True, 2_000),
            (True, True, 2_000), (False, False, None)]
    one = review.get_trial(engine, sweep.id, 4)
    assert (one.stopped, one.steps) == (True, 2_000)
    (summary,) = review.sweep_summaries(engine, [sweep.id])
    assert (summary.succeeded, summary.stopped, summary.cut, summary.failed) == (5, 2, 1, 1)


def test_a_trial_the_agent_finished_truncated_reads_as_cut(db_url):
    engine = db.open_store(db_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    enqueue_trial(engine, sweep.id, PLAN)
    lease = lease_trial(engine, Holder(agent="a", box="b", slot=0, user="tester"), lambda sweep, history: None)
    assert lease is not None
    start_trial(engine, lease)
    assert finish_trial(engine, lease, 3.0, 25.0, truncated=True)

    (trial,) = review.trial_table(engine, sweep.id)
    assert (trial.truncated, trial.stopped, trial.steps) == (True, False, None)
    (point,) = load_front(engine, sweep.id).points
    # Cut without reported steps: how far it got is unknown, so not its planned 10,000.
    assert (point.mark, point.steps) == ("cut", None)
    assert review.sweep_summaries(engine, [sweep.id])[0].cut == 1


def test_a_cut_run_is_a_front_point_of_its_own_not_averaged_with_its_plans_full_runs(db_url):
    sweep = make_sweep(db_url)
    result = load_front(db.open_store(db_url), sweep.id)

    points = [(p.trials, p.seeds, p.steps, p.mark, p.score, p.cost) for p in result.points]
    assert points == [((4, 5), 2, 2_000, "stopped", pytest.approx(2.2), pytest.approx(4.1)),
                      ((3,), 1, 4_000, "cut", 3.0, 8.0),
                      ((1, 2), 2, 10_240, "", 5.5, 21.0)]
    assert all(p.params[BUDGET] == 10_000 for p in result.points)  # params stay as planned
    # The grouping is what keeps them apart: the same trials told as full runs average into one config.
    as_full = [replace(t, truncated=False, stopped=False) for t in result.trials]
    assert [r.trials for r in config_results(as_full, BUDGET)] == [(1, 2, 3), (4, 5)]


def test_cut_runs_that_trained_different_steps_are_different_points(sqlite_url):
    engine = db.open_store(sqlite_url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    import_trials(engine, sweep.id, [
        FinishedTrial(PLAN, 3.0, 25.0, truncated=True, steps=4_000),
        FinishedTrial(PLAN, 3.2, 25.0, truncated=True, steps=4_600),
        FinishedTrial(PLAN, 2.0, 25.0, truncated=True),
        FinishedTrial(OTHER, 4.0, 30.0)])
    results = config_results(review.trial_table(engine, sweep.id), BUDGET)
    # Full runs whose trainer reported no steps trained their plan; a cut one without steps is unknown.
    assert [(r.trials, r.steps, r.mark) for r in results] == [
        ((1,), 4_000, "cut"), ((2,), 4_600, "cut"), ((3,), None, "cut"), ((4,), 10_000, "")]


def test_pareto_table_json_csv_and_png_show_steps_and_marks(sqlite_url, tmp_path):
    sweep = make_sweep(sqlite_url)

    records = json.loads(sweepd("pareto", sweep.name, "--json", "--db", sqlite_url).stdout)["front"]
    assert [(r["trials"], r["steps"], r["truncated"], r["stopped"]) for r in records] == [
        ([4, 5], 2_000, True, True), ([3], 4_000, True, False), ([1, 2], 10_240, False, False)]

    table = sweepd("pareto", sweep.name, "--db", sqlite_url, "--csv", str(tmp_path / "front.csv"),
                   "--png", str(tmp_path / "front.png")).stdout
    lines = {line.split("│")[-3].strip(): line for line in table.splitlines() if line.count("│") >= 6}
    assert "2K" in lines["4,5"] and "stopped" in lines["4,5"]
    assert "4K" in lines["3"] and "cut" in lines["3"] and "stopped" not in lines["3"]
    assert "10.2K" in lines["1,2"] and "cut" not in lines["1,2"] and "stopped" not in lines["1,2"]
    assert "cut: ended at the cost cap before its planned steps; stopped: ended early on the searcher's word" in table

    with open(tmp_path / "front.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["trials"], float(r["steps"]), r["truncated"], r["stopped"], r[BUDGET]) for r in rows] == [
        ("4;5", 2_000.0, "true", "true", "10000"), ("3", 4_000.0, "true", "false", "10000"),
        ("1;2", 10_240.0, "false", "false", "10000")]
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_png_draws_cut_and_stopped_points_with_their_own_markers(sqlite_url):
    sweep = make_sweep(sqlite_url)
    result = load_front(db.open_store(sqlite_url), sweep.id)

    series = {s.label: (s.marker, s.trials) for s in pareto_series(result.trials, result.points)}
    assert series == {"trials (2)": ("o", [1, 2]), "cut at the cost cap (1)": ("v", [3]),
                      "stopped early (2)": ("s", [4, 5]), "failed (1)": ("x", [6]),
                      "Pareto front (1)": ("o", [1]), "front, cut at the cost cap (1)": ("v", [3]),
                      "front, stopped early (1)": ("s", [4])}


def test_status_counts_stopped_trials_and_marks_each_row(sqlite_url):
    sweep = make_sweep(sqlite_url)

    text = sweepd("status", sweep.name, "--db", sqlite_url).stdout
    assert "stopped 2  cut 1" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") == 9}
    assert "succeeded (stopped)" in rows["4"] and "2K/10K" in rows["4"]
    assert "succeeded (cut)" in rows["3"] and "4K/10K" in rows["3"]
    assert "(cut)" not in rows["1"] and "(stopped)" not in rows["1"] and "10.2K" in rows["1"]
    assert "stopped: ended early on the searcher's word" in text

    data = json.loads(sweepd("status", sweep.name, "--json", "--db", sqlite_url).stdout)
    assert (data["sweep"]["stopped"], data["sweep"]["cut"]) == (2, 1)
    assert [(t["number"], t["truncated"], t["stopped"], t["steps"]) for t in data["trials"]][2:5] == [
        (3, True, False, 4_000), (4, True, True, 2_000), (5, True, True, 2_000)]
    first = data["front"][0]
    assert (first["trials"], first["steps"], first["truncated"], first["stopped"]) == ([4, 5], 2_000, True, True)

    (listed,) = json.loads(sweepd("status", "--json", "--db", sqlite_url).stdout)
    assert (listed["stopped"], listed["cut"]) == (2, 1)
    assert "stopped" in sweepd("status", "--db", sqlite_url).stdout


def test_a_choice_is_shown_as_written_in_the_pareto_table_json_and_csv(sqlite_url, tmp_path):
    params = [*PARAMS[:1], {"name": "policy.activation", "space": "choice", "min": 0, "max": 1, "center": "tanh",
                            "integer": False, "scale": None, "values": ["tanh", "relu"]},
              {"name": "train.anneal_lr", "space": "choice", "min": 0, "max": 1, "center": True,
               "integer": False, "scale": None, "values": [False, True]}]
    engine = db.open_store(sqlite_url)
    sweep = create_sweep(engine, {**SPEC, "name": "choicy", "params": params,
                                  "settings": {**SPEC["settings"], "budget_param": ""}}, owner="tester")
    config = {"train.learning_rate": 1e-2, "policy.activation": "relu", "train.anneal_lr": False}
    import_trials(engine, sweep.id, [FinishedTrial(config, 5.0, 20.0)])
    engine.dispose()
    table = sweepd("pareto", sweep.name, "--db", sqlite_url, "--csv", str(tmp_path / "front.csv")).stdout
    assert "activation=relu, anneal_lr=false" in table  # the learning rate is the centre's
    records = json.loads(sweepd("pareto", sweep.name, "--json", "--db", sqlite_url).stdout)["front"]
    assert records[0]["params"] == config and records[0]["changed"] == {
        "policy.activation": "relu", "train.anneal_lr": False}
    with open(tmp_path / "front.csv") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["policy.activation"], row["train.anneal_lr"], row["train.learning_rate"]) == ("relu", "false", "0.01")
