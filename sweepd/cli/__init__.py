"""The `sweepd` command line: parse, call one function, print. Errors become one red line.

Exit codes: 0 ok, 1 runtime error (database, missing sweep), 2 bad input (sweep file, options).
Expected errors (the user's to fix) are one line; anything else is a bug in sweepd, said as one
line naming its type ("internal error"), with its traceback under --debug or SWEEPD_DEBUG=1.

Every command, in the order `sweepd --help` lists them, and the module that holds it:
- files.py        validate, show, convert          sweep files, nothing run or written
- run.py          launch, agent                    run trials (sweepd/foreground.py, sweepd/agent.py)
- results.py      status, pareto, dashboard, baselines
- choose.py       best
- control.py      pause, resume, stop, retry, extend, enqueue
- boxes.py        boxes, reserve, release, events
- checkpoints.py  export, prune
- database.py     db upgrade
Shared options live in options.py, printing and the errors commands raise in output.py.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from sweepd.cli import boxes, checkpoints, choose, control, database, files, results, run
from sweepd.cli.output import CommandError, UsageError, error
from sweepd.errors import first_line
from sweepd.settings import SpecError

# Help text is printed as written (no rich markup: "[sweep] max_trials" must not lose "[sweep]").
app = typer.Typer(help="sweepd: cost-aware hyperparameter sweeps for RL on a shared SQL queue. Add --debug "
                       "(or set SWEEPD_DEBUG=1) to any command to see an internal error's traceback.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")

for command in (files.validate, files.show, files.convert, run.launch, run.agent, results.status,
                results.pareto, choose.best, results.dashboard, control.pause, control.resume, control.stop,
                control.retry, control.extend, control.enqueue, boxes.boxes, boxes.reserve, boxes.release,
                boxes.events, checkpoints.export, checkpoints.prune, results.baselines):
    app.command()(command)
db_app.command("upgrade")(database.db_upgrade)


DEBUG_HINT = "(run with --debug or SWEEPD_DEBUG=1 for the traceback)"


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line and an exit code;
    an internal error is one line naming its type, or its traceback with --debug / SWEEPD_DEBUG=1."""
    from sqlalchemy.exc import DBAPIError

    from sweepd.artifacts import ArtifactError
    from sweepd.search import SearcherUnavailable
    from sweepd.store.boxes import ReservationConflict
    from sweepd.store.db import StoreError
    from sweepd.store.models import InvalidRequest
    from sweepd.store.sweeps import NotFound

    args = sys.argv[1:]
    # --debug is taken wherever it stands (before or after the command); no command has an option of that name.
    debug = "--debug" in args or os.environ.get("SWEEPD_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    try:
        code = app(args=[a for a in args if a != "--debug"], standalone_mode=False, prog_name="sweepd")
    except (SpecError, UsageError) as exc:
        error(exc)
        sys.exit(2)
    except (StoreError, NotFound, ArtifactError, CommandError, InvalidRequest, ReservationConflict,
            SearcherUnavailable) as exc:
        error(exc)
        sys.exit(1)
    except DBAPIError as exc:
        error(f"database: {first_line(exc.orig if exc.orig is not None else exc, width=300)}")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, _click_exceptions()):  # bad arguments: usage and the error, as click prints them
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            traceback.print_exc()
        else:
            error(f"internal error (a bug in sweepd): {type(exc).__name__}: {first_line(exc, width=300)} "
                  f"{DEBUG_HINT}")
        sys.exit(1)
    # Outside standalone mode typer returns the code of a `raise typer.Exit(code)` instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Click's error base class(es): typer >= 0.29 bundles its own click (`typer._click`), older
    typers raise the installed click's."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)
