"""``scenario publish RUN_ID``: deliver a run's rows that wait in the outbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from scenario_pipeline.cli.common import _data_dir, app, check_warehouse, out
from scenario_pipeline.errors import UsageError


@app.command("publish")
def publish(
    run_id: str | None = typer.Argument(None, help="the run whose rows wait in the outbox (omit with --all)"),
    all_pending: bool = typer.Option(False, "--all", help="deliver every run waiting in the outbox"),
    warehouse: str | None = typer.Option(None, help="deliver here instead of the warehouse the run was bound for"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    storage: str | None = typer.Option(None, help="storage URL holding the outbox (default: the data folder)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Deliver runs whose warehouse was unreachable when they finished. Safe to repeat: nothing is doubled."""
    if (run_id is None) == (not all_pending):
        raise UsageError("give one RUN_ID or --all")
    from scenario_pipeline.flows.param_types import check_run_id  # lazy (cli/__init__.py): 144 ms
    from scenario_pipeline.settings import load_settings  # lazy: 93 ms
    from scenario_pipeline.storage import Storage  # lazy: 38 ms
    from scenario_pipeline.warehouse import outbox  # lazy: the warehouse, 0.1-0.2 s
    from scenario_pipeline.warehouse.base import connect, redact_url
    from scenario_pipeline.warehouse.duckdb_backend import duckdb_path

    if run_id is not None:
        check_run_id(run_id)  # the id names a folder in storage
    if warehouse is not None:
        check_warehouse(warehouse, must_exist=False)  # the whole URL and a credential, before the outbox is touched
    _data_dir(data_dir)
    settings = load_settings()
    st = Storage.from_url(storage or settings.resolved_storage_url())
    ids = outbox.pending(st) if run_id is None else [run_id]  # exactly one of the two was given
    results: list[dict[str, Any]] = []
    for rid in ids:
        if not outbox.is_pending(st, rid):
            url = warehouse or settings.resolved_warehouse_url()
            if url.startswith("duckdb:") and not duckdb_path(url).exists():  # do not create a warehouse just to look
                raise UsageError(
                    f"nothing of run {rid!r} waits in the outbox at {st.uri('outbox')}, and there is no warehouse at "
                    f"{duckdb_path(url)}; check the run id, --data-dir / --storage and --warehouse"
                )
            wh = connect(url)
            try:
                counts = wh.counts(rid)
            finally:
                wh.close()
            if counts["runs"]:
                results.append(
                    {
                        "run_id": rid,
                        "delivered": False,
                        "already_published": True,
                        "counts": counts,
                        "warehouse_url": redact_url(url),
                    }
                )
                continue
            raise UsageError(
                f"nothing of run {rid!r} waits in the outbox at {st.uri('outbox')} and {redact_url(url)} does not hold it; "
                "check the run id, --data-dir / --storage and --warehouse"
            )
        d = outbox.deliver(st, rid, warehouse)
        results.append(
            {
                "run_id": rid,
                "delivered": True,
                "already_published": False,
                "counts": d["counts"],
                "warehouse_url": redact_url(d["warehouse_url"]),
            }
        )
    if as_json:
        print(json.dumps(results, indent=2, default=str))
        return
    if not results:
        out.print("nothing waits in the outbox")
    for r in results:
        c = r["counts"]
        verb = "delivered to" if r["delivered"] else "already in"
        out.print(
            f"run {r['run_id']}: {verb} {r['warehouse_url']} ({c['case_results']} case rows, {c['scenario_metrics']} metrics, {c['alerts']} alerts)"
        )
