"""Commands that read results: `status`, `pareto`, `dashboard`, `baselines`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from sweepd.cli.options import DbOption, JsonOption, existing_engine, require_database
from sweepd.cli.output import CommandError, UsageError, console, print_json, warn


def status(
    sweep: Annotated[str | None, typer.Argument(help="A sweep name or id; all sweeps when left out.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Sweeps, or one sweep's trials (params, score, cost, steps, status, reason) and its Pareto front.

    A run cut at the cost cap or stopped early by the searcher is marked so ("cut", "stopped").
    """
    from sweepd.front import sweep_front
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import find_sweep
    from sweepd.view import sweep_summary, sweep_view, sweeps_table, trial_record

    engine = existing_engine(db)
    if sweep is None:
        from sweepd.store.review import sweep_summaries

        # One GROUP BY instead of every trial's curves: the same numbers as sweep_summary.
        rows = [asdict(s) for s in sweep_summaries(engine)]
        if as_json:
            print_json(rows)
        elif rows:
            console.print(sweeps_table(rows))
        else:
            console.print("no sweeps yet: `sweepd launch snake`")
        return
    info = find_sweep(engine, sweep)
    trials = list_trials(engine, info.id)
    if as_json:
        print_json({"sweep": sweep_summary(info, trials), "trials": [trial_record(t) for t in trials],
                    "front": [asdict(p) for p in sweep_front(info, trials)]})
        return
    console.print(sweep_view(info, trials))


def pareto(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the front as CSV to this file.")] = None,
    png_path: Annotated[Path | None, typer.Option("--png", help="Also plot trials and front as PNG.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """A sweep's Pareto front, seeds averaged: cost, score ± stderr, seeds, steps trained, how each point
    ended (cut at the cost cap, stopped early), params that differ from the centre.

    The same front as the dashboard and the wandb summary run.
    """
    from sweepd.front import load_front, write_csv
    from sweepd.view import front_view

    result = load_front(existing_engine(db), sweep)
    if csv_path is not None:
        write_csv(result, csv_path)
    if png_path is not None:
        from sweepd.plot import PlotUnavailable, save_pareto_png

        try:
            save_pareto_png(result.trials, result.points, png_path, title=f"{result.sweep.name}: cost vs score")
        except PlotUnavailable as exc:
            raise UsageError(str(exc)) from None
    if as_json:
        print_json({"sweep": result.sweep.name, "front": result.records()})
        return
    console.print(front_view(result.points, result.center))
    for label, path in (("csv", csv_path), ("png", png_path)):
        if path is not None:
            console.print(f"{label}: {path}")


def dashboard(
    host: Annotated[str, typer.Option(help="Interface to serve on; anything but loopback exposes every sweep.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8765,
    db: DbOption = None,
) -> None:
    """Serve the read-only dashboard (sweeps, Pareto curves, trials, learning curves, boxes) until Ctrl-C."""
    from sweepd.dashboard.server import ServeError, is_loopback, make_server

    require_database(db)
    if not is_loopback(host):
        warn(f"serving on {host}: the dashboard has no login; anyone who can reach this port can read every sweep")
    try:
        server = make_server(db, host, port)
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    console.print(Text.assemble("sweepd dashboard on ", (server.url, "bold"), " (read-only; Ctrl-C to stop)"))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def baselines(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Per Atari game, the best seed-averaged score any sweep found, next to the PPO paper's."""
    from sweepd.baselines import PPO_PAPER_40M_FRAMES, as_dict
    from sweepd.baselines import baselines as best_scores
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import list_sweeps
    from sweepd.view import baselines_table

    engine = existing_engine(db)
    rows = best_scores([(s, list_trials(engine, s.id)) for s in list_sweeps(engine)
                        if s.env in PPO_PAPER_40M_FRAMES])
    if as_json:
        print_json([as_dict(r) for r in rows])
        return
    console.print(baselines_table(rows))
