"""Commands that change a sweep's course: `pause`, `resume`, `stop`, `retry`, `extend`.

A sweep's lifecycle (store/sweeps.py): pause and resume as often as you like; `stop` is final;
a finished sweep (budget spent) runs again when `extend` raises its budget. Every command here
writes, so a mistyped --db is refused (no empty database is created).
"""

from __future__ import annotations

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
