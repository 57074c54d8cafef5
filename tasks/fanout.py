"""Stage 2, fan out: cases in shards, straight to Dask, one Prefect task for the whole stage.

One Prefect task per case costs about 87 ms of orchestration each here (1,000 cases: 87 s on
DaskTaskRunner against 0.8 s of plain ``client.map``). So orchestration stays coarse: this one
task submits shards of cases to Dask directly, each shard scores its cases and checkpoints
itself, and the task reports progress (Prefect progress artifact, logs, the CLI's bar).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distributed import Client, as_completed
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from scenario_pipeline import progress
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.storage import DiskFullError, Storage  # issue 9: DiskFullError
from scenario_pipeline.tasks.checkpoint import write_shard
from scenario_pipeline.tasks.sandbox import SandboxPolicy, sandbox_for
from scenario_pipeline.tasks.score import Limits, run_case

if TYPE_CHECKING:
    from scenario_pipeline.cost.live import RunCost  # issue 7


def default_shard_size(cases: int, threads: int) -> int:
    """About four shards per worker thread: even load, few Dask tasks, one file per shard."""
    return max(1, min(250, math.ceil(cases / (4 * threads))))


def plan_shards(n_cases: int, shard_size: int) -> list[tuple[int, int, int]]:
    """(shard, first case, end case) for every shard; fixed by (cases, shard size) alone."""
    return [(i, lo, min(lo + shard_size, n_cases)) for i, lo in enumerate(range(0, n_cases, shard_size))]


@dataclass
class ShardJob:
    run_id: str
    scenario_id: str
    shard: int
    cases: list[Case]
    agent_spec: str
    storage_url: str
    limits: Limits
    policy: SandboxPolicy = field(default_factory=SandboxPolicy)


@dataclass
class FanoutStats:
    shards_total: int
    shards_resumed: int
    shards_run: int = 0
    cases_run: int = 0
    failed_shards: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget_exceeded: bool = False  # issue 7: shards were held back by --max-cost-usd
    shards_held: int = 0  # issue 7: how many


def run_shard(job: ShardJob, context: dict[str, Any]) -> dict[str, Any]:
    """Runs in a Dask worker: every case of the shard, then one checkpoint file."""
    from scenario_pipeline.cost.measure import ShardMeter  # issue 7: the shard's resource accounting

    meter = ShardMeter()
    scenario = get_scenario(job.scenario_id)
    dataset_url = context.get("dataset", {}).get("url", "")
    readonly = dataset_url.removeprefix("file://") if dataset_url.startswith("file://") else ""
    sandbox = sandbox_for(job.agent_spec, job.scenario_id, readonly, job.policy)
    rows = [run_case(scenario, sandbox, case, context, job.run_id, job.limits, job.run_id, job.shard) for case in job.cases]
    storage = Storage.from_url(job.storage_url)
    try:
        checkpoint = write_shard(storage, job.run_id, job.shard, rows)
    except DiskFullError as exc:  # issue 9: returned, not raised: Dask's retries would not help; fan_out stops the run
        return exc
    return {"shard": job.shard, "cases": len(rows), "passed": sum(r["passed"] for r in rows),
            "usage": meter.finish(rows, storage, checkpoint).to_dict()}  # issue 7


_NO_ARTIFACT = "no-artifact"  # issue 9


def _progress_artifact(artifact: Any, percent: float, description: str, logger: Any) -> Any:
    """issue 9: create or update the progress artifact. The Prefect API being away for longer than its client
    retries costs the progress display for the rest of the fan-out (no more calls that would each wait out
    the retries and stall the loop), never the run: logs and the CLI's bar still show progress."""
    if artifact == _NO_ARTIFACT:
        return artifact
    try:
        if artifact is None:
            return create_progress_artifact(percent, description=description)
        update_progress_artifact(artifact, percent, description=description)
    except Exception as exc:  # noqa: BLE001 - httpx errors, Prefect API errors
        logger.warning("Could not update the progress artifact (Prefect API: %s: %s); the fan-out goes on without it.",
                       type(exc).__name__, exc)
        return _NO_ARTIFACT
    return artifact


