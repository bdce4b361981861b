"""One trial in a subprocess: train, evaluate, report.

Protocol (docs/architecture.md, "Worker protocol"): `python -m sweepd.worker` reads one JSON trial
from stdin and writes JSON-line events to the file descriptor named by `SWEEPD_REPORT_FD` (stdout
when unset, for running a trial by hand): `started`, then `progress` points, then `result` (exit
0) or `failed` (exit 1; exit 2 when the trial JSON itself is unusable).

Cost: wall seconds counted from the worker process's start (its creation time in /proc, so the
interpreter's start-up counts too). The worker keeps the whole trial, evaluation included, inside
`cost_cap`:
- trainer "puffer": before each epoch (one PufferLib rollout + update), training stops when the
  remaining time would not hold that epoch plus the estimated evaluation time (from the measured
  env build time, rollout speed and episode length); evaluation then runs under a hard deadline at
  the cap (each seed gets its share of what is left). Stopping before `total_timesteps` reports
  `truncated: true`.
- trainer "command": the command's process group gets SIGTERM 1 s before the cap and SIGKILL
  0.25 s before it; the last score it reported is the (truncated) result. See sweepd/report.py.

Result fields beyond the protocol's: `eval_episodes_done` (episodes scored per seed) and
`train_cpu_seconds` (CPU time of the training loop, for throughput on a shared box).

Failure categories: "setup" for what no searched value can cause (bad trial JSON, unknown env,
unknown config key, import error or missing file while building the env, a command that cannot
start or exits with an error before reporting); "hyperparameter" for what the searched values
cause: any other failure building the env or policy (a constructor rejecting a value, out of
memory), a non-finite loss or weight, CUDA out of memory, batch geometry PufferLib rejects
(minibatch larger than the batch, ...), a command killed by a signal or dying after it has
reported, and an evaluation that finishes no episode before the cap. Any other
exception propagates (traceback in the trial log, non-zero exit) for the agent to record.

Evaluation (trainer "puffer"): the final policy, sampling actions as PufferLib's own eval does,
plays at least `eval_episodes` episodes in a fresh env on each of `eval_seeds` seeds derived from
the trial seed. A seed's score is the mean of PufferLib's episodic score log (weighted by the
episodes each log averages); the trial's score is the mean over seeds, `score_stderr` the standard
error across seeds. In many-agent envs (snake: 256 snakes) all agents play at once, so the first
episodes to finish are the shorter ones: size `eval_episodes` near the number of agents for an
unbiased score. Progress events carry the mean score of the episodes finished since the previous
progress event (the learning curve), not a running mean from the start.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepd.lifeline import die_with_parent


def _process_start_time() -> float:
    """Epoch seconds at which this process was created (Linux /proc, to 10 ms), else now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), in clock ticks since boot
        # /proc/stat's btime is whole seconds; the boot clock gives boot time to the microsecond.
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


WORKER_START = _process_start_time()

# How far ahead of the cap the worker stops work it cannot interrupt cleanly.
REPORT_MARGIN_S = 0.5         # saving the policy and writing the result
COMMAND_TERM_BEFORE_S = 1.0   # SIGTERM to the command's process group this long before the cap
COMMAND_KILL_BEFORE_S = 0.25  # then SIGKILL
EPOCH_SAFETY = 1.25           # the next epoch may take this much longer than the last one
UNKNOWN_EPISODE_TICKS = 500   # episode length assumed before training has logged one


# -- trial and events -----------------------------------------------------------------------------

