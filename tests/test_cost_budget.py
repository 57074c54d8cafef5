"""The budget guard stops a real `scenario run`; a rerun with a higher budget finishes it, every case once.

The agent reports $0.01 per case; shards hold 2 cases, so a shard costs $0.02 plus a little compute
and storage. With --max-cost-usd 0.10: after 4 shards ($0.08 + compute) a fifth would bring the
estimate to $0.10 + compute > $0.10, so exactly 4 shards (8 cases) run and 6 shards wait.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def _run(data_dir: Path, budget: str, env: dict[str, str]) -> tuple[int, dict]:
    proc = run_cli(
        [
            "run",
            "s12",
            "--no-fail-on-threshold",
            "--records",
            "100000",
            "--cases",
            "20",
            "--shard-size",
            "2",
            "--agent",
            "tests.cost_agents:penny",
            # our test agent logs each call to a file the test reads: outside any sandbox, with the two variables it needs
            "--trust-agent",
            "--agent-env",
            "COST_CALL_LOG,COST_PHASE",
            "--run-id",
            "budget-1",
            "--max-cost-usd",
            budget,
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        env,
        timeout=300,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_budget_stops_the_run_and_a_higher_budget_resumes_it(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    env = {
        "PREFECT_API_URL": prefect_server,
        "COST_CALL_LOG": str(calls),
        "SCENARIO_DASK_N_WORKERS": "2",
        "SCENARIO_DASK_THREADS_PER_WORKER": "1",
    }

    code, s = _run(data_dir, "0.10", {**env, "COST_PHASE": "first"})
    assert code == 1 and s["status"] == "budget_exceeded" and s["passed"] is False
    assert s["counts"]["cases"] == 8 and s["counts"]["shards_run"] == 4
    c = s["cost"]
    assert c["budget_exceeded"] is True and c["max_cost_usd"] == 0.10 and c["shards_held_back"] == 6
    assert c["estimate_usd"] <= 0.10
    assert c["by_item"]["agent.reported"] == pytest.approx(0.08)  # 8 cases x $0.01
    assert c["usage"]["input_tokens"] == 800 and c["usage"]["output_tokens"] == 160  # 8 x 100, 8 x 20
    # what is left, at the dearest cost per case seen (a little over $0.01): 12 cases, a little over $0.12
    assert 0.12 < c["remaining_estimate_usd"] < 0.13
    shards = sorted((data_dir / "runs" / "budget-1" / "shards").glob("shard-*.parquet"))
    assert len(shards) == 4  # finished shards stay checkpointed
    # The live estimate is in the fan-out's progress artifact, as the Prefect API serves it.
    arts = httpx.post(
        f"{prefect_server}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [s["flow_run_id"]]}}}, timeout=10
    ).json()
    (progress,) = [a for a in arts if a["type"] == "progress"]
    assert progress["data"] == pytest.approx(40.0)  # 8 of 20 cases
    shown = re.search(
        r"estimated cost so far \$([0-9.]+) of the \$0\.1000 budget \(aws-us-east-1-2026-11\)", progress["description"]
    )
    assert shown, progress["description"]
    assert 0.08 <= float(shown.group(1)) <= c["estimate_usd"] + 5e-5  # the agents' $0.08 and compute, as of the fan-out's end

    code, s = _run(data_dir, "0.50", {**env, "COST_PHASE": "second"})
    assert code == 0 and s["status"] == "completed" and s["resumed"] is True
    assert s["counts"]["cases"] == 20 and s["counts"]["shards_resumed"] == 4 and s["counts"]["shards_run"] == 6
    lines = calls.read_text().split("\n")
    first = [ln for ln in lines if ln.startswith("first ")]
    second = [ln for ln in lines if ln.startswith("second ")]
    assert (len(first), len(second)) == (8, 12)  # the agent saw each case once across both attempts
    assert len({ln.split(" ", 1)[1] for ln in first + second}) == 20

    c = s["cost"]
    assert c["attempts"] == 2 and c["budget_exceeded"] is False and c["shards"]["accounted"] == 10
    assert c["by_item"]["agent.reported"] == pytest.approx(0.20)
    # The fan-out's storage, by hand: one PUT per shard (10), one HEAD measuring each (10), and the bytes
    # written are the checkpoint files' sizes on disk.
    fanout = json.loads((data_dir / "runs" / "budget-1" / "cost" / "ledger.json").read_text())["shards"]
    assert sum(u["s3_put"] for u in fanout.values()) == 10 and sum(u["s3_get"] for u in fanout.values()) == 10
    files = sorted((data_dir / "runs" / "budget-1" / "shards").glob("shard-*.parquet"))
    assert sum(u["bytes_written"] for u in fanout.values()) == sum(os.path.getsize(f) for f in files)
    # compute is priced per busy thread-second: vCPU x 0.04048 / 3600 and memory x 0.004445 / 3600
    busy = sum(u["thread_seconds"] for u in fanout.values())
    gb_s = sum(u["gb_seconds"] for u in fanout.values())
    assert busy > 0 and gb_s > 0
    assert c["estimate_usd"] > 0.20 + busy * 0.04048 / 3600 + gb_s * 0.004445 / 3600 + 10 * 0.005 / 1000

    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        n, distinct = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT case_id) FROM case_results WHERE run_id = 'budget-1'"
        ).fetchone()
        assert (n, distinct) == (20, 20)  # every case exactly once
        assert con.execute("SELECT status FROM runs WHERE run_id = 'budget-1'").fetchone() == ("completed",)
        total, shard_lines = con.execute(
            "SELECT SUM(CASE WHEN shard IS NULL AND item <> 's3.storage_month' THEN amount_usd ELSE 0 END), "
            "COUNT(DISTINCT shard) FROM costs WHERE run_id = 'budget-1' AND source = 'estimate'"
        ).fetchone()
        assert total == pytest.approx(c["estimate_usd"], rel=1e-6) and shard_lines == 10
    finally:
        con.close()
