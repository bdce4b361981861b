"""PufferLib 3 configs as sweepd sweeps: `sweepd launch puffer_pong` from PufferLib's own ini files.

The ini files are read by sweepd/puffer_ini.py, exactly as PufferLib reads them.

Mapping (`sweep_from_config`), the result shaped like a sweep file (see docs/architecture.md):
- `[train]`, `[env]`, `[policy]` are the defaults of every trial (keys the worker sets per trial,
  device, seed and data_dir, and None values, which PufferLib's own resolution supplies, are left
  out), with the env family's sizing for the sweep's device written over them (`EnvFamily.sizing`:
  on CPU one in-process env and small batches; on CUDA PufferLib's own ini values).
- each `[sweep.SECTION.KEY]` (also the W&B layout `[sweep.parameters.SECTION.parameters.KEY]`,
  where the env's ini beats default.ini for the same key) becomes `[search.SECTION.KEY]`:
  `log_normal` -> log, `logit_normal` -> logit, `uniform` -> linear, `int_uniform` -> linear
  integer, `uniform_pow2` -> pow2, W&B's `log_uniform_values` -> log; no distribution: W&B's rule
  (int_uniform when min and max are written as integers, else uniform); `values = [...]` that are
  consecutive powers of two -> pow2, any other list of values -> a choice (numbers in ascending
  order, so the list's order, which sweepd's search reads as distance, is theirs; strings and
  booleans as listed; duplicates dropped), centred on the trial default when it is listed, else
  on the first value.
- centre: the trial default when it lies in [min, max] (so the searcher's first suggestion, the
  centre, is the config PufferLib trains by default: PufferLib's own sweep starts at `mean`, which
  for snake means zero food reward), else `mean` when it lies in [min, max], else the middle
  (geometric for log/pow2, in log-odds for logit, arithmetic for linear).
- integer: int_uniform and uniform_pow2, or a key whose base value is an int and whose bounds hold
  an integer (base value: default.ini's for [train] keys, the trainer's own declaration, so an env
  ini writing `vtrace_c_clip = 0` does not make it integral; the env ini's for [env] keys).
- `scale`: a number s means PufferLib steps uniformly within +-s of the centre in its normalized
  [-1, 1] box, a half-width h = s * span / 2 in warped units; sweepd steps with a Gaussian of
  `SEARCH_RADIUS` basic units, so the param's basic scale is set to give the same spread
  (standard deviation h / sqrt(3)). `auto` (PufferLib's fixed 0.5) and `time` keep sweepd's default
  scale for the space: they are PufferLib's defaults, not the author's choice.
- min == max: the key is pinned to that value (PufferLib divides by zero). Keys the env family's
  sizing sets (vec, env num_envs, batch geometry) are pinned at the family's value: PufferLib's
  ranges are for GPU batches and a searched minibatch above the CPU batch would fail every trial.
  The GPU sizing sets none of them, so a CUDA sweep searches them as PufferLib's config says.
  A [train] key PufferLib's trainer does not have is skipped. Every such decision is a `Note`
  that `sweepd show` prints.
- `[sweep]`: metric (PufferLib's `[sweep.metric] name` or `[sweep] metric`, without its
  `environment/` prefix), goal -> direction, method -> searcher (random stays random, anything
  else is sweepd's CARBS), `[base] max_suggestion_cost` -> max_suggestion_cost (PufferLib never
  passes it on; when only default.ini sets it, its 3600 s is sized for GPU runs, so a CPU sweep
  gets `CPU_COST_CAP` instead, with a note), and `budget_param` = the param PufferLib scales by `time` (else
  train.total_timesteps): `sweepd launch` fits its range to this box's speed (sweepd/budget.py).

Errors are `SpecError`s naming the ini file, the section and its line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepd.envs.family import MANAGED_TRAIN_KEYS, TRIAL_SECTIONS
from sweepd.puffer_ini import PufferConfig, read_config
from sweepd.space import as_text, choice_error, middle, warp

DISTRIBUTIONS = {
    "log_normal": "log", "logit_normal": "logit", "uniform": "linear", "int_uniform": "linear",
    "uniform_pow2": "pow2", "log_uniform_values": "log",
}
INTEGER_DISTRIBUTIONS = ("int_uniform", "uniform_pow2")
CHOICE = "choice"  # a list of values that is not a range: a choice param
PARAM_KEYS = ("distribution", "min", "max", "mean", "scale", "values")
# Keys whose values depend on the box (batch geometry, env copies): the env family owns them.
SIZING_KEYS = {"train": ("batch_size", "minibatch_size", "bptt_horizon", "max_minibatch_size"),
               "env": ("num_envs",)}
# sweepd's CARBS warm-up step (sweepd.search.carbs, initial_search_radius), in basic units; a test
# checks it against the searcher's default.
SEARCH_RADIUS = 0.3
BUDGET_KEY = "train.total_timesteps"
# A CPU sweep's cost cap when only PufferLib's default.ini sets one (3600 s, an hour per trial on
# a 2-core box): five minutes, which the budget fit (sweepd/budget.py) then sizes trials to.
CPU_COST_CAP = 300.0
CPU_CAP_ORIGIN = "sweepd: CPU-sized default"


@dataclass(frozen=True)
class Note:
    """A decision the mapping took for one key: skipped, pinned or adjusted, and why."""

    name: str       # "train.learning_rate", "sweep.downsample", ...
    action: str     # "skipped" | "pinned" | "adjusted" | "ignored"
    reason: str


@dataclass(frozen=True)
class PufferSweep:
    """A PufferLib config mapped to a sweep: `raw` has a sweep file's shape; `origins` says where
    each default ("train.gamma"), param field ("search.train.gamma.center") and setting
    ("sweep.metric") came from."""

    config: PufferConfig
    raw: dict[str, Any]
    origins: dict[str, str]
    notes: tuple[Note, ...]


def sweep_from_config(name: str, directory: Path | None = None,
                      sizing: dict[str, dict[str, Any]] | None = None, device: str = "cpu") -> PufferSweep:
    """The sweep (sweep-file shape, with origins and notes) for PufferLib env `name`, for trials on
    `device` ("cpu" or "cuda").

    `sizing` is the env family's defaults written over the ini (default: the sizing for `device` of
    the family the registry gives for `name`). A registered family that trains another PufferLib
    env (sweepd's `gpudrive` runs `puffer_gpudrive`) takes that env's config.
    """
    notes: list[Note] = []
    source_env = name
    if sizing is None:
        from sweepd import envs

        family = envs.get(name)
        sizing = {s: dict(v) for s, v in family.sizing(device).items()}
        if family.puffer_env and family.puffer_env != name:
            source_env = family.puffer_env
            notes.append(Note("env_name", "adjusted", f"sweepd's '{name}' family trains PufferLib's "
                                                      f"'{source_env}': its config is used"))
    config = read_config(source_env, directory)
    origins: dict[str, str] = {}
    defaults = _defaults(config, sizing, origins, device)
    search: dict[str, dict[str, Any]] = {}
    for param_name, section in _param_sections(config, notes):
        _map_param(config, param_name, section, defaults, sizing, search, origins, notes)
    settings = _settings(config, search, origins, notes, device)
    raw: dict[str, Any] = {"env_name": name, "trainer": "puffer", "sweep": settings, **defaults,
                           "search": {s: dict(sorted(t.items())) for s, t in sorted(search.items())}}
    return PufferSweep(config=config, raw=raw, origins=origins, notes=tuple(notes))


def _defaults(config: PufferConfig, sizing: dict[str, dict[str, Any]],
              origins: dict[str, str], device: str) -> dict[str, dict[str, Any]]:
    defaults: dict[str, dict[str, Any]] = {}
    for section in TRIAL_SECTIONS:
        values: dict[str, Any] = {}
        for key, value in config.sections.get(section, {}).items():
            if value is None or (section == "train" and key in MANAGED_TRAIN_KEYS):
                continue
            values[key] = value
            origins[f"{section}.{key}"] = config.origin(section, key)
        for key, value in sizing.get(section, {}).items():
            if section == "train" and key in MANAGED_TRAIN_KEYS:
                continue
            values[key] = value
            origins[f"{section}.{key}"] = f"sweepd env family default ({'GPU' if device == 'cuda' else 'CPU'} sizing)"
        defaults[section] = values
    return defaults


def _param_sections(config: PufferConfig, notes: list[Note]) -> list[tuple[str, str]]:
    """(param name, ini section) for each searched key; the env's ini beats default.ini when both
    name the same key (in either layout)."""
    chosen: dict[str, str] = {}
    for section in config.sections:
        parts = section.split(".")
        if parts[0] != "sweep" or len(parts) == 1:
            continue
        path = [p for p in parts[1:] if p != "parameters"]  # W&B's nested layout
        if path == ["metric"]:
            continue  # a setting, read by _settings
        if len(path) != 2:
            notes.append(Note(".".join(path), "skipped", f"[{section}] is neither a setting nor "
                                                         f"a [sweep.SECTION.KEY] parameter"))
            continue
        name = ".".join(path)
        previous = chosen.get(name)
        if previous is None or (section in config.own and previous not in config.own):
            if previous is not None:
                notes.append(Note(name, "adjusted", f"{config.label(config.path)} [{section}] replaces "
                                                    f"{config.label(config.default_path)} [{previous}]"))
            chosen[name] = section
    return sorted(chosen.items())


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _map_param(config: PufferConfig, name: str, section: str, defaults: dict[str, dict[str, Any]],
               sizing: dict[str, dict[str, Any]], search: dict[str, dict[str, Any]],
               origins: dict[str, str], notes: list[Note]) -> None:
    """Map one [sweep.*] section into `search` (or pin/skip it, with a note)."""
    table = config.sections[section]
    where = config.origin(section)
    owner, key = name.split(".", 1)
    for field_name in table:
        if field_name not in PARAM_KEYS:
            raise config.error(section, f"unknown key '{field_name}' (known: {', '.join(PARAM_KEYS)})")
    if owner == "vec" or owner not in TRIAL_SECTIONS:
        why = ("vec settings size the vectorized env for the box: the env family's sizing sets them "
               "(on CUDA, PufferLib's ini)"
               if owner == "vec" else f"'{owner}' is not one of {', '.join(TRIAL_SECTIONS)}")
        notes.append(Note(name, "skipped", why))
        return
    if owner == "train" and key not in defaults["train"] and key not in config.sections.get("train", {}):
        notes.append(Note(name, "skipped", f"PufferLib's trainer has no [train] {key} (not in "
                                           f"default.ini or {config.label(config.path)})"))
        return

    distribution, low, high = _distribution_and_bounds(config, section, table, name, notes)
    if distribution == CHOICE:
        _map_choice(config, name, section, table, defaults, sizing, search, origins, notes)
        return
    space = DISTRIBUTIONS[distribution]
    if key in SIZING_KEYS.get(owner, ()) and key in sizing.get(owner, {}):
        notes.append(Note(name, "pinned", f"sized for the box by sweepd's env family at {sizing[owner][key]!r} "
                                          f"(PufferLib's range {low:g}..{high:g} is for GPU batches)"))
        return
    if low == high:
        _pin(defaults, origins, name, low, where)
        notes.append(Note(name, "pinned", f"min == max == {low:g}: not searched"))
        return
    if space in ("log", "pow2") and low <= 0:
        raise config.error(section, f"a {distribution} distribution needs min > 0, got {low:g}")
    if space == "logit" and not (low > 0 and high < 1):
        raise config.error(section, f"a logit_normal distribution needs 0 < min and max < 1, "
                                    f"got [{low:g}, {high:g}]")

    integer = distribution in INTEGER_DISTRIBUTIONS or (
        space != "logit" and isinstance(_base_value(config, owner, key), int)
        and not isinstance(_base_value(config, owner, key), bool) and math.ceil(low) <= math.floor(high))
    center, center_origin = _center(config, section, table, name, space, low, high, defaults, origins, notes)
    param: dict[str, Any] = {"space": space, "min": low, "max": high, "center": center, "integer": integer}
    scale = _scale(config, section, table, space, low, high)
    if scale is not None:
        param["scale"] = scale
    search.setdefault(owner, {})[key] = param
    for field_name in ("space", "min", "max", "scale"):
        origins[f"search.{name}.{field_name}"] = where
    origins[f"search.{name}.center"] = center_origin
    origins[f"search.{name}.integer"] = (where if distribution in INTEGER_DISTRIBUTIONS or not integer
                                         else "the type of the key's base value")


def _distribution_and_bounds(config: PufferConfig, section: str, table: dict[str, Any], name: str,
                             notes: list[Note]) -> tuple[str, float, float]:
    """The distribution and bounds of a [sweep.*] table; `CHOICE` for a list of values that is not a
    range (`_map_choice` maps it)."""
    if "values" in table:
        values = table["values"]
        if not (isinstance(values, list | tuple) and values):
            raise config.error(section, f"values must be a list, got {values!r}")
        if not all(_number(v) for v in values):
            return CHOICE, 0.0, 0.0
        ordered = sorted(set(values))
        if len(ordered) == 1:
            return "uniform", ordered[0], ordered[0]
        powers = [math.log2(v) if v > 0 else math.nan for v in ordered]
        if all(p.is_integer() for p in powers) and powers == list(range(int(powers[0]), int(powers[-1]) + 1)):
            notes.append(Note(name, "adjusted", f"values {list(values)} are consecutive powers of two: pow2"))
            return "uniform_pow2", ordered[0], ordered[-1]
        return CHOICE, 0.0, 0.0
    for bound in ("min", "max"):
        if bound not in table:
            raise config.error(section, f"needs {bound} (or values = [...])")
        if not _number(table[bound]) or not math.isfinite(table[bound]):
            raise config.error(section, f"{bound} must be a finite number, got {table[bound]!r}")
    low, high = table["min"], table["max"]
    distribution = table.get("distribution")
    if distribution is None:
        distribution = "int_uniform" if isinstance(low, int) and isinstance(high, int) else "uniform"
        notes.append(Note(name, "adjusted", f"no distribution: {distribution} (W&B's rule for "
                                            f"{'integer' if distribution == 'int_uniform' else 'real'} bounds)"))
    if distribution not in DISTRIBUTIONS:
        raise config.error(section, f"distribution must be one of {', '.join(DISTRIBUTIONS)}, "
                                    f"got {distribution!r}")
    if low > high:
        raise config.error(section, f"min ({low:g}) must not exceed max ({high:g})")
    return distribution, low, high


def _map_choice(config: PufferConfig, name: str, section: str, table: dict[str, Any],
                defaults: dict[str, dict[str, Any]], sizing: dict[str, dict[str, Any]],
                search: dict[str, dict[str, Any]], origins: dict[str, str], notes: list[Note]) -> None:
    """A list of values that is not a range, as a choice param (or pinned, with a note)."""
    owner, key = name.split(".", 1)
    where = config.origin(section)
    listed = list(table["values"])
    numbers = all(_number(v) for v in listed)
    # Numbers ascending: sweepd's search reads list order as distance (sweepd/space.py).
    values = sorted(set(listed)) if numbers else [
        v for i, v in enumerate(listed) if not any(type(v) is type(w) and v == w for w in listed[:i])]
    problem = choice_error(values) if len(values) > 1 else None
    if problem:
        raise config.error(section, problem)
    if key in SIZING_KEYS.get(owner, ()) and key in sizing.get(owner, {}):
        notes.append(Note(name, "pinned", f"sized for the box by sweepd's env family at {sizing[owner][key]!r} "
                                          f"(PufferLib's values {', '.join(map(as_text, values))} are for "
                                          "GPU batches)"))
        return
    if len(values) == 1:
        _pin(defaults, origins, name, values[0], where)
        notes.append(Note(name, "pinned", f"one value, {as_text(values[0])}: not searched"))
        return
    default = defaults[owner].get(key)
    center = next((v for v in values if v == default and isinstance(v, bool) == isinstance(default, bool)), None)
    center_origin = origins.get(name, config.origin(owner, key))
    if center is None:
        center, center_origin = values[0], f"first of {where} values"
        notes.append(Note(name, "adjusted", f"centre = first value {as_text(values[0])}: the [{owner}] value "
                                            f"{'(none)' if default is None else as_text(default)} is not listed"))
    notes.append(Note(name, "adjusted", f"values {', '.join(map(as_text, values))}: a choice (the search reads "
                                        "list order as distance)"))
    search.setdefault(owner, {})[key] = {"space": "choice", "values": values, "center": center}
    for field_name in ("space", "values"):
        origins[f"search.{name}.{field_name}"] = where
    origins[f"search.{name}.center"] = center_origin


def _pin(defaults: dict[str, dict[str, Any]], origins: dict[str, str], name: str, value: Any, where: str) -> None:
    owner, key = name.split(".", 1)
    defaults[owner][key] = value
    origins[name] = f"{where} (min == max)"


def _base_value(config: PufferConfig, owner: str, key: str) -> Any:
    """The value whose type decides integrality: default.ini's for trainer keys, else the env's."""
    if owner == "train" and _number(config.base.get("train", {}).get(key)):
        return config.base["train"][key]
    return config.sections.get(owner, {}).get(key)


def _center(config: PufferConfig, section: str, table: dict[str, Any], name: str, space: str,
            low: float, high: float, defaults: dict[str, dict[str, Any]], origins: dict[str, str],
            notes: list[Note]) -> tuple[float, str]:
    owner, key = name.split(".", 1)
    value = defaults[owner].get(key)
    if _number(value):
        # Tuned values are often printed a rounding error past a bound (0.09999999999999998 for
        # a min of 0.1): that is the bound.
        value = next((bound for bound in (low, high) if math.isclose(value, bound, rel_tol=1e-9)), value)
    mean = table.get("mean")
    if mean is not None and not _number(mean):
        raise config.error(section, f"mean must be a number, got {mean!r}")
    if _number(value) and low <= value <= high:
        return value, origins.get(name, config.origin(owner, key))
    outside = (f"the [{owner}] value {value:g} lies outside [{low:g}, {high:g}]" if _number(value)
               else f"no numeric [{owner}] {key}")
    if mean is not None and low <= mean <= high:
        notes.append(Note(name, "adjusted", f"centre = mean {mean:g}: {outside}"))
        return mean, f"{config.origin(section)} mean"
    centre = middle(space, low, high)
    why = f"; mean {mean:g} lies outside the range" if mean is not None else ""
    notes.append(Note(name, "adjusted", f"centre = middle {centre:g}: {outside}{why}"))
    return centre, f"middle of {config.origin(section)} [min, max]"


def _scale(config: PufferConfig, section: str, table: dict[str, Any], space: str, low: float,
           high: float) -> float | None:
    scale = table.get("scale", "auto")
    if scale in ("auto", "time"):
        return None
    if not _number(scale) or not (math.isfinite(scale) and scale > 0):
        raise config.error(section, f"scale must be a positive number, 'auto' or 'time', got {scale!r}")
    half_width = scale * (warp(space, high) - warp(space, low)) / 2
    return half_width / (math.sqrt(3.0) * SEARCH_RADIUS)


def _settings(config: PufferConfig, search: dict[str, dict[str, Any]], origins: dict[str, str],
              notes: list[Note], device: str = "cpu") -> dict[str, Any]:
    sweep = config.sections.get("sweep", {})
    metric_table = config.sections.get("sweep.metric", {}) or config.sections.get("sweep.parameters.metric", {})
    settings: dict[str, Any] = {}
    metric = metric_table.get("name", sweep.get("metric", "score"))
    metric_origin = config.origin("sweep.metric") if "name" in metric_table else config.origin("sweep", "metric")
    if not isinstance(metric, str) or not metric:
        raise config.error("sweep", f"metric must be a name, got {metric!r}")
    # PufferLib logs env stats as environment/<key> and prefixes the metric itself.
    settings["metric"] = metric.removeprefix("environment/")
    origins["sweep.metric"] = metric_origin
    goal = metric_table.get("goal", sweep.get("goal", "maximize"))
    if goal not in ("maximize", "minimize"):
        raise config.error("sweep", f"goal must be maximize or minimize, got {goal!r}")
    settings["direction"] = goal
    origins["sweep.direction"] = config.origin("sweep.metric" if "goal" in metric_table else "sweep", "goal")
    method = str(sweep.get("method", "Protein")).strip()
    settings["searcher"] = "random" if method.lower() == "random" else "carbs"
    origins["sweep.searcher"] = f"{config.origin('sweep', 'method')} method {method}"
    if settings["searcher"] == "carbs" and method.lower() not in ("carbs", "protein"):
        notes.append(Note("sweep.method", "adjusted", f"method {method}: sweepd's CARBS search"))
    cost = config.sections.get("base", {}).get("max_suggestion_cost")
    if cost is not None:
        if not _number(cost) or not cost > 0:
            raise config.error("base", f"max_suggestion_cost must be a number of seconds > 0, got {cost!r}")
        settings["max_suggestion_cost"] = float(cost)
        origins["sweep.max_suggestion_cost"] = config.origin("base", "max_suggestion_cost")
        if device != "cuda" and "max_suggestion_cost" not in config.own.get("base", {}):
            settings["max_suggestion_cost"] = CPU_COST_CAP
            origins["sweep.max_suggestion_cost"] = CPU_CAP_ORIGIN
            notes.append(Note("sweep.max_suggestion_cost", "adjusted",
                              f"{CPU_COST_CAP:g} s on CPU: only {config.label(config.default_path)} sets "
                              f"{cost:g} s, sized for GPU runs (a cap of your own wins)"))
    budget = next((f"{o}.{k}" for o, t in search.items() for k in t
                   if config.sections.get(f"sweep.{o}.{k}", {}).get("scale") == "time"), None)
    if budget is None and BUDGET_KEY.split(".")[1] in search.get("train", {}):
        budget = BUDGET_KEY
    if budget is not None:
        settings["budget_param"] = budget
        origins["sweep.budget_param"] = "sweepd: the param PufferLib scales by time, else total_timesteps"
    for key in ("downsample",):
        if key in sweep:
            notes.append(Note(f"sweep.{key}", "ignored", "sweepd scores each trial once, after training, "
                                                         "by evaluation episodes"))
    return settings



def cpu_cap_applied(spec: Any) -> bool:
    """Whether a resolved sweep (`SweepSpec`) trains under `CPU_COST_CAP` because only PufferLib's
    default.ini set a cap: a CPU sweep from PufferLib's configs whose own files (the env's ini, the
    sweep files extending it) set none. `sweepd launch` says so on its sweep line."""
    import configparser
    import tomllib

    if spec.settings.device != "cpu" or spec.settings.max_suggestion_cost != CPU_COST_CAP:
        return False
    files = [Path(p) for p in spec.source.split(" <- ") if p]
    env_inis = [p for p in files if p.suffix == ".ini" and p.name != "default.ini"]
    for path in files:
        if path.suffix == ".toml" and "max_suggestion_cost" in tomllib.loads(path.read_text()).get("sweep", {}):
            return False
    for path in env_inis:
        parser = configparser.ConfigParser()
        parser.read(path)
        if parser.has_option("base", "max_suggestion_cost"):
            return False
    return bool(env_inis)
