"""The project's prefect.yaml through Prefect's own machinery: `prefect deploy`, a real process
worker, `prefect deployment run` from the command line, the flow run reaching Completed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.helpers import REPO, VENV_BIN

pytestmark = pytest.mark.slow


def _prefect(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(VENV_BIN / "prefect"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_deploy_worker_and_deployment_run_complete_a_scenario(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "SCENARIO_DATA_DIR": str(data_dir),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_CLI_PROMPT": "false",
    }
    env.pop("PYTHONPATH", None)  # the worker must find the flow code through prefect.yaml alone
    _prefect(["work-pool", "create", "scenario-local", "--type", "process", "--overwrite"], env)
    _prefect(["--no-prompt", "deploy", "--name", "s12-search"], env)
    with open(tmp_path / "worker.log", "wb") as log:  # the worker keeps its own copy of the descriptor
        worker = subprocess.Popen(
            [str(VENV_BIN / "prefect"), "worker", "start", "--pool", "scenario-local"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        out = _prefect(
            [
                "deployment",
                "run",
                "run-scenario/s12-search",
                "--param",
                "records=1000000",
                "--param",
                "cases=6",
                "--param",
                "run_id=deploy-1",
                "--param",
                "fail_on_threshold=false",
            ],
            env,
        ).stdout
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
        deadline = time.monotonic() + 300
        state = None
        while time.monotonic() < deadline:
            run = httpx.get(f"{prefect_server}/flow_runs/{flow_run_id}", timeout=10).json()
            state = run["state"]["type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", (state, (tmp_path / "worker.log").read_text()[-4000:])
        assert set(run["tags"]) >= {"scenario-pipeline", "s12"}
        assert run["parameters"]["records"] == 1_000_000
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    n, passed = con.execute(
        "SELECT COUNT(*), SUM(CASE WHEN passed THEN 1 ELSE 0 END) FROM case_results WHERE run_id = 'deploy-1'"
    ).fetchone()
    assert (n, passed) == (6, 6)
    assert con.execute("SELECT flow_run_id FROM runs WHERE run_id = 'deploy-1'").fetchone()[0] == flow_run_id


@pytest.mark.slow
def test_deploy_all_registers_every_deployment_the_issue_names(prefect_server: str) -> None:
    """A deployment per scenario, the nightly suite, compare-runs, reconcile-costs (daily),
    promote-baseline and dataset generation, each on the process pool."""
    import httpx

    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_CLI_PROMPT": "false"}
    _prefect(["work-pool", "create", "scenario-local", "--type", "process", "--overwrite"], env)
    _prefect(["--no-prompt", "deploy", "--all"], env)
    deps = httpx.post(f"{prefect_server}/deployments/filter", json={"limit": 100}, timeout=30).json()
    by_name = {d["name"]: d for d in deps}
    scenarios = [
        "s01-overflow",
        "s02-conflicts",
        "s03-warehouse",
        "s11-evolution",
        "s12-search",
        "s13-insights",
        "s14-query",
        "s15-pii",
        "s16-zombies",
    ]
    expected = [*scenarios, "nightly", "compare-runs", "reconcile-costs", "promote-baseline", "generate-dataset"]
    assert sorted(expected) == sorted(n for n in by_name if n in expected)
    for s in scenarios:
        assert by_name[s]["parameters"] == {"scenario": s, "agent": "reference"}
    assert [x["schedule"]["cron"] for x in by_name["nightly"]["schedules"]] == ["0 2 * * *"]
    assert by_name["compare-runs"]["entrypoint"] == "flows/compare_runs.py:compare_runs"
    assert by_name["generate-dataset"]["parameters"] == {"dataset": "events", "records": 10000000}
    assert by_name["promote-baseline"]["parameters"] == {"interactive": True}
    assert {d["work_pool_name"] for d in by_name.values() if d["name"] in expected} == {"scenario-local"}
