"""Commands that run trials: `launch` (write a sweep, serve it here) and `agent` (serve sweeps)."""

from __future__ import annotations

import socket
from typing import Annotated, Any

import typer
from rich.text import Text

from sweepd.cli.options import (
    DbOption,
    GraceOption,
    LeaseOption,
    SlotsOption,
    TrialsPerGpuOption,
    WandbOption,
    WandbProjectOption,
    open_engine,
)
from sweepd.cli.output import UsageError, console, err_console, warn
from sweepd.search import SEARCHERS, require_dependency
from sweepd.spec import load_spec


def launch(
    name: Annotated[str, typer.Argument(help="Sweep name (./sweeps/NAME.toml, then bundled, then PufferLib's "
                                             "config for env NAME) or file.")],
    max_trials: Annotated[int | None, typer.Option(help="Override [sweep] max_trials.")] = None,
    max_total_cost: Annotated[float | None, typer.Option(help="Override the total budget (seconds).")] = None,
    max_suggestion_cost: Annotated[float | None, typer.Option(help="Override the per-trial cost cap (s).")] = None,
    searcher: Annotated[str | None, typer.Option(help=f"One of {', '.join(SEARCHERS)}.")] = None,
    seed: Annotated[int | None, typer.Option(help="The sweep's seed.")] = None,
    sweep_name: Annotated[str | None, typer.Option("--name", help="Name the sweep (default NAME-<n>).")] = None,
    warm_start: Annotated[str | None, typer.Option(
        "--warm-start", metavar="SWEEP", help="Start from that sweep's finished results (same env; every param it "
                                              "searched must be one of this sweep's), observed, not re-run.")] = None,
    detach: Annotated[bool, typer.Option(help="Only queue the sweep; agents run it.")] = False,
    slots: SlotsOption = None,
    trials_per_gpu: TrialsPerGpuOption = None,
    device: Annotated[str | None, typer.Option(
        help="The sweep's hardware class, cpu or cuda: only agents of that class run it (default: the "
             "sweep file's [sweep] device, else this box's class).")] = None,
    live: Annotated[bool, typer.Option(help="Show the live view (off: log lines only).")] = True,
    lease_seconds: LeaseOption = 60.0,
    grace_seconds: GraceOption = 30.0,
    wandb: WandbOption = True,
    wandb_project: WandbProjectOption = None,
    db: DbOption = None,
) -> None:
    """Start a sweep: write it, then run an agent for it in the foreground unless one runs on this box.

    On a box of the sweep's hardware class, a sweep with a budget_param (every PufferLib config) first
    has that param's range fitted to the cost cap from a short, cached speed probe. A sweep of another
    class than this box's needs --detach: agents of its class run it."""
    from sweepd.budget import fits_here
    from sweepd.host import box_device, current_user, plan_slots
    from sweepd.puffer_config import cpu_cap_applied
    from sweepd.store.boxes import live_agent
    from sweepd.store.sweeps import create_sweep, find_sweep
    from sweepd.warm_start import apply_warm_start, read_warm_start

    here = box_device(slots)
    overrides = {"max_trials": max_trials, "max_total_cost": max_total_cost, "searcher": searcher,
                 "max_suggestion_cost": max_suggestion_cost, "seed": seed, "device": device,
                 "trials_per_gpu": trials_per_gpu}
    spec = load_spec(name, overrides, device=here)
    require_dependency(spec.settings.searcher)  # a missing optional package: one line now, not a paused sweep
    if spec.settings.device != here and not detach:
        raise UsageError(f"this is a {here} box and the sweep runs on {spec.settings.device}: add --detach to "
                         f"queue it for a {spec.settings.device} box's `sweepd agent`, or --device {here}")
    per_gpu = spec.settings.trials_per_gpu or 1
    if fits_here(spec, here):
        planned = plan_slots(slots, per_gpu)
        spec = _fit_budget(spec, planned.gpus[0] if planned.gpus else None)

    engine = open_engine(db)
    warm = read_warm_start(engine, warm_start, spec) if warm_start else None  # refused before anything is written
    sweep = create_sweep(engine, spec.to_json(), owner=current_user(), name=sweep_name)
    console.print(Text.assemble("sweep ", (sweep.name, "bold"),
                                f" (id {sweep.id}): {spec.env} on {spec.settings.device}, {len(spec.params)} "
                                f"params, searcher {sweep.searcher}, cap {spec.settings.max_suggestion_cost:g} s/trial"
                                + (" (CPU-sized default: PufferLib's default.ini sets 3600 s for GPU runs; "
                                   "--max-suggestion-cost to change)" if cpu_cap_applied(spec) else "")
                                + f", {spec.settings.max_trials} trials"))
    if warm is not None:
        console.print(apply_warm_start(engine, sweep, warm, current_user()))
    if detach:
        console.print(f"queued; run `sweepd agent` on a box to work on it, `sweepd status {sweep.name}` to follow")
        return
    host = socket.gethostname()
    running = live_agent(engine, host, within=60.0)
    if running is not None and running.serves_sweep(sweep.id, spec.settings.device):
        console.print(f"agent {running.agent} already runs on this box and will pick it up; "
                      f"follow with `sweepd status {sweep.name}`")
        return
    own_box: dict[str, str] = {}
    if running is not None:
        # That agent (another launch's, or `sweepd agent --sweep`) never leases this sweep: run one
        # for it beside it, as a box of its own (a box row is one agent's).
        own_box["box"] = f"{host}-launch-{sweep.id}"
        serves = f"only sweep id(s) {', '.join(map(str, running.serves))}" if running.serves is not None \
            else f"{running.device} sweeps only"
        console.print(f"agent {running.agent} on this box serves {serves}: running an agent for {sweep.name} here")
    # This agent serves this sweep only, and exits when it stops running: `sweepd agent` serves the rest.
    _run_agent(engine, slots, per_gpu, sweep_ids=[sweep.id], until_sweep=sweep.id,
               live_sweep=sweep if live else None,
               lease_seconds=lease_seconds, heartbeat_seconds=lease_seconds / 3, grace_seconds=grace_seconds,
               wandb=wandb, wandb_project=wandb_project, **own_box)
    final = find_sweep(engine, sweep.id)
    from sweepd.store.review import trial_table
    from sweepd.view import sweep_view

    console.print(sweep_view(final, trial_table(engine, sweep.id)))
    if final.status == "paused":
        err_console.print(Text.assemble((f"sweep {final.name} paused:", "red"), f" {final.status_reason}\n"
                                        f"fix the cause, then `sweepd retry {final.name}` "
                                        f"(`sweepd resume {final.name}` after a pause)"),
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _fit_budget(spec: Any, gpu: str | None) -> Any:
    """The spec with its budget range fitted to this box (sweepd/budget.py; a CUDA sweep's probe
    trains on `gpu`), saying so."""
    from sweepd.budget import ProbeFailed, cache_path, fit_budget, load_or_probe

    if not cache_path(spec).is_file():
        where = f"GPU {gpu}" if spec.settings.device == "cuda" else "CPU"
        console.print(f"budget: measuring {spec.env}'s training speed on this {where} (a short probe trial, "
                      f"cached)...")
    try:
        probe, cached = load_or_probe(spec, gpu)
    except ProbeFailed as exc:
        warn(f"{exc}; {spec.settings.budget_param} keeps PufferLib's range and trials stop at the cost cap")
        return spec
    fitted, fit = fit_budget(spec, probe, cached)
    console.print(f"budget: {fit.describe(spec.settings.max_suggestion_cost)}", highlight=False)
    return fitted


def _run_agent(engine: Any, slots: int | None, trials_per_gpu: int, **options: Any) -> None:
    """`foreground.run_agent` on the slots `--slots` and `--trials-per-gpu` ask for (sweepd/host.py)."""
    from sweepd.foreground import run_agent
    from sweepd.host import plan_slots

    planned = plan_slots(slots, trials_per_gpu)
    if planned.count < 1:
        raise UsageError(f"--slots must be >= 1, got {planned.count}")
    run_agent(engine, planned, console, **options)


def agent(
    slots: SlotsOption = None,
    trials_per_gpu: Annotated[int, typer.Option(
        min=1, help="Trials at once on each GPU (each slot pinned to its GPU by CUDA_VISIBLE_DEVICES; "
                    "`sweepd boxes` shows them as GPU:slot).")] = 1,
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
    from sweepd.store.sweeps import find_sweep

    engine = open_engine(db)
    sweep_ids = [find_sweep(engine, ref).id for ref in sweep] if sweep else None
    if until_done and (sweep_ids is None or len(sweep_ids) != 1):
        raise UsageError("--until-done needs exactly one --sweep")
    options: dict[str, Any] = {"box": box} if box else {}
    _run_agent(engine, slots, trials_per_gpu, sweep_ids=sweep_ids, lease_seconds=lease_seconds,
               heartbeat_seconds=lease_seconds / 3, grace_seconds=grace_seconds, exit_when_idle=exit_when_idle,
               until_sweep=sweep_ids[0] if until_done and sweep_ids else None,
               wandb=wandb, wandb_project=wandb_project, **options)
