"""PufferLib's C breakout (`puffer_breakout`): single-agent, vectorized inside one C env.

CPU sizing: 256 copies in one in-process env, rollouts of 64 steps (batch 16,384), PufferLib's
default MLP (128 hidden) with its LSTM. GPU sizing: PufferLib's breakout.ini (8 envs of 1,024
games, minibatches of 32,768). Score: PufferLib's `score` log (bricks broken per game).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sweepd.envs.family import TRAINER_SETTINGS, EnvFamily


class PufferBreakoutFamily(EnvFamily):
    """PufferLib's C breakout, sized for a 2-core CPU box or, on CUDA, as PufferLib sizes it."""

    puffer_env = "puffer_breakout"
    score_key = "score"
    # PufferLib's C Log struct (ocean/breakout/breakout.h); `n` counts the episodes each log averages.
    metric_keys = ("perf", "score", "episode_return", "episode_length")
    eval_env: ClassVar[dict[str, Any]] = {"log_interval": 1}
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "vec": {"backend": "Serial", "num_envs": 1},
        "env": {"num_envs": 256, "frameskip": 4},
        "train": {"device": "cpu", "bptt_horizon": 64, "batch_size": "auto", "minibatch_size": 8192,
                  **TRAINER_SETTINGS},
    }
    gpu_defaults: ClassVar[dict[str, dict[str, Any]]] = {"train": TRAINER_SETTINGS}


def family(name: str) -> PufferBreakoutFamily:
    """The puffer_breakout family registered as `name`."""
    return PufferBreakoutFamily(name)
