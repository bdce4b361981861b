"""The CUDA paths without a GPU (issue 15, items 2-4; sizing: tests/test_device_sizing.py): several
slots per GPU each pinned by CUDA_VISIBLE_DEVICES, agents serving only sweeps of their class, an
out-of-memory trial as the config's failure, and the budget fit on a GPU box. Fake
CUDA_VISIBLE_DEVICES lists stand in for GPUs; the workers and agents are real."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweepd.budget import BudgetFit, Probe, fit_budget, fits_here, probe_key, probe_pinning
from sweepd.cli import app
from sweepd.host import box_device, plan_slots, visible_gpus
from sweepd.spec import load_spec

# -- 3. slots per GPU -------------------------------------------------------------------------------


def test_n_trials_per_gpu_make_consecutive_slots_pinned_to_each_gpu():
    planned = plan_slots(None, 2, gpus=["4", "GPU-8f3e"])
    assert (planned.count, planned.device, planned.gpus) == (4, "cuda", ["4", "4", "GPU-8f3e", "GPU-8f3e"])
    assert plan_slots(None, gpus=["0", "1"]).gpus == ["0", "1"]
    assert plan_slots(3, 2, gpus=["0"]) == plan_slots(3) and plan_slots(3).device == "cpu"  # --slots: CPU slots
    assert plan_slots(None, 2, gpus=[]).device == "cpu"
    with pytest.raises(ValueError, match="trials per GPU must be >= 1"):
        plan_slots(None, 0, gpus=["0"])


@pytest.mark.parametrize("visible, expected", [("0,1", ["0", "1"]), ("5", ["5"]), ("", []), ("-1", []),
                                                ("2,-1,3", ["2"]), ("GPU-a1,GPU-b2", ["GPU-a1", "GPU-b2"])])
def test_visible_gpus_read_cuda_visible_devices_as_cuda_does(monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == expected
    assert box_device() == ("cuda" if expected else "cpu")
    assert box_device(slots=2) == "cpu"
    assert plan_slots(None, 3).gpus == ([g for g in expected for _ in range(3)] or None)


# -- 4. the budget fit on a GPU box ------------------------------------------------------------------


def _probe(steps_per_second: float) -> Probe:
    return Probe(env="snake", steps_per_second=steps_per_second, startup_seconds=5.0, eval_seconds=3.0,
                 steps=10**6, train_seconds=10**6 / steps_per_second)


def test_the_budget_is_fitted_on_a_box_of_the_sweeps_class_only():
    cpu, cuda = load_spec("puffer_pong", device="cpu"), load_spec("puffer_pong", device="cuda")
    assert fits_here(cpu, "cpu") and fits_here(cuda, "cuda")
    assert not fits_here(cuda, "cpu") and not fits_here(cpu, "cuda")
    # no budget_param: nothing to fit
    assert not fits_here(load_spec("snake", {"budget_param": ""}, device="cuda"), "cuda")
    assert probe_key(cpu) != probe_key(load_spec("puffer_pong", {"max_suggestion_cost": 300.0}, device="cuda"))


def test_a_gpus_speed_keeps_pufferlibs_range_where_a_cpus_shrinks_it():
    cuda = load_spec("puffer_pong", device="cuda")
    param = next(p for p in cuda.params if p.name == cuda.settings.budget_param)
    fitted, fit = fit_budget(cuda, _probe(2_000_000.0))  # an H100-class speed for pong
    assert isinstance(fit, BudgetFit) and not fit.changed and fitted is cuda
    assert "on this GPU" in fit.describe(cuda.settings.max_suggestion_cost)
    assert "already fits" in fit.describe(cuda.settings.max_suggestion_cost)
    cpu = load_spec("puffer_pong", device="cpu")
    fitted_cpu, fit_cpu = fit_budget(cpu, _probe(40_000.0))
    assert fit_cpu.changed and "on this CPU" in fit_cpu.describe(cpu.settings.max_suggestion_cost)
    assert next(p for p in fitted_cpu.params if p.name == cpu.settings.budget_param).max < param.max


def test_a_cuda_probe_runs_on_one_gpu_and_a_cpu_probe_on_one_thread():
    assert probe_pinning(load_spec("puffer_pong", device="cuda"), "3") == {"CUDA_VISIBLE_DEVICES": "3"}
    assert probe_pinning(load_spec("puffer_pong", device="cuda"), None) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert probe_pinning(load_spec("puffer_pong", device="cpu"), "3") == {"CUDA_VISIBLE_DEVICES": "",
                                                                          "OMP_NUM_THREADS": "1"}


def test_the_batch_estimate_follows_the_sizing_of_the_sweeps_device():
    from sweepd.budget import batch_estimate

    # Every snake is an agent (EnvFamily.agents_key): CPU: one arena of 256 snakes x 64 steps, the
    # batch PuffeRL sizes ('auto'); CUDA: snake.ini's 16 envs x 4 arenas x 256 snakes x 64.
    assert batch_estimate(load_spec("snake", device="cpu")) == 256 * 64
    assert batch_estimate(load_spec("snake", device="cuda")) == 16 * 4 * 256 * 64


def test_a_cuda_probe_on_a_box_without_a_gpu_fails_with_the_workers_reason(tmp_path, monkeypatch):
    """The real probe worker gets device "cuda" and its GPU; here torch sees none, which it says."""
    from sweepd.budget import ProbeFailed, run_probe

    spec = load_spec("puffer_pong", device="cuda")
    with pytest.raises(ProbeFailed, match="torch sees no CUDA device"):
        run_probe(spec, tmp_path, gpu="0")


# -- the worker's out-of-memory path ---------------------------------------------------------------


def test_an_out_of_memory_error_in_a_real_worker_is_a_hyperparameter_failure(tmp_path):
    """SWEEPD_TEST_OOM (sweepd/worker/puffer.py) raises torch.OutOfMemoryError after the first epoch."""
    import subprocess

    trial = {"env": "snake", "trainer": "puffer", "config": {"train": {"total_timesteps": 10**6}}, "seed": 1,
             "cost_cap": 120.0, "eval_episodes": 1, "eval_seeds": 1, "artifact_dir": str(tmp_path / "trial"),
             "device": "cpu"}
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), SWEEPD_TEST_OOM="1", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "sweepd.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(write_fd,), env=env,
                            cwd=tmp_path)
    os.close(write_fd)
    _, stderr = proc.communicate(json.dumps(trial).encode(), timeout=240)
    with os.fdopen(read_fd, "rb") as reports:
        events = [json.loads(line) for line in reports.read().splitlines() if line.strip()]
    assert proc.returncode == 1, stderr.decode()[-2000:]
    assert [e["event"] for e in events] == ["started", "failed"]
    assert events[-1]["category"] == "hyperparameter"
    assert events[-1]["reason"].startswith("CUDA out of memory at step ")


# -- 2 and 3 through real agents: one class per sweep, GPU-pinned slots ------------------------------

TRAINER = """\
import json, os, sys, time
art = sys.argv[1]
os.makedirs(art, exist_ok=True)
with open(os.path.join(art, "gpu"), "w") as f:
    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
