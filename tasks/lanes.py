"""Stage 2's inner loop: a fan-out lane runs many shards' cases at once in one Dask worker thread.

Agent calls mostly wait (on a model API, on the network), so cases in flight must not be tied to
CPU threads. A lane is one Dask task holding one worker thread; it runs an asyncio event loop (one
per worker thread, kept between lanes, so sandboxes and HTTP connections are reused) and, on it,
every case of every shard it was given, at most ``concurrency`` calls at a time (its share of the
run's ``--concurrency``; the shares add up to at most the run's). Each shard is scored and
checkpointed (tasks/checkpoint.py ``write_shard``, with its MAC sidecar) as soon as its own cases
are done, so a kill loses only the shards still open.

How an agent is called:
- HTTP: ``AsyncHttpAgent`` (agents/loader.py), one pooled ``httpx.AsyncClient`` per lane;
- ``async def`` Python agents: one sandbox process running an event loop, many calls at once by
  request id (tasks/sandbox_mux.py);
- synchronous Python agents: a pool of one-call-at-a-time sandboxes (tasks/sandbox.py), which grows,
  up to ``sync_processes``, only while its processes wait rather than compute.

Rate limits: a call the agent refused for now (HTTP 429 or ``RateLimited``: ``rate_limited``; HTTP 503,
a connection reset or a connect timeout: ``unavailable``) is retried after an exponential backoff with
full jitter (after the Retry-After the agent gave), up to ``max_retries`` times, holding no slot while it
waits; a 429 also halves the lane's limit on calls in flight (at most once per round of calls) and
each round of successful calls adds one back, up to the lane's share (AIMD). A case fails for it only
when every attempt was refused ("rate limited: HTTP 429 after 6 attempts").

Progress goes to the flow as Dask worker events (topic ``{topic}``: one per finished shard;
``{topic}-status``: calls in flight, retries, the lane's limit, twice a second); the lane's return value
repeats every shard's result, so nothing depends on an event arriving.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from scenario_pipeline.agents.loader import AsyncHttpAgent, agent_kind, backoff_s
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.storage import DiskFullError, Storage
from scenario_pipeline.tasks.sandbox import CallResult, Sandbox, SandboxPolicy
from scenario_pipeline.tasks.score import Limits

RETRYABLE = ("rate_limited", "unavailable")
SHARD_ATTEMPTS = 3  # a shard whose scoring or checkpoint raised is run again, twice (as Dask's retries=2 did)
STATUS_EVERY_S = 0.5


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
class LaneJob:
    """One lane: its shards, its share of the run's concurrency, and where to report."""

    lane: int
    topic: str  # Dask event topic of the fan-out (this attempt of the run)
    shards: list[ShardJob]
    concurrency: int
    max_retries: int = 5
    sync_processes: int = 8

    @property
    def cases(self) -> int:
        return sum(len(s.cases) for s in self.shards)


