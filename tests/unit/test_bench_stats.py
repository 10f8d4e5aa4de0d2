"""The one percentile of the measurements (`bench.stats.percentile`): nearest rank, values worked out by hand.

Nearest rank: the value of rank ceil(q * n) (1-based) in ascending order; the smallest for q = 0."""

from __future__ import annotations

import pytest

from bench.stats import percentile


def test_the_textbook_example():
    # n = 5: p30 -> rank ceil(1.5) = 2; p40 -> ceil(2.0) = 2; p50 -> ceil(2.5) = 3; p100 -> 5
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [percentile(values, q) for q in (0.3, 0.4, 0.5, 1.0)] == [20.0, 20.0, 35.0, 50.0]


def test_one_to_a_hundred():
    # n = 100: p50 -> rank 50; p99 -> rank 99; p100 -> rank 100; p0 -> the smallest
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.99, 1.0, 0.0)] == [50.0, 99.0, 100.0, 1.0]


def test_one_to_ten():
    # n = 10: p50 -> rank 5; p90 -> rank 9; p99 -> rank ceil(9.9) = 10
    values = [float(n) for n in range(1, 11)]
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99)] == [5.0, 9.0, 10.0]


def test_a_fraction_that_binary_floating_point_misses_by_a_hair():
    # 0.29 * 100 is 28.999999999999996 and 0.07 * 100 is 7.000000000000001: still ranks 29 and 7
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.29), percentile(values, 0.07)) == (29.0, 7.0)


def test_order_of_the_input_does_not_matter_and_the_answer_is_a_measured_value():
    # n = 4: p50 -> rank 2 of [1, 2, 3, 4] = 2 (no interpolation to 2.5); p99 -> rank ceil(3.96) = 4
    values = [3.0, 1.0, 4.0, 2.0]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (2.0, 4.0)
    assert percentile(iter(values), 0.75) == 3.0  # rank 3; any iterable


def test_one_value_is_every_percentile():
    assert {percentile([7.5], q) for q in (0.0, 0.01, 0.5, 0.99, 1.0)} == {7.5}


def test_no_values_or_a_fraction_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        percentile([1.0], 99)


def test_the_middle_round_is_one_of_the_rounds_upper_or_lower_of_an_even_number():
    from bench.stats import middle

    rounds = [{"ratio": 0.7, "n": 1}, {"ratio": 0.9, "n": 2}, {"ratio": 0.8, "n": 3}]
    assert middle(rounds, key=lambda one: one["ratio"]) is rounds[2]
    assert middle(rounds[:2], key=lambda one: one["ratio"]) is rounds[1]
    assert middle(rounds[:2], key=lambda one: one["ratio"], lower=True) is rounds[0]
    assert middle([5.0], key=float) == 5.0
