"""The Prefect UI in a real browser (Debian's Chromium driven by Playwright): a finished run's
page shows its stages and, on the Artifacts tab, the metrics table and the progress artifact.
A screenshot is saved under test-output/ for a person to look at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium is installed by infra/bootstrap.py test (apt-get install chromium)"
)
def test_flow_run_page_shows_stages_metrics_table_and_progress(prefect_server: str, data_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    proc = run_cli(
        [
            "run",
            "s12",
            "--no-fail-on-threshold",
            "--records",
            "1000000",
            "--cases",
            "6",
            "--run-id",
            "ui-1",
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        {"PREFECT_API_URL": prefect_server},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    flow_run_id = json.loads(proc.stdout)["flow_run_id"]
    ui = prefect_server.removesuffix("/api")
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"{ui}/runs/flow-run/{flow_run_id}")
            try:
                page.get_by_text("Task Runs", exact=True).first.wait_for(timeout=30_000)
            except Exception:
                page.screenshot(path=str(out / "ui-failed.png"), full_page=True)
                raise
            page.get_by_text("Task Runs", exact=True).first.click()
            page.get_by_text("fan-out", exact=False).first.wait_for(timeout=30_000)
            stages = page.inner_text("body")
            page.screenshot(path=str(out / "ui-flow-run-task-runs.png"), full_page=True)
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("metrics-ui-1").first.wait_for(timeout=30_000)
            artifacts = page.inner_text("body")
            page.screenshot(path=str(out / "ui-flow-run-artifacts.png"), full_page=True)
            page.get_by_text("metrics-ui-1").first.click()
            page.get_by_text("bytes_read_share").first.wait_for(timeout=30_000)
            table = page.inner_text("body")
            page.screenshot(path=str(out / "ui-metrics-table.png"), full_page=True)
        finally:
            browser.close()
    for stage in ("generate-dataset", "fan-out", "publish", "report"):
        assert stage in stages, stage
    assert "TABLE" in artifacts and "metrics-ui-1" in artifacts
    assert "PROGRESS" in artifacts, artifacts[-1500:]
    assert "6 of 6 cases scored and checkpointed" in artifacts
    assert "summary-ui-1" in artifacts
    for metric in ("recall", "precision", "bytes_read_share", "latency_p95_ms"):
        assert metric in table, metric
