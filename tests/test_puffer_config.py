"""PufferLib's configs as sweeps (sweepd/puffer_config.py): every config PufferLib ships resolves,
is read as PufferLib reads it, maps each [sweep.*] section deliberately, round-trips through
`sweepd convert`, and fixes what PufferLib's own sweep gets wrong; the generic env family; the
CPU budget fit (sweepd/budget.py); and, marked slow, real launches from PufferLib's configs alone."""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pufferlib", reason="pufferlib not installed: run scripts/install_pufferlib.sh")

from sweepd import envs, puffer_config, puffer_ini
from sweepd.budget import Probe, ProbeFailed, batch_estimate, cache_path, fit_budget, probe_from_events
from sweepd.convert import to_toml
from sweepd.space import Param
from sweepd.spec import SpecError, load_spec

# Read from the installed package, not a hand-made list.
PUFFER_ENVS = puffer_ini.env_names()


def comparable(spec_json: dict) -> dict:
    return {k: v for k, v in spec_json.items() if k not in ("source", "name")}


# -- every shipped config -------------------------------------------------------------------------

def test_the_installed_pufferlib_ships_many_env_configs():
    assert len(PUFFER_ENVS) > 100  # ~30 ocean envs, the Atari and procgen suites, ...
    assert {"puffer_pong", "puffer_squared", "puffer_snake", "ms_pacman"} <= set(PUFFER_ENVS)
    assert "None" not in PUFFER_ENVS  # default.ini's placeholder name


@pytest.mark.parametrize("name", PUFFER_ENVS)
def test_every_shipped_config_resolves_to_a_valid_sweep_and_round_trips(name, tmp_path):
    spec = load_spec(f"pufferlib:{name}")
    assert spec.env == name and spec.trainer == "puffer" and spec.params
    assert spec.settings.budget_param in {p.name for p in spec.params}
    for p in spec.params:
        assert p.min < p.max and p.min <= p.center <= p.max
    path = tmp_path / f"{name.replace('/', '_')}.toml"
    path.write_text(to_toml(spec))
    assert comparable(load_spec(str(path)).to_json()) == comparable(spec.to_json())


def test_the_reader_sees_what_pufferlibs_load_config_sees():
    """Every value of every config PufferLib can load, with its type; PufferLib's own loader
    crashes on configs that have both `[sweep] metric` and a `[sweep.metric]` table."""
    from sweepd.envs.family import puffer_config as pufferlib_load_config

    crashed = []
    for name in PUFFER_ENVS:
        try:
            theirs = pufferlib_load_config(name)
        except AttributeError:
            crashed.append(name)
            continue
        for section, values in puffer_ini.read_config(name).sections.items():
            node = theirs
            if section != "base" and values:  # an empty section leaves no key in PufferLib's dict
                for part in section.split("."):
                    node = node[part]
            for key, value in values.items():
                assert node[key] == value and type(node[key]) is type(value), (name, section, key)
        assert load_spec(f"pufferlib:{name}").env == name
    assert set(crashed) == {"gpudrive", "kinetix-pixels-discrete", "kinetix-symbolic-discrete",
                            "puffer_oldgrid", "zelda"}
    for name in crashed:  # sweepd reads them
        assert load_spec(f"pufferlib:{name}").params


# -- what PufferLib's own sweep gets wrong -------------------------------------------------------

def test_atari_config_that_crashes_pufferlibs_sweep_resolves_in_sweepd():
    from pufferlib import sweep as puffer_sweep
    from sweepd.envs.family import puffer_config as pufferlib_load_config

    with pytest.raises(KeyError, match="mean"):  # W&B-style sections without a mean
        puffer_sweep.Protein(pufferlib_load_config("breakout")["sweep"])
    spec = load_spec("pufferlib:breakout")  # PufferLib's Atari breakout, not sweepd's breakout.toml
    params = {p.name: p for p in spec.params}
    frameskip = params["env.frameskip"]
    assert (frameskip.space, frameskip.min, frameskip.max, frameskip.is_integer) == ("linear", 1, 10, True)
    assert frameskip.center == 4  # the Atari family's frameskip, inside [1, 10]
    steps = params["train.total_timesteps"]  # atari.ini's own range beats default.ini's
    assert (steps.space, steps.min, steps.max, steps.center) == ("linear", 5e6, 2e8, 1e7)
    assert isinstance(envs.get("ms_pacman"), envs.get("breakout").__class__)


