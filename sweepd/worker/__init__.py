"""One trial in a subprocess: train, evaluate, report (`python -m sweepd.worker`).

The worker reads one `TrialPayload` on stdin and answers with protocol events (sweepd/protocol.py).
Its modules, in the order a trial meets them:
- clock.py       the cost clock: wall seconds from the worker process's start, against the cap
- puffer.py      trainer "puffer": PufferLib PPO on an env family, stopped in time to evaluate
- evaluation.py  scoring the final policy: episodes x seeds, and what evaluation will cost
- command.py     trainer "command": a user's command run, its reports relayed, stopped at the cap
- stopping.py    the agent's stop-early signal (SIGUSR1 to this process): a flag both trainers read
- __main__.py    the entry point: read the payload, run its trainer, report a failure

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
- Stopped early by the agent (stopping.py): the puffer trainer stops before its next epoch and
  evaluates as above; the command's group gets SIGTERM at once, SIGKILL 0.75 s later. The result
  says `truncated: true, stopped: true` and the `steps` trained.

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
"""
