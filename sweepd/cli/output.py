"""What the CLI prints and how it fails: plain consoles (no rich markup on data), one-line errors
and warnings, JSON for scripts, and the two errors commands raise for the user to fix."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.text import Text

# No markup or emoji codes in anything printed: names, reasons and log lines are data ("[rank0]:",
# "arr[i]", "[/path]"), printed as they are. Styles come from Text objects.
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class CommandError(Exception):
    """A command could not do its work (exit code 1), said in one line."""


def error(message: object) -> None:
    """One red `error:` line on stderr."""
    err_console.print(Text.assemble(("error:", "red"), " ", str(message)), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """One yellow `warning:` line on stderr."""
    err_console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout (`--json`)."""
    print(json.dumps(data, indent=2, default=str))
