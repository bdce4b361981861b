"""Parameter spaces: how a searched value maps to the searcher's "basic" space and back.

Every parameter is searched in a basic space where a Gaussian step of a given radius means about
the same thing for every parameter:

- ``log``:    basic = log10(value) / scale                 (scale 1: one unit is a decade)
- ``logit``:  basic = log10(value / (1 - value)) / scale   (scale 1)
- ``linear``: basic = value / scale                        (scale (max - min) / 4)
- ``pow2``:   integer powers of two in [min, max], searched in log2 space; basic =
              log10(value) / scale (scale 1), so one doubling is 0.301 units, like ``log``.

The default linear scale makes a linear range span four basic units, about as many as a typical
log range spans decades, so one search radius suits both. ``scale`` overrides it.

Integer parameters (and ``pow2``) round in parameter space; the searcher works on continuous basic
coordinates and snaps them, so a step of under half an integer stays put but larger steps reach the
neighbouring integers.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPACES = ("log", "linear", "logit", "pow2")
_LOG10_2 = math.log10(2.0)



def warp(space: str, value: float) -> float:
    """``value`` in the space's warped units (the basic space before scaling): log10 for log and
    pow2, log10-odds for logit, the value itself for linear."""
    if space in ("log", "pow2"):
        return math.log10(value)
    if space == "logit":
        return math.log10(value / (1.0 - value))
    return value


def middle(space: str, low: float, high: float) -> float:
    """The middle of [low, high] in the space's warp: the geometric mean for log and pow2, the
    middle in log-odds for logit, else (or for bounds the warp cannot take) the arithmetic mean."""
    if space in ("log", "pow2") and low > 0:
        return math.sqrt(low * high)
    if space == "logit" and low > 0 and high < 1:
        z = (math.log(low / (1 - low)) + math.log(high / (1 - high))) / 2
        return 1 / (1 + math.exp(-z))
    return (low + high) / 2


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    ``center`` is where the search starts (the user's default); ``integer`` rounds values in
    parameter space. ``pow2`` parameters are always integral powers of two. ``scale`` divides the
    basic coordinate (None: the space's default, see the module docstring).
    """

    name: str
    space: str
    min: float
    max: float
    center: float
    integer: bool = False
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"{self.name}: space must be one of {', '.join(SPACES)}, not {self.space!r}")
        lo, hi, c = float(self.min), float(self.max), float(self.center)
        if not all(math.isfinite(v) for v in (lo, hi, c)):
            raise ValueError(f"{self.name}: min, max and center must be finite")
        if lo >= hi:
            raise ValueError(f"{self.name}: min ({lo}) must be below max ({hi})")
        if not lo <= c <= hi:
            raise ValueError(f"{self.name}: center ({c}) must lie in [{lo}, {hi}]")
        if self.space in ("log", "pow2") and lo <= 0:
            raise ValueError(f"{self.name}: a {self.space} space needs min > 0")
        if self.space == "logit":
            if lo <= 0 or hi >= 1:
                raise ValueError(f"{self.name}: a logit space needs 0 < min < max < 1")
            if self.integer:
                raise ValueError(f"{self.name}: a logit space cannot be integer")
        if self.space == "pow2" and math.ceil(math.log2(lo)) > math.floor(math.log2(hi)):
            raise ValueError(f"{self.name}: no power of two lies in [{lo}, {hi}]")
        if self.integer and self.space != "pow2" and math.ceil(lo) > math.floor(hi):
            raise ValueError(f"{self.name}: no integer lies in [{lo}, {hi}]")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{self.name}: scale must be positive")

    @property
    def basic_scale(self) -> float:
        """Parameter-space units per basic unit (see the module docstring)."""
        if self.scale is not None:
            return float(self.scale)
        if self.space == "linear":
            return (self.max - self.min) / 4.0
        return 1.0

    @property
    def is_integer(self) -> bool:
        """Whether values are integers (pow2 ones always are, for exponents >= 0)."""
        return self.integer or self.space == "pow2"

    def _warp(self, v: float) -> float:
        return warp(self.space, v)

    def _unwarp(self, w: float) -> float:
        if self.space in ("log", "pow2"):
            return 10.0**w
        if self.space == "logit":
            return 1.0 / (1.0 + 10.0 ** (-w))
        return w

    def clip(self, value: float) -> float:
        """``value`` clipped to [min, max]."""
        return min(max(float(value), self.min), self.max)

    def round(self, value: float) -> float | int:
        """The nearest valid value: clipped, and rounded in parameter space for integer params."""
        v = self.clip(value)
        if self.space == "pow2":
            k = min(max(round(math.log2(v)), math.ceil(math.log2(self.min))), math.floor(math.log2(self.max)))
            return 2**k if k >= 0 else 2.0**k
        if self.integer:
            return int(min(max(round(v), math.ceil(self.min)), math.floor(self.max)))
        return v

    def to_basic(self, value: float) -> float:
        """Basic coordinate of ``value`` (clipped to the box first, so it is always finite)."""
        return self._warp(self.clip(value)) / self.basic_scale

    def from_basic(self, x: float) -> float | int:
        """The valid parameter value nearest to basic coordinate ``x`` (clipped and rounded)."""
        lo, hi = self.basic_bounds
        return self.round(self._unwarp(min(max(float(x), lo), hi) * self.basic_scale))

    def snap_basic(self, xs: np.ndarray) -> np.ndarray:
        """Vectorized ``to_basic(from_basic(x))`` for in-box ``xs``: a no-op for continuous params."""
        if not self.is_integer:
            return xs
        w = xs * self.basic_scale
        if self.space == "pow2":
            lo, hi = math.ceil(math.log2(self.min)), math.floor(math.log2(self.max))
            return np.clip(np.round(w / _LOG10_2), lo, hi) * _LOG10_2 / self.basic_scale
        v = 10.0**w if self.space == "log" else w
        v = np.clip(np.round(v), math.ceil(self.min), math.floor(self.max))
        return (np.log10(v) if self.space == "log" else v) / self.basic_scale

    @property
    def basic_bounds(self) -> tuple[float, float]:
        """The box [min, max] in basic coordinates."""
        return self._warp(self.min) / self.basic_scale, self._warp(self.max) / self.basic_scale


def to_basic(params: Sequence[Param], values: Mapping[str, Any]) -> np.ndarray:
    """Basic coordinates of a config; a parameter missing from ``values`` takes its center."""
    return np.array([p.to_basic(values.get(p.name, p.center)) for p in params], dtype=np.float64)


def from_basic(params: Sequence[Param], x: np.ndarray) -> dict[str, float | int]:
    """The config (valid, rounded values) nearest to basic coordinates ``x``."""
    return {p.name: p.from_basic(float(v)) for p, v in zip(params, x, strict=True)}


def snap(params: Sequence[Param], xs: np.ndarray) -> np.ndarray:
    """Basic coordinates of the valid configs nearest to each row of ``xs``: what would really run."""
    out = np.array(xs, dtype=np.float64, copy=True)
    for j, p in enumerate(params):
        lo, hi = p.basic_bounds
        out[:, j] = p.snap_basic(np.clip(out[:, j], lo, hi))
    return out


def bounds(params: Sequence[Param]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper basic bounds of the box, as arrays."""
    lo, hi = zip(*(p.basic_bounds for p in params), strict=True)
    return np.array(lo), np.array(hi)
