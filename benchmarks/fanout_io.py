"""Cases in flight: 1,000 agent calls of 2 s each through the real flow, against the ideal and a plain loop.

All on the default LocalCluster (one worker process per core, 2 threads each) against a real Prefect
server, scenario s12 at 100,000 records (cheap to score), ``--concurrency 1000``:

(a) an HTTP agent on loopback (benchmarks/io_agent.py, its own process) that answers each request
    after 2 s with the right answer computed up front, and counts the requests open at once;
(b) an ``async def`` Python agent that sleeps 2 s (``scenario_pipeline.agents.builtin:sleep_2s``), in
    its bwrap sandbox;
(c) a plain asyncio + httpx loop in this one process sending the same 1,000 requests (same bodies)
    at the same concurrency to the same agent, with its connections in httpx clients of 25 each (one
    client holding all 1,000 connections is far slower, ``--naive-plain`` times it): the yardstick for (a);
(d) a 429 storm: the agent answers 429 with ``Retry-After: 1`` to 30% of requests (at most 3 times
    per case); every case must complete with the right answer and no case may fail for a 429.

Peak RSS is the sum over every process of the benchmark (this one, the flow's LocalCluster with its
workers and sandboxes, the agent), sampled every 0.1 s. Fan-out seconds are the flow's own
(``timings.fanout_seconds``: dispatch, every call, scoring, every checkpoint).

    .venv/bin/python benchmarks/fanout_io.py [--cases 1000] [--concurrency 1000] [--repeat 1]

Bars: (a)/2 s <= 3.0, (b)/2 s <= 3.0, (a)/(c) <= 1.5, peak RSS < 2 GB. Last line: the three ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
DELAY_S = 2.0
RECORDS = 100_000


class PeakRss:
    """The peak of the summed RSS of this process, its descendants and the extra pids given."""

    def __init__(self, extra: list[int]) -> None:
        import psutil

        self.psutil, self.extra, self.peak, self._stop = psutil, extra, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        ps = self.psutil
        me = ps.Process()
        procs = [me, *me.children(recursive=True)]
        for pid in self.extra:
            try:
                p = ps.Process(pid)
                procs += [p, *p.children(recursive=True)]
            except ps.Error:
                pass
        total = 0
        for p in {p.pid: p for p in procs}.values():
            try:
                total += p.memory_info().rss
            except ps.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self.peak = 0
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def _answers(cases: int, seed: int) -> dict[str, dict]:
    from scenario_pipeline.scenarios.registry import get_scenario

    sc = get_scenario("s12")
    return {
        c.input["predicate"]["value"]: {"record_ids": sorted(c.truth["record_ids"])}
        for c in sc.draw_cases(sc.dataset_spec(RECORDS, seed), cases, seed)
    }


def _agent(port: int, answers: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "io_agent.py"),
            "--port",
            str(port),
            "--delay",
            str(DELAY_S),
            "--answers",
            str(answers),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert "listening" in line, line
    return proc


def _stats(port: int) -> dict:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()


def _reset(port: int) -> None:
    import httpx

    httpx.post(f"http://127.0.0.1:{port}/stats/reset", timeout=10)


def _flow(data: str, agent: str, cases: int, concurrency: int, seed: int, **kw: object) -> dict:
    from scenario_pipeline.flows.run_scenario import run_scenario

    return run_scenario(
        scenario="s12",
        records=RECORDS,
        cases=cases,
        agent=agent,
        seed=seed,
        run_id=f"io-bench-{uuid.uuid4().hex[:8]}",
        storage_url=data,
        warehouse_url=f"duckdb://{data}/warehouse.duckdb",
        concurrency=concurrency,
        fail_on_threshold=False,
        **kw,
    )


async def _plain(url: str, bodies: list[bytes], concurrency: int, per_client: int) -> float:
    """The yardstick: one process, a semaphore of ``concurrency``, httpx.AsyncClients of ``per_client``
    connections each (all of them in one client when ``per_client`` >= concurrency); seconds for every answer."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [
        httpx.AsyncClient(limits=limits, timeout=60, headers={"Content-Type": "application/json"})
        for _ in range(max(1, -(-concurrency // per_client)))
    ]

    async def one(i: int, body: bytes) -> None:
        async with sem:
            resp = await clients[i % len(clients)].post(url, content=body)
            resp.raise_for_status()
            json.loads(resp.content)

    started = time.perf_counter()
    await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    seconds = time.perf_counter() - started
    for c in clients:
        await c.aclose()
    return seconds


def _bodies(cases: int, seed: int, data: str) -> list[bytes]:
    """The exact bodies the flow's HTTP client sends (agents/loader.py AsyncHttpAgent)."""
    from scenario_pipeline.agents.loader import AsyncHttpAgent
    from scenario_pipeline.datasets.manifest import dataset_root
    from scenario_pipeline.scenarios.registry import get_scenario
    from scenario_pipeline.storage import Storage

    sc = get_scenario("s12")
    spec = sc.dataset_spec(RECORDS, seed)
    root = dataset_root(Storage.from_url(data), spec)
    context = {
        "scenario": sc.id,
        "run_id": "plain",
        "records": RECORDS,
        "dataset": {
            "name": "events",
            "url": root.url,
            "manifest_url": root.uri("_manifest.json"),
            "rows": RECORDS,
            "tables": {"events": root.uri("events")},
        },
        "limits": {"timeout_s": 60.0, "max_answer_bytes": 1_000_000},
    }
    ctx = AsyncHttpAgent.context_json(context)
    return [AsyncHttpAgent.body(dict(c.input), ctx) for c in sc.draw_cases(spec, cases, seed)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--skip-storm", action="store_true")
    ap.add_argument("--naive-plain", action="store_true", help="also time the plain loop with a single httpx client (slow)")
    args = ap.parse_args()

    from scenario_pipeline.infra.prefect_server import ensure_api

    print(f"Prefect API: {ensure_api().api_url}")
    data = tempfile.mkdtemp(prefix="fanout-io-bench-")
    answers = Path(data) / "answers.json"
    answers.write_text(json.dumps(_answers(args.cases, args.seed)))
    url = f"http://127.0.0.1:{args.port}/"
    agent = _agent(args.port, answers)
    results: dict[str, list[float]] = {"http": [], "async": [], "plain": []}
    rss: list[int] = []
    try:
        _flow(data, url, 10, 10, args.seed)  # generates the dataset; warms imports
        for r in range(args.repeat):
            _reset(args.port)
            with PeakRss([agent.pid]) as peak:
                s = _flow(data, url, args.cases, args.concurrency, args.seed)
            st = _stats(args.port)
            assert s["counts"]["cases"] == args.cases and s["counts"]["passed"] == args.cases, s["counts"]
            results["http"].append(s["timings"]["fanout_seconds"])
            rss.append(peak.peak)
            print(
                f"repeat {r + 1}: (a) HTTP agent: fan-out {s['timings']['fanout_seconds']:.3f} s for {args.cases} cases of {DELAY_S:g} s, "
                f"{st['max_open']} requests open at once at the agent (allowed {args.concurrency}), {s['counts']['passed']} right "
                f"answers, whole flow {s['timings']['total_seconds']:.1f} s, peak RSS of all processes {peak.peak / 2**20:.0f} MiB"
            )
            with PeakRss([agent.pid]) as peak:
                s = _flow(data, "scenario_pipeline.agents.builtin:sleep_2s", args.cases, args.concurrency, args.seed)
            assert s["counts"]["cases"] == args.cases and s["counts"]["errors"] == 0, s["counts"]
            results["async"].append(s["timings"]["fanout_seconds"])
            rss.append(peak.peak)
            print(
                f"repeat {r + 1}: (b) async def agent (bwrap sandbox): fan-out {s['timings']['fanout_seconds']:.3f} s, "
                f"{s['concurrency']['peak_in_flight']} calls in flight at most, sandbox: {s['sandbox']}, peak RSS {peak.peak / 2**20:.0f} MiB"
            )
            bodies = _bodies(args.cases, args.seed, data)
            _reset(args.port)
            plain = asyncio.run(_plain(url, bodies, args.concurrency, 25))
            results["plain"].append(plain)
            print(
                f"repeat {r + 1}: (c) plain asyncio + httpx loop, one process, clients of 25 connections: {plain:.3f} s, "
                f"{_stats(args.port)['max_open']} open at once"
            )
            if args.naive_plain:
                naive = asyncio.run(_plain(url, bodies, args.concurrency, args.concurrency))
                print(
                    f"repeat {r + 1}:     the same loop with one httpx.AsyncClient of {args.concurrency} connections: {naive:.3f} s"
                )
    finally:
        agent.terminate()
        agent.wait(10)

    storm_line = "storm skipped"
    if not args.skip_storm:
        agent = _agent(args.port, answers, "--rate-limit", "0.3", "--retry-after", "1", "--max-refusals", "3")
        try:
            with PeakRss([agent.pid]) as peak:
                s = _flow(data, url, args.cases, args.concurrency, args.seed, max_retries=5)
            st = _stats(args.port)
        finally:
            agent.terminate()
            agent.wait(10)
        c = s["counts"]
        refused = int(st["by_status"].get("429", 0))
        ok = c["cases"] == args.cases and c["passed"] == args.cases and c["errors"] == 0 and c["retries"] == refused
        storm_line = (
            f"(d) 429 storm: {refused} of {st['requests']} requests answered 429 (Retry-After: 1); {c['passed']} of {args.cases} "
            f"cases right, {c['errors']} failed, {c['retries']} retries counted ({c['cases_retried']} cases retried), "
            f"lane limits halved {s['concurrency']['limit_decreases']} times; fan-out {s['timings']['fanout_seconds']:.1f} s: "
            + ("OK" if ok else "FAILED")
        )
        print(storm_line)
        assert ok, s["counts"]

    a, b, p = (statistics.median(results[k]) for k in ("http", "async", "plain"))
    print(
        f"median of {args.repeat}: (a) {a:.3f} s, (b) {b:.3f} s, (c) {p:.3f} s; ideal {DELAY_S:g} s; peak RSS {max(rss) / 2**20:.0f} MiB "
        f"(bar < 2048 MiB); {storm_line.split(':')[0]}"
    )
    print(
        f"ratio http/ideal = {a / DELAY_S:.3f} (bar <= 3.0); async/ideal = {b / DELAY_S:.3f} (bar <= 3.0); "
        f"flow/plain = {a / p:.3f} (bar <= 1.5)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(HERE.parent))
    main()
