"""Commands that change a sweep's course: `pause`, `resume`, `stop`, `retry`, `extend`, `enqueue`.

A sweep's lifecycle (store/sweeps.py): pause and resume as often as you like; `stop` is final;
a finished sweep (budget spent) runs again when `extend` raises its budget. Every command here
writes, so a mistyped --db is refused (no empty database is created).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sweepd.cli.options import DbOption, JsonOption, duration, existing_engine
from sweepd.cli.output import UsageError, console, print_json

SweepArgument = Annotated[str, typer.Argument(help="A sweep name or id.")]


def pause(
    sweep: SweepArgument,
    requeue: Annotated[bool, typer.Option(
        "--requeue", help="Take running trials back now (they run again on resume) instead of letting them "
                          "finish.")] = False,
    db: DbOption = None,
) -> None:
    """Pause a sweep: no new trials start. Running trials finish and are recorded (default), or with
    --requeue are stopped and queued again. `sweepd resume` continues it."""
    from sweepd.host import current_user
    from sweepd.store.sweeps import pause_sweep

    done = pause_sweep(existing_engine(db), sweep, current_user(), requeue=requeue)
    console.print(f"sweep {done.sweep.name} paused; "
                  + (f"re-queued {len(done.requeued)} running trial(s) {list(done.requeued)}" if done.requeued
                     else "nothing re-queued" if requeue else "running trials finish"))


def resume(sweep: SweepArgument, db: DbOption = None) -> None:
    """Set a paused sweep running again, with whatever was re-queued. A stopped sweep cannot be
    resumed (stop is final); a finished one needs `sweepd extend`."""
    from sweepd.host import current_user
    from sweepd.store.sweeps import resume_sweep

    done = resume_sweep(existing_engine(db), sweep, current_user())
    console.print(f"sweep {done.sweep.name} running")


def stop(sweep: SweepArgument, db: DbOption = None) -> None:
    """Stop a sweep for good: no new trials, agents stop its running ones. Final: it cannot be
    resumed (use `sweepd pause` to resume later; `launch --warm-start` starts a new sweep from it)."""
    from sweepd.host import current_user
    from sweepd.store.sweeps import stop_sweep

    done = stop_sweep(existing_engine(db), sweep, current_user(), "stopped by user")
    console.print(f"sweep {done.sweep.name} stopped (final)")


def retry(
    sweep: SweepArgument,
    failed: Annotated[bool, typer.Option("--failed", help="Also re-queue failed trials (after a fix).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Re-queue a sweep's abandoned trials (with --failed, failed ones too) and resume it if paused
    or finished (a stopped sweep stays stopped)."""
    from sweepd.host import current_user
    from sweepd.store.transitions import retry_sweep

    done = retry_sweep(existing_engine(db), sweep, current_user(), failed=failed)
    if as_json:
        print_json({"sweep": done.sweep.name, "requeued": list(done.requeued), "resumed": done.resumed,
                    "status": done.sweep.status})
        return
    console.print(f"sweep {done.sweep.name}: re-queued {len(done.requeued)} trial(s)"
                  + (f" {list(done.requeued)}" if done.requeued else "")
                  + ("; resumed" if done.resumed else f"; status {done.sweep.status}"))


def extend(
    sweep: SweepArgument,
    trials: Annotated[int, typer.Option("--trials", min=0, help="Trials to add to max_trials.")] = 0,
    cost: Annotated[str | None, typer.Option("--cost", help="Seconds to add to max_total_cost: 90, 90s, 30m, "
                                                            "4h, 1h30m.")] = None,
    db: DbOption = None,
) -> None:
    """Raise a sweep's budget by --trials and/or --cost, and set it running again if it had finished."""
    from sweepd.host import current_user
    from sweepd.store.sweeps import extend_sweep

    seconds = duration(cost) if cost is not None else 0.0
    if not (trials or seconds):
        raise UsageError("give --trials N and/or --cost DURATION (> 0)")
    done = extend_sweep(existing_engine(db), sweep, current_user(), trials=trials, cost=seconds)
    info = done.sweep
    console.print(f"sweep {info.name}: budget {info.max_trials or '-'} trials, "
                  f"{f'{info.max_total_cost:g} s' if info.max_total_cost else '-'}; {info.status}")


def enqueue(
    sweep: SweepArgument,
    assignments: Annotated[list[str] | None, typer.Argument(
        help="One config as name=value words (the sweep's param names, e.g. train.learning_rate=3e-4); "
             "params left out take their centre.", show_default=False)] = None,
    from_json: Annotated[Path | None, typer.Option("--from-json", help="Configs from a JSON file: an object of "
                                                   "params, or a list of them.")] = None,
    from_csv: Annotated[Path | None, typer.Option("--from-csv", help="Configs from a CSV file: a header of param "
                                                  "names, one config a row.")] = None,
    db: DbOption = None,
) -> None:
    """Queue your own configs in a sweep: they run before any new suggestion (kind "user") and the
    searcher learns from their results like any trial's. Each value is checked against the sweep's
    space; one bad name or value and nothing is queued."""
    from sweepd.host import current_user
    from sweepd.spec import SweepSpec
    from sweepd.store.enqueue import enqueue_trials
    from sweepd.store.sweeps import find_sweep
    from sweepd.user_config import from_assignments, from_csv_file, from_json_file

    sources = [bool(assignments), from_json is not None, from_csv is not None]
    if sum(sources) != 1:
        raise UsageError("give one config as name=value words, or --from-json FILE, or --from-csv FILE")
    engine = existing_engine(db)
    info = find_sweep(engine, sweep)
    params = SweepSpec.from_json(info.spec).params
    if from_json is not None:
        configs = from_json_file(params, from_json)
    elif from_csv is not None:
        configs = from_csv_file(params, from_csv)
    else:
        configs = [from_assignments(params, assignments or [])]
    if not configs:
        raise UsageError(f"{from_json or from_csv}: no configs in it")
    count = enqueue_trials(engine, info.id, configs, kind="user", actor=current_user(), within_max_trials=True)
    console.print(f"sweep {info.name}: queued {count} config(s)"
                  + ("" if info.status == "running" else f"; it is {info.status}"))
