"""What a person sees in the terminal: sweep, trial and front tables, and launch's live view.

Every name, reason, param and note is data, put in tables as `Text`, never as rich markup: a
failure reason "[rank0]: CUDA error" or an origin "pong.ini [train]" prints as it is.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from sweepd.front import MARK_LEGEND, ConfigResult, end_mark, sweep_front
from sweepd.space import as_text
from sweepd.store.review import TrialInfo
from sweepd.store.sweeps import SweepInfo

STATUS_STYLE = {"succeeded": "green", "failed": "red", "abandoned": "yellow", "running": "cyan",
                "leased": "cyan", "queued": "white"}


def fmt_score(value: float | None, stderr: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}" + (f" ± {stderr:.2g}" if stderr else "")


def fmt_cost(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def fmt_steps(steps: float | None) -> str:
    """Agent steps, short: 950, 34.5K, 3.9M."""
    if steps is None or not math.isfinite(steps):
        return "-"
    if steps >= 1e6:
        return f"{steps / 1e6:.3g}M"
    return f"{steps / 1e3:.3g}K" if steps >= 1e3 else f"{steps:.0f}"


def mark_legend(marks: set[str]) -> Text | None:
    """The legend line under a table that marks cut or stopped runs (None when it marks none)."""
    shown = [f"{mark}: {MARK_LEGEND[mark]}" for mark in MARK_LEGEND if mark in marks]
    return Text("; ".join(shown) + "; steps: agent steps trained", style="dim") if shown else None


def fmt_params(params: dict[str, Any], center: dict[str, Any] | None = None) -> str:
    """Params as short `key=value` pairs; with `center`, only those that differ from it."""
    parts = []
    for name, value in params.items():
        if center is not None and _same(center.get(name), value):
            continue
        parts.append(f"{name.split('.')[-1]}={fmt_value(value)}")
    return ", ".join(parts) or "(centre)"


def fmt_value(value: Any, digits: int = 3) -> str:
    """A param's value, short: floats to `digits` significant digits, anything else as a sweep file
    writes it (a choice's value as listed, booleans true/false)."""
    return f"{value:.{digits}g}" if isinstance(value, float) else as_text(value)


def _same(a: Any, b: Any) -> bool:
    """Equal, or equal floats after a round trip through the search space."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b  # True == 1 to Python, not to a sweep
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def sweep_summary(sweep: SweepInfo, trials: list[TrialInfo]) -> dict[str, Any]:
    """Counts, best score and cost spent: one row of `sweepd status`."""
    counts = Counter(t.status for t in trials)
    direction = sweep.spec["settings"]["direction"]
    done = [t for t in trials if t.status == "succeeded"]
    scores = [t.score for t in done if t.score is not None]
    best = (max(scores) if direction == "maximize" else min(scores)) if scores else None
    marks = Counter(end_mark(t.truncated, t.stopped) for t in done)
    return {"id": sweep.id, "name": sweep.name, "env": sweep.env, "owner": sweep.owner, "status": sweep.status,
            "reason": sweep.status_reason, "trials": len(trials), "max_trials": sweep.max_trials,
            "succeeded": counts["succeeded"], "failed": counts["failed"] + counts["abandoned"],
            "stopped": marks["stopped"], "cut": marks["cut"],
            "running": counts["running"] + counts["leased"], "queued": counts["queued"], "best_score": best,
            "cost_spent": sum(t.spent for t in trials)}  # every attempt, as the budget counts (sweep_summaries)


def trial_record(trial: TrialInfo) -> dict[str, Any]:
    """A trial as `sweepd status SWEEP --json` shows it: every field but its lease's fencing token
    (`lock_token`: whoever has it can write the trial's result). `lock_owner`, the agent holding the
    lease, stays: it names a box and process, as the events do."""
    record = asdict(trial)
    del record["lock_token"]
    return record


def sweeps_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="sweeps", title_justify="left")
    numeric = ("trials", "running", "failed", "stopped", "cut", "best", "spent")
    for column in ("sweep", "env", "owner", "status", *numeric):
        table.add_column(column, justify="right" if column in numeric else "left")
    for r in rows:
        status = r["status"] + (f" ({r['reason']})" if r["reason"] else "")
        table.add_row(Text(r["name"]), Text(r["env"]), Text(r["owner"]), Text(status),
                      f"{r['succeeded']}/{r['max_trials'] or '-'}", str(r["running"]), str(r["failed"]),
                      str(r["stopped"]), str(r["cut"]), fmt_score(r["best_score"]), fmt_cost(r["cost_spent"]))
    return table


def trials_table(trials: list[TrialInfo], center: dict[str, Any] | None = None, limit: int | None = None,
                 budget_param: str | None = None) -> Table:
    """Trials with how each ended: a cut or stopped run says so after its status, and its steps
    column reads trained/planned (planned: its `budget_param` value)."""
    table = Table(title="trials", title_justify="left")
    for column in ("#", "kind", "status", "score", "cost", "steps", "params", "reason"):
        table.add_column(column, justify="right" if column in ("#", "score", "cost", "steps") else "left",
                         overflow="fold", max_width=60 if column == "reason" else None)
    shown = trials[-limit:] if limit else trials
    for t in shown:
        mark = end_mark(t.truncated, t.stopped)
        status = t.status + (f" ({mark})" if mark else "")
        table.add_row(str(t.number), Text(t.kind), Text(status, style=STATUS_STYLE.get(t.status, "")),
                      fmt_score(t.score, t.score_stderr), fmt_cost(t.cost), _trial_steps(t, mark, budget_param),
                      Text(fmt_params(t.params, center)), Text(_one_line(t.failure_reason)))
    return table


def _trial_steps(trial: TrialInfo, mark: str, budget_param: str | None) -> str:
    """Steps trained; a cut or stopped run's as trained/planned; a run without reported steps, its plan
    (once it has finished it)."""
    planned = trial.params.get(budget_param) if budget_param else None
    planned = float(planned) if isinstance(planned, int | float) else None
    if trial.steps is None:
        return fmt_steps(planned) if trial.status == "succeeded" and not mark else "-"
    return f"{fmt_steps(trial.steps)}/{fmt_steps(planned)}" if mark and planned else fmt_steps(trial.steps)


def _one_line(text: str | None, width: int = 160) -> str:
    """A reason as one short line; the whole text stays in `sweepd status SWEEP --json`."""
    line = (text or "").strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def front_table(points: list[ConfigResult], center: dict[str, Any] | None = None) -> Table:
    """The front with the steps each point trained and how it ended ("cut", "stopped": see
    `mark_legend`); params are as planned."""
    table = Table(title="Pareto front (cost vs score, seeds averaged)", title_justify="left")
    for column in ("cost", "score", "seeds", "steps", "end", "trials", "params (vs centre)"):
        table.add_column(column, justify="right" if column in ("cost", "score", "seeds", "steps") else "left")
    for p in points:
        table.add_row(fmt_cost(p.cost), fmt_score(p.score, p.score_stderr), str(p.seeds), fmt_steps(p.steps),
                      Text(p.mark, style="yellow"), ",".join(map(str, p.trials)), Text(fmt_params(p.params, center)))
    return table


def front_view(points: list[ConfigResult], center: dict[str, Any] | None = None) -> Group:
    """`sweepd pareto`: the front table, and the legend line when it marks a point."""
    return Group(front_table(points, center), *_present(mark_legend({p.mark for p in points})))


def _present(*parts: Any) -> list[Any]:
    return [part for part in parts if part is not None]


def center_of(sweep: SweepInfo) -> dict[str, Any]:
    return {p["name"]: p["center"] for p in sweep.spec["params"]}


def sweep_view(sweep: SweepInfo, trials: list[TrialInfo], limit: int | None = None) -> Group:
    """One sweep: its summary line, its trials, its front."""
    s = sweep_summary(sweep, trials)
    center = center_of(sweep)
    header = Text.assemble(
        (f"{sweep.name}", "bold"), f"  env={sweep.env}  searcher={sweep.searcher}  status={sweep.status}",
        (f" ({sweep.status_reason})" if sweep.status_reason else "", "yellow"),
        f"  done {s['succeeded']}/{sweep.max_trials or '-'}  running {s['running']}  failed {s['failed']}"
        f"  stopped {s['stopped']}  cut {s['cut']}"
        f"  spent {fmt_cost(s['cost_spent'])}  best {fmt_score(s['best_score'])}")
    budget_param = sweep.spec["settings"].get("budget_param") or None
    points = sweep_front(sweep, trials)
    shown = trials[-limit:] if limit else trials
    legend = mark_legend({end_mark(t.truncated, t.stopped) for t in shown} | {p.mark for p in points})
    return Group(header, trials_table(trials, center, limit, budget_param), front_table(points, center),
                 *_present(legend))


class LiveSweep:
    """Launch's live view: redraws at most once a second from the database."""

    def __init__(self, engine: Any, sweep: SweepInfo, live: Any, slots: int) -> None:
        self.engine, self.sweep, self.live, self.slots = engine, sweep, live, slots
        self.started = time.monotonic()
        self._next = 0.0

    def update(self, _agent: Any = None) -> None:
        """Redraw from the database (trials without their curves); runs in the agent's loop, so a
        database error only skips this redraw: the agent rides out outages and so does its view."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 1.0
        from sqlalchemy.exc import DBAPIError

        from sweepd.store.review import trial_table
        from sweepd.store.sweeps import find_sweep

        try:
            sweep = find_sweep(self.engine, self.sweep.id)
            trials = trial_table(self.engine, sweep.id)
        except DBAPIError:
            return
        self.live.update(Group(sweep_view(sweep, trials, limit=12), Text(self._eta(sweep, trials), style="dim")))

    def _eta(self, sweep: SweepInfo, trials: list[TrialInfo]) -> str:
        done = [t for t in trials if t.finished_at is not None]
        elapsed = time.monotonic() - self.started
        if not done or not sweep.max_trials:
            return f"elapsed {fmt_cost(elapsed)}"
        mean_cost = sum(t.cost or 0.0 for t in done) / len(done)
        remaining = max(0, sweep.max_trials - len(done))
        return f"elapsed {fmt_cost(elapsed)}, about {fmt_cost(remaining * mean_cost / max(1, self.slots))} to go"


def _clock(epoch: float | None) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def boxes_table(boxes: list[Any], now: float) -> Table:
    """`sweepd boxes`: one row per slot (who holds it, since when, whose reservation covers it); a
    box's hardware class by its name, a cuda slot as GPU:slot."""
    table = Table(title="boxes", title_justify="left")
    for column in ("box", "class", "slot", "user", "sweep", "trial", "since", "reserved by", "until",
                   "agent / last beat"):
        table.add_column(column, justify="right" if column in ("slot", "trial") else "left")
    for box in boxes:
        seen = f"{box.state}, {fmt_cost(box.seen_ago)} ago"
        for view in box.slot_views:
            table.add_row(Text(box.name if view.slot == 0 else ""), box.device if view.slot == 0 else "",
                          Text(f"{view.gpu}:{view.slot}" if view.gpu is not None else str(view.slot)),
                          Text(view.user or "-"),
                          Text(view.sweep or "-"), "-" if view.trial is None else str(view.trial),
                          fmt_cost(now - view.since) if view.since else "-",
                          Text(view.reserved_by or ""), _clock(view.reserved_until) if view.reserved_by else "",
                          Text(seen if view.slot == 0 else ""))
        for r in box.reservations:
            if r.starts_at > now:  # made for later: not on a slot yet
                table.add_row("", "", "", "", "", "", "", Text(f"{r.user} (from {_clock(r.starts_at)})"),
                              _clock(r.until), "")
    return table


def events_table(events: list[Any]) -> Table:
    """`sweepd events`: the audit log, oldest first."""
    table = Table(title="events", title_justify="left")
    for column in ("time", "actor", "event", "box", "sweep", "trial", "detail"):
        table.add_column(column, overflow="fold", max_width=70 if column == "detail" else None)
    for e in events:
        table.add_row(_clock(e.at), Text(e.actor), Text(e.kind), Text(e.box or ""),
                      "" if e.sweep_id is None else str(e.sweep_id), "" if e.trial_id is None else str(e.trial_id),
                      Text(e.detail or ""))
    return table


def spec_view(spec: Any, origins: dict[str, str], notes: list[dict[str, str]]) -> Group:
    """A resolved sweep (`sweepd show`): settings, searched params, defaults and the mapping's notes,
    each value with where it came from (PufferLib's ini file and section, or sweepd)."""
    from sweepd.spec import SETTING_KEYS

    header = Text.assemble((f"{spec.name}", "bold"), f": env {spec.env}, trainer {spec.trainer}\n",
                           ("source: ", "dim"), spec.source)
    # Cells are Text, not markup: origins like "ocean/pong.ini [train]" hold brackets.
    settings = Table(title=Text("[sweep]"), title_justify="left", box=None, pad_edge=False)
    for column in ("setting", "value", "from"):
        settings.add_column(column, style="dim" if column == "from" else None)
    for key in SETTING_KEYS:
        settings.add_row(key, Text(repr(getattr(spec.settings, key))), Text(origins.get(f"sweep.{key}", "")))
    params = Table(title=f"searched params ({len(spec.params)}; the first trial is the centre)",
                   title_justify="left", box=None, pad_edge=False)
    for column in ("param", "space", "min", "max", "centre", "int", "scale", "range from", "centre from"):
        params.add_column(column, style="dim" if column.endswith("from") else None)
    for p in spec.params:
        # A choice's values fill the min and max columns: its range is the list.
        low, high = ((Text("[" + ", ".join(map(as_text, p.values)) + "]"), "") if p.is_choice
                     else (f"{p.min:.4g}", f"{p.max:.4g}"))
        params.add_row(Text(p.name), p.space, low, high, Text(fmt_value(p.center, 4)),
                       "yes" if p.is_integer else "", "" if p.scale is None else f"{p.scale:.3g}",
                       Text(origins.get(f"search.{p.name}.{'values' if p.is_choice else 'min'}", "")),
                       Text(origins.get(f"search.{p.name}.center", "")))
    defaults = Table(title="defaults of every trial", title_justify="left", box=None, pad_edge=False)
    for column in ("key", "value", "from"):
        defaults.add_column(column, style="dim" if column == "from" else None)
    for section, values in spec.defaults.items():
        for key, value in values.items():
            defaults.add_row(Text(f"{section}.{key}"), Text(repr(value)), Text(origins.get(f"{section}.{key}", "")))
    parts: list[Any] = [header, settings, params, defaults]
    if notes:
        table = Table(title="mapping notes", title_justify="left", box=None, pad_edge=False)
        for column in ("key", "action", "why"):
            table.add_column(column)
        style = {"skipped": "yellow", "pinned": "cyan", "adjusted": "", "ignored": "dim"}
        for note in notes:
            table.add_row(Text(note["name"]), Text(note["action"], style=style.get(note["action"], "")),
                          Text(note["reason"]))
        parts.append(table)
    return Group(*parts)


def sizing_view(env: str, device: str, sizings: dict[str, dict[str, Any]], overridden: set[str]) -> Table:
    """`sweepd show`: the env family's CPU and CUDA sizings side by side (`sizings` maps "cpu" and
    "cuda" to {"section.key": value}); a trial on `device` takes its column, where the sweep's own
    defaults (`overridden`) do not set the key. A key one sizing leaves out keeps PufferLib's ini value."""
    table = Table(title=f"env family sizing of {env} (a {device} trial takes the {device} column)",
                  title_justify="left", box=None, pad_edge=False)
    for column in ("key", "cpu", "cuda", ""):
        table.add_column(column, style="bold" if column == device else None)
    for key in sorted(set(sizings["cpu"]) | set(sizings["cuda"])):
        table.add_row(Text(key), *(Text(repr(sizings[d][key]) if key in sizings[d] else "PufferLib's ini")
                                   for d in ("cpu", "cuda")),
                      Text("the sweep sets or searches it" if key in overridden else "", style="dim"))
    return table


def names_table(files: list[str], puffer_envs: list[str]) -> Group:
    """Every name `sweepd launch` takes: sweep files, then PufferLib envs that have no sweep file."""
    shadowed = set(files)
    rest = [name for name in puffer_envs if name not in shadowed]
    return Group(Text.assemble(("sweep files: ", "bold"), ", ".join(files) or "none"),
                 Text.assemble((f"PufferLib configs ({len(rest)} more): ", "bold"), ", ".join(rest) or "none"))


def baselines_table(rows: list[Any]) -> Table:
    """`sweepd baselines`: per Atari game, the best seed-averaged score next to the PPO paper's."""
    table = Table(title="Atari: best seed-averaged score vs PPO (Schulman et al. 2017, Table 6, 40M frames)",
                  title_justify="left")
    for column in ("game", "best", "seeds", "cost", "steps", "sweep (trials)", "PPO paper"):
        table.add_column(column, justify="left" if column in ("game", "sweep (trials)") else "right")
    for r in rows:
        table.add_row(r.game, fmt_score(r.best, r.stderr), str(r.seeds or "-"), fmt_cost(r.cost),
                      f"{r.steps:,.0f}" if r.steps else "-",
                      f"{r.sweep} ({','.join(map(str, r.trials))})" if r.sweep else "-", f"{r.paper:g}")
    return table
