"""The `optuna` searcher: Optuna's multi-objective TPE rebuilt from the history for every suggestion."""
import math
import subprocess
import sys

import pytest

from sweepd.search import Observation, create_searcher
from sweepd.space import Param

pytest.importorskip("optuna")

PARAMS = [
    Param("train.learning_rate", "log", 1e-4, 3e-2, 3e-3),
    Param("train.total_timesteps", "log", 2e5, 4e6, 1e6, integer=True),
    Param("train.gamma", "logit", 0.9, 0.999, 0.99),
    Param("train.bptt_horizon", "pow2", 16, 128, 64),
    Param("train.update_epochs", "linear", 1, 4, 2, integer=True),
    Param("train.clip_coef", "linear", 0.05, 0.4, 0.2),
]


def toy(params):
    """Score peaks at lr 3e-3 and grows with steps; cost is proportional to steps."""
    score = -(math.log10(params["train.learning_rate"]) + 2.5) ** 2 + math.log10(params["train.total_timesteps"])
    return score, params["train.total_timesteps"] / 5e4


def history(n, seed=0):
    """Observations of the first ``n`` suggestions of a searcher (one of them failed)."""
    s = create_searcher("optuna", PARAMS, seed=seed, max_suggestion_cost=60.0)
    observations = []
    for i in range(n):
        sug = s.suggest()
        score, cost = toy(sug.params)
        observations.append(Observation(sug.params, score, cost, failed=i == 2))
        s.observe(observations[-1])
    return observations


def rebuilt(observations, pending=(), seed=0):
    s = create_searcher("optuna", PARAMS, seed=seed, max_suggestion_cost=60.0)
    for obs in observations:
        s.observe(obs)
    for params in pending:
        s.add_pending(params)
    return s


def assert_valid(params):
    assert set(params) == {p.name for p in PARAMS}
    for p in PARAMS:
        v = params[p.name]
        assert p.min <= v <= p.max, (p.name, v)
        if p.is_integer:
            assert float(v) == int(v)
    assert params["train.bptt_horizon"] in (16, 32, 64, 128)


def test_suggestions_are_valid_configs_in_the_box_through_start_up_and_tpe():
    observations = history(14)
    for obs in observations:
        assert_valid(obs.params)
    sug = rebuilt(observations).suggest()
    assert sug.kind == "search"  # 13 successes: past Optuna's 10 random start-up trials
    assert_valid(sug.params)


def test_a_rebuild_from_the_same_history_proposes_the_same_config():
    observations = history(12)
    pending = [rebuilt(observations).suggest().params]
    a = rebuilt(observations, pending).suggest()
    b = rebuilt(observations, pending).suggest()
    assert a == b
    assert rebuilt(observations, seed=1).suggest() != rebuilt(observations, seed=0).suggest()


def test_parallel_agents_never_get_a_pending_config():
    for n in (0, 12):  # random start-up, then TPE
        observations = history(n)
        pending = []
        for _ in range(4):
            sug = rebuilt(observations, pending).suggest()
            assert sug.params not in pending
            pending.append(sug.params)


def test_a_tiny_discrete_space_hands_out_every_config_before_repeating_one():
    params = [Param("train.update_epochs", "linear", 1, 3, 2, integer=True)]
    s = create_searcher("optuna", params, seed=0, max_suggestion_cost=60.0)
    assert sorted(s.suggest().params["train.update_epochs"] for _ in range(3)) == [1, 2, 3]


def test_missing_optuna_is_one_line_naming_the_install_command(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None\n"
            "from sweepd.cli import main\n"
            f"sys.argv = ['sweepd', 'launch', 'snake', '--searcher', 'optuna', '--detach', "
            f"'--db', 'sqlite:///{tmp_path}/s.db']\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "optuna searcher needs optuna" in lines[0] and "pip install 'sweepd[optuna]'" in lines[0]
    assert not (tmp_path / "s.db").exists()  # refused before any sweep was written


def test_missing_optuna_raises_searcher_unavailable_from_create_searcher():
    code = ("import sys; sys.modules['optuna'] = None\n"
            "from sweepd.search import SearcherUnavailable, create_searcher\n"
            "from sweepd.space import Param\n"
            "try:\n"
            "    create_searcher('optuna', [Param('lr', 'log', 1e-4, 1e-2, 1e-3)])\n"
            "except SearcherUnavailable as exc:\n"
            "    assert isinstance(exc, ImportError) and isinstance(exc, ValueError)\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and "pip install 'sweepd[optuna]'" in out.stdout
