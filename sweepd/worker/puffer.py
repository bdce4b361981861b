"""Trainer "puffer": PufferLib PPO on the trial's env family, stopped before each epoch that would
leave too little of the cost cap to evaluate, then evaluated (evaluation.py), saved and reported.

Test hook: with SWEEPD_TEST_OOM=1 in its environment the worker raises `torch.OutOfMemoryError`
after its first training epoch, as CUDA does when a searched batch does not fit the GPU, so that
tests on a box without a GPU prove such a trial fails as the config's fault (hyperparameter), not
the sweep's (tests/test_gpu_paths.py). Nothing else reads it.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from typing import Any

from sweepd.protocol import HYPERPARAMETER, SETUP, EventWriter, TrialFailed, TrialFormatError, TrialPayload
from sweepd.worker.clock import REPORT_MARGIN_S, CostClock, FirstEpochWatch
from sweepd.worker.evaluation import EpisodeLog, EvalEstimate, eval_seeds, evaluate_policy
from sweepd.worker.stopping import StopRequest

EPOCH_SAFETY = 1.25           # the next epoch may take this much longer than the last one
OOM_HOOK_ENV = "SWEEPD_TEST_OOM"  # tests only (module docstring)


def _select_device(requested: str) -> str:
    import torch

    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrialFailed(SETUP, f"device '{requested}' requested but torch sees no CUDA device")
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
            raise TrialFailed(HYPERPARAMETER, f"non-finite {key} ({value}) at step {trainer.global_step}")
    for name, param in trainer.uncompiled_policy.named_parameters():
        if not torch.isfinite(param).all():
            raise TrialFailed(HYPERPARAMETER,
                              f"non-finite weights in {name} at step {trainer.global_step} (loss diverged)")


def _build_failure(exc: Exception) -> TrialFailed:
    """Classify a failure while building the trial's env, policy or trainer.

    Setup (pauses the sweep): what no searched value can cause, a broken install or a typo in the
    sweep file. Anything else (an env constructor rejecting a searched value, out of memory for a
    searched size) is the config's failure and observed as such; a sweep whose every trial dies
    this way is still paused by the store's "first trials all fail fast" rule.
    """
    from sweepd.envs import UnknownEnvError
    from sweepd.envs.family import ConfigKeyError, UnknownMetricError

    setup = (ImportError, FileNotFoundError, UnknownEnvError, ConfigKeyError, UnknownMetricError, TrialFormatError)
    category = SETUP if isinstance(exc, setup) else HYPERPARAMETER
    return TrialFailed(category, f"{type(exc).__name__}: {exc}")


def run_puffer(trial: TrialPayload, events: EventWriter, clock: CostClock, stop: StopRequest) -> None:
    """Train PufferLib PPO on the trial's env family, evaluate, save the policy, report.

    Training ends at `total_timesteps`, before an epoch that would leave too little time to
    evaluate under the cap, or before the next epoch once the agent asked to stop early (`stop`);
    the last two report a truncated result at the steps trained, the last one `stopped` too."""
    # Building the env and policy: see `_build_failure` for which failures pause the sweep.
    try:
        device = _select_device(trial.device)
        _seed_everything(trial.seed)
        import pufferlib
        import torch

        from sweepd import envs
        family = envs.get(trial.env)
        score_key = family.metric_key(trial.metric)  # [sweep] metric, as the env's logs name it
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

    curve = EpisodeLog(score_key)
    train_args = dict(args["train"])
    batch = train_args.get("batch_size")
    if batch == "auto" and isinstance(train_args.get("bptt_horizon"), int):
        batch = vecenv.num_agents * train_args["bptt_horizon"]  # as PuffeRL sizes it
    if isinstance(batch, int) and int(train_args["total_timesteps"]) < batch:
        # PufferLib trains whole batches and divides by their count (0 epochs: ZeroDivisionError).
        train_args["total_timesteps"] = batch
    try:
        trainer = puffer_trainer_class()(train_args, vecenv, policy, on_stats=curve.add_stats)
    except pufferlib.APIUsageError as exc:
        # PuffeRL rejects batch geometry (batch < minibatch, horizon not dividing it, ...): a
        # property of the searched values, so the searcher should learn to avoid it.
        vecenv.close()
        raise TrialFailed(HYPERPARAMETER, f"PufferLib rejected the batch settings: {exc}") from exc
    except Exception as exc:
        traceback.print_exc()
        vecenv.close()
        raise _build_failure(exc) from exc

    events.emit("started", time=time.time())
    first_epoch = FirstEpochWatch(clock, events)  # fails the trial if the first epoch outlasts the cap
    train_start, train_cpu_start = time.time(), time.process_time()
    total_timesteps = int(train_args["total_timesteps"])
    estimate = EvalEstimate(build_seconds=build_seconds, agents=vecenv.num_agents)
    progress_every = max(1.0, trial.cost_cap / 20)
    next_progress = time.time() + progress_every
    epoch_seconds = 0.0
    rollout_seconds, rollout_steps = 0.0, 0
    last_progress_step = -1
    truncated = stopped = False
    try:
        while trainer.global_step < total_timesteps:
            if stop.requested:
                truncated = stopped = True
                break
            estimate.episode_length = curve.mean_length()
            reserve = estimate.seconds(trial.eval_episodes, trial.eval_seeds)
            if clock.remaining() < EPOCH_SAFETY * epoch_seconds + reserve:
                truncated = True
                break
            epoch_start, steps_before = time.time(), trainer.global_step
            trainer.evaluate()
            rollout_end = time.time()
            trainer.train()
            if os.environ.get(OOM_HOOK_ENV) == "1":
                raise torch.OutOfMemoryError(f"{OOM_HOOK_ENV}=1: CUDA out of memory (test hook)")
            _check_finite(trainer)
            curve.check_metric(trial.env, trial.metric)  # a wrong metric fails the first trial early
            epoch_seconds = time.time() - epoch_start
            first_epoch.done()
            rollout_seconds += rollout_end - epoch_start
            rollout_steps += trainer.global_step - steps_before
            estimate.seconds_per_agent_step = rollout_seconds / max(rollout_steps, 1)
            if time.time() >= next_progress:
                next_progress = time.time() + progress_every
                last_progress_step = _emit_progress(events, trainer.global_step, curve, clock)
    except torch.OutOfMemoryError as exc:
        raise TrialFailed(HYPERPARAMETER, f"CUDA out of memory at step {trainer.global_step}: {exc}") from exc
    finally:
        first_epoch.done()
        curve.add_stats(trainer.stats)  # logs gathered since PufferLib's last mean_and_log
        trainer.stats.clear()
        trainer.vecenv.close()
    curve.check_metric(trial.env, trial.metric)
    if trainer.global_step != last_progress_step:
        _emit_progress(events, trainer.global_step, curve, clock)
    train_seconds = time.time() - train_start
    train_cpu_seconds = time.process_time() - train_cpu_start  # CPU time: robust on a shared box

    eval_start = time.time()
    try:
        per_seed, episodes_done = evaluate_policy(
            family, args, trainer.uncompiled_policy, eval_seeds(trial.seed, trial.eval_seeds),
            trial.eval_episodes, deadline=clock.at(REPORT_MARGIN_S), score_key=score_key)
    except torch.OutOfMemoryError as exc:
        raise TrialFailed(HYPERPARAMETER, f"CUDA out of memory in evaluation: {exc}") from exc
    eval_seconds = time.time() - eval_start
    scores = [s for s in per_seed if s is not None]
    if not scores:
        raise TrialFailed(HYPERPARAMETER, f"no evaluation episode finished before the cost cap "
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
                steps=int(trainer.global_step), truncated=truncated, stopped=stopped, checkpoint=str(checkpoint))


def _emit_progress(events: EventWriter, step: int, curve: EpisodeLog, clock: CostClock) -> int:
    """Emit a learning-curve point (once an episode has been logged); returns the step."""
    score = curve.take_window()
    if score is not None:
        events.emit("progress", step=int(step), score=score, elapsed=clock.elapsed())
    return step
