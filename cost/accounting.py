"""Resource accounting: what a run used, per stage and per case shard, in units no price depends on.

Quantities are measured where the work happens (a Dask worker for a shard, the flow for the other
stages) and priced later by ``cost.estimate`` with a price profile. Compute is counted as worker
thread-seconds (a shard occupies one Dask thread for its wall time; provisioned capacity is what
Fargate and EC2 bill) plus the memory those threads hold, as Dask reports it; ``cpu_seconds`` is
the measured CPU time of the threads, for utilization, and is not priced.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

GIB = float(2**30)


@dataclass
class Usage:
    """Quantities one stage or one shard used. Adding two usages adds every field."""

    thread_seconds: float = 0.0  # wall time a Dask worker thread was busy (priced as vCPU-seconds)
    gb_seconds: float = 0.0  # memory held by those threads (worker memory limit / threads) x seconds
    cpu_seconds: float = 0.0  # CPU time the threads measured (time.thread_time): utilization only
    s3_put: int = 0  # PUT, COPY, POST requests
    s3_get: int = 0  # GET and HEAD requests
    s3_list: int = 0  # LIST requests
    bytes_written: int = 0
    bytes_read: int = 0
    warehouse_rows: int = 0
    warehouse_bytes: int = 0
    warehouse_seconds: float = 0.0  # time a billed warehouse (Redshift) was busy loading; 0 for DuckDB
    input_tokens: int = 0  # every case's reported tokens
    output_tokens: int = 0
    agent_cost_usd: float = 0.0  # what agents reported as usage.cost_usd
    unpriced_input_tokens: int = 0  # tokens of cases that reported no cost: priced with the profile's model
    unpriced_output_tokens: int = 0
    cases: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Usage:
        """This usage times ``factor`` (counts rounded): imputing shards whose accounting was lost."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name) * factor
            out[f.name] = round(v) if f.type in ("int", int) else v
        return Usage(**out)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


def usage_of_rows(rows: list[dict[str, Any]]) -> Usage:
    """The agent-reported part of a shard's usage, summed from its case rows (tasks/score.py)."""
    u = Usage(cases=len(rows))
    for r in rows:
        tin, tout, cost = r.get("input_tokens") or 0, r.get("output_tokens") or 0, r.get("cost_usd")
        u.input_tokens += tin
        u.output_tokens += tout
        if cost is None:
            u.unpriced_input_tokens += tin
            u.unpriced_output_tokens += tout
        else:
            u.agent_cost_usd += cost
    return u


@dataclass
class Ledger:
    """A run's accounting across attempts: the stages outside the fan-out, and every finished shard."""

    run_id: str
    stages: dict[str, Usage] = field(default_factory=dict)
    shards: dict[int, Usage] = field(default_factory=dict)
    imputed_shards: list[int] = field(default_factory=list)  # finished shards whose accounting was lost
    attempts: int = 0

    def add_stage(self, stage: str, usage: Usage) -> None:
        self.stages[stage] = self.stages.get(stage, Usage()) + usage

    def fanout(self) -> Usage:
        total = Usage()
        for u in self.shards.values():
            total = total + u
        return total

    def by_stage(self) -> dict[str, Usage]:
        """Every stage's usage; ``fanout`` is the sum of the shards."""
        out = dict(self.stages)
        if self.shards:
            out["fanout"] = self.fanout()
        return out

    def total(self) -> Usage:
        total = Usage()
        for u in self.by_stage().values():
            total = total + u
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "attempts": self.attempts,
            "imputed_shards": sorted(self.imputed_shards),
            "stages": {k: v.to_dict() for k, v in sorted(self.stages.items())},
            "shards": {str(k): v.to_dict() for k, v in sorted(self.shards.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        return cls(
            run_id=data["run_id"],
            attempts=int(data.get("attempts", 0)),
            imputed_shards=list(data.get("imputed_shards", [])),
            stages={k: Usage.from_dict(v) for k, v in data.get("stages", {}).items()},
            shards={int(k): Usage.from_dict(v) for k, v in data.get("shards", {}).items()},
        )
