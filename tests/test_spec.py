"""Sweep files: inheritance, default ranges, and one clear line (exit 2, DB untouched) per mistake."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweepd import spec as spec_module
from sweepd.search import SEARCHERS
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
                           "space must be one of log, linear, logit, pow2, choice, bool, got '5'"),
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
    ({"searcher": "grid"}, f"--searcher: searcher must be one of {', '.join(SEARCHERS)}, got 'grid'"),
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
    """The installed `sweepd` console script, as a user runs it."""
    sweepd = Path(sys.executable).with_name("sweepd")
    return subprocess.run([str(sweepd), *args], capture_output=True, text=True, cwd=cwd, env=dict(os.environ),
                          timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused sweep file (exit 2, no traceback)."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


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


NOT_TOML_TEXT = {
    "binary_garbage": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "utf16": GOOD.encode("utf-16"),
    "latin1_comment": GOOD.replace("[sweep]", "# caf\u00e9\n[sweep]").encode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(NOT_TOML_TEXT))
def test_cli_refuses_a_file_that_is_not_utf8_text_in_one_line_naming_it(tmp_path, case):
    """Binary garbage exited 1 with "'utf-8' codec can't decode byte 0x89 ..." and no file name."""
    path = tmp_path / "mysweep.toml"
    path.write_bytes(NOT_TOML_TEXT[case])
    line = one_line_error(run_cli("validate", str(path), cwd=tmp_path))
    assert line.startswith(f"error: {path}:") and "not UTF-8 text" in line, line
    assert "codec" not in line


def test_a_file_not_utf8_names_the_line_of_the_bad_byte(tmp_path):
    path = tmp_path / "mysweep.toml"
    path.write_bytes(NOT_TOML_TEXT["latin1_comment"])
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert info.value.line == 4 and "byte 0xe9" in str(info.value), str(info.value)  # "# café" above [sweep]


def test_cli_refuses_arrays_nested_past_the_parser_in_one_line(tmp_path):
    """tomllib recurses per nested array: a RecursionError was a traceback."""
    path = write(tmp_path, "x = " + "[" * 5000 + "1" + "]" * 5000 + "\n")
    line = one_line_error(run_cli("validate", str(path), cwd=tmp_path))
    assert line == f"error: {path}: TOML syntax error: arrays or inline tables nested too deeply"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """Notepad's UTF-8 files start with EF BB BF: tomllib alone says "Invalid statement" at 1:1."""
    plain = load_spec(str(write(tmp_path, GOOD)))
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    with_bom = load_spec(str(path))
    assert (with_bom.params, with_bom.settings, with_bom.defaults) == (plain.params, plain.settings, plain.defaults)
    result = run_cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("ok: bom:"), result.stdout + result.stderr


def test_lines_are_still_counted_right_after_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("max_trials", "max_trails").encode())
    with pytest.raises(SpecError, match="did you mean 'max_trials'") as info:
        load_spec(str(path))
    assert info.value.line == 6


@pytest.mark.parametrize("target", ["nosuch", "nosuch.toml", "sub/nosuch.toml"])
def test_cli_a_missing_extends_target_names_the_file_that_extends_it(tmp_path, target):
    """It said "no sweep named 'nosuch'" without saying which file asked for it."""
    path = write(tmp_path, GOOD.replace('extends = "default"', f'extends = "{target}"'))
    line = one_line_error(run_cli("validate", str(path), cwd=tmp_path))
    assert line.startswith(f'error: {path}:1: extends "{target}": '), line
    assert "nosuch" in line.split(": extends", 1)[1].split(":", 1)[1], line


def many_params(count: int) -> str:
    """GOOD plus `count` searched params, each with a default in [train]."""
    defaults = "".join(f"p{i} = 0.01\n" for i in range(count))
    tables = "".join(f'[search.train.p{i}]\nspace = "log"\nmin = 0.0001\nmax = 1.0\ncenter = 0.01\n\n'
                     for i in range(count))
    return GOOD.replace("learning_rate = 0.01\n", "learning_rate = 0.01\n" + defaults) + tables


