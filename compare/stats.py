"""Paired statistics for comparing two runs on the same cases.

- ``paired_bootstrap``: resample cases with replacement; the 2.5th and 97.5th percentiles of the
  resampled mean difference give the 95% interval (percentile bootstrap, Efron & Tibshirani).
- ``mcnemar_exact``: pass/fail per case; only discordant cases count; two-sided exact binomial.
- ``wilcoxon_signed_rank``: continuous per-case values; zero differences dropped (Wilcoxon's
  convention); exact null distribution when there are no ties and at most 50 non-zero
  differences, otherwise the normal approximation with tie and continuity corrections.
- ``holm`` / ``benjamini_hochberg``: adjust p-values across the metrics of one comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXACT_MAX_N = 50


@dataclass(frozen=True)
class TestResult:
    test: str
    statistic: float
    p_value: float
    n: int  # observations the test used (discordant pairs, non-zero differences)


def mcnemar_exact(before: np.ndarray, after: np.ndarray) -> TestResult:
    """Two-sided exact McNemar test on paired booleans: p = min(1, 2 * P[Bin(b + c, 1/2) <= min(b, c)])."""
    before = np.asarray(before, dtype=bool)
    after = np.asarray(after, dtype=bool)
    b = int(np.sum(before & ~after))  # passed before, fails after
    c = int(np.sum(~before & after))  # failed before, passes after
    n = b + c
    if n == 0:
        return TestResult("mcnemar-exact", 0.0, 1.0, 0)
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return TestResult("mcnemar-exact", float(b), min(1.0, 2.0 * tail), n)


def _ranks(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Average ranks (1-based) of values, and whether any ties occurred."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    i, ties = 0, False
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        ties = ties or j > i
        i = j + 1
    return ranks, ties


def _exact_signed_rank_cdf(n: int, w: int) -> float:
    """P[W+ <= w] under the null for n untied ranks 1..n: count sign patterns by subset sums."""
    total = n * (n + 1) // 2
    counts = [0] * (total + 1)  # counts[s]: sign patterns whose positive ranks sum to s (exact integers)
    counts[0] = 1
    for r in range(1, n + 1):
        for s in range(total, r - 1, -1):
            counts[s] += counts[s - r]
    return sum(counts[: w + 1]) / 2**n


def wilcoxon_signed_rank(diffs: np.ndarray) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of paired differences (after - before) against zero."""
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0.0]
    n = len(d)
    if n == 0:
        return TestResult("wilcoxon", 0.0, 1.0, 0)
    ranks, ties = _ranks(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    w = min(w_plus, w_minus)
    if not ties and n <= EXACT_MAX_N:
        p = min(1.0, 2.0 * _exact_signed_rank_cdf(n, int(w)))
        return TestResult("wilcoxon-exact", w_plus, p, n)
    _, counts = np.unique(np.abs(d), return_counts=True)
    mean = n * (n + 1) / 4.0
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float(np.sum(counts**3 - counts)) / 48.0
    if var <= 0:
        return TestResult("wilcoxon-normal", w_plus, 1.0, n)
    z = (abs(w_plus - mean) - 0.5) / math.sqrt(var)  # continuity correction
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return TestResult("wilcoxon-normal", w_plus, min(1.0, p), n)


def paired_bootstrap(
    columns: list[np.ndarray], n_boot: int = 10_000, seed: int = 0, level: float = 0.95, chunk: int = 500
) -> list[tuple[float, float]]:
    """Percentile intervals of the mean of each column over the same resampled cases.

    All columns share the resampled case indices, so intervals of related quantities (a metric's
    difference, each run's mean) come from one bootstrap. A column with NaNs is resampled over its
    non-NaN cases only (the pairs that exist for that metric).
    """
    rng = np.random.default_rng(seed)
    if not columns:
        return []
    n = len(columns[0])
    if n == 0:
        return [(math.nan, math.nan) for _ in columns]
    valid = [~np.isnan(c) for c in columns]
    filled = [np.where(v, c, 0.0) for c, v in zip(columns, valid, strict=True)]
    means: list[list[np.ndarray]] = [[] for _ in columns]
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        for j, (c, v) in enumerate(zip(filled, valid, strict=True)):
            counts = v[idx].sum(axis=1)
            sums = c[idx].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                means[j].append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
        done += k
    alpha = (1.0 - level) / 2.0
    out = []
    for j in range(len(columns)):
        m = np.concatenate(means[j])
        m = m[~np.isnan(m)]
        out.append((float(np.quantile(m, alpha)), float(np.quantile(m, 1.0 - alpha))) if len(m) else (math.nan, math.nan))
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate across the metrics."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjustment: controls the false discovery rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}
