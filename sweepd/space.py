"""Parameter spaces: how a searched value maps to the searcher's "basic" space and back.

Every parameter is searched in a basic space where a Gaussian step of a given radius means about
the same thing for every parameter:

- ``log``:    basic = log10(value) / scale                 (scale 1: one unit is a decade)
- ``logit``:  basic = log10(value / (1 - value)) / scale   (scale 1)
- ``linear``: basic = value / scale                        (scale (max - min) / 4)
- ``pow2``:   integer powers of two in [min, max], searched in log2 space; basic =
              log10(value) / scale (scale 1), so one doubling is 0.301 units, like ``log``.
- ``choice``: one of a listed ``values`` (strings, numbers or booleans; a boolean param is
              ``values = [false, true]``); basic = index of the value / scale (scale 1 / 0.6), so
              neighbouring values lie ``CHOICE_SPACING`` = 0.6 units apart.

The default linear scale makes a linear range span four basic units, about as many as a typical
log range spans decades, so one search radius suits both. ``scale`` overrides it.

Integer parameters (and ``pow2``) round in parameter space; the searcher works on continuous basic
coordinates and snaps them, so a step of under half an integer stays put but larger steps reach the
neighbouring integers.

Choices are an ordinal embedding: one coordinate per param, the value's index in the list times the
spacing, snapped to the nearest index like an integer. The GP, the Gaussian steps around front
points, the mirroring at the box walls and the snapping all work on it unchanged. The basic box is
one cell of width ``CHOICE_SPACING`` per value ([-0.3, 0.3] is the first value, and so on), so a
uniform draw in the box (the random searcher) picks every value equally often.

The spacing, 0.6 basic units, is chosen against the searcher's step (CARBS' initial radius 0.3,
candidates at 1/4, 1/2, 1 and 2 radii): a step changes the value once it passes half the spacing, so
at the initial radius an inner value moves to a neighbour with probability 2(1 - Phi(1)) = 0.32 (an
end value, with one neighbour, 0.16), at twice the radius 0.62 (0.31), and the small refinement
steps (1/4, 1/2 of the radius) almost never change it, so the fine search of the numeric params
around a front point keeps its choices. Two values away takes 1.5 spacings, 3 standard deviations
at the initial radius: far values are reached as the radius widens (the one-fifth rule, up to 4x)
or when the GP predicts them better. A spacing of 0.3 would flip a choice with most large steps
(the search would not keep a good value); 1.2 would almost never leave the centre's value. One
choice step is about two doublings of a pow2 param (0.6 units).

The tradeoff of an ordinal embedding: list order is distance. Neighbours in the list are one step
apart and the GP assumes they behave alike, the ends of a long list are far apart. For two values
this is exactly one-hot (up to scale); for three it is close (the ends are two steps apart, one-hot
would put them as close as neighbours), and from four values on the order matters: list ordered
values in their order (sizes, depths, "small", "medium", "large"), and put the likeliest
alternatives next to the centre. One coordinate per param keeps the GP's dimension, the locality
weight and the step shaping as they are; a one-hot embedding would add a dimension per value and
need the candidates to move along the simplex.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SPACES = ("log", "linear", "logit", "pow2", "choice")
CHOICE_SPACING = 0.6  # basic units between neighbouring values of a choice (see the module docstring)
_LOG10_2 = math.log10(2.0)

Value = float | int | str | bool  # a param's value: numbers for ranges, any of these for a choice


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


def _kind(value: Any) -> str | None:
    """What kind of choice a value is: "boolean", "number" (ints and floats mix), "string"; None: none."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of one kind: True is not 1 (Python says it is), 1 is 1.0 (a JSON round trip may
    write either)."""
    return _kind(a) == _kind(b) and a == b


def choice_error(values: Any, center: Any = None) -> str | None:
    """Why ``values`` (and ``center``, when given) cannot make a choice param, in one phrase; None if
    they can. Shared by `Param` and the sweep file reader, which adds the file and line."""
    if not isinstance(values, list | tuple) or not values:
        return f"values must be a list such as [\"relu\", \"tanh\"], got {values!r}"
    kinds = [_kind(v) for v in values]
    if None in kinds:
        bad = values[kinds.index(None)]
        return f"values must be strings, numbers or booleans, got {bad!r}"
    if len(set(kinds)) > 1:
        return (f"values mix {' and '.join(k + 's' for k in sorted(set(kinds)))} "
                f"({', '.join(map(as_text, values))}): list one kind")
    if kinds[0] == "number" and not all(math.isfinite(v) for v in values):
        return f"values must be finite numbers, got {', '.join(map(as_text, values))}"
    for i, v in enumerate(values):
        if any(_same_value(v, w) for w in values[:i]):
            return f"values list {as_text(v)} twice"
    if len(values) < 2:
        return f"values must list at least 2 values to choose from, got {as_text(values[0])} alone"
    if center is not None and not any(_same_value(center, v) for v in values):
        return f"center {as_text(center)} is not one of the values ({', '.join(map(as_text, values))})"
    return None


def as_text(value: Any) -> str:
    """A value as a sweep file writes it, unquoted: booleans true/false, floats exactly (repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    ``center`` is where the search starts (the user's default); ``integer`` rounds values in
    parameter space. ``pow2`` parameters are always integral powers of two. ``scale`` divides the
    basic coordinate (None: the space's default, see the module docstring).

    A ``choice`` param (build it with `Param.choice`) holds its listed ``values``; its ``min`` and
    ``max`` are the first and last index (0 and len - 1) and its ``center`` is a listed value.
    """

    name: str
    space: str
    min: float
    max: float
    center: Value
    integer: bool = False
    scale: float | None = None
    values: tuple[Value, ...] = ()

    @classmethod
    def choice(cls, name: str, values: Sequence[Value], center: Value | None = None,
               scale: float | None = None) -> Param:
        """A choice among ``values`` (at least two distinct ones, of one kind), centred on ``center``
        (default: the first value)."""
        problem = choice_error(values, center)
        if problem:
            raise ValueError(f"{name}: {problem}")
        return cls(name, "choice", 0, len(values) - 1, values[0] if center is None else center,
                   scale=scale, values=tuple(values))

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"{self.name}: space must be one of {', '.join(SPACES)}, not {self.space!r}")
        if self.space == "choice" or self.values:
            self._check_choice()
            return
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

    def _check_choice(self) -> None:
        if self.space != "choice":
            raise ValueError(f"{self.name}: values are for space \"choice\", not {self.space!r}")
        # A frozen dataclass: a list read back from JSON becomes the tuple that keeps the param hashable.
        object.__setattr__(self, "values", tuple(self.values))
        problem = choice_error(self.values, self.center)
        if problem:
            raise ValueError(f"{self.name}: {problem}")
        if (self.min, self.max) != (0, len(self.values) - 1):
            raise ValueError(f"{self.name}: a choice's min and max are its first and last index, "
                             f"0 and {len(self.values) - 1}")
        if self.integer:
            raise ValueError(f"{self.name}: a choice cannot be integer (its values are what they are)")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{self.name}: scale must be positive")

    @property
    def is_choice(self) -> bool:
        """Whether the param chooses among listed values."""
        return self.space == "choice"

    @property
    def basic_scale(self) -> float:
        """Parameter-space units per basic unit (see the module docstring); for a choice, index steps."""
        if self.scale is not None:
            return float(self.scale)
        if self.space == "linear":
            return (self.max - self.min) / 4.0
        if self.space == "choice":
            return 1.0 / CHOICE_SPACING
        return 1.0

    @property
    def is_integer(self) -> bool:
        """Whether values are integers (pow2 ones always are, for exponents >= 0; choices are not)."""
        return self.integer or self.space == "pow2"

    def index(self, value: Any) -> int:
        """The position of ``value`` in a choice's list; a number not listed takes the nearest listed
        one (first on ties). ValueError for anything else not listed."""
        for i, v in enumerate(self.values):
            if _same_value(value, v):
                return i
        if _kind(value) == "number" and _kind(self.values[0]) == "number" and math.isfinite(value):
            return min(range(len(self.values)), key=lambda i: abs(float(self.values[i]) - float(value)))
        raise ValueError(f"{self.name}: {as_text(value)} is not one of {', '.join(map(as_text, self.values))}")

    def _warp(self, v: float) -> float:
        return warp(self.space, v)

    def _unwarp(self, w: float) -> float:
        if self.space in ("log", "pow2"):
            return 10.0**w
        if self.space == "logit":
            return 1.0 / (1.0 + 10.0 ** (-w))
        return w

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of this param's values as it stands: listed (a choice), else a
        number in [min, max] (not rounded: 3.5 is no value of an integer param, nor is True of any)."""
        if self.space == "choice":
            return any(_same_value(value, v) for v in self.values)
        return _kind(value) == "number" and self.min <= value <= self.max

    def clip(self, value: float) -> float:
        """``value`` clipped to [min, max] (a numeric param's)."""
        return min(max(float(value), self.min), self.max)

    def round(self, value: Any) -> Value:
        """The nearest valid value: clipped, and rounded in parameter space for integer params; for a
        choice, the listed value (see `index`)."""
        if self.space == "choice":
            return self.values[self.index(value)]
        v = self.clip(value)
        if self.space == "pow2":
            k = min(max(round(math.log2(v)), math.ceil(math.log2(self.min))), math.floor(math.log2(self.max)))
            return 2**k if k >= 0 else 2.0**k
        if self.integer:
            return int(min(max(round(v), math.ceil(self.min)), math.floor(self.max)))
        return v

    def to_basic(self, value: Any) -> float:
        """Basic coordinate of ``value`` (clipped to the box first, so it is always finite)."""
        if self.space == "choice":
            return self.index(value) / self.basic_scale
        return self._warp(self.clip(value)) / self.basic_scale

    def from_basic(self, x: float) -> Value:
        """The valid parameter value nearest to basic coordinate ``x`` (clipped and rounded)."""
        lo, hi = self.basic_bounds
        if self.space == "choice":
            return self.values[int(min(max(round(float(x) * self.basic_scale), 0), len(self.values) - 1))]
        return self.round(self._unwarp(min(max(float(x), lo), hi) * self.basic_scale))

    def snap_basic(self, xs: np.ndarray) -> np.ndarray:
        """Vectorized ``to_basic(from_basic(x))`` for in-box ``xs``: a no-op for continuous params."""
        if self.space == "choice":
            return np.clip(np.round(xs * self.basic_scale), 0, len(self.values) - 1) / self.basic_scale
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
        """The box [min, max] in basic coordinates; for a choice, half a spacing past the first and
        last index, so each value owns a cell of the same width."""
        if self.space == "choice":
            return -0.5 / self.basic_scale, (len(self.values) - 0.5) / self.basic_scale
        return self._warp(self.min) / self.basic_scale, self._warp(self.max) / self.basic_scale


def to_basic(params: Sequence[Param], values: Mapping[str, Any]) -> np.ndarray:
    """Basic coordinates of a config; a parameter missing from ``values`` takes its center."""
    return np.array([p.to_basic(values.get(p.name, p.center)) for p in params], dtype=np.float64)


def from_basic(params: Sequence[Param], x: np.ndarray) -> dict[str, Value]:
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
