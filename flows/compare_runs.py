"""The ``compare_runs`` flow: compare runs of the same cases, store the verdicts, publish the reports."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from scenario_pipeline.compare.data import load_run
from scenario_pipeline.compare.engine import compare_runs as compare
from scenario_pipeline.compare.engine import warehouse_rows
from scenario_pipeline.compare.export import public
from scenario_pipeline.compare.html_report import comparison_html
from scenario_pipeline.compare.reports import comparison_artifacts, write_comparison
from scenario_pipeline.flows.param_types import Alpha, Correction, NBoot, RunIds, StorageUrl, WarehouseUrl
from scenario_pipeline.flows.params import check_compare_params
from scenario_pipeline.settings import load_settings
from scenario_pipeline.storage import Storage
from scenario_pipeline.warehouse.base import connect


@flow(name="compare-runs", log_prints=True)
def compare_runs(
    run_ids: RunIds,
    warehouse_url: WarehouseUrl | None = None,
    storage_url: StorageUrl | None = None,
    correction: Correction = "holm",
    alpha: Alpha = 0.05,
    n_boot: NBoot = 10_000,
) -> dict[str, Any]:
    """Compare every run with the first (the reference). Returns the comparison (JSON-ready) with its report's URL."""
    check_compare_params(run_ids, warehouse_url, storage_url, correction, alpha, n_boot)  # bad input stops here, before any work
    logger = get_run_logger()
    settings = load_settings()
    url = warehouse_url or settings.resolved_warehouse_url()
    storage = Storage.from_url(storage_url or settings.resolved_storage_url())
    wh = connect(url)
    try:
        runs = [load_run(wh, r) for r in run_ids]
        cmp = compare(runs, correction=correction, alpha=alpha, n_boot=n_boot)
        wh.save_comparison(cmp["comparison_id"], warehouse_rows(cmp))
        base = wh.get_baseline(cmp["scenario"], cmp["records"])
        history = wh.history(cmp["scenario"], cmp["records"])
    finally:
        wh.close()
    report = write_comparison(storage, cmp, comparison_html(cmp, history, base["run_id"] if base else None))
    comparison_artifacts(cmp, report)
    s = cmp["summary"]
    logger.info(
        "Comparison %s: improved %s; degraded %s; unchanged %s; inconclusive %s. Report: %s",
        cmp["comparison_id"],
        s["improved"] or "none",
        s["degraded"] or "none",
        s["unchanged"] or "none",
        s["inconclusive"] or "none",
        report,
    )
    out = public(cmp)
    out["report"] = report
    return out
