"""A searcher that thinks longer than a lease (PufferLib's Protein takes up to a minute here) never
costs the agent its running trials: leases are asked for on a thread of their own while the loop
keeps heartbeating. Real agent in this process, real toy workers, real SQLite."""

from __future__ import annotations

import time

from toy import write_toy_sweep

from sweepd import advisor
from sweepd import agent as agent_module
from sweepd.agent import Agent
from sweepd.spec import load_spec
from sweepd.store.db import open_store
from sweepd.store.review import list_trials
from sweepd.store.sweeps import create_sweep, find_sweep
from sweepd.store.transitions import reap_expired

SLOW_SECONDS = 3.0  # twice the lease below: a loop blocked this long loses its running trial


def test_a_searcher_slower_than_a_lease_does_not_cost_the_running_trial_its_lease(sqlite_url, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("TOY_STEP_SECONDS", "0.1")
    toy_file = write_toy_sweep(tmp_path, trials=2, steps=40)  # about 4 s of training per trial
    engine = open_store(sqlite_url)
    sweep = create_sweep(engine, load_spec(str(toy_file)).to_json(), owner="tester")
    asked: list[float] = []
    reaped: list[int] = []

    def slow_after_the_first(sweep_info, history):
        asked.append(time.monotonic())
        if len(asked) > 1:  # the second slot's ask, while the first slot's trial runs
            time.sleep(SLOW_SECONDS)
            # Another agent of the team reaps whatever lease lapsed meanwhile.
            reaped.extend(reap_expired(engine, "other-box:1:reaper"))
        return advisor.propose(sweep_info, history)

    monkeypatch.setattr(agent_module, "propose", slow_after_the_first)
    lines: list[str] = []
    agent = Agent(engine=engine, slots=2, box="box-t", lease_seconds=1.5, heartbeat_seconds=0.5,
                  exit_when_idle=True, artifacts=tmp_path / "artifacts", log=lines.append)
    agent.run()

    trials = list_trials(engine, sweep.id)
    assert [(t.status, t.attempts) for t in trials] == [("succeeded", 1), ("succeeded", 1)], lines
    assert reaped == [] and not [line for line in lines if "lease lost" in line], lines
    assert find_sweep(engine, sweep.id).status == "finished"
