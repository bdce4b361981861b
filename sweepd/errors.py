"""An error as one line: what the agent logs and the CLI prints for an exception it expected."""

from __future__ import annotations


def first_line(exc: BaseException, width: int = 200) -> str:
    """The first line of `exc`'s message, cut at `width` characters; its type's name when it has
    no message (a bare `KeyError()`)."""
    text = str(exc).strip()
    return text.splitlines()[0][:width] if text else type(exc).__name__
