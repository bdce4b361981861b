"""Sweep files: load, inherit defaults, validate, resolve to a `SweepSpec`.

A sweep file is TOML (see docs/architecture.md for every key). `extends = "default"` inherits
another sweep file key by key; the child wins. Everything is validated before anything runs or
is written, and every problem is a `SpecError` naming the file and, where it can be found, the
line: one readable line for the CLI.

Over 400 lines on purpose: one concept (a sweep file, read and checked), whose length is the list
of checks, each naming its file and line; split, every check would need the same reader passed along.

Default ranges, used where a searched parameter gives only `center`:
- log:    [center / 10, center * 10]
- logit:  one decade either side in log10(x / (1 - x))  (0.99 -> [0.908, 0.999])
- linear: [center / 2, center * 2] for a positive centre (a zero or negative centre needs min/max)
- pow2:   [center / 4, center * 4]

A choice param lists its values instead: `space = "choice"` (the default when `values` is given),
`values = [...]` (at least two distinct strings, numbers or booleans, of one kind), `center` (a
listed value; default the first); `space = "bool"` is short for `values = [false, true]`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from sweepd.envs.family import TRIAL_SECTIONS, UnknownMetricError
from sweepd.search import SEARCHERS
from sweepd.settings import COST_GRACE_S, DEVICES, SETTING_KEYS, SpecError, SweepSettings
from sweepd.space import SPACES, Param, choice_error, middle

TRAINERS = ("puffer", "command")
TOP_KEYS = ("extends", "env_name", "trainer", "command", "sweep", "search", *TRIAL_SECTIONS)
PARAM_KEYS = ("space", "min", "max", "center", "integer", "scale", "values")
SPEC_SPACES = (*SPACES, "bool")  # "bool": a sweep file's shorthand for a choice of false, true
CHOICE_KEYS = ("space", "values", "center", "scale")
PUFFER_PREFIX = "pufferlib:"  # a sweep name that means PufferLib's config for the env, never a sweep file
PARAM_FIELDS = tuple(f.name for f in fields(Param))
INT32 = 2**31  # integer settings are stored in 32-bit columns (PostgreSQL refuses more; SQLite would not)


@dataclass(frozen=True)
class SweepSpec:
    """A resolved, validated sweep: everything a searcher, agent and worker need."""

    name: str
    env: str
    trainer: str
    settings: SweepSettings
    params: tuple[Param, ...]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    source: str = ""

    def trial_config(self, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The defaults with a trial's params (named "section.key") written over them."""
        config = {section: dict(self.defaults.get(section, {})) for section in TRIAL_SECTIONS}
        for name, value in params.items():
            section, key = name.split(".", 1)
            config[section][key] = value
        return config

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; `SweepSpec.from_json` reads it back (stored on the Sweep row)."""
        return {
            "name": self.name, "env": self.env, "trainer": self.trainer, "source": self.source,
            "command": list(self.command), "defaults": self.defaults,
            "settings": {k: getattr(self.settings, k) for k in SETTING_KEYS},
            "params": [{"name": p.name, "space": p.space, "min": p.min, "max": p.max,
                        "center": p.center, "integer": p.integer, "scale": p.scale}
                       | ({"values": list(p.values)} if p.is_choice else {}) for p in self.params],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        """Inverse of `to_json`. Settings and param fields this sweepd does not know (stored by a
        newer one) are ignored; the ones it knows are used as stored, missing ones take defaults."""
        return cls(
            name=data["name"], env=data["env"], trainer=data["trainer"], source=data.get("source", ""),
            command=tuple(data.get("command") or ()), defaults=data["defaults"],
            settings=SweepSettings.from_json(data["settings"]),
            params=tuple(Param(**{k: v for k, v in p.items() if k in PARAM_FIELDS}) for p in data["params"]),
        )


def sweep_dirs() -> list[Path]:
    """Where sweep names are looked up: ./sweeps first, then the sweeps bundled with sweepd."""
    bundled = Path(str(resources.files("sweepd.sweeps")))
    local = Path(os.environ.get("SWEEPD_SWEEPS", "sweeps"))
    return [local, bundled] if local.resolve() != bundled.resolve() else [bundled]


def find_sweep_file(name: str) -> Path:
    """Path of a sweep given as a file path or a name: ./sweeps/NAME.toml, then the bundled sweeps,
    then PufferLib's config for the env NAME (its .ini: `load_spec` maps it, sweepd/puffer_config.py).
    `pufferlib:NAME` skips the sweep files (PufferLib's Atari `breakout`, not sweepd's breakout.toml)."""
    from sweepd import puffer_ini

    if name.startswith(PUFFER_PREFIX):
        env_name = name.removeprefix(PUFFER_PREFIX)
        ini = puffer_ini.find_ini(env_name)
        if ini is None:
            raise SpecError(None, f"PufferLib has no config for env '{env_name}'"
                                  f"{_did_you_mean(env_name, puffer_ini.env_names())}")
        return ini
    if name.endswith(".toml") or os.sep in name:
        path = Path(name)
        if path.is_file():
            return path
        ini = None if name.endswith(".toml") else puffer_ini.find_ini(name)  # e.g. "bandit/0"
        if ini is None:
            raise SpecError(path, "no such sweep file")
        return ini
    for directory in sweep_dirs():
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            return candidate
    ini = puffer_ini.find_ini(name)
    if ini is not None:
        return ini
    known = sorted({p.stem for d in sweep_dirs() if d.is_dir() for p in d.glob("*.toml")})
    raise SpecError(None, f"no sweep named '{name}'{_did_you_mean(name, known + puffer_ini.env_names())}; "
                          f"known: {', '.join(known) or 'none'}, or a PufferLib env (`sweepd show` lists them)")


def load_spec(name_or_path: str, overrides: dict[str, Any] | None = None, device: str | None = None) -> SweepSpec:
    """Resolve and validate a sweep by name or path; `overrides` (command-line options: None means
    not given) replace `[sweep]` settings, and an error in one names the option, not a file.

    A name with no sweep file that PufferLib's configs define (or `pufferlib:NAME`) resolves from them,
    sized for the sweep's device: `--device` (overrides), else the files' `[sweep] device`, else
    `device` (the launching box's class), else "cpu". The spec's `settings.device` is that device."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in given:
        if key not in SETTING_KEYS:
            raise SpecError(None, f"{_option(key)}: no such [sweep] setting{_did_you_mean(key, SETTING_KEYS)}")
    path = find_sweep_file(name_or_path)
    sources = SourceLines()
    sized_for = given.get("device") or _declared_device(path, sources) or device or "cpu"
    if path.suffix == ".ini":
        name = name_or_path.removeprefix(PUFFER_PREFIX)
        raw, chain = _puffer_table(name, sized_for)
    else:
        raw, chain = _load_chain(path, (), sources, sized_for)
        name = path.stem
    if given:
        raw.setdefault("sweep", {}).update(given)
    return _resolve(raw, path, chain, name, sources, frozenset(given), sized_for)


def _declared_device(path: Path, sources: SourceLines) -> str | None:
    """The `[sweep] device` a sweep file or a file it extends sets (the child's wins), read before
    any PufferLib config the chain extends is mapped: that mapping sizes trials for the device."""
    seen: set[Path] = set()
    while path.suffix == ".toml" and path.resolve() not in seen:
        seen.add(path.resolve())
        data = _read_toml(path, sources)
        sweep = data.get("sweep")
        if isinstance(sweep, dict) and isinstance(sweep.get("device"), str) and sweep["device"]:
            return sweep["device"]
        parent = data.get("extends")
        if not isinstance(parent, str) or not parent:
            return None
        try:
            path = path.parent / f"{parent}.toml" if (path.parent / f"{parent}.toml").is_file() \
                else find_sweep_file(parent)
        except SpecError:
            return None  # _load_chain reports it
    return None


def _option(key: str) -> str:
    """The command-line option that overrides a `[sweep]` setting: max_trials -> --max-trials."""
    return "--" + key.replace("_", "-")


def _puffer_table(env_name: str, device: str) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """PufferLib's config for `env_name` as a sweep-file dict sized for `device`, and its files
    (env ini, default.ini)."""
    import copy

    from sweepd.puffer_config import sweep_from_config

    puffer = sweep_from_config(env_name, device=device)
    return copy.deepcopy(puffer.raw), (puffer.config.path, puffer.config.default_path)


def _read_toml(path: Path, sources: SourceLines) -> dict[str, Any]:
    text = sources.text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line L, column C)": move that to the front.
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", str(exc))
        if match:
            message = str(exc)[: match.start()]
            raise SpecError(path, f"TOML syntax error: {message}", int(match[1]), int(match[2])) from exc
        raise SpecError(path, f"TOML syntax error: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array or inline table
        raise SpecError(path, "TOML syntax error: arrays or inline tables nested too deeply") from exc


def _load_chain(path: Path, seen: tuple[Path, ...], sources: SourceLines,
                device: str = "cpu") -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The file merged over what it extends; returns the merged dict and the files used."""
    if path.resolve() in seen:
        raise SpecError(path, "extends itself through " + " -> ".join(p.name for p in seen))
    data = _read_toml(path, sources)
    _check_keys(data, path, sources)
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return data, (path,)
    if not isinstance(parent_name, str) or not parent_name:
        raise SpecError(path, "'extends' must be a sweep name such as \"default\"",
                        sources.line_of(path, "extends"))
    parent_path = path.parent / f"{parent_name}.toml"
    if not parent_path.is_file():
        try:
            parent_path = find_sweep_file(parent_name)
        except SpecError as exc:  # the mistake is in the file that extends, not in the file it names
            raise SpecError(path, f"extends \"{parent_name}\": {exc}", sources.line_of(path, "extends")) from exc
    if parent_path.suffix == ".ini":  # extends a PufferLib env's config: its mapped sweep
        parent, chain = _puffer_table(parent_name, device)
        return _merge(parent, data), (path, *chain)
    parent, chain = _load_chain(parent_path, (*seen, path.resolve()), sources, device)
    return _merge(parent, data), (path, *chain)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_keys(data: dict[str, Any], path: Path, sources: SourceLines) -> None:
    """One file's shape: every table is a table, `command` a list of strings, and unknown keys are
    typos until proven otherwise (name the closest known key). Values are checked after merging."""
    _unknown(data, TOP_KEYS, path, "", sources)
    for key in ("sweep", "search", *TRIAL_SECTIONS):
        if key in data and not isinstance(data[key], dict):
            example = "[search.train.learning_rate]" if key == "search" else f"[{key}]"
            raise SpecError(path, f"'{key}' must be a table such as {example}, got {data[key]!r}",
                            sources.line_in(path, "", key) or sources.line_of(path, key))
    if "command" in data and not (isinstance(data["command"], list)
                                  and all(isinstance(c, str) for c in data["command"])):
        raise SpecError(path, f"command must be a list of strings such as [\"python\", \"train.py\"], "
                              f"got {data['command']!r}", sources.line_of(path, "command"))
    _unknown(data.get("sweep", {}), SETTING_KEYS, path, "[sweep] ", sources)
    for section, table in data.get("search", {}).items():
        if section not in TRIAL_SECTIONS:
            raise SpecError(path, f"unknown section [search.{section}]{_did_you_mean(section, TRIAL_SECTIONS)}",
                            sources.line_of(path, f"search.{section}"))
        if not isinstance(table, dict):
            raise SpecError(path, f"[search] {section} must hold tables such as [search.{section}.learning_rate], "
                                  f"got {table!r}",
                            sources.line_in(path, "search", section) or sources.line_of(path, section))
        for key, param in table.items():
            if not isinstance(param, dict):
                raise SpecError(path, f"[search.{section}.{key}] must be a table with space/min/max/center, "
                                      f"got {param!r}", sources.line_in(path, f"search.{section}", key)
                                      or sources.line_of(path, key))
            _unknown(param, PARAM_KEYS, path, f"[search.{section}.{key}] ", sources)


def _unknown(table: dict[str, Any], known: tuple[str, ...], path: Path, where: str, sources: SourceLines) -> None:
    for key in table:
        if key not in known:
            raise SpecError(path, f"unknown key {where}'{key}'{_did_you_mean(key, known)}",
                            sources.line_of(path, key))


def _did_you_mean(word: Any, known: tuple[str, ...] | list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _decode(path: Path) -> str:
    """A sweep file's text; SpecError naming the file when it cannot be read or is not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        # TOML is UTF-8; editors on Windows may start the file with a byte-order mark, which tomllib refuses.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
                              "a sweep file is a TOML text file", line) from exc


