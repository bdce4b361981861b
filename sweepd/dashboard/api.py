"""The dashboard's JSON API: plain dicts from read-only store queries. The page and the tests
use the same endpoints (see `server.py` for the routes).

A sweep's trial table and front are cached by the sweep's version fingerprint (one cheap
aggregate query), so a page polling a finished 10,000-trial sweep does not reread it every time.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine

from sweepd.front import SweepFront, sweep_front
from sweepd.jsonsafe import json_safe
from sweepd.store import review
from sweepd.store.boxes import box_status
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import NotFound, SweepInfo, find_sweep

REASON_CHARS = 200  # the trial list carries the first line of a failure; the trial view the whole text
# Sweep ids and trial numbers are INTEGER columns, 32-bit on PostgreSQL: a larger value from a URL
# is no row, and asking the database for it raises (PostgreSQL: integer out of range; SQLite:
# OverflowError past 64 bits) instead of finding nothing.
MAX_ROW_NUMBER = 2**31 - 1


class Api:
    """The data behind every endpoint, read through a read-only engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[list[Any], SweepFront]] = {}

    def sweeps(self) -> list[dict[str, Any]]:
        """`/api/sweeps`: every sweep with status, owner, trial counts, best score, cost spent."""
        return [json_safe(asdict(s)) for s in review.sweep_summaries(self.engine)]

    def sweep(self, ref: str) -> dict[str, Any]:
        """`/api/sweeps/{id}`: the summary, its settings and searched params, and a version to poll."""
        info = self._find_sweep(ref)
        summary = review.sweep_summaries(self.engine, [info.id])[0]
        return json_safe({**asdict(summary), "direction": info.spec["settings"].get("direction", "maximize"),
                          "settings": info.spec.get("settings", {}), "params": info.spec.get("params", []),
                          "max_suggestion_cost": info.max_suggestion_cost,
                          "version": review.sweep_version(self.engine, info.id)})

    def trials(self, ref: str) -> list[dict[str, Any]]:
        """`/api/sweeps/{id}/trials`: every trial without its curve, in number order; `steps` trained,
        `truncated` (cut at the cost cap or stopped) and `stopped` (early, by the searcher)."""
        return [_trial_row(t) for t in self._front(ref).trials]

    def trial(self, ref: str, number: str) -> dict[str, Any]:
        """`/api/sweeps/{id}/trials/{n}`: one trial with its learning curve and log tail; `number` as
        the URL gives it (ASCII digits)."""
        info = self._find_sweep(ref)
        row_number = _row_number(number)
        if row_number is None:
            raise NotFound(f"sweep {info.name} has no trial {number}")
        trial = review.get_trial(self.engine, info.id, row_number)
        row = _trial_row(trial, full=True)
        metrics = trial.metrics or {}
        row["curve"] = json_safe(metrics.get("curve", []))
        row["log_tail"] = metrics.get("log_tail", [])
        row["log"] = metrics.get("log")
        return row

    def front(self, ref: str) -> dict[str, Any]:
        """`/api/sweeps/{id}/front`: the seed-averaged Pareto front, cheapest first (as `sweepd pareto`;
        each point with its steps trained, truncated and stopped)."""
        result = self._front(ref)
        return {"sweep": result.sweep.name, "direction": result.sweep.spec["settings"].get("direction", "maximize"),
                "front": json_safe(result.records())}

    def boxes(self) -> list[dict[str, Any]]:
        """`/api/boxes`: boxes, each slot's trial and reservation, as `sweepd boxes` shows them."""
        return [json_safe(asdict(b)) for b in box_status(self.engine)]

    def _find_sweep(self, ref: str) -> SweepInfo:
        """The sweep a URL names, by name or id. A ref the database cannot hold is answered here: no
        name holds a NUL byte (PostgreSQL refuses one in text), and digits past an id column are a
        name only, since the store would also try them as an id."""
        if "\x00" in ref:
            raise NotFound(f"no sweep {ref!r}")
        if ref.isdigit() and _row_number(ref) is None:
            named = [s.id for s in review.sweep_summaries(self.engine) if s.name == ref]
            if not named:
                raise NotFound(f"no sweep '{ref}'")
            ref = str(named[0])
        return find_sweep(self.engine, ref)

    def _front(self, ref: str) -> SweepFront:
        info = self._find_sweep(ref)
        version = review.sweep_version(self.engine, info.id)
        with self._lock:
            cached = self._cache.get(info.id)
        if cached is not None and cached[0] == version:  # the version includes the sweep's status
            return cached[1]
        trials = review.trial_table(self.engine, info.id)
        result = SweepFront(info, trials, sweep_front(info, trials))
        with self._lock:
            self._cache[info.id] = (version, result)
        return result


def _row_number(text: str) -> int | None:
    """An id or trial number from a URL, or None when no row can have it (not ASCII digits, or past
    the column): "²" is a digit to `str.isdigit` but not to `int`."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ROW_NUMBER))):
        return None
    number = int(text)
    return number if number <= MAX_ROW_NUMBER else None


def _trial_row(t: TrialInfo, full: bool = False) -> dict[str, Any]:
    reason = t.failure_reason or None
    if reason and not full:
        reason = reason.splitlines()[0][:REASON_CHARS]
    return {"number": t.number, "kind": t.kind, "status": t.status, "params": t.params, "seed": t.seed,
            "score": json_safe(t.score), "score_stderr": json_safe(t.score_stderr), "cost": json_safe(t.cost),
            "predicted_score": json_safe(t.predicted_score), "predicted_cost": json_safe(t.predicted_cost),
            "truncated": t.truncated, "stopped": t.stopped, "steps": json_safe(t.steps),
            "failure_reason": reason, "failure_category": t.failure_category,
            "box": t.box, "slot": t.slot, "attempts": t.attempts, "started_at": t.started_at,
            "finished_at": t.finished_at}
