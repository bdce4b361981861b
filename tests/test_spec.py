"""Sweep files: inheritance, default ranges, and one clear line (exit 2, DB untouched) per mistake."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweepd.spec import SpecError, SweepSpec, load_spec

GOOD = """\
extends = "default"
env_name = "snake"

[sweep]
max_suggestion_cost = 30.0
max_trials = 3

[train]
learning_rate = 0.01

[search.train.learning_rate]
space = "log"
center = 0.01
"""


def write(tmp_path: Path, text: str, name: str = "mysweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_child_overrides_default_and_inherits_the_rest(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)))
    assert spec.env == "snake"
    assert spec.settings.max_suggestion_cost == 30.0
    assert spec.settings.eval_seeds == 2  # from default.toml
    assert spec.defaults["train"]["learning_rate"] == 0.01
    assert spec.defaults["train"]["gamma"] == 0.99  # from default.toml
    names = [p.name for p in spec.params]
    assert "train.learning_rate" in names and "train.gamma" in names


def test_center_only_infers_documented_range(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)))
    lr = next(p for p in spec.params if p.name == "train.learning_rate")
    # default.toml gives min/max for learning_rate; the child's center moves inside them
    assert lr.center == 0.01 and lr.min == 1e-4 and lr.max == 3e-2
    text = GOOD.replace("[search.train.learning_rate]", "[search.train.clip_coef]").replace(
        'space = "log"\ncenter = 0.01', 'space = "logit"\ncenter = 0.99')
    clip = next(p for p in load_spec(str(write(tmp_path, text))).params if p.name == "train.clip_coef")
    assert math.isclose(clip.min, 1 / (1 + 10 ** -(math.log10(99) - 1)))
    assert math.isclose(clip.max, 1 / (1 + 10 ** -(math.log10(99) + 1)))


def test_trial_config_writes_params_over_defaults(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)))
    config = spec.trial_config({"train.learning_rate": 0.02, "env.width": 7})
    assert config["train"]["learning_rate"] == 0.02 and config["env"]["width"] == 7
    assert spec.defaults["train"]["learning_rate"] == 0.01  # defaults untouched


def test_spec_round_trips_through_json(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)))
    assert SweepSpec.from_json(spec.to_json()) == spec


def test_overrides_replace_sweep_settings(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)), {"max_trials": 9, "searcher": None})
    assert spec.settings.max_trials == 9 and spec.settings.searcher == "carbs"


BAD_CASES = {
    "stray_comma": (GOOD.replace("max_trials = 3", "max_trials = 3,"), "mysweep.toml:6:"),
    "unknown_key": (GOOD.replace("max_trials", "max_trails"), "did you mean 'max_trials'"),
    "unknown_param_key": (GOOD.replace('center = 0.01', 'centre = 0.01'), "did you mean 'center'"),
    "min_above_max": (GOOD + '[search.train.ent_coef]\nspace = "log"\nmin = 0.1\nmax = 0.01\n',
                      "min (0.1) must be below max (0.01)"),
    "center_outside": (GOOD.replace("center = 0.01", "center = 0.5"), "center 0.5 is outside"),
    "logit_bounds": (GOOD + '[search.train.gamma]\nspace = "logit"\nmin = 0.5\nmax = 1.0\ncenter = 0.9\n',
                     "logit space needs 0 < min and max < 1"),
    "log_min_not_positive": (GOOD + '[search.train.ent_coef]\nspace = "log"\nmin = 0.0\nmax = 0.1\ncenter = 0.01\n',
                             "log space needs min > 0"),
    "unknown_env": (GOOD.replace('env_name = "snake"', 'env_name = "snak"'),
                    "unknown env 'snak' (did you mean 'snake'?)"),
    "cost_cap_not_positive": (GOOD.replace("max_suggestion_cost = 30.0", "max_suggestion_cost = 0"),
                              "max_suggestion_cost must be > 0"),
    "bad_space": (GOOD.replace('space = "log"', 'space = "logg"'), "did you mean 'log'"),
    # A value where a table belongs: one line, never a traceback.
    "sweep_not_a_table": (GOOD.replace('env_name = "snake"', 'env_name = "snake"\nsweep = 5').replace(
        "[sweep]\nmax_suggestion_cost = 30.0\nmax_trials = 3\n", ""), "'sweep' must be a table such as [sweep], got 5"),
    "section_not_a_table": (GOOD.replace('env_name = "snake"', 'env_name = "snake"\ntrain = 5').replace(
        "[train]\nlearning_rate = 0.01\n", ""), "'train' must be a table such as [train], got 5"),
    "search_section_not_a_table": (GOOD.replace('[search.train.learning_rate]\nspace = "log"\ncenter = 0.01\n',
                                                "[search]\ntrain = 5\n"),
                                   "[search] train must hold tables such as [search.train.learning_rate], got 5"),
    "space_not_a_string": (GOOD.replace('space = "log"', "space = 5"),
                           "space must be one of log, linear, logit, pow2, got '5'"),
    "command_not_a_list": (GOOD.replace('env_name = "snake"', 'env_name = "snake"\ncommand = 5'),
                           "command must be a list of strings"),
    "seed_too_big": (GOOD.replace("max_trials = 3", "max_trials = 3\nseed = 99999999999"),
                     "seed must be in [0, 2**31), got 99999999999"),
    "int_too_big": (GOOD.replace("max_trials = 3", "max_trials = 99999999999"), "max_trials must be below 2**31"),
    "budget_below_one_trial": (GOOD.replace("max_trials = 3", "max_trials = 3\nmax_total_cost = 30.0"),
                               "max_total_cost 30 s cannot pay for one trial at its cost cap 37.5 s"),
    "nothing_to_search": ('env_name = "snake"\n[sweep]\nmax_trials = 3\n', "nothing to search"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_sweep_file_is_one_line_naming_the_file(tmp_path, case):
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_error_names_the_line_of_the_mistake(tmp_path):
    path = write(tmp_path, GOOD.replace("max_trials", "max_trails"))
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert info.value.line == 6


@pytest.mark.parametrize(("case", "line"), [("sweep_not_a_table", 3), ("section_not_a_table", 3),
                                           ("search_section_not_a_table", 12), ("seed_too_big", 7)])
def test_a_value_of_the_wrong_type_names_its_line(tmp_path, case, line):
    with pytest.raises(SpecError) as info:
        load_spec(str(write(tmp_path, BAD_CASES[case][0])))
    assert info.value.line == line, str(info.value)


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"max_trials": -1}, "--max-trials: max_trials must be >= 0, got -1"),
    ({"seed": 99999999999}, "--seed: seed must be in [0, 2**31), got 99999999999"),
    ({"searcher": "grid"}, "--searcher: searcher must be one of carbs, random, got 'grid'"),
    ({"max_suggestion_cost": 1000.0, "max_total_cost": None},
     "--max-suggestion-cost: max_total_cost 500 s cannot pay for one trial at its cost cap 1250 s"),
])
def test_an_override_error_names_the_command_line_option_not_a_file(tmp_path, overrides, expected):
    path = write(tmp_path, GOOD.replace("max_trials = 3", "max_trials = 3\nmax_total_cost = 500.0"))
    with pytest.raises(SpecError) as info:
        load_spec(str(path), overrides)
    assert str(info.value).startswith(expected), str(info.value)
    assert info.value.path is None


def test_an_override_of_a_bundled_sweep_names_the_option():
    """`sweepd launch snake --max-trials -1` blamed sweeps/default.toml:12."""
    with pytest.raises(SpecError, match=r"^--max-trials: max_trials must be >= 0, got -1$"):
        load_spec("snake", {"max_trials": -1, "seed": None})


def test_a_stored_spec_with_settings_from_a_newer_sweepd_still_loads(tmp_path):
    spec = load_spec(str(write(tmp_path, GOOD)))
    stored = spec.to_json()
    stored["settings"]["a_future_setting"] = "on"
    stored["params"][0]["a_future_field"] = 1
    assert SweepSpec.from_json(stored) == spec


def test_unknown_sweep_name_lists_known_ones():
    with pytest.raises(SpecError, match="no sweep named 'snak' \\(did you mean 'snake'\\?\\)"):
        load_spec("snak")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweepd.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ), timeout=120)


@pytest.mark.parametrize("case", ["stray_comma", "unknown_key", "min_above_max", "unknown_env"])
def test_cli_rejects_bad_file_with_exit_2_and_leaves_db_untouched(tmp_path, case):
    path = write(tmp_path, BAD_CASES[case][0])
    db_file = Path(os.environ["SWEEPD_DB"].split("///", 1)[1])
    for command in (["validate", str(path)], ["launch", str(path), "--detach"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and BAD_CASES[case][1] in lines[0], result.stderr
        assert not db_file.exists()


def test_cli_validate_accepts_a_good_file(tmp_path):
    result = run_cli("validate", str(write(tmp_path, GOOD)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
