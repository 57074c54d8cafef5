"""Choosing which items go into a token-budgeted context: the three strategies S01 names.

Each item has a value (priority, an integer) and a weight (its tokens). All three return the
indices of the chosen items:

- ``greedy``: items by value, highest first, until the next one does not fit (what "sort by
  priority and cut at the budget" does);
- ``knapsack``: items by value per token, skipping those that no longer fit, or the single most
  valuable item if that alone is worth more (the classic 1/2-approximation of 0/1 knapsack);
- ``optimal``: an exact 0/1 knapsack optimum by dynamic programming.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scenario_pipeline.agents.reference.knapsack import best_subset

Packer = Callable[[Sequence[int], Sequence[int], int], list[int]]


def greedy(weights: Sequence[int], values: Sequence[int], capacity: int) -> list[int]:
    chosen, used = [], 0
    for i in sorted(range(len(values)), key=lambda i: (-values[i], i)):
        if used + weights[i] > capacity:
            break
        chosen.append(i)
        used += weights[i]
    return chosen


def density(weights: Sequence[int], values: Sequence[int], capacity: int) -> list[int]:
    chosen, used = [], 0
    for i in sorted(range(len(values)), key=lambda i: (-values[i] / max(weights[i], 1), i)):
        if used + weights[i] <= capacity:
            chosen.append(i)
            used += weights[i]
    fitting = [i for i in range(len(values)) if weights[i] <= capacity]
    if fitting:
        top = max(fitting, key=lambda i: (values[i], -i))
        if values[top] > sum(values[i] for i in chosen):
            return [top]
    return chosen


def optimal(weights: Sequence[int], values: Sequence[int], capacity: int) -> list[int]:
    return best_subset(weights, values, capacity)


STRATEGIES: dict[str, Packer] = {"greedy": greedy, "knapsack": density, "optimal": optimal}
