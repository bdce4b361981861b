"""GPUDrive: driving scenes from the Waymo Open Motion Dataset, two simulators.

- `simulator = "c"`: PufferLib's C port `puffer_gpudrive`, on CPU. Its C code opens
  `resources/gpudrive/binaries/map_%03d.bin` relative to the working directory, so the worker runs
  from `$SWEEPD_GPUDRIVE_DATA` (default `~/.cache/sweepd/gpudrive`), where
  `scripts/install_pufferlib.sh` puts the sample map shipped in PufferLib's sdist as `map_000.bin`
  (hence `num_maps = 1`). More maps: convert Waymo JSON scenes with PufferLib's
  `pufferlib.ocean.gpudrive.gpudrive.process_all_maps` into the same folder and raise `num_maps`.
- `simulator = "madrona"`: the GPU simulator (GPUDrive's Madrona build, Python package
  `pygpudrive`, which PufferLib's adapter imports), driven through PufferLib's
  `pufferlib.environments.gpudrive` adapter. Not on PyPI: see `MadronaUnavailableError`.
  UNTESTED here (no GPU, no Madrona build on the development box).
- `simulator = "auto"` (default): Madrona when the trial runs on CUDA and `pygpudrive` imports,
  else the C port. A sweep mixing CPU and GPU boxes should pin one simulator: scores differ.

Score: PufferLib's `score` log, the fraction of agents that reach their goal without colliding.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from sweepd.envs.family import TRAINER_SETTINGS, ConfigKeyError, EnvFamily

DATA_ENV = "SWEEPD_GPUDRIVE_DATA"
SIMULATORS = ("auto", "c", "madrona")
MADRONA_INSTALL = (
    "GPUDrive's Madrona simulator is not on PyPI. On a CUDA box: "
    "git clone --recursive https://github.com/Emerge-Lab/gpudrive && cd gpudrive && "
    "follow its README to build Madrona (CMake, CUDA 12) and `pip install -e .` into this "
    "environment; PufferLib's adapter imports it as `pygpudrive` and expects the checkout at "
    "../gpudrive from the working directory, with its scenes under biggest_file/. "
    "Or use simulator = \"c\" (PufferLib's CPU port)."
)


class MadronaUnavailableError(ImportError):
    """The Madrona GPUDrive simulator was asked for but cannot run here."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(f"{why}. {MADRONA_INSTALL}")


class GpuDriveMapsMissingError(FileNotFoundError):
    """The C port's map file is not where its C code will open it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"GPUDrive map {path} not found: run scripts/install_pufferlib.sh "
                         f"(or set {DATA_ENV} to a folder holding resources/gpudrive/binaries/)")


def data_root() -> Path:
    """The folder the C port runs from: it holds resources/gpudrive/binaries/map_000.bin."""
    return Path(os.environ.get(DATA_ENV, Path.home() / ".cache" / "sweepd" / "gpudrive"))


def madrona_available() -> bool:
    """Whether the Madrona simulator's Python package is importable."""
    return importlib.util.find_spec("pygpudrive") is not None


class GpuDriveFamily(EnvFamily):
    """GPUDrive on PufferLib's C port (CPU) or on Madrona (GPU)."""

    puffer_env = "puffer_gpudrive"
    score_key = "score"
    agents_key = "num_agents"
    eval_env: ClassVar[dict[str, Any]] = {"report_interval": 1}
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "vec": {"backend": "Serial", "num_envs": 1, "num_workers": "auto", "batch_size": "auto"},
        # One sample map; 64 controlled agents; scenes last 91 steps (9.1 s at 10 Hz).
        "env": {"num_agents": 64, "num_maps": 1, "resample_frequency": 91, "simulator": "auto"},
        "policy": {"input_size": 64, "hidden_size": 128},
        "train": {"device": "cpu", "bptt_horizon": 64, "batch_size": "auto", "minibatch_size": 2048,
                  "max_minibatch_size": 32768, **TRAINER_SETTINGS},
    }
    # The C port on CUDA: puffer_gpudrive.ini's agents, vec and batches over the one sample map.
    gpu_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "env": {"num_maps": 1, "resample_frequency": 91, "simulator": "auto"},
        "policy": {"input_size": 64, "hidden_size": 128},
        "train": TRAINER_SETTINGS,
    }
    madrona_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "vec": {"backend": "PufferEnv", "num_envs": 1},
        "env": {"num_worlds": 64, "max_cont_agents": 64, "k_unique_scenes": 1},
        "train": TRAINER_SETTINGS,
    }

    def resolve(self, config: Mapping[str, Mapping[str, Any]], *, device: str = "cpu",
                seed: int = 0, data_dir: str = "experiments") -> dict[str, Any]:
        """Settings for the simulator the trial gets (see the module docstring)."""
        config = copy.deepcopy(dict(config))
        env = dict(config.get("env") or {})
        simulator = env.pop("simulator", self.sizing(device)["env"]["simulator"])
        config["env"] = env
        if simulator not in SIMULATORS:
            raise ConfigKeyError(self.name, "env.simulator", str(simulator), list(SIMULATORS))
        if simulator == "auto":
            simulator = "madrona" if device.startswith("cuda") and madrona_available() else "c"
        if simulator == "madrona":
            args = MadronaGpuDrive(self.name).resolve(config, device=device, seed=seed, data_dir=data_dir)
        else:
            args = super().resolve(config, device=device, seed=seed, data_dir=data_dir)
            args["env"].pop("simulator", None)
        args["simulator"] = simulator
        return args

    def make_vecenv(self, args: Mapping[str, Any], *, seed: int, evaluation: bool = False,
                    episodes: int = 1) -> Any:
        """The C port run from the map folder, or Madrona through PufferLib's adapter."""
        if args["simulator"] == "madrona":
            return MadronaGpuDrive(self.name).make_vecenv(args, seed=seed, evaluation=evaluation,
                                                          episodes=episodes)
        root = data_root()
        map_file = root / "resources" / "gpudrive" / "binaries" / "map_000.bin"
        if not map_file.is_file():
            # The C code would dereference the missing map and crash the worker.
            raise GpuDriveMapsMissingError(map_file)
        # The C code opens maps by relative path at every scene resample, for the env's whole life:
        # the worker (one trial per process; its paths are absolute) stays in the map folder.
        os.chdir(root)
        return super().make_vecenv(args, seed=seed, evaluation=evaluation, episodes=episodes)