# ---------------------------------------------------------------------------------------------
# Calls in flight: the lane's AIMD limit
# ---------------------------------------------------------------------------------------------
class Limiter:
    """At most ``limit`` calls in flight (``cap`` at first). A rate-limited call halves the limit, once
    per round: only a call that started after the last decrease can decrease it again; each success
    adds 1/limit (one per round of calls) back, up to ``cap``. Retries wait ahead of first attempts."""

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self.in_flight = 0
        self.peak = 0
        self.epoch = 0
        self.decreases = 0
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int = 1) -> int:
        """A slot; returns the epoch it was granted in (give it back to ``release``)."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self._take()
            return self.epoch
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(self.epoch, "other")  # granted just as it was cancelled: give it back
            raise
        return self.epoch

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self, epoch: int, outcome: str) -> None:
        """``outcome``: "ok" (an answer, or a failure of the agent's own), "limited" (rate limited) or "other"."""
        self.in_flight -= 1
        if outcome == "limited":
            if epoch == self.epoch:
                self.limit = max(1.0, self.limit / 2)
                self.epoch += 1
                self.decreases += 1
        elif outcome == "ok" and self.limit < self.cap:
            self.limit = min(float(self.cap), self.limit + 1.0 / self.limit)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                self._take()
                fut.set_result(None)


# ---------------------------------------------------------------------------------------------
# How calls reach the agent
# ---------------------------------------------------------------------------------------------
class HttpRunner:
    def __init__(self, url: str, cap: int) -> None:
        self.agent = AsyncHttpAgent(url, cap)
        self.cap = cap
        self._ctx: tuple[str, bytes] | None = None

    def resize(self, cap: int, sync_processes: int, st: Any) -> None:
        if cap > self.agent.max_connections:  # a bigger share than the pool was made for: a bigger pool
            self.close()
            self.agent = AsyncHttpAgent(self.agent.url, cap)

    async def call(self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int) -> CallResult:
        if self._ctx is None or self._ctx[0] != context_key:
            self._ctx = (context_key, AsyncHttpAgent.context_json(context))
        r = await self.agent.attempt(AsyncHttpAgent.body(case_input, self._ctx[1]), timeout_s, max_bytes)
        return CallResult(r.answer, r.error, r.latency_ms, None, r.kind, r.retry_after)

    def close(self) -> None:
        """Called on the lane's loop (a new run retires this one): its connections close in the background."""
        try:
            asyncio.get_running_loop().create_task(self.agent.aclose())
        except RuntimeError:
            pass  # no loop running: the client goes with the process


class MuxRunner:
    """An ``async def`` agent: one sandbox process serves every call of the lane (restarted if it dies)."""

    def __init__(self, first: Any, make: Any, starter: ThreadPoolExecutor) -> None:
        self.mux = first
        self.make = make
        self.starter = starter
        self._lock = asyncio.Lock()

    def resize(self, cap: int, sync_processes: int, st: Any) -> None:
        pass  # one process serves any number of calls

    async def _current(self) -> Any:
        async with self._lock:
            if not self.mux.alive():
                self.mux.kill()
                box = self.make()
                try:
                    await asyncio.get_running_loop().run_in_executor(self.starter, box._start)
                except OSError as exc:
                    box.kill()
                    return exc
                from scenario_pipeline.tasks.sandbox_mux import MuxSandbox

                self.mux = MuxSandbox(box)
                await self.mux.open()
            return self.mux

    async def call(self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int) -> CallResult:
        mux = await self._current()
        if isinstance(mux, OSError):
            return CallResult(None, f"agent failed to load: the sandbox did not start: {mux}", 0.0, None, "load")
        return await mux.call(case_input, context, context_key, timeout_s, max_bytes)

    def close(self) -> None:
        self.mux.kill()


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rpartition(b")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def _host_cpu() -> tuple[int, int] | None:
    """(all, idle) CPU ticks of the whole machine since boot (/proc/stat), or None where unreadable."""
    try:
        with open("/proc/stat", "rb") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None


class PoolRunner:
    """A synchronous agent: one call at a time per sandbox process (exact limits, kills and reads per
    call), in a pool that grows, up to ``size``, while every process is busy with a call that waits
    (under half a CPU since it started) and more calls are waiting; a pool of agents that compute
    stays small, since more processes would only share the same cores."""

    GROW_AFTER_S = 0.25
    HOST_IDLE_MIN = 0.25  # grow only while a quarter of the machine's CPU is idle: else they are computing, not waiting

    def __init__(self, first: Sandbox, make: Any, size: int, calls: ThreadPoolExecutor, starter: ThreadPoolExecutor) -> None:
        self.make, self.size, self.calls, self.starter = make, max(1, size), calls, starter
        self.boxes: list[Sandbox] = [first]
        self.idle: deque[Sandbox] = deque([first])
        self.busy: dict[int, tuple[Sandbox, float, int | None]] = {}
        self.waiters: deque[asyncio.Future] = deque()
        self.starting = 0
        self._watch: asyncio.Task | None = None
        self._host = _host_cpu()

    async def _acquire(self) -> Sandbox:
        if self.idle and not self.waiters:
            return self.idle.popleft()
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._grow())
        return await fut

    def _release(self, box: Sandbox) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(box)
                return
        self.idle.append(box)

    def _agent_pid(self, box: Sandbox) -> int | None:
        if box.box is not None:
            return box.box.main_pid or None
        return box.proc.pid if box.proc is not None else None

    def _host_idle(self) -> bool:
        """The machine had idle CPU since the last look. Without it, processes that share busy cores also
        use under half a CPU each, and would look like waiting ones: growing would only make them slower."""
        host, self._host = self._host, _host_cpu()
        if host is None or self._host is None:
            return True
        total, idle = self._host[0] - host[0], self._host[1] - host[1]
        return total <= 0 or idle / total >= self.HOST_IDLE_MIN

    def _waiting_on_io(self) -> bool:
        """Every process is busy, each in its call for a while and each using under half a CPU in it, and
        the machine has idle CPU: more processes would add calls that wait, not calls that compute on the
        same cores."""
        now = time.perf_counter()
        if not self._host_idle():
            return False
        if len(self.busy) < len(self.boxes):
            return False
        shares = []
        for box, since, ticks0 in self.busy.values():
            if now - since < self.GROW_AFTER_S:
                return False
            pid = self._agent_pid(box)
            ticks = _cpu_ticks(pid) if pid else None
            if ticks is None or ticks0 is None:
                return False  # not measurable (a process starting again): wait and see
            shares.append((ticks - ticks0) / _CLK_TCK / (now - since))
        return bool(shares) and max(shares) < 0.5

    async def _grow(self) -> None:
        loop = asyncio.get_running_loop()
        while any(not f.done() for f in self.waiters):
            room = self.size - len(self.boxes) - self.starting
            waiting = sum(not f.done() for f in self.waiters)
            if room > 0 and waiting > self.starting and self._waiting_on_io():
                for _ in range(min(room, waiting - self.starting, len(self.boxes))):  # at most doubling per look
                    self.starting += 1
                    loop.create_task(self._start_one())
            await asyncio.sleep(0.05)

    async def _start_one(self) -> None:
        box = self.make()
        try:
            await asyncio.get_running_loop().run_in_executor(self.starter, box._start)
        except OSError:
            box.kill()  # a call on it starts it again, and reports why it cannot
        finally:
            self.starting -= 1
        self.boxes.append(box)
        self._release(box)

    def resize(self, cap: int, sync_processes: int, st: Any) -> None:
        self.size = max(1, min(cap, sync_processes)) if not self.boxes[0].unavailable else 1
        self.calls = st.call_threads(self.size)

    async def reserve(self) -> Sandbox:
        """A process for the next call: taken before a slot of the lane's limit, so that calls waiting for
        a process are not counted in flight."""
        return await self._acquire()

    def unreserve(self, box: Sandbox) -> None:
        self._release(box)

    async def call(
        self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int, box: Sandbox | None = None
    ) -> CallResult:
        own = box is None
        if box is None:
            box = await self._acquire()
        pid = self._agent_pid(box)
        self.busy[id(box)] = (box, time.perf_counter(), _cpu_ticks(pid) if pid else None)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.calls, box.call, case_input, context, context_key, timeout_s, max_bytes
            )
        finally:
            self.busy.pop(id(box), None)
            if own:
                self._release(box)

    def close(self) -> None:
        for box in self.boxes:
            box.kill()


