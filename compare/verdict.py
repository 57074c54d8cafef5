"""Which way is better, how much change matters, and the verdict rule.

A verdict needs both significance and size:

- **improved / degraded**: the multiplicity-adjusted p-value is below alpha, the 95% bootstrap
  interval of the difference excludes zero, and the estimated difference is at least the
  scenario's ``min_effect`` (Threshold.min_effect);
- **unchanged**: the whole interval lies within ``[-min_effect, +min_effect]``: whatever changed is
  too small to matter (an all-equal pair gives the interval [0, 0]);
- **inconclusive**: anything else: the data can neither show a change that matters nor rule one out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EPS = 1e-12
# Direction for per-case metrics a scenario declares no threshold for: these names are costs.
LOWER_IS_BETTER = ("latency", "cost", "tokens", "bytes", "partitions", "error", "time", "seconds", "_ms")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    min_effect: float
    declared: bool  # the scenario declares a Threshold (direction and min_effect are its, not defaults)


def default_direction(name: str) -> bool:
    return not any(k in name.lower() for k in LOWER_IS_BETTER)


def metric_spec(name: str, declared_rows: dict[str, dict[str, Any]], scenario_id: str) -> MetricSpec:
    """From the run's scenario_metrics row when it declares a threshold, else the scenario registry, else defaults."""
    row = declared_rows.get(name)
    if row and row.get("higher_is_better") is not None:
        me = row.get("min_effect")
        if me is None:
            me = _registry_min_effect(scenario_id, name)
        return MetricSpec(name, bool(row["higher_is_better"]), float(me or 0.0), True)
    th = _registry_threshold(scenario_id, name)
    if th is not None:
        return MetricSpec(name, th.higher_is_better, th.min_effect, True)
    return MetricSpec(name, default_direction(name), 0.0, False)


def _registry_threshold(scenario_id: str, name: str):  # noqa: ANN202 - Threshold | None
    try:
        from scenario_pipeline.scenarios.registry import get_scenario

        return get_scenario(scenario_id).thresholds.get(name)
    except Exception:  # noqa: BLE001 - a scenario not registered here (renamed, another code version)
        return None


def _registry_min_effect(scenario_id: str, name: str) -> float | None:
    th = _registry_threshold(scenario_id, name)
    return th.min_effect if th is not None else None


def verdict(n: int, diff: float, ci: tuple[float, float], p_adjusted: float, spec: MetricSpec, alpha: float = 0.05) -> str:
    if n == 0 or diff is None or math.isnan(diff) or math.isnan(ci[0]) or math.isnan(ci[1]):
        return "inconclusive"
    lo, hi = ci
    significant = p_adjusted < alpha and (lo > EPS or hi < -EPS)
    if significant and abs(diff) >= spec.min_effect - EPS:
        good = diff if spec.higher_is_better else -diff
        return "improved" if good > 0 else "degraded"
    if lo >= -spec.min_effect - EPS and hi <= spec.min_effect + EPS:
        return "unchanged"
    return "inconclusive"