class MadronaGpuDrive(EnvFamily):
    """GPUDrive on the Madrona GPU simulator, through PufferLib's `environments.gpudrive` adapter.

    UNTESTED: written against PufferLib 3.0.0's adapter; needs a CUDA box with GPUDrive built.
    """

    puffer_env = "gpudrive"
    score_key = "goal_achieved"
    defaults = GpuDriveFamily.madrona_defaults

    def resolve(self, config: Mapping[str, Mapping[str, Any]], *, device: str = "cpu",
                seed: int = 0, data_dir: str = "experiments") -> dict[str, Any]:
        """PufferLib's gpudrive.ini settings, after checking Madrona can run."""
        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise MadronaUnavailableError(f"the Madrona simulator needs a CUDA device, trial has '{device}'")
        if not madrona_available():
            raise MadronaUnavailableError("Python package `pygpudrive` (GPUDrive/Madrona) is not installed")
        args = super().resolve(config, device=device, seed=seed, data_dir=data_dir)
        args["env"]["device"] = device
        return args

    def env_creator(self) -> Any:
        """PufferLib's Madrona adapter class."""
        from pufferlib.environments.gpudrive import environment

        return environment.PufferGPUDrive

    def make_vecenv(self, args: Mapping[str, Any], *, seed: int, evaluation: bool = False,
                    episodes: int = 1) -> Any:
        """Madrona steps every world on the GPU at once: one adapter is the whole vecenv."""
        creator = self.env_creator()
        kwargs = {k: v for k, v in args["env"].items() if k != "simulator"}
        return MadronaVecEnv(creator(**kwargs))


class MadronaVecEnv:
    """PufferLib's vector protocol (async_reset / recv / send) over PufferLib's Madrona adapter,
    which offers only batched reset/step. UNTESTED (needs a GPU and a GPUDrive build)."""

    def __init__(self, env: Any) -> None:
        import numpy as np
        import pufferlib.spaces

        self.driver_env = env
        self.num_agents = self.agents_per_batch = env.num_agents
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space = pufferlib.spaces.joint_space(self.single_observation_space, self.num_agents)
        self.action_space = pufferlib.spaces.joint_space(self.single_action_space, self.num_agents)
        self.agent_ids = np.arange(self.num_agents)
        self._result: tuple[Any, ...] = ()

    @property
    def num_envs(self) -> int:
        """Agents stepped per batch (PufferLib's vecenvs report agents here)."""
        return self.agents_per_batch

    def async_reset(self, seed: int | None = None) -> None:
        """Reset every world; the observations come with the next `recv`."""
        import numpy as np

        observations, infos = self.driver_env.reset(seed=seed)
        zeros = np.zeros(self.num_agents, dtype=np.float32)
        self._result = (observations, zeros, zeros.astype(bool), zeros.astype(bool), infos)

    def send(self, actions: Any) -> None:
        """Step every world with one action per agent."""
        self._result = self.driver_env.step(actions)

    def recv(self) -> tuple[Any, ...]:
        """(observations, rewards, terminals, truncations, infos, agent ids, mask)."""
        observations, rewards, terminals, truncations, infos = self._result
        mask = getattr(self.driver_env, "mask", None)
        return (observations, rewards, terminals, truncations, infos or [], self.agent_ids, mask)

    def reset(self, seed: int | None = None) -> tuple[Any, Any]:
        """Gymnasium-style reset, as PufferLib's vector `reset`."""
        self.async_reset(seed)
        return self._result[0], self._result[4]

    def step(self, actions: Any) -> tuple[Any, ...]:
        """Gymnasium-style step, as PufferLib's vector `step`."""
        self.send(actions)
        return self._result

    def close(self) -> None:
        """Release the simulator."""
        self.driver_env.close()


def family(name: str) -> GpuDriveFamily:
    """The gpudrive family registered as `name`."""
    return GpuDriveFamily(name)
