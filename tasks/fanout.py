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
from scenario_pipeline.settings import load_settings
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
    fan = _FanOut(client, jobs, shards_total, cases_total, cost, concurrency, max_retries)
    if not jobs:
        fan.bar.finish("fan-out")
        return fan.stats
    fan.start(context, sync_processes or load_settings().fanout.sync_processes)
    fan.dispatch()
    fan.wait()
    return fan.finish()


class _FanOut:
    """One fan-out's state: the shards still queued, the lanes running, what they reported."""

    def __init__(
        self,
        client: Client,
        jobs: list[ShardJob],
        shards_total: int,
        cases_total: int,
        cost: RunCost | None,
        concurrency: int,
        max_retries: int,
    ) -> None:
        self.client, self.cost, self.concurrency, self.max_retries = client, cost, concurrency, max_retries
        self.cases_total = cases_total
        self.logger = get_run_logger()
        self.stats = FanoutStats(shards_total=shards_total, shards_resumed=shards_total - len(jobs), concurrency=concurrency)
        self.done_cases = cases_total - sum(len(j.cases) for j in jobs)
        self.started = time.perf_counter()
        self.live: dict[int, dict[str, Any]] = {}  # lane -> its last status (calls in flight, retries)
        # Without a budget every shard is dispatched at once; with one, a shard is dispatched only while
        # the budget guard (cost/budget.py) allows it, and the rest are held back
        self.queue: deque[ShardJob] = deque(jobs)
        self.running: dict[str, tuple[Any, LaneJob]] = {}
        self.open_shards: dict[int, int] = {}  # dispatched, not yet reported: shard -> cases
        self.counted: set[int] = set()
        self.lane_ids = itertools.count()
        self.inbox: queue.Queue = queue.Queue()
        self.disk_full: DiskFullError | None = None
        self.artifact = _progress_artifact(None, self.done_cases / max(cases_total, 1) * 100, self.describe(), self.logger)
        self.bar = progress.listener()
        self.bar.start("fan-out", cases_total, "cases")
        self.bar.advance("fan-out", self.done_cases)
        if self.stats.shards_resumed:
            self.logger.info(
                "Resuming: %d of %d shards are already checkpointed; running the other %d.",
                self.stats.shards_resumed,
                shards_total,
                len(jobs),
            )

    # -- what the lanes report ------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(m.get("in_flight", 0) for m in self.live.values() if not m.get("finished"))

    def retried(self) -> int:
        return sum(m.get("retries", 0) for m in self.live.values())

    def describe(self) -> str:
        return (
            f"{self.done_cases} of {self.cases_total} cases scored and checkpointed; {self.in_flight()} in flight, "
            f"{self.retried()} retried" + (f"; {self.cost.describe()}" if self.cost else "")
        )

    def count_shard(self, shard: int, cases: int, usage: dict[str, Any] | None) -> None:
        if shard in self.counted:
            return
        self.counted.add(shard)
        self.open_shards.pop(shard, None)
        self.stats.shards_run += 1
        self.stats.cases_run += cases
        self.done_cases += cases
        if self.cost is not None:
            self.cost.shard_done(shard, usage, cases)

    # -- handing out shards ---------------------------------------------------------------------
    def start(self, context: dict[str, Any], sync_processes: int) -> None:
        """Subscribe to the lanes' events and ship the agent context to every worker once."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self.threads = max(1, sum(w["nthreads"] for w in workers.values()))
        self.sync_processes = sync_processes
        self.logger.info(
            "Fanning out %d cases in %d shards to %d Dask workers (%d threads), at most %d agent calls in flight, "
            "up to %d retries of a refused call (dashboard: %s).",
            sum(len(j.cases) for j in self.queue),
            len(self.queue),
            len(workers),
            self.threads,
            self.concurrency,
            self.max_retries,
            self.client.dashboard_link,
        )
        self.topic = f"fanout-{self.queue[0].run_id}-{uuid.uuid4().hex[:8]}"
        self.client.subscribe_topic(self.topic, lambda ev: self.inbox.put(("shard", ev[1])))
        self.client.subscribe_topic(f"{self.topic}-status", lambda ev: self.inbox.put(("status", ev[1])))
        self.ctx = self.client.scatter(context, broadcast=True, hash=False)

    def dispatch(self) -> None:
        """Start lanes on free worker threads, for the shards the budget allows, sharing the free calls."""
        slots = self.threads - len(self.running)
        room = self.concurrency - sum(j.concurrency for _, j in self.running.values())
        if slots <= 0 or room <= 0 or not self.queue:
            return
        cost = self.cost
        if cost is None or not cost.guard.limited:
            batch = list(self.queue)
            self.queue.clear()
        else:
            batch, cases = [], sum(self.open_shards.values())
            while self.queue and cost.allow(cases, len(self.queue[0].cases)):
                cases += len(self.queue[0].cases)
                batch.append(self.queue.popleft())
        if not batch:
            return
        groups = assign_lanes(batch, min(slots, room, len(batch)))
        shares = split_concurrency(room, [sum(len(j.cases) for j in g) for g in groups])
        for group, share in zip(groups, shares, strict=True):
            lane = LaneJob(next(self.lane_ids), self.topic, group, share, self.max_retries, self.sync_processes)
            fut = self.client.submit(run_lane, lane, self.ctx, key=f"lane-{self.topic}-{lane.lane}", pure=False, retries=2)
            self.running[str(fut.key)] = (fut, lane)
            for j in group:
                self.open_shards[j.shard] = len(j.cases)
            fut.add_done_callback(lambda f: self.inbox.put(("lane", f.key)))
        self.stats.lanes += len(groups)

    # -- waiting for them -----------------------------------------------------------------------
    def wait(self) -> None:
        """Take the lanes' events until every lane is done (or the disk filled), reporting as it goes."""
        last_report, reported_all = 0.0, False
        while self.running:
            try:
                kind, payload = self.inbox.get(timeout=1.0)
            except queue.Empty:
                kind, payload = None, None
            if kind == "shard":
                self.count_shard(int(payload["shard"]), int(payload["cases"]), payload.get("usage"))
            elif kind == "status":
                self.live[int(payload["lane"])] = payload
                self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight())
            elif kind == "lane" and payload in self.running:
                self.lane_done(*self.running.pop(payload))
                if self.disk_full is not None:
                    break
            self.dispatch()
            self.bar.advance("fan-out", self.done_cases)
            note = getattr(self.bar, "note", None)
            if note is not None:
                note("fan-out", f"{self.in_flight()} in flight, {self.retried()} retried")
            now = time.perf_counter()
            if now - last_report > 1.0 or (self.done_cases == self.cases_total and not reported_all):
                reported_all = self.done_cases == self.cases_total
                self.report()
                last_report = now

    def lane_done(self, fut: Any, lane: LaneJob) -> None:
        """Account a finished (or lost) lane: its shards done, skipped, failed; a full disk stops it all."""
        try:
            result = fut.result()
        except Exception as lane_exc:  # noqa: BLE001 - a lost lane must not lose the other lanes' shards
            result = {"shards": [], "failed": [], "skipped": [], "disk_full": None, "error": lane_exc}
        if isinstance(result.get("disk_full"), DiskFullError):  # no checkpoint can be written: stop, keep what is
            self.disk_full = result["disk_full"]
            self.queue.clear()
            self.client.cancel([f for f, _ in self.running.values()])
            self.running.clear()
        for r in result["shards"]:
            self.count_shard(int(r["shard"]), int(r["cases"]), r.get("usage"))
        for shard in result["skipped"]:  # finished by an earlier run of this lane (its worker was lost)
            self.count_shard(shard, self.open_shards.get(shard, 0), None)
        for r in result["failed"]:
            self.stats.failed_shards.append({"shard": r["shard"], "error": r["error"]})
            self.open_shards.pop(r["shard"], None)
            self.logger.error("Shard %d failed after retries: %s", r["shard"], r["error"])
        if "error" in result:
            lost: BaseException = result["error"]
            for j in lane.shards:
                if j.shard not in self.counted and j.shard in self.open_shards:
                    self.open_shards.pop(j.shard)
                    self.stats.failed_shards.append({"shard": j.shard, "error": f"{type(lost).__name__}: {str(lost)[:300]}"})
                    self.logger.error("Shard %d failed after retries: %s", j.shard, lost)
        status = self.live.setdefault(lane.lane, {})
        status["finished"] = True
        status["retries"] = result.get("retries", status.get("retries", 0))
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, int(result.get("peak_in_flight", 0)))
        self.stats.limit_decreases += int(result.get("limit_decreases", 0))

    def report(self) -> None:
        """Progress to the artifact and the flow's log; the cost ledger, so a resumed run knows what was spent."""
        self.artifact = _progress_artifact(self.artifact, self.done_cases / self.cases_total * 100, self.describe(), self.logger)
        self.logger.info(
            "%d of %d cases done, %d in flight, %d retried (%d shards run, %d failed)%s.",
            self.done_cases,
            self.cases_total,
            self.in_flight(),
            self.retried(),
            self.stats.shards_run,
            len(self.stats.failed_shards),
            f"; {self.cost.describe()}" if self.cost else "",
        )
        if self.cost is not None:
            self.cost.save()

    # -- the end --------------------------------------------------------------------------------
    def finish(self) -> FanoutStats:
        """Unsubscribe, say how it ended (full disk: raise; budget: shards held back), return the stats."""
        for t in (self.topic, f"{self.topic}-status"):
            try:
                self.client.unsubscribe_topic(t)
            except Exception:  # noqa: BLE001, S110 - the client may be closing
                pass
        stats = self.stats
        stats.retries = self.retried()
        if self.disk_full is not None:  # the run stops with one clear error; rerun with the same --run-id to resume
            self.logger.warning(
                "Fan-out stopped: the disk is full (%d of %d shards done before it filled). Rerun with the same --run-id "
                "to resume from the checkpointed shards.",
                stats.shards_resumed + stats.shards_run,
                stats.shards_total,
            )
            self.bar.finish("fan-out")
            raise self.disk_full
        if self.queue:
            stats.budget_exceeded, stats.shards_held = True, len(self.queue)
            self.logger.warning(
                "Budget reached: %s; %d shards (%d cases) held back and not run.",
                self.cost.describe() if self.cost else "",
                len(self.queue),
                sum(len(j.cases) for j in self.queue),
            )
        if self.cost is not None:
            self.cost.save(force=True)
        _progress_artifact(self.artifact, self.done_cases / self.cases_total * 100, self.describe(), self.logger)
        self.bar.finish("fan-out")
        stats.seconds = time.perf_counter() - self.started
        self.logger.info(
            "Fan-out done in %.1f s: %d lanes, at most %d agent calls in flight (of %d allowed), %d retries.",
            stats.seconds,
            stats.lanes,
            stats.peak_in_flight,
            self.concurrency,
            stats.retries,
        )
        return stats
