"""A resolved sweep written back as a sweep file: `sweepd convert NAME > sweeps/NAME.toml`.

The file is flat (no `extends`): every `[sweep]` setting, every default and every param with all
its fields, so that `load_spec` of the file gives the same `SweepSpec` (its `source` aside) and
the file can be edited without knowing where values came from. Where they came from is written as
comments (PufferLib's ini file and section, or sweepd's CPU sizing), with the mapping's notes.

Python's standard library reads TOML but does not write it; values here are only strings,
numbers, booleans and lists or tables of them, which `_value` writes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sweepd.envs.family import TRIAL_SECTIONS
from sweepd.spec import SETTING_KEYS, SweepSpec

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class UnwritableValue(TypeError):
    """A default holds a value TOML cannot express (None, or an object)."""

    def __init__(self, key: str, value: object) -> None:
        self.key, self.value = key, value
        super().__init__(f"cannot write {key} = {value!r} as TOML")


def to_toml(spec: SweepSpec, origins: Mapping[str, str] | None = None,
            notes: list[str] | None = None) -> str:
    """`spec` as a sweep file; `origins` ("train.gamma" -> "ocean/pong.ini [train]") become comments."""
    origins = origins or {}
    lines = [f"# sweepd sweep '{spec.name}', converted from {spec.source}",
             "# Edit freely: `sweepd launch NAME` reads ./sweeps/NAME.toml before PufferLib's configs."]
    lines += [f"# {note}" for note in notes or []]
    lines += ["", f"env_name = {_value('env_name', spec.env)}", f"trainer = {_value('trainer', spec.trainer)}"]
    if spec.command:
        lines.append(f"command = {_value('command', list(spec.command))}")
    lines += ["", "[sweep]"]
    for key in SETTING_KEYS:
        lines.append(_line(key, getattr(spec.settings, key), origins.get(f"sweep.{key}")))
    for section in TRIAL_SECTIONS:
        lines += ["", f"[{section}]"]
        for key, value in spec.defaults.get(section, {}).items():
            lines.append(_line(key, value, origins.get(f"{section}.{key}")))
    for param in spec.params:
        lines += ["", f"[search.{param.name}]"]
        fields: dict[str, Any] = ({"space": param.space, "values": list(param.values), "center": param.center}
                                  if param.is_choice else {"space": param.space, "min": param.min, "max": param.max,
                                                           "center": param.center, "integer": param.integer})
        if param.scale is not None:
            fields["scale"] = param.scale
        for key, value in fields.items():
            lines.append(_line(key, value, origins.get(f"search.{param.name}.{key}")))
    return "\n".join(lines) + "\n"


def _line(key: str, value: Any, origin: str | None) -> str:
    text = f"{_key(key)} = {_value(key, value)}"
    return f"{text:<40} # {origin}" if origin else text


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(key: str, value: Any) -> str:
    """A TOML value: floats by repr (exact round trip), strings as JSON strings (TOML basic
    strings take the same escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(key, v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(k, v)}" for k, v in value.items()) + "}"
    raise UnwritableValue(key, value)
