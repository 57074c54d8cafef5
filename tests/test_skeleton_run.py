"""The walking skeleton end to end, through the real `scenario` command, a real Prefect server,
a real Dask LocalCluster of processes, real Parquet files and a real DuckDB warehouse."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pytest

from tests.helpers import REPO, free_port, run_cli

pytestmark = pytest.mark.slow


def _summary(proc) -> dict:  # noqa: ANN001
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_json_summary_matches_the_warehouse_rows(prefect_server: str, data_dir: Path) -> None:
    proc = run_cli(
        [
            "run",
            "s12",
            "--no-fail-on-threshold",
            "--records",
            "2000000",
            "--cases",
            "12",
            "--data-dir",
            str(data_dir),
            "--json",
            "--run-id",
            "skeleton-1",
        ],
        {"PREFECT_API_URL": prefect_server},
    )
    s = _summary(proc)
    # stdout is the JSON summary and nothing else (json.loads above would fail otherwise).
    assert s["run_id"] == "skeleton-1" and s["scenario"] == "s12-search" and s["agent"] == "reference"
    assert s["counts"]["cases"] == 12 and s["warehouse_rows"] == 12
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT case_id, passed, metrics_json FROM case_results WHERE run_id = 'skeleton-1' ORDER BY case_index"
    ).fetchall()
    assert len(rows) == 12 and len({r[0] for r in rows}) == 12
    # The run metric is the mean of the per-case values stored in the warehouse.
    recalls = [json.loads(r[2])["recall"] for r in rows]
    assert s["metrics"]["recall"] == pytest.approx(sum(recalls) / 12)
    assert s["metrics"]["pass_rate"] == pytest.approx(sum(r[1] for r in rows) / 12)
    stored = dict(con.execute("SELECT metric, value FROM scenario_metrics WHERE run_id = 'skeleton-1'").fetchall())
    for name, value in s["metrics"].items():
        assert stored[name] == pytest.approx(value, nan_ok=True), name
    run = con.execute("SELECT scenario, records, cases, status FROM runs WHERE run_id = 'skeleton-1'").fetchone()
    assert run == ("s12-search", 2_000_000, 12, "completed")
    con.close()
    # The honest reference agent finds every needle and reads a small part of the table.
    assert s["metrics"]["recall"] == 1.0 and s["metrics"]["precision"] == 1.0
    assert 0 < s["metrics"]["bytes_read_share"] < 0.2
    # Publishing the same run again (same run id, all shards checkpointed) leaves one copy.
    again = _summary(
        run_cli(
            [
                "run",
                "s12",
                "--no-fail-on-threshold",
                "--records",
                "2000000",
                "--cases",
                "12",
                "--data-dir",
                str(data_dir),
                "--json",
                "--run-id",
                "skeleton-1",
            ],
            {"PREFECT_API_URL": prefect_server},
        )
    )
    assert again["counts"]["shards_resumed"] == again["counts"]["shards"] and again["counts"]["shards_run"] == 0
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT COUNT(*) FROM case_results WHERE run_id = 'skeleton-1'").fetchone()[0] == 12
    assert con.execute("SELECT COUNT(*) FROM runs WHERE run_id = 'skeleton-1'").fetchone()[0] == 1


def test_agent_failures_become_failed_cases_not_a_failed_run(prefect_server: str, data_dir: Path) -> None:
    for agent, reason in (
        ("tests.agents_skeleton:raises", "agent raised RuntimeError: agent is broken"),
        ("tests.agents_skeleton:wrong_types", "answer.record_ids must be a list of integers"),
    ):
        s = _summary(
            run_cli(
                [
                    "run",
                    "s12",
                    "--no-fail-on-threshold",
                    "--records",
                    "1000000",
                    "--cases",
                    "5",
                    "--agent",
                    agent,
                    "--data-dir",
                    str(data_dir),
                    "--json",
                ],
                {"PREFECT_API_URL": prefect_server},
            )
        )
        assert s["status"] == "completed" and s["counts"]["cases"] == 5 and s["counts"]["passed"] == 0
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        reasons = {r[0] for r in con.execute("SELECT reason FROM case_results WHERE run_id = ?", [s["run_id"]]).fetchall()}
        con.close()
        assert reasons == {reason}


def test_example_python_and_http_agents_run_through_the_cli(prefect_server: str, data_dir: Path) -> None:
    """The two example agents of docs/agents.md, as a user would run them."""
    s = _summary(
        run_cli(
            [
                "run",
                "s12",
                "--no-fail-on-threshold",
                "--records",
                "1000000",
                "--cases",
                "4",
                "--agent",
                "examples.agents.python_agent:answer",
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            {"PREFECT_API_URL": prefect_server},
        )
    )
    assert s["metrics"]["recall"] == 1.0 and s["metrics"]["precision"] == 1.0
    # It claims every file as read (an honest upper bound); the harness measures what DuckDB really read.
    assert s["metrics"]["claimed_bytes_read_share"] == 1.0
    assert 0 < s["metrics"]["bytes_read_share"] < 0.2
    assert s["sandbox"].startswith("bwrap: uid 65534, no capabilities")

    from examples.agents.http_agent import serve

    port = free_port()
    server = serve(port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = _summary(
            run_cli(
                [
                    "run",
                    "s12",
                    "--no-fail-on-threshold",
                    "--records",
                    "1000000",
                    "--cases",
                    "4",
                    "--agent",
                    f"http://127.0.0.1:{port}/",
                    "--data-dir",
                    str(data_dir),
                    "--json",
                ],
                {"PREFECT_API_URL": prefect_server},
            )
        )
    finally:
        server.shutdown()
    assert s["metrics"]["recall"] == 1.0 and s["counts"]["passed"] == 4
    # the harness cannot see what an HTTP agent reads on its own machine: reported, never thresholded
    assert s["metrics"]["bytes_read_share"] is None and s["thresholds"]["bytes_read_share"]["unmeasured"] is True


def test_the_readme_examples_exist() -> None:
    readme = (REPO / "README.md").read_text()
    assert "python3 infra/bootstrap.py demo" in readme and "python3 infra/bootstrap.py test" in readme
