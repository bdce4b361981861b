"""Snake: PufferLib's many-agent C snake (`puffer_snake`).

CPU sizing: one arena of 256 snakes stepped in-process (Serial), so a rollout of 64 steps is a
batch of 16,384 agent steps; PufferLib's `Snake` policy (one-hot 11x11 view, 128 hidden) with its
LSTM. GPU sizing: PufferLib's snake.ini (16 envs of 4 arenas, minibatches of 32,768).
Score: PufferLib's `score` log, the mean snake length at death.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sweepd.envs.family import TRAINER_SETTINGS, EnvFamily


class SnakeFamily(EnvFamily):
    """PufferLib's C snake, sized for a 2-core CPU box or, on CUDA, as PufferLib sizes it."""

    puffer_env = "puffer_snake"
    score_key = "score"
    # PufferLib's C Log struct (ocean/snake/snake.h); `n` counts the episodes each log averages.
    metric_keys = ("perf", "score", "episode_return", "episode_length")
    agents_key = "num_snakes"
    eval_env: ClassVar[dict[str, Any]] = {"report_interval": 1}
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "vec": {"backend": "Serial", "num_envs": 1},
        # One arena (PufferLib's ini runs 4 per env and 16 envs for GPU boxes).
        "env": {"num_envs": 1, "num_snakes": 256},
        "train": {"device": "cpu", "bptt_horizon": 64, "batch_size": "auto", "minibatch_size": 8192,
                  **TRAINER_SETTINGS},
    }
    gpu_defaults: ClassVar[dict[str, dict[str, Any]]] = {"train": TRAINER_SETTINGS}


def family(name: str) -> SnakeFamily:
    """The snake family registered as `name`."""
    return SnakeFamily(name)
