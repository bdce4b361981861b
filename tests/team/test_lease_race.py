"""Many agent processes racing for one sweep through the store's public functions: every lease
is a distinct trial, the budget holds exactly, and no two new suggestions share a config."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter

import pytest

from sweepd.search import Observation, create_searcher
from sweepd.space import Param
from sweepd.store import db
from sweepd.store.history import Evidence, Proposal
from sweepd.store.leasing import Holder, lease_trial
from sweepd.store.review import TrialInfo, list_trials
from sweepd.store.sweeps import SweepInfo, create_sweep
from sweepd.store.transitions import finish_trial

AGENTS, LEASES = 8, 25
PARAMS = [Param("train.lr", "log", 1e-4, 1e-1, 1e-2), Param("train.ent", "linear", 0.0, 1.0, 0.5)]


def spec(max_trials: int) -> dict:
    return {"name": "race", "env": "toy", "source": "test",
            "settings": {"searcher": "random", "seed": 11, "max_suggestion_cost": 10.0, "max_trials": max_trials,
                         "max_total_cost": 0.0, "priority": 0, "max_slots": 0, "direction": "maximize"}}


def random_proposer(sweep: SweepInfo, history: Evidence) -> Proposal:
    """What the agent does (sweepd.agent.propose_next) with the random searcher: rebuild from the DB."""
    searcher = create_searcher("random", PARAMS, seed=sweep.seed, max_suggestion_cost=sweep.max_suggestion_cost)
    for seen in history.observations:
        searcher.observe(Observation(params=seen.params, score=seen.score, cost=seen.cost, failed=seen.failed))
    for params in history.pending:
        searcher.add_pending(params)
    return Proposal(params=dict(searcher.suggest().params), kind="random")


def agent_process(url: str, sweep_id: int, index: int, go, out) -> None:
    engine = db.make_engine(url)
    got = []
    go.wait()
    for n in range(LEASES):
        holder = Holder(agent=f"agent-{index}", box=f"box-{index}", slot=0, user="tester")
        lease = lease_trial(engine, holder, random_proposer, 60.0, [sweep_id])
        if lease is None:
            continue
        got.append((lease.trial_id, lease.token))
        if n % 3:  # finish most, leave some in flight: the searcher must see those as pending
            finish_trial(engine, lease, float(n), 1.0)
    engine.dispose()
    out.put(got)


def race(url: str, max_trials: int) -> tuple[list[tuple[int, str]], list[TrialInfo]]:
    engine = db.open_store(url)
    sweep = create_sweep(engine, spec(max_trials), owner="tester")
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=agent_process, args=(url, sweep.id, i, go, out)) for i in range(AGENTS)]
    for proc in procs:
        proc.start()
    go.set()
    leases = [lease for _ in procs for lease in out.get(timeout=120)]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    return leases, list_trials(engine, sweep.id)


@pytest.mark.slow
def test_eight_agents_times_25_leases_make_exactly_200_distinct_trials(db_url):
    leases, trials = race(db_url, max_trials=1000)
    assert len(leases) == AGENTS * LEASES == 200
    assert len({trial_id for trial_id, _ in leases}) == 200, "a trial was leased twice"
    assert len({token for _, token in leases}) == 200
    assert len(trials) == 200 and [t.number for t in trials] == list(range(1, 201))
    assert all(t.attempts == 1 for t in trials)
    configs = Counter(tuple(sorted(t.params.items())) for t in trials)
    assert max(configs.values()) == 1, "two agents were given the same new config"
    assert Counter(t.status for t in trials) == Counter(
        {"succeeded": sum(1 for i in range(LEASES) if i % 3) * AGENTS,
         "leased": sum(1 for i in range(LEASES) if not i % 3) * AGENTS})


@pytest.mark.slow
def test_racing_agents_never_overshoot_the_trial_budget(db_url):
    leases, trials = race(db_url, max_trials=150)
    assert len(leases) == len(trials) == 150
    assert len({trial_id for trial_id, _ in leases}) == 150