# ---------------------------------------------------------------------------------------------
# Per worker thread: the event loop and the runners, kept between lanes
# ---------------------------------------------------------------------------------------------
class _ThreadState:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.io = ThreadPoolExecutor(4, thread_name_prefix="lane-io")  # scoring, checkpoints
        self.starter = ThreadPoolExecutor(4, thread_name_prefix="lane-start")  # sandbox starts
        self.calls = ThreadPoolExecutor(1, thread_name_prefix="lane-call")  # synchronous agents' calls
        self.runners: dict[tuple, Any] = {}

    def call_threads(self, n: int) -> ThreadPoolExecutor:
        if self.calls._max_workers < n:
            self.calls.shutdown(wait=False)
            self.calls = ThreadPoolExecutor(n, thread_name_prefix="lane-call")
        return self.calls


_LOCAL = threading.local()


def _state() -> _ThreadState:
    st = getattr(_LOCAL, "state", None)
    if st is None:
        st = _LOCAL.state = _ThreadState()
    return st


async def _runner(st: _ThreadState, job: LaneJob, readonly: str) -> Any:
    first = job.shards[0]
    spec, scenario_id, policy = first.agent_spec, first.scenario_id, first.policy
    kind = agent_kind(spec)
    if kind == "http":
        from scenario_pipeline.settings import AgentSettings

        secret = AgentSettings().authorization
        key: tuple = ("http", spec, secret.get_secret_value() if secret else None)
    else:
        key = ("python", spec, scenario_id, readonly, policy)
    runner = st.runners.get(key)
    if runner is not None:
        runner.resize(job.concurrency, job.sync_processes, st)
        return runner
    for other in st.runners.values():  # a new run (or agent): retire the previous one's processes and connections
        other.close()
    st.runners.clear()
    if kind == "http":
        runner = HttpRunner(spec, job.concurrency)
    else:

        def make() -> Sandbox:
            return Sandbox(spec, scenario_id, readonly, policy)

        box = make()
        started = False
        if not box.unavailable:
            try:
                await asyncio.get_running_loop().run_in_executor(st.starter, box._start)
                started = True
            except OSError:
                box.kill()  # its first call starts it again, and reports why it cannot
        if started and box.agent_async:
            from scenario_pipeline.tasks.sandbox_mux import MuxSandbox

            mux = MuxSandbox(box)
            await mux.open()
            runner = MuxRunner(mux, make, st.starter)
        else:
            size = 1 if box.unavailable else min(job.concurrency, job.sync_processes)
            runner = PoolRunner(box, make, size, st.call_threads(size), st.starter)
    st.runners[key] = runner
    return runner