def test_min_equal_max_divides_by_zero_in_pufferlib_and_is_pinned_here(tmp_path):
    from pufferlib import sweep as puffer_sweep

    with pytest.raises(ZeroDivisionError):
        puffer_sweep.Hyperparameters({"metric": "score", "goal": "maximize", "train": {"clip_coef": {
            "distribution": "uniform", "min": 0.2, "max": 0.2, "mean": 0.2, "scale": "auto"}}}, verbose=False)
    sweep = fake_sweep(tmp_path)
    assert "pinned" not in sweep.raw["search"].get("env", {})
    assert sweep.raw["env"]["pinned"] == 0.5
    assert ("env.pinned", "pinned") in {(n.name, n.action) for n in sweep.notes}


def test_cost_cap_from_the_ini_is_passed_on():
    # default.ini's 3600 s is for GPU runs: passed on to CUDA sweeps, a CPU-sized cap on CPU
    # (tests/test_gpu_paths.py); an env ini's own cap is passed on to both.
    assert load_spec("pufferlib:puffer_pong", device="cuda").settings.max_suggestion_cost == 3600.0
    assert load_spec("pufferlib:puffer_impulse_wars").settings.max_suggestion_cost == 10_800.0


def test_first_trial_is_pufferlibs_default_run_not_the_sweep_means():
    """PufferLib's first run uses `mean`: snake's reward_food mean 0.0 trains with no food reward."""
    from sweepd.search import create_searcher

    spec = load_spec("pufferlib:puffer_snake")
    first = create_searcher("carbs", list(spec.params), seed=0).suggest().params
    config = spec.trial_config(first)
    assert config["env"]["reward_food"] == pytest.approx(0.1)
    assert config["env"]["reward_death"] == pytest.approx(-1.0)
    ini = puffer_ini.read_config("puffer_snake").sections["train"]
    for p in spec.params:
        section, key = p.name.split(".", 1)
        if section == "train" and key in ini and p.min <= ini[key] <= p.max:
            assert config["train"][key] == pytest.approx(ini[key], rel=1e-9), p.name


# -- the mapping, on a config written here --------------------------------------------------------

DEFAULT_INI = """
[base]
package = ocean
env_name = None
max_suggestion_cost = 3600

[train]
total_timesteps = 10_000_000
learning_rate = 0.015
vtrace_c_clip = 1.0
minibatch_size = 8192
gamma = 0.995

[sweep]
method = Protein
metric = score
goal = maximize
downsample = 10

[sweep.train.learning_rate]
distribution = log_normal
min = 0.00001
mean = 0.01
max = 0.1
scale = 0.5

[sweep.train.total_timesteps]
distribution = log_normal
min = 5e7
max = 1e10
mean = 1e8
scale = time

[sweep.train.vtrace_c_clip]
distribution = uniform
min = 0.0
max = 5.0
mean = 1.0
scale = auto

[sweep.train.gamma]
distribution = logit_normal
min = 0.8
max = 0.9999
"""

ENV_INI = """
[base]
package = ocean
env_name = puffer_fake

[env]
reward = 0.1
frameskip = 1

[train]
vtrace_c_clip = 0
total_timesteps = 20_000_000
learning_rate = 0.05
gamma = 0.5

[sweep.env.reward]
distribution = uniform
min = 0.0
max = 1.0
mean = 0.0
scale = auto

[sweep.env.pinned]
distribution = uniform
min = 0.5
max = 0.5

[sweep.parameters.env.parameters.frameskip]
distribution = uniform
min = 1
max = 10

[sweep.parameters.train.parameters.total_timesteps]
distribution = uniform
min = 5_000_000
max = 200_000_000

[sweep.train.minibatch_size]
values = [512, 1024, 2048]

[sweep.train.e3b_norm]
distribution = log_normal
min = 0.0001
max = 0.1

[sweep.train.batch_size]
values = [1000, 3000]

[sweep.metric]
goal = minimize
name = environment/goal_achieved
"""


def write_configs(directory: Path, env_ini: str = ENV_INI) -> Path:
    (directory / "ocean").mkdir(parents=True, exist_ok=True)
    (directory / "default.ini").write_text(DEFAULT_INI)
    (directory / "ocean" / "fake.ini").write_text(env_ini)
    return directory


def fake_sweep(tmp_path: Path, env_ini: str = ENV_INI, sizing: dict | None = None,
               device: str = "cpu") -> puffer_config.PufferSweep:
    return puffer_config.sweep_from_config("puffer_fake", write_configs(tmp_path / "config", env_ini),
                                           sizing=sizing if sizing is not None else {}, device=device)


