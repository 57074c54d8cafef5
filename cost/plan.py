"""A priced plan: what generating N records, one scenario's fan-out over them and a month of storage
would cost on W workers, before anything runs.

Throughput comes from measurements (cost/plan_inputs.toml, read by cost/plan_inputs.py): generation
CPU-seconds per row and Parquet bytes per row, and the harness's thread-seconds per case. Each
worker is a Dask worker of ``threads_per_worker`` threads, one vCPU each, as fast as a core of the
measuring machine. The measured fan-out is the harness alone (a no-op agent); an agent's own time
and price per case are parameters (default 0, shown in the plan). Layout (partitions, files, S3
requests) follows the write path; a dataset plan from datasets/plan.py may supply it.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scenario_pipeline.cost.accounting import GIB, Usage
from scenario_pipeline.cost.estimate import price
from scenario_pipeline.cost.plan_inputs import PlanInput, read_plan_inputs
from scenario_pipeline.cost.prices import PriceProfile, load_profile
from scenario_pipeline.datasets.plan import requests_per_file
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import UsageError, positive
from scenario_pipeline.scenarios.registry import get_scenario

MAX_RECORDS = 10**12
LIST_PAGE = 1000  # keys per S3 LIST response


def _nonneg(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a number >= 0, got {value!r}")


def shard_size_for(cases: int, threads: int) -> int:
    """tasks/fanout.py's default_shard_size (four shards per thread, at most 250 cases), without importing Prefect."""
    return max(1, min(250, math.ceil(cases / (4 * threads))))


def _check_plan_args(
    records: int, workers: int, threads_per_worker: int, months: float, agent_seconds_per_case: float, agent_usd_per_case: float
) -> None:
    positive("records", records, integer=True)
    if records > MAX_RECORDS:
        raise UsageError(f"records must be at most 10^12, got {records:,}")
    positive("workers", workers, integer=True)
    positive("threads per worker", threads_per_worker, integer=True)
    positive("months", months)
    _nonneg("agent seconds per case", agent_seconds_per_case)
    _nonneg("agent USD per case", agent_usd_per_case)


def _generation(
    spec: DatasetSpec | None, inputs: dict[str, PlanInput], gb_per_thread: float, dataset_plan: dict[str, Any] | None
) -> tuple[int, int, Usage]:
    """(rows, partitions, usage) of generating ``spec``: its CPU time from the measured throughput, its S3
    requests from its layout (or from the datasets plan, which knows multipart uploads and the write probe)."""
    if spec is None:
        total_rows, partitions, listings = 0, 0, 0
    else:
        total_rows = sum(spec.table_records(t.name) for t in spec.tables)
        partitions = sum(spec.partitions_of(t.name) for t in spec.tables)
        listings = sum(math.ceil(spec.partitions_of(t.name) / LIST_PAGE) for t in spec.tables)  # sidecar listings, 1,000 a page
    gen_cpu = total_rows / inputs["generate.rows_per_cpu_second"].value
    if dataset_plan is not None:
        gen_put, gen_get_list = int(dataset_plan["s3_requests"]["put"]), int(dataset_plan["s3_requests"]["get_list"])
        gen_get, gen_list = 1, gen_get_list - 1
    else:
        # each file a multipart upload above s3fs's threshold (datasets/plan.py)
        per_file = requests_per_file(spec.partition_rows * inputs["generate.bytes_per_row"].value) if spec is not None else 1
        gen_put = (per_file + 1) * partitions + 2 if partitions else 0  # each file and its sidecar, the manifest, the write probe
        gen_get, gen_list = (1, listings) if partitions else (0, 0)  # the manifest check, the listings
    usage = Usage(
        thread_seconds=gen_cpu,
        gb_seconds=gen_cpu * gb_per_thread,
        cpu_seconds=gen_cpu,
        s3_put=gen_put,
        s3_get=gen_get,
        s3_list=gen_list,
    )
    return total_rows, partitions, usage


