"""This host as an agent sees it: the user sweepd acts for, the GPUs it may use, and the slots
(trials at once) an agent runs on them. Imports no torch: the agent and the CLI stay light."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


def current_user() -> str:
    """The user sweepd acts for: $SWEEPD_USER, else the OS login."""
    import getpass

    return os.environ.get("SWEEPD_USER") or getpass.getuser()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs), without
    importing torch (the agent stays light). Slot i of a cuda agent runs on entry i: an agent
    started with CUDA_VISIBLE_DEVICES=4,5 runs its trials on GPUs 4 and 5, not 0 and 1."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA ignores an invalid entry and every entry after it ("-1": no GPU)
            ids.append(entry)
        return ids
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i in range(sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")))]


def detect_gpus() -> int:
    """How many GPUs this process may use (`visible_gpus`)."""
    return len(visible_gpus())


def box_device(slots: int | None = None) -> str:
    """This box's hardware class as an agent started with `--slots slots` would serve: "cuda" when
    a GPU is visible and no CPU slot count is given, else "cpu"."""
    return "cuda" if slots is None and visible_gpus() else "cpu"


@dataclass(frozen=True)
class Slots:
    """The slots an agent runs: how many, on which device, and the GPU of each cuda slot."""

    count: int
    device: str                 # "cuda" or "cpu"
    gpus: list[str] | None      # CUDA_VISIBLE_DEVICES entry by slot; None on cpu


def plan_slots(slots: int | None, trials_per_gpu: int = 1, gpus: list[str] | None = None) -> Slots:
    """One slot per visible GPU, or `trials_per_gpu` slots on each (GPU g's slots are consecutive:
    slot i runs on GPU i // trials_per_gpu), or one CPU slot, unless `slots` is given; giving
    `slots` means CPU slots, even on a GPU box (documented on the CLI's --slots). `gpus` stands for
    `visible_gpus()` (tests give fake CUDA_VISIBLE_DEVICES lists)."""
    if trials_per_gpu < 1:
        raise ValueError(f"trials per GPU must be >= 1, got {trials_per_gpu}")
    visible = (visible_gpus() if gpus is None else list(gpus)) if slots is None else []
    if not visible:
        return Slots(count=slots if slots is not None else 1, device="cpu", gpus=None)
    by_slot = [gpu for gpu in visible for _ in range(trials_per_gpu)]
    return Slots(count=len(by_slot), device="cuda", gpus=by_slot)