def test_distributions_centres_and_integers(tmp_path):
    sweep = fake_sweep(tmp_path)
    search = sweep.raw["search"]
    assert search["env"]["reward"]["center"] == 0.1                 # the [env] value, not mean 0.0
    assert search["train"]["learning_rate"]["center"] == 0.05      # the env's [train] value
    assert search["train"]["learning_rate"]["space"] == "log"
    assert search["train"]["gamma"]["space"] == "logit"
    gamma_mid = search["train"]["gamma"]["center"]                   # 0.5 is outside, no mean: middle
    assert math.log(gamma_mid / (1 - gamma_mid)) == pytest.approx(
        (math.log(0.8 / 0.2) + math.log(0.9999 / 0.0001)) / 2)
    frameskip = search["env"]["frameskip"]                           # W&B layout, no distribution given
    assert (frameskip["space"], frameskip["integer"], frameskip["center"]) == ("linear", True, 1)
    steps = search["train"]["total_timesteps"]                       # the env's section wins
    assert (steps["space"], steps["min"], steps["max"], steps["center"], steps["integer"]) == (
        "linear", 5_000_000, 200_000_000, 20_000_000, True)
    # default.ini declares vtrace_c_clip a float: the env's `= 0` does not make it integral.
    assert search["train"]["vtrace_c_clip"]["integer"] is False
    assert search["train"]["vtrace_c_clip"]["center"] == 0
    assert (search["train"]["minibatch_size"]["space"], search["train"]["minibatch_size"]["min"],
            search["train"]["minibatch_size"]["max"]) == ("pow2", 512, 2048)
    notes = {(n.name, n.action) for n in sweep.notes}
    assert ("train.e3b_norm", "skipped") in notes                   # not a key PufferLib's trainer has
    assert ("train.batch_size", "skipped") in notes                 # not a key this trainer has either
    assert "e3b_norm" not in search["train"] and "batch_size" not in search["train"]


CHOICE_INI = ENV_INI.replace("[env]\nreward = 0.1\n", """[env]
reward = 0.1
layout = "open"
sticky = True
width = 7
""") + """
[sweep.env.layout]
values = ["maze", "open", "rooms"]

[sweep.env.sticky]
values = [False, True]

[sweep.env.width]
values = [9, 5, 7, 5]

[sweep.env.mode]
values = ["easy", "hard"]
"""


def test_value_lists_that_are_not_powers_of_two_are_read_as_choices(tmp_path):
    sweep = fake_sweep(tmp_path, CHOICE_INI)
    env = sweep.raw["search"]["env"]
    assert env["layout"] == {"space": "choice", "values": ["maze", "open", "rooms"], "center": "open"}
    assert env["sticky"] == {"space": "choice", "values": [False, True], "center": True}
    assert env["width"] == {"space": "choice", "values": [5, 7, 9], "center": 7}  # numbers ascending, once each
    assert env["mode"] == {"space": "choice", "values": ["easy", "hard"], "center": "easy"}  # no [env] mode
    assert ("env.mode", "adjusted") in {(n.name, n.action) for n in sweep.notes}
    assert not any(n.action == "skipped" and n.name.startswith("env.") for n in sweep.notes)
    assert sweep.origins["search.env.layout.values"] == "ocean/fake.ini [sweep.env.layout]"
    for key, table in env.items():  # valid params as the spec builds them
        if table.get("space") == "choice":
            assert Param.choice(f"env.{key}", table["values"], table["center"]).center == table["center"]


def test_a_value_list_of_mixed_kinds_names_the_ini_file(tmp_path):
    with pytest.raises(SpecError) as info:
        fake_sweep(tmp_path, ENV_INI + '\n[sweep.env.layout]\nvalues = ["maze", 1]\n')
    assert "fake.ini" in str(info.value) and "values mix numbers and strings (maze, 1)" in str(info.value)
    assert "\n" not in str(info.value)


def test_scale_becomes_the_same_spread_in_sweepds_search(tmp_path):
    learning_rate = fake_sweep(tmp_path).raw["search"]["train"]["learning_rate"]
    # PufferLib: uniform within +-0.5 of its [-1, 1] box = +-1 decade here (std 1/sqrt(3) decades).
    spread = puffer_config.SEARCH_RADIUS * learning_rate["scale"]
    assert spread == pytest.approx(1 / math.sqrt(3))
    from sweepd.search.carbs import CarbsSearcher

    radius = inspect.signature(CarbsSearcher.__init__).parameters["initial_search_radius"].default
    assert radius == puffer_config.SEARCH_RADIUS
    assert "scale" not in fake_sweep(tmp_path).raw["search"]["env"]["reward"]  # auto: sweepd's default