class TrialFormatError(ValueError):
    """The trial JSON lacks a key or carries a value of the wrong kind."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key, self.value = key, value
        super().__init__(f"trial key '{key}' must be {expected}, got {value!r}")


class TrialFailed(Exception):
    """The trial failed for a reason the worker reports, with its category."""

    def __init__(self, category: str, reason: str) -> None:
        self.category, self.reason = category, reason
        super().__init__(f"{category}: {reason}")


@dataclass(frozen=True)
class Trial:
    """One trial as the agent sends it on stdin."""

    env: str
    trainer: str
    config: dict[str, dict[str, Any]]
    seed: int
    cost_cap: float
    eval_episodes: int
    eval_seeds: int
    artifact_dir: Path
    device: str
    command: tuple[str, ...] = ()
    trial_id: int | None = None
    sweep: str | None = None

    @classmethod
    def from_json(cls, obj: object) -> Trial:
        """Validate the decoded trial JSON; raises `TrialFormatError` naming the bad key."""
        if not isinstance(obj, dict):
            raise TrialFormatError("<trial>", obj, "a JSON object")

        def take(key: str, kind: type | tuple[type, ...], expected: str, default: Any = ...) -> Any:
            if key not in obj:
                if default is ...:
                    raise TrialFormatError(key, None, expected)
                return default
            value = obj[key]
            # JSON true/false decode to bool, which Python counts as int: reject them for numbers.
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TrialFormatError(key, value, expected)
            return value

        trainer = take("trainer", str, '"puffer" or "command"', "puffer")
        if trainer not in ("puffer", "command"):
            raise TrialFormatError("trainer", trainer, '"puffer" or "command"')
        config = take("config", dict, "an object of sections", {})
        for section, values in config.items():
            if not isinstance(values, dict):
                raise TrialFormatError(f"config.{section}", values, "an object")
        command = take("command", (list, type(None)), "a list of strings or null", None) or []
        if trainer == "command" and (not command or not all(isinstance(c, str) for c in command)):
            raise TrialFormatError("command", command, "a non-empty list of strings")
        cost_cap = float(take("cost_cap", (int, float), "a number of seconds > 0"))
        if not cost_cap > 0:
            raise TrialFormatError("cost_cap", cost_cap, "a number of seconds > 0")
        eval_episodes = take("eval_episodes", int, "an integer >= 1", 8)
        eval_seeds = take("eval_seeds", int, "an integer >= 1", 2)
        if eval_episodes < 1 or eval_seeds < 1:
            raise TrialFormatError("eval_episodes/eval_seeds", (eval_episodes, eval_seeds), "integers >= 1")
        return cls(
            env=take("env", str, "an env name", ""),
            trainer=trainer,
            config=config,
            seed=take("seed", int, "an integer", 0),
            cost_cap=cost_cap,
            eval_episodes=eval_episodes,
            eval_seeds=eval_seeds,
            artifact_dir=Path(take("artifact_dir", str, "a folder path")).resolve(),
            device=take("device", str, '"cpu" or "cuda[:n]"', "cpu"),
            command=tuple(command),
            trial_id=take("trial_id", (int, type(None)), "an integer", None),
            sweep=take("sweep", (str, type(None)), "a sweep name", None),
        )


class EventWriter:
    """Writes protocol events as JSON lines to one file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> EventWriter:
        """The fd named by SWEEPD_REPORT_FD, else stdout."""
        return cls(int(os.environ.get("SWEEPD_REPORT_FD", sys.stdout.fileno())))

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event; non-finite numbers become null so the line stays valid JSON."""
        line = json.dumps({"event": event, **_finite(fields)}, allow_nan=False) + "\n"
        data = line.encode()
        while data:
            data = data[os.write(self.fd, data):]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class CostClock:
    """Wall seconds since the worker started, against the trial's cap."""

    start: float
    cap: float

    def elapsed(self) -> float:
        """Seconds since the worker process started."""
        return time.time() - self.start

    def remaining(self) -> float:
        """Seconds left before the cap (negative past it)."""
        return self.cap - self.elapsed()

    def at(self, before_cap: float) -> float:
        """Epoch time `before_cap` seconds ahead of the cap."""
        return self.start + self.cap - before_cap


# -- episodic scores from PufferLib's logs --------------------------------------------------------

