"""Commands on boxes and the audit log: `boxes`, `reserve`, `release`, `events`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from sweepd.cli.options import DbOption, JsonOption, duration, existing_engine
from sweepd.cli.output import console, print_json


def boxes(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Every box: its slots, who holds each (user, sweep, trial, since), reservations, last heartbeat."""
    import time

    from sweepd.store.boxes import box_status
    from sweepd.view import boxes_table

    rows = box_status(existing_engine(db))
    if as_json:
        print_json([asdict(b) for b in rows])
    elif rows:
        console.print(boxes_table(rows, time.time()))
    else:
        console.print("no boxes yet: a box appears when `sweepd agent` first runs on it")


def reserve(
    box: Annotated[str, typer.Argument(help="The box's name (as `sweepd boxes` lists it).")],
    duration_text: Annotated[str, typer.Option("--for", help="How long: 4h, 90m, 1h30m, 2d.")],
    slots: Annotated[int | None, typer.Option(help="How many slots (default: all).")] = None,
    note: Annotated[str, typer.Option(help="Why; shown in `sweepd boxes` and the audit log.")] = "",
    force: Annotated[bool, typer.Option("--force", help="Take slots someone else reserved (needs --note).")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Reserve a box's slots: agents start only your trials there until the reservation ends."""
    from sweepd.host import current_user
    from sweepd.store.boxes import reserve_box

    seconds = duration(duration_text)
    made = reserve_box(existing_engine(db), box, current_user(), seconds, slots=slots, note=note, force=force)
    if as_json:
        print_json(asdict(made))
        return
    console.print(f"reserved {'all' if made.slots is None else made.slots} slot(s) of {made.box} for {made.user} "
                  f"for {duration_text}" + (f" ({made.note})" if made.note else ""))


def release(
    box: Annotated[str, typer.Argument(help="The box's name.")],
    force: Annotated[bool, typer.Option("--force", help="End someone else's reservation (needs --note).")] = False,
    note: Annotated[str, typer.Option(help="Why (recorded with --force).")] = "",
    db: DbOption = None,
) -> None:
    """End your reservation of a box now (with --force, anyone's)."""
    from sweepd.host import current_user
    from sweepd.store.boxes import release_box

    ended = release_box(existing_engine(db), box, current_user(), force=force, note=note)
    console.print(f"released {box}: " + ", ".join(f"{r.user}'s reservation" for r in ended))


def events(
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest events.")] = 50,
    box: Annotated[str | None, typer.Option(help="Only this box's events.")] = None,
    sweep: Annotated[str | None, typer.Option(help="Only this sweep's events (name or id).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. reservation_forced.")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The audit log: who launched, leased back, reserved, released, forced or stopped what."""
    from sweepd.store import audit
    from sweepd.store.sweeps import find_sweep
    from sweepd.view import events_table

    engine = existing_engine(db)
    sweep_id = find_sweep(engine, sweep).id if sweep else None
    rows = audit.events(engine, limit, box=box, sweep_id=sweep_id, kind=kind)
    if as_json:
        print_json([asdict(e) for e in rows])
    else:
        console.print(events_table(rows))
