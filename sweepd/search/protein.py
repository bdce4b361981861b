"""PufferLib's own searcher, ``pufferlib.sweep.Protein``, rebuilt from the history for every suggestion.

sweepd runs the installed PufferLib's Protein as PufferLib's ``sweep`` loop does (its defaults,
``Protein(sweep_config)``), with three differences that a searcher rebuilt from the database needs:

- The sweep's params are handed over in PufferLib's sweep-config format (``[sweep.train.KEY]``
  tables: ``log`` -> ``log_normal``, ``logit`` -> ``logit_normal``, ``linear`` -> ``uniform`` or
  ``int_uniform``, ``pow2`` -> ``uniform_pow2``; ``mean`` = the centre; ``scale`` = ``auto``
  unless the param sets one, which is converted back as sweepd.puffer_config converts it in),
  with the cap as Protein's ``max_suggestion_cost``. Protein has no categorical space: a
  ``choice`` goes to it as the value's index, an ``int_uniform`` param over [-0.5, n - 0.5] (a
  cell of width 1 per value, as in sweepd's basic box, so its uniform draws pick every value
  equally often), always with the scale that matches sweepd's step (``auto`` would be a quarter
  of the list: a boolean would never flip), and each index Protein proposes maps back to its value.
- Finished trials are replayed through ``Protein.observe`` in order, one observation per trial
  (its evaluated score and total cost). PufferLib's loop also observes each run's downsampled
  learning curve; sweepd's history holds final results only. Failed trials are left out: Protein
  has no failure model (its ``observe`` ignores ``is_failure`` and a failed run has no score).
- Protein draws from the global ``random``, ``numpy.random`` and ``torch`` generators (its
  candidates and pyro's GP training). They are seeded from the sweep's seed and the history's
  counts (``History.rng``) for the one suggestion and restored afterwards, so the same history
  always gives the same config and the caller's generators are left as they were.

A fresh Protein fits its GPs once per suggestion (1000 Adam steps each, as PufferLib's loop does
per suggestion); a long-lived Protein would carry its GP hyperparameters over from the previous
suggestions. Protein knows nothing of pending configs: its first suggestion is always the search
centre, so when its config is already pending sweepd takes Protein's own random sample around
the centre instead (``Hyperparameters.sample``, what Protein draws without a centre seed).

Protein honours the cap only as it can: it drops candidates whose predicted cost is over it, and
when all are over, it takes the first candidate regardless (PufferLib's behaviour). The worker
stops every trial at the cap as it does for any searcher. ``suggest()`` takes seconds (two GP fits).

Options: ``num_random_samples`` and ``resample_frequency`` are Protein's own (PufferLib's defaults,
50 and 0, when not given; a sweep passes its ``[sweep]`` values, as it does to every searcher; the
rebuilt Protein is told how many suggestions came before, so its resample cadence holds).
The early-stopping options (``budget_param``, ``curve_points``, ``early_stop``,
``early_stop_probability``, ``early_stop_min_fraction``) are accepted (a sweep file may set them
for any searcher) and ignored: PufferLib 3.0's Protein stops no run early (``report`` records a
curve point and never stops a trial).
"""
from __future__ import annotations

import contextlib
import io
import math
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sweepd.search.history import History, HistorySearcher, Suggestion
from sweepd.search.pareto import COST_FLOOR
from sweepd.space import Param, Value, from_basic

_MAX_DRAWS = 100  # random draws before a pending config is proposed again (tiny discrete spaces only)


