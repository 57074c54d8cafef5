"""A real multi-process Dask cluster from its own command line (`dask scheduler`, two
`dask worker` processes on loopback): both workers do work, and losing one mid fan-out loses
no case and doubles none."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.fault_table import record  # issue 9
from tests.helpers import REPO, VENV_BIN, free_port

pytestmark = pytest.mark.slow


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "dask"), *args], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=60)


@pytest.mark.faults  # issue 9
def test_external_cluster_both_workers_work_and_a_lost_worker_loses_nothing(
    prefect_server: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SKELETON_CALL_LOG": str(calls), "PREFECT_API_URL": prefect_server}
    procs = [
        _start(
            ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
            env,
            tmp_path / "scheduler.log",
        )
    ]
    try:
        time.sleep(2)
        procs += [
            _start(
                ["worker", address, "--nthreads", "2", "--name", f"w{i}", "--dashboard-address", "127.0.0.1:0"],
                env,
                tmp_path / f"w{i}.log",
            )
            for i in (1, 2)
        ]
        _wait_for_workers(address, 2)

        # 1. Both workers do work: the per-case rows name the process that ran them.
        proc = subprocess.run(
            [
                str(VENV_BIN / "scenario"),
                "run",
                "s12",
                "--no-fail-on-threshold",
                "--records",
                "1000000",
                "--cases",
                "24",
                "--shard-size",
                "2",
                "--dask-address",
                address,
                "--run-id",
                "ext-1",
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout)["counts"]["cases"] == 24
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        workers = {r[0] for r in con.execute("SELECT DISTINCT worker FROM case_results WHERE run_id = 'ext-1'").fetchall()}
        con.close()
        assert len(workers) == 2, workers

        # 2. Kill one worker (nanny and worker process) mid fan-out; the run still completes.
        run = subprocess.Popen(
            [
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
                "--dask-address",
                address,
                "--run-id",
                "ext-2",
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            env={**env, "SKELETON_PHASE": "x"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        shards = data_dir / "runs" / "ext-2" / "shards"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(shards.glob("shard-*.parquet"))) < 3:
            time.sleep(0.05)
        os.killpg(procs[2].pid, signal.SIGKILL)
        out, errs = run.communicate(timeout=300)
        assert run.returncode == 0, errs[-3000:]
        s = json.loads(out)
        assert s["status"] == "completed" and s["counts"]["cases"] == 40 and s["counts"]["shards_failed"] == 0
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT case_id) FROM case_results WHERE run_id = 'ext-2'").fetchone()
        con.close()
        assert (n, distinct) == (40, 40)
        record(
            "a Dask worker (nanny and worker process) killed mid fan-out, external cluster",  # issue 9
            f"Dask rescheduled the lost worker's shards; run completed, {s['counts']['shards_failed']} shards failed",
            40,
            n,
            n - distinct,
        )
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
