"""The `protein` searcher: PufferLib's own Protein, rebuilt from the history for every suggestion."""
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from sweepd.search import Observation, create_searcher
from sweepd.search.protein import sweep_config
from sweepd.space import Param

pytest.importorskip("pufferlib.sweep")

PARAMS = [
    Param("train.learning_rate", "log", 1e-4, 3e-2, 3e-3),
    Param("train.total_timesteps", "log", 2e5, 4e6, 1e6, integer=True),
    Param("train.gamma", "logit", 0.9, 0.999, 0.99),
    Param("train.bptt_horizon", "pow2", 16, 128, 64),
    Param("env.num_snakes", "linear", 64, 512, 256, integer=True),
]
CENTER = {"train.learning_rate": 3e-3, "train.total_timesteps": 1_000_000, "train.gamma": 0.99,
          "train.bptt_horizon": 64, "env.num_snakes": 256}


def protein(observations=(), pending=(), seed=0):
    s = create_searcher("protein", PARAMS, seed=seed, max_suggestion_cost=60.0)
    for obs in observations:
        s.observe(obs)
    for params in pending:
        s.add_pending(params)
    return s


def pending_already(params, pending):
    """Whether ``params`` is one of the ``pending`` configs (to float precision)."""
    return any(params == pytest.approx(p, rel=1e-9) for p in pending)


def assert_valid(params):
    assert set(params) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert p.min <= params[p.name] <= p.max, (p.name, params[p.name])
    assert isinstance(params["train.total_timesteps"], int) and isinstance(params["env.num_snakes"], int)
    assert params["train.bptt_horizon"] in (16, 32, 64, 128)


def test_params_are_handed_over_in_pufferlibs_sweep_format():
    config = sweep_config(PARAMS)
    assert config["metric"] == "score" and config["goal"] == "maximize"
    assert config["train"]["learning_rate"] == {"distribution": "log_normal", "min": 1e-4, "max": 3e-2,
                                                "mean": 3e-3, "scale": "auto"}
    assert config["train"]["gamma"]["distribution"] == "logit_normal"
    assert config["train"]["bptt_horizon"]["distribution"] == "uniform_pow2"
    assert config["env"]["num_snakes"]["distribution"] == "int_uniform"


def test_first_suggestion_is_the_centre_and_parallel_agents_get_other_configs():
    first = protein().suggest()
    assert first.params == pytest.approx(CENTER, rel=1e-12)
    pending = [first.params]
    for _ in range(3):
        sug = protein(pending=pending).suggest()
        assert not pending_already(sug.params, pending) and sug.kind == "random"
        assert_valid(sug.params)
        pending.append(sug.params)


@pytest.mark.slow
def test_gp_suggestion_is_valid_deterministic_when_rebuilt_and_leaves_global_rngs_alone():
    observations = [Observation(CENTER, 3.0, 20.0),
                    Observation({**CENTER, "train.learning_rate": 1e-3, "train.total_timesteps": 400_000}, 2.5, 9.0),
                    Observation({**CENTER, "train.gamma": 0.95}, math.nan, 5.0, failed=True)]
    pending = [{**CENTER, "train.total_timesteps": 2_000_000}]
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    a = protein(observations, pending).suggest()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before
    b = protein(observations, pending).suggest()
    assert a == b and a.kind == "search"
    assert_valid(a.params)
    assert not pending_already(a.params, pending)
    assert a.predicted_cost is not None and a.predicted_score is not None


def test_missing_pufferlib_raises_one_line_naming_the_install_command():
    code = ("import sys; sys.modules['pufferlib'] = None\n"
            "from sweepd.search import SearcherUnavailable, create_searcher\n"
            "from sweepd.space import Param\n"
            "try:\n"
            "    create_searcher('protein', [Param('train.lr', 'log', 1e-4, 1e-2, 1e-3)])\n"
            "except SearcherUnavailable as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and "pip install 'sweepd[puffer]'" in out.stdout
