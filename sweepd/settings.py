"""A sweep's `[sweep]` settings and the trial cost cap they set, and `SpecError`, the one error a
wrong sweep file raises.

A leaf: it imports nothing from sweepd, so the spec reader, PufferLib's config mapper and the
store all depend on it without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# How long past its cost cap a worker may run (counted from its process start, as its cost clock
# counts) before the agent kills it: time to write its result and exit. No attempt is charged more
# than the cap plus this, which is what the budget counts for each trial in flight.
COST_GRACE_S = 5.0

class SpecError(ValueError):
    """A sweep file is wrong; `str()` is one line naming file, line (when known) and the fix."""

    def __init__(self, path: str | Path | None, message: str, line: int | None = None,
                 column: int | None = None) -> None:
        self.path, self.line, self.column, self.message = str(path) if path else None, line, column, message
        where = (self.path or "") + (f":{line}" if line else "") + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class SweepSettings:
    """The `[sweep]` table: what to optimize, how, and how much to spend."""

    metric: str = "score"
    direction: str = "maximize"
    searcher: str = "carbs"
    seed: int = 0
    max_suggestion_cost: float = 120.0
    cost_tolerance: float = 1.25
    max_trials: int = 20
    max_total_cost: float = 0.0
    num_random_samples: int = 4
    resample_frequency: int = 5
    # The search's own knobs (sweepd/search/carbs.py; optuna takes num_random_samples as its
    # start-up trials and protein both counts as its own): the Gaussian step around front configs
    # in basic units, the cheapest fraction of the cost span counted as one cost on the front, and
    # the quantile of predicted cost that must fit under max_suggestion_cost.
    initial_search_radius: float = 0.3
    min_pareto_cost_fraction: float = 0.1
    cost_quantile: float = 0.9
    # Early stopping (sweepd/advisor.py): "on" ends a running trial the searcher gives less than
    # early_stop_probability of improving the front at its planned cost, once it has trained
    # early_stop_min_fraction of its run; "off" never. curve_points: points of each finished
    # trial's learning curve the searcher learns from (0: final results only). The carbs
    # searcher's options of the same names (sweepd/search/carbs.py); other searchers ignore them.
    early_stopping: str = "on"
    early_stop_probability: float = 0.01
    early_stop_min_fraction: float = 0.25
    curve_points: int = 3
    eval_episodes: int = 8
    eval_seeds: int = 2
    priority: int = 0
    max_slots: int = 0
    wandb_project: str = ""
    # The searched param that sets training length ("train.total_timesteps"): on a box without a
    # GPU, `sweepd launch` rescales its range by measured steps/s to fit max_suggestion_cost
    # (sweepd/budget.py). Empty: never rescaled.
    budget_param: str = ""
    # The hardware class the sweep runs on ("cpu" or "cuda"): only agents of that class serve it,
    # so costs of different hardware never meet in one cost model. Empty in a file: the launching
    # box's class (`load_spec`'s `device`), which is what the Sweep row stores.
    device: str = ""
    # A hint for the agent `sweepd launch` starts: trials run at once on each GPU (0: one).
    trials_per_gpu: int = 0

    @property
    def cost_cap(self) -> float:
        """Wall seconds after which the worker stops training and evaluates."""
        return self.max_suggestion_cost * self.cost_tolerance

    @property
    def max_charge(self) -> float:
        """The most one attempt costs the budget: the agent kills a worker at cost_cap +
        COST_GRACE_S after its process started and charges no attempt more than that."""
        return self.cost_cap + COST_GRACE_S

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSettings:
        """Settings as stored (`SweepSpec.to_json()["settings"]`); keys this sweepd does not know
        (stored by a newer one) are ignored, missing ones take defaults."""
        return cls(**{k: v for k, v in data.items() if k in SETTING_KEYS})


SETTING_KEYS = tuple(f.name for f in fields(SweepSettings))
DEVICES = ("cpu", "cuda")


def device_class(device: str) -> str:
    """The hardware class of a torch device: "cuda:1" -> "cuda"; anything else is "cpu"."""
    return "cuda" if device.split(":", 1)[0] == "cuda" else "cpu"