class ProteinSearcher(HistorySearcher):
    """PufferLib's Protein, from the history alone (see the module docstring)."""

    def __init__(self, params: Sequence[Param], seed: int = 0, max_suggestion_cost: float = math.inf, *,
                 num_random_samples: int = 50, resample_frequency: int = 0, budget_param: str | None = None,
                 curve_points: int = 0, early_stop: bool = False, early_stop_probability: float = 0.0,
                 early_stop_min_fraction: float = 0.0) -> None:
        from sweepd.search.dependency import require_dependency

        self._sweep = require_dependency("protein")
        if not params:
            raise ValueError("a searcher needs at least one parameter")
        if any("." not in p.name for p in params):
            raise ValueError("Protein needs params named SECTION.KEY (as in PufferLib's [sweep.SECTION.KEY])")
        self.params, self.seed = tuple(params), int(seed)
        self.max_suggestion_cost = float(max_suggestion_cost)
        self.history = History(self.params)
        self.sweep_config = sweep_config(self.params)
        self.num_random_samples, self.resample_frequency = int(num_random_samples), int(resample_frequency)

    def suggest(self) -> Suggestion:
        """Protein's next config, from a Protein that has observed the whole history (recorded as pending)."""
        h = self.history
        seed = int(h.rng(self.seed).integers(2**32))
        with _seeded(seed), _silenced():
            protein = self._sweep.Protein(self.sweep_config, max_suggestion_cost=self.max_suggestion_cost,
                                          num_random_samples=self.num_random_samples,
                                          resample_frequency=self.resample_frequency)
            for x, score, cost, failed in zip(h.x, h.scores, h.costs, h.failed, strict=True):
                if not failed:
                    protein.observe(self._protein_values(from_basic(self.params, x)), score,
                                    max(cost, COST_FLOOR))
            # What a long-lived Protein would have counted: its resample cadence runs on this count.
            protein.suggestion_idx = h.n_observed + h.n_pending
            suggested, info = protein.suggest(None)
            values = self._values(suggested)
            pending = set(h.pending_keys)
            kind = "search" if info else "random"
            for _ in range(_MAX_DRAWS):
                if h.key(h.basic(values)) not in pending:
                    break
                sample = protein.hyperparameters.sample(1)[0]
                values, info, kind = self._values(protein.hyperparameters.to_dict(sample)), {}, "random"
        self.history.add_pending(values)
        return Suggestion(params=values, predicted_score=_finite(info.get("score")),
                          predicted_cost=_finite(info.get("cost")), kind=kind)  # type: ignore[arg-type]

    def _values(self, nested: Mapping[str, Any]) -> dict[str, Value]:
        """sweepd's (valid, rounded) config from Protein's nested {section: {key: value}} dict."""
        values: dict[str, Value] = {}
        for p in self.params:
            section, key = p.name.split(".", 1)
            given = float(nested[section][key])
            if p.is_choice:  # an index (see the module docstring)
                values[p.name] = p.values[min(max(round(given), 0), len(p.values) - 1)]
            else:
                values[p.name] = p.round(given)
        return values

    def _protein_values(self, values: Mapping[str, Value]) -> dict[str, dict[str, Any]]:
        """A sweepd config as Protein's nested dict, each choice as its index."""
        by_name = {p.name: p for p in self.params}
        return _nested({name: by_name[name].index(v) if by_name[name].is_choice else v for name, v in values.items()})


def sweep_config(params: Sequence[Param]) -> dict[str, Any]:
    """The params as PufferLib's sweep config (the parsed ``[sweep]`` tables Protein takes)."""
    config: dict[str, Any] = {"metric": "score", "goal": "maximize"}
    for p in params:
        section, key = p.name.split(".", 1)
        if p.is_choice:
            config.setdefault(section, {})[key] = {"distribution": "int_uniform", "min": -0.5,
                                                   "max": len(p.values) - 0.5, "mean": p.index(p.center),
                                                   "scale": _puffer_scale(p)}
            continue
        config.setdefault(section, {})[key] = {"distribution": _distribution(p), "min": p.min, "max": p.max,
                                               "mean": p.center, "scale": _puffer_scale(p)}
    return config


def _distribution(p: Param) -> str:
    if p.space == "log":
        return "log_normal"
    if p.space == "logit":
        return "logit_normal"
    if p.space == "pow2":
        return "uniform_pow2"
    return "int_uniform" if p.integer else "uniform"


def _puffer_scale(p: Param) -> float | str:
    """PufferLib's scale for ``p``: ``auto`` unless the param sets its own, converted back from
    sweepd's basic scale (the inverse of sweepd.puffer_config's conversion)."""
    if p.scale is None and not p.is_choice:
        return "auto"
    from sweepd.puffer_config import SEARCH_RADIUS

    lo, hi = p.basic_bounds
    return 2.0 * math.sqrt(3.0) * SEARCH_RADIUS / (hi - lo)


def _nested(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        section, key = name.split(".", 1)
        nested.setdefault(section, {})[key] = value
    return nested


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """The global generators Protein draws from, seeded for one suggestion, then restored; torch
    runs on one thread meanwhile (deterministic and fastest for Protein's small GPs)."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Protein prints its ranges and predictions; the agent's own log (and live view) must not get them."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
