"""Commands that take a result out of a sweep: `best`."""

from __future__ import annotations

from typing import Annotated

import typer

from sweepd.cli.options import DbOption, duration, existing_engine
from sweepd.cli.output import CommandError, UsageError, console, print_json


def best(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    at_cost: Annotated[str | None, typer.Option("--at-cost", help="Only results whose mean cost is at most this: "
                                                                  "90, 90s, 30m, 4h, 1h30m.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="toml: a sweep file that reruns it; json: the result and "
                                                      "its config; args: PufferLib command-line arguments.")]
    = "toml",
    db: DbOption = None,
) -> None:
    """Print the sweep's seed-averaged best config (at or under --at-cost): a sweep file that reruns
    it, JSON, or PufferLib arguments (`puffer train ENV $(sweepd best SWEEP --format args)`)."""
    from sweepd.best import FORMATS, as_args, as_json, as_toml, best_config
    from sweepd.store.review import trial_table
    from sweepd.store.sweeps import find_sweep

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    limit = duration(at_cost) if at_cost is not None else None
    engine = existing_engine(db)
    info = find_sweep(engine, sweep)
    chosen = best_config(info, trial_table(engine, info.id), limit)
    if chosen is None:
        raise CommandError(f"sweep {info.name} has no full-length result" + (
            f" at or under {limit:g} s" if limit is not None else " yet"))
    if fmt == "json":
        print_json(as_json(chosen))
    else:
        console.print(as_toml(chosen) if fmt == "toml" else as_args(chosen), end="" if fmt == "toml" else "\n",
                      soft_wrap=True, highlight=False)
