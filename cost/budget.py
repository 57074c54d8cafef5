"""The budget guard: submit another shard only if the estimate, with every shard in flight and the
new one priced at the dearest cost per case seen so far, stays within ``--max-cost-usd``.

Until the first shard of an attempt reports, nothing is known about a shard's price, so only one
shard is in flight (a pilot). A shard already running is never cancelled: it finishes and is
checkpointed, so nothing paid for is thrown away and its accounting is kept.
"""

from __future__ import annotations

import math

from scenario_pipeline.errors import UsageError


def check_max_cost(value: object) -> float | None:
    """A valid ``--max-cost-usd``: None, or a positive finite number of dollars."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"max cost must be a positive number of US dollars, got {value!r}")
    return float(value)


class BudgetGuard:
    def __init__(self, max_cost_usd: float | None, spent_usd: float = 0.0, per_case_usd: float | None = None) -> None:
        self.max_cost_usd = check_max_cost(max_cost_usd)
        self.spent_usd = spent_usd
        # The dearest cost per case of a shard seen so far (earlier attempts of the run included).
        self.per_case_usd = per_case_usd
        self.refused = False  # a shard was held back: the run stops at its budget

    @property
    def limited(self) -> bool:
        return self.max_cost_usd is not None

    def add(self, cost_usd: float) -> None:
        """Cost outside the shards (generation, reading checkpoints)."""
        self.spent_usd += cost_usd

    def shard_done(self, cost_usd: float, cases: int) -> None:
        self.spent_usd += cost_usd
        if cases:
            self.per_case_usd = max(self.per_case_usd or 0.0, cost_usd / cases)

    def projected(self, in_flight_cases: int, next_cases: int) -> float:
        return self.spent_usd + (in_flight_cases + next_cases) * (self.per_case_usd or 0.0)

    def allow(self, in_flight_cases: int, next_cases: int) -> bool:
        """May a shard of ``next_cases`` cases be submitted now? Records a refusal."""
        if self.max_cost_usd is None:
            return True
        if self.per_case_usd is None:
            ok = in_flight_cases == 0 and self.spent_usd < self.max_cost_usd  # the pilot shard
        else:
            ok = self.projected(in_flight_cases, next_cases) <= self.max_cost_usd
        if not ok and in_flight_cases == 0:
            self.refused = True  # nothing will report back to change the answer
        return ok

    def remaining_estimate(self, cases_left: int) -> float | None:
        """About what the cases not run would cost, at the dearest cost per case seen."""
        return None if self.per_case_usd is None else cases_left * self.per_case_usd
