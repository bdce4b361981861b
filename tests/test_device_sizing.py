"""Device-aware sizing without a GPU (issue 15, item 1): each env family's CPU and CUDA sizings,
PufferLib's batch keys pinned on CPU and searched on CUDA, the CPU-sized cost cap, the sweep's
device setting, and `sweepd show --device`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sweepd import envs
from sweepd.cli import app
from sweepd.puffer_config import CPU_COST_CAP, cpu_cap_applied, sweep_from_config
from sweepd.settings import SpecError, device_class
from sweepd.spec import load_spec


@pytest.mark.parametrize("device, expected", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda"), ("mps", "cpu")])
def test_a_torch_device_has_a_hardware_class(device, expected):
    assert device_class(device) == expected


@pytest.mark.parametrize("name", ["snake", "puffer_breakout", "breakout", "gpudrive", "puffer_pong"])
def test_each_family_picks_its_sizing_by_the_trials_device(name):
    family = envs.get(name)
    assert family.sizing("cpu") == family.defaults
    assert family.sizing("cuda") == family.sizing("cuda:1") == family.gpu_defaults
    # The GPU sizing leaves batch geometry and env counts to PufferLib's ini.
    for section, key in (("train", "minibatch_size"), ("train", "bptt_horizon"), ("vec", "num_envs")):
        assert key not in family.gpu_defaults.get(section, {})
    assert family.gpu_defaults["train"]["compile"] is False


def test_a_cuda_trial_resolves_to_pufferlibs_own_sizes_and_a_cpu_trial_to_sweepds():
    family = envs.get("snake")
    cpu = family.resolve({}, device="cpu")
    cuda = family.resolve({}, device="cuda")
    assert (cpu["vec"]["num_envs"], cpu["env"]["num_envs"], cpu["train"]["minibatch_size"]) == (1, 1, 8192)
    # PufferLib's snake.ini: 16 vec envs of 4 arenas, minibatches of 32,768.
    assert (cuda["vec"]["num_envs"], cuda["env"]["num_envs"], cuda["train"]["minibatch_size"]) == (16, 4, 32768)
    assert cuda["vec"]["backend"] == "Multiprocessing" and cpu["vec"]["backend"] == "Serial"
    assert cuda["train"]["device"] == "cuda" and cuda["train"]["checkpoint_interval"] == 10**9
    # A trial's own value beats either sizing.
    assert family.resolve({"train": {"minibatch_size": 4096}}, device="cuda")["train"]["minibatch_size"] == 4096


def test_batch_keys_are_pinned_on_cpu_and_searched_on_cuda_as_pufferlibs_config_says():
    cpu = sweep_from_config("puffer_pong", device="cpu")
    cuda = sweep_from_config("puffer_pong", device="cuda")
    for key in ("minibatch_size", "bptt_horizon"):
        assert key not in cpu.raw["search"]["train"]
        assert any(n.name == f"train.{key}" and n.action == "pinned" for n in cpu.notes)
        assert key in cuda.raw["search"]["train"]
    # default.ini's [sweep.train.minibatch_size]: a pow2 range.
    assert cuda.raw["search"]["train"]["minibatch_size"]["space"] == "pow2"
    assert cpu.raw["env"]["num_envs"] == 256 and cuda.raw["env"]["num_envs"] == 1024  # pong.ini's
    assert cpu.origins["train.minibatch_size"] == "sweepd env family default (CPU sizing)"
    assert "GPU sizing" in cuda.origins["train.compile"]


def test_a_cap_only_default_ini_sets_is_cpu_sized_on_cpu_and_a_users_cap_wins(tmp_path):
    cpu = load_spec("puffer_pong", device="cpu")
    assert cpu.settings.max_suggestion_cost == CPU_COST_CAP and cpu_cap_applied(cpu)
    cuda = load_spec("puffer_pong", device="cuda")
    assert cuda.settings.max_suggestion_cost == 3600.0 and not cpu_cap_applied(cuda)
    given = load_spec("puffer_pong", {"max_suggestion_cost": 600.0}, device="cpu")
    assert given.settings.max_suggestion_cost == 600.0 and not cpu_cap_applied(given)
    own = tmp_path / "pong300.toml"  # the user's own cap, equal to the CPU default: still the user's
    own.write_text('extends = "puffer_pong"\n[sweep]\nmax_suggestion_cost = 300.0\n')
    spec = load_spec(str(own), device="cpu")
    assert spec.settings.max_suggestion_cost == 300.0 and not cpu_cap_applied(spec)


def test_the_sweeps_device_comes_from_the_option_else_the_file_else_the_box(tmp_path):
    assert load_spec("snake", device="cuda").settings.device == "cuda"
    assert load_spec("snake").settings.device == "cpu"
    pinned = tmp_path / "gpu_pong.toml"
    pinned.write_text('extends = "puffer_pong"\n[sweep]\ndevice = "cuda"\n')
    spec = load_spec(str(pinned), device="cpu")
    assert spec.settings.device == "cuda"
    # The PufferLib config it extends is mapped for CUDA: PufferLib's minibatch, and searched.
    assert spec.defaults["train"]["minibatch_size"] == 32768
    assert "train.minibatch_size" in {p.name for p in spec.params}
    assert load_spec(str(pinned), {"device": "cpu"}).settings.device == "cpu"
    assert "train.minibatch_size" not in {p.name for p in load_spec(str(pinned), {"device": "cpu"}).params}


def test_a_wrong_device_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "snake"\n\n[sweep]\ndevice = "gpu"\n')
    with pytest.raises(SpecError, match=r"bad.toml:4: \[sweep\] device must be one of cpu, cuda, got 'gpu'"):
        load_spec(str(bad))
    with pytest.raises(SpecError, match=r"--device: device must be one of cpu, cuda"):
        load_spec("snake", {"device": "tpu"})
    with pytest.raises(SpecError, match=r"--trials-per-gpu: trials_per_gpu must be >= 0"):
        load_spec("snake", {"trials_per_gpu": -1})


def test_show_prints_the_resolution_for_each_device():
    runner = CliRunner()
    cuda = runner.invoke(app, ["show", "puffer_pong", "--device", "cuda", "--json"])
    assert cuda.exit_code == 0, cuda.output
    data = json.loads(cuda.output)
    assert data["device"] == "cuda" and data["spec"]["settings"]["device"] == "cuda"
    assert "train.minibatch_size" in {p["name"] for p in data["spec"]["params"]}
    assert data["sizing"]["cpu"]["train.minibatch_size"] == 8192
    assert "train.minibatch_size" not in data["sizing"]["cuda"]
    cpu = runner.invoke(app, ["show", "puffer_pong", "--device", "cpu", "--json"])
    assert "train.minibatch_size" not in {p["name"] for p in json.loads(cpu.output)["spec"]["params"]}
    text = runner.invoke(app, ["show", "snake", "--device", "cuda"], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    words = " ".join(text.output.split())  # the console wraps long titles
    assert "a cuda trial takes the cuda column" in words and "PufferLib's ini" in words


