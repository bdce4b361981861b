"""Choice and boolean params through every searcher: only listed values are proposed, a searcher
rebuilt from the same history proposes the same config, and CARBS finds a value away from the centre."""
import math

import numpy as np
import pytest

from sweepd.search import Observation, create_searcher
from sweepd.space import Param

PARAMS = [
    Param("train.learning_rate", "log", 1e-4, 1e-1, 1e-3),
    Param.choice("policy.activation", ["tanh", "relu", "gelu"]),
    Param.choice("train.anneal_lr", [False, True], True),
    Param.choice("train.clip_coef", [0.1, 0.2, 0.3]),
    Param.choice("train.update_epochs", [1, 2, 4, 8], 2),
]
LISTED = {p.name: p.values for p in PARAMS if p.is_choice}
NEEDS = {"optuna": "optuna", "protein": "pufferlib.sweep"}


def score_and_cost(params):
    """A smooth optimum in the learning rate, a bonus of 1 for gelu and 0.3 for annealing."""
    score = -(math.log10(params["train.learning_rate"]) + 2.5) ** 2
    score += (params["policy.activation"] == "gelu") + 0.3 * params["train.anneal_lr"]
    return score, 5.0 + params["train.update_epochs"] + 10 * params["train.clip_coef"]


def assert_listed(params):
    for name, values in LISTED.items():
        value = params[name]
        assert any(type(value) is type(v) and value == v for v in values), (name, value)
    assert 1e-4 <= params["train.learning_rate"] <= 1e-1


def rebuilt(name, observations, pending, **options):
    s = create_searcher(name, PARAMS, seed=7, max_suggestion_cost=60.0, **options)
    for obs in observations:
        s.observe(obs)
    for params in pending:
        s.add_pending(params)
    return s


@pytest.mark.parametrize("name", ["carbs", "random", "optuna", "protein"])
def test_every_searcher_proposes_listed_values_and_rebuilds_to_the_same_suggestion(name):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    # Protein fits its GPs once it has results (~30 s a suggestion here): it gets pending configs
    # only, so each suggestion after its centre is its own random sample, mapped back from indices
    # (its GP's proposals are the slow test below).
    options = {} if name == "protein" else {"num_random_samples": 3}
    observations, pending, kinds = [], [], []
    for i in range(10):
        sug = rebuilt(name, observations, pending, **options).suggest()
        assert rebuilt(name, observations, pending, **options).suggest() == sug
        assert_listed(sug.params)
        kinds.append(sug.kind)
        if name == "protein" or i % 4 == 3:
            pending.append(sug.params)  # an agent still running it
        else:
            score, cost = score_and_cost(sug.params)
            observations.append(Observation(sug.params, score, cost + 0.1 * i))
    if name in ("carbs", "optuna"):
        assert "search" in kinds  # past the warm-up: the model's own proposals are listed values too


@pytest.mark.slow
def test_protein_maps_its_gp_proposal_back_from_indices_to_listed_values():
    pytest.importorskip("pufferlib.sweep")
    configs = [{"train.learning_rate": 1e-3, "policy.activation": "tanh", "train.anneal_lr": True,
                "train.clip_coef": 0.1, "train.update_epochs": 2},
               {"train.learning_rate": 3e-3, "policy.activation": "gelu", "train.anneal_lr": False,
                "train.clip_coef": 0.3, "train.update_epochs": 8},
               {"train.learning_rate": 1e-2, "policy.activation": "relu", "train.anneal_lr": True,
                "train.clip_coef": 0.2, "train.update_epochs": 1}]
    observations = [Observation(c, *score_and_cost(c)) for c in configs]
    sug = rebuilt("protein", observations, [], num_random_samples=2).suggest()
    assert sug.kind == "search"  # from Protein's GP, not its random warm-up
    assert_listed(sug.params)
    assert rebuilt("protein", observations, [], num_random_samples=2).suggest() == sug


def test_carbs_finds_a_choice_away_from_the_centre():
    """Only "c" scores higher (+1), and "b" lies between it and the centre "a": the search must go
    past a neighbour that does not help, within 30 suggestions."""
    params = [Param("train.learning_rate", "log", 1e-4, 1e-1, 1e-3),
              Param("train.ent_coef", "linear", 0.0, 0.1, 0.05),
              Param.choice("policy.kind", ["a", "b", "c"])]
    rng = np.random.default_rng(0)
    s = create_searcher("carbs", params, seed=3, max_suggestion_cost=100.0)
    chosen = []
    for _ in range(30):
        p = s.suggest().params
        chosen.append(p["policy.kind"])
        score = (-(math.log10(p["train.learning_rate"]) + 2.5) ** 2 - 20 * (p["train.ent_coef"] - 0.02) ** 2
                 + (p["policy.kind"] == "c") + rng.normal(0.0, 0.05))
        s.observe(Observation(p, score, 10.0 + 5 * p["train.ent_coef"]))
    assert chosen[0] == "a"  # the centre first
    assert "c" in chosen[:20]
    assert chosen[-10:].count("c") >= 6, chosen  # and keeps it once found
