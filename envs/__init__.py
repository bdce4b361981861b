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
- any other env name PufferLib's config files define (`puffer_pong`, `puffer_squared`, ...): the
                     generic family of envs/puffer.py, sized for CPU; the families above win a name
                     both define.

`names()` imports nothing heavy (the spec validator calls it: it lists PufferLib's ini files
without importing PufferLib); `get()` imports the family's module, and building the env imports
PufferLib.
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
        import difflib

        close = difflib.get_close_matches(self.name, self.known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        if len(self.known) > 20:  # PufferLib's configs name ~200 envs: `sweepd show` lists them
            return f"unknown env '{self.name}'{hint}; {len(self.known)} known, `sweepd show` lists them"
        return f"unknown env '{self.name}'{hint}; known: {', '.join(self.known)}"


def names() -> list[str]:
    """The registered env family names and PufferLib's config env names, sorted."""
    from sweepd import puffer_ini

    return sorted(set(_REGISTRY) | set(puffer_ini.env_names()))


def get(name: str) -> EnvFamily:
    """The env family registered as `name`, else the generic family of PufferLib env `name`;
    raises `UnknownEnvError` for any other name."""
    if name not in _REGISTRY:
        from sweepd import puffer_ini

        if puffer_ini.find_ini(name) is None:
            raise UnknownEnvError(name, names())
        from sweepd.envs.puffer import family

        return family(name)
    module_name, factory = _REGISTRY[name]
    module = importlib.import_module(f"sweepd.envs.{module_name}")
    return getattr(module, factory)(name)
