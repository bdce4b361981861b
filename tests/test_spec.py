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