# ---------------------------------------------------------------------------------------------
# The lane
# ---------------------------------------------------------------------------------------------
def _worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except ValueError:
        return None


def _reported_shards(worker: Any, topic: str) -> set[int]:
    """Shards of this fan-out already reported finished (by an earlier run of this lane, on a worker that
    was lost since): not run again."""
    if worker is None:
        return set()
    try:
        from distributed.utils import sync

        events = sync(worker.loop, worker.scheduler.events, topic=topic)
    except Exception:  # noqa: BLE001 - without the list every shard runs: still each case once in the results
        return set()
    return {int(msg["shard"]) for _, msg in events if isinstance(msg, dict) and msg.get("kind") == "shard"}


def run_lane(job: LaneJob, context: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: run the lane's shards on this thread's event loop; every shard's result."""
    st = _state()
    lane = _Lane(job, context, st)
    try:
        return st.loop.run_until_complete(lane.run())
    finally:
        # a pool's growth watcher must not stay pending on the thread's loop between lanes (it would be
        # destroyed pending at exit); the next lane's first wait starts it again
        watch = getattr(lane.runner, "_watch", None)
        if watch is not None and not watch.done():
            watch.cancel()
            st.loop.run_until_complete(asyncio.gather(watch, return_exceptions=True))


class _Lane:
    def __init__(self, job: LaneJob, context: dict[str, Any], st: _ThreadState) -> None:
        from scenario_pipeline.cost.measure import LaneMeter
        from scenario_pipeline.scenarios.registry import get_scenario

        self.job, self.context, self.st = job, context, st
        self.meter = LaneMeter()
        self.limiter = Limiter(job.concurrency)
        first = job.shards[0]
        self.scenario = get_scenario(first.scenario_id)
        self.storage = Storage.from_url(first.storage_url)
        dataset_url = context.get("dataset", {}).get("url", "")
        self.readonly = dataset_url.removeprefix("file://") if dataset_url.startswith("file://") else ""
        self.worker = _worker()
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        self.retries = 0
        self.done_cases = 0
        self.runner: Any = None

    def _event(self, topic: str, msg: dict[str, Any]) -> None:
        if self.worker is not None:
            try:
                self.worker.log_event(topic, msg)
            except Exception:  # noqa: BLE001, S110 - progress is best effort; the lane's result carries everything
                pass

    async def _status(self) -> None:
        while True:
            self._event(
                f"{self.job.topic}-status",
                {
                    "lane": self.job.lane,
                    "in_flight": self.limiter.in_flight,
                    "retries": self.retries,
                    "limit": int(self.limiter.limit),
                    "done": self.done_cases,
                },
            )
            await asyncio.sleep(STATUS_EVERY_S)

    async def run(self) -> dict[str, Any]:
        job = self.job
        skip = _reported_shards(self.worker, job.topic)
        todo = [s for s in job.shards if s.shard not in skip]
        for s in todo:
            self.meter.start(s.shard)
        out: dict[str, Any] = {
            "lane": job.lane,
            "shards": [],
            "failed": [],
            "skipped": sorted(skip & {s.shard for s in job.shards}),
            "disk_full": None,
        }
        status = asyncio.get_running_loop().create_task(self._status())
        try:
            self.runner = await _runner(self.st, job, self.readonly)
            tasks = {asyncio.get_running_loop().create_task(self._shard(s)): s for s in todo}
            for fut in asyncio.as_completed(list(tasks)):
                result = await fut
                if isinstance(result, DiskFullError):
                    out["disk_full"] = result
                    for t, s in tasks.items():
                        if not t.done():
                            t.cancel()
                            self.meter.abandon(s.shard)
                    break
                if "error" in result:
                    out["failed"].append(result)
                else:
                    out["shards"].append(result)
        finally:
            status.cancel()
        out["peak_in_flight"] = self.limiter.peak
        out["retries"] = self.retries
        out["limit_decreases"] = self.limiter.decreases
        self._event(
            f"{job.topic}-status",
            {
                "lane": job.lane,
                "in_flight": 0,
                "retries": self.retries,
                "limit": int(self.limiter.limit),
                "done": self.done_cases,
                "finished": True,
            },
        )
        return out

    async def _shard(self, sj: ShardJob) -> Any:
        last: BaseException | None = None
        for _ in range(SHARD_ATTEMPTS):
            try:
                return await self._shard_once(sj)
            except DiskFullError as exc:
                self.meter.abandon(sj.shard)
                return exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken shard must not lose the others
                last = exc
        self.meter.abandon(sj.shard)
        return {"shard": sj.shard, "error": f"{type(last).__name__}: {str(last)[:300]}"}

    async def _shard_once(self, sj: ShardJob) -> dict[str, Any]:
        calls = await asyncio.gather(*(self._case(sj, c) for c in sj.cases))
        loop = asyncio.get_running_loop()
        rows, checkpoint, nbytes, cpu = await loop.run_in_executor(self.st.io, self._finish, sj, calls)
        usage = self.meter.finish(sj.shard, rows, cpu, nbytes)
        retries = sum(r["retries"] for r in rows)
        result = {
            "kind": "shard",
            "shard": sj.shard,
            "cases": len(rows),
            "passed": sum(r["passed"] for r in rows),
            "retries": retries,
            "usage": usage.to_dict(),
            "checkpoint": checkpoint,
        }
        self._event(self.job.topic, result)
        return result

    def _finish(self, sj: ShardJob, calls: list[tuple[CallResult, int]]) -> tuple[list[dict[str, Any]], str, int, float]:
        """Score the shard's answers and write its checkpoint (an I/O thread of the lane)."""
        from scenario_pipeline.errors import StorageError
        from scenario_pipeline.tasks.checkpoint import write_shard
        from scenario_pipeline.tasks.score import score_result

        cpu0 = time.thread_time()
        rows = [
            score_result(self.scenario, case, result, self.context, sj.run_id, sj.shard, retries)
            for case, (result, retries) in zip(sj.cases, calls, strict=False)
        ]
        for r in rows:
            r["worker"] = self.where
        checkpoint = write_shard(self.storage, sj.run_id, sj.shard, rows)
        try:
            nbytes = self.storage.size(checkpoint)
        except StorageError:
            nbytes = 0  # the shard is checkpointed: a failed measurement must not fail (and rerun) it
        return rows, checkpoint, nbytes, time.thread_time() - cpu0

    async def _case(self, sj: ShardJob, case: Case) -> tuple[CallResult, int]:
        """One case's call, retried while the agent refuses it for now; (the last result, retries)."""
        limits, job = sj.limits, self.job
        attempts, priority = 0, 1
        pool = self.runner if isinstance(self.runner, PoolRunner) else None
        while True:
            box = await pool.reserve() if pool is not None else None
            try:
                epoch = await self.limiter.acquire(priority)
                attempts += 1
                outcome = "other"
                try:
                    if box is not None and pool is not None:
                        result = await pool.call(
                            dict(case.input), self.context, sj.run_id, limits.timeout_s, limits.max_answer_bytes, box
                        )
                    else:
                        result = await self.runner.call(
                            dict(case.input), self.context, sj.run_id, limits.timeout_s, limits.max_answer_bytes
                        )
                    outcome = (
                        "limited"
                        if result.error_kind == "rate_limited"
                        else ("other" if result.error_kind in RETRYABLE else "ok")
                    )
                finally:
                    self.limiter.release(epoch, outcome)
            finally:
                if box is not None and pool is not None:
                    pool.unreserve(box)
            if result.error_kind not in RETRYABLE:
                self.done_cases += 1
                return result, attempts - 1
            if attempts > job.max_retries:
                result.error = f"{result.error} after {attempts} attempts"
                self.done_cases += 1
                return result, attempts - 1
            self.retries += 1
            await asyncio.sleep(backoff_s(attempts, result.retry_after))
            priority = 0


__all__ = ["LaneJob", "Limiter", "ShardJob", "run_lane"]
