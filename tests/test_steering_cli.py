"""Steering a sweep through the real `sweepd` command line, on SQLite and PostgreSQL: pause and
resume (running trials finish, or are re-queued), stop is final, extend raises a budget, enqueue
runs your own configs first.

The trials are held through the store's own leasing functions, as an agent holds them, so that
each test sees exactly what a command did to a trial in flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from toy import write_toy_sweep

from sweepd.advisor import propose
from sweepd.store import db
from sweepd.store.audit import events
from sweepd.store.enqueue import enqueue_trials
from sweepd.store.history import Evidence, Proposal, sweep_history
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep, find_sweep
from sweepd.store.transitions import fail_trial, finish_trial, heartbeat_trial, start_trial

SPEC = {"name": "toy", "env": "snake", "source": "test",
        "settings": {"searcher": "random", "seed": 3, "max_suggestion_cost": 10.0, "max_trials": 3,
                     "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def counting_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    return Proposal(params={"x": len(history.observations) + len(history.pending)}, kind="random",
                    predicted_cost=1.0)


def holder(slot: int) -> Holder:
    """A distinct slot per lease: each asks afresh, never from another slot's cached plan."""
    return Holder(agent="agent-a", box="box-1", slot=slot, user="tester")


def sweepd(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`sweepd ARGS --db URL` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args, "--db", url], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.open_store(db_url)
    yield engine
    engine.dispose()


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_pause_lets_running_trials_finish_and_resume_runs_the_sweep_again(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(0), counting_proposer)
    assert start_trial(engine, lease)
    paused = sweepd(url_of(engine), "pause", sweep.name)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"sweep {sweep.name} paused; running trials finish"
    assert find_sweep(engine, sweep.id).status == "paused"
    assert lease_trial(engine, holder(1), counting_proposer) is None  # no new leases
    assert heartbeat_trial(engine, lease, 30.0) and finish_trial(engine, lease, 1.0, 2.0)  # it finishes, recorded
    assert list_trials(engine, sweep.id)[0].status == "succeeded"
    resumed = sweepd(url_of(engine), "resume", sweep.name)
    assert resumed.returncode == 0 and resumed.stdout.strip() == f"sweep {sweep.name} running", resumed.stderr
    assert lease_trial(engine, holder(2), counting_proposer).number == 2
    assert [e.kind for e in events(engine, sweep_id=sweep.id) if e.kind.startswith("sweep_")] == [
        "sweep_created", "sweep_paused", "sweep_running"]


