"""Env families: the registry, settings resolution and its errors, and each family building its
env and policy, training one PufferLib epoch and playing evaluation episodes on CPU."""

from __future__ import annotations

import time

import pytest

from sweepd import envs

pytest.importorskip("pufferlib", reason="pufferlib not installed: run scripts/install_pufferlib.sh")

import torch
from sweepd.envs.family import ConfigKeyError, PolicyNeedsRnnError

from sweepd.worker.evaluation import eval_seeds, evaluate_policy
from sweepd.worker.puffer import puffer_trainer_class

DQN7 = ("breakout", "pong", "beam_rider", "enduro", "qbert", "seaquest", "space_invaders")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the gpudrive family changes directory: put it back afterwards


def test_registry_names_every_family_and_every_pufferlib_config_env():
    from sweepd import puffer_ini

    names = envs.names()
    assert names == sorted(set(names))
    assert {"snake", "puffer_breakout", "gpudrive", *DQN7} <= set(names)
    assert set(puffer_ini.env_names()) <= set(names)  # the generic family (envs/puffer.py)
    assert "puffer_pong" in names and "None" not in names


def test_unknown_env_names_the_known_ones():
    with pytest.raises(envs.UnknownEnvError) as caught:
        envs.get("snek")
    assert caught.value.name == "snek"
    assert "snake" in caught.value.known
    assert "unknown env 'snek'" in str(caught.value) and "snake" in str(caught.value)


def test_settings_layer_pufferlib_then_family_then_trial():
    args = envs.get("snake").resolve({"train": {"learning_rate": 0.01}, "env": {"num_snakes": 32}},
                                     device="cpu", seed=9, data_dir="out")
    assert args["train"]["learning_rate"] == 0.01                  # trial
    assert args["env"]["num_snakes"] == 32                          # trial over family
    assert args["env"]["num_envs"] == 1                             # family over PufferLib's 4
    assert args["train"]["gamma"] == pytest.approx(0.9997067226)    # PufferLib's snake.ini
    assert (args["train"]["device"], args["train"]["seed"], args["train"]["data_dir"]) == ("cpu", 9, "out")
    assert args["vec"]["seed"] == 9


@pytest.mark.parametrize(("config", "section", "key"), [
    ({"train": {"learnin_rate": 0.1}}, "train", "learnin_rate"),
    ({"env": {"num_snake": 8}}, "env", "num_snake"),
    ({"rnn": {"hidden_size": 8}}, "config", "rnn"),
])
def test_unknown_config_keys_are_refused(config, section, key):
    with pytest.raises(ConfigKeyError) as caught:
        envs.get("snake").resolve(config)
    assert (caught.value.section, caught.value.key) == (section, key)
    assert key in str(caught.value)


def test_rnn_false_drops_the_lstm_where_the_policy_runs_alone():
    family = envs.get("puffer_breakout")
    args = family.resolve({"env": {"num_envs": 8}, "policy": {"rnn": False}})
    assert args["rnn_name"] is None and args["train"]["use_rnn"] is False
    vecenv = family.make_vecenv(args, seed=0)
    try:
        assert not hasattr(family.make_policy(args, vecenv), "lstm")
    finally:
        vecenv.close()


def test_rnn_false_is_refused_for_a_policy_that_needs_its_lstm():
    family = envs.get("snake")
    args = family.resolve({"env": {"num_snakes": 8}, "policy": {"rnn": False}})
    vecenv = family.make_vecenv(args, seed=0)
    try:
        with pytest.raises(PolicyNeedsRnnError, match="Snake"):
            family.make_policy(args, vecenv)
    finally:
        vecenv.close()


def test_policy_hidden_size_sizes_the_lstm_too():
    args = envs.get("snake").resolve({"policy": {"hidden_size": 64}})
    assert args["rnn"] == {"input_size": 64, "hidden_size": 64}


def test_atari_defaults_are_frameskip_4_without_sticky_actions():
    args = envs.get("pong").resolve({})
    assert args["env"]["frameskip"] == 4 and args["env"]["repeat_action_probability"] == 0.0
    sticky = envs.get("pong").resolve({"env": {"repeat_action_probability": 0.25}})
    assert sticky["env"]["repeat_action_probability"] == 0.25


def test_gpudrive_without_its_map_says_how_to_get_it(monkeypatch, tmp_path):
    from sweepd.envs.gpudrive import GpuDriveMapsMissingError

    monkeypatch.setenv("SWEEPD_GPUDRIVE_DATA", str(tmp_path / "empty"))
    family = envs.get("gpudrive")
    args = family.resolve({})
    assert args["simulator"] == "c"
    with pytest.raises(GpuDriveMapsMissingError, match=r"install_pufferlib\.sh"):
        family.make_vecenv(args, seed=0)


def test_gpudrive_madrona_without_its_simulator_says_how_to_install_it():
    from sweepd.envs.gpudrive import MadronaUnavailableError

    with pytest.raises(MadronaUnavailableError, match=r"github\.com/Emerge-Lab/gpudrive"):
        envs.get("gpudrive").resolve({"env": {"simulator": "madrona"}}, device="cpu")
    with pytest.raises(ConfigKeyError, match="simulator"):
        envs.get("gpudrive").resolve({"env": {"simulator": "gpu"}})


def test_eval_seeds_are_deterministic_distinct_and_not_the_training_seed():
    seeds = eval_seeds(1234, 4)
    assert seeds == eval_seeds(1234, 4)
    assert len(set(seeds)) == 4 and 1234 not in seeds
    assert seeds != eval_seeds(1235, 4)


# Small sizes: one epoch is a few thousand agent steps (Atari: 512).
FAMILY_RUNS = [
    ("snake", {"env": {"num_snakes": 64}, "train": {"minibatch_size": 2048}}),
    ("puffer_breakout", {"env": {"num_envs": 64}, "train": {"minibatch_size": 2048}}),
    ("gpudrive", {"env": {"num_agents": 32}, "train": {"minibatch_size": 1024}}),
    pytest.param("breakout", {"train": {"batch_size": 512, "minibatch_size": 512}}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "config"), FAMILY_RUNS)
def test_family_trains_an_epoch_and_plays_evaluation_episodes(name, config, tmp_path):
    family = envs.get(name)
    args = family.resolve(config, device="cpu", seed=3, data_dir=str(tmp_path))
    vecenv = family.make_vecenv(args, seed=3)
    policy = family.make_policy(args, vecenv)
    logged: list[dict] = []
    trainer = puffer_trainer_class()(dict(args["train"]), vecenv, policy, on_stats=logged.append)
    try:
        trainer.evaluate()
        trainer.train()
    finally:
        vecenv.close()
    assert trainer.global_step >= trainer.config["batch_size"]
    assert all(torch.isfinite(p).all() for p in policy.parameters())

    per_seed, done = evaluate_policy(family, args, policy, [11], episodes=2, deadline=time.time() + 60)
    assert done[0] >= 2
    assert per_seed[0] is not None and per_seed[0] == per_seed[0]  # a number, not NaN
