"""The cost-vs-score picture of a sweep as a PNG (matplotlib, Agg): `sweepd pareto --png` and the
plot on the sweep's wandb summary run are this one figure.

matplotlib is the `dashboard` extra: it is imported here only, when a picture is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sweepd.front import CUT, STOPPED, ConfigResult, end_mark
from sweepd.store.models import ABANDONED, FAILED, SUCCEEDED
from sweepd.store.review import TrialInfo

# How a run ended -> (marker, legend label): full runs are dots, cut and stopped ones stand apart.
MARKERS = {"": ("o", "trials"), CUT: ("v", "cut at the cost cap"), STOPPED: ("s", "stopped early")}
TRIAL_COLOR, FRONT_COLOR, FAILED_COLOR = "#7a8da6", "#e67e22", "#c0392b"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class Series:
    """Points the picture draws alike, one legend entry: trials that ended one way, failures (on the
    floor: they have no score), or front points that ended one way (with seed error bars)."""

    label: str
    marker: str
    color: str
    costs: list[float]
    scores: list[float]
    trials: list[int]                  # trial numbers (a front point: its first trial)
    stderrs: list[float] | None = None  # front points only


def pareto_series(trials: list[TrialInfo], points: list[ConfigResult]) -> list[Series]:
    """What `save_pareto_png` draws, legend entry by legend entry (those with no points left out,
    but for the plain trials)."""
    ok = [t for t in trials if t.status == SUCCEEDED and t.score is not None and math.isfinite(t.score)
          and (t.cost or 0) > 0]
    failed = [t for t in trials if t.status in (FAILED, ABANDONED) and (t.cost or 0) > 0]
    series = []
    for mark, (marker, label) in MARKERS.items():
        group = [t for t in ok if end_mark(t.truncated, t.stopped) == mark]
        if group or not mark:
            series.append(Series(f"{label} ({len(group)})", marker, TRIAL_COLOR, [t.cost or 0.0 for t in group],
                                 [t.score or 0.0 for t in group], [t.number for t in group]))
    if failed:
        floor = min([t.score or 0.0 for t in ok] or [0.0])
        series.append(Series(f"failed ({len(failed)})", "x", FAILED_COLOR, [t.cost or 0.0 for t in failed],
                             [floor] * len(failed), [t.number for t in failed]))
    for mark, (marker, label) in MARKERS.items():
        front = [p for p in points if p.cost > 0 and p.mark == mark]
        if front:
            name = f"Pareto front ({len(front)})" if not mark else f"front, {label} ({len(front)})"
            series.append(Series(name, marker, FRONT_COLOR, [p.cost for p in front], [p.score for p in front],
                                 [p.trials[0] for p in front], [p.score_stderr for p in front]))
    return series


def save_pareto_png(trials: list[TrialInfo], points: list[ConfigResult], path: str | Path, title: str = "") -> Path:
    """Every trial as a point (failures as red crosses on the floor), the front as a step line with
    seed error bars, on a log-cost axis; runs cut at the cost cap (triangles) and stopped early
    (squares) marked apart from full runs (dots); written to `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on agents and CI; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("the PNG needs matplotlib: pip install 'sweepd[dashboard]'") from exc

    series = pareto_series(trials, points)
    shown = [p for p in points if p.cost > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        ax.set_xscale("log")
        if shown:
            ax.step([p.cost for p in shown], [p.score for p in shown], where="post", color=FRONT_COLOR, lw=1.6,
                    zorder=3)
        for s in series:
            if s.stderrs is not None:
                ax.errorbar(s.costs, s.scores, yerr=s.stderrs, fmt=s.marker, color=s.color, ms=5, capsize=3,
                            label=s.label, zorder=4)
            else:
                ax.scatter(s.costs, s.scores, s=22 if s.marker != "o" else 14, marker=s.marker, color=s.color,
                           alpha=0.7 if s.color == TRIAL_COLOR else 1.0, label=s.label, zorder=2)
        _cost_ticks(ax, [c for s in series for c in s.costs])
        ax.set_xlabel("cost (log scale)")
        ax.set_ylabel("score")
        ax.set_title(title or "cost vs score")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _cost_ticks(ax: object, costs: list[float]) -> None:
    """Tick labels in sweepd's units (12.0s, 3.5m, 1.2h), not 10^x; minor ticks labelled when the
    costs span less than a decade (else matplotlib would leave the axis nearly bare)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from sweepd.view import fmt_cost

    label = FuncFormatter(lambda value, _pos: fmt_cost(value))
    ax.xaxis.set_major_formatter(label)  # type: ignore[attr-defined]
    narrow = bool(costs) and max(costs) < 10 * min(costs)
    ax.xaxis.set_minor_formatter(label if narrow else NullFormatter())  # type: ignore[attr-defined]
