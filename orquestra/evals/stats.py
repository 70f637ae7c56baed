"""Bootstrap 95% intervals for eval scores: per-case means, rates, and pooled F1.

Cases are resampled with replacement; the statistic is recomputed on every resample, all resamples at once with
numpy, and the 2.5th and 97.5th percentiles bound the interval. A fixed seed makes a report reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from orquestra.evals.cases import Counts

_PERCENTILES = (2.5, 97.5)


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% bootstrap interval; all three are NaN when there was no data."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _resamples(size: int, rounds: int, seed: int) -> NDArray[np.int64]:
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    rng = np.random.default_rng(seed)
    return rng.integers(0, size, size=(rounds, size), dtype=np.int64)


def _interval(estimate: float, replicates: NDArray[np.float64]) -> Interval:
    low, high = np.percentile(replicates, _PERCENTILES)
    return Interval(estimate=estimate, low=float(low), high=float(high))


def bootstrap_mean(values: Sequence[float], *, rounds: int = 2000, seed: int = 0) -> Interval:
    """The mean of per-case values with its percentile bootstrap 95% interval.

    Args:
        values: One value per case.
        rounds: How many resamples to draw.
        seed: Seed for `numpy.random.default_rng`; the same seed gives the same interval.

    Returns:
        The mean and its interval; NaN throughout for no values, and low = high = the value for a single one.

    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    estimate = float(data.mean())
    if data.size == 1:
        return Interval(estimate, estimate, estimate)
    replicates = data[_resamples(data.size, rounds, seed)].mean(axis=1)
    return _interval(estimate, replicates)


def bootstrap_rate(flags: Sequence[bool], *, rounds: int = 2000, seed: int = 0) -> Interval:
    """The share of true flags (for example valid plans) with its bootstrap 95% interval; see `bootstrap_mean`."""
    return bootstrap_mean([1.0 if flag else 0.0 for flag in flags], rounds=rounds, seed=seed)


def _f1(tp: NDArray[np.int64], fp: NDArray[np.int64], fn: NDArray[np.int64]) -> NDArray[np.float64]:
    denominator = 2 * tp + fp + fn
    # Nothing to find and nothing predicted is a perfect score, as in `Counts.f1`.
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 1.0, 2 * tp / safe)


def bootstrap_pooled_f1(counts: Sequence[Counts], *, rounds: int = 2000, seed: int = 0) -> Interval:
    """Pooled F1 (TP, FP and FN summed over cases) with its bootstrap 95% interval.

    Args:
        counts: One `Counts` per case.
        rounds: How many resamples of the cases to draw.
        seed: Seed for `numpy.random.default_rng`; the same seed gives the same interval.

    Returns:
        The F1 of the summed counts, and the percentiles of the F1 of the summed counts of each resample of
        cases; NaN throughout for no cases, and low = high = the estimate for a single one.

    """
    if not counts:
        return Interval(math.nan, math.nan, math.nan)
    estimate = sum(counts, Counts()).f1
    if len(counts) == 1:
        return Interval(estimate, estimate, estimate)
    table = np.array([(c.tp, c.fp, c.fn) for c in counts], dtype=np.int64)
    picks = _resamples(len(counts), rounds, seed)
    tp, fp, fn = (table[:, column][picks].sum(axis=1) for column in range(3))
    return _interval(estimate, _f1(tp, fp, fn))
