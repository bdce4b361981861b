"""What an env family is: PufferLib's own settings for one env, CPU-sized defaults over them, and
how to build the vectorized env and the policy for a trial.

Settings are resolved in three layers, later wins:
1. PufferLib's config files for the env (`pufferlib/config/default.ini` + the env's ini), read by
   PufferLib's own `pufferl.load_config`, so every key PufferLib's trainer reads has its default;
2. the family's sizing for the trial's device (`sizing`): `defaults` on CPU (sized for a 2-core
   box: one in-process env, small batches), `gpu_defaults` on CUDA (PufferLib's own ini values for
   vec/env counts, batch_size, minibatch_size and bptt_horizon, which are sized for GPU boxes);
3. the trial config `{"train": {...}, "env": {...}, "policy": {...}}` (optionally `"vec"`).

Trial keys are checked: a `train` key PufferLib's trainer does not know, or an `env` key the env's
constructor does not take, raises `ConfigKeyError` before anything is built. One `policy` key is
sweepd's own: `rnn = false` drops PufferLib's LSTM wrapper. The LSTM's sizes follow the policy's
`hidden_size` (PufferLib's policies decode the LSTM output with layers of that width).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sweepd.settings import device_class

if TYPE_CHECKING:  # torch is imported where policies are built: the spec validator builds families
    import torch

TRIAL_SECTIONS = ("train", "env", "policy")  # what a sweep's params and defaults may set
SECTIONS = (*TRIAL_SECTIONS, "vec")
# Keys sweepd sets itself from the trial (`resolve`), never from the config: a trial config, and a
# sweep read from PufferLib's configs, must not carry them.
MANAGED_TRAIN_KEYS = ("device", "seed", "data_dir", "env")
# Train settings every sizing carries: sweepd saves the final policy itself (no checkpoints) and
# never compiles (a trial's minutes would go to the compiler).
TRAINER_SETTINGS: dict[str, Any] = {"checkpoint_interval": 10**9, "compile": False}


class ConfigKeyError(KeyError):
    """A trial config names a key that the env family or PufferLib does not take."""

    def __init__(self, family: str, section: str, key: str, known: list[str]) -> None:
        self.family, self.section, self.key, self.known = family, section, key, known
        super().__init__(key)

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"env '{self.family}': unknown {self.section} key '{self.key}' (known: {known})"


class UnknownMetricError(ValueError):
    """`[sweep] metric` names a key the env family's episode logs do not carry."""

    def __init__(self, family: str, metric: str, known: list[str]) -> None:
        self.family, self.metric, self.known = family, metric, known
        super().__init__(f"metric '{metric}' is not logged by env '{family}' (its episode logs carry: "
                         f"{', '.join(known) or 'nothing'}): set [sweep] metric to one of them "
                         f"(as '<key>' or 'environment/<key>'), or 'score' for the env's own score")


class PolicyNeedsRnnError(ValueError):
    """`rnn = false` for a PufferLib policy that can only run inside its LSTM wrapper."""

    def __init__(self, family: str, policy: str) -> None:
        self.family, self.policy = family, policy
        super().__init__(f"env '{family}': policy {policy} has no forward_eval of its own, so it needs "
                         f"its LSTM: drop policy.rnn = false")


@contextlib.contextmanager
def _bare_argv() -> Iterator[None]:
    """PufferLib's load_config parses sys.argv; give it none of the worker's arguments."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "sweepd"]
    try:
        yield
    finally:
        sys.argv = saved


def import_pufferl() -> Any:
    """`pufferlib.pufferl`, imported without the process-wide side effects sweepd cannot live with.

    Importing it installs a SIGINT handler that exits with status 0 (an interrupted trial would
    look like a success) and turns every RuntimeWarning in the process into an exception (numpy's
    warnings in any library, tests included). Both are undone; its rich traceback hook stays.
    """
    import signal
    import warnings

    sigint = signal.getsignal(signal.SIGINT)
    from pufferlib import pufferl

    signal.signal(signal.SIGINT, sigint)
    warnings.filters[:] = [f for f in warnings.filters
                           if not (f[0] == "error" and f[2] is RuntimeWarning and f[1] is None)]
    warnings._filters_mutated()  # type: ignore[attr-defined]  # the stdlib's cache invalidation
    return pufferl


def puffer_config(puffer_env: str) -> dict[str, Any]:
    """PufferLib's resolved config for `puffer_env` (default.ini + the env's ini), as a plain dict."""
    pufferl = import_pufferl()
    with _bare_argv():
        args = pufferl.load_config(puffer_env)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in args.items()}


def _overlay(args: dict[str, Any], layer: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in layer.items():
        args.setdefault(section, {}).update(values)


def _accepted_kwargs(fn: Callable[..., Any]) -> list[str] | None:
    """Keyword names `fn` takes, or None when it takes **kwargs (anything goes)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in ("self", "buf", "seed", "render_mode")]


