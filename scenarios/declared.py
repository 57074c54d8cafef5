"""Declared metrics and the one aggregator every scenario uses.

A scenario lists its metrics once (``Metric`` in scenarios/base.py): direction, how an errored
case counts, how the run value is reduced, threshold and minimum effect. From that list come the
run's metrics (``aggregate_rows``), its thresholds, the per-case values of an errored case
(``error_metrics``) and, in compare/, each metric's direction and verdict rule. No metric's
direction is ever guessed from its name.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scenario_pipeline.scenarios.base import Case, Metric, Threshold
from scenario_pipeline.scenarios.metrics import mean, percentile


def _pass_rate(rows: list[dict[str, Any]]) -> float:
    return mean(1.0 if r["passed"] else 0.0 for r in rows)


def _latency(q: float) -> Any:
    return lambda rows: percentile((r.get("latency_ms") for r in rows), q)


STANDARD: tuple[Metric, ...] = (
    Metric("pass_rate", level="run", compute=_pass_rate),
    Metric("latency_p50_ms", higher_is_better=False, level="run", compute=_latency(50), source="operations"),
    Metric("latency_p95_ms", higher_is_better=False, level="run", compute=_latency(95), source="operations"),
    Metric("latency_p99_ms", higher_is_better=False, level="run", compute=_latency(99), source="operations"),
)
# Per-case columns the harness keeps for every scenario (case_results); usage is what the agent claims.
OPERATIONS: tuple[Metric, ...] = (
    Metric("latency_ms", higher_is_better=False, level="case", source="operations"),
    Metric("cost_usd", higher_is_better=False, level="case", source="claimed"),
    Metric("input_tokens", higher_is_better=False, level="case", source="claimed"),
    Metric("output_tokens", higher_is_better=False, level="case", source="claimed"),
)


class DeclaredMetrics:
    """Base of every scenario class: thresholds from the declarations, and the one aggregator."""

    metrics: ClassVar[tuple[Metric, ...]] = ()
    thresholds: ClassVar[dict[str, Threshold]] = {}
    empty_answer: ClassVar[dict[str, Any]] = {}  # what "answered nothing" looks like in this scenario's schema

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = tuple(cls.__dict__.get("metrics", ()))
        names = [m.name for m in own]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TypeError(f"{cls.__name__} declares the metric(s) {dupes} twice")
        cls.metrics = own + tuple(m for m in STANDARD if m.name not in names)
        cls.thresholds = {m.name: th for m in cls.metrics if m.level != "case" and (th := m.as_threshold()) is not None}

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        return aggregate_rows(self.metrics, rows)


def aggregate_rows(metrics: tuple[Metric, ...], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Run values from case rows (each with a ``metrics`` dict). Every case counts: an errored
    case already carries its miss values (``error_metrics``). A measured metric missing for a
    case the agent answered (the harness could not measure it, e.g. an HTTP agent) makes the run
    value None: unmeasured, so never thresholded."""
    out: dict[str, float] = {}
    for m in metrics:
        if m.level == "case":
            continue
        if m.compute is not None:
            out[m.name] = m.compute(rows)
            continue
        key = m.of or m.name
        values = [r["metrics"].get(key) for r in rows]
        if m.source == "measured" and any(v is None for v in values):
            out[m.name] = float("nan")
            continue
        out[m.name] = mean(values)
    return out


def error_metrics(scenario: Any, case: Case, context: dict[str, Any]) -> dict[str, float]:
    """The per-case values of a case whose agent errored, timed out or answered junk: what
    answering nothing scores, then each metric's declared ``on_error`` value."""
    try:
        metrics = dict(scenario.score(case, dict(scenario.empty_answer), context).metrics)
    except Exception:  # noqa: BLE001 - a scorer that cannot score the empty answer: declared values only
        metrics = {}
    for m in scenario.metrics:
        if m.level != "run" and m.on_error is not None:
            metrics[m.of or m.name] = m.on_error
    return metrics


def find(metrics: tuple[Metric, ...], name: str, level: str) -> Metric | None:
    """The declaration of a run metric (level "run") or a per-case key (level "case")."""
    for m in metrics:
        if level == "run" and m.level in ("run", "both") and m.name == name:
            return m
        if level == "case" and m.level in ("case", "both") and (m.of or m.name) == name:
            return m
    for m in OPERATIONS if level == "case" else ():
        if m.name == name:
            return m
    return None
