"""Commands that change a sweep's course: `stop`, `retry`."""

from __future__ import annotations

from typing import Annotated

import typer

from sweepd.cli.options import DbOption, JsonOption, open_engine
from sweepd.cli.output import console, print_json


def stop(sweep: Annotated[str, typer.Argument(help="A sweep name or id.")], db: DbOption = None) -> None:
    """Stop a sweep: no new trials; agents stop its running ones (they are re-queued, not lost)."""
    from sweepd.host import current_user
    from sweepd.store.sweeps import set_sweep_status

    info = set_sweep_status(open_engine(db), sweep, "stopped", current_user(), "stopped by user")
    console.print(f"sweep {info.name} stopped")


def retry(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    failed: Annotated[bool, typer.Option("--failed", help="Also re-queue failed trials (after a fix).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Re-queue a sweep's abandoned trials (with --failed, failed ones too) and resume it if paused."""
    from sweepd.host import current_user
    from sweepd.store.transitions import retry_sweep

    done = retry_sweep(open_engine(db), sweep, current_user(), failed=failed)
    if as_json:
        print_json({"sweep": done.sweep.name, "requeued": list(done.requeued), "resumed": done.resumed,
                    "status": done.sweep.status})
        return
    console.print(f"sweep {done.sweep.name}: re-queued {len(done.requeued)} trial(s)"
                  + (f" {list(done.requeued)}" if done.requeued else "")
                  + ("; resumed" if done.resumed else f"; status {done.sweep.status}"))