_HEADER = re.compile(r"^\s*\[+\s*([^\]]*?)\s*\]+")
_ASSIGNMENT = re.compile(r"^\s*([\w\-.\"' ]+?)\s*=")
_QUOTES_AND_SPACES = re.compile(r"[\s\"']")


@dataclass(frozen=True)
class KeyLines:
    """Where one file names its keys (tomllib keeps no positions); the first mention wins."""

    tables: dict[str, int]            # "search.train.learning_rate" -> the line of its [header]
    keys: dict[tuple[str, str], int]  # (table, key) -> the line of `key = ...` in [table]; "" is the top level
    names: dict[str, int]             # a key's last dotted part -> the first line assigning it or opening its table


def scan_key_lines(text: str) -> KeyLines:
    """One pass over a file's lines: every later lookup is a dict read."""
    tables: dict[str, int] = {}
    keys: dict[tuple[str, str], int] = {}
    names: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _QUOTES_AND_SPACES.sub("", header[1])
            tables.setdefault(table, number)
            names.setdefault(table.rsplit(".", 1)[-1], number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            key = _QUOTES_AND_SPACES.sub("", assignment[1])
            keys.setdefault((table, key), number)
            names.setdefault(key.rsplit(".", 1)[-1], number)
    return KeyLines(tables, keys, names)


class SourceLines:
    """The files of one `load_spec`, each read and scanned once. Rescanning a file per param made
    validation quadratic (4,000 params took 46 s; benchmarks/spec_validate.py)."""

    def __init__(self) -> None:
        self._texts: dict[Path, str] = {}
        self._lines: dict[Path, KeyLines | None] = {}

    def text(self, path: Path) -> str:
        """The file's text, a UTF-8 byte-order mark dropped."""
        if path not in self._texts:
            self._texts[path] = _decode(path)
        return self._texts[path]

    def line_of(self, path: Path, key: str) -> int | None:
        """The first line where `key` (its last dotted part) is assigned or opens a table."""
        lines = self._scan(path)
        return lines.names.get(key.rsplit(".", 1)[-1]) if lines else None

    def line_in(self, path: Path, table: str, key: str) -> int | None:
        """The line where `key` is assigned inside `[table]` ("" for the top level, before any table)."""
        lines = self._scan(path)
        return lines.keys.get((table, key)) if lines else None

    def table_line(self, path: Path, table: str) -> int | None:
        """The line of the `[table]` header ("search.train.learning_rate")."""
        lines = self._scan(path)
        return lines.tables.get(table) if lines else None

    def _scan(self, path: Path) -> KeyLines | None:
        if path not in self._lines:
            try:
                self._lines[path] = scan_key_lines(self.text(path))
            except SpecError:  # a file that cannot be read has no line to point at
                self._lines[path] = None
        return self._lines[path]


def _resolve(raw: dict[str, Any], path: Path, chain: tuple[Path, ...], name: str, sources: SourceLines,
             overridden: frozenset[str] = frozenset(), device: str = "cpu") -> SweepSpec:
    from sweepd import envs  # the registry of env families; imported late to keep spec light

    settings = _settings(raw.get("sweep", {}), chain, sources, overridden)
    if not settings.device:
        settings = dataclasses.replace(settings, device=device)
    trainer = raw.get("trainer", "puffer")
    if trainer not in TRAINERS:
        raise SpecError(path, f"trainer must be one of {', '.join(TRAINERS)}, got '{trainer}'",
                        sources.line_of(path, "trainer"))
    command = raw.get("command") or []
    if trainer == "command" and not (
            isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        raise SpecError(path, "trainer = \"command\" needs command = [\"python\", \"train.py\", ...]",
                        sources.line_of(path, "command"))
    env = raw.get("env_name")
    if not isinstance(env, str) or not env:
        raise SpecError(path, "missing env_name = \"<name>\" (the environment to train on)")
    if trainer == "puffer" and env not in envs.names():
        raise SpecError(path, str(envs.UnknownEnvError(env, envs.names())),
                        sources.line_of(path, "env_name"))
    if trainer == "puffer" and settings.metric != "score":  # "score": the family's own, always logged
        try:
            envs.get(env).metric_key(settings.metric)
        except UnknownMetricError as exc:
            owner = _owner(chain, "metric", sources)
            raise SpecError(owner, f"[sweep] {exc}",
                            sources.line_in(owner, "sweep", "metric") or sources.line_of(owner, "metric")) from exc
    defaults = {section: dict(raw.get(section) or {}) for section in TRIAL_SECTIONS}
    params = tuple(_param(f"{section}.{key}", table, _owner(chain, key, sources), sources)
                   for section, tables in sorted(raw.get("search", {}).items())
                   for key, table in sorted(tables.items()))
    if not params:
        # A searcher needs a space to search; one config over many seeds is not a sweep.
        raise SpecError(path, "nothing to search: add a searched param such as [search.train.learning_rate] "
                              "with space, min and max", sources.line_of(path, "search"))
    _check_command_placeholders(trainer, command, params, defaults, path, sources)
    if settings.budget_param and settings.budget_param not in {p.name for p in params if not p.is_choice}:
        owner = _owner(chain, "budget_param", sources)
        what = "a choice, not a step count" if settings.budget_param in {p.name for p in params} \
            else "no searched param"
        raise SpecError(owner, f"[sweep] budget_param '{settings.budget_param}' names {what}",
                        sources.line_of(owner, "budget_param"))
    return SweepSpec(name=name, env=env, trainer=trainer, settings=settings, params=params,
                     defaults=defaults, command=tuple(command), source=" <- ".join(map(str, chain)))


def _owner(chain: tuple[Path, ...], key: str, sources: SourceLines) -> Path:
    """The file in the extends chain that mentions `key` first: where its error belongs."""
    for path in chain:
        if sources.line_of(path, key):
            return path
    return chain[0]


def _settings(table: dict[str, Any], chain: tuple[Path, ...], sources: SourceLines,
              overridden: frozenset[str] = frozenset()) -> SweepSettings:
    def fail(key: str, message: str) -> SpecError:
        """The error where the value came from: the command-line option, else the file that sets it."""
        if key in overridden:
            return SpecError(None, f"{_option(key)}: {message}")
        owner = _owner(chain, key, sources)
        return SpecError(owner, f"[sweep] {message}",
                         sources.line_in(owner, "sweep", key) or sources.line_of(owner, key))

    base = SweepSettings()
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = type(getattr(base, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise fail(key, f"{key} must be {expected.__name__}, got {value!r}")
        if expected is float and not math.isfinite(value):
            raise fail(key, f"{key} must be a finite number, got {value!r}")
        if expected is int and key != "seed" and not -INT32 <= value < INT32:  # seed: its own range below
            raise fail(key, f"{key} must be {'below 2**31' if value > 0 else 'above -2**31'}, got {value}")
        values[key] = value
    settings = SweepSettings(**values)

    if settings.direction not in ("maximize", "minimize"):
        raise fail("direction", f"direction must be maximize or minimize, got '{settings.direction}'")
    if settings.searcher not in SEARCHERS:
        raise fail("searcher", f"searcher must be one of {', '.join(SEARCHERS)}, got '{settings.searcher}'")
    if not settings.max_suggestion_cost > 0:
        raise fail("max_suggestion_cost",
                   f"max_suggestion_cost must be > 0 seconds, got {settings.max_suggestion_cost}")
    if settings.cost_tolerance < 1:
        raise fail("cost_tolerance", f"cost_tolerance must be >= 1, got {settings.cost_tolerance}")
    if settings.early_stopping not in ("on", "off"):
        raise fail("early_stopping", f"early_stopping must be \"on\" or \"off\", got {settings.early_stopping!r}")
    if not 0 < settings.early_stop_probability < 1:
        raise fail("early_stop_probability",
                   f"early_stop_probability must be in (0, 1), got {settings.early_stop_probability}")
    if not 0 < settings.early_stop_min_fraction <= 1:
        raise fail("early_stop_min_fraction",
                   f"early_stop_min_fraction must be in (0, 1], got {settings.early_stop_min_fraction}")
    if not 0 < settings.initial_search_radius <= 10:
        raise fail("initial_search_radius",
                   f"initial_search_radius must be in (0, 10] basic units, got {settings.initial_search_radius}")
    if not 0 <= settings.min_pareto_cost_fraction < 1:
        raise fail("min_pareto_cost_fraction",
                   f"min_pareto_cost_fraction must be in [0, 1), got {settings.min_pareto_cost_fraction}")
    if not 0 < settings.cost_quantile < 1:
        raise fail("cost_quantile", f"cost_quantile must be in (0, 1), got {settings.cost_quantile}")
    if settings.curve_points < 0:
        raise fail("curve_points", f"curve_points must be >= 0, got {settings.curve_points}")
    for key in ("max_trials", "num_random_samples", "resample_frequency", "eval_episodes", "eval_seeds",
                "max_slots", "trials_per_gpu"):
        if getattr(settings, key) < 0 or (key in ("eval_episodes", "eval_seeds") and getattr(settings, key) < 1):
            raise fail(key, f"{key} must be {'>= 1' if key.startswith('eval') else '>= 0'}, "
                            f"got {getattr(settings, key)}")
    if settings.device not in ("", *DEVICES):
        raise fail("device", f"device must be one of {', '.join(DEVICES)}, got '{settings.device}'"
                             f"{_did_you_mean(settings.device, DEVICES)}")
    if not 0 <= settings.seed < INT32:
        raise fail("seed", f"seed must be in [0, 2**31), got {settings.seed}")
    if settings.max_total_cost < 0:
        raise fail("max_total_cost", f"max_total_cost must be >= 0, got {settings.max_total_cost}")
    if settings.max_trials == 0 and settings.max_total_cost == 0:
        raise fail("max_trials", "give a budget: max_trials and/or max_total_cost")
    if 0 < settings.max_total_cost < settings.max_charge:
        # A trial may start only while the budget covers it at its most (sweepd/store/budget.py).
        key = "max_suggestion_cost" if "max_suggestion_cost" in overridden - {"max_total_cost"} else "max_total_cost"
        raise fail(key, f"max_total_cost {settings.max_total_cost:g} s cannot pay for one trial at its cost cap "
                        f"{settings.cost_cap:g} s plus the {COST_GRACE_S:g} s grace (max_suggestion_cost "
                        f"{settings.max_suggestion_cost:g} s x cost_tolerance {settings.cost_tolerance:g})")
    return settings


def _param(name: str, table: dict[str, Any], path: Path, sources: SourceLines) -> Param:
    key = name.split(".", 1)[1]
    line = sources.table_line(path, f"search.{name}") or sources.line_of(path, key)

    def fail(message: str) -> SpecError:
        return SpecError(path, f"[search.{name}] {message}", line)

    space = table.get("space", "choice" if "values" in table else "linear")
    if not isinstance(space, str) or space not in SPEC_SPACES:
        raise fail(f"space must be one of {', '.join(SPEC_SPACES)}, got '{space}'{_did_you_mean(space, SPEC_SPACES)}")
    if space in ("choice", "bool"):
        return _choice_param(name, space, table, path, sources, fail)
    if "values" in table:
        raise fail(f"values = [...] lists the values of a choice: write space = \"choice\" (not {space}), "
                   "or min and max for a range")
    for k in ("min", "max", "center"):
        if k in table and (isinstance(table[k], bool) or not isinstance(table[k], int | float)):
            raise fail(f"{k} must be a number, got {table[k]!r}")
    if "center" not in table:
        if "min" not in table or "max" not in table:
            raise fail("needs center, or min and max")
        low, high = float(table["min"]), float(table["max"])
        center = middle(space, low, high)
    else:
        center = float(table["center"])
        inferred = _default_range(space, center)
        if inferred is None and ("min" not in table or "max" not in table):
            raise fail(f"cannot infer a range around center {center} in a {space} space: give min and max")
        low = float(table.get("min", inferred[0] if inferred else 0.0))
        high = float(table.get("max", inferred[1] if inferred else 0.0))
    if not all(math.isfinite(v) for v in (low, high, center)):
        raise fail("min, max and center must be finite")
    if low >= high:
        raise fail(f"min ({low:g}) must be below max ({high:g})")
    if space in ("log", "pow2") and low <= 0:
        raise fail(f"a {space} space needs min > 0, got {low:g}")
    if space == "logit" and not (low > 0 and high < 1):
        raise fail(f"a logit space needs 0 < min and max < 1, got [{low:g}, {high:g}]")
    if not low <= center <= high:
        raise fail(f"center {center:g} is outside [min, max] = [{low:g}, {high:g}]")
    integer = table.get("integer", space == "pow2")
    if not isinstance(integer, bool):
        raise fail(f"integer must be true or false, got {integer!r}")
    scale = table.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not (math.isfinite(scale) and scale > 0)):
        raise fail(f"scale must be a number > 0 (warped units per basic unit, sweepd/space.py), got {scale!r}")
    if integer and math.ceil(low) > math.floor(high):
        raise fail(f"no integer lies in [{low:g}, {high:g}]")
    try:
        return Param(name=name, space=space, min=low, max=high, center=center, integer=integer,
                     scale=None if scale is None else float(scale))
    except ValueError as exc:
        raise fail(str(exc)) from exc


def _choice_param(name: str, space: str, table: dict[str, Any], path: Path, sources: SourceLines,
                  fail: Callable[[str], SpecError]) -> Param:
    """A `space = "choice"` (or "bool") param: its values checked where the file lists them."""
    for k in table:
        if k not in CHOICE_KEYS:
            raise fail(f"a choice takes {', '.join(CHOICE_KEYS)}, not {k} (the values are the range)")
    if space == "bool":
        if "values" in table:
            raise fail("space = \"bool\" is the choice of false and true: drop values, or write space = \"choice\"")
        values: Any = [False, True]
    elif "values" not in table:
        raise fail("a choice needs values = [...], e.g. values = [\"relu\", \"tanh\"]")
    else:
        values = table["values"]
    center = table.get("center", values[0] if isinstance(values, list) and values else None)
    problem = choice_error(values, center)
    if problem:
        line = sources.line_in(path, f"search.{name}", "values" if problem.startswith("values") else "center")
        raise SpecError(path, f"[search.{name}] {problem}", line or sources.table_line(path, f"search.{name}")
                        or sources.line_of(path, name.split(".", 1)[1]))
    scale = table.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not (math.isfinite(scale) and scale > 0)):
        raise fail(f"scale must be a number > 0 (value steps per basic unit, sweepd/space.py), got {scale!r}")
    return Param.choice(name, values, center, None if scale is None else float(scale))


def _default_range(space: str, center: float) -> tuple[float, float] | None:
    if space == "log" and center > 0:
        return center / 10, center * 10
    if space == "pow2" and center > 0:
        return center / 4, center * 4
    if space == "logit" and 0 < center < 1:
        z = math.log10(center / (1 - center))
        return 1 / (1 + 10 ** -(z - 1)), 1 / (1 + 10 ** -(z + 1))
    if space == "linear" and center > 0:
        return center / 2, center * 2
    return None


def _check_command_placeholders(trainer: str, command: list[str], params: tuple[Param, ...],
                                defaults: dict[str, dict[str, Any]], path: Path, sources: SourceLines) -> None:
    """Every {section.key} in a command must name a param or a default: a typo fails here."""
    if trainer != "command":
        return
    known = {p.name for p in params} | {f"{s}.{k}" for s, table in defaults.items() for k in table}
    known |= {"seed", "trial_id", "artifact_dir"}
    for part in command:
        for placeholder in re.findall(r"\{([^{}]+)\}", part):
            if placeholder not in known:
                raise SpecError(path, f"command placeholder '{{{placeholder}}}' names no param or default"
                                      f"{_did_you_mean(placeholder, sorted(known))}", sources.line_of(path, "command"))
