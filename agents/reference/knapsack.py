"""Exact 0/1 knapsack over integer weights (tokens) and integer values (cents).

Used by the S01 scorer to compute the best value achievable within a token budget, and by the
S01 reference agent's ``optimal`` strategy. Dynamic programming over capacities: O(items x
capacity) with one numpy pass per item, exact because every number is an integer. It sits with the
reference agents' helpers (the agents layer, below the scenarios) so that both can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _table(weights: Sequence[int], values: Sequence[int], capacity: int, keep: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    best = np.zeros(capacity + 1, dtype=np.int64)  # best[c]: most value within c tokens
    taken: list[np.ndarray] = []
    for w, v in zip(weights, values, strict=True):
        w, v = int(w), int(v)
        if w < 0 or v < 0:
            raise ValueError("knapsack weights and values must be >= 0")
        if w > capacity:
            if keep:
                taken.append(np.zeros(capacity + 1, dtype=bool))
            continue
        candidate = best[: capacity + 1 - w] + v
        better = candidate > best[w:]
        if keep:
            row = np.zeros(capacity + 1, dtype=bool)
            row[w:] = better
            taken.append(row)
        best[w:] = np.where(better, candidate, best[w:])
    return best, taken


def best_value(weights: Sequence[int], values: Sequence[int], capacity: int) -> int:
    """The largest total value of a subset whose total weight is at most ``capacity``."""
    if capacity < 0:
        return 0
    best, _ = _table(weights, values, capacity, keep=False)
    return int(best[capacity])


def best_subset(weights: Sequence[int], values: Sequence[int], capacity: int) -> list[int]:
    """Indices (ascending) of one subset that attains :func:`best_value`."""
    if capacity < 0:
        return []
    _, taken = _table(weights, values, capacity, keep=True)
    chosen, c = [], capacity
    for i in range(len(weights) - 1, -1, -1):
        if taken[i][c]:
            chosen.append(i)
            c -= int(weights[i])
    return sorted(chosen)