class EpisodeLog:
    """Episodic scores read from PufferLib's env logs.

    C envs log averages over `n` episodes; Gymnasium envs wrapped in PufferLib's EpisodeStats log
    one episode per info. Each log counts with its number of episodes.
    """

    def __init__(self, score_key: str) -> None:
        self.score_key = score_key
        self.episodes = 0.0
        self.score_sum = 0.0
        self.length_sum = 0.0
        self.lengths = 0.0
        self._window_sum = 0.0
        self._window_n = 0.0
        self.last_window: float | None = None

    def add(self, score: float, n: float = 1.0, length: float | None = None) -> None:
        """One log: mean `score` (and mean `length`) over `n` episodes."""
        if not (math.isfinite(score) and n > 0):
            return
        self.episodes += n
        self.score_sum += score * n
        self._window_sum += score * n
        self._window_n += n
        if length is not None and math.isfinite(length):
            self.length_sum += length * n
            self.lengths += n

    def add_stats(self, stats: Mapping[str, Any]) -> None:
        """PufferLib trainer stats: per key, the list of values the env logs carried."""
        scores = _as_list(stats.get(self.score_key))
        counts = _as_list(stats.get("n")) or [1.0] * len(scores)
        lengths = _as_list(stats.get("episode_length"))
        for i, score in enumerate(scores):
            self.add(float(score), float(counts[i]) if i < len(counts) else 1.0,
                     float(lengths[i]) if i < len(lengths) else None)

    def add_infos(self, infos: Iterable[Mapping[str, Any]]) -> None:
        """Infos returned by a PufferLib vecenv step: one dict per env log."""
        for info in infos:
            if self.score_key in info:
                self.add(float(info[self.score_key]), float(info.get("n", 1.0)),
                         float(info["episode_length"]) if "episode_length" in info else None)

    def mean(self) -> float | None:
        """Mean score over every episode logged, or None before the first."""
        return self.score_sum / self.episodes if self.episodes else None

    def mean_length(self) -> float | None:
        """Mean episode length in env steps, or None before one was logged."""
        return self.length_sum / self.lengths if self.lengths else None

    def take_window(self) -> float | None:
        """Mean score of the episodes logged since the last call (the last such mean if none)."""
        if self._window_n:
            self.last_window = self._window_sum / self._window_n
            self._window_sum = self._window_n = 0.0
        return self.last_window


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


# -- trainer "puffer" -----------------------------------------------------------------------------

def _select_device(requested: str) -> str:
    import torch

    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrialFailed("setup", f"device '{requested}' requested but torch sees no CUDA device")
        return requested
    if requested != "cpu":
        raise TrialFormatError("device", requested, '"cpu" or "cuda[:n]"')
    # Worker processes share the box's cores with each other: one thread each.
    torch.set_num_threads(1)
    return "cpu"


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_seeds(trial_seed: int, count: int) -> list[int]:
    """Env seeds for evaluation: derived from the trial seed, distinct from its training seed."""
    import numpy as np

    state = np.random.SeedSequence([trial_seed % 2**63, 0x5EED]).generate_state(count, dtype=np.uint32)
    return [int(s) % 2**31 for s in state]


def puffer_trainer_class() -> type:
    """PufferLib's PuffeRL, quieted for sweepd (see the class docstring)."""
    from sweepd.envs.family import import_pufferl

    pufferl = import_pufferl()

    class SweepdPuffeRL(pufferl.PuffeRL):
        """PufferLib's trainer without its terminal dashboard and checkpoint files.

        sweepd records progress itself and saves the final policy; the env logs PufferLib averages
        at each log are handed raw to `on_stats` first, so episodes are counted exactly.
        """

        def __init__(self, config: dict[str, Any], vecenv: Any, policy: Any, on_stats: Any) -> None:
            self.on_stats = on_stats
            super().__init__(config, vecenv, policy)
            # Its utilization monitor is a non-daemon thread polling psutil every second.
            self.utilization.stop()

        def print_dashboard(self, *args: Any, **kwargs: Any) -> None:
            return None

        def save_checkpoint(self) -> None:
            return None

        def mean_and_log(self) -> Any:
            self.on_stats(self.stats)
            return super().mean_and_log()

    return SweepdPuffeRL


def _use_cuda_advantage_kernel(device: str) -> None:
    """PufferLib decides where its advantage kernel runs by looking for nvcc on PATH at import;
    decide by whether the installed kernel has a CUDA implementation and the trial uses CUDA."""
    import torch

    from sweepd.envs.family import import_pufferl

    pufferl = import_pufferl()
    has_cuda_kernel = torch._C._dispatch_has_kernel_for_dispatch_key(
        "pufferlib::compute_puff_advantage", "CUDA")
    pufferl.ADVANTAGE_CUDA = device.startswith("cuda") and has_cuda_kernel


