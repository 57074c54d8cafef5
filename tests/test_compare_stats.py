"""The paired statistics, on inputs small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scenario_pipeline.compare.stats import benjamini_hochberg, holm, mcnemar_exact, paired_bootstrap, wilcoxon_signed_rank
from scenario_pipeline.compare.verdict import MetricSpec, verdict


def test_mcnemar_exact_by_hand() -> None:
    before = np.array([True] * 5 + [False] * 5)
    # b = 1 (pass -> fail), c = 4 (fail -> pass): p = 2 * P[Bin(5, .5) <= 1] = 2 * (1 + 5) / 32 = 0.375
    after = np.array([False, True, True, True, True, True, True, True, True, False])
    r = mcnemar_exact(before, after)
    assert (r.statistic, r.n) == (1.0, 5) and r.p_value == pytest.approx(0.375)
    assert mcnemar_exact(before, before).p_value == 1.0  # no discordant pairs
    # b = 0, c = 10: p = 2 / 1024
    assert mcnemar_exact(np.zeros(10, bool), np.ones(10, bool)).p_value == pytest.approx(2 / 1024)
    # b = c = 3: the tail reaches past the middle and caps at 1
    assert mcnemar_exact(np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1], bool)).p_value == 1.0


def test_wilcoxon_exact_and_normal_by_hand() -> None:
    # Differences 1..10, all positive: W- = 0; P[W <= 0] = 1/1024; two-sided p = 2/1024.
    r = wilcoxon_signed_rank(np.arange(1, 11, dtype=float))
    assert r.test == "wilcoxon-exact" and r.statistic == 55.0 and r.p_value == pytest.approx(2 / 1024)
    # Differences +1, +2, -3: ranks 1, 2, 3; W+ = 3, W- = 3; P[W <= 3] = subsets of {1,2,3} summing to <= 3:
    # {}, {1}, {2}, {3}, {1,2} = 5 of 8; p = min(1, 2 * 5/8) = 1.
    assert wilcoxon_signed_rank(np.array([1.0, 2.0, -3.0])).p_value == 1.0
    # Zeros are dropped (Wilcoxon's convention): +0.5, +0.8, 0, 0 -> n = 2, p = 2 * 1/4 = 0.5.
    r = wilcoxon_signed_rank(np.array([0.5, 0.8, 0.0, 0.0]))
    assert (r.n, r.p_value) == (2, 0.5)
    # Ties -> normal approximation: four differences of +1: ranks 2.5 each, W+ = 10, mean 5,
    # var = 4*5*9/24 - (4^3 - 4)/48 = 7.5 - 1.25 = 6.25, z = (10 - 5 - 0.5)/2.5 = 1.8
    r = wilcoxon_signed_rank(np.ones(4))
    assert r.test == "wilcoxon-normal" and r.p_value == pytest.approx(math.erfc(1.8 / math.sqrt(2)))
    assert wilcoxon_signed_rank(np.zeros(5)).p_value == 1.0


def test_against_scipy_on_random_data() -> None:
    """A second opinion from scipy (a dependency: S13's reference agent uses it)."""
    ss = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (5, 12, 30, 50):
        d = rng.normal(0.2, 1.0, n)
        assert wilcoxon_signed_rank(d).p_value == pytest.approx(ss.wilcoxon(d).pvalue, rel=1e-9)
    b, a = rng.random(60) < 0.5, rng.random(60) < 0.65
    assert mcnemar_exact(b, a).p_value == pytest.approx(ss.binomtest(int((b & ~a).sum()), int((b ^ a).sum())).pvalue)


def test_multiplicity_corrections_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    # Holm: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    # BH: p * 4 / rank: 0.01*4/1 = 0.04, 0.03*4/2 = 0.06, 0.04*4/3 = 0.0533, 0.2*4/4 = 0.2; step-up minimum -> 0.0533 for ranks 2 and 3
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_bootstrap_of_constant_differences_is_exact_and_nan_pairs_are_skipped() -> None:
    d = np.full(25, 0.3)
    assert paired_bootstrap([d])[0] == pytest.approx((0.3, 0.3))
    # A NaN (a case without the metric) is left out: the remaining values are all 0.5.
    assert paired_bootstrap([np.array([0.5, np.nan, 0.5, 0.5])])[0] == pytest.approx((0.5, 0.5))
    # Same seed, same interval: comparisons are reproducible.
    x = np.random.default_rng(1).normal(size=40)
    assert paired_bootstrap([x], seed=9) == paired_bootstrap([x], seed=9)


@pytest.mark.parametrize(
    "n, diff, ci, p, expected",
    [
        (100, 0.15, (0.10, 0.20), 1e-6, "improved"),  # significant, >= min_effect 0.01
        (100, -0.15, (-0.20, -0.10), 1e-6, "degraded"),
        (100, 0.0, (0.0, 0.0), 1.0, "unchanged"),  # all equal
        (100, 0.004, (0.002, 0.006), 1e-4, "unchanged"),  # significant but inside +/- 0.01: too small to matter
        (3, 0.46, (0.1, 0.8), 0.25, "inconclusive"),  # small sample: not significant, cannot rule an effect out
        (200, 0.02, (-0.001, 0.04), 0.03, "inconclusive"),  # p small but the interval touches zero
        (0, math.nan, (math.nan, math.nan), 1.0, "inconclusive"),
    ],
)
def test_verdict_rule(n: int, diff: float, ci: tuple[float, float], p: float, expected: str) -> None:
    assert verdict(n, diff, ci, p, MetricSpec("recall", True, 0.01, True)) == expected


def test_lower_is_better_flips_the_verdict() -> None:
    spec = MetricSpec("bytes_read_share", False, 0.001, True)
    assert verdict(50, -0.01, (-0.015, -0.005), 1e-5, spec) == "improved"
    assert verdict(50, 0.01, (0.005, 0.015), 1e-5, spec) == "degraded"
