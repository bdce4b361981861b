"""Any PufferLib env that has a config file: the generic family behind `sweepd launch puffer_pong`.

The env is built as PufferLib's `load_env` builds it (`pufferlib.ocean.env_creator(name)`, or
`pufferlib.environments.<package>.env_creator(name)` for the others), with PufferLib's policy from
the ini. Atari games (package `atari`) use sweepd's Atari family (envs/atari.py), which adds the
episode cap and sticky-action settings PufferLib's own `make` does not pass through.

GPU sizing (`gpu_sizing`): the ini's own vec/env counts and batch geometry (PufferLib sizes them
for GPU boxes). CPU sizing (`cpu_sizing`), written over the ini by `EnvFamily.resolve`:
- envs vectorized in C (an `[env] num_envs`): one such env stepped in-process, at most
  `CPU_AGENTS` copies (PufferLib's inis run 1,024-4,096 for GPU boxes);
- other envs: at most `CPU_SERIAL_ENVS` copies stepped in-process (Serial), not a process pool;
- batch = agents x bptt_horizon (PufferLib's "auto"); minibatch = the ini's, capped at
  `CPU_MINIBATCH` and at the smallest batch those envs can give (each copy has at least one agent),
  so PufferLib's batch checks pass without building the env first.
Score: the ini's sweep metric (PufferLib's `[sweep] metric`, default `score`), read from the env's
episode logs. Evaluation sets the env's log or report interval to 1 where it has one, so episode
stats arrive as episodes end.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from sweepd.envs.family import TRAINER_SETTINGS, EnvFamily, _accepted_kwargs

from sweepd import puffer_ini

CPU_AGENTS = 256
CPU_SERIAL_ENVS = 8
CPU_MINIBATCH = 8192
_EVAL_LOG_KEYS = ("log_interval", "report_interval")


def cpu_sizing(config: puffer_ini.PufferConfig) -> dict[str, dict[str, Any]]:
    """sweepd's CPU defaults for a PufferLib env's config (see the module docstring)."""
    sections = config.sections
    env, train, vec = sections.get("env", {}), sections.get("train", {}), sections.get("vec", {})
    horizon = train.get("bptt_horizon") if isinstance(train.get("bptt_horizon"), int) else 64
    sizing: dict[str, dict[str, Any]] = {"vec": {"backend": "Serial", "num_envs": 1}, "env": {}}
    if isinstance(env.get("num_envs"), int) and env["num_envs"] >= 1:
        copies = min(env["num_envs"], CPU_AGENTS)
        sizing["env"]["num_envs"] = copies
    else:
        ini_envs = vec.get("num_envs") if isinstance(vec.get("num_envs"), int) else 1
        copies = max(1, min(ini_envs, CPU_SERIAL_ENVS))
        sizing["vec"].update(num_envs=copies, num_workers="auto", batch_size="auto")
    minibatch = train.get("minibatch_size") if isinstance(train.get("minibatch_size"), int) else CPU_MINIBATCH
    sizing["train"] = {
        "device": "cpu", "bptt_horizon": horizon, "batch_size": "auto",
        "minibatch_size": max(horizon, min(minibatch, CPU_MINIBATCH, copies * horizon)),
        **TRAINER_SETTINGS,
    }
    return sizing


def gpu_sizing(config: puffer_ini.PufferConfig) -> dict[str, dict[str, Any]]:
    """sweepd's CUDA defaults for a PufferLib env's config: the ini's sizes, sweepd's trainer settings."""
    return {"train": dict(TRAINER_SETTINGS)}


class PufferFamily(EnvFamily):
    """A PufferLib env found by its config file, sized for a 2-core CPU box or, on CUDA, by its ini."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        config = puffer_ini.read_config(name)
        self.puffer_env = name
        self.package = str(config.sections.get("base", {}).get("package"))
        metric = config.sections.get("sweep", {}).get("metric", "score")
        metric = config.sections.get("sweep.metric", {}).get("name", metric)
        self.score_key = str(metric).removeprefix("environment/")
        self.defaults = cpu_sizing(config)
        self.gpu_defaults = gpu_sizing(config)

    def env_creator(self) -> Callable[..., Any]:
        """PufferLib's creator for this env, from the module `pufferl.load_env` uses."""
        module = "pufferlib.ocean" if self.package == "ocean" else f"pufferlib.environments.{self.package}"
        return importlib.import_module(module).env_creator(self.puffer_env)

    @property
    def eval_env(self) -> Mapping[str, Any]:  # type: ignore[override]  # computed per env
        """Log each episode as it ends during evaluation, where the env takes an interval."""
        accepted = _accepted_kwargs(self.env_creator())
        return {key: 1 for key in _EVAL_LOG_KEYS if accepted is not None and key in accepted}


def family(name: str) -> EnvFamily:
    """The family for PufferLib env `name`: Atari games through sweepd's Atari family."""
    config = puffer_ini.read_config(name)
    if config.sections.get("base", {}).get("package") == "atari":
        from sweepd.envs.atari import AtariFamily

        return AtariFamily(name)
    return PufferFamily(name)
