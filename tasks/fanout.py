"""Stage 2, fan out: cases in shards, straight to Dask, one Prefect task for the whole stage.

One Prefect task per case costs about 87 ms of orchestration each here (1,000 cases: 87 s on
DaskTaskRunner against 0.8 s of plain ``client.map``). So orchestration stays coarse: this one
task hands the shards to a few lanes (tasks/lanes.py), at most one per Dask worker thread, each of
which runs its shards' cases concurrently (its share of ``--concurrency`` calls in flight), scores
and checkpoints each shard as it finishes and tells this task (Dask worker events); the task
reports progress (Prefect progress artifact, logs, the CLI's bar: cases done, in flight, retried)
and, with a budget, hands out shards only while the guard allows.
"""

from __future__ import annotations

import itertools
import math
import queue
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distributed import Client
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from scenario_pipeline import progress
from scenario_pipeline.storage import DiskFullError
from scenario_pipeline.tasks.lanes import LaneJob, ShardJob, run_lane

if TYPE_CHECKING:
    from scenario_pipeline.cost.live import RunCost


def default_shard_size(cases: int, threads: int) -> int:
    """About four shards per worker thread: even load, few Dask tasks, one file per shard."""
    return max(1, min(250, math.ceil(cases / (4 * threads))))


def plan_shards(n_cases: int, shard_size: int) -> list[tuple[int, int, int]]:
    """(shard, first case, end case) for every shard; fixed by (cases, shard size) alone."""
    return [(i, lo, min(lo + shard_size, n_cases)) for i, lo in enumerate(range(0, n_cases, shard_size))]


@dataclass
class FanoutStats:
    shards_total: int
    shards_resumed: int
    shards_run: int = 0
    cases_run: int = 0
    failed_shards: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget_exceeded: bool = False  # shards were held back by --max-cost-usd
    shards_held: int = 0  # how many
    retries: int = 0  # attempts after the first, over every case run in this attempt of the run
    peak_in_flight: int = 0  # the most agent calls in flight at once, as the lanes reported them
    lanes: int = 0  # lanes started
    limit_decreases: int = 0  # times a lane halved its calls in flight on a 429 / RateLimited (AIMD)
    concurrency: int = 0  # the run's bound on calls in flight


def split_concurrency(total: int, loads: list[int]) -> list[int]:
    """Each lane's share of ``total`` calls in flight, in proportion to its cases (largest remainder),
    at least 1 each and never more than its cases; the shares add up to at most ``total``."""
    if sum(loads) <= total:
        return list(loads)
    whole = sum(loads)
    raw = [total * n / whole for n in loads]
    shares = [max(1, int(r)) for r in raw]
    for i in sorted(range(len(loads)), key=lambda i: raw[i] - int(raw[i]), reverse=True):
        if sum(shares) >= total:
            break
        if shares[i] < loads[i]:
            shares[i] += 1
    while sum(shares) > total:  # the minimum of 1 each can overshoot when total < lanes (never: lanes <= total)
        shares[shares.index(max(shares))] -= 1
    return shares


def assign_lanes(jobs: list[ShardJob], lanes: int) -> list[list[ShardJob]]:
    """Shards to lanes, in shard order, each to the lane with the fewest cases so far."""
    groups: list[list[ShardJob]] = [[] for _ in range(lanes)]
    loads = [0] * lanes
    for j in jobs:
        i = loads.index(min(loads))
        groups[i].append(j)
        loads[i] += len(j.cases)
    return [g for g in groups if g]


_NO_ARTIFACT = "no-artifact"


def _progress_artifact(artifact: Any, percent: float, description: str, logger: Any) -> Any:
    """Create or update the progress artifact. The Prefect API being away for longer than its client
    retries costs the progress display for the rest of the fan-out (no more calls that would each wait out
    the retries and stall the loop), never the run: logs and the CLI's bar still show progress."""
    if artifact == _NO_ARTIFACT:
        return artifact
    try:
        if artifact is None:
            return create_progress_artifact(percent, description=description)
        update_progress_artifact(artifact, percent, description=description)
    except Exception as exc:  # noqa: BLE001 - httpx errors, Prefect API errors
        logger.warning(
            "Could not update the progress artifact (Prefect API: %s: %s); the fan-out goes on without it.",
            type(exc).__name__,
            exc,
        )
        return _NO_ARTIFACT
    return artifact