time.sleep(0.5)
print(json.dumps({"step": 1, "score": 1.0, "final": True}), flush=True)
"""

SWEEP = """\
env_name = "toy"
trainer = "command"
command = ["{python}", "{script}", "{{artifact_dir}}", "{{train.lr}}"]

[sweep]
searcher = "random"
max_suggestion_cost = 60.0
max_trials = {trials}
eval_episodes = 1
eval_seeds = 1

[search.train.lr]
space = "log"
min = 0.001
max = 0.1
"""


def _toy_sweep(folder: Path, trials: int) -> Path:
    script = folder / "gpu_trainer.py"
    script.write_text(TRAINER)
    path = folder / "gpu_toy.toml"
    path.write_text(SWEEP.format(python=sys.executable, script=script, trials=trials))
    return path


def test_cuda_slots_run_two_trials_per_gpu_each_pinned_and_cpu_agents_leave_the_sweep_alone(tmp_path):
    from sweepd.agent import Agent
    from sweepd.store import db
    from sweepd.store.boxes import box_status
    from sweepd.store.review import list_trials
    from sweepd.store.sweeps import create_sweep, find_sweep

    url = f"sqlite:///{tmp_path / 'sweepd.db'}"
    engine = db.open_store(url)
    spec = load_spec(str(_toy_sweep(tmp_path, trials=4)), {"trials_per_gpu": 2}, device="cuda")
    sweep = create_sweep(engine, spec.to_json(), owner="tester", name="gpu-toy")
    artifacts = tmp_path / "artifacts"
    quiet = {"log": lambda message: None, "artifacts": artifacts, "lease_seconds": 30.0, "heartbeat_seconds": 1.0}

    # A CPU box's agent serves nothing of a cuda sweep: it finds no work and exits idle.
    Agent(engine=engine, slots=2, box="laptop", exit_when_idle=True, **quiet).run()
    assert list_trials(engine, sweep.id) == []

    planned = plan_slots(None, spec.settings.trials_per_gpu, gpus=["5", "7"])
    Agent(engine=engine, slots=planned.count, device=planned.device, gpus=planned.gpus, box="gpubox",
          until_sweep=sweep.id, **quiet).run()
    trials = list_trials(engine, sweep.id)
    assert find_sweep(engine, sweep.id).status == "finished"
    assert [t.status for t in trials] == ["succeeded"] * 4
    for t in trials:
        seen = (artifacts / "gpu-toy" / f"trial-{t.number}" / "gpu").read_text()
        assert seen == planned.gpus[t.slot], (t.number, t.slot, seen)
    assert {t.slot for t in trials} == {0, 1, 2, 3}  # four slots at once: two trials on each GPU

    (gpubox,) = [b for b in box_status(engine) if b.name == "gpubox"]
    assert gpubox.device == "cuda" and [v.gpu for v in gpubox.slot_views] == ["5", "5", "7", "7"]
    (laptop,) = [b for b in box_status(engine) if b.name == "laptop"]
    assert laptop.device == "cpu" and [v.gpu for v in laptop.slot_views] == [None, None]

    shown = CliRunner().invoke(app, ["boxes", "--db", url], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "cuda" in shown.output and "5:1" in shown.output and "7:3" in shown.output
    as_json = json.loads(CliRunner().invoke(app, ["boxes", "--db", url, "--json"]).output)
    assert {b["name"]: b["device"] for b in as_json} == {"gpubox": "cuda", "laptop": "cpu"}


def test_launch_queues_a_cuda_sweep_from_a_cpu_box_only_with_detach(tmp_path, monkeypatch):
    from sweepd.store import db
    from sweepd.store.sweeps import find_sweep

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU box
    url = f"sqlite:///{tmp_path / 'sweepd.db'}"
    toy = str(_toy_sweep(tmp_path, trials=2))
    runner = CliRunner()
    refused = runner.invoke(app, ["launch", toy, "--device", "cuda", "--db", url, "--no-live", "--no-wandb"])
    assert refused.exit_code != 0  # the CLI's entry point prints the UsageError as one line
    assert "this is a cpu box and the sweep runs on cuda: add --detach" in str(refused.exception)
    queued = runner.invoke(app, ["launch", toy, "--device", "cuda", "--trials-per-gpu", "2", "--detach",
                                 "--name", "for-gpus", "--db", url])
    assert queued.exit_code == 0, queued.output
    assert "(id 1): toy on cuda" in " ".join(queued.output.split())
    sweep = find_sweep(db.open_store(url), "for-gpus")
    assert sweep.spec["settings"]["device"] == "cuda" and sweep.spec["settings"]["trials_per_gpu"] == 2
    for command in ("launch", "agent"):
        assert "--trials-per-gpu" in runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