def _check_finite(trainer: Any) -> None:
    import torch

    for key, value in (trainer.losses or {}).items():
        if key != "explained_variance" and not math.isfinite(value):
            raise TrialFailed("hyperparameter", f"non-finite {key} ({value}) at step {trainer.global_step}")
    for name, param in trainer.uncompiled_policy.named_parameters():
        if not torch.isfinite(param).all():
            raise TrialFailed("hyperparameter",
                              f"non-finite weights in {name} at step {trainer.global_step} (loss diverged)")


@dataclass
class EvalEstimate:
    """What evaluation will cost, from what training measured."""

    build_seconds: float          # building one env (the training env's build time)
    agents: int                   # agents stepped together
    seconds_per_agent_step: float = 0.0
    episode_length: float | None = None

    def seconds(self, episodes: int, seeds: int) -> float:
        """Estimated evaluation seconds, with a margin."""
        length = self.episode_length or UNKNOWN_EPISODE_TICKS
        ticks = length * max(1.0, episodes / max(self.agents, 1))
        per_seed = self.build_seconds + ticks * self.agents * self.seconds_per_agent_step
        return 1.3 * seeds * per_seed + REPORT_MARGIN_S


def _build_failure(exc: Exception) -> TrialFailed:
    """Classify a failure while building the trial's env, policy or trainer.

    Setup (pauses the sweep): what no searched value can cause, a broken install or a typo in the
    sweep file. Anything else (an env constructor rejecting a searched value, out of memory for a
    searched size) is the config's failure and observed as such; a sweep whose every trial dies
    this way is still paused by the store's "first trials all fail fast" rule.
    """
    from sweepd.envs import UnknownEnvError
    from sweepd.envs.family import ConfigKeyError

    setup = (ImportError, FileNotFoundError, UnknownEnvError, ConfigKeyError, TrialFormatError)
    category = "setup" if isinstance(exc, setup) else "hyperparameter"
    return TrialFailed(category, f"{type(exc).__name__}: {exc}")


