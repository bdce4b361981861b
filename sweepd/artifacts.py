"""Trial checkpoints: export one, prune those off the Pareto front (front trials are never pruned)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sweepd.front import front
from sweepd.store.review import TrialInfo


class ArtifactError(LookupError):
    """A trial has no checkpoint to export (not finished, failed, or its file is gone)."""


@dataclass(frozen=True)
class Pruned:
    removed: tuple[Path, ...]
    kept: tuple[Path, ...]
    skipped: tuple[Path, ...]   # off the front but not the trial's own file: never deleted
    freed_bytes: int


def checkpoint_of(trial: TrialInfo, sweep: str = "", artifacts: Path | None = None) -> Path:
    """The trial's saved final policy, or ArtifactError saying why there is none. With `artifacts`
    (the agents' artifact folder as this box mounts it), the path is looked up under that folder."""
    path = trial.metrics.get("checkpoint") if trial.metrics else None
    if trial.status != "succeeded" or not path:
        raise ArtifactError(f"trial {trial.number} is {trial.status} and saved no checkpoint")
    if artifacts is not None:
        path = seen_from(Path(path), sweep, trial.number, artifacts)
    if not Path(path).is_file():
        raise ArtifactError(f"trial {trial.number}'s checkpoint {path} is gone (pruned or deleted"
                            + (")" if artifacts is not None else ", or on another box's disk: --artifacts DIR)"))
    return Path(path)


def seen_from(path: Path, sweep: str, number: int, artifacts: Path) -> Path:
    """`path`, a file an agent wrote under its artifact folder (`<folder>/<sweep>/trial-<n>/...`), as
    this box sees it under `artifacts`, the same folder mounted here (a shared disk)."""
    parts = path.parts
    for i in range(len(parts) - 1):
        if parts[i] == sweep and parts[i + 1] == f"trial-{number}":
            return artifacts.joinpath(*parts[i:])
    raise ArtifactError(f"trial {number}'s checkpoint {path} is not under an artifact folder's {sweep}/trial-{number}/")


def export_checkpoint(trial: TrialInfo, dest: Path, *, sweep: str = "", artifacts: Path | None = None) -> Path:
    """Copy the trial's checkpoint to `dest` (a file, or a folder that receives `policy.pt`), found
    under `artifacts` when given (see `checkpoint_of`)."""
    source = checkpoint_of(trial, sweep, artifacts)
    target = dest / source.name if dest.is_dir() else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def _trial_dir(trial: TrialInfo) -> Path | None:
    """The folder the agent gave the trial (its worker log lives there)."""
    log = trial.metrics.get("log") if trial.metrics else None
    return Path(log).resolve().parent if log else None


def prune_checkpoints(trials: list[TrialInfo], direction: str, dry_run: bool = False) -> Pruned:
    """Delete the checkpoints of succeeded trials off the sweep's front; front trials keep theirs.

    A command trainer reports any path as its checkpoint: only a file inside the trial's own
    folder, and not named by a front trial too, is ever deleted.
    """
    on_front = {number for point in front(trials, direction) for number in point.trials}
    found = []
    for trial in trials:
        try:
            found.append((trial, checkpoint_of(trial).resolve()))
        except ArtifactError:
            continue
    kept = {path for trial, path in found if trial.number in on_front}
    removed, skipped, freed = [], [], 0
    for trial, path in found:
        if path in kept:
            continue
        folder = _trial_dir(trial)
        if folder is None or not path.is_relative_to(folder):
            skipped.append(path)
            continue
        freed += path.stat().st_size
        removed.append(path)
        if not dry_run:
            path.unlink()
    return Pruned(tuple(removed), tuple(sorted(kept)), tuple(skipped), freed)
