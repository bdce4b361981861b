"""Commands on trained policies: `export`, `prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sweepd.cli.options import DbOption, existing_engine
from sweepd.cli.output import UsageError, console


def export(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    trial: Annotated[int, typer.Option("--trial", help="The trial number (see `sweepd status SWEEP`).")],
    out: Annotated[Path, typer.Option(help="File or folder to copy the policy to.")] = Path("."),
    artifacts: Annotated[Path | None, typer.Option(
        "--artifacts", help="The agents' artifact folder as this box mounts it (a shared "
                                                       "disk): the checkpoint is read from <DIR>/SWEEP/trial-N/.")]
    = None,
    db: DbOption = None,
) -> None:
    """Copy a finished trial's final policy (PyTorch state_dict) out of the sweep's artifacts (the
    agent's box wrote them under its $SWEEPD_HOME/artifacts; from another box pass --artifacts)."""
    from sweepd.artifacts import export_checkpoint
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import find_sweep

    engine = existing_engine(db)
    info = find_sweep(engine, sweep)
    match = [t for t in list_trials(engine, info.id) if t.number == trial]
    if not match:
        raise UsageError(f"sweep {info.name} has no trial {trial}")
    console.print(f"trial {trial} of {info.name} -> "
                  f"{export_checkpoint(match[0], out, sweep=info.name, artifacts=artifacts)}")


def prune(
    sweep: Annotated[str, typer.Argument(help="A sweep name or id.")],
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
    db: DbOption = None,
) -> None:
    """Delete the checkpoints of trials off the sweep's Pareto front (front trials keep theirs)."""
    from sweepd.artifacts import prune_checkpoints
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import find_sweep

    engine = existing_engine(db)
    info = find_sweep(engine, sweep)
    result = prune_checkpoints(list_trials(engine, info.id), info.spec["settings"]["direction"], dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{info.name}: {verb} {len(result.removed)} checkpoint(s), {result.freed_bytes / 1e6:.1f} MB; "
                  f"kept {len(result.kept)} on the front"
                  + (f"; left {len(result.skipped)} outside their trial's folder" if result.skipped else ""))
