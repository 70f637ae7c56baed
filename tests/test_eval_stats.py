from __future__ import annotations

import math

import numpy as np
import pytest

from orquestra.evals.cases import Counts
from orquestra.evals.stats import Interval, bootstrap_mean, bootstrap_pooled_f1, bootstrap_rate

VALUES = [0.2, 0.9, 0.4, 1.0, 0.0, 0.7, 0.6, 0.8, 0.5, 0.3]
COUNTS = [Counts(3, 1, 0), Counts(0, 2, 2), Counts(5, 0, 1), Counts(1, 1, 1), Counts(4, 0, 0), Counts(2, 3, 1)]


def test_interval_prints_three_decimals():
    assert str(Interval(0.73444, 0.7011, 0.76649)) == "0.734 [0.701, 0.766]"
    assert str(Interval(math.nan, math.nan, math.nan)) == "nan [nan, nan]"


def test_mean_interval_contains_the_estimate():
    interval = bootstrap_mean(VALUES)
    assert interval.estimate == pytest.approx(0.54)  # 5.4 / 10
    assert interval.low < interval.estimate < interval.high
    assert 0.0 <= interval.low and interval.high <= 1.0


def test_mean_interval_is_deterministic_for_a_seed():
    assert bootstrap_mean(VALUES, seed=7) == bootstrap_mean(VALUES, seed=7)
    assert bootstrap_mean(VALUES, seed=7) != bootstrap_mean(VALUES, seed=8)


def test_more_rounds_narrow_nothing_but_noise():
    # The interval is a property of the data, not of the number of rounds: two large runs agree closely.
    a, b = bootstrap_mean(VALUES, rounds=20000, seed=1), bootstrap_mean(VALUES, rounds=20000, seed=2)
    assert a.low == pytest.approx(b.low, abs=0.02) and a.high == pytest.approx(b.high, abs=0.02)


def test_degenerate_intervals():
    assert bootstrap_mean([0.25] * 12) == Interval(0.25, 0.25, 0.25)
    assert bootstrap_mean([0.1] * 7).low == bootstrap_mean([0.1] * 7).estimate == bootstrap_mean([0.1] * 7).high
    assert bootstrap_mean([0.8]) == Interval(0.8, 0.8, 0.8)
    empty = bootstrap_mean([])
    assert math.isnan(empty.estimate) and math.isnan(empty.low) and math.isnan(empty.high)


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds"):
        bootstrap_mean(VALUES, rounds=0)


def test_rate_is_the_share_of_true_flags():
    interval = bootstrap_rate([True, False, True, True])
    assert interval.estimate == 0.75  # 3 / 4
    assert 0.0 <= interval.low <= 0.75 <= interval.high <= 1.0
    assert bootstrap_rate([True] * 5) == Interval(1.0, 1.0, 1.0)


def test_pooled_f1_differs_from_the_mean_of_per_case_f1():
    small, large = Counts(tp=1, fp=1, fn=0), Counts(tp=8, fp=0, fn=0)
    # Per case: 2*1 / (2*1 + 1 + 0) = 2/3 and 2*8 / (2*8) = 1 -> mean (2/3 + 1) / 2 = 5/6 = 0.833.
    assert bootstrap_mean([small.f1, large.f1]).estimate == pytest.approx(5 / 6)
    # Pooled: TP 9, FP 1, FN 0 -> 18 / 19 = 0.947: the larger case weighs more.
    assert bootstrap_pooled_f1([small, large]).estimate == pytest.approx(18 / 19)


def test_pooled_interval_contains_the_estimate_and_is_deterministic():
    interval = bootstrap_pooled_f1(COUNTS)
    total = sum(COUNTS, Counts())  # TP 15, FP 7, FN 5 -> 30 / 42
    assert interval.estimate == pytest.approx(30 / 42)
    assert interval.low < interval.estimate < interval.high
    assert bootstrap_pooled_f1(COUNTS, seed=3) == bootstrap_pooled_f1(COUNTS, seed=3)
    assert total.f1 == interval.estimate


def test_pooled_interval_matches_a_plain_loop_over_the_same_resamples():
    rounds, seed = 300, 5
    picks = np.random.default_rng(seed).integers(0, len(COUNTS), size=(rounds, len(COUNTS)))
    replicates = [sum((COUNTS[i] for i in row), Counts()).f1 for row in picks]
    low, high = np.percentile(replicates, [2.5, 97.5])
    interval = bootstrap_pooled_f1(COUNTS, rounds=rounds, seed=seed)
    assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)


def test_pooled_degenerate_cases():
    assert bootstrap_pooled_f1([Counts(2, 1, 1)]) == Interval(2 / 3, 2 / 3, 2 / 3)  # 4 / (4 + 1 + 1)
    # Nothing to find and nothing predicted in any resample: F1 1, as Counts.f1 defines it.
    assert bootstrap_pooled_f1([Counts(), Counts()]) == Interval(1.0, 1.0, 1.0)
    # Identical cases: every resample sums to a multiple of the same counts, so the F1 never moves.
    same = bootstrap_pooled_f1([Counts(3, 1, 2)] * 5)
    assert same.low == pytest.approx(same.estimate) and same.high == pytest.approx(same.estimate)
    assert math.isnan(bootstrap_pooled_f1([]).estimate)
