"""The cost-vs-score picture of a sweep as a PNG (matplotlib, Agg): `sweepd pareto --png` and the
plot on the sweep's wandb summary run are this one figure.

matplotlib is the `dashboard` extra: it is imported here only, when a picture is asked for.
"""

from __future__ import annotations

import math
from pathlib import Path

from sweepd.front import ConfigResult
from sweepd.store.models import ABANDONED, FAILED, SUCCEEDED
from sweepd.store.review import TrialInfo


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def save_pareto_png(trials: list[TrialInfo], points: list[ConfigResult], path: str | Path, title: str = "") -> Path:
    """Every trial as a point (failures as red crosses on the floor), the front as a step line with
    seed error bars, on a log-cost axis; written to `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on agents and CI; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("the PNG needs matplotlib: pip install 'sweepd[dashboard]'") from exc

    ok = [t for t in trials if t.status == SUCCEEDED and t.score is not None and math.isfinite(t.score)
          and (t.cost or 0) > 0]
    failed = [t for t in trials if t.status in (FAILED, ABANDONED) and (t.cost or 0) > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        ax.set_xscale("log")
        ax.scatter([t.cost for t in ok], [t.score for t in ok], s=14, color="#7a8da6", alpha=0.7,
                   label=f"trials ({len(ok)})", zorder=2)
        if failed:
            scores = [t.score for t in ok] or [0.0]
            floor = min(scores)
            ax.scatter([t.cost for t in failed], [floor] * len(failed), marker="x", color="#c0392b", s=22,
                       label=f"failed ({len(failed)})", zorder=2)
        shown = [p for p in points if p.cost > 0]
        if shown:
            costs, scores = [p.cost for p in shown], [p.score for p in shown]
            ax.step(costs, scores, where="post", color="#e67e22", lw=1.6, zorder=3)
            ax.errorbar(costs, scores, yerr=[p.score_stderr for p in shown], fmt="o", color="#e67e22",
                        ms=5, capsize=3, label=f"Pareto front ({len(shown)})", zorder=4)
        _cost_ticks(ax, [t.cost for t in ok + failed if t.cost] + [p.cost for p in shown])
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
