"""End to end through the real CLI: a run whose warehouse is down still finishes and publishes later;
a run compares itself with its baseline, raises alerts and marks its flow run; `scenario compare`;
`scenario run` into the Redshift back end (PostgreSQL behind redshift_connector)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from scenario_pipeline.storage import Storage
from scenario_pipeline.warehouse import outbox
from scenario_pipeline.warehouse.base import connect
from tests.fault_table import record  # issue 9
from tests.helpers import run_cli
from tests.warehouse_support import WarehouseDown, new_database

pytestmark = pytest.mark.slow
CASES = 6


def _run(data: Path, run_id: str, dask: str, *extra: str) -> dict:
    res = run_cli(
        [
            "run",
            "s12",
            "--no-fail-on-threshold",
            "--records",
            "100000",
            "--cases",
            str(CASES),
            "--data-dir",
            str(data),
            "--run-id",
            run_id,
            "--dask-address",
            dask,
            "--json",
            *extra,
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "data"


@pytest.mark.faults  # issue 9: the fault suite's "warehouse down during publish"
def test_run_with_the_warehouse_down_finishes_and_publishes_later(data, prefect_server, dask_local) -> None:  # noqa: ANN001
    url = f"duckdb:///{data}/warehouse.duckdb"
    data.mkdir(parents=True, exist_ok=True)
    connect(url).close()
    with WarehouseDown("duckdb", url, None):
        s = _run(data, "e2e-a", dask_local)
    assert (s["status"], s["warehouse_rows"], s["counts"]["cases"]) == ("completed", 0, CASES)
    assert outbox.pending(Storage.from_url(str(data))) == ["e2e-a"]
    assert (data / "runs" / "e2e-a" / "report.html").exists()  # the report is written even so
    first = run_cli(["publish", "e2e-a", "--data-dir", str(data), "--json"])
    assert first.returncode == 0, first.stderr
    [r] = json.loads(first.stdout)
    assert r["delivered"] and r["counts"]["case_results"] == CASES and r["counts"]["runs"] == 1
    again = run_cli(["publish", "e2e-a", "--data-dir", str(data), "--json"])
    [r2] = json.loads(again.stdout)
    assert (r2["delivered"], r2["already_published"], r2["counts"]) == (False, True, r["counts"])  # nothing doubled
    missing = run_cli(["publish", "no-such-run", "--data-dir", str(data)])
    assert missing.returncode == 2 and "nothing of run 'no-such-run' waits in the outbox" in missing.stderr
    wh = connect(url)  # issue 9: the fault table's row
    try:
        [(rows, distinct)] = wh.query("SELECT COUNT(*), COUNT(DISTINCT case_id) FROM case_results WHERE run_id = ?", ["e2e-a"])
    finally:
        wh.close()
    record(
        "warehouse down during publish (DuckDB file locked by another process for the whole run)",
        "run completed with warehouse_rows 0 and its rows in the outbox; `scenario publish` delivered them, a second publish changed nothing",
        CASES,
        rows,
        rows - distinct,
    )


def test_a_run_compares_itself_with_its_baseline_and_raises_alerts(data, prefect_server, dask_local, tmp_path) -> None:  # noqa: ANN001
    from scenario_pipeline.compare.gate import decision_row, evidence

    url = f"duckdb:///{data}/warehouse.duckdb"
    # The threshold gate refuses e2e-a: at 100,000 records the agent reads far more than 1% of the bytes.
    gate = run_cli(["baseline", "promote", "e2e-a", "--non-interactive", "--data-dir", str(data), "--json"])
    assert gate.returncode == 1 and json.loads(gate.stdout)["decision"] == "rejected"
    assert "bytes_read_share" in json.loads(gate.stdout)["comment"]
    wh = connect(url)
    try:  # a reviewer accepts it anyway (what the interactive gate stores)
        wh.record_decision(decision_row(evidence(wh, "e2e-a"), "approved", "interactive", "reviewer", "small scale", None))
    finally:
        wh.close()
    s = _run(data, "e2e-b", dask_local)
    b = s["baseline"]
    # The same agent on the same cases: every quality metric's paired differences are 0 -> unchanged.
    assert b["baseline_run_id"] == "e2e-a"
    assert b["verdicts"]["recall"] == b["verdicts"]["precision"] == b["verdicts"]["pass_rate"] == "unchanged"
    assert b["degraded"] == [] and Path(b["comparison_report"].removeprefix("file://")).exists()
    assert {a["metric"] for a in b["alerts"]} == {"bytes_read_share"} and {"alert"} <= set(b["flow_run_tags"])
    # The flow run carries the tags, and Prefect has the scenario.alert event for an automation to act on.
    fr = httpx.get(f"{prefect_server}/flow_runs/{s['flow_run_id']}").json()
    assert "alert" in fr["tags"] and any(t.startswith("alert:") for t in fr["tags"])
    events = httpx.post(
        f"{prefect_server}/events/filter",
        json={"filter": {"event": {"name": ["scenario.alert"]}, "any_resource": {"id": ["scenario.run.e2e-b"]}}},
    ).json()
    assert any(e["resource"]["scenario.metric"] == "bytes_read_share" for e in events["events"])
    # scenario compare: the same verdicts, and the export formats.
    res = run_cli(["compare", "e2e-a", "e2e-b", "--data-dir", str(data), "--json"])
    assert res.returncode == 0, res.stderr[-2000:]
    cmp = json.loads(res.stdout)
    rows = {r["metric"]: r for r in cmp["pairs"][0]["rows"]}
    assert rows["recall"]["verdict"] == "unchanged" and rows["recall"]["n"] == CASES
    assert cmp["runs"][0]["run_id"] == "e2e-a" and Path(cmp["report"].removeprefix("file://")).exists()
    md = tmp_path / "cmp.md"
    res = run_cli(["compare", "e2e-a", "e2e-b", "--data-dir", str(data), "--output", str(md)])
    assert res.returncode == 0 and md.read_text().startswith("# Comparison of s12-search runs (100,000 records")
    bad = run_cli(["compare", "e2e-a", "e2e-b", "--data-dir", str(data), "--format", "xlsx"])
    assert bad.returncode == 2 and "format 'xlsx' is not known" in bad.stderr


def test_scenario_run_writes_to_the_redshift_back_end(data, prefect_server, dask_local, pg_redshift) -> None:  # noqa: ANN001
    url = new_database(pg_redshift)
    s = _run(data, "e2e-rs", dask_local, "--warehouse", url)
    assert s["warehouse_rows"] == CASES and s["status"] == "completed"
    wh = connect(url)
    try:
        assert wh.counts("e2e-rs")["case_results"] == CASES
        assert wh.get_run("e2e-rs")["agent"] == "reference"
    finally:
        wh.close()


def test_the_password_can_come_from_a_prefect_secret_block(prefect_server, monkeypatch) -> None:  # noqa: ANN001
    from prefect.blocks.system import Secret

    from scenario_pipeline.warehouse.redshift_backend import connect_kwargs

    Secret(value="from-a-block").save("scenario-redshift-test", overwrite=True)
    monkeypatch.delenv("SCENARIO_REDSHIFT_PASSWORD", raising=False)
    monkeypatch.setenv("SCENARIO_REDSHIFT_PASSWORD_BLOCK", "scenario-redshift-test")
    assert connect_kwargs("redshift://admin@example.com:5439/dev")["password"] == "from-a-block"


def test_the_documented_automation_forwards_an_alert(prefect_server, tmp_path) -> None:  # noqa: ANN001
    """docs/alert-automation.yaml, created with the documented command, sends a critical alert to a webhook."""
    import http.server
    import subprocess
    import sys
    import threading
    import time

    import yaml
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from scenario_pipeline.compare.alerts import mark_flow_run
    from tests.helpers import REPO, free_port

    received: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        block_id = CustomWebhookNotificationBlock(
            name="hook",
            url=f"http://127.0.0.1:{port}/hook",
            allow_private_urls=True,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("scenario-hook", overwrite=True)
        doc = yaml.safe_load((REPO / "docs" / "alert-automation.yaml").read_text())
        doc["automations"][0]["actions"][0]["block_document_id"] = str(block_id)
        f = tmp_path / "automation.yaml"
        f.write_text(yaml.safe_dump(doc))
        res = subprocess.run(
            [sys.executable, "-m", "prefect", "automation", "create", "--from-file", str(f)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0 and "scenario-alerts" in res.stdout, res.stdout + res.stderr
        time.sleep(2)  # the triggers service loads new automations
        alert = {
            "run_id": "auto-1",
            "scenario": "s12-search",
            "metric": "recall",
            "kind": "degraded",
            "severity": "critical",
            "message": "recall degraded against baseline base-1: 1 -> 0.85",
            "value": 0.85,
            "target": 1.0,
            "baseline_run_id": "base-1",
            "alert_id": "a1",
        }
        info = dict(alert, severity="info", metric="f1", alert_id="a2")  # below the automation's bar: not forwarded
        mark_flow_run([info, alert], None)
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        server.shutdown()
    assert received, "the automation sent nothing within 60 s"
    body = received[0].decode()
    assert "recall degraded against baseline base-1" in body and "critical" in body and "auto-1" in body
    assert all("f1" not in r.decode() for r in received)
