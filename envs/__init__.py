"""Environment families, found by name: `sweepd.envs.get("snake")`, `sweepd.envs.names()`.

A family (see `sweepd.envs.family.EnvFamily`) knows how to turn a trial config
`{"train": {...}, "env": {...}, "policy": {...}}` into PufferLib's settings for one environment,
and how to build the vectorized env and the policy from them. Families:

- `snake`            PufferLib's C snake (`puffer_snake`), 256 snakes in one arena on CPU.
- `puffer_breakout`  PufferLib's C breakout (`puffer_breakout`).
- `breakout`, `pong`, `beam_rider`, `enduro`, `qbert`, `seaquest`, `space_invaders`
                     the DQN-7 Atari games through ale-py, PufferLib's CNN + LSTM policy.
- `gpudrive`         PufferLib's C port `puffer_gpudrive` on CPU with the sample map, or the Madrona
                     simulator where its package is importable.

`names()` imports nothing heavy (the spec validator calls it); `get()` imports the family's module,
which imports PufferLib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweepd.envs.family import EnvFamily

# name -> (module under sweepd.envs, factory in it taking the name)
_REGISTRY: dict[str, tuple[str, str]] = {
    "snake": ("snake", "family"),
    "puffer_breakout": ("puffer_breakout", "family"),
    "gpudrive": ("gpudrive", "family"),
    **{game: ("atari", "family") for game in (
        "breakout", "pong", "beam_rider", "enduro", "qbert", "seaquest", "space_invaders")},
}


class UnknownEnvError(KeyError):
    """No env family is registered under `name`; `known` lists the ones that are."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name, self.known = name, known
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown env '{self.name}'; known: {', '.join(self.known)}"


def names() -> list[str]:
    """The registered env family names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> EnvFamily:
    """The env family registered as `name`; raises `UnknownEnvError` for any other name."""
    if name not in _REGISTRY:
        raise UnknownEnvError(name, names())
    module_name, factory = _REGISTRY[name]
    module = importlib.import_module(f"sweepd.envs.{module_name}")
    return getattr(module, factory)(name)
