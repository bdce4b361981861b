"""PufferLib 3's env config files: where they are, which env each one defines, and their values.

Reading (`read_config`): exactly as PufferLib's `pufferl.load_config` reads them: `config/default.ini`
then the first ini under `config/` (recursive glob, in glob order) whose `[base] env_name` lists
the env, both into one `configparser`; each value through `ast.literal_eval`, else the raw string.
It is done here rather than by calling `load_config`, because that imports torch and parses
`sys.argv`, and because `sweepd show` must say which file set each value; a test checks that both
give the same values for every config `load_config` can load (5 of PufferLib 3.0.0's crash it: a
`[sweep] metric` next to a `[sweep.metric]` table). Listing env names reads only the ini files.

The env registry (sweepd/envs) finds PufferLib's envs here; sweepd/puffer_config.py maps a
config to a sweep.
"""

from __future__ import annotations

import ast
import configparser
import glob
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sweepd.settings import SpecError


@dataclass(frozen=True)
class PufferConfig:
    """One env's PufferLib config: default.ini merged with the env's ini, values typed."""

    env_name: str
    path: Path                                 # the env's ini
    default_path: Path                         # default.ini
    sections: dict[str, dict[str, Any]]        # merged, as pufferl.load_config sees them
    own: dict[str, dict[str, Any]]             # what the env's ini itself writes
    base: dict[str, dict[str, Any]]            # what default.ini writes

    def label(self, path: Path) -> str:
        """A config file's name relative to PufferLib's config dir (e.g. ocean/pong.ini)."""
        return os.path.relpath(path, self.default_path.parent)

    def origin(self, section: str, key: str | None = None) -> str:
        """Which file sets `[section] key` (or any key of the section), e.g. 'ocean/pong.ini [train]'."""
        own = self.own.get(section, {})
        in_own = (key in own) if key is not None else bool(own) or section in self.own
        return f"{self.label(self.path if in_own else self.default_path)} [{section}]"

    def line(self, section: str) -> int | None:
        """Line of `[section]` in the file that defines it (the env's ini first)."""
        for path in (self.path, self.default_path):
            for number, text in enumerate(path.read_text().splitlines(), start=1):
                if text.strip() == f"[{section}]":
                    return number
        return None

    def error(self, section: str, message: str) -> SpecError:
        """A SpecError naming the file and line of `[section]`."""
        path = self.path if section in self.own else self.default_path
        return SpecError(path, f"[{section}] {message}", self.line(section))


def config_dir() -> Path:
    """PufferLib's installed `config/` folder, found without importing pufferlib (it imports torch)."""
    spec = importlib.util.find_spec("pufferlib")
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(None, "PufferLib is not installed (pip install sweepd[puffer]): "
                              "its env configs cannot be read")
    return Path(next(iter(spec.submodule_search_locations))) / "config"


@lru_cache(maxsize=8)
def _index(directory: Path) -> dict[str, Path]:
    """env name -> its ini, first match in PufferLib's glob order (load_config's `break`)."""
    default = directory / "default.ini"
    index: dict[str, Path] = {}
    for path in glob.glob(os.path.join(directory, "**/*.ini"), recursive=True):
        parser = configparser.ConfigParser()
        parser.read([default, path])
        if not parser.has_section("base"):
            continue
        for name in parser["base"].get("env_name", "None").split():
            # default.ini (and an ini without a name) say "None": no env is called that.
            if name != "None":
                index.setdefault(name, Path(path))
    return index


def env_names(directory: Path | None = None) -> list[str]:
    """Every env name that PufferLib's config files define, sorted; [] without PufferLib."""
    try:
        return sorted(_index(directory or config_dir()))
    except SpecError:
        return []


def find_ini(name: str, directory: Path | None = None) -> Path | None:
    """The ini PufferLib would load for env `name`, or None when it has none."""
    try:
        return _index(directory or config_dir()).get(name)
    except SpecError:
        return None


def _typed(value: str) -> Any:
    """A config value as PufferLib types it: a Python literal, else the string."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _sections(parser: configparser.ConfigParser) -> dict[str, dict[str, Any]]:
    return {s: {k: _typed(v) for k, v in parser[s].items()} for s in parser.sections()}


def _parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise SpecError(path, f"cannot read PufferLib config: {exc}") from exc
    return parser


@lru_cache(maxsize=256)
def _read(name: str, directory: Path) -> PufferConfig:
    path = _index(directory).get(name)
    if path is None:
        raise SpecError(None, f"PufferLib has no config for env '{name}' in {directory}")
    default = directory / "default.ini"
    merged = configparser.ConfigParser()
    try:
        merged.read([default, path])
    except configparser.Error as exc:
        raise SpecError(path, f"cannot read PufferLib config: {exc}") from exc
    return PufferConfig(env_name=name, path=path, default_path=default, sections=_sections(merged),
                        own=_sections(_parse(path)), base=_sections(_parse(default)))


def read_config(name: str, directory: Path | None = None) -> PufferConfig:
    """PufferLib's config for env `name` (cached: treat it as read-only)."""
    return _read(name, directory or config_dir())


# -- mapping to a sweep ---------------------------------------------------------------------------
