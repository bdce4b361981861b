"""Training budgets in this box's units: fit a sweep's budget param to its cost cap.

PufferLib's ranges assume GPU speeds (train.total_timesteps 5e7..1e10 is hours of training on
two CPU cores), so `sweepd launch` measures how fast the sweep's centre config trains on a box of
the sweep's hardware class (`fits_here`) and rescales the range of `[sweep] budget_param` (a count
of agent steps). On a GPU box the probe trains on the first GPU with the GPU sizing; PufferLib's
ranges usually fit a GPU's speed already, and then nothing changes:

1. Probe (`run_probe`): one worker trial of the centre config, `PROBE_EPOCHS` batches long (the
   batch estimated from the sweep's defaults, `batch_estimate`) under a `PROBE_CAP_S` cap, with the
   sweep's own evaluation settings, on the sweep's device. It gives training steps/s and the seconds
   a trial spends outside training (start-up, evaluation, saving). The probe is cached in the
   sweepd data dir per env, config, evaluation settings, device and host, so a second launch
   costs nothing.
2. Fit (`fit_budget`, pure): N = FIT_SAFETY x steps/s x (max_suggestion_cost - overhead) steps fit
   in one trial. When the range's max exceeds N, min, max and centre are all multiplied by
   N / max (the range keeps its shape in log space: PufferLib's largest budget becomes the largest
   that fits), then raised to at least one batch (a trial trains whole batches); the centre (the
   first trial) is raised to at least N / 4, so that the first trial learns something. A centre
   that already fits (at most N) is kept as the user set it: only the top of the range is cut.
The fitted spec is what the Sweep row stores, so agents on other boxes train the same budgets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepd.settings import SpecError
from sweepd.space import Param
from sweepd.spec import SweepSpec

PROBE_EPOCHS = 8          # batches the probe trains: enough that the first one's warm-up is averaged out
PROBE_CAP_S = 45.0        # the probe's own cost cap (a slow env is truncated, not waited for)
FIT_SAFETY = 0.8          # trials share the box with the agent and other slots: aim below the cap
CENTER_SHARE = 0.25       # the fitted centre trains at least this share of the steps that fit
PROBE_GRACE_S = 60.0      # past its cap, how long the probe worker may take to finish before it is killed
PROBE_VERSION = 2         # bump when the probe's method changes: old cache entries are ignored


class ProbeFailed(RuntimeError):
    """The probe trial could not train the sweep's centre config."""


@dataclass(frozen=True)
class Probe:
    """What one probe trial measured."""

    env: str
    steps_per_second: float   # agent steps per second of training
    startup_seconds: float    # worker start to training start
    eval_seconds: float       # evaluation and saving, with the sweep's eval settings
    steps: int
    train_seconds: float

    @property
    def overhead_seconds(self) -> float:
        """Seconds a trial spends outside training."""
        return self.startup_seconds + self.eval_seconds


@dataclass(frozen=True)
class BudgetFit:
    """How `fit_budget` changed the budget param (old and new min, max, centre)."""

    param: str
    before: tuple[float, float, float]
    after: tuple[float, float, float]
    steps_that_fit: int
    probe: Probe
    cached: bool
    device: str = "cpu"

    @property
    def changed(self) -> bool:
        """Whether the range moved (False: the range already fits the cap)."""
        return self.before != self.after

    def describe(self, cap: float) -> str:
        """One line for the launch output."""
        p = self.probe
        hardware = "GPU" if self.device == "cuda" else "CPU"
        speed = (f"{p.env} trains at {p.steps_per_second:,.0f} steps/s on this {hardware} "
                 f"({'cached probe' if self.cached else 'probe'}; {p.overhead_seconds:.1f} s per trial "
                 f"outside training)")
        if not self.changed:
            return f"{speed}: {self.param} range already fits the {cap:g} s cap"
        lo, hi, c = self.before
        lo2, hi2, c2 = self.after
        return (f"{speed}: {self.param} [{lo:.3g}, {hi:.3g}] centre {c:.3g} -> [{lo2:.3g}, {hi2:.3g}] "
                f"centre {c2:.3g} so trials fit max_suggestion_cost {cap:g} s")


def sweep_device(spec: SweepSpec) -> str:
    """The sweep's hardware class ("cpu" for a spec stored before sweeps had one)."""
    return spec.settings.device or "cpu"


def fits_here(spec: SweepSpec, box_device: str) -> bool:
    """Whether `sweepd launch` on a box of class `box_device` fits the sweep's budget: a PufferLib
    sweep with a budget param, run on this box's hardware class (a probe elsewhere measures the
    wrong hardware: a CUDA sweep queued from a laptop keeps its range)."""
    return bool(spec.settings.budget_param) and spec.trainer == "puffer" and sweep_device(spec) == box_device


