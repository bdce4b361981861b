"""Warm start (`sweepd launch FILE --warm-start OTHER`): a new sweep begins with another sweep's
finished results as its own history, so its searcher starts where OTHER left off.

What is carried over, and how:
- OTHER's succeeded trials (score, cost, learning curve, truncation) and its hyperparameter
  failures (configs that crash teach where not to go), imported as finished trials of kind
  "imported": the searcher observes them, no agent re-runs them.
- They do not use up the new sweep's budget: its max_trials and max_total_cost, where set, are
  raised by what was imported (the sweep's budget is for its own trials).
- Params: each param OTHER searched must be a param of the new sweep (else the results depend on a
  value the new sweep cannot express: refused, nothing written). A param of the new sweep that
  OTHER did not search takes the value OTHER's trials ran with (its fixed [train]/[env] setting)
  when OTHER's spec has one, else the new param's centre; that value must lie in the new range.
- A trial with a value outside the new sweep's ranges (a narrower sweep, or a value a choice no
  longer lists) is left out and counted.
- OTHER must be of the same env: a score means nothing across envs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from sweepd.space import Param, as_text
from sweepd.spec import SweepSpec
from sweepd.store.enqueue import FinishedTrial, import_trials
from sweepd.store.models import FAILED, HYPERPARAMETER, SUCCEEDED, InvalidRequest
from sweepd.store.review import list_trials
from sweepd.store.sweeps import SweepInfo, find_sweep

IMPORTED = "imported"  # the kind of a trial carried over from another sweep


@dataclass(frozen=True)
class WarmStart:
    """The results a new sweep starts from, read and checked before the sweep is written."""

    source: SweepInfo
    results: tuple[FinishedTrial, ...]
    outside: int  # OTHER's results left out: a value outside the new sweep's ranges


def read_warm_start(engine: Engine, ref: str, spec: SweepSpec) -> WarmStart:
    """OTHER's finished results as trials of a sweep of `spec`; InvalidRequest (one line) when
    OTHER cannot seed it (another env, a param the new sweep lacks, a fixed value out of range)."""
    source = find_sweep(engine, ref)
    other = SweepSpec.from_json(source.spec)
    if other.env != spec.env:
        raise InvalidRequest(f"--warm-start {ref}: sweep {source.name} ran env {other.env}, this sweep runs {spec.env}")
    ours = {p.name: p for p in spec.params}
    missing = [p.name for p in other.params if p.name not in ours]
    if missing:
        raise InvalidRequest(f"--warm-start {ref}: sweep {source.name} searched {', '.join(missing)}, which this "
                             f"sweep does not: its results depend on values this sweep cannot set")
    searched = {p.name for p in other.params}
    fixed: dict[str, Any] = {}
    for name, param in ours.items():
        if name in searched:
            continue
        section, key = name.split(".", 1)
        value = other.defaults.get(section, {}).get(key, param.center)
        if not param.contains(value):
            raise InvalidRequest(f"--warm-start {ref}: sweep {source.name} ran {name} = {value!r}, outside this "
                                 f"sweep's {_range(param)}")
        fixed[name] = value
    results, outside = [], 0
    for trial in list_trials(engine, source.id):
        observed = (trial.status == SUCCEEDED and trial.score is not None) or (
            trial.status == FAILED and trial.failure_category == HYPERPARAMETER)
        if not observed:
            continue
        params = {**fixed, **trial.params}
        if any(not ours[name].contains(value) for name, value in params.items()):
            outside += 1
            continue
        results.append(FinishedTrial(params=params, score=trial.score, cost=float(trial.cost or 0.0),
                                     status=trial.status, kind=IMPORTED, score_stderr=trial.score_stderr,
                                     metrics={**trial.metrics, "imported_from": f"{source.name}#{trial.number}"},
                                     failure_reason=trial.failure_reason, truncated=trial.truncated,
                                     stopped=trial.stopped, steps=trial.steps))
    return WarmStart(source, tuple(results), outside)


def _range(param: Param) -> str:
    if param.is_choice:
        return f"values ({', '.join(map(as_text, param.values))})"
    return f"range [{param.min:g}, {param.max:g}]"


def apply_warm_start(engine: Engine, sweep: SweepInfo, warm: WarmStart, actor: str) -> str:
    """Import the results into the new sweep, beside its budget; what was done, in one line."""
    count = import_trials(engine, sweep.id, warm.results, actor, beside_budget=True)
    return (f"warm start: {count} result(s) of sweep {warm.source.name} imported"
            + (f", {warm.outside} left out (values outside this sweep's ranges)" if warm.outside else ""))
