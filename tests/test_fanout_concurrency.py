"""Issue 15: many agent calls in flight, independent of Dask threads; rate limits and retries.

The fast tests check the pieces by hand (the AIMD limiter, Retry-After, backoff, how the run's
concurrency is split across lanes, how a lane's time is shared among its shards). The slow ones
run `scenario run` end to end against a local asyncio HTTP agent (benchmarks/io_agent.py) that
measures, at the agent, how many requests are open at once, and that answers 429/503/resets on
a script, and against Python agents that wait (tests/agents_io.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import duckdb
import pytest

from benchmarks.io_agent import Script, serve_in_thread
from tests.helpers import REPO, VENV_BIN, run_cli

SEED = 20261122


# ---------------------------------------------------------------------------------------------
# The pieces, by hand
# ---------------------------------------------------------------------------------------------
def test_the_limiter_halves_once_per_round_and_adds_one_per_round_back() -> None:
    from scenario_pipeline.tasks.lanes import Limiter

    async def scenario() -> None:
        lim = Limiter(8)
        epochs = [await lim.acquire() for _ in range(8)]
        assert lim.in_flight == 8 and lim.peak == 8 and epochs == [0] * 8
        blocked = asyncio.get_running_loop().create_task(lim.acquire())
        await asyncio.sleep(0)
        assert not blocked.done()  # a ninth waits
        for e in epochs[:3]:  # three 429s of one round: one decrease, 8 -> 4
            lim.release(e, "limited")
        assert lim.limit == 4.0 and lim.decreases == 1 and lim.in_flight == 5
        await asyncio.sleep(0)
        assert not blocked.done()  # 5 in flight > 4 allowed
        for e in epochs[3:5]:
            lim.release(e, "ok")  # 4 + 1/4 + 1/4.25 = 4.485...
        assert 4.48 < lim.limit < 4.49 and lim.in_flight == 4  # 3 left, and a slot again: the ninth got it
        await asyncio.sleep(0)
        assert blocked.done()
        e9 = blocked.result()
        assert e9 == 1  # granted after the decrease: its 429 may decrease again
        lim.release(e9, "limited")
        assert lim.limit == pytest.approx(4.4852 / 2, rel=1e-3) and lim.decreases == 2
        for e in epochs[5:]:
            lim.release(e, "limited")  # old round: no further decrease
        assert lim.decreases == 2 and lim.in_flight == 0
        # retries (priority 0) are served before first attempts (priority 1)
        lim2 = Limiter(1)
        e = await lim2.acquire()
        first = asyncio.get_running_loop().create_task(lim2.acquire(1))
        retry = asyncio.get_running_loop().create_task(lim2.acquire(0))
        await asyncio.sleep(0)
        lim2.release(e, "ok")
        await asyncio.sleep(0)
        assert retry.done() and not first.done()
        first.cancel()
        await asyncio.sleep(0)
        lim2.release(retry.result(), "ok")
        assert lim2.in_flight == 0  # the cancelled waiter got nothing
        # never below 1, never above the cap
        for _ in range(5):
            lim2.release(await lim2.acquire(0), "limited")
        assert lim2.limit == 1.0
        for _ in range(50):
            lim2.release(await lim2.acquire(0), "ok")
        assert lim2.limit == 1.0 == lim2.cap

    asyncio.run(scenario())


def test_retry_after_in_seconds_or_as_an_http_date_and_full_jitter_backoff() -> None:
    from scenario_pipeline.agents.loader import MAX_RETRY_AFTER_S, backoff_s, parse_retry_after

    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("1") == 1.0 and parse_retry_after(" 2.5 ") == 2.5 and parse_retry_after("0") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now.timestamp()) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now.timestamp()) == 0.0  # in the past
    assert parse_retry_after("86400") == MAX_RETRY_AFTER_S and parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("nan") is None
    for attempt in (1, 2, 5, 20):
        cap = min(30.0, 0.5 * 2 ** (attempt - 1))
        draws = [backoff_s(attempt, None) for _ in range(200)]
        assert min(draws) >= 0 and max(draws) <= cap and max(draws) > cap / 2  # full jitter over [0, cap]
    assert all(3.0 <= backoff_s(1, 3.0) <= 3.5 for _ in range(100))  # after the Retry-After, plus jitter


def test_the_runs_concurrency_is_split_across_lanes_in_proportion_and_never_exceeded() -> None:
    from scenario_pipeline.tasks.fanout import assign_lanes, split_concurrency
    from scenario_pipeline.tasks.lanes import ShardJob
    from scenario_pipeline.tasks.score import Limits

    assert split_concurrency(1000, [252, 252, 252, 244]) == [252, 252, 252, 244]  # all fit: each lane its cases
    assert split_concurrency(100, [250, 250, 250, 250]) == [25, 25, 25, 25]
    shares = split_concurrency(10, [7, 7, 7])
    assert sum(shares) == 10 and sorted(shares) == [3, 3, 4]
    assert split_concurrency(3, [1000, 1, 1]) == [1, 1, 1]  # at least one each, total kept
    for total, loads in ((7, [5, 9, 2, 30]), (999, [400, 400, 400]), (4, [10, 10, 10, 10])):
        s = split_concurrency(total, loads)
        assert sum(s) <= total and all(1 <= x <= n for x, n in zip(s, loads, strict=False))
    jobs = [ShardJob("r", "s12-search", i, [None] * n, "a", "file:///x", Limits(1, 1)) for i, n in enumerate([63] * 15 + [55])]
    groups = assign_lanes(jobs, 4)
    assert [sum(len(j.cases) for j in g) for g in groups] == [252, 252, 252, 244]
    assert [[j.shard for j in g] for g in groups][0] == [0, 4, 8, 12]  # shard order kept within a lane


def test_a_lanes_time_is_shared_among_its_open_shards_not_multiplied() -> None:
    from scenario_pipeline.cost.measure import LaneMeter

    m = LaneMeter()
    t = [100.0]
    m.t0 = m._last = 100.0
    import scenario_pipeline.cost.measure as measure

    real = measure.time.perf_counter
    measure.time.perf_counter = lambda: t[0]  # type: ignore[assignment]
    try:
        m.start(1)
        m.start(2)
        t[0] = 104.0  # 4 s, two shards open: 2 s each
        m.start(3)
        t[0] = 107.0  # 3 s, three open: 1 s each
        u1 = m.finish(1, [], 0.0, 10)
        t[0] = 109.0  # 2 s, two open: 1 s each
        u2 = m.finish(2, [], 0.0, 10)
        t[0] = 110.0  # 1 s, one open
        u3 = m.finish(3, [], 0.0, 10)
    finally:
        measure.time.perf_counter = real  # type: ignore[assignment]
    assert (u1.thread_seconds, u2.thread_seconds, u3.thread_seconds) == (3.0, 4.0, 3.0)
    assert u1.thread_seconds + u2.thread_seconds + u3.thread_seconds == 10.0  # the lane's wall time, once
    assert u1.s3_put == 1 and u1.s3_get == 1 and u1.bytes_written == 10


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
def _cases(n: int, records: int = 100_000) -> list:
    from scenario_pipeline.scenarios.registry import get_scenario

    sc = get_scenario("s12")
    return sc.draw_cases(sc.dataset_spec(records, SEED), n, SEED)


def _answers(cases: int, records: int = 100_000) -> dict[str, dict]:
    """The right answer of each S12 case, by token (what a perfect agent answers)."""
    return {c.input["predicate"]["value"]: {"record_ids": sorted(c.truth["record_ids"])} for c in _cases(cases, records)}


def _run(
    prefect_server: str,
    data_dir: Path,
    agent: str,
    cases: int,
    *extra: str,
    env: dict | None = None,
    run_id: str | None = None,
    timeout: float = 600,
) -> tuple[int, dict, str]:
    args = [
        "run",
        "s12",
        "--records",
        "100000",
        "--cases",
        str(cases),
        "--agent",
        agent,
        "--data-dir",
        str(data_dir),
        "--json",
        "--no-fail-on-threshold",
        *extra,
    ]
    if run_id:
        args += ["--run-id", run_id]
    proc = run_cli(args, {"PREFECT_API_URL": prefect_server, **(env or {})}, timeout=timeout)
    assert proc.stdout.strip(), proc.stderr[-4000:]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _rows(data_dir: Path, run_id: str) -> list[dict]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM case_results WHERE run_id = ? ORDER BY case_index", [run_id])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
    finally:
        con.close()


def _peak(log: Path) -> int:
    """The most calls in flight at once at the agent, from its start/end lines."""
    events = []
    for line in log.read_text().splitlines():
        what, _, t, *_ = line.split()
        events.append((float(t), 0 if what == "end" else 1))
    peak = cur = 0
    for _, up in sorted(events):
        cur += 1 if up else -1
        peak = max(peak, cur)
    return peak


@pytest.mark.slow
def test_concurrency_is_honoured_at_the_agent(prefect_server: str, data_dir: Path) -> None:
    """Never more than --concurrency requests open at the HTTP agent, and that many are reached; cases
    in flight do not depend on the 4 Dask threads."""
    port, agent = serve_in_thread(Script(delay_s=0.5, answers=_answers(200)))
    url = f"http://127.0.0.1:{port}/"
    for n, cases in ((7, 60), (150, 200)):
        agent.stats.max_open = 0
        started = time.monotonic()
        code, s, _ = _run(prefect_server, data_dir, url, cases, "--concurrency", str(n), "--shard-size", "5")
        assert code == 0 and s["status"] == "completed" and s["counts"]["passed"] == cases, s["counts"]
        assert agent.stats.max_open == n, (n, agent.stats.max_open)  # measured at the agent
        assert s["concurrency"]["limit"] == n and s["concurrency"]["peak_in_flight"] <= n
        if n == 150:
            assert s["timings"]["fanout_seconds"] < 8, s["timings"]  # 200 cases of 0.5 s: two rounds, not 50
        assert time.monotonic() - started < 120


@pytest.mark.slow
def test_retries_of_429_503_and_resets_are_counted_by_hand(prefect_server: str, data_dir: Path) -> None:
    """A server scripted to refuse: each refusal is one retry of that case, no case fails for it, and
    every answer is right."""
    cases = 80
    script = Script(
        delay_s=0.2, rate_limit=0.3, unavailable=0.15, reset=0.1, retry_after="0", max_refusals=3, answers=_answers(cases)
    )
    port, agent = serve_in_thread(script)
    code, s, _ = _run(
        prefect_server,
        data_dir,
        f"http://127.0.0.1:{port}/",
        cases,
        "--concurrency",
        "40",
        "--max-retries",
        "5",
        run_id="retry-1",
    )
    assert code == 0 and s["counts"]["passed"] == cases and s["counts"]["errors"] == 0, s["counts"]
    st = agent.stats
    refused = st.by_status[429] + st.by_status[503] + st.by_status["reset"]
    assert st.by_status[429] > 0 and st.by_status[503] > 0 and st.by_status["reset"] > 0, st.to_dict()
    rows = _rows(data_dir, "retry-1")
    assert sum(r["retries"] for r in rows) == refused == s["counts"]["retries"]  # every refusal retried once, counted once
    assert s["counts"]["cases_retried"] == len(st.refused_cases)
    assert st.requests == cases + refused and max(st.refused_cases.values()) <= 3
    token = {c.case_id: c.input["predicate"]["value"] for c in _cases(cases)}
    assert {r["case_id"]: r["retries"] for r in rows} == {c: st.refused_cases.get(t, 0) for c, t in token.items()}  # case by case

    # Too few retries: the case fails, saying how many attempts were made.
    script.max_refusals, script.rate_limit, script.unavailable, script.reset = 10, 1.0, 0.0, 0.0
    code, s, _ = _run(prefect_server, data_dir, f"http://127.0.0.1:{port}/", 4, "--max-retries", "2", run_id="retry-2")
    rows = _rows(data_dir, "retry-2")
    assert [(r["reason"], r["error_kind"], r["retries"]) for r in rows] == [
        ("rate limited: HTTP 429 after 3 attempts", "rate_limited", 2)
    ] * 4


@pytest.mark.slow
def test_a_real_rate_limit_halves_the_lanes_calls_in_flight(prefect_server: str, data_dir: Path) -> None:
    """One lane, 32 calls allowed, an agent that answers 429 whenever more than 8 are open: the lane's
    limit comes down (AIMD) instead of retrying into the wall, and every case is answered."""
    cases = 64
    port, agent = serve_in_thread(Script(delay_s=0.5, limit_above=8, retry_after="0", answers=_answers(cases)))
    env = {"SCENARIO_DASK_N_WORKERS": "1", "SCENARIO_DASK_THREADS_PER_WORKER": "1"}
    code, s, _ = _run(
        prefect_server,
        data_dir,
        f"http://127.0.0.1:{port}/",
        cases,
        "--concurrency",
        "32",
        "--max-retries",
        "20",
        "--shard-size",
        "64",
        env=env,
        run_id="aimd-1",
    )
    assert code == 0 and s["counts"]["passed"] == cases, s["counts"]
    assert s["concurrency"]["lanes"] == 1 and s["concurrency"]["limit_decreases"] >= 2
    refused = agent.stats.by_status[429]
    # Without the decrease every round would send 24 calls past the limit; with it, a few rounds' worth.
    assert 24 <= refused <= 80 and s["counts"]["retries"] == refused, (refused, s["counts"])


@pytest.mark.slow
def test_python_agents_rate_limited_retried_then_exhausted(prefect_server: str, data_dir: Path) -> None:
    code, s, _ = _run(prefect_server, data_dir, "tests.agents_io:async_rate_limited", 12, "--concurrency", "12", run_id="rl-py-1")
    rows = _rows(data_dir, "rl-py-1")
    assert [(r["error_kind"], r["retries"]) for r in rows] == [(None, 2)] * 12 and s["counts"]["retries"] == 24
    code, s, _ = _run(prefect_server, data_dir, "tests.agents_io:async_always_limited", 3, "--max-retries", "1", run_id="rl-py-2")
    rows = _rows(data_dir, "rl-py-2")
    assert [(r["reason"], r["error_kind"], r["retries"]) for r in rows] == [
        ("rate limited: agent raised RateLimited: quota exhausted after 2 attempts", "rate_limited", 1)
    ] * 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "agent,env",
    [("tests.agents_io:async_hangs_some", {}), ("tests.agents_io:sync_hangs_some", {"SCENARIO_FANOUT_SYNC_PROCESSES": "12"})],
    ids=["async", "sync"],
)
def test_the_case_time_limit_holds_with_many_in_flight(prefect_server: str, data_dir: Path, agent: str, env: dict) -> None:
    """Cases whose token ends in 0-3 hang; with 40 in flight each of them fails at its own limit and
    the others answer: nothing waits for a hung neighbour."""
    started = time.monotonic()
    code, s, _ = _run(prefect_server, data_dir, agent, 40, "--concurrency", "40", "--case-timeout-s", "3", env=env, run_id="to-1")
    elapsed = time.monotonic() - started
    rows = _rows(data_dir, "to-1")
    hung = [r for r in rows if r["error_kind"] == "timeout"]
    expected_hung = {c.case_id for c in _cases(40) if c.input["predicate"]["value"][-1] in "0123"}
    assert {r["case_id"] for r in hung} == expected_hung and expected_hung
    assert all(r["reason"] == "timeout: no answer within 3 s" for r in hung)
    assert all(r["error_kind"] is None for r in rows if r["case_id"] not in expected_hung)
    assert elapsed < 90, elapsed  # 40 x 3 s one after another would be 120 s of time limits alone


@pytest.mark.slow
def test_an_async_agent_that_blocks_its_loop_costs_its_sandbox_not_the_run(prefect_server: str, data_dir: Path) -> None:
    code, s, _ = _run(
        prefect_server,
        data_dir,
        "tests.agents_io:async_blocks_loop",
        20,
        "--concurrency",
        "20",
        "--case-timeout-s",
        "3",
        run_id="block-1",
    )
    assert s["status"] == "completed" and s["counts"]["cases"] == 20
    rows = _rows(data_dir, "block-1")
    kinds = {r["error_kind"] for r in rows}
    assert "timeout" in kinds and kinds <= {None, "timeout", "crashed"}
    assert all("killed: its event loop did not answer" in r["reason"] for r in rows if r["error_kind"] == "crashed")


@pytest.mark.slow
def test_async_and_sync_agents_reach_their_concurrency(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    """Measured at the agent (trusted, so that it can log on the host): an ``async def`` agent in one
    sandbox process per lane reaches 300 calls at once; a synchronous one reaches the size of its
    process pools (4 lanes x 8, one call per process)."""
    log = tmp_path / "calls.log"
    env = {"IO_AGENT_LOG": str(log), "IO_AGENT_SLEEP_S": "3"}
    code, s, _ = _run(
        prefect_server,
        data_dir,
        "tests.agents_io:async_logged",
        300,
        "--concurrency",
        "300",
        "--trust-agent",
        "--agent-env",
        "IO_AGENT_LOG,IO_AGENT_SLEEP_S",
        env=env,
        run_id="reach-async",
    )
    assert s["counts"]["cases"] == 300 and s["counts"]["errors"] == 0, s["counts"]
    assert _peak(log) == 300
    assert s["timings"]["fanout_seconds"] < 12, s["timings"]
    log.unlink()
    # A pool starts its processes while the first calls wait (about 0.4 CPU-seconds each here, trusted):
    # calls of 12 s leave the pools time to reach 4 x 8.
    env = {**env, "IO_AGENT_SLEEP_S": "12", "SCENARIO_FANOUT_SYNC_PROCESSES": "8"}
    code, s, _ = _run(
        prefect_server,
        data_dir,
        "tests.agents_io:sync_logged",
        32,
        "--concurrency",
        "32",
        "--trust-agent",
        "--agent-env",
        "IO_AGENT_LOG,IO_AGENT_SLEEP_S",
        env=env,
        run_id="reach-sync",
    )
    assert s["counts"]["cases"] == 32 and s["counts"]["errors"] == 0, s["counts"]
    assert _peak(log) == 32 and len({ln.split()[3] for ln in log.read_text().splitlines()}) == 32  # 32 processes


@pytest.mark.slow
@pytest.mark.faults
def test_kill_9_with_500_in_flight_then_resume_every_case_once(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    """kill -9 of the whole `scenario run` process group while 500 calls are open at the agent; the same
    command with the same --run-id runs only the shards not checkpointed, and every case is in the
    warehouse exactly once, each with the right answer."""
    import sys

    import httpx

    from tests.fault_table import record
    from tests.helpers import free_port

    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(_answers(1000)))
    port = free_port()
    # The agent in its own process: it must hold 500 open requests while this one watches.
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "benchmarks" / "io_agent.py"),
            "--port",
            str(port),
            "--delay",
            "2",
            "--answers",
            str(answers),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in server.stdout.readline()
        stats = f"http://127.0.0.1:{port}/stats"
        args = [
            str(VENV_BIN / "scenario"),
            "run",
            "s12",
            "--records",
            "100000",
            "--cases",
            "1000",
            "--shard-size",
            "10",
            "--concurrency",
            "500",
            "--agent",
            f"http://127.0.0.1:{port}/",
            "--run-id",
            "kill-500",
            "--data-dir",
            str(data_dir),
            "--json",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_server}
        first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        shards = data_dir / "runs" / "kill-500" / "shards"
        deadline = time.monotonic() + 240
        st: dict = {}
        while time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            st = httpx.get(stats, timeout=5).json()
            if st["open"] == 500 and len(list(shards.glob("shard-*.parquet.mac"))) >= 10:  # the second round of 500 is out
                break
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        assert st["open"] == 500, st
        done_before = len(list(shards.glob("shard-*.parquet.mac")))
        assert 10 <= done_before < 100, done_before

        time.sleep(3)  # the killed run's open requests end at the agent
        httpx.post(f"http://127.0.0.1:{port}/stats/reset", timeout=5)
        second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-3000:]
        s = json.loads(second.stdout)
        called_again = httpx.get(stats, timeout=5).json()
    finally:
        server.terminate()
        server.wait(10)
    assert s["resumed"] is True and s["counts"]["cases"] == 1000 and s["counts"]["passed"] == 1000
    assert s["counts"]["shards_resumed"] >= done_before and s["counts"]["shards_run"] == 100 - s["counts"]["shards_resumed"]
    # Only shards not checkpointed were called again, each case of them once.
    assert called_again["requests"] == called_again["cases_seen"] == 10 * s["counts"]["shards_run"]
    rows = _rows(data_dir, "kill-500")
    assert (
        len(rows) == 1000 and len({r["case_id"] for r in rows}) == 1000 and [r["case_index"] for r in rows] == list(range(1000))
    )
    record(
        "flow process killed (kill -9 of the CLI's process group) with 500 agent calls in flight",
        f"{done_before} of 100 shards were checkpointed; the same command with --run-id ran only the other "
        f"{s['counts']['shards_run']}; every case once, every answer right",
        1000,
        len(rows),
        len(rows) - len({r["case_id"] for r in rows}),
    )
