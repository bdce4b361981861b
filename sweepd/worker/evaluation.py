"""Scoring a trained PufferLib policy (trainer "puffer").

The final policy, sampling actions as PufferLib's own eval does, plays at least `eval_episodes`
episodes in a fresh env on each of `eval_seeds` seeds derived from the trial seed. A seed's score
is the mean of the trial's metric (`[sweep] metric`, `EnvFamily.metric_key`) in PufferLib's episode
logs (weighted by the episodes each log averages); the trial's score is the mean over seeds,
`score_stderr` the standard error across seeds. In
many-agent envs (snake: 256 snakes) all agents play at once, so the first episodes to finish are
the shorter ones: size `eval_episodes` near the number of agents for an unbiased score. Progress
events carry the mean score of the episodes finished since the previous progress event (the
learning curve), not a running mean from the start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sweepd.protocol import SETUP, TrialFailed
from sweepd.worker.clock import REPORT_MARGIN_S

UNKNOWN_EPISODE_TICKS = 500   # episode length assumed before training has logged one


class EpisodeLog:
    """Episodic scores read from PufferLib's env logs.

    C envs log averages over `n` episodes; Gymnasium envs wrapped in PufferLib's EpisodeStats log
    one episode per info. Each log counts with its number of episodes.
    """

    def __init__(self, score_key: str) -> None:
        self.score_key = score_key
        self.keys: set[str] = set()   # every key the env's logs carried (PufferLib's environment/<key>)
        self.episodes = 0.0
        self.score_sum = 0.0
        self.length_sum = 0.0
        self.lengths = 0.0
        self._window_sum = 0.0
        self._window_n = 0.0
        self.last_window: float | None = None

    def add(self, score: float, n: float = 1.0, length: float | None = None) -> None:
        """One log: mean `score` (and mean `length`) over `n` episodes."""
        if not (math.isfinite(score) and n > 0):
            return
        self.episodes += n
        self.score_sum += score * n
        self._window_sum += score * n
        self._window_n += n
        if length is not None and math.isfinite(length):
            self.length_sum += length * n
            self.lengths += n

    def add_stats(self, stats: Mapping[str, Any]) -> None:
        """PufferLib trainer stats: per key, the list of values the env logs carried."""
        self.keys.update(key for key, values in stats.items() if key != "n" and _as_list(values))
        scores = _as_list(stats.get(self.score_key))
        counts = _as_list(stats.get("n")) or [1.0] * len(scores)
        lengths = _as_list(stats.get("episode_length"))
        for i, score in enumerate(scores):
            self.add(float(score), float(counts[i]) if i < len(counts) else 1.0,
                     float(lengths[i]) if i < len(lengths) else None)

    def add_infos(self, infos: Iterable[Mapping[str, Any]]) -> None:
        """Infos returned by a PufferLib vecenv step: one dict per env log."""
        for info in infos:
            self.keys.update(key for key in info if key != "n")
            if self.score_key in info:
                self.add(float(info[self.score_key]), float(info.get("n", 1.0)),
                         float(info["episode_length"]) if "episode_length" in info else None)

    def check_metric(self, env: str, metric: str) -> None:
        """Fail the trial as a setup error once the env has logged episodes that never carry the
        metric's key: no searched value makes the env log it (`[sweep] metric` is wrong)."""
        if self.keys and self.score_key not in self.keys:
            raise TrialFailed(SETUP, f"metric '{metric}' is not logged by env '{env}' (its episode logs carry: "
                                     f"{', '.join(sorted(self.keys))}): set [sweep] metric to one of them")

    def mean(self) -> float | None:
        """Mean score over every episode logged, or None before the first."""
        return self.score_sum / self.episodes if self.episodes else None

    def mean_length(self) -> float | None:
        """Mean episode length in env steps, or None before one was logged."""
        return self.length_sum / self.lengths if self.lengths else None

    def take_window(self) -> float | None:
        """Mean score of the episodes logged since the last call (the last such mean if none)."""
        if self._window_n:
            self.last_window = self._window_sum / self._window_n
            self._window_sum = self._window_n = 0.0
        return self.last_window


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def eval_seeds(trial_seed: int, count: int) -> list[int]:
    """Env seeds for evaluation: derived from the trial seed, distinct from its training seed."""
    import numpy as np

    state = np.random.SeedSequence([trial_seed % 2**63, 0x5EED]).generate_state(count, dtype=np.uint32)
    return [int(s) % 2**31 for s in state]


@dataclass
class EvalEstimate:
    """What evaluation will cost, from what training measured."""

    build_seconds: float          # building one env (the training env's build time)
    agents: int                   # agents stepped together
    seconds_per_agent_step: float = 0.0
    episode_length: float | None = None

    def seconds(self, episodes: int, seeds: int) -> float:
        """Estimated evaluation seconds, with a margin."""
        length = self.episode_length or UNKNOWN_EPISODE_TICKS
        ticks = length * max(1.0, episodes / max(self.agents, 1))
        per_seed = self.build_seconds + ticks * self.agents * self.seconds_per_agent_step
        return 1.3 * seeds * per_seed + REPORT_MARGIN_S


def evaluate_policy(family: Any, args: Mapping[str, Any], policy: Any, seeds: list[int], episodes: int,
                    deadline: float, score_key: str | None = None) -> tuple[list[float | None], list[int]]:
    """Score `policy` on each seed: mean episodic `score_key` (default the family's score key) of at
    least `episodes` episodes in a fresh env, or None for a seed that finished none by its share of
    the time left before `deadline`."""
    per_seed: list[float | None] = []
    done: list[int] = []
    for index, seed in enumerate(seeds):
        seed_deadline = time.time() + (deadline - time.time()) / (len(seeds) - index)
        log = EpisodeLog(score_key or family.score_key)
        vecenv = family.make_vecenv(args, seed=seed, evaluation=True, episodes=episodes)
        try:
            _play(vecenv, policy, args, log, seed, episodes, seed_deadline)
        finally:
            vecenv.close()
        per_seed.append(log.mean())
        done.append(int(log.episodes))
    return per_seed, done


def _play(vecenv: Any, policy: Any, args: Mapping[str, Any], log: EpisodeLog, seed: int, episodes: int,
          deadline: float) -> None:
    import numpy as np
    import pufferlib.pytorch
    import torch

    device = args["train"]["device"]
    observations, _ = vecenv.reset(seed)
    agents = vecenv.num_agents
    state: dict[str, Any] = {}
    if args["train"]["use_rnn"]:
        hidden = policy.hidden_size
        state = {"lstm_h": torch.zeros(agents, hidden, device=device),
                 "lstm_c": torch.zeros(agents, hidden, device=device)}
    was_training = policy.training
    policy.eval()
    try:
        while log.episodes < episodes and time.time() < deadline:
            with torch.no_grad():
                logits, _ = policy.forward_eval(torch.as_tensor(observations).to(device), state)
                action, _, _ = pufferlib.pytorch.sample_logits(logits)
            action = action.cpu().numpy().reshape(vecenv.action_space.shape)
            if isinstance(logits, torch.distributions.Normal):
                action = np.clip(action, vecenv.action_space.low, vecenv.action_space.high)
            observations, _, _, _, infos = vecenv.step(action)
            log.add_infos(infos)
    finally:
        policy.train(was_training)
