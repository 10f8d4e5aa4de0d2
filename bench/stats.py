"""The one percentile every measurement here reports (query, API and Kafka latencies), and the one way a stage run in
rounds picks the round it reports (`middle`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `q` of the values at or below it,
    that is the value of rank ceil(q * n) (1-based) in ascending order, and the smallest value for q = 0.

    `q` is a fraction (0.5 for p50, 0.99 for p99). No interpolation: the answer is always one of the
    values measured. For 1..100, p50 is 50 and p99 is 99; for 1..10, p50 is 5 and p99 is 10.
    Raises ValueError for no values (a measurement without samples is no measurement) or q outside [0, 1].
    """
    if not 0.0 <= q <= 1.0:
        msg = f"percentile q must be a fraction in [0, 1], not {q}"
        raise ValueError(msg)
    ordered = sorted(values)
    if not ordered:
        msg = "percentile of no values"
        raise ValueError(msg)
    rank = math.ceil(round(q * len(ordered), 9))  # round: 0.29 * 100 is 28.999999999999996 in binary floating point
    return ordered[max(rank, 1) - 1]


def middle(items: Sequence[T], key: Callable[[T], float], *, lower: bool = False) -> T:
    """The item with the median `key` (a round, a run): itself measured, not an average of several. Of an even number,
    the upper of the two middle ones, or with `lower` the lower."""
    return sorted(items, key=key)[(len(items) - 1) // 2 if lower else len(items) // 2]
