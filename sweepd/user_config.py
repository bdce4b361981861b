"""Configs a user writes for a sweep to run (`sweepd enqueue`): `section.key=value` words, a JSON
file or a CSV file, each checked against the sweep's params and completed with their centres.

A config names params by the sweep's names (`train.learning_rate`); a param it leaves out takes
its centre, so `train.learning_rate=3e-4` alone is the sweep's starting point with one change.
A choice takes one of its listed values, as text (`policy.activation=relu`, `train.anneal_lr=true`)
or typed (JSON).
Every error is a SpecError naming the file and line (CSV row, JSON entry) and the param at fault.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sweepd.settings import SpecError
from sweepd.space import Param, Value, as_text


def from_assignments(params: Sequence[Param], words: Sequence[str]) -> dict[str, Value]:
    """One config from `name=value` words (values as the command line gives them: text)."""
    given: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name.strip():
            raise SpecError(None, f"'{word}': write a param as name=value, e.g. {_example(params)}")
        if name.strip() in given:
            raise SpecError(None, f"{name.strip()}: given twice")
        given[name.strip()] = value.strip()
    return complete(params, given)


def from_json_file(params: Sequence[Param], path: Path) -> list[dict[str, Value]]:
    """Configs from a JSON file: one object of params, a list of them, or objects holding them under
    "params" (what `sweepd best --format json` prints)."""
    try:
        data = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise SpecError(path, f"not JSON: {exc.msg}", exc.lineno, exc.colno) from None
    entries = data if isinstance(data, list) else [data]
    configs = []
    for index, entry in enumerate(entries, start=1):
        if isinstance(entry, dict) and isinstance(entry.get("params"), dict):
            entry = entry["params"]
        if not isinstance(entry, dict):
            raise SpecError(path, f"entry {index}: expected an object of params, got {type(entry).__name__}")
        configs.append(complete(params, entry, path, f"entry {index}: "))
    return configs


def from_csv_file(params: Sequence[Param], path: Path) -> list[dict[str, Value]]:
    """Configs from a CSV file: a header row of param names, then one config a row (an empty cell
    takes the param's centre)."""
    rows = list(csv.reader(_read(path).splitlines()))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise SpecError(path, "no header row naming the params")
    header = [cell.strip() for cell in rows[0]]
    configs = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise SpecError(path, f"{len(row)} cells, the header has {len(header)}", line)
        given = {name: cell.strip() for name, cell in zip(header, row, strict=True) if cell.strip()}
        configs.append(complete(params, given, path, line=line))
    return configs


def complete(params: Sequence[Param], given: Mapping[str, Any], path: Path | None = None, prefix: str = "",
             line: int | None = None) -> dict[str, Value]:
    """`given` checked against `params` (known names, numbers inside each param's range, integers
    and powers of two where the param wants them), with every param left out at its centre."""
    by_name = {p.name: p for p in params}
    for name in given:
        if name not in by_name:
            raise SpecError(path, f"{prefix}{name}: not a param of this sweep (its params: "
                                  f"{', '.join(by_name) or 'none'})", line)
    return {p.name: _value(p, given[p.name], path, prefix, line) if p.name in given else p.round(p.center)
            for p in params}


def _value(param: Param, raw: Any, path: Path | None, prefix: str, line: int | None) -> Value:
    def fail(why: str) -> SpecError:
        return SpecError(path, f"{prefix}{param.name}: {raw!r} {why}", line)

    if param.is_choice:
        return _choice(param, raw, fail)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise fail("is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise fail("is not a number") from None
    if not math.isfinite(value):
        raise fail("is not a finite number")
    if not param.min <= value <= param.max:
        raise fail(f"is outside the param's range [{param.min:g}, {param.max:g}]")
    if param.is_integer:
        snapped = param.round(value)
        if snapped != value:
            raise fail("is not a power of two" if param.space == "pow2" else "is not an integer")
        return snapped
    return value


def _choice(param: Param, raw: Any, fail: Callable[[str], SpecError]) -> Value:
    """The listed value `raw` names: the value itself (JSON), or its text (a word, a CSV cell), read
    as the sweep file writes it (true/false, numbers as numbers: `0.10` is 0.1)."""
    for value in param.values:
        if isinstance(raw, str) and not isinstance(value, str):
            if raw.strip().lower() == as_text(value) or (_is_number(value) and _number(raw) == value):
                return value
        elif type(raw) is bool or type(value) is bool:
            if type(raw) is type(value) and raw == value:
                return value
        elif raw == value:
            return value
    raise fail(f"is not one of the param's values ({', '.join(map(as_text, param.values))})")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SpecError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(path, "not UTF-8 text") from None


def _example(params: Sequence[Param]) -> str:
    if not params:
        return "train.learning_rate=3e-4"
    center = params[0].center
    return f"{params[0].name}={center:g}" if _is_number(center) else f"{params[0].name}={as_text(center)}"