def test_pause_requeue_takes_running_trials_back_and_resume_runs_them(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    lease = lease_trial(engine, holder(0), counting_proposer)
    assert start_trial(engine, lease) and heartbeat_trial(engine, lease, 30.0)
    paused = sweepd(url_of(engine), "pause", sweep.name, "--requeue")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"sweep {sweep.name} paused; re-queued 1 running trial(s) [1]"
    trial = list_trials(engine, sweep.id)[0]
    assert (trial.status, trial.attempts, trial.box) == ("queued", 0, None)  # a pause uses up no retry
    assert not heartbeat_trial(engine, lease, 30.0)  # its agent learns the lease is gone and stops it
    assert lease_trial(engine, holder(1), counting_proposer) is None
    assert sweepd(url_of(engine), "resume", sweep.name).returncode == 0
    again = lease_trial(engine, holder(2), counting_proposer)
    assert (again.number, again.attempt, again.params) == (1, 1, lease.params)


def test_stop_is_final_resume_and_retry_leave_it_stopped(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    stopped = sweepd(url_of(engine), "stop", sweep.name)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"sweep {sweep.name} stopped (final)"
    resumed = sweepd(url_of(engine), "resume", sweep.name)
    assert resumed.returncode == 1
    assert resumed.stderr.strip() == (f"error: cannot resume sweep {sweep.name}: it is stopped, which is final "
                                      f"(start a new sweep from its results: sweepd launch FILE --warm-start "
                                      f"{sweep.name})")
    retried = sweepd(url_of(engine), "retry", sweep.name)
    assert retried.returncode == 0 and retried.stdout.strip().endswith("; status stopped")
    assert find_sweep(engine, sweep.id).status == "stopped"
    assert lease_trial(engine, holder(0), counting_proposer) is None


def test_help_says_stop_is_final_and_pause_is_resumable():
    stop = subprocess.run([sys.executable, "-m", "sweepd.cli", "stop", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    pause = subprocess.run([sys.executable, "-m", "sweepd.cli", "pause", "--help"], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "200"})
    assert "Final: it cannot be resumed" in " ".join(stop.stdout.split())
    assert "`sweepd resume` continues it" in " ".join(pause.stdout.split())


def run_to_the_end(engine: Engine, sweep: SweepInfo, first_slot: int, cost: float) -> list[int]:
    """Lease and finish trials on this one engine until the sweep takes no more; their numbers."""
    leases = []
    while (lease := lease_trial(engine, holder(first_slot + len(leases)), counting_proposer)) is not None:
        leases.append(lease)
    for lease in leases:
        assert start_trial(engine, lease) and finish_trial(engine, lease, 1.0, cost)
    return [lease.number for lease in leases]


def test_extend_trials_resumes_a_finished_sweep_on_a_long_lived_engine(engine):
    sweep = create_sweep(engine, {**SPEC, "settings": {**SPEC["settings"], "max_trials": 2}}, owner="tester")
    assert run_to_the_end(engine, sweep, 0, 1.0) == [1, 2]
    assert find_sweep(engine, sweep.id).status == "finished"
    extended = sweepd(url_of(engine), "extend", sweep.name, "--trials", "2")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.strip() == f"sweep {sweep.name}: budget 4 trials, -; running"
    lease = lease_trial(engine, holder(10), counting_proposer)  # the same engine, its caches warm
    assert (lease.number, lease.max_trials) == (3, 4)
    assert start_trial(engine, lease) and finish_trial(engine, lease, 1.0, 1.0)
    assert run_to_the_end(engine, sweep, 20, 1.0) == [4]
    assert find_sweep(engine, sweep.id).status == "finished"
    assert [e.detail for e in events(engine, sweep_id=sweep.id, kind="sweep_extended")] == [
        "+2 trials (now 4 trials, 0 s)"]


def test_extend_cost_resumes_a_sweep_whose_cost_budget_is_spent(engine):
    # A trial in flight counts at its most (the cap, 12.5 s, + 5 s grace): 40 s cover two at once,
    # and after two that cost 12 s each (24 s) not a third.
    sweep = create_sweep(engine, {**SPEC, "settings": {**SPEC["settings"], "max_trials": 0,
                                                       "max_total_cost": 40.0}}, owner="tester")
    assert run_to_the_end(engine, sweep, 0, 12.0) == [1, 2]
    assert find_sweep(engine, sweep.id).status == "finished"
    extended = sweepd(url_of(engine), "extend", sweep.name, "--cost", "1m")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.strip() == f"sweep {sweep.name}: budget - trials, 100 s; running"
    lease = lease_trial(engine, holder(10), counting_proposer)
    assert (lease.number, lease.max_total_cost) == (3, 100.0)


def test_extend_refuses_what_it_cannot_do_in_one_line(engine):
    sweep = create_sweep(engine, SPEC, owner="tester")
    no_cost = sweepd(url_of(engine), "extend", sweep.name, "--cost", "4h")
    assert (no_cost.returncode, no_cost.stderr.strip()) == (
        1, f"error: sweep {sweep.name} has no max_total_cost budget (unlimited): nothing to extend")
    bad = sweepd(url_of(engine), "extend", sweep.name, "--cost", "4 hours")
    assert (bad.returncode, bad.stderr.strip()) == (
        2, "error: cannot read duration '4 hours': use e.g. 4h, 90m, 1h30m, 2d")
    assert sweepd(url_of(engine), "stop", sweep.name).returncode == 0
    stopped = sweepd(url_of(engine), "extend", sweep.name, "--trials", "1")
    assert stopped.returncode == 1 and "it is stopped, which is final" in stopped.stderr
    assert find_sweep(engine, sweep.id).max_trials == 3


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("4h", 14400.0),
                                               ("1h30m", 5400.0), ("2d", 172800.0)])
def test_extend_reads_durations(tmp_path, text, seconds):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    engine = db.open_store(url)
    sweep = create_sweep(engine, {**SPEC, "settings": {**SPEC["settings"], "max_total_cost": 60.0}}, owner="tester")
    assert sweepd(url, "extend", sweep.name, "--cost", text).returncode == 0
    assert find_sweep(engine, sweep.id).max_total_cost == 60.0 + seconds
    engine.dispose()


def launch_toy(tmp_path, url: str, trials: int = 4) -> str:
    """A toy sweep with two params (train.lr, log; train.batch, pow2), queued without agents; its name."""
    path = write_toy_sweep(tmp_path, trials, 3)
    path.write_text(path.read_text() + '\n[search.train.batch]\nspace = "pow2"\nmin = 16\nmax = 256\ncenter = 64\n')
    done = sweepd(url, "launch", str(path), "--detach", "--name", "toy", "--no-wandb")
    assert done.returncode == 0, done.stderr
    return "toy"


def test_enqueue_runs_given_configs_first_with_centres_for_params_left_out(engine, tmp_path):
    name = launch_toy(tmp_path, url_of(engine))
    queued = sweepd(url_of(engine), "enqueue", name, "train.lr=3e-3")
    assert queued.returncode == 0 and queued.stdout.strip() == "sweep toy: queued 1 config(s)", queued.stderr
    lease = lease_trial(engine, holder(0), propose)  # the agent's own proposer: a queued trial comes first
    assert (lease.number, lease.kind, lease.params) == (1, "user", {"train.lr": 3e-3, "train.batch": 64})
    assert start_trial(engine, lease) and finish_trial(engine, lease, 0.5, 2.0)
    history = sweep_history(engine, lease.sweep_id)
    assert [(o.params, o.score) for o in history.observations] == [({"train.lr": 3e-3, "train.batch": 64}, 0.5)]
    assert lease_trial(engine, holder(1), propose).kind != "user"  # then the searcher's own


def test_enqueue_reads_many_configs_from_json_and_csv(engine, tmp_path):
    name = launch_toy(tmp_path, url_of(engine), trials=5)
    (tmp_path / "c.json").write_text('[{"train.lr": 0.002}, {"params": {"train.lr": 0.05, "train.batch": 128}}]')
    (tmp_path / "c.csv").write_text("train.batch,train.lr\n32,\n256,0.09\n")
    assert sweepd(url_of(engine), "enqueue", name, "--from-json", str(tmp_path / "c.json")).returncode == 0
    done = sweepd(url_of(engine), "enqueue", name, "--from-csv", str(tmp_path / "c.csv"))
    assert done.returncode == 0 and done.stdout.strip() == "sweep toy: queued 2 config(s)", done.stderr
    trials = list_trials(engine, find_sweep(engine, name).id)
    assert [(t.kind, t.status, t.params) for t in trials] == [
        ("user", "queued", {"train.lr": 0.002, "train.batch": 64}),
        ("user", "queued", {"train.lr": 0.05, "train.batch": 128}),
        ("user", "queued", {"train.lr": 0.01, "train.batch": 32}),
        ("user", "queued", {"train.lr": 0.09, "train.batch": 256})]


@pytest.mark.parametrize(("args", "files", "message"), [
    (["train.lrr=0.01"], {}, "train.lrr: not a param of this sweep (its params: train.batch, train.lr)"),
    (["train.lr=5"], {}, "train.lr: '5' is outside the param's range [0.001, 0.1]"),
    (["train.lr=fast"], {}, "train.lr: 'fast' is not a number"),
    (["train.batch=48"], {}, "train.batch: '48' is not a power of two"),
    (["lr"], {}, "'lr': write a param as name=value, e.g. train.batch=64"),
    (["--from-csv", "{tmp}/bad.csv"], {"bad.csv": "train.lr\n0.01\nnan\n"},
     "{tmp}/bad.csv:3: train.lr: 'nan' is not a finite number"),
    (["--from-json", "{tmp}/bad.json"], {"bad.json": '[{"train.lr": 0.01}, {"train.lr": true}]'},
     "{tmp}/bad.json: entry 2: train.lr: True is not a number"),
])
def test_enqueue_refuses_a_bad_name_or_value_in_one_line_and_queues_nothing(tmp_path, args, files, message):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    name = launch_toy(tmp_path, url)
    for file, text in files.items():
        (tmp_path / file).write_text(text)
    done = sweepd(url, "enqueue", name, *[a.format(tmp=tmp_path) for a in args])
    assert (done.returncode, done.stderr.strip()) == (2, "error: " + message.format(tmp=tmp_path))
    engine = db.open_store(url)
    assert list_trials(engine, find_sweep(engine, name).id) == []
    engine.dispose()


def test_enqueue_refuses_configs_past_max_trials(engine, tmp_path):
    name = launch_toy(tmp_path, url_of(engine), trials=1)
    done = sweepd(url_of(engine), "enqueue", name, "--from-csv", str(tmp_path / "two.csv"))
    assert done.returncode == 2  # the file is not there yet: one line naming it
    (tmp_path / "two.csv").write_text("train.lr\n0.01\n0.02\n")
    done = sweepd(url_of(engine), "enqueue", name, "--from-csv", str(tmp_path / "two.csv"))
    assert (done.returncode, done.stderr.strip()) == (
        1, "error: sweep toy has 0 of its 1 trials: 2 more do not fit (sweepd extend toy --trials 1 first)")
    assert list_trials(engine, find_sweep(engine, name).id) == []


def test_warm_start_seeds_a_new_sweep_with_another_sweeps_results_beside_its_budget(engine, tmp_path):
    launch_toy(tmp_path, url_of(engine))
    for slot, score in enumerate((0.25, 0.75)):
        lease = lease_trial(engine, holder(slot), propose)
        assert start_trial(engine, lease) and finish_trial(engine, lease, score, 2.0)
    path = write_toy_sweep(tmp_path, 3, 3, name="wider")
    path.write_text(path.read_text() + '\n[search.train.batch]\nspace = "pow2"\nmin = 8\nmax = 512\ncenter = 64\n')
    done = sweepd(url_of(engine), "launch", str(path), "--detach", "--name", "wider", "--warm-start", "toy",
                  "--no-wandb")
    assert done.returncode == 0, done.stderr
    assert "warm start: 2 result(s) of sweep toy imported" in done.stdout
    wider = find_sweep(engine, "wider")
    assert (wider.status, wider.max_trials) == ("running", 5)  # 3 of its own, beside the 2 imported
    old = list_trials(engine, find_sweep(engine, "toy").id)
    new = list_trials(engine, wider.id)
    assert [(t.kind, t.status, t.params, t.score) for t in new] == [
        ("imported", "succeeded", t.params, t.score) for t in old]
    assert len(sweep_history(engine, wider.id).observations) == 2  # the searcher sees them
    assert lease_trial(engine, holder(5), propose).number == 3  # and they are not run again


def test_warm_start_refuses_a_sweep_that_searched_a_param_the_new_one_lacks(engine, tmp_path):
    launch_toy(tmp_path, url_of(engine))
    narrow = write_toy_sweep(tmp_path, 3, 3, name="narrow")  # train.lr only
    done = sweepd(url_of(engine), "launch", str(narrow), "--detach", "--name", "narrow", "--warm-start", "toy",
                  "--no-wandb")
    assert (done.returncode, done.stderr.strip()) == (
        1, "error: --warm-start toy: sweep toy searched train.batch, which this sweep does not: its results "
           "depend on values this sweep cannot set")
    with pytest.raises(LookupError):
        find_sweep(engine, "narrow")  # nothing written


def test_warm_start_gives_a_param_the_old_sweep_did_not_search_its_centre(engine, tmp_path):
    narrow = write_toy_sweep(tmp_path, 3, 3, name="narrow")
    assert sweepd(url_of(engine), "launch", str(narrow), "--detach", "--name", "narrow", "--no-wandb").returncode == 0
    lease = lease_trial(engine, holder(0), propose)
    assert start_trial(engine, lease) and finish_trial(engine, lease, 0.5, 2.0)
    launch_toy(tmp_path, url_of(engine))  # writes toy.toml: train.lr and train.batch
    done = sweepd(url_of(engine), "launch", str(tmp_path / "toy.toml"), "--detach", "--name", "both",
                  "--warm-start", "narrow", "--no-wandb")
    assert done.returncode == 0, done.stderr
    (imported,) = list_trials(engine, find_sweep(engine, "both").id)
    assert imported.params == {**lease.params, "train.batch": 64}


def test_best_prints_the_seed_averaged_best_config_at_a_cost_as_json_args_and_a_sweep_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    launch_toy(tmp_path, url, trials=10)
    engine = db.open_store(url)
    sweep = find_sweep(engine, "toy")
    cheap, dear, cut = ({"train.lr": 0.004, "train.batch": 32}, {"train.lr": 0.02, "train.batch": 128},
                        {"train.lr": 0.05, "train.batch": 16})
    enqueue_trials(engine, sweep.id, [cheap, dear, cheap, cut])
    for slot, (score, cost, truncated) in enumerate([(0.5, 10.0, False), (0.8, 100.0, False), (0.7, 12.0, False),
                                                     (0.95, 50.0, True)]):
        lease = lease_trial(engine, holder(slot), propose)
        assert start_trial(engine, lease) and finish_trial(engine, lease, score, cost, truncated=truncated)
    overall = json.loads(sweepd(url, "best", "toy", "--format", "json").stdout)
    assert (overall["params"], overall["score"], overall["trials"]) == (dear, 0.8, [2])  # the cut run is no rerun
    at = sweepd(url, "best", "toy", "--at-cost", "1m", "--format", "json")
    chosen = json.loads(at.stdout)
    assert (chosen["params"], chosen["seeds"], chosen["trials"]) == (cheap, 2, [1, 3])
    assert chosen["score"] == pytest.approx(0.6) and chosen["cost"] == pytest.approx(11.0)
    assert chosen["config"]["train"]["steps"] == 3 and chosen["config"]["train"]["lr"] == 0.004
    args = sweepd(url, "best", "toy", "--at-cost", "60", "--format", "args")
    assert args.stdout.strip() == "--train.batch 32 --train.lr 0.004"
    rerun = tmp_path / "rerun.toml"
    rerun.write_text(sweepd(url, "best", "toy", "--at-cost", "60").stdout)
    launched = sweepd(url, "launch", str(rerun), "--detach", "--name", "rerun", "--no-wandb")
    assert launched.returncode == 0, launched.stderr
    again = lease_trial(engine, holder(9), propose, sweep_ids=[find_sweep(engine, "rerun").id])
    assert again.max_trials == 1 and again.params == pytest.approx(cheap, rel=1e-12)  # its first trial: the best
    none = sweepd(url, "best", "toy", "--at-cost", "5s")
    assert (none.returncode, none.stderr.strip()) == (1, "error: sweep toy has no full-length result at or under 5 s")
    engine.dispose()


def test_export_reads_a_checkpoint_from_the_shared_artifact_folder_another_box_wrote(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = db.open_store(url)
    sweep = create_sweep(engine, SPEC, owner="tester")
    written = tmp_path / "box-a" / "artifacts" / sweep.name / "trial-1" / "policy.pt"  # as the agent's box saw it
    lease = lease_trial(engine, holder(0), counting_proposer)
    assert start_trial(engine, lease) and finish_trial(engine, lease, 1.0, 2.0, metrics={"checkpoint": str(written)})
    shared = tmp_path / "mnt" / "team-artifacts"  # the same folder, mounted elsewhere on this box
    (shared / sweep.name / "trial-1").mkdir(parents=True)
    (shared / sweep.name / "trial-1" / "policy.pt").write_bytes(b"weights")
    lost = sweepd(url, "export", sweep.name, "--trial", "1", "--out", str(tmp_path / "out.pt"))
    assert lost.returncode == 1 and "on another box's disk: --artifacts DIR" in lost.stderr
    done = sweepd(url, "export", sweep.name, "--trial", "1", "--out", str(tmp_path / "out.pt"), "--artifacts",
                  str(shared))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.pt").read_bytes() == b"weights"
    engine.dispose()


def test_status_of_one_sweep_and_of_all_show_the_same_spent_the_budget_counts(engine):
    sweep = create_sweep(engine, {**SPEC, "params": []}, owner="tester")
    first = lease_trial(engine, holder(0), counting_proposer)
    assert start_trial(engine, first)
    assert fail_trial(engine, first, "agent shutdown", "infra", cost=45.0) == "queued"  # an attempt that cost 45 s
    again = lease_trial(engine, holder(1), counting_proposer)
    assert again.trial_id == first.trial_id and start_trial(engine, again) and finish_trial(engine, again, 1.0, 10.0)
    one = json.loads(sweepd(url_of(engine), "status", sweep.name, "--json").stdout)["sweep"]
    (every,) = json.loads(sweepd(url_of(engine), "status", "--json").stdout)
    assert one["cost_spent"] == every["cost_spent"] == 55.0
    assert "spent 55.0s" in sweepd(url_of(engine), "status", sweep.name).stdout


def launch_choices(tmp_path, url: str) -> str:
    """The toy sweep with a choice (train.act) and a boolean (train.anneal) besides train.lr."""
    path = write_toy_sweep(tmp_path, 6, 3)
    path.write_text(path.read_text() + '\n[search.train.act]\nvalues = ["tanh", "relu", "gelu"]\n'
                                       '\n[search.train.anneal]\nspace = "bool"\n')
    done = sweepd(url, "launch", str(path), "--detach", "--name", "choicy", "--no-wandb")
    assert done.returncode == 0, done.stderr
    return "choicy"


def test_enqueue_reads_a_choice_and_a_boolean_from_text_and_refuses_an_unlisted_value(engine, tmp_path):
    name = launch_choices(tmp_path, url_of(engine))
    assert sweepd(url_of(engine), "enqueue", name, "train.act=gelu", "train.anneal=true").returncode == 0
    (tmp_path / "c.json").write_text('{"train.act": "relu", "train.anneal": false}')
    assert sweepd(url_of(engine), "enqueue", name, "--from-json", str(tmp_path / "c.json")).returncode == 0
    trials = list_trials(engine, find_sweep(engine, name).id)
    assert [t.params for t in trials] == [{"train.lr": 0.01, "train.act": "gelu", "train.anneal": True},
                                          {"train.lr": 0.01, "train.act": "relu", "train.anneal": False}]
    for word, message in [("train.act=swish", "train.act: 'swish' is not one of the param's values (tanh, relu, gelu)"),
                          ("train.anneal=yes", "train.anneal: 'yes' is not one of the param's values (false, true)")]:
        done = sweepd(url_of(engine), "enqueue", name, word)
        assert (done.returncode, done.stderr.strip()) == (2, "error: " + message)
    (tmp_path / "one.json").write_text('{"train.anneal": 1}')  # 1 is no boolean in a sweep
    done = sweepd(url_of(engine), "enqueue", name, "--from-json", str(tmp_path / "one.json"))
    assert done.returncode == 2 and "train.anneal: 1 is not one of the param's values (false, true)" in done.stderr
    assert len(list_trials(engine, find_sweep(engine, name).id)) == 2


def test_best_writes_a_choice_as_toml_json_and_pufferlib_arguments(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    name = launch_choices(tmp_path, url)
    engine = db.open_store(url)
    best = {"train.lr": 0.02, "train.act": "relu", "train.anneal": False}
    enqueue_trials(engine, find_sweep(engine, name).id, [{"train.lr": 0.01, "train.act": "tanh", "train.anneal": True},
                                                         best])
    for slot, score in enumerate([0.5, 0.9]):
        lease = lease_trial(engine, holder(slot), propose)
        assert start_trial(engine, lease) and finish_trial(engine, lease, score, 10.0)
    assert json.loads(sweepd(url, "best", name, "--format", "json").stdout)["params"] == best
    args = sweepd(url, "best", name, "--format", "args").stdout.strip()
    assert args == "--train.act relu --train.anneal '' --train.lr 0.02"  # PufferLib reads bool('') as False
    toml = sweepd(url, "best", name).stdout
    assert 'act = "relu"' in toml and "anneal = false" in toml
    assert 'values = ["tanh", "relu", "gelu"]' in toml and 'center = "relu"' in toml
    rerun = tmp_path / "rerun.toml"
    rerun.write_text(toml)
    assert sweepd(url, "launch", str(rerun), "--detach", "--name", "rerun", "--no-wandb").returncode == 0
    again = lease_trial(engine, holder(9), propose, sweep_ids=[find_sweep(engine, "rerun").id])
    assert again.params == pytest.approx(best)  # its first trial, the centre: the best config
    status = sweepd(url, "status", name)
    # As written, where they differ from the centre (tanh, false): trial 1 annealed, trial 2 relu.
    assert "anneal=true" in status.stdout and "act=relu" in status.stdout, status.stdout
    engine.dispose()
