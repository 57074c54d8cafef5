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

from scenario_pipeline.scenarios.base import Metric
from scenario_pipeline.scenarios.declared import find
from scenario_pipeline.scenarios.registry import get_scenario

EPS = 1e-12


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    min_effect: float
    declared: bool  # the scenario declares the metric (scenarios/base.py Metric)
    quality: bool = True  # gets a verdict; claimed, diagnostic and operations metrics are shown without one


def declaration(scenario_id: str, name: str) -> Metric | None:
    """A per-case key's (or pass_rate's) declaration in the scenario's metric list, if any."""
    try:
        metrics = get_scenario(scenario_id).metrics
    except Exception:  # noqa: BLE001 - a scenario not registered here (renamed, another code version)
        return None
    return find(metrics, name, "case") or find(metrics, name, "run")


def metric_spec(name: str, scenario_id: str) -> MetricSpec:
    """Direction, minimum effect and whether it gets a verdict, from the declaration alone. A
    metric no scenario declares (data from other code) is shown without a verdict: its direction
    is never guessed from its name."""
    decl = declaration(scenario_id, name)
    if decl is None:
        return MetricSpec(name, True, 0.0, False, quality=False)
    return MetricSpec(name, decl.higher_is_better, decl.min_effect, True, quality=decl.quality)


def higher_is_better(scenario_id: str, name: str) -> bool | None:
    decl = declaration(scenario_id, name)
    return None if decl is None else decl.higher_is_better


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