@task(name="fan-out", cache_policy=NO_CACHE)
def fan_out(
    client: Client,
    jobs: list[ShardJob],
    context: dict[str, Any],
    shards_total: int,
    cases_total: int,
    cost: RunCost | None = None,
    concurrency: int = 256,
    max_retries: int = 5,
    sync_processes: int | None = None,
) -> FanoutStats:
    """Run the shards in lanes (tasks/lanes.py): at most one lane per Dask worker thread, at most
    ``concurrency`` agent calls in flight across them, retries of refused calls up to ``max_retries``.

    ``cost``: accounts each shard, shows the live estimate, and holds shards back at the budget."""
    from scenario_pipeline.settings import load_settings

    logger = get_run_logger()
    stats = FanoutStats(shards_total=shards_total, shards_resumed=shards_total - len(jobs), concurrency=concurrency)
    done_cases = cases_total - sum(len(j.cases) for j in jobs)
    started = time.perf_counter()
    live: dict[int, dict[str, Any]] = {}  # lane -> its last status (calls in flight, retries)

    def in_flight() -> int:
        return sum(m.get("in_flight", 0) for m in live.values() if not m.get("finished"))

    def retried() -> int:
        return sum(m.get("retries", 0) for m in live.values())

    def describe() -> str:
        return f"{done_cases} of {cases_total} cases scored and checkpointed; {in_flight()} in flight, {retried()} retried" + (
            f"; {cost.describe()}" if cost else ""
        )

    artifact = _progress_artifact(None, done_cases / max(cases_total, 1) * 100, describe(), logger)
    bar = progress.listener()
    bar.start("fan-out", cases_total, "cases")
    bar.advance("fan-out", done_cases)
    if stats.shards_resumed:
        logger.info(
            "Resuming: %d of %d shards are already checkpointed; running the other %d.",
            stats.shards_resumed,
            shards_total,
            len(jobs),
        )
    if not jobs:
        bar.finish("fan-out")
        return stats
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threads = max(1, sum(w["nthreads"] for w in workers.values()))
    sync_processes = sync_processes or load_settings().fanout.sync_processes
    logger.info(
        "Fanning out %d cases in %d shards to %d Dask workers (%d threads), at most %d agent calls in flight, "
        "up to %d retries of a refused call (dashboard: %s).",
        sum(len(j.cases) for j in jobs),
        len(jobs),
        len(workers),
        threads,
        concurrency,
        max_retries,
        client.dashboard_link,
    )
    topic = f"fanout-{jobs[0].run_id}-{uuid.uuid4().hex[:8]}"
    inbox: queue.Queue = queue.Queue()
    client.subscribe_topic(topic, lambda ev: inbox.put(("shard", ev[1])))
    client.subscribe_topic(f"{topic}-status", lambda ev: inbox.put(("status", ev[1])))
    ctx = client.scatter(context, broadcast=True, hash=False)
    # Without a budget every shard is dispatched at once; with one, a shard is dispatched
    # only while the budget guard (cost/budget.py) allows it, and the rest are held back
    queue_: deque[ShardJob] = deque(jobs)
    running: dict[str, tuple[Any, LaneJob]] = {}
    open_shards: dict[int, int] = {}  # dispatched, not yet reported: shard -> cases
    counted: set[int] = set()
    lane_ids = itertools.count()

    def count_shard(shard: int, cases: int, usage: dict[str, Any] | None) -> None:
        nonlocal done_cases
        if shard in counted:
            return
        counted.add(shard)
        open_shards.pop(shard, None)
        stats.shards_run += 1
        stats.cases_run += cases
        done_cases += cases
        if cost is not None:
            cost.shard_done(shard, usage, cases)

    def dispatch() -> None:
        slots = threads - len(running)
        room = concurrency - sum(j.concurrency for _, j in running.values())
        if slots <= 0 or room <= 0 or not queue_:
            return
        if cost is None or not cost.guard.limited:
            batch = list(queue_)
            queue_.clear()
        else:
            batch, cases = [], sum(open_shards.values())
            while queue_ and cost.allow(cases, len(queue_[0].cases)):
                cases += len(queue_[0].cases)
                batch.append(queue_.popleft())
        if not batch:
            return
        groups = assign_lanes(batch, min(slots, room, len(batch)))
        shares = split_concurrency(room, [sum(len(j.cases) for j in g) for g in groups])
        for group, share in zip(groups, shares, strict=False):
            lane = LaneJob(next(lane_ids), topic, group, share, max_retries, sync_processes)
            fut = client.submit(run_lane, lane, ctx, key=f"lane-{topic}-{lane.lane}", pure=False, retries=2)
            running[str(fut.key)] = (fut, lane)
            for j in group:
                open_shards[j.shard] = len(j.cases)
            fut.add_done_callback(lambda f: inbox.put(("lane", f.key)))
        stats.lanes += len(groups)

    dispatch()
    last_report = 0.0
    reported_all = False
    disk_full: DiskFullError | None = None
    while running:
        try:
            kind, payload = inbox.get(timeout=1.0)
        except queue.Empty:
            kind, payload = None, None
        if kind == "shard":
            count_shard(int(payload["shard"]), int(payload["cases"]), payload.get("usage"))
        elif kind == "status":
            live[int(payload["lane"])] = payload
            stats.peak_in_flight = max(stats.peak_in_flight, in_flight())
        elif kind == "lane" and payload in running:
            fut, lane = running.pop(payload)
            try:
                result = fut.result()
            except Exception as lane_exc:  # noqa: BLE001 - a lost lane must not lose the other lanes' shards
                result = {"shards": [], "failed": [], "skipped": [], "disk_full": None, "error": lane_exc}
            if isinstance(result.get("disk_full"), DiskFullError):  # no checkpoint can be written: stop, keep what is
                disk_full = result["disk_full"]
                queue_.clear()
                client.cancel([f for f, _ in running.values()])
                running.clear()
            for r in result["shards"]:
                count_shard(int(r["shard"]), int(r["cases"]), r.get("usage"))
            for shard in result["skipped"]:  # finished by an earlier run of this lane (its worker was lost)
                count_shard(shard, open_shards.get(shard, 0), None)
            for r in result["failed"]:
                stats.failed_shards.append({"shard": r["shard"], "error": r["error"]})
                open_shards.pop(r["shard"], None)
                logger.error("Shard %d failed after retries: %s", r["shard"], r["error"])
            if "error" in result:
                lost: BaseException = result["error"]
                for j in lane.shards:
                    if j.shard not in counted and j.shard in open_shards:
                        open_shards.pop(j.shard)
                        stats.failed_shards.append({"shard": j.shard, "error": f"{type(lost).__name__}: {str(lost)[:300]}"})
                        logger.error("Shard %d failed after retries: %s", j.shard, lost)
            live.setdefault(lane.lane, {})["finished"] = True
            live[lane.lane]["retries"] = result.get("retries", live[lane.lane].get("retries", 0))
            stats.peak_in_flight = max(stats.peak_in_flight, int(result.get("peak_in_flight", 0)))
            stats.limit_decreases += int(result.get("limit_decreases", 0))
            if disk_full is not None:
                break
        dispatch()
        bar.advance("fan-out", done_cases)
        note = getattr(bar, "note", None)
        if note is not None:
            note("fan-out", f"{in_flight()} in flight, {retried()} retried")
        now = time.perf_counter()
        if now - last_report > 1.0 or (done_cases == cases_total and not reported_all):
            reported_all = done_cases == cases_total
            artifact = _progress_artifact(artifact, done_cases / cases_total * 100, describe(), logger)
            logger.info(
                "%d of %d cases done, %d in flight, %d retried (%d shards run, %d failed)%s.",
                done_cases,
                cases_total,
                in_flight(),
                retried(),
                stats.shards_run,
                len(stats.failed_shards),
                f"; {cost.describe()}" if cost else "",
            )
            if cost is not None:  # the ledger, so a resumed run knows what was spent
                cost.save()
            last_report = now
    for t in (topic, f"{topic}-status"):
        try:
            client.unsubscribe_topic(t)
        except Exception:  # noqa: BLE001, S110 - the client may be closing
            pass
    stats.retries = retried()
    if disk_full is not None:  # the run stops with one clear error; rerun with the same --run-id to resume
        logger.warning(
            "Fan-out stopped: the disk is full (%d of %d shards done before it filled). Rerun with the same --run-id "
            "to resume from the checkpointed shards.",
            stats.shards_resumed + stats.shards_run,
            shards_total,
        )
        bar.finish("fan-out")
        raise disk_full
    if queue_:
        stats.budget_exceeded, stats.shards_held = True, len(queue_)
        logger.warning(
            "Budget reached: %s; %d shards (%d cases) held back and not run.",
            cost.describe() if cost else "",
            len(queue_),
            sum(len(j.cases) for j in queue_),
        )
    if cost is not None:
        cost.save(force=True)
    _progress_artifact(artifact, done_cases / cases_total * 100, describe(), logger)
    bar.finish("fan-out")
    stats.seconds = time.perf_counter() - started
    logger.info(
        "Fan-out done in %.1f s: %d lanes, at most %d agent calls in flight (of %d allowed), %d retries.",
        stats.seconds,
        stats.lanes,
        stats.peak_in_flight,
        concurrency,
        stats.retries,
    )
    return stats
