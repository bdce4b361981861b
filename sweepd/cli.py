"""The `sweepd` command line: parse, call one function, print. Errors become one red line.

Exit codes: 0 ok, 1 runtime error (database, missing sweep), 2 bad input (sweep file, options).
"""

from __future__ import annotations

import json
import math
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from sweepd.spec import SpecError, load_spec

# Help text is printed as written (no rich markup: "[sweep] max_trials" must not lose "[sweep]").
app = typer.Typer(help="sweepd: cost-aware hyperparameter sweeps for RL on a shared SQL queue.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
# No markup or emoji codes in anything printed: names, reasons and log lines are data ("[rank0]:",
# "arr[i]", "[/path]"), printed as they are. Styles come from Text objects.
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


def _positive(value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"must be a positive number of seconds, got {value:g}")
    return value


DbOption = Annotated[str | None, typer.Option("--db", envvar="SWEEPD_DB",
                                              help="Database URL (default: SQLite in the data dir).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WandbOption = Annotated[bool, typer.Option(
    "--wandb/--no-wandb", help="Log trials and the Pareto front to wandb (online when logged in, else offline; "
                               "WANDB_MODE=disabled also turns it off).")]
WandbProjectOption = Annotated[str | None, typer.Option(help="wandb project (default: the sweep file's "
                                                        "wandb_project, else 'sweepd').")]
SlotsOption = Annotated[int | None, typer.Option(
    min=1, help="How many trials at once (default: one per visible GPU, or 1). Giving --slots runs trials "
                "on CPU, even on a GPU box.")]
LeaseOption = Annotated[float, typer.Option(callback=_positive, help="Lease expiry (s, > 0); heartbeats come "
                                                                     "3x as often.")]
GraceOption = Annotated[float, typer.Option(min=0.0, help="On SIGINT/SIGTERM, time running trials get (s).")]


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class CommandError(Exception):
    """A command could not do its work (exit code 1), said in one line."""


def _engine(db: str | None) -> Any:
    """The database, created or upgraded as needed: for commands that write."""
    from sweepd.store.db import open_store

    return open_store(db)


def _existing_engine(db: str | None) -> Any:
    """`_engine` for commands that only read: a SQLite file that is not there is a typo or a box
    that never ran a sweep, not a database to create empty."""
    _require_database(db)
    return _engine(db)


def _require_database(db: str | None) -> None:
    """CommandError when `db` (or the default URL) names a SQLite file that does not exist."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from sweepd.store.db import default_url, normalize_url

    try:
        url = make_url(normalize_url(db or default_url()))
    except ArgumentError:
        return  # not a URL: the store says so in one line
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        raise CommandError(f"no database at {url.database}; launch a sweep first or pass --db")


def _error(message: object) -> None:
    err_console.print(Text.assemble(("error:", "red"), " ", str(message)), highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    err_console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


@app.command()
def validate(file: Annotated[str, typer.Argument(help="Sweep file path or sweep name.")]) -> None:
    """Check a sweep file (syntax, keys, ranges, env) without running or writing anything."""
    spec = load_spec(file)
    console.print(Text.assemble(("ok", "green"), f": {spec.name}: env={spec.env} trainer={spec.trainer} "
                                f"{len(spec.params)} searched params, cost cap "
                                f"{spec.settings.max_suggestion_cost:g} s, {spec.settings.max_trials} trials "
                                f"({spec.source})"))


@app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="Sweep name or file; leave out to list every sweep name "
                                                    "and PufferLib env.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a resolved sweep: params (space, range, centre), defaults, and where each value came from."""
    from sweepd import view

    if name is None:
        from sweepd.puffer_config import env_names
        from sweepd.spec import sweep_dirs

        files = sorted({p.stem for d in sweep_dirs() if d.is_dir() for p in d.glob("*.toml")})
        if as_json:
            _print_json({"sweep_files": files, "pufferlib": env_names()})
            return
        console.print(view.names_table(files, env_names()))
        return
    spec, origins, notes = _resolved(name)
    if as_json:
        _print_json({"spec": spec.to_json(), "origins": origins, "notes": notes})
        return
    console.print(view.spec_view(spec, origins, notes))


@app.command()
def convert(name: Annotated[str, typer.Argument(help="Sweep name or file (e.g. a PufferLib env: puffer_pong).")]
            ) -> None:
    """Write a resolved sweep as a sweepd sweep file on stdout: `sweepd convert NAME > sweeps/NAME.toml`."""
    from sweepd.convert import to_toml

    spec, origins, notes = _resolved(name)
    sys.stdout.write(to_toml(spec, origins, [f"{n['name']}: {n['action']}: {n['reason']}" for n in notes]))


def _resolved(name: str) -> tuple[Any, dict[str, str], list[dict[str, str]]]:
    """The spec for `name`, with origins and notes when it comes from PufferLib's configs."""
    from sweepd.spec import find_sweep_file

    spec = load_spec(name)
    if find_sweep_file(name).suffix != ".ini":
        return spec, {}, []
    from sweepd.puffer_config import sweep_from_config

    puffer = sweep_from_config(spec.name)
    return spec, dict(puffer.origins), [asdict(n) for n in puffer.notes]


@app.command()
def launch(
    name: Annotated[str, typer.Argument(help="Sweep name (./sweeps/NAME.toml, then bundled, then PufferLib's "
                                             "config for env NAME) or file.")],
    max_trials: Annotated[int | None, typer.Option(help="Override [sweep] max_trials.")] = None,
    max_total_cost: Annotated[float | None, typer.Option(help="Override the total budget (seconds).")] = None,
    max_suggestion_cost: Annotated[float | None, typer.Option(help="Override the per-trial cost cap (s).")] = None,
    searcher: Annotated[str | None, typer.Option(help="carbs or random.")] = None,
    seed: Annotated[int | None, typer.Option(help="The sweep's seed.")] = None,
    sweep_name: Annotated[str | None, typer.Option("--name", help="Name the sweep (default NAME-<n>).")] = None,
    detach: Annotated[bool, typer.Option(help="Only queue the sweep; agents run it.")] = False,
    slots: SlotsOption = None,
    live: Annotated[bool, typer.Option(help="Show the live view (off: log lines only).")] = True,
    lease_seconds: LeaseOption = 60.0,
    grace_seconds: GraceOption = 30.0,
    wandb: WandbOption = True,
    wandb_project: WandbProjectOption = None,
    db: DbOption = None,
) -> None:
    """Start a sweep: write it, then run an agent for it in the foreground unless one runs on this box.

    On a box without a GPU, a sweep with a budget_param (every PufferLib config) first has that
    param's range fitted to the cost cap from a short, cached speed probe."""
    overrides = {"max_trials": max_trials, "max_total_cost": max_total_cost, "searcher": searcher,
                 "max_suggestion_cost": max_suggestion_cost, "seed": seed}
    spec = load_spec(name, overrides)
    from sweepd.agent import current_user, detect_gpus
    from sweepd.store import queue

    if spec.settings.budget_param and spec.trainer == "puffer" and (slots is not None or not detect_gpus()):
        spec = _fit_budget(spec)

    engine = _engine(db)
    sweep = queue.create_sweep(engine, spec.to_json(), owner=current_user(), name=sweep_name)
    console.print(Text.assemble("sweep ", (sweep.name, "bold"),
                                f" (id {sweep.id}): {spec.env}, {len(spec.params)} params, "
                                f"searcher {sweep.searcher}, cap {spec.settings.max_suggestion_cost:g} s/trial, "
                                f"{spec.settings.max_trials} trials"))
    if detach:
        console.print(f"queued; run `sweepd agent` on a box to work on it, `sweepd status {sweep.name}` to follow")
        return
    alive = queue.agent_alive(engine, socket.gethostname(), within=60.0)
    if alive:
        console.print(f"agent {alive} already runs on this box and will pick it up; "
                      f"follow with `sweepd status {sweep.name}`")
        return
    # This agent serves this sweep only, and exits when it stops running: `sweepd agent` serves the rest.
    _run_agent(engine, slots, sweep_ids=[sweep.id], until_sweep=sweep.id, live_sweep=sweep if live else None,
               lease_seconds=lease_seconds, heartbeat_seconds=lease_seconds / 3, grace_seconds=grace_seconds,
               wandb=wandb, wandb_project=wandb_project)
    final = queue.get_sweep(engine, sweep.id)
    from sweepd.store.review import trial_table
    from sweepd.view import sweep_view

    console.print(sweep_view(final, trial_table(engine, sweep.id)))
    if final.status == "paused":
        err_console.print(Text.assemble((f"sweep {final.name} paused:", "red"), f" {final.status_reason}\n"
                                        f"fix the cause, then `sweepd retry {final.name}`"),
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _fit_budget(spec: Any) -> Any:
    """The spec with its budget range fitted to this CPU box (sweepd/budget.py), saying so."""
    from sweepd.budget import ProbeFailed, cache_path, fit_budget, load_or_probe

    if not cache_path(spec).is_file():
        console.print(f"budget: measuring {spec.env}'s training speed on this CPU (a short probe trial, "
                      f"cached)...")
    try:
        probe, cached = load_or_probe(spec)
    except ProbeFailed as exc:
        _warn(f"{exc}; {spec.settings.budget_param} keeps PufferLib's range and trials stop at the cost cap")
        return spec
    fitted, fit = fit_budget(spec, probe, cached)
    console.print(f"budget: {fit.describe(spec.settings.max_suggestion_cost)}", highlight=False)
    return fitted


def _run_agent(engine: Any, slots: int | None, *, until_sweep: int | None = None, live_sweep: Any = None,
               wandb: bool = True, wandb_project: str | None = None, **options: Any) -> None:
    from sweepd.agent import Agent, visible_gpus
    from sweepd.tracking import make_tracker

    # --slots means CPU slots: a GPU box runs that many CPU trials (documented on the option).
    gpus = visible_gpus() if slots is None else []
    device = "cuda" if gpus else "cpu"
    n_slots = slots if slots is not None else (len(gpus) or 1)
    if n_slots < 1:
        raise UsageError(f"--slots must be >= 1, got {n_slots}")
    agent = Agent(engine=engine, slots=n_slots, device=device, gpus=gpus or None, until_sweep=until_sweep,
                  **options)
    url = engine.url.render_as_string(hide_password=False)
    # The tracker logs through the agent's log, which the live view below redirects.
    agent.tracker = make_tracker(url, wandb, wandb_project, log=lambda message: agent.log(message))
    if live_sweep is None:
        agent.run()
        return
    from rich.live import Live

    from sweepd.store.db import make_engine
    from sweepd.view import LiveSweep

    with Live(console=console, refresh_per_second=2, transient=False) as live:
        # The view reads on its own read-only engine: its redraws never take SQLite's write lock.
        view = LiveSweep(make_engine(url, read_only=True), live_sweep, live, n_slots)
        agent.on_tick = view.update
        agent.log = lambda message: live.console.log(message, markup=False, emoji=False, highlight=False)
        agent.run()


@app.command()
def agent(
    slots: SlotsOption = None,
    sweep: Annotated[list[str] | None, typer.Option(help="Only work on these sweeps (repeatable).")] = None,
    lease_seconds: LeaseOption = 60.0,
    grace_seconds: GraceOption = 30.0,
    exit_when_idle: Annotated[bool, typer.Option(help="Exit when no sweep has work left.")] = False,
    until_done: Annotated[bool, typer.Option(
        help="With one --sweep: exit once that sweep no longer runs (finished, paused or stopped), "
             "reaping other agents' expired leases meanwhile.")] = False,
    box: Annotated[str | None, typer.Option(help="This box's name (default: the host name); "
                                            "several agents on one host need distinct names.")] = None,
    wandb: WandbOption = True,
    wandb_project: WandbProjectOption = None,
    db: DbOption = None,
) -> None:
    """Run trials on this box's slots until stopped (Ctrl-C: finish or abandon running trials)."""
    from sweepd.store import queue

    engine = _engine(db)
    sweep_ids = [queue.get_sweep(engine, ref).id for ref in sweep] if sweep else None
    if until_done and (sweep_ids is None or len(sweep_ids) != 1):
        raise UsageError("--until-done needs exactly one --sweep")
    options: dict[str, Any] = {"box": box} if box else {}
    _run_agent(engine, slots, sweep_ids=sweep_ids, lease_seconds=lease_seconds,
               heartbeat_seconds=lease_seconds / 3, grace_seconds=grace_seconds, exit_when_idle=exit_when_idle,
               until_sweep=sweep_ids[0] if until_done and sweep_ids else None,
               wandb=wandb, wandb_project=wandb_project, **options)


@app.command()
def status(
    sweep: Annotated[str | None, typer.Argument(help="A sweep name or id; all sweeps when left out.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Sweeps, or one sweep's trials (params, score, cost, status, reason) and its Pareto front."""
    from sweepd.front import front
    from sweepd.store import queue
    from sweepd.view import sweep_summary, sweep_view, sweeps_table

    engine = _existing_engine(db)
    if sweep is None:
        from sweepd.store.review import sweep_summaries

        # One GROUP BY instead of every trial's curves: the same numbers as sweep_summary.
        rows = [asdict(s) for s in sweep_summaries(engine)]
        if as_json:
            _print_json(rows)
        elif rows:
            console.print(sweeps_table(rows))
        else:
            console.print("no sweeps yet: `sweepd launch snake`")
        return
    info = queue.get_sweep(engine, sweep)
    trials = queue.list_trials(engine, info.id)
    if as_json:
        _print_json({"sweep": sweep_summary(info, trials), "trials": [asdict(t) for t in trials],
                     "front": [asdict(p) for p in front(trials, info.spec["settings"]["direction"])]})
        return
    console.print(sweep_view(info, trials))


@app.command()
def pareto(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the front as CSV to this file.")] = None,
    png_path: Annotated[Path | None, typer.Option("--png", help="Also plot trials and front as PNG.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """A sweep's Pareto front, seeds averaged: cost, score ± stderr, seeds, params that differ from the centre.

    The same front as the dashboard and the wandb summary run.
    """
    from sweepd.front import load_front, write_csv
    from sweepd.view import front_table

    result = load_front(_existing_engine(db), sweep)
    if csv_path is not None:
        write_csv(result, csv_path)
    if png_path is not None:
        from sweepd.plot import PlotUnavailable, save_pareto_png

        try:
            save_pareto_png(result.trials, result.points, png_path, title=f"{result.sweep.name}: cost vs score")
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from None
    if as_json:
        _print_json({"sweep": result.sweep.name, "front": result.records()})
        return
    console.print(front_table(result.points, result.center))
    for label, path in (("csv", csv_path), ("png", png_path)):
        if path is not None:
            console.print(f"{label}: {path}")


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Interface to serve on; anything but loopback exposes every sweep.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8765,
    db: DbOption = None,
) -> None:
    """Serve the read-only dashboard (sweeps, Pareto curves, trials, learning curves, boxes) until Ctrl-C."""
    from sweepd.dashboard.server import ServeError, is_loopback, make_server

    _require_database(db)
    if not is_loopback(host):
        _warn(f"serving on {host}: the dashboard has no login; anyone who can reach this port can read every sweep")
    try:
        server = make_server(db, host, port)
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    console.print(Text.assemble("sweepd dashboard on ", (server.url, "bold"), " (read-only; Ctrl-C to stop)"))
    try:
        server.serve_forever()
    finally:
        server.server_close()


@app.command()
def stop(sweep: Annotated[str, typer.Argument(help="A sweep name or id.")], db: DbOption = None) -> None:
    """Stop a sweep: no new trials; agents stop its running ones (they are re-queued, not lost)."""
    from sweepd.agent import current_user
    from sweepd.store import queue

    info = queue.set_sweep_status(_engine(db), sweep, "stopped", current_user(), "stopped by user")
    console.print(f"sweep {info.name} stopped")


@app.command()
def retry(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    failed: Annotated[bool, typer.Option("--failed", help="Also re-queue failed trials (after a fix).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Re-queue a sweep's abandoned trials (with --failed, failed ones too) and resume it if paused."""
    from sweepd.agent import current_user
    from sweepd.store import queue

    done = queue.retry_sweep(_engine(db), sweep, current_user(), failed=failed)
    if as_json:
        _print_json({"sweep": done.sweep.name, "requeued": list(done.requeued), "resumed": done.resumed,
                     "status": done.sweep.status})
        return
    console.print(f"sweep {done.sweep.name}: re-queued {len(done.requeued)} trial(s)"
                  + (f" {list(done.requeued)}" if done.requeued else "")
                  + ("; resumed" if done.resumed else f"; status {done.sweep.status}"))


@app.command()
def boxes(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every box: its slots, who holds each (user, sweep, trial, since), reservations, last heartbeat."""
    import time

    from sweepd.store.boxes import box_status
    from sweepd.view import boxes_table

    rows = box_status(_existing_engine(db))
    if as_json:
        _print_json([asdict(b) for b in rows])
    elif rows:
        console.print(boxes_table(rows, time.time()))
    else:
        console.print("no boxes yet: a box appears when `sweepd agent` first runs on it")


def _duration(text: str) -> float:
    """'4h', '90m', '1h30m', '2d', '45s' or plain seconds -> seconds."""
    import re

    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"cannot read duration '{text}': use e.g. 4h, 90m, 1h30m, 2d")
    return sum(float(n) * units[u] for n, u in parts)


@app.command()
def reserve(
    box: Annotated[str, typer.Argument(help="The box's name (as `sweepd boxes` lists it).")],
    duration: Annotated[str, typer.Option("--for", help="How long: 4h, 90m, 1h30m, 2d.")],
    slots: Annotated[int | None, typer.Option(help="How many slots (default: all).")] = None,
    note: Annotated[str, typer.Option(help="Why; shown in `sweepd boxes` and the audit log.")] = "",
    force: Annotated[bool, typer.Option("--force", help="Take slots someone else reserved (needs --note).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Reserve a box's slots: agents start only your trials there until the reservation ends."""
    from sweepd.agent import current_user
    from sweepd.store.boxes import reserve_box

    seconds = _duration(duration)
    made = reserve_box(_engine(db), box, current_user(), seconds, slots=slots, note=note, force=force)
    if as_json:
        _print_json(asdict(made))
        return
    console.print(f"reserved {'all' if made.slots is None else made.slots} slot(s) of {made.box} for {made.user} "
                  f"for {duration}" + (f" ({made.note})" if made.note else ""))


@app.command()
def release(
    box: Annotated[str, typer.Argument(help="The box's name.")],
    force: Annotated[bool, typer.Option("--force", help="End someone else's reservation (needs --note).")] = False,
    note: Annotated[str, typer.Option(help="Why (recorded with --force).")] = "",
    db: DbOption = None,
) -> None:
    """End your reservation of a box now (with --force, anyone's)."""
    from sweepd.agent import current_user
    from sweepd.store.boxes import release_box

    ended = release_box(_engine(db), box, current_user(), force=force, note=note)
    console.print(f"released {box}: " + ", ".join(f"{r.user}'s reservation" for r in ended))


@app.command()
def events(
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest events.")] = 50,
    box: Annotated[str | None, typer.Option(help="Only this box's events.")] = None,
    sweep: Annotated[str | None, typer.Option(help="Only this sweep's events (name or id).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. reservation_forced.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The audit log: who launched, leased back, reserved, released, forced or stopped what."""
    from sweepd.store import boxes as store_boxes
    from sweepd.store import queue
    from sweepd.view import events_table

    engine = _existing_engine(db)
    sweep_id = queue.get_sweep(engine, sweep).id if sweep else None
    rows = store_boxes.events(engine, limit, box=box, sweep_id=sweep_id, kind=kind)
    if as_json:
        _print_json([asdict(e) for e in rows])
    else:
        console.print(events_table(rows))


@app.command()
def export(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    trial: Annotated[int, typer.Option("--trial", help="The trial number (see `sweepd status SWEEP`).")],
    out: Annotated[Path, typer.Option(help="File or folder to copy the policy to.")] = Path("."),
    db: DbOption = None,
) -> None:
    """Copy a finished trial's final policy (PyTorch state_dict) out of the sweep's artifacts."""
    from sweepd.artifacts import export_checkpoint
    from sweepd.store import queue

    engine = _existing_engine(db)
    info = queue.get_sweep(engine, sweep)
    match = [t for t in queue.list_trials(engine, info.id) if t.number == trial]
    if not match:
        raise UsageError(f"sweep {info.name} has no trial {trial}")
    console.print(f"trial {trial} of {info.name} -> {export_checkpoint(match[0], out)}")


@app.command()
def prune(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
    db: DbOption = None,
) -> None:
    """Delete the checkpoints of trials off the sweep's Pareto front (front trials keep theirs)."""
    from sweepd.artifacts import prune_checkpoints
    from sweepd.store import queue

    engine = _existing_engine(db)
    info = queue.get_sweep(engine, sweep)
    result = prune_checkpoints(queue.list_trials(engine, info.id), info.spec["settings"]["direction"], dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{info.name}: {verb} {len(result.removed)} checkpoint(s), {result.freed_bytes / 1e6:.1f} MB; "
                  f"kept {len(result.kept)} on the front"
                  + (f"; left {len(result.skipped)} outside their trial's folder" if result.skipped else ""))


@app.command()
def baselines(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Per Atari game, the best seed-averaged score any sweep found, next to the PPO paper's."""
    from rich.table import Table

    from sweepd.baselines import PPO_PAPER_40M_FRAMES, as_dict
    from sweepd.baselines import baselines as best_scores
    from sweepd.store import queue
    from sweepd.view import fmt_cost, fmt_score

    engine = _existing_engine(db)
    rows = best_scores([(s, queue.list_trials(engine, s.id)) for s in queue.list_sweeps(engine)
                        if s.env in PPO_PAPER_40M_FRAMES])
    if as_json:
        _print_json([as_dict(r) for r in rows])
        return
    table = Table(title="Atari: best seed-averaged score vs PPO (Schulman et al. 2017, Table 6, 40M frames)",
                  title_justify="left")
    for column in ("game", "best", "seeds", "cost", "steps", "sweep (trials)", "PPO paper"):
        table.add_column(column, justify="left" if column in ("game", "sweep (trials)") else "right")
    for r in rows:
        table.add_row(r.game, fmt_score(r.best, r.stderr), str(r.seeds or "-"), fmt_cost(r.cost),
                      f"{r.steps:,.0f}" if r.steps else "-",
                      f"{r.sweep} ({','.join(map(str, r.trials))})" if r.sweep else "-", f"{r.paper:g}")
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the database schema to this sweepd's newest migration."""
    from sweepd.store.db import current_revision, head_revision, make_engine, upgrade

    engine = make_engine(db)
    before = current_revision(engine)
    upgrade(engine)
    console.print(f"database {engine.url.render_as_string(hide_password=True)}: "
                  f"{before or 'empty'} -> {head_revision()}")


def main() -> None:
    """Console entry point: run the app, turning known errors into one line and an exit code."""
    from sqlalchemy.exc import DBAPIError

    from sweepd.artifacts import ArtifactError
    from sweepd.store.db import StoreError
    from sweepd.store.queue import NotFound

    try:
        code = app(standalone_mode=False, prog_name="sweepd")
    except (SpecError, UsageError) as exc:
        _error(exc)
        sys.exit(2)
    except (StoreError, NotFound, ArtifactError, CommandError, ValueError) as exc:
        _error(exc)
        sys.exit(1)
    except DBAPIError as exc:
        _error(f"database: {_first_line(exc.orig if exc.orig is not None else exc)}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, _click_exceptions()):  # bad arguments: usage and the error, as click prints them
            exc.show()
            sys.exit(exc.exit_code)
        raise
    # Outside standalone mode typer returns the code of a `raise typer.Exit(code)` instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Click's error base class(es): typer >= 0.29 bundles its own click (`typer._click`), older
    typers raise the installed click's."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


if __name__ == "__main__":
    main()

