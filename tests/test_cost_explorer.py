"""Reconciling with Cost Explorer: a real HTTP endpoint on loopback (moto's server, seeded through its
own API), pagination, throttling through a real proxy, revisiting days Cost Explorer still estimates,
and the estimate error per run computed by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from scenario_pipeline.cost.accounting import Ledger, Usage
from scenario_pipeline.cost.explorer import CostExplorerError, ce_client
from scenario_pipeline.cost.prices import load_profile
from scenario_pipeline.cost.reconcile import reconcile
from scenario_pipeline.cost.warehouse_rows import write_estimate
from scenario_pipeline.settings import CostSettings
from scenario_pipeline.tasks.checkpoint import CASE_SCHEMA
from scenario_pipeline.warehouse.base import connect
from tests.cost_support import ThrottlingProxy, day, group, pages, reset, seed
from tests.helpers import moto_server, run_cli

FAST = CostSettings(ce_backoff_s=0.01, ce_backoff_cap_s=0.05, ce_max_attempts=6)
S3, ECS, FARGATE, EC2 = (
    "Amazon Simple Storage Service",
    "Amazon Elastic Container Service",
    "AWS Fargate",
    "Amazon Elastic Compute Cloud - Compute",
)
BEDROCK = "Claude Sonnet 4.5 (Amazon Bedrock Edition)"


@pytest.fixture(scope="module")
def moto_ce() -> Iterator[str]:
    with moto_server(verbose=False) as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto_ce: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fake credentials (moto checks none) and a clean Cost Explorer queue."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    reset(moto_ce)
    return moto_ce


def warehouse_with_run(tmp_path: Path) -> str:
    """A DuckDB warehouse holding run r-alpha and its estimate (a hand-sized ledger)."""
    url = f"duckdb://{tmp_path / 'wh.duckdb'}"
    wh = connect(url)
    wh.publish_run(
        {
            "run_id": "r-alpha",
            "scenario": "s12-search",
            "agent": "reference",
            "records": 10,
            "cases": 10,
            "seed": 1,
            "status": "completed",
        },
        CASE_SCHEMA.empty_table(),
        [],
    )
    wh.close()
    led = Ledger("r-alpha")
    # 10 vCPU-h x 0.04048 = 0.4048; 1000 PUT x 0.005/1000 = 0.005; agent $5 (not AWS); 100 GB stored: 2.3 per month
    led.shards[0] = Usage(thread_seconds=36_000, s3_put=1000, bytes_written=100 * 2**30, agent_cost_usd=5.0, cases=10)
    write_estimate(url, "r-alpha", "s12-search", led, load_profile("aws-us-east-1-2026-11"))
    return url


def three_pages() -> list[dict]:
    return pages(
        [
            day(
                "2026-11-19",
                "2026-11-20",
                [group("r-alpha", S3, 0.10), group("r-alpha", ECS, 0.30), group(None, EC2, 5.00)],
                False,
            )
        ],
        [day("2026-11-20", "2026-11-21", [group("r-alpha", S3, 0.05), group("r-beta", FARGATE, 1.00)], False)],
        [
            day("2026-11-21", "2026-11-22", [group("r-alpha", S3, 0.01), group("r-alpha", BEDROCK, 4.00)], True),
            day("2026-11-22", "2026-11-23", [], True),
        ],
    )


def actual_rows(url: str) -> list[tuple]:
    con = duckdb.connect(url.removeprefix("duckdb://"), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, usage_date, item, stage, amount_usd, estimated, scenario FROM costs "
            "WHERE source = 'cost-explorer' ORDER BY usage_date, run_id, item"
        ).fetchall()
    finally:
        con.close()


def test_reconcile_pages_through_every_result_and_reports_the_estimate_error(aws: str, tmp_path: Path) -> None:
    url = warehouse_with_run(tmp_path)
    seed(aws, three_pages())
    result = reconcile(url, days=3, today=date(2026, 11, 22), client=ce_client(endpoint_url=aws), settings=FAST)
    assert result["window"] == {"start": "2026-11-19", "end": "2026-11-23"}
    assert (result["pages"], result["retries"], result["lines"]) == (3, 0, 6)  # 5 lines of r-alpha, 1 of r-beta
    assert result["untagged_usd"] == pytest.approx(5.00)
    assert result["unknown_runs"] == ["r-beta"]
    rows = actual_rows(url)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("r-alpha", "2026-11-19", ECS, "compute"),
        ("r-alpha", "2026-11-19", S3, "storage"),
        ("r-alpha", "2026-11-20", S3, "storage"),
        ("r-beta", "2026-11-20", FARGATE, "compute"),
        ("r-alpha", "2026-11-21", S3, "storage"),
        ("r-alpha", "2026-11-21", BEDROCK, "model"),
    ]
    assert rows[0][6] == "s12-search" and rows[3][6] == "unknown"
    alpha, beta = result["runs"]
    # r-beta is not in this warehouse and has no estimate: its actual is reported, its error cannot be
    assert (beta["run_id"], beta["actual_usd"], beta["estimate_usd"], beta["error_pct"]) == (
        "r-beta",
        pytest.approx(1.00),
        None,
        None,
    )
    # AWS actual: 0.10 + 0.30 + 0.05 + 0.01 = 0.46 (the Bedrock $4 is the model, compared apart)
    assert alpha["actual_usd"] == pytest.approx(0.46) and alpha["model_actual_usd"] == pytest.approx(4.00)
    # estimate, AWS part: 0.4048 + 0.005 = 0.4098 one-time, plus storage 2.3 per month x 3 days (19th..21st) / 30.4375
    expected = 0.4098 + 2.3 * 3 / 30.4375  # = 0.636494...
    assert alpha["estimate_usd"] == pytest.approx(expected)
    assert alpha["error_usd"] == pytest.approx(expected - 0.46)
    assert alpha["error_pct"] == pytest.approx(100 * (expected - 0.46) / 0.46)  # about +38.4 %
    assert (alpha["first_day"], alpha["last_day"], alpha["incomplete"]) == ("2026-11-19", "2026-11-21", True)

    # A week later the 21st has settled: reconcile asks again from the 21st (not just the last 3 days) and
    # rewrites that day whole; nothing is doubled.
    seed(aws, pages([day("2026-11-21", "2026-11-22", [group("r-alpha", S3, 0.02), group("r-alpha", BEDROCK, 4.00)], False)]))
    again = reconcile(url, days=3, today=date(2026, 11, 30), client=ce_client(endpoint_url=aws), settings=FAST)
    assert again["window"] == {"start": "2026-11-21", "end": "2026-12-01"}
    day21 = [r for r in actual_rows(url) if r[1] == "2026-11-21"]
    assert [(r[2], r[4], r[5]) for r in day21] == [(S3, 0.02, False), (BEDROCK, 4.00, False)]
    assert len(actual_rows(url)) == 6
    (alpha,) = again["runs"]  # only runs with cost in the window asked for
    assert alpha["actual_usd"] == pytest.approx(0.47) and alpha["incomplete"] is False  # 0.10 + 0.30 + 0.05 + 0.02
    con = duckdb.connect(url.removeprefix("duckdb://"), read_only=True)
    assert con.execute("SELECT COUNT(*), MAX(actual_usd) FROM cost_reconciliations WHERE run_id = 'r-alpha'").fetchone() == (
        1,
        pytest.approx(0.47),
    )
    con.close()


def test_throttled_requests_are_retried_with_backoff(aws: str, tmp_path: Path) -> None:
    url = warehouse_with_run(tmp_path)
    seed(aws, three_pages())
    # Five refusals, alternating the two codes Cost Explorer uses for rate limits: the first page is
    # refused 5 times, then all 3 pages go through.
    with ThrottlingProxy(aws, throttle=5, codes=("ThrottlingException", "LimitExceededException")) as proxy:
        result = reconcile(url, days=3, today=date(2026, 11, 22), client=ce_client(endpoint_url=proxy.url), settings=FAST)
    assert (proxy.throttled, proxy.forwarded) == (5, 3)
    assert (result["pages"], result["retries"], result["lines"]) == (3, 5, 6)
    assert sum(r[4] for r in actual_rows(url) if r[0] == "r-alpha" and r[3] != "model") == pytest.approx(0.46)


def test_throttling_that_never_ends_fails_clearly_and_writes_nothing(aws: str, tmp_path: Path) -> None:
    url = warehouse_with_run(tmp_path)
    seed(aws, three_pages())
    settings = CostSettings(ce_backoff_s=0.01, ce_backoff_cap_s=0.02, ce_max_attempts=3)
    with (
        ThrottlingProxy(aws, throttle=1000) as proxy,
        pytest.raises(CostExplorerError, match="still throttling \\(ThrottlingException\\) after 3 attempts"),
    ):
        reconcile(url, days=3, today=date(2026, 11, 22), client=ce_client(endpoint_url=proxy.url), settings=settings)
    assert proxy.throttled == 3 and proxy.forwarded == 0
    assert actual_rows(url) == []


@pytest.mark.slow
def test_scenario_reconcile_costs_runs_the_flow(aws: str, tmp_path: Path, prefect_server: str) -> None:
    data = tmp_path / "data"
    warehouse_with_run(tmp_path)
    (data).mkdir()
    (tmp_path / "wh.duckdb").rename(data / "warehouse.duckdb")
    seed(aws, three_pages())
    proc = run_cli(
        ["reconcile-costs", "--days", "3", "--today", "2026-11-22", "--data-dir", str(data), "--json"],
        {
            "PREFECT_API_URL": prefect_server,
            "AWS_ENDPOINT_URL_COST_EXPLORER": aws,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert (result["pages"], result["lines"]) == (3, 6)
    assert result["runs"][0]["run_id"] == "r-alpha" and result["runs"][0]["actual_usd"] == pytest.approx(0.46)
    shown = run_cli(["costs", "r-alpha", "--data-dir", str(data), "--json"])
    assert shown.returncode == 0, shown.stderr
    c = json.loads(shown.stdout)
    assert c["estimate"]["total_usd"] == pytest.approx(5.4098)  # 0.4048 + 0.005 + the agent's reported $5
    assert c["estimate"]["storage_usd_per_month"] == pytest.approx(2.3)
    assert [d["day"] for d in c["actuals"]["by_day"]] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert c["actuals"]["total_usd"] == pytest.approx(4.46)  # 0.46 AWS + 4.00 Bedrock
    assert c["reconciliation"]["error_pct"] == pytest.approx(100 * (0.4098 + 2.3 * 3 / 30.4375 - 0.46) / 0.46)


@pytest.mark.slow
def test_reconcile_costs_is_a_daily_deployment_in_prefect_yaml(prefect_server: str) -> None:
    import os
    import subprocess

    import httpx

    from tests.helpers import REPO, VENV_BIN

    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_CLI_PROMPT": "false"}
    for args in (
        ["work-pool", "create", "scenario-local", "--type", "process", "--overwrite"],
        ["--no-prompt", "deploy", "--name", "reconcile-costs"],
    ):
        proc = subprocess.run([str(VENV_BIN / "prefect"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    dep = httpx.get(f"{prefect_server}/deployments/name/reconcile-costs/reconcile-costs", timeout=10).json()
    assert dep["entrypoint"] == "flows/reconcile_costs.py:reconcile_costs"
    assert dep["parameters"] == {"days": 7}
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in dep["schedules"]] == [
        ("0 6 * * *", "UTC", True)
    ]


def test_reconcile_on_the_redshift_back_end_issues_only_sql_redshift_accepts(aws: str, pg_redshift, tmp_path: Path) -> None:  # noqa: ANN001
    from scenario_pipeline.cost.reconcile import run_error
    from scenario_pipeline.cost.summary import run_costs
    from scenario_pipeline.cost.warehouse_rows import cost_lines, oldest_estimated_day, replace_actuals, replace_reconciliations
    from scenario_pipeline.warehouse.redshift_backend import RedshiftWarehouse
    from scenario_pipeline.warehouse.redshift_rules import violations
    from tests.warehouse_support import new_database, run_row

    url = new_database(pg_redshift)
    wh = connect(url)
    wh.publish_run(run_row("r-alpha", cases=10), CASE_SCHEMA.empty_table(), [])
    wh.close()
    led = Ledger("r-alpha")
    led.shards[0] = Usage(thread_seconds=36_000, s3_put=1000, bytes_written=100 * 2**30, agent_cost_usd=5.0, cases=10)
    write_estimate(url, "r-alpha", "s12-search", led, load_profile("aws-us-east-1-2026-11"))
    seed(aws, three_pages())
    result = reconcile(url, days=3, today=date(2026, 11, 22), client=ce_client(endpoint_url=aws), settings=FAST)
    alpha = next(r for r in result["runs"] if r["run_id"] == "r-alpha")
    assert alpha["actual_usd"] == pytest.approx(0.46) and alpha["estimate_usd"] == pytest.approx(0.4098 + 2.3 * 3 / 30.4375)

    wh = RedshiftWarehouse(url)  # the same writes and reads again, keeping the statements
    try:
        assert oldest_estimated_day(wh) == date(2026, 11, 21)
        replace_actuals(wh, date(2026, 11, 21), date(2026, 11, 22), [])
        replace_reconciliations(wh, [{**run_error(wh, "r-alpha"), "reconciled_at": datetime(2026, 11, 22)}])
        assert len([ln for ln in cost_lines(wh, "r-alpha") if ln["source"] == "cost-explorer"]) == 3  # the 21st's two lines gone
        assert run_costs(wh, "r-alpha")["estimate"]["total_usd"] == pytest.approx(5.4098)
        issued = list(wh.statements)
    finally:
        wh.close()
    assert {s.split()[0].upper() for s in issued} >= {"DELETE", "INSERT", "SELECT"}
    assert {s[:120]: v for s in issued if (v := violations(s))} == {}