def test_validation_reads_and_scans_each_file_once_whatever_the_param_count(tmp_path, monkeypatch):
    """The line lookup rescanned the file per param: 4,000 params took 46 s, 150,000 never finished.
    Now each file of the extends chain is read once and its lines scanned once (timing:
    benchmarks/spec_validate.py)."""
    reads: list[Path] = []
    scanned: list[int] = []
    decode, scan = spec_module._decode, spec_module.scan_key_lines
    monkeypatch.setattr(spec_module, "_decode", lambda path: reads.append(path) or decode(path))
    monkeypatch.setattr(spec_module, "scan_key_lines", lambda text: scanned.append(len(text.splitlines()))
                        or scan(text))
    path = write(tmp_path, many_params(20_000))

    spec = load_spec(str(path))

    assert len(spec.params) >= 20_000
    default = Path(spec.source.split(" <- ")[1])
    assert sorted(map(str, reads)) == sorted([str(path), str(default)])
    expected = sorted(len(p.read_text().splitlines()) for p in (path, default))
    assert sorted(scanned) == expected  # every line of each file once, whatever the number of lookups


def test_an_error_in_a_many_param_file_names_its_header_line(tmp_path):
    text = many_params(2_000).replace("[search.train.p1500]\nspace = \"log\"", "[search.train.p1500]\nspace = \"logg\"")
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match="did you mean 'log'") as info:
        load_spec(str(path))
    assert path.read_text().splitlines()[info.value.line - 1] == "[search.train.p1500]"


# -- choice and boolean params ------------------------------------------------------------------------

CHOICES = GOOD + """
[search.policy.activation]
space = "choice"
values = ["tanh", "relu", "gelu"]
center = "relu"

[search.train.anneal_lr]
space = "bool"

[search.train.update_epochs]
values = [1, 2, 4]
"""


def test_choice_and_bool_params_are_read_with_their_values_and_centres(tmp_path):
    spec = load_spec(str(write(tmp_path, CHOICES)))
    params = {p.name: p for p in spec.params}
    activation, anneal, epochs = params["policy.activation"], params["train.anneal_lr"], params["train.update_epochs"]
    assert (activation.space, activation.values, activation.center) == ("choice", ("tanh", "relu", "gelu"), "relu")
    assert (anneal.space, anneal.values, anneal.center) == ("choice", (False, True), False)  # default: the first
    assert (epochs.space, epochs.values, epochs.center) == ("choice", (1, 2, 4), 1)  # values alone: a choice
    assert SweepSpec.from_json(spec.to_json()) == spec
    import json

    assert SweepSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec  # as stored on the Sweep row


@pytest.mark.parametrize(("table", "message", "line_of"), [
    ('values = ["relu", 1]', "values mix numbers and strings (relu, 1): list one kind", "values"),
    ('values = [true, "yes"]', "values mix booleans and strings (true, yes): list one kind", "values"),
    ('values = ["relu"]', "values must list at least 2 values to choose from, got relu alone", "values"),
    ('values = ["relu", "tanh", "relu"]', "values list relu twice", "values"),
    ('values = ["relu", "tanh"]\ncenter = "gelu"', "center gelu is not one of the values (relu, tanh)", "center"),
    ('values = [[1], [2]]', "values must be strings, numbers or booleans, got [1]", "values"),
    ('values = "relu"', "values must be a list such as", "values"),
    ('space = "choice"', "a choice needs values = [...]", "[search"),
    ('values = [1, 2]\nmin = 1', "a choice takes space, values, center, scale, not min", "[search"),
    ('space = "log"\nvalues = [1, 2]', "values = [...] lists the values of a choice", "[search"),
    ('space = "bool"\nvalues = [1, 2]', "space = \"bool\" is the choice of false and true", "[search"),
])
def test_a_bad_choice_is_one_line_naming_the_file_and_line(tmp_path, table, message, line_of):
    text = GOOD + f"\n[search.policy.activation]\n{table}\n"
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert str(info.value).startswith(f"{path}:{info.value.line}: [search.policy.activation] "), str(info.value)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert text.splitlines()[info.value.line - 1].startswith(line_of)


def test_a_choice_cannot_be_the_budget_param(tmp_path):
    text = CHOICES.replace("max_trials = 3", 'max_trials = 3\nbudget_param = "train.update_epochs"')
    with pytest.raises(SpecError, match=r"budget_param 'train\.update_epochs' names a choice, not a step count"):
        load_spec(str(write(tmp_path, text)))