def run_puffer(trial: Trial, events: EventWriter, clock: CostClock) -> None:
    """Train PufferLib PPO on the trial's env family, evaluate, save the policy, report."""
    # Building the env and policy: see `_build_failure` for which failures pause the sweep.
    try:
        device = _select_device(trial.device)
        _seed_everything(trial.seed)
        import pufferlib
        import torch

        from sweepd import envs
        family = envs.get(trial.env)
        trial.artifact_dir.mkdir(parents=True, exist_ok=True)
        args = family.resolve(trial.config, device=device, seed=trial.seed,
                              data_dir=str(trial.artifact_dir))
        _use_cuda_advantage_kernel(device)
        build_start = time.time()
        vecenv = family.make_vecenv(args, seed=trial.seed)
        build_seconds = time.time() - build_start
        policy = family.make_policy(args, vecenv)
    except TrialFailed:
        raise
    except Exception as exc:
        traceback.print_exc()  # the trial log keeps the whole story
        raise _build_failure(exc) from exc

    curve = EpisodeLog(family.score_key)
    try:
        trainer = puffer_trainer_class()(dict(args["train"]), vecenv, policy, on_stats=curve.add_stats)
    except pufferlib.APIUsageError as exc:
        # PuffeRL rejects batch geometry (batch < minibatch, horizon not dividing it, ...): a
        # property of the searched values, so the searcher should learn to avoid it.
        vecenv.close()
        raise TrialFailed("hyperparameter", f"PufferLib rejected the batch settings: {exc}") from exc
    except Exception as exc:
        traceback.print_exc()
        vecenv.close()
        raise _build_failure(exc) from exc

    events.emit("started", time=time.time())
    train_start, train_cpu_start = time.time(), time.process_time()
    total_timesteps = int(args["train"]["total_timesteps"])
    estimate = EvalEstimate(build_seconds=build_seconds, agents=vecenv.num_agents)
    progress_every = max(1.0, trial.cost_cap / 20)
    next_progress = time.time() + progress_every
    epoch_seconds = 0.0
    rollout_seconds, rollout_steps = 0.0, 0
    last_progress_step = -1
    truncated = False
    try:
        while trainer.global_step < total_timesteps:
            estimate.episode_length = curve.mean_length()
            reserve = estimate.seconds(trial.eval_episodes, trial.eval_seeds)
            if clock.remaining() < EPOCH_SAFETY * epoch_seconds + reserve:
                truncated = True
                break
            epoch_start, steps_before = time.time(), trainer.global_step
            trainer.evaluate()
            rollout_end = time.time()
            trainer.train()
            _check_finite(trainer)
            epoch_seconds = time.time() - epoch_start
            rollout_seconds += rollout_end - epoch_start
            rollout_steps += trainer.global_step - steps_before
            estimate.seconds_per_agent_step = rollout_seconds / max(rollout_steps, 1)
            if time.time() >= next_progress:
                next_progress = time.time() + progress_every
                last_progress_step = _emit_progress(events, trainer.global_step, curve, clock)
    except torch.OutOfMemoryError as exc:
        raise TrialFailed("hyperparameter", f"CUDA out of memory at step {trainer.global_step}: {exc}") from exc
    finally:
        curve.add_stats(trainer.stats)  # logs gathered since PufferLib's last mean_and_log
        trainer.stats.clear()
        trainer.vecenv.close()
    if trainer.global_step != last_progress_step:
        _emit_progress(events, trainer.global_step, curve, clock)
    train_seconds = time.time() - train_start
    train_cpu_seconds = time.process_time() - train_cpu_start  # CPU time: robust on a shared box

    eval_start = time.time()
    try:
        per_seed, episodes_done = evaluate_policy(
            family, args, trainer.uncompiled_policy, eval_seeds(trial.seed, trial.eval_seeds),
            trial.eval_episodes, deadline=clock.at(REPORT_MARGIN_S))
    except torch.OutOfMemoryError as exc:
        raise TrialFailed("hyperparameter", f"CUDA out of memory in evaluation: {exc}") from exc
    eval_seconds = time.time() - eval_start
    scores = [s for s in per_seed if s is not None]
    if not scores:
        raise TrialFailed("hyperparameter", f"no evaluation episode finished before the cost cap "
                                            f"({trial.cost_cap:.0f} s): episodes too long for the budget")

    checkpoint = trial.artifact_dir / "policy.pt"
    torch.save(trainer.uncompiled_policy.state_dict(), checkpoint)
    score = sum(scores) / len(scores)
    stderr = 0.0
    if len(scores) > 1:
        var = sum((s - score) ** 2 for s in scores) / (len(scores) - 1)
        stderr = math.sqrt(var / len(scores))
    events.emit("result", score=score, score_stderr=stderr, per_seed=scores,
                eval_episodes_done=episodes_done, cost=clock.elapsed(), train_seconds=train_seconds,
                train_cpu_seconds=train_cpu_seconds, eval_seconds=eval_seconds,
                steps=int(trainer.global_step), truncated=truncated, checkpoint=str(checkpoint))


def _emit_progress(events: EventWriter, step: int, curve: EpisodeLog, clock: CostClock) -> int:
    """Emit a learning-curve point (once an episode has been logged); returns the step."""
    score = curve.take_window()
    if score is not None:
        events.emit("progress", step=int(step), score=score, elapsed=clock.elapsed())
    return step


def evaluate_policy(family: Any, args: Mapping[str, Any], policy: Any, seeds: list[int], episodes: int,
                    deadline: float) -> tuple[list[float | None], list[int]]:
    """Score `policy` on each seed: mean episodic score of at least `episodes` episodes in a fresh
    env, or None for a seed that finished none by its share of the time left before `deadline`."""
    per_seed: list[float | None] = []
    done: list[int] = []
    for index, seed in enumerate(seeds):
        seed_deadline = time.time() + (deadline - time.time()) / (len(seeds) - index)
        log = EpisodeLog(family.score_key)
        vecenv = family.make_vecenv(args, seed=seed, evaluation=True, episodes=episodes)
        try:
            _play(vecenv, policy, args, log, seed, episodes, seed_deadline)
        finally:
            vecenv.close()
        per_seed.append(log.mean())
        done.append(int(log.episodes))
    return per_seed, done