def price_plan(
    records: int,
    workers: int,
    profile: str | PriceProfile | None = None,
    *,
    scenario: str = "s12-search",
    cases: int | None = None,
    threads_per_worker: int = 1,
    agent_seconds_per_case: float = 0.0,
    agent_usd_per_case: float = 0.0,
    months: float = 1.0,
    seed: int = 0,
    spec: DatasetSpec | None = None,
    dataset_plan: dict[str, Any] | None = None,
    plan_inputs: Path | None = None,
) -> dict[str, Any]:
    """Quantities, lines and totals of a plan; see the module docstring for where each number comes from.

    ``spec`` replaces the scenario's dataset (``scenario plan --dataset``); ``dataset_plan`` is
    datasets/plan.py's estimate for it, whose S3 request counts (multipart uploads included) are used.
    """
    _check_plan_args(records, workers, threads_per_worker, months, agent_seconds_per_case, agent_usd_per_case)
    prof = profile if isinstance(profile, PriceProfile) else load_profile(profile)
    inputs = read_plan_inputs(plan_inputs)
    sc = get_scenario(scenario)
    cases = sc.default_cases if cases is None else cases
    positive("cases", cases, integer=True)
    threads = workers * threads_per_worker
    gb_per_thread = prof.vcpus_per_thread * prof.plan_gb_per_vcpu

    # Generation: CPU-bound, every thread busy; layout from the spec (or the dataset plan).
    spec = spec if spec is not None else sc.dataset_spec(records, seed)
    total_rows, partitions, generate = _generation(spec, inputs, gb_per_thread, dataset_plan)
    gen_cpu = generate.cpu_seconds
    data_bytes = total_rows * inputs["generate.bytes_per_row"].value

    # Fan-out: the harness per case (measured) plus the agent's own time (a parameter), in shards.
    shard_size = shard_size_for(cases, threads)
    shards = math.ceil(cases / shard_size)
    fan_busy = cases * (inputs["fanout.thread_seconds_per_case"].value + agent_seconds_per_case)
    fanout = Usage(
        thread_seconds=fan_busy,
        gb_seconds=fan_busy * gb_per_thread,
        s3_put=shards + 1,  # checkpoints, run.json
        s3_get=3 * shards + 2,
        s3_list=2,  # per shard: its HEAD and two reads; run.json; two scans
        agent_cost_usd=cases * agent_usd_per_case,
        cases=cases,
    )

    lines: list[dict[str, Any]] = []
    totals: dict[str, float] = {}
    for stage, usage in (("generate", generate), ("fanout", fanout)):
        for ln in price(usage, prof):
            lines.append({"stage": stage, **asdict(ln)})
        totals[stage] = sum(ln["amount_usd"] for ln in lines if ln["stage"] == stage)
    gb = data_bytes / GIB
    storage_usd = prof.storage_month_usd(gb) * months
    if gb:
        lines.append(
            {
                "stage": "storage",
                "item": "s3.storage_month",
                "quantity": gb * months,
                "unit": "GB-months",
                "unit_price_usd": storage_usd / (gb * months),
                "amount_usd": storage_usd,
                "recurring": True,
            }
        )
    totals["storage"] = storage_usd
    return {
        "records": records,
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "scenario": sc.id,
        "cases": cases,
        "profile": prof.summary(),
        "inputs": {k: {"value": v.value, "unit": v.unit, "source": v.source} for k, v in sorted(inputs.items())},
        "assumptions": {
            "worker": f"{threads_per_worker} thread(s) per worker, each one vCPU ({prof.services['compute']}) as fast as a core "
            f"of the measuring machine, {gb_per_thread:g} GB of memory per thread",
            "agent_seconds_per_case": agent_seconds_per_case,
            "agent_usd_per_case": agent_usd_per_case,
            "storage_months": months,
            "not priced": "data transfer (same-region S3 to compute is free), an agent's own S3 reads, idle worker time, the warehouse",
        },
        "generate": {
            "rows": total_rows,
            "partitions": partitions,
            "bytes": round(data_bytes),
            "cpu_hours": gen_cpu / 3600,
            "wall_seconds": gen_cpu / threads,
            "s3_put": generate.s3_put,
            "s3_get": generate.s3_get,
            "s3_list": generate.s3_list,
            "usd": totals["generate"],
        },
        "fanout": {
            "cases": cases,
            "shards": shards,
            "shard_size": shard_size,
            "thread_hours": fan_busy / 3600,
            "wall_seconds": fan_busy / min(threads, shards),
            "usd": totals["fanout"],
        },
        "storage": {"bytes": round(data_bytes), "gb": gb, "months": months, "usd": storage_usd},
        "lines": lines,
        "total_usd": sum(totals.values()),
    }