class EnvFamily:
    """One environment family backed by PufferLib.

    Subclasses set `puffer_env` (the name PufferLib's config files know), `defaults` (CPU sizing),
    `gpu_defaults` (CUDA sizing), `score_key` (the key of PufferLib's episode logs that is the
    episodic score) and may override `env_creator`, `make_vecenv` and `make_policy`.
    """

    puffer_env: str = ""
    score_key: str = "score"
    # The keys its episode logs carry (PufferLib's `environment/<key>`), where known before any
    # training: `[sweep] metric` is checked against them at launch; None: checked in the first trial.
    metric_keys: ClassVar[tuple[str, ...] | None] = None
    # The [env] key counting agents in one env copy, for envs that step many (snake's arena of
    # snakes): a batch is copies x agents x bptt_horizon, which the budget probe must know.
    agents_key: ClassVar[str | None] = None
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    gpu_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {"train": TRAINER_SETTINGS}
    # Env settings for evaluation only: C envs log episode stats every `report_interval` steps;
    # evaluation wants them as soon as episodes end.
    eval_env: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- the score ------------------------------------------------------------------------------

    def metric_key(self, metric: str) -> str:
        """The episode-log key a trial is scored by: `[sweep] metric` without PufferLib's
        `environment/` prefix, where the bare default "score" means the family's own score key;
        raises `UnknownMetricError` for a key the family declares it never logs."""
        key = self.score_key if metric == "score" else metric.removeprefix("environment/")
        if self.metric_keys is not None and key not in self.metric_keys:
            raise UnknownMetricError(self.name, metric, list(self.metric_keys))
        return key

    # -- settings ---------------------------------------------------------------------------------

    def sizing(self, device: str) -> Mapping[str, Mapping[str, Any]]:
        """The family's defaults for a trial on `device` ("cpu", "cuda", "cuda:1"): `gpu_defaults`
        on CUDA, else `defaults`."""
        return self.gpu_defaults if device_class(device) == "cuda" else self.defaults

    def resolve(self, config: Mapping[str, Mapping[str, Any]], *, device: str = "cpu",
                seed: int = 0, data_dir: str = "experiments") -> dict[str, Any]:
        """PufferLib-shaped settings (base keys + train/env/vec/policy/rnn) for one trial."""
        args = puffer_config(self.puffer_env)
        for section in (*SECTIONS, "rnn"):  # an empty ini section leaves no key behind
            args.setdefault(section, {})
        _overlay(args, copy.deepcopy(dict(self.sizing(device))))
        self._check_keys(config, args)
        for section in SECTIONS:
            values = dict(config.get(section) or {})
            if section == "policy":
                self._apply_rnn(args, values)
            args.setdefault(section, {}).update(values)
        train = args["train"]
        train.update(device=device, seed=seed, data_dir=data_dir, env=self.puffer_env)
        train["use_rnn"] = args.get("rnn_name") is not None
        if args.get("rnn_name") is not None and "hidden_size" in args["policy"]:
            # The LSTM reads the policy's encoding and its output goes to the policy's decoder.
            size = args["policy"]["hidden_size"]
            args.setdefault("rnn", {}).update(input_size=size, hidden_size=size)
        args["vec"]["seed"] = seed
        return args

    def _apply_rnn(self, args: dict[str, Any], policy: dict[str, Any]) -> None:
        if "rnn" in policy and not policy.pop("rnn"):
            args["rnn_name"] = None

    def _check_keys(self, config: Mapping[str, Mapping[str, Any]], args: dict[str, Any]) -> None:
        for section in config:
            if section not in SECTIONS:
                raise ConfigKeyError(self.name, "config", section, list(SECTIONS))
        train_known = sorted(k for k in args["train"] if k not in MANAGED_TRAIN_KEYS)
        for key in config.get("train") or {}:
            if key not in train_known:
                raise ConfigKeyError(self.name, "train", key, train_known)
        env_known = _accepted_kwargs(self.env_creator())
        if env_known is not None:
            for key in config.get("env") or {}:
                if key not in env_known and key not in self.defaults.get("env", {}) \
                        and key not in self.gpu_defaults.get("env", {}):
                    raise ConfigKeyError(self.name, "env", key, sorted(env_known))

    # -- construction -----------------------------------------------------------------------------

    def env_creator(self) -> Callable[..., Any]:
        """The callable that makes one (possibly many-agent) env from the `env` settings."""
        import pufferlib.ocean

        return pufferlib.ocean.env_creator(self.puffer_env)

    def env_kwargs(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for `env_creator()` from the resolved settings."""
        return dict(args["env"])

    def make_vecenv(self, args: Mapping[str, Any], *, seed: int, evaluation: bool = False,
                    episodes: int = 1) -> Any:
        """The vectorized env for training, or with `evaluation` one to play `episodes` episodes
        with the final policy: the same env settings, stepped in-process."""
        import pufferlib.vector

        kwargs = self.env_kwargs(args)
        if evaluation:
            kwargs.update(self.eval_env)
            vec = {"backend": "Serial", "num_envs": self.eval_num_envs(args, episodes)}
        else:
            vec = dict(args["vec"])
        vec["seed"] = seed
        return pufferlib.vector.make(self.env_creator(), env_kwargs=kwargs, **vec)

    def eval_num_envs(self, args: Mapping[str, Any], episodes: int) -> int:
        """Envs stepped together in evaluation: one, for C envs that hold many agents."""
        return 1

    def make_policy(self, args: Mapping[str, Any], vecenv: Any) -> torch.nn.Module:
        """PufferLib's policy (wrapped in its LSTM unless `rnn = false`) on the trial's device."""
        pufferl = import_pufferl()
        if args.get("rnn_name") is None:
            module = "pufferlib.ocean" if args["package"] == "ocean" else f"pufferlib.environments.{args['package']}"
            policy_cls = getattr(importlib.import_module(module).torch, args["policy_name"])
            if not hasattr(policy_cls, "forward_eval"):
                # PufferLib's trainer steps envs with forward_eval, which some policies get only
                # from the LSTM wrapper.
                raise PolicyNeedsRnnError(self.name, args["policy_name"])
        return pufferl.load_policy(args, vecenv)