def _play(vecenv: Any, policy: Any, args: Mapping[str, Any], log: EpisodeLog, seed: int, episodes: int,
          deadline: float) -> None:
    import numpy as np
    import pufferlib.pytorch
    import torch

    device = args["train"]["device"]
    observations, _ = vecenv.reset(seed)
    agents = vecenv.num_agents
    state: dict[str, Any] = {}
    if args["train"]["use_rnn"]:
        hidden = policy.hidden_size
        state = {"lstm_h": torch.zeros(agents, hidden, device=device),
                 "lstm_c": torch.zeros(agents, hidden, device=device)}
    was_training = policy.training
    policy.eval()
    try:
        while log.episodes < episodes and time.time() < deadline:
            with torch.no_grad():
                logits, _ = policy.forward_eval(torch.as_tensor(observations).to(device), state)
                action, _, _ = pufferlib.pytorch.sample_logits(logits)
            action = action.cpu().numpy().reshape(vecenv.action_space.shape)
            if isinstance(logits, torch.distributions.Normal):
                action = np.clip(action, vecenv.action_space.low, vecenv.action_space.high)
            observations, _, _, _, infos = vecenv.step(action)
            log.add_infos(infos)
    finally:
        policy.train(was_training)


# -- trainer "command" ----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w]*)(?:\.([A-Za-z_][\w]*))?\}")


class PlaceholderError(KeyError):
    """A command argument names a `{section.key}` the trial config does not have."""

    def __init__(self, placeholder: str, argument: str) -> None:
        self.placeholder, self.argument = placeholder, argument
        super().__init__(placeholder)

    def __str__(self) -> str:
        return f"command argument {self.argument!r}: no value for {{{self.placeholder}}} in the trial"


def fill_command(command: Iterable[str], trial: Trial) -> list[str]:
    """The command with `{train.learning_rate}`-style placeholders filled from the trial config;
    `{seed}`, `{artifact_dir}` and `{trial_id}` are filled from the trial itself."""
    own = {"seed": trial.seed, "artifact_dir": str(trial.artifact_dir), "trial_id": trial.trial_id}

    def format_value(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def fill(argument: str) -> str:
        def replace(match: re.Match[str]) -> str:
            section, key = match.group(1), match.group(2)
            if key is None:
                if section in own and own[section] is not None:
                    return format_value(own[section])
                raise PlaceholderError(section, argument)
            values = trial.config.get(section, {})
            if key not in values:
                raise PlaceholderError(f"{section}.{key}", argument)
            return format_value(values[key])

        return _PLACEHOLDER.sub(replace, argument)

    return [fill(argument) for argument in command]


@dataclass
class CommandReports:
    """What a command reported: its last score, step, final flag and checkpoint."""

    score: float | None = None
    step: int = 0
    final: bool = False
    checkpoint: str | None = None
    count: int = 0

    def take(self, message: Mapping[str, Any]) -> bool:
        """Record one report; False when it is not a usable report."""
        score = message.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            return False
        if self.final:
            return False  # nothing after the final score counts
        self.score = float(score)
        step = message.get("step")
        self.step = int(step) if isinstance(step, int | float) and not isinstance(step, bool) else self.count
        self.final = message.get("final") is True
        if isinstance(message.get("checkpoint"), str):
            self.checkpoint = message["checkpoint"]
        self.count += 1
        return True


def run_command(trial: Trial, events: EventWriter, clock: CostClock) -> None:
    """Run the trial's command, relay its reports, stop it at the cap, report its score."""
    try:
        argv = fill_command(trial.command, trial)
        trial.artifact_dir.mkdir(parents=True, exist_ok=True)
    except (PlaceholderError, OSError) as exc:
        raise TrialFailed("setup", str(exc)) from exc
    report_read, report_write = os.pipe()
    env = dict(os.environ, SWEEPD_REPORT_FD=str(report_write), SWEEPD_ARTIFACT_DIR=str(trial.artifact_dir))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
                                pass_fds=(report_write,), start_new_session=True,
                                # its own process group, killed as one; SIGKILL if the worker dies first
                                preexec_fn=die_with_parent)
    except OSError as exc:
        os.close(report_read)
        raise TrialFailed("setup", f"cannot start command {argv[0]!r}: {exc}") from exc
    finally:
        os.close(report_write)  # the child holds its copy; EOF comes when it exits

    # If the agent stops the worker, stop the command's process group with it.
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    events.emit("started", time=time.time())
    start = time.time()
    reports = CommandReports()
    stopped_at_cap = _relay(proc, report_read, reports, events, clock)
    returncode = proc.wait()
    train_seconds = time.time() - start

    if stopped_at_cap:
        if reports.score is None:
            raise TrialFailed("hyperparameter",
                              f"no score reported before the cost cap ({trial.cost_cap:.0f} s)")
    elif returncode < 0:
        # A signal (SIGSEGV, the OOM killer's SIGKILL) is the config's doing even before the first
        # report: a broken install exits with an error code instead.
        raise TrialFailed("hyperparameter", f"command killed by {signal.Signals(-returncode).name}")
    elif returncode != 0:
        category = "hyperparameter" if reports.count else "setup"
        raise TrialFailed(category, f"command exited with code {returncode}")
    elif reports.score is None:
        raise TrialFailed("setup", "command exited 0 without reporting a score (see sweepd/report.py)")
    events.emit("result", score=reports.score, score_stderr=0.0, per_seed=[reports.score],
                cost=clock.elapsed(), train_seconds=train_seconds, eval_seconds=0.0, steps=reports.step,
                truncated=stopped_at_cap and not reports.final, checkpoint=reports.checkpoint)


