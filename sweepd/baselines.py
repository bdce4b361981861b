"""Best seed-averaged Atari scores found by any sweep, next to the PPO paper's.

PPO figures: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347),
Table 6, PPO after 40M frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweepd.front import config_results
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo

PPO_PAPER_40M_FRAMES = {
    "beam_rider": 1590.0, "breakout": 274.8, "enduro": 758.3, "pong": 20.7,
    "qbert": 14293.3, "seaquest": 1204.5, "space_invaders": 942.5,
}


@dataclass(frozen=True)
class Baseline:
    game: str
    paper: float
    best: float | None = None
    stderr: float | None = None
    seeds: int = 0
    cost: float | None = None
    steps: float | None = None
    sweep: str | None = None
    trials: tuple[int, ...] = ()


def baselines(sweeps: list[tuple[SweepInfo, list[TrialInfo]]]) -> list[Baseline]:
    """Per DQN-7 game, the best config (seeds averaged) over every sweep of that game."""
    best: dict[str, Baseline] = {g: Baseline(g, p) for g, p in PPO_PAPER_40M_FRAMES.items()}
    for sweep, trials in sweeps:
        if sweep.env not in best:
            continue
        by_number = {t.number: t for t in trials}
        for result in config_results(trials):
            current = best[sweep.env]
            if current.best is not None and result.score <= current.best:
                continue
            steps = [by_number[n].metrics.get("steps") for n in result.trials]
            known = [float(s) for s in steps if isinstance(s, int | float)]
            best[sweep.env] = Baseline(sweep.env, current.paper, result.score, result.score_stderr, result.seeds,
                                       result.cost, sum(known) / len(known) if known else None, sweep.name,
                                       result.trials)
    return list(best.values())


def as_dict(row: Baseline) -> dict[str, Any]:
    return {"game": row.game, "ppo_paper": row.paper, "best": row.best, "stderr": row.stderr, "seeds": row.seeds,
            "cost_s": row.cost, "steps": row.steps, "sweep": row.sweep, "trials": list(row.trials)}
