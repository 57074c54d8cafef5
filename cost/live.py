"""A run's cost while it runs: the ledger (kept with the checkpoints), the live estimate, the guard.

The ledger lives at ``runs/{run_id}/cost/ledger.json`` next to the shards, so a resumed run (same
run id) starts from what the earlier attempts spent, and the budget is for the whole run. It is
written at most once a second during the fan-out and at the end; a shard checkpointed in the second
before a kill -9 has no accounting: on resume its agent usage is read back from its checkpoint
rows and its compute is imputed at the mean of the accounted shards (``imputed_shards``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from scenario_pipeline.cost.accounting import Ledger, Usage, usage_of_rows
from scenario_pipeline.cost.budget import BudgetGuard
from scenario_pipeline.cost.estimate import estimate, usage_cost
from scenario_pipeline.cost.measure import cluster_usage
from scenario_pipeline.cost.prices import PriceProfile
from scenario_pipeline.cost.warehouse_rows import write_estimate
from scenario_pipeline.errors import WarehouseError
from scenario_pipeline.storage import Storage, run_dir

ShardRows = Callable[[list[int]], list[dict[str, Any]]]
"""The case rows of checkpointed shards, verified (the flow passes tasks/checkpoint.py ``read_results``)."""


def ledger_path(run_id: str) -> str:
    return f"{run_dir(run_id)}/cost/ledger.json"


def read_ledger(storage: Storage, run_id: str) -> Ledger | None:
    rel = ledger_path(run_id)
    return Ledger.from_dict(storage.read_json(rel)) if storage.exists(rel) else None


class RunCost:
    def __init__(self, storage: Storage, run_id: str, profile: PriceProfile, max_cost_usd: float | None) -> None:
        self.storage = storage
        self.run_id = run_id
        self.profile = profile
        self.ledger = read_ledger(storage, run_id) or Ledger(run_id)
        self.ledger.attempts += 1
        prior = usage_cost(self.ledger.total(), profile)
        per_case = [usage_cost(u, profile) / u.cases for u in self.ledger.shards.values() if u.cases]
        self.guard = BudgetGuard(max_cost_usd, prior, max(per_case) if per_case else None)
        self.spent_before_usd = prior
        self._saved_at = 0.0

    # -- what the flow records -----------------------------------------------------------
    def record(self, stage: str, usage: Usage) -> None:
        self.ledger.add_stage(stage, usage)
        self.guard.add(usage_cost(usage, self.profile))

    def record_dataset(self, manifest: dict[str, Any], attempt_started_iso: str, threads: int, memory_bytes: float) -> None:
        """Generation, if this attempt generated the dataset; else the reads that found it made."""
        tables = manifest.get("tables", {})
        if not tables:
            return  # a scenario without a dataset
        partitions = sum(len(t.get("partitions", [])) for t in tables.values())
        gen = manifest.get("generation")
        if gen is None and "generation_seconds" in manifest:  # the manifest's older spelling
            gen = {"seconds": manifest["generation_seconds"]}
        if gen and manifest.get("created_at", "") >= attempt_started_iso:
            written = int(gen.get("partitions_written", partitions))
            reused = int(gen.get("partitions_reused", partitions - written))
            usage = cluster_usage(float(gen["seconds"]), threads, memory_bytes)  # generation holds every thread
            usage.s3_put = 2 * written + 1  # each partition's Parquet file and sidecar, then the manifest
            usage.s3_list = len(tables)  # the listing of sidecars already there
            usage.s3_get = 2 * reused  # verifying a partition already there: its sidecar and its footer
            total_bytes = sum(int(t.get("bytes", 0)) for t in tables.values())
            usage.bytes_written = round(total_bytes * written / partitions) if partitions else 0
        else:
            usage = Usage(s3_get=2, bytes_read=len(json.dumps(manifest)))  # HEAD and GET of the manifest
        self.record("generate", usage)

    def record_run_start(self, resuming: bool, done: set[int], read_rows: ShardRows) -> None:
        """run.json (HEAD, then GET to compare or PUT to create) and the scan for finished shards."""
        shard_bytes = sum(self.ledger.shards[s].bytes_written for s in done if s in self.ledger.shards)
        self.record(
            "checkpoints",
            Usage(s3_get=1 + int(resuming) + len(done), s3_put=int(not resuming), s3_list=1, bytes_read=shard_bytes),
        )
        self.account_resumed(done, read_rows)

    def record_results_read(self, finished: set[int]) -> None:
        """The second scan for finished shards and the read of their rows: a listing, each file twice."""
        shard_bytes = sum(self.ledger.shards[s].bytes_written for s in finished if s in self.ledger.shards)
        self.record("checkpoints", Usage(s3_list=1, s3_get=2 * len(finished), bytes_read=2 * shard_bytes))

    def record_publish(self, warehouse_url: str, rows: int, nbytes: int, seconds: float) -> None:
        """Rows loaded; a Redshift warehouse's busy seconds are billed, DuckDB (a local file) is not."""
        billed = seconds if warehouse_url.startswith("redshift://") else 0.0
        self.record("publish", Usage(warehouse_rows=rows, warehouse_bytes=nbytes, warehouse_seconds=billed))

    def account_resumed(self, done: set[int], read_rows: ShardRows) -> None:
        """Finished shards the ledger does not know (lost in a kill): agent usage from their rows, compute imputed."""
        missing = sorted(s for s in done if s not in self.ledger.shards)
        if not missing:
            return
        rows = read_rows(missing)
        known = list(self.ledger.shards.values())
        known_cases = sum(u.cases for u in known)
        per_case = Usage()
        for u in known:
            per_case = per_case + u
        per_case = per_case.scaled(1.0 / known_cases) if known_cases else Usage()
        for shard in missing:
            shard_rows = [r for r in rows if r["shard"] == shard]
            agent = usage_of_rows(shard_rows)
            compute = per_case.scaled(len(shard_rows))
            agent.thread_seconds, agent.gb_seconds, agent.cpu_seconds = (
                compute.thread_seconds,
                compute.gb_seconds,
                compute.cpu_seconds,
            )
            agent.s3_put, agent.s3_get, agent.bytes_written = 1, 1, compute.bytes_written
            self.ledger.shards[shard] = agent
            self.ledger.imputed_shards.append(shard)
            self.guard.add(usage_cost(agent, self.profile))
        self.record("checkpoints", Usage(s3_get=len(missing)))

    # -- what the fan-out calls ----------------------------------------------------------
    def allow(self, in_flight_cases: int, next_cases: int) -> bool:
        return self.guard.allow(in_flight_cases, next_cases)

    def shard_done(self, shard: int, usage: dict[str, Any] | None, cases: int) -> float:
        u = Usage.from_dict(usage)
        # A shard run again (its checkpoint was lost) was paid for twice: its usage adds up.
        self.ledger.shards[shard] = self.ledger.shards.get(shard, Usage()) + u
        cost = usage_cost(u, self.profile)
        self.guard.shard_done(cost, cases)
        return cost

    @property
    def spent_usd(self) -> float:
        return self.guard.spent_usd

    def describe(self) -> str:
        text = f"estimated cost so far ${self.spent_usd:.4f}"
        if self.guard.limited:
            text += f" of the ${self.guard.max_cost_usd:.4f} budget"
        return text + f" ({self.profile.name})"

    def save(self, force: bool = False) -> None:
        """Write the ledger (at most once a second unless forced); the write itself is counted."""
        now = time.monotonic()
        if not force and now - self._saved_at < 1.0:
            return
        self.record("checkpoints", Usage(s3_put=1))
        self.storage.write_json(ledger_path(self.run_id), self.ledger.to_dict())
        self._saved_at = now

    # -- the result ----------------------------------------------------------------------
    def finish(
        self, warehouse_url: str, scenario: str, budget_exceeded: bool, cases_left: int, shards_held: int, log: Any
    ) -> dict[str, Any]:
        """Save the ledger, store the estimate in the warehouse's costs table, return the summary's cost block."""
        self.save(force=True)
        block = self.summary(budget_exceeded, cases_left)
        block["shards_held_back"] = shards_held
        try:
            block["warehouse_lines"] = write_estimate(warehouse_url, self.run_id, scenario, self.ledger, self.profile)
        except WarehouseError as exc:
            block["warehouse_lines"] = 0  # the ledger in storage keeps everything; `scenario costs` reads it
            log.warning(
                "Cost estimate of run %s not stored in the warehouse (%s); it stays in %s.", self.run_id, exc, block["ledger"]
            )
        return block

    def summary(self, budget_exceeded: bool, cases_left: int) -> dict[str, Any]:
        est = estimate(self.ledger, self.profile)
        est.pop("lines")
        est.update(
            {
                "max_cost_usd": self.guard.max_cost_usd,
                "budget_exceeded": budget_exceeded,
                "spent_before_this_attempt_usd": round(self.spent_before_usd, 10),
                "attempts": self.ledger.attempts,
                "remaining_estimate_usd": self.guard.remaining_estimate(cases_left) if cases_left else 0.0,
                "ledger": self.storage.uri(ledger_path(self.run_id)),
            }
        )
        return est