def _relay(proc: subprocess.Popen[bytes], report_fd: int, reports: CommandReports, events: EventWriter,
           clock: CostClock) -> bool:
    """Relay reports from the command's stdout and report fd until it ends; True when it was
    stopped at the cost cap."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    pending = {proc.stdout.fileno(): b"", report_fd: b""}
    for fd in pending:
        selector.register(fd, selectors.EVENT_READ)
    term_at, kill_at = clock.at(COMMAND_TERM_BEFORE_S), clock.at(COMMAND_KILL_BEFORE_S)
    stopped = False
    while pending or proc.poll() is None:
        now = time.time()
        if not stopped and now >= term_at:
            stopped = True
            _signal_group(proc, signal.SIGTERM)
        if stopped and now >= kill_at:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
            elif now >= kill_at + COMMAND_KILL_BEFORE_S:
                break  # a descendant that left the process group still holds the pipes open
        # Wake for the next deadline, or every 50 ms once only the process is left to reap.
        wake = term_at if not stopped else kill_at
        timeout = min(max(wake - now, 0.01), 0.05) if not pending or stopped else max(0.0, wake - now)
        if not pending:
            time.sleep(timeout)
            continue
        for key, _ in selector.select(timeout=timeout):
            fd = key.fd
            data = os.read(fd, 65536)
            if not data:
                selector.unregister(fd)
                _handle_lines(pending.pop(fd), fd == report_fd, reports, events, clock)
                continue
            buffered = pending[fd] + data
            *lines, pending[fd] = buffered.split(b"\n")
            _handle_lines(b"\n".join(lines), fd == report_fd, reports, events, clock)
    selector.close()
    os.close(report_fd)
    return stopped


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _handle_lines(chunk: bytes, from_report_fd: bool, reports: CommandReports, events: EventWriter,
                  clock: CostClock) -> None:
    for raw in chunk.split(b"\n"):
        if not raw.strip():
            continue
        text = raw.decode(errors="replace")
        message = None
        with contextlib.suppress(ValueError):
            message = json.loads(text)
        if isinstance(message, dict) and reports.take(message):
            events.emit("progress", step=reports.step, score=reports.score, elapsed=clock.elapsed())
        elif from_report_fd:
            print(f"sweepd worker: ignored report line {text!r}", file=sys.stderr, flush=True)
        else:
            # The command's own output goes to the trial log, as it would without sweepd.
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


# -- entry point ----------------------------------------------------------------------------------

def main() -> int:
    """Run the trial on stdin; returns the process exit status."""
    clock_start = WORKER_START
    events = EventWriter.from_env()
    try:
        trial = Trial.from_json(json.load(sys.stdin))
    except (ValueError, TrialFormatError) as exc:
        events.emit("failed", reason=f"bad trial: {exc}", category="setup")
        return 2
    clock = CostClock(start=clock_start, cap=trial.cost_cap)
    try:
        if trial.trainer == "puffer":
            run_puffer(trial, events, clock)
        else:
            run_command(trial, events, clock)
    except TrialFailed as failure:
        events.emit("failed", reason=failure.reason, category=failure.category)
        print(f"sweepd worker: trial failed ({failure.category}): {failure.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    # Skip interpreter teardown: PufferLib's utilization thread sleeps up to a second before it
    # sees its stop flag, and torch's teardown is slow; the trial's events are already written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
