"""What every scenario provides, and the types that flow between agent, scorer and warehouse."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from scenario_pipeline.agents.base import Agent, Answer
from scenario_pipeline.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class Case:
    """One agent task. ``input`` is all the agent sees; ``truth`` is for the scorer only."""

    case_id: str
    index: int
    input: dict[str, Any]
    truth: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)  # for failure analysis: where a case sits


@dataclass
class CaseScore:
    """A scorer's verdict on one answer: per-case metric values, passed, and why not."""

    passed: bool
    metrics: dict[str, float]
    reason: str | None = None  # why it failed, in words; None when passed


@dataclass(frozen=True)
class Threshold:
    """A run-level metric's pass bar: ``value >= target`` (or ``<=`` when lower is better)."""

    target: float
    higher_is_better: bool = True
    min_effect: float = 0.0  # the smallest before/after difference worth a verdict

    def met(self, value: float | None) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return value >= self.target if self.higher_is_better else value <= self.target


Level = Literal["run", "case", "both"]
Source = Literal["scored", "measured", "claimed", "diagnostic", "operations"]


@dataclass(frozen=True)
class Metric:
    """One metric, declared once by its scenario; compare, gates, alerts and reports read it.

    ``level``: "case" (a key the scorer writes per case), "run" (a run value only), or "both" (the
    run value is the mean of the same-named case value, or of ``of``). ``compute`` replaces the
    mean for pooled or weighted run values. ``on_error``: the value an errored or timed-out case
    takes for this case key; None keeps what scoring an empty answer gives (a miss, by each
    scorer's rules). ``source``: "scored" (the harness scored the answer), "measured" (the harness
    measured the agent's resource use), "claimed" (the agent said so: shown, never thresholded),
    "diagnostic" / "operations" (shown, no verdict).
    """

    name: str
    higher_is_better: bool = True
    level: Level = "both"
    of: str | None = None
    compute: Callable[[list[dict[str, Any]]], float] | None = None
    on_error: float | None = None
    threshold: float | None = None
    min_effect: float = 0.0
    source: Source = "scored"

    @property
    def quality(self) -> bool:
        """Whether comparisons give this metric a verdict (improved/degraded)."""
        return self.source in ("scored", "measured")

    def as_threshold(self) -> Threshold | None:
        if self.threshold is None:
            return None
        return Threshold(self.threshold, self.higher_is_better, self.min_effect)


@runtime_checkable
class Scenario(Protocol):
    """The interface of a scenario module's registered class."""

    id: ClassVar[str]
    title: ClassVar[str]
    purpose: ClassVar[str]
    default_records: ClassVar[int]
    default_cases: ClassVar[int]
    max_cases: ClassVar[int]
    metrics: ClassVar[tuple[Metric, ...]]
    thresholds: ClassVar[dict[str, Threshold]]
    empty_answer: ClassVar[dict[str, Any]]

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec | None: ...

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]: ...

    def reference_agent(self, **params: Any) -> Agent: ...

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore: ...

    def aggregate(self, rows: list[dict[str, Any]]) -> dict[str, float]: ...
