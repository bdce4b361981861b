"""A sweep's best config out (`sweepd best`): the seed-averaged best result at or under a cost,
as a sweep file that reruns it, as JSON, or as PufferLib command-line arguments.

The best is taken from the sweep's Pareto front (sweepd/front.py) of full-length runs: a run cut
at the cost cap or stopped early trained less than its config says, so rerunning that config
would not reproduce its result. Scores are means over a config's seeds, in the sweep's direction.

The sweep file is flat (sweepd/convert.py's writer): the sweep's every setting and default, with
the best values written into its [train]/[env] tables and set as each param's centre, `searcher =
"carbs"` (whose first trial is the centre) and `max_trials = 1`: `sweepd launch FILE` runs the
best config once more (a float param may come back in its last bit: the centre passes through the
search space's coordinates); raise max_trials to search on from it. For the exact values, `--format
json` and `sweepd enqueue NEW_SWEEP --from-json FILE`.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any

from sweepd.convert import to_toml
from sweepd.front import ConfigResult, front
from sweepd.spec import SweepSpec
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo

FORMATS = ("toml", "json", "args")


@dataclass(frozen=True)
class Best:
    """A sweep's best config at or under `at_cost` seconds (None: at any cost)."""

    sweep: SweepInfo
    result: ConfigResult
    at_cost: float | None

    @property
    def spec(self) -> SweepSpec:
        return SweepSpec.from_json(self.sweep.spec)


def best_config(sweep: SweepInfo, trials: list[TrialInfo], at_cost: float | None = None) -> Best | None:
    """The best seed-averaged full-length result whose mean cost is at most `at_cost`; None if none."""
    settings: dict[str, Any] = sweep.spec.get("settings", {})
    direction = settings.get("direction", "maximize")
    full = [t for t in trials if not (t.truncated or t.stopped)]
    points = [p for p in front(full, direction, settings.get("budget_param") or None)
              if at_cost is None or p.cost <= at_cost]
    if not points:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return Best(sweep, max(points, key=lambda p: (sign * p.score, -p.cost)), at_cost)


def as_json(best: Best) -> dict[str, Any]:
    """The result and its config: `params` (what `sweepd enqueue --from-json` reads back) and
    `config`, every trial section as the trainer got it."""
    r = best.result
    return {"sweep": best.sweep.name, "env": best.sweep.env, "at_cost": best.at_cost, "score": r.score,
            "score_stderr": r.score_stderr, "seeds": r.seeds, "cost": r.cost, "steps": r.steps,
            "trials": list(r.trials), "params": dict(r.params), "config": best.spec.trial_config(r.params)}


def as_args(best: Best) -> str:
    """PufferLib command-line arguments for the searched params: `--train.learning-rate 0.0003 ...`
    (the sweep's other settings are its env's config, as the trials ran them). Names as PufferLib's
    `load_config` declares its options (underscores as dashes); strings shell-quoted where needed."""
    return " ".join(f"--{name.replace('_', '-')} {_arg(value)}" for name, value in sorted(best.result.params.items()))


def as_toml(best: Best) -> str:
    """A sweep file that reruns the best config (see the module docstring)."""
    spec, r = best.spec, best.result
    defaults = {section: dict(values) for section, values in spec.defaults.items()}
    for name, value in r.params.items():
        section, key = name.split(".", 1)
        defaults.setdefault(section, {})[key] = value
    params = tuple(dataclasses.replace(p, center=r.params.get(p.name, p.center)) for p in spec.params)
    settings = dataclasses.replace(spec.settings, searcher="carbs", max_trials=1, max_total_cost=0.0)
    rerun = dataclasses.replace(spec, name=f"{best.sweep.name}-best", settings=settings, params=params,
                                defaults=defaults, source=f"the best config of sweep {best.sweep.name} ({spec.source})")
    bound = "at any cost" if best.at_cost is None else f"at or under {best.at_cost:g} s"
    notes = [f"The best config of sweep {best.sweep.name} {bound}: score {r.score:.6g} +/- {r.score_stderr:.3g} "
             f"over {r.seeds} seed(s), mean cost {r.cost:.1f} s (trials {', '.join(map(str, r.trials))}).",
             "`sweepd launch THIS_FILE` runs it once more: searcher carbs starts at the centre, which is the "
             "best config; raise max_trials to search on from it."]
    return to_toml(rerun, notes=notes)


def _arg(value: Any) -> str:
    """One value as PufferLib's command line reads it back: floats exactly (repr), strings as they are.

    PufferLib 3 declares each option with `type=type(default)`, and `bool(text)` is True for any text
    but the empty one: True is `True`, False the empty argument `''`.
    """
    if isinstance(value, bool):
        return "True" if value else "''"
    if isinstance(value, str):
        return shlex.quote(value)
    return repr(value) if isinstance(value, float) else str(value)