def test_settings_from_the_ini(tmp_path):
    sweep = fake_sweep(tmp_path, device="cuda")
    assert sweep.raw["sweep"] == {"metric": "goal_achieved", "direction": "minimize", "searcher": "carbs",
                                  "max_suggestion_cost": 3600.0, "budget_param": "train.total_timesteps"}
    # Only default.ini sets the cap: sized for GPU runs, so a CPU sweep gets sweepd's CPU cap.
    assert fake_sweep(tmp_path).raw["sweep"]["max_suggestion_cost"] == puffer_config.CPU_COST_CAP
    assert ("sweep.downsample", "ignored") in {(n.name, n.action) for n in sweep.notes}


def test_sizing_keys_the_family_sets_are_pinned(tmp_path):
    sweep = fake_sweep(tmp_path, sizing={"train": {"minibatch_size": 256}, "env": {"num_envs": 4}})
    assert "minibatch_size" not in sweep.raw["search"]["train"]
    assert sweep.raw["train"]["minibatch_size"] == 256
    assert sweep.origins["train.minibatch_size"].startswith("sweepd env family")


def test_origins_name_the_file_and_section(tmp_path):
    origins = fake_sweep(tmp_path).origins
    assert origins["search.train.learning_rate.min"] == "default.ini [sweep.train.learning_rate]"
    assert origins["search.train.learning_rate.center"] == "ocean/fake.ini [train]"
    assert origins["train.gamma"] == "ocean/fake.ini [train]"
    assert origins["sweep.max_suggestion_cost"] == puffer_config.CPU_CAP_ORIGIN
    assert fake_sweep(tmp_path, device="cuda").origins["sweep.max_suggestion_cost"] == "default.ini [base]"


@pytest.mark.parametrize(("section", "expected"), [
    ("[sweep.env.bad]\ndistribution = uniform\nmin = 2.0\nmax = 1.0\n", "min (2) must not exceed max (1)"),
    ("[sweep.env.bad]\ndistribution = normal\nmin = 0.0\nmax = 1.0\n", "distribution must be one of"),
    ("[sweep.env.bad]\ndistribution = log_normal\nmin = 0.0\nmax = 1.0\n", "needs min > 0"),
    ("[sweep.env.bad]\ndistribution = uniform\nmin = low\nmax = 1.0\n", "min must be a finite number"),
    ("[sweep.env.bad]\ndistribution = uniform\nmin = 0.0\nmax = 1.0\nmeen = 0.5\n", "unknown key 'meen'"),
    ("[sweep.env.bad]\ndistribution = uniform\nmin = 0.0\nmax = 1.0\nscale = wide\n", "scale must be"),
])
def test_errors_name_the_ini_file_section_and_line(tmp_path, section, expected):
    env_ini = ENV_INI + "\n" + section
    with pytest.raises(SpecError) as caught:
        fake_sweep(tmp_path, env_ini)
    error = caught.value
    assert error.path and error.path.endswith("ocean/fake.ini")
    assert "[sweep.env.bad]" in str(error) and expected in str(error)
    assert error.line == env_ini.splitlines().index("[sweep.env.bad]") + 1


# -- names, resolution order, the CLI -------------------------------------------------------------

def test_registry_lists_pufferlib_env_names_without_importing_torch():
    code = ("import sys; from sweepd import envs; names = envs.names(); "
            "assert 'puffer_pong' in names and 'snake' in names and 'None' not in names; "
            "assert 'torch' not in sys.modules and 'pufferlib' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_generic_family_is_sized_for_cpu_and_takes_the_sweeps_trial_config():
    family = envs.get("puffer_pong")
    assert family.defaults["vec"] == {"backend": "Serial", "num_envs": 1}
    assert family.defaults["env"]["num_envs"] == 256
    assert family.defaults["train"]["minibatch_size"] <= 256 * family.defaults["train"]["bptt_horizon"]
    for name in ("puffer_pong", "puffer_squared", "ms_pacman"):
        spec = load_spec(f"pufferlib:{name}")
        config = spec.trial_config({p.name: p.round(p.center) for p in spec.params})
        args = envs.get(name).resolve(config)  # raises ConfigKeyError on a key PufferLib does not take
        assert args["train"]["device"] == "cpu" and args["vec"]["backend"] == "Serial"


def test_sweep_files_come_before_pufferlibs_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_spec("puffer_pong").source.endswith("default.ini")            # PufferLib's config
    assert load_spec("puffer_breakout").source.split(" <- ")[0].endswith("puffer_breakout.toml")  # bundled
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "puffer_pong.toml").write_text('extends = "default"\nenv_name = "puffer_pong"\n')
    assert load_spec("puffer_pong").source.startswith("sweeps/puffer_pong.toml")  # ./sweeps first


