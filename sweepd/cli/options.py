"""The options commands share (`--db`, `--json`, `--slots`, ...), what they mean, and how their
values are read: the database a `--db` names, a `--for` duration."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from sweepd.cli.output import CommandError, UsageError


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
TrialsPerGpuOption = Annotated[int | None, typer.Option(
    min=1, help="Trials at once on each GPU (each slot pinned to its GPU by CUDA_VISIBLE_DEVICES; "
                "`sweepd boxes` shows them as GPU:slot). Default: the sweep file's trials_per_gpu "
                "for launch, else 1.")]
LeaseOption = Annotated[float, typer.Option(callback=_positive, help="Lease expiry (s, > 0); heartbeats come "
                                                                     "3x as often.")]
GraceOption = Annotated[float, typer.Option(min=0.0, help="On SIGINT/SIGTERM, time running trials get (s).")]


def open_engine(db: str | None) -> Any:
    """The database, created or upgraded as needed: for commands that write."""
    from sweepd.store.db import open_store

    return open_store(db)


def existing_engine(db: str | None) -> Any:
    """`open_engine` for commands that read or change what is already there (status, stop, pause,
    reserve, ...; only launch, agent and db upgrade create a database): a SQLite file that is not
    there is a typo or a box that never ran a sweep, not a database to create empty."""
    require_database(db)
    return open_engine(db)


def require_database(db: str | None) -> None:
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


def duration(text: str) -> float:
    """'4h', '90m', '1h30m', '2d', '45s' or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"cannot read duration '{text}': use e.g. 4h, 90m, 1h30m, 2d")
    return sum(float(n) * units[u] for n, u in parts)
