"""Training throughput inside a sweepd worker versus the same training run directly with PufferLib.

For each env family (snake, puffer_breakout, Atari breakout) the same settings train for the same
number of agent steps twice, each in a fresh process on one thread (OMP_NUM_THREADS=1):
- worker: `python -m sweepd.worker` with a trial JSON, as the agent runs it; steps/s is the
  result's `steps / train_seconds` (the training loop only; start-up and evaluation are printed
  apart), steps/cpu-s its `steps / train_cpu_seconds`;
- direct: this file's `--direct` mode: the family's settings, env and policy, then PufferLib's own
  `PuffeRL` loop (evaluate, train until total_timesteps) with its dashboard on (sent to /dev/null),
  as `puffer train` runs it.
Target: the worker within 5% of direct. Each pair alternates which mode runs first, to share the
box's load drift between them. On a shared box wall-clock runs differ by +-30%: read the median
ratio over --repeats pairs, and the CPU-time ratio (steps per CPU-second of the training process),
which other processes' load barely moves.

Usage: python benchmarks/train_throughput.py [--envs snake,puffer_breakout,breakout] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Agent steps per run at --scale 1: about 20 s each on one shared core.
STEPS = {"snake": 500_000, "puffer_breakout": 1_000_000, "breakout": 4096}


def run_worker(env: str, steps: int, artifact_dir: str) -> dict[str, float]:
    """One trial through `python -m sweepd.worker`; its throughput and overheads."""
    trial = {"env": env, "trainer": "puffer", "config": {"train": {"total_timesteps": steps}},
             "seed": 1, "cost_cap": 3600.0, "eval_episodes": 1, "eval_seeds": 1,
             "artifact_dir": artifact_dir, "device": "cpu"}
    read_fd, write_fd = os.pipe()
    env_vars = dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), OMP_NUM_THREADS="1")
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "sweepd.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_vars,
                            pass_fds=(write_fd,))
    os.close(write_fd)
    proc.communicate(json.dumps(trial).encode())
    wall = time.time() - start
    with os.fdopen(read_fd) as pipe:
        events = [json.loads(line) for line in pipe if line.strip()]
    result = events[-1]
    if result["event"] != "result":
        raise RuntimeError(f"worker trial on {env} failed: {result}")
    return {"sps": result["steps"] / result["train_seconds"],
            "cpu_sps": result["steps"] / result["train_cpu_seconds"], "steps": result["steps"],
            "startup": result["cost"] - result["train_seconds"] - result["eval_seconds"],
            "eval": result["eval_seconds"], "wall": wall}


def run_direct(env: str, steps: int, artifact_dir: str) -> dict[str, float]:
    """The same settings trained by PufferLib's own loop in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--direct", env, str(steps), artifact_dir],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"direct run on {env} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def direct_main(env: str, steps: int, artifact_dir: str, device: str = "cpu",
                trial_config: dict[str, dict[str, Any]] | None = None) -> None:
    """`--direct`: train with PufferLib's PuffeRL loop, print {"sps", "steps"} as JSON.

    `trial_config` is a trial's config as the agent sends it (default: the family's defaults), trained
    for `steps` on `device` (benchmarks/gpu_check.sh compares GPU trials with it)."""
    import contextlib
    import random

    import numpy as np
    import torch
    from sweepd.envs.family import import_pufferl

    from sweepd import envs

    # As the worker does: one thread on CPU, and the trial seed everywhere, so both runs train
    # alike (env step costs follow the policy's behaviour).
    if device == "cpu":
        torch.set_num_threads(1)
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    pufferl = import_pufferl()
    family = envs.get(env)
    overrides = {section: dict(values) for section, values in (trial_config or {}).items()}
    overrides.setdefault("train", {})["total_timesteps"] = steps
    args = family.resolve(overrides, device=device, seed=1, data_dir=artifact_dir)
    vecenv = family.make_vecenv(args, seed=1)
    policy = family.make_policy(args, vecenv)
    config = dict(args["train"])
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        trainer = pufferl.PuffeRL(config, vecenv, policy)
        start, cpu_start = time.time(), time.process_time()
        while trainer.global_step < config["total_timesteps"]:
            trainer.evaluate()
            trainer.train()
        seconds, cpu_seconds = time.time() - start, time.process_time() - cpu_start
        trainer.utilization.stop()
        vecenv.close()
    print(json.dumps({"sps": trainer.global_step / seconds, "cpu_sps": trainer.global_step / cpu_seconds,
                      "steps": trainer.global_step}))
    sys.stdout.flush()
    os._exit(0)  # PufferLib's utilization thread would hold the exit for up to a second


def main() -> None:
    """Run the comparison and print one line per env and mode, then the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(STEPS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the step counts")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--direct", nargs=3, metavar=("ENV", "STEPS", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)  # a trial config, JSON
    options = parser.parse_args()
    if options.direct:
        env, steps, artifact_dir = options.direct
        trial_config = json.loads(options.config.read_text()) if options.config else None
        direct_main(env, int(steps), artifact_dir, options.device, trial_config)
        return
    print(f"train throughput on CPU, 1 thread, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'env':<16} {'mode':<7} {'steps':>9} {'steps/s':>9} {'steps/cpu-s':>11} {'start-up s':>10} "
          f"{'eval s':>7}")
    ratios: dict[str, list[float]] = {}
    cpu_ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env in options.envs.split(","):
            steps = int(STEPS[env] * options.scale)
            for repeat in range(options.repeats):
                # Alternate which mode goes first: the box's load drifts between the two runs.
                if repeat % 2 == 0:
                    worker = run_worker(env, steps, str(Path(tmp) / f"{env}-{repeat}"))
                    direct = run_direct(env, steps, str(Path(tmp) / f"{env}-{repeat}-direct"))
                else:
                    direct = run_direct(env, steps, str(Path(tmp) / f"{env}-{repeat}-direct"))
                    worker = run_worker(env, steps, str(Path(tmp) / f"{env}-{repeat}"))
                ratios.setdefault(env, []).append(worker["sps"] / direct["sps"])
                cpu_ratios.setdefault(env, []).append(worker["cpu_sps"] / direct["cpu_sps"])
                print(f"{env:<16} {'worker':<7} {worker['steps']:>9} {worker['sps']:>9.0f} "
                      f"{worker['cpu_sps']:>11.0f} {worker['startup']:>10.1f} {worker['eval']:>7.1f}")
                print(f"{env:<16} {'direct':<7} {direct['steps']:>9} {direct['sps']:>9.0f} {direct['cpu_sps']:>11.0f}")
    for env in ratios:
        for label, values in (("wall", ratios[env]), ("cpu", cpu_ratios[env])):
            median = statistics.median(values)
            print(f"{env}: worker/direct ({label}) median {median:.3f} over {len(values)} pair(s) "
                  f"[{', '.join(f'{v:.2f}' for v in values)}] "
                  f"({'within' if median >= 0.95 else 'OUTSIDE'} the 5% target)")


if __name__ == "__main__":
    main()
