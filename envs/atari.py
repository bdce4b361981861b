"""Atari through ale-py: the DQN-7 games (breakout, pong, beam_rider, enduro, qbert, seaquest,
space_invaders), each registered under its ale-py ROM name.

PufferLib's Atari pipeline (ale-py's AtariEnv, 2x downscaled grayscale frames, its Atari
postprocessor and episode statistics) with two settings its own `make` does not pass through:
`max_num_frames_per_episode` (108,000 frames = 30 minutes of play, the DQN cap, so a policy that
never serves the ball in breakout still ends its episodes) and the ALE's sticky actions, off
(`repeat_action_probability = 0`) unless the config sets them. Frameskip 4. Policy: PufferLib's
Atari CNN with its LSTM. Score: the episode's game score (PufferLib's `episode_return`, unclipped:
PufferLib clips rewards only inside the PPO update).

CPU sizing: 8 games stepped in-process, rollouts of 64 steps, batches of 1,024 (about 180 steps/s
on one core with the CNN + LSTM: Atari trials on CPU learn little in minutes). GPU sizing:
PufferLib's atari.ini (its multiprocessing vec and batches), with the same frameskip and sticky actions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from sweepd.envs.family import TRAINER_SETTINGS, EnvFamily

GAMES = ("breakout", "pong", "beam_rider", "enduro", "qbert", "seaquest", "space_invaders")
EVAL_ENVS_MAX = 8


def make_atari(game: str, obs_type: str = "grayscale", frameskip: int = 4, full_action_space: bool = False,
               framestack: int = 1, repeat_action_probability: float = 0.0,
               max_num_frames_per_episode: int = 108_000, buf: Any = None, seed: int = 0) -> Any:
    """One Atari game as a PufferLib env, built from PufferLib's own Atari wrappers."""
    import gymnasium
    import pufferlib
    import pufferlib.emulation
    from ale_py import AtariEnv
    from pufferlib.environments.atari.environment import AtariPostprocessor

    env = AtariEnv(game, obs_type=obs_type, frameskip=frameskip,
                   repeat_action_probability=repeat_action_probability,
                   full_action_space=full_action_space,
                   max_num_frames_per_episode=max_num_frames_per_episode, render_mode="rgb_array")
    env = pufferlib.ResizeObservation(env, downscale=2)
    if framestack > 1:
        env = gymnasium.wrappers.FrameStack(env, framestack)
    env = AtariPostprocessor(env)
    env = pufferlib.EpisodeStats(env)
    return pufferlib.emulation.GymnasiumPufferEnv(env=env, buf=buf, seed=seed)


class AtariFamily(EnvFamily):
    """One Atari game through ale-py, sized for a 2-core CPU box or, on CUDA, as PufferLib sizes it."""

    score_key = "episode_return"
    metric_keys = ("episode_return", "episode_length")  # PufferLib's EpisodeStats wrapper
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        # PufferLib's atari.ini sizes multiprocessing for 16 cores: one process steps all 8 here.
        "vec": {"backend": "Serial", "num_envs": 8, "num_workers": "auto", "batch_size": "auto"},
        # PufferLib's atari.ini runs frameskip 1; the DQN protocol is 4.
        "env": {"frameskip": 4, "repeat_action_probability": 0.0},
        "train": {"device": "cpu", "bptt_horizon": 64, "batch_size": 1024, "minibatch_size": 512,
                  **TRAINER_SETTINGS},
    }
    gpu_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "env": {"frameskip": 4, "repeat_action_probability": 0.0}, "train": TRAINER_SETTINGS}

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.puffer_env = name  # PufferLib's atari.ini lists every game by its ROM name

    def env_creator(self) -> Callable[..., Any]:
        """`make_atari` for this family's game."""
        return functools.partial(make_atari, self.name)

    def eval_num_envs(self, args: Mapping[str, Any], episodes: int) -> int:
        """One game per wanted episode, at most 8."""
        return max(1, min(episodes, EVAL_ENVS_MAX))


def family(name: str) -> AtariFamily:
    """The Atari family for the game `name`."""
    if name not in GAMES:
        raise ValueError(f"not an Atari game sweepd registers: {name!r} (known: {', '.join(GAMES)})")
    return AtariFamily(name)
