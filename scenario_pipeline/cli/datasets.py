"""``scenario generate`` and ``scenario plan``: materialize a dataset, or say what it would take."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from scenario_pipeline import progress
from scenario_pipeline.cli.common import RichListener, _data_dir, app, check_writable, count, err, out
from scenario_pipeline.cli.cost import add_priced_plan, show_priced_plan
from scenario_pipeline.errors import UsageError

DEFAULT_RECORDS = 10_000_000
MAX_PLAN_WORKERS = 1_000_000  # a plan for more is a typo


def _spec(dataset: str, records: int, partition_rows: int | None, seed: int | None) -> Any:
    from scenario_pipeline.flows.params import check_generate_params  # lazy (cli/__init__.py): 144 ms

    return check_generate_params(dataset, records, partition_rows, seed)  # the generate flow's own checks


@app.command()
def generate(
    dataset: str = typer.Argument(..., help="dataset name, e.g. events (see `scenario plan --help`)"),
    records: int = typer.Option(
        DEFAULT_RECORDS, parser=count, help="records in the dataset's main table (up to 10^12; 1e9 and 10^9 work)"
    ),
    partition_rows: int | None = typer.Option(
        None, help="rows per Parquet partition (default 1,000,000, fewer for small datasets)"
    ),
    seed: int | None = typer.Option(None, help="fixes every value (default: SCENARIO_SEED or 20261122)"),
    storage: str | None = typer.Option(None, help="file:///path or s3://bucket/prefix (default: the data folder)"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    dask_address: str | None = typer.Option(None, help="tcp://host:port of an existing Dask scheduler"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON summary on stdout and nothing else there"),
) -> None:
    """Generate a dataset: partitioned Parquet, a sidecar per partition, the manifest last.

    Rerun the same command to finish an interrupted run: partitions already written are kept.
    """
    from scenario_pipeline.flows.param_types import check_dask_address  # lazy (cli/__init__.py): 144 ms
    from scenario_pipeline.settings import load_settings  # lazy: 93 ms
    from scenario_pipeline.storage import Storage, normalize_url  # lazy: 38 ms

    _data_dir(data_dir)
    check_dask_address(dask_address)  # scheme, host and port, before anything is written
    url = normalize_url(storage or load_settings().resolved_storage_url())
    spec = _spec(dataset, records, partition_rows, seed)  # bad numbers and names stop here
    if dask_address is not None:
        from scenario_pipeline.infra.dask_cluster import check_address  # lazy: Dask, 313 ms

        check_address(dask_address)  # an unreachable scheduler, as `scenario run` tells it
    check_writable(Storage.from_url(url))  # unwritable folders and bad credentials stop here
    from scenario_pipeline.infra.prefect_server import ensure_api  # lazy: 117 ms

    st = ensure_api()
    if not as_json:
        err.print(f"Prefect UI: {st.ui_url}", highlight=False)
    from scenario_pipeline.flows.generate_dataset import generate_dataset  # lazy: the flow with Prefect and Dask, 1.3 s

    listener = RichListener() if err.is_terminal and not as_json else None
    progress.set_listener(listener)
    try:
        summary = generate_dataset(
            dataset=spec.name,
            records=spec.records,
            partition_rows=spec.partition_rows,
            seed=spec.seed,
            storage_url=url,
            dask_address=dask_address,
        )
    finally:
        if listener:
            listener.close()
        progress.set_listener(None)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    verb = (
        "was already complete"
        if summary["already_complete"]
        else (
            f"generated: {summary['partitions_written']} partitions written, {summary['partitions_reused']} kept from an earlier run"
        )
    )
    out.print(f"[bold]{summary['dataset']}[/] ({summary['spec_hash']}) {verb}")
    out.print(f"{summary['rows']:,} rows, {summary['bytes'] / 1e6:,.1f} MB in {summary['seconds']:.1f} s")
    out.print(f"Dataset:  {summary['url']}")
    out.print(f"Manifest: {summary['manifest_url']}")


@app.command()
def plan(
    records: int = typer.Option(..., parser=count, help="records in the dataset's main table (up to 10^12; 1e12 and 10^12 work)"),
    workers: int = typer.Option(..., parser=count, help="worker processes (one per core) that would generate it"),
    dataset: str = typer.Option("events", help="dataset name"),
    partition_rows: int | None = typer.Option(None, help="rows per Parquet partition (default: as `scenario generate`)"),
    seed: int | None = typer.Option(None, help="seed (does not change the estimate)"),
    data_dir: Path | None = typer.Option(None, help="where the calibration of this machine is kept"),
    recalibrate: bool = typer.Option(False, help="measure this machine again instead of using the kept calibration"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout and nothing else there"),
    profile: str | None = typer.Option(
        None, "--profile", help="price profile for the priced plan: a built-in name (scenario price-profiles) or a .toml file"
    ),
) -> None:
    """Partitions, bytes, generation time on W workers, S3 requests and the priced plan, without generating."""
    from scenario_pipeline.datasets.plan import cached_calibration, estimate  # lazy (cli/__init__.py): the generator, 0.3 s
    from scenario_pipeline.settings import load_settings  # lazy: 93 ms

    _data_dir(data_dir)
    if workers <= 0:
        raise UsageError(f"workers must be a positive number, got {workers}")
    if workers > MAX_PLAN_WORKERS:
        raise UsageError(f"workers must be at most {MAX_PLAN_WORKERS:,}, got {workers:,}")
    spec = _spec(dataset, records, partition_rows, seed)
    if profile is not None:  # a bad --profile stops before the calibration is measured and kept
        from scenario_pipeline.cost.prices import normalize_ref  # lazy: with the settings, 99 ms

        normalize_ref(profile)
    cal = cached_calibration(spec, load_settings().resolved_data_dir() / "calibration.json", refresh=recalibrate)
    est = estimate(spec, workers, cal)
    add_priced_plan(est, records, workers, profile, spec)
    if as_json:
        print(json.dumps(est, indent=2))
        return
    t = Table("", "estimate", title=f"{spec.name}: {records:,} records on {workers} worker(s)")
    t.add_row("partitions", f"{est['partitions']:,} of {est['partition_rows']:,} rows")
    t.add_row("Parquet bytes", f"{est['bytes'] / 1e9:,.2f} GB ({est['bytes_per_row']} bytes/row)")
    t.add_row("CPU time", f"{est['cpu_seconds'] / 3600:,.2f} CPU-hours")
    t.add_row("wall time", _duration(est["wall_seconds"]))
    t.add_row("S3 requests", f"{est['s3_requests']['put']:,} PUT, {est['s3_requests']['get_list']:,} GET/LIST")
    out.print(t)
    out.print(
        f"Calibrated on {cal.machine} at {cal.measured_at}: {1 / cal.cpu_s_per_row / 1e6:.1f} M rows per CPU-second; "
        "prices and assumptions: `--json`."
    )
    show_priced_plan(est)


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"
