"""An agent run in a command's foreground (`sweepd agent`, `sweepd launch`): slots planned for
this host, trials logged to wandb off the loop, and for `launch` the live view of its sweep."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from sweepd.agent import Agent
from sweepd.host import Slots
from sweepd.tracking import make_tracker


def run_agent(engine: Any, slots: Slots, console: Console, *, live_sweep: Any = None, wandb: bool = True,
              wandb_project: str | None = None, **options: Any) -> None:
    """Serve `slots` until the agent is done (Agent's options pass through); with `live_sweep`,
    redraw that sweep's live view on `console` at each turn of the loop."""
    agent = Agent(engine=engine, slots=slots.count, device=slots.device, gpus=slots.gpus, **options)
    url = engine.url.render_as_string(hide_password=False)
    # The tracker logs through the agent's log, which the live view below redirects.
    agent.tracker = make_tracker(url, wandb, wandb_project, log=lambda message: agent.log(message))
    if live_sweep is None:
        agent.run()
        return
    from rich.live import Live

    from sweepd.store.db import make_engine
    from sweepd.view import LiveSweep

    with Live(console=console, refresh_per_second=2, transient=False) as live:
        # The view reads on its own read-only engine: its redraws never take SQLite's write lock.
        view = LiveSweep(make_engine(url, read_only=True), live_sweep, live, slots.count)
        agent.on_tick = view.update
        agent.log = lambda message: live.console.log(message, markup=False, emoji=False, highlight=False)
        agent.run()
