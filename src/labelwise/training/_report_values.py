"""Reading the loosely typed metrics of a report: shared by the HTML page and the plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Above this many labels a per-cell count is unreadable in any figure size a browser shows comfortably.
CELL_TEXT_MAX_LABELS = 30


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def number(value: Any) -> float:
    """A float, or NaN for None and anything non-numeric: metrics can be undefined (no positives, one class)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value
