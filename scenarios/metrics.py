"""Small metric helpers shared by scorers, each defined the way its docs page states it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def precision_recall_f1(predicted: set[Any], truth: set[Any]) -> tuple[float, float, float]:
    """Set precision, recall and F1. An empty prediction of an empty truth is perfect (1, 1, 1)."""
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def mean(values: Iterable[float | None]) -> float:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def percentile(values: Iterable[float | None], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    vals = sorted(float(v) for v in values if v is not None)
    if not vals:
        return float("nan")
    pos = (len(vals) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