@task(name="fan-out", cache_policy=NO_CACHE)
def fan_out(client: Client, jobs: list[ShardJob], context: dict[str, Any], shards_total: int, cases_total: int,
            cost: RunCost | None = None) -> FanoutStats:
    """``cost`` (issue 7): accounts each shard, shows the live estimate, and holds shards back at the budget."""
    logger = get_run_logger()
    stats = FanoutStats(shards_total=shards_total, shards_resumed=shards_total - len(jobs))
    done_cases = cases_total - sum(len(j.cases) for j in jobs)
    started = time.perf_counter()
    def describe() -> str:
        return f"cases scored and checkpointed, of {cases_total}" + (f"; {cost.describe()}" if cost else "")

    artifact = _progress_artifact(None, done_cases / max(cases_total, 1) * 100, describe(), logger)  # issue 9
    bar = progress.listener()
    bar.start("fan-out", cases_total, "cases")
    bar.advance("fan-out", done_cases)
    if stats.shards_resumed:
        logger.info("Resuming: %d of %d shards are already checkpointed; running the other %d.", stats.shards_resumed, shards_total, len(jobs))
    if not jobs:
        bar.finish("fan-out")
        return stats
    logger.info("Fanning out %d cases in %d shards to %d Dask workers (dashboard: %s).", sum(len(j.cases) for j in jobs), len(jobs),
                len(client.scheduler_info(n_workers=-1)["workers"]), client.dashboard_link)
    ctx = client.scatter(context, broadcast=True, hash=False)
    # --- issue 7: without a budget every shard is submitted at once; with one, a shard is submitted
    # only while the budget guard (cost/budget.py) allows it, and the rest are held back ---
    queue: deque[ShardJob] = deque(jobs)
    by_key: dict[str, ShardJob] = {}
    in_flight: dict[str, int] = {}
    completed = as_completed(loop=client.loop)

    def submit() -> None:
        if cost is None or not cost.guard.limited:
            batch = list(queue)
            queue.clear()
        else:
            batch, cases = [], sum(in_flight.values())
            while queue and cost.allow(cases, len(queue[0].cases)):
                cases += len(queue[0].cases)
                batch.append(queue.popleft())
        if batch:
            futures = client.map(run_shard, batch, context=ctx, key=[f"shard-{j.run_id}-{j.shard}" for j in batch], pure=False, retries=2)
            for f, j in zip(futures, batch):
                by_key[f.key], in_flight[f.key] = j, len(j.cases)
            completed.update(futures)

    submit()
    # --- end issue 7 ---
    last_report = 0.0
    disk_full: DiskFullError | None = None  # issue 9
    for fut in completed:
        job = by_key[fut.key]
        in_flight.pop(fut.key, None)  # issue 7
        try:
            result = fut.result()
            if isinstance(result, DiskFullError):  # issue 9: no checkpoint can be written: stop, keep what is checkpointed
                disk_full = result
                queue.clear()
                client.cancel(list(completed.futures))
                completed.clear()
                break
            stats.shards_run += 1
            stats.cases_run += result["cases"]
            done_cases += result["cases"]
            if cost is not None:  # issue 7
                cost.shard_done(job.shard, result.get("usage"), result["cases"])
        except Exception as exc:  # noqa: BLE001 - one broken shard must not lose the others
            stats.failed_shards.append({"shard": job.shard, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            logger.error("Shard %d failed after retries: %s", job.shard, exc)
        submit()  # issue 7
        bar.advance("fan-out", done_cases)
        now = time.perf_counter()
        if now - last_report > 1.0 or done_cases == cases_total:
            artifact = _progress_artifact(artifact, done_cases / cases_total * 100, describe(), logger)  # issue 9
            logger.info("%d of %d cases done (%d shards run, %d failed)%s.", done_cases, cases_total, stats.shards_run, len(stats.failed_shards),
                        f"; {cost.describe()}" if cost else "")
            if cost is not None:  # issue 7: the ledger, so a resumed run knows what was spent
                cost.save()
            last_report = now
    if disk_full is not None:  # issue 9: the run stops with one clear error; rerun with the same --run-id to resume
        logger.warning("Fan-out stopped: the disk is full (%d of %d shards done before it filled). Rerun with the same --run-id "
                       "to resume from the checkpointed shards.", stats.shards_resumed + stats.shards_run, shards_total)
        bar.finish("fan-out")
        raise disk_full
    # --- issue 7 ---
    if queue:
        stats.budget_exceeded, stats.shards_held = True, len(queue)
        logger.warning("Budget reached: %s; %d shards (%d cases) held back and not run.", cost.describe() if cost else "",
                       len(queue), sum(len(j.cases) for j in queue))
    if cost is not None:
        cost.save(force=True)
    # --- end issue 7 ---
    _progress_artifact(artifact, done_cases / cases_total * 100, describe(), logger)  # issue 9
    bar.finish("fan-out")
    stats.seconds = time.perf_counter() - started
    return stats