def test_a_sweep_file_can_extend_a_pufferlib_config(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "puffer_pong"\n[sweep]\nmax_trials = 5\n[train]\nlearning_rate = 0.01\n')
    spec = load_spec(str(path))
    assert (spec.env, spec.settings.max_trials, spec.defaults["train"]["learning_rate"]) == ("puffer_pong", 5, 0.01)
    assert len(spec.params) == len(load_spec("puffer_pong").params)


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, COLUMNS="200"), timeout=timeout)


def test_convert_writes_a_sweep_file_that_loads_to_the_same_spec(tmp_path, monkeypatch):
    done = run_cli("convert", "puffer_pong", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "puffer_pong.toml").write_text(done.stdout)
    assert "# ocean/pong.ini [train]" in done.stdout
    monkeypatch.chdir(tmp_path)
    converted = load_spec("puffer_pong")  # ./sweeps/puffer_pong.toml now comes first
    assert converted.source.startswith("sweeps/puffer_pong.toml")
    assert converted.to_json() | {"source": ""} == load_spec("pufferlib:puffer_pong").to_json() | {"source": ""}


def test_show_prints_params_defaults_and_where_they_came_from(tmp_path):
    done = run_cli("show", "puffer_snake", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for text in ("env.reward_food", "ocean/snake.ini [env]", "default.ini [sweep.train.learning_rate]",
                 "sweepd env family", "vec.num_envs", "skipped"):
        assert text in done.stdout, text
    shown = json.loads(run_cli("show", "puffer_snake", "--json", cwd=tmp_path).stdout)
    assert shown["spec"] == load_spec("pufferlib:puffer_snake").to_json()
    listing = run_cli("show", cwd=tmp_path)
    assert "puffer_squared" in listing.stdout and "snake" in listing.stdout


# -- the CPU budget fit ---------------------------------------------------------------------------

def probe(steps_per_second: float = 30_000.0, startup: float = 5.0, evaluation: float = 1.0) -> Probe:
    return Probe(env="puffer_pong", steps_per_second=steps_per_second, startup_seconds=startup,
                 eval_seconds=evaluation, steps=131_072, train_seconds=131_072 / steps_per_second)


def test_budget_range_shrinks_to_what_fits_the_cap():
    spec = load_spec("pufferlib:puffer_pong", {"max_suggestion_cost": 20.0})
    fitted, fit = fit_budget(spec, probe())
    param = next(p for p in fitted.params if p.name == "train.total_timesteps")
    fits = int(0.8 * 30_000 * (20 - 6))
    assert fit.changed and fit.steps_that_fit == fits
    assert param.max == fits                                      # the largest trial fits the cap
    factor = fits / 2e8
    assert param.min == max(math.ceil(1e7 * factor), batch_estimate(spec))   # whole batches
    assert param.center == round(fits / 4)  # PufferLib's centre scaled (1.2e7 x factor) is < 1/4 of what fits
    assert fitted.defaults["train"]["total_timesteps"] == param.center
    assert param.max / 30_000 + 6 <= 20
    assert "so trials fit max_suggestion_cost 20 s" in fit.describe(20.0)
    others = [p for p in fitted.params if p.name != "train.total_timesteps"]
    assert others == [p for p in spec.params if p.name != "train.total_timesteps"]


def test_a_centre_that_fits_the_cap_is_kept_and_only_the_top_of_the_range_is_cut():
    spec = load_spec("snake", {"max_suggestion_cost": 120.0})       # total_timesteps 2e5..4e6, centre 1e6
    fitted, fit = fit_budget(spec, probe(steps_per_second=20_000.0))
    param = next(p for p in fitted.params if p.name == "train.total_timesteps")
    fits = int(0.8 * 20_000 * (120 - 6))                             # 1.82M: the centre fits, the max does not
    assert fit.changed and param.max == fits and param.center == 1_000_000
    assert param.min == math.ceil(2e5 * fits / 4e6)
    assert fitted.defaults["train"]["total_timesteps"] == 1_000_000


def test_budget_range_that_fits_is_left_alone_and_a_cap_below_the_overhead_is_refused():
    spec = load_spec("pufferlib:puffer_pong", {"max_suggestion_cost": 3600.0})
    fitted, fit = fit_budget(spec, probe(steps_per_second=1e6))
    assert fitted == spec and not fit.changed
    with pytest.raises(SpecError, match="raise --max-suggestion-cost"):
        fit_budget(load_spec("pufferlib:puffer_pong", {"max_suggestion_cost": 5.0}), probe())


def test_probe_reads_speed_and_overhead_from_worker_events():
    events = [{"event": "started", "time": 104.0}, {"event": "progress", "step": 16384, "score": 0.1},
              {"event": "result", "steps": 65536, "train_seconds": 2.0, "cost": 7.5, "score": 1.0}]
    measured = probe_from_events("puffer_squared", events, spawned=100.0)
    assert (measured.steps_per_second, measured.startup_seconds) == (32768.0, 4.0)
    assert measured.eval_seconds == pytest.approx(1.5) and measured.overhead_seconds == pytest.approx(5.5)
    with pytest.raises(ProbeFailed, match="episodes too long"):
        probe_from_events("x", [{"event": "failed", "reason": "episodes too long"}], spawned=0.0)


def test_probe_of_an_env_that_cannot_be_built_here_fails_with_the_workers_reason(tmp_path):
    from sweepd.budget import run_probe

    spec = load_spec("bigfish")  # procgen.ini: its packages are not installed here
    with pytest.raises(ProbeFailed, match="bigfish failed: ModuleNotFoundError"):
        run_probe(spec, tmp_path)


# -- real launches from PufferLib's configs alone -------------------------------------------------

def launch_and_read(name: str, tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    done = run_cli("launch", name, "--no-live", "--no-wandb", *options, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = run_cli("status", f"{name}-1", "--json", cwd=tmp_path)
    return done, json.loads(status.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["puffer_pong", "puffer_squared"])
def test_launch_runs_real_trials_from_pufferlibs_config_on_cpu(name, tmp_path):
    # Two trials: the fitted centre and one the searcher draws from the fitted range, which is all
    # the range check below needs (each trial more is ~20 s of a 1-slot CPU run).
    done, status = launch_and_read(name, tmp_path, "--max-trials", "2", "--max-suggestion-cost", "20")
    assert f"budget: {name} trains at" in done.stdout and "steps/s on this CPU" in done.stdout
    assert status["sweep"]["status"] == "finished"
    trials = status["trials"]
    assert len(trials) == 2
    assert not [t for t in trials if t["status"] == "failed" and t["failure_category"] == "setup"]
    assert any(t["status"] == "succeeded" and math.isfinite(t["score"]) for t in trials)
    from sweepd.store.db import open_store
    from sweepd.store.sweeps import find_sweep

    stored = find_sweep(open_store(os.environ["SWEEPD_DB"]), f"{name}-1").spec  # what the agents ran
    fitted = next(p for p in stored["params"] if p["name"] == "train.total_timesteps")
    assert fitted["max"] < 2e8 and all(t["params"]["train.total_timesteps"] <= fitted["max"] for t in trials)
    assert list(Path(os.environ["SWEEPD_HOME"], "probes").glob(f"{name}-*.json"))


@pytest.mark.slow
def test_launch_runs_the_atari_config_that_crashes_pufferlibs_sweep(tmp_path):
    """ms_pacman: PufferLib's atari.ini (no `mean`s). A probe measured here (93 steps/s, 34 s of
    start-up and evaluation) is seeded so the test trains one trial instead of probing first."""
    spec = load_spec("ms_pacman")
    path = cache_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"env": "ms_pacman", "steps_per_second": 93.0, "startup_seconds": 9.0,
                                "eval_seconds": 25.0, "steps": 1024, "train_seconds": 11.0}))
    done, status = launch_and_read("ms_pacman", tmp_path, "--max-trials", "1", "--max-suggestion-cost", "60")
    assert "cached probe" in done.stdout
    (trial,) = status["trials"]
    assert trial["status"] == "succeeded", trial
    assert trial["params"]["env.frameskip"] == 4 and trial["params"]["train.total_timesteps"] < 5e6
