"""rarft.stats: estimators against hand-computed values, and pinned outputs (the same numbers, to the bit,
as before the helpers moved here from evaluate.py and tables.py: same formulas, same random draws)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rarft.stats import (
    average_at_k,
    bootstrap_ci,
    bootstrap_mean_ci,
    mean_pass_at_k,
    paired_difference,
    pass_at_k,
    rng_for,
)


def test_pass_at_k_hand_computed():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)      # pass@1 = c / n
    assert pass_at_k(32, 8, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 3, 2) == 1.0                     # fewer than k wrong samples: always a hit
    assert pass_at_k(10, 3, 10) == 1.0
    assert pass_at_k(10, 0, 10) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_average_and_mean_pass_at_k():
    rewards = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert average_at_k(rewards) == pytest.approx(3 / 12)
    # per problem pass@2: 1 - C(3,2)/C(4,2) = 0.5; 1 - C(2,2)/C(4,2) = 5/6; 0
    assert mean_pass_at_k(rewards, 2) == pytest.approx((0.5 + 5 / 6 + 0) / 3)
    assert mean_pass_at_k(rewards, 1) == pytest.approx(average_at_k(rewards))
    assert mean_pass_at_k(rewards, 4) == pytest.approx(2 / 3)


def test_bootstrap_ci_hand_computed_cases():
    assert bootstrap_ci([0.4] * 10, 500, 0.95) == (pytest.approx(0.4), pytest.approx(0.4))
    # two problems, scores 0 and 1: resampled means are 0, 0.5, 1 with prob 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1
    assert bootstrap_ci([0.0, 1.0], 4000, 0.95, seed=3) == (0.0, 1.0)
    # a 20% interval of the same: the 40% and 60% quantiles both fall in the 0.5 mass (25%..75%)
    assert bootstrap_ci([0.0, 1.0], 4000, 0.2, seed=3) == (0.5, 0.5)
    low, high = bootstrap_ci([0, 0, 0, 1, 1, 1, 1, 1], 2000, 0.95, seed=0)
    assert low < 5 / 8 < high and high - low < 0.8
    assert bootstrap_ci([0, 1, 1, 0, 1], 2000, 0.95, seed=7) == bootstrap_ci([0, 1, 1, 0, 1], 2000, 0.95, seed=7)


def test_paired_difference_hand_computed():
    a = {"b": {"p1": 1.0, "p2": 0.5, "p3": 0.0}}
    b = {"b": {"p1": 0.5, "p2": 0.5, "p3": 0.5, "p4": 1.0}}  # p4 unpaired: ignored
    (row,) = paired_difference(a, b, ["b"], 500, 0.95, np.random.default_rng(0))
    assert row["diff"] == pytest.approx(100 * (0.5 + 0.0 - 0.5) / 3)
    assert row["n_problems"] == 3


def test_outputs_are_pinned_to_the_bit():
    """Values computed with evaluate.py / tables.py before the move; == on floats, no tolerance."""
    assert bootstrap_ci([0, 1, 1, 0, 1, 0.5, 0.25, 1, 0, 0.75], 2000, 0.95, seed=11) == (0.2993750000000011, 0.8)
    rewards = [[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]]
    assert mean_pass_at_k(rewards, 2) == 0.8333333333333334 and average_at_k(rewards) == 0.6666666666666666
    assert pass_at_k(32, 5, 4) == 0.5119577308120133
    pa = {"x": {f"p{i}": (i * 7 % 5) / 4 for i in range(9)}, "y": {f"q{i}": (i * 3 % 4) / 3 for i in range(6)}}
    pb = {"x": {f"p{i}": (i * 5 % 3) / 2 for i in range(9)}, "y": {f"q{i}": (i % 2) for i in range(6)}}
    assert bootstrap_mean_ci(pa, ["x", "y"], 1000, 0.9, rng_for(3, "grpo", "none", "mean")) == (
        0.4861111111111111, 0.3055555555555556, 0.6527777777777777)
    rows = paired_difference(pa, pb, ["x", "y"], 1000, 0.95, rng_for(0, "RA-RFT vs GRPO"))
    assert rows == [
        {"benchmark": "x", "diff": -2.7777777777777777, "ci_low": -25.0, "ci_high": 22.22222222222222,
         "p_le_0": 0.634, "n_problems": 9},
        {"benchmark": "y", "diff": -1.850371707708594e-15, "ci_low": -33.33333333333333,
         "ci_high": 33.33333333333333, "p_le_0": 0.626, "n_problems": 6},
        {"benchmark": "mean", "diff": -1.3888888888888897, "ci_low": -20.833333333333332,
         "ci_high": 18.055555555555554, "p_le_0": 0.579, "n_problems": 15}]


def test_rng_for_depends_on_seed_and_every_label():
    draw = rng_for(0, "a", "b").integers(0, 2**32)
    assert draw == rng_for(0, "a", "b").integers(0, 2**32)
    assert draw != rng_for(1, "a", "b").integers(0, 2**32)
    assert draw != rng_for(0, "a", "c").integers(0, 2**32)
