"""Statistics of the benchmarks' figures, with one percentile convention: nearest rank.

:func:`percentile` is the nearest-rank percentile: the smallest value with at
least ``q`` per cent of the values at or below it, i.e. the sorted values'
element ``ceil(q / 100 * n)`` (counting from 1). With fewer than 100 values the
p99 is therefore the largest. Medians are :func:`statistics.median`'s (the
mean of the two middle values of an even count). Every benchmark, table and
plot uses these; an empty list gives ``nan``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of ``values`` (nan if empty)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (nan if empty)."""
    listed = list(values)
    return statistics.median(listed) if listed else math.nan


def ms(values: Iterable[float]) -> list[float]:
    """Seconds to milliseconds."""
    return [v * 1000 for v in values]


def summary(values: Sequence[float], unit: str = "ms", digits: int = 2) -> str:
    """``median X, p99 Y, min Z, max W <unit>`` (``no values`` if empty)."""
    if not values:
        return "no values"
    shown = [f"{v:.{digits}f}" for v in (median(values), percentile(values, 99))]
    return (
        f"median {shown[0]}, p99 {shown[1]}, min {min(values):.{digits}f}, "
        f"max {max(values):.{digits}f} {unit}"
    )
