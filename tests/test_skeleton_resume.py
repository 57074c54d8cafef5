"""Kill -9 of the whole `scenario run` process group mid fan-out, then resume by run id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.fault_table import record  # issue 9
from tests.helpers import REPO, VENV_BIN

pytestmark = pytest.mark.slow


@pytest.mark.faults  # issue 9
def test_kill_9_mid_fanout_then_resume_runs_only_unfinished_shards(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    args = [
        str(VENV_BIN / "scenario"),
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "1000000",
        "--cases",
        "40",
        "--shard-size",
        "2",
        "--agent",
        "tests.agents_skeleton:slow_logging",
        "--run-id",
        "resume-1",
        "--data-dir",
        str(data_dir),
        "--json",
        # our agent logs each call to a file the test reads: outside any sandbox, with those two variables
        "--trust-agent",
        "--agent-env",
        "SKELETON_CALL_LOG,SKELETON_PHASE",
        # one call at a time per worker thread, as before calls in flight were their own setting (issue 15)
        "--concurrency",
        "2",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFECT_API_URL": prefect_server,
        "SKELETON_CALL_LOG": str(calls),
        "SCENARIO_DASK_N_WORKERS": "2",
        "SCENARIO_DASK_THREADS_PER_WORKER": "1",
    }
    first = subprocess.Popen(
        args, env={**env, "SKELETON_PHASE": "first"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    shards = data_dir / "runs" / "resume-1" / "shards"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(shards.glob("shard-*.parquet"))) < 4:
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the CLI, its LocalCluster and its worker processes
    first.wait(timeout=30)
    done_before = len(list(shards.glob("shard-*.parquet")))
    assert 4 <= done_before < 20, done_before

    second = subprocess.run(args, env={**env, "SKELETON_PHASE": "second"}, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    s = json.loads(second.stdout)
    assert s["resumed"] is True
    assert s["counts"]["shards"] == 20 and s["counts"]["cases"] == 40
    assert s["counts"]["shards_resumed"] >= done_before
    assert s["counts"]["shards_run"] == 20 - s["counts"]["shards_resumed"]

    lines = calls.read_text().split()
    second_calls = [lines[i + 1] for i in range(0, len(lines), 2) if lines[i] == "second"]
    # Only unfinished shards ran again: 2 cases per shard not resumed.
    assert len(second_calls) == 2 * s["counts"]["shards_run"]
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT case_id) FROM case_results WHERE run_id = 'resume-1'").fetchone()
    assert (n, distinct) == (40, 40)  # every case exactly once
    assert sorted(r[0] for r in con.execute("SELECT case_index FROM case_results WHERE run_id = 'resume-1'").fetchall()) == list(
        range(40)
    )
    record(
        "flow process killed (kill -9 of the CLI's process group) mid fan-out",  # issue 9
        f"{done_before} of 20 shards were checkpointed; the same command with --run-id resumed them and ran only the other "
        f"{s['counts']['shards_run']}; run completed",
        40,
        n,
        n - distinct,
    )