def _centre_config(spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """The centre trial's config, as a worker receives it."""
    return spec.trial_config({p.name: p.round(p.center) for p in spec.params})


def _centre_settings(spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """The centre trial's settings as its worker resolves them, in three layers (later wins):
    PufferLib's ini for the env, the env family's sizing for the sweep's device (a sweep file leaves
    batch geometry to the family; on CUDA the ini's sizes stand), the trial's config. `vec` included."""
    config: dict[str, dict[str, Any]] = {"vec": {}, **_centre_config(spec)}
    if spec.trainer != "puffer":
        return config
    from sweepd import envs, puffer_ini

    family = envs.get(spec.env)
    ini = puffer_ini.read_config(family.puffer_env).sections if puffer_ini.find_ini(family.puffer_env) else {}
    sizing = family.sizing(sweep_device(spec))
    return {section: {**dict(ini.get(section, {})), **dict(sizing.get(section, {})), **values}
            for section, values in config.items()}


def batch_estimate(spec: SweepSpec) -> int:
    """A lower bound on agent steps per epoch, from the resolved settings (`_centre_config`): the
    batch size; else, for an env vectorized in C, its copies (x the vec's envs) x bptt_horizon
    (each copy has at least one agent); else the minibatch, which PufferLib requires to fit in
    the batch."""
    config = _centre_settings(spec)
    train, env, vec = config["train"], config["env"], config["vec"]
    if isinstance(train.get("batch_size"), int) and train["batch_size"] > 0:
        return int(train["batch_size"])
    if isinstance(env.get("num_envs"), int) and isinstance(train.get("bptt_horizon"), int):
        vec_envs = vec["num_envs"] if isinstance(vec.get("num_envs"), int) and vec["num_envs"] > 0 else 1
        from sweepd import envs

        agents_key = envs.get(spec.env).agents_key if spec.trainer == "puffer" else None
        agents = env.get(agents_key) if agents_key else 1
        agents = agents if isinstance(agents, int) and agents > 0 else 1
        return max(1, env["num_envs"] * agents * vec_envs * train["bptt_horizon"])
    if isinstance(train.get("minibatch_size"), int) and train["minibatch_size"] > 0:
        return int(train["minibatch_size"])
    return 8192


def probe_key(spec: SweepSpec) -> str:
    """Cache key: what the probe's result depends on."""
    config = _centre_config(spec)
    section, key = spec.settings.budget_param.split(".", 1)
    config[section].pop(key, None)
    blob = json.dumps({"v": PROBE_VERSION, "env": spec.env, "config": config, "host": socket.gethostname(),
                       "device": sweep_device(spec),
                       "eval": [spec.settings.eval_episodes, spec.settings.eval_seeds]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(spec: SweepSpec) -> Path:
    """Where the probe for `spec` is cached."""
    from sweepd.store.db import data_dir

    return data_dir() / "probes" / f"{spec.env.replace('/', '_')}-{probe_key(spec)}.json"


def load_or_probe(spec: SweepSpec, gpu: str | None = None) -> tuple[Probe, bool]:
    """The cached probe for `spec`, else a fresh one (cached; on `gpu` for a CUDA sweep);
    returns (probe, was_cached)."""
    path = cache_path(spec)
    try:
        return Probe(**json.loads(path.read_text())), True
    except (OSError, ValueError, TypeError):
        pass
    probe = run_probe(spec, path.parent, gpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(probe)))
    tmp.replace(path)  # atomic: two launches probing at once never read half a file
    return probe, False


def run_probe(spec: SweepSpec, workdir: Path, gpu: str | None = None) -> Probe:
    """Train the sweep's centre config for `PROBE_EPOCHS` batches in a worker and measure it: on
    CPU (one thread), or for a CUDA sweep on `gpu` (a CUDA_VISIBLE_DEVICES entry; default "0")."""
    config = _centre_config(spec)
    section, key = spec.settings.budget_param.split(".", 1)
    config[section][key] = PROBE_EPOCHS * batch_estimate(spec)
    artifact_dir = workdir / f"{spec.env.replace('/', '_')}-{os.getpid()}"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    trial = {"env": spec.env, "trainer": "puffer", "config": config, "seed": spec.settings.seed,
             "cost_cap": PROBE_CAP_S, "eval_episodes": spec.settings.eval_episodes,
             "eval_seeds": spec.settings.eval_seeds, "artifact_dir": str(artifact_dir),
             "device": sweep_device(spec)}
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, SWEEPD_REPORT_FD=str(write_fd), PYTHONUNBUFFERED="1", **probe_pinning(spec, gpu))
    spawned = time.time()
    with open(artifact_dir / "worker.log", "wb") as log:
        # cwd: `import pufferlib` links ./resources into its working directory. Same process
        # group as sweepd: Ctrl-C during the probe stops the probe too.
        proc = subprocess.Popen([sys.executable, "-m", "sweepd.worker"], stdin=subprocess.PIPE, stdout=log,
                                stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env, cwd=artifact_dir)
    os.close(write_fd)
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(trial).encode())
        proc.stdin.close()
        events = _read_events(read_fd, deadline=spawned + PROBE_CAP_S + PROBE_GRACE_S)
        proc.wait(timeout=PROBE_GRACE_S)
    except (TimeoutError, subprocess.TimeoutExpired) as exc:
        raise ProbeFailed(f"the probe trial of {spec.env} overran its {PROBE_CAP_S:g} s cap "
                          f"(log: {artifact_dir / 'worker.log'})") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    probe = probe_from_events(spec.env, events, spawned, artifact_dir / "worker.log")
    shutil.rmtree(artifact_dir, ignore_errors=True)  # a failed probe keeps its log for the reason
    return probe


def probe_pinning(spec: SweepSpec, gpu: str | None) -> dict[str, str]:
    """The probe worker's device environment, as an agent's slot would set it: one GPU for a CUDA
    sweep, else no GPU and one thread."""
    if sweep_device(spec) == "cuda":
        return {"CUDA_VISIBLE_DEVICES": gpu or "0"}
    return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _read_events(fd: int, deadline: float) -> list[dict[str, Any]]:
    """JSON-line events from `fd` until EOF; TimeoutError past `deadline` (epoch seconds)."""
    buffer = b""
    with os.fdopen(fd, "rb") as reports:
        while True:
            ready, _, _ = select.select([reports], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise TimeoutError
            chunk = os.read(reports.fileno(), 1 << 16)
            if not chunk:
                break
            buffer += chunk
    return [json.loads(line) for line in buffer.splitlines() if line.strip()]


def probe_from_events(env: str, events: list[dict[str, Any]], spawned: float, log: Path | None = None) -> Probe:
    """A `Probe` from a worker's events (pure; `spawned` is when the worker process started)."""
    by_kind = {e.get("event"): e for e in events}
    result, started = by_kind.get("result"), by_kind.get("started")
    if result is None or started is None or not result.get("train_seconds"):
        failed = by_kind.get("failed", {}).get("reason", "no result")
        raise ProbeFailed(f"the probe trial of {env} failed: {failed}" + (f" (log: {log})" if log else ""))
    return Probe(env=env, steps_per_second=result["steps"] / result["train_seconds"],
                 startup_seconds=max(0.0, started["time"] - spawned),
                 eval_seconds=max(0.0, result["cost"] - result["train_seconds"] - (started["time"] - spawned)),
                 steps=int(result["steps"]), train_seconds=float(result["train_seconds"]))


def fit_budget(spec: SweepSpec, probe: Probe, cached: bool = False) -> tuple[SweepSpec, BudgetFit]:
    """`spec` with its budget param's range scaled to fit `max_suggestion_cost` at the probe's speed."""
    name = spec.settings.budget_param
    param = next(p for p in spec.params if p.name == name)
    cap = spec.settings.max_suggestion_cost
    train_seconds = cap - probe.overhead_seconds
    if train_seconds <= 0:
        raise SpecError(None, f"max_suggestion_cost {cap:g} s leaves no training time: a {spec.env} trial "
                              f"spends {probe.overhead_seconds:.1f} s starting and evaluating on this box; "
                              f"raise --max-suggestion-cost")
    fits = max(1, int(FIT_SAFETY * probe.steps_per_second * train_seconds))
    before = (param.min, param.max, param.center)
    if param.max <= fits:
        return spec, BudgetFit(name, before, before, fits, probe, cached, sweep_device(spec))
    factor = fits / param.max
    low = max(param.min * factor, float(batch_estimate(spec)))
    high = max(float(fits), 2 * low)
    if param.center <= fits:
        # A centre that fits is the user's own default for this box (snake.toml's 1M steps):
        # the first trial runs it as set, and only the range's top is cut to the cap.
        center = max(float(param.center), low)
    else:
        # Scaled with the range: at PufferLib's GPU ratios it would be about one batch long and
        # learn nothing (puffer_pong scored -21), so it trains at least a quarter of what fits.
        center = min(max(param.center * factor, low, fits * CENTER_SHARE), high)
    if param.is_integer:
        low, high, center = float(math.ceil(low)), float(math.floor(high)), float(round(center))
    fitted = Param(name=param.name, space=param.space, min=low, max=high, center=center,
                   integer=param.integer, scale=param.scale)
    params = tuple(fitted if p.name == name else p for p in spec.params)
    defaults = {s: dict(v) for s, v in spec.defaults.items()}
    section, key = name.split(".", 1)
    defaults.setdefault(section, {})[key] = int(center) if param.is_integer else center
    new_spec = dataclasses.replace(spec, params=params, defaults=defaults)
    return new_spec, BudgetFit(name, before, (low, high, center), fits, probe, cached, sweep_device(spec))
