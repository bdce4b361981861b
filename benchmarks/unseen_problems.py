"""Problems the search was not developed on, for shared/bench/run.py's --extra.

The four public problems of ../shared/bench shaped sweepd's search; a change that only helps them
is tuning, not search. These two keep it honest on what the issues name as the hard case (an
optimum far from the sweep file's centre) with the public problems' own machinery:

- ppo_far: the PPO-like curve with its optimum learning rate 1.5 decades above the centre's, and
  gamma and entropy optima away from their centres.
- far_bowl: five knobs in [-1, 1], centre 0, the optimum near a corner; a training-length knob.

    PYTHONPATH=benchmarks python ../shared/bench/run.py --searcher sweepd --seeds 5 --max-trials 40 \\
        --extra unseen_problems:EXTRA --problems ppo_far,far_bowl
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
from problems import Param, PPOCurve, Problem

_OPTIMUM = (0.8, -0.7, 0.75, -0.6, 0.7)


class FarBowl(Problem):
    """A smooth bowl whose optimum lies near a corner of a five-knob box; a fidelity knob."""

    def __init__(self, name: str = "far_bowl", budget: float = 60_000.0, cap: float = 900.0) -> None:
        params = [Param(f"x{i}", "linear", -1.0, 1.0, 0.0) for i in range(len(_OPTIMUM))]
        params.append(Param("steps", "log", 1e3, 1e7, 1e5, integer=True))
        super().__init__(name, params, cap, budget, (1.0, cap), 0.0,
                         "optimum near a corner, far from the centre", fidelity="steps")

    def true_cost(self, c: dict) -> float:
        return c["steps"] / 1e3 + 1.0

    def true_score(self, c: dict) -> float:
        d2 = sum((c[f"x{i}"] - o) ** 2 for i, o in enumerate(_OPTIMUM))
        return 100.0 / (1.0 + d2 / 0.3) * (1 - math.exp(-c["steps"] / 3e5))

    def evaluate(self, c: dict, rng: np.random.Generator) -> tuple[float, float, bool]:
        cost = self.true_cost(c) * float(rng.lognormal(0.0, 0.03))
        return self.true_score(c) + float(rng.normal(0.0, 1.0)), cost, False


EXTRA = {
    "ppo_far": PPOCurve("ppo_far", lr_shift=1.5, gamma_opt=0.9, ent_opt=3e-2),
    "far_bowl": FarBowl(),
}
