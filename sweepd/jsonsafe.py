"""JSON without NaN or Infinity: the one scrubber for everything sweepd writes as JSON.

JSON has no NaN; PostgreSQL's JSON columns refuse it (one NaN in a metric fails every heartbeat)
and browsers cannot parse it. Worker events, the agent's recorded events and the dashboard's API
all pass their values through `json_safe`.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, at any depth (dict keys as strings,
    tuples as lists, as JSON writes them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
