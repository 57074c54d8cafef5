"""``scenario costs RUN_ID``, ``scenario reconcile-costs`` and ``scenario price-profiles`` (docs/costs.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from scenario_pipeline.cli.common import _data_dir, app, check_aws_credentials, check_warehouse, err, out
from scenario_pipeline.errors import UsageError


def _warehouse_url(warehouse: str | None) -> str:
    """The whole URL, a credential, and a warehouse that exists (a look must not create one)."""
    from scenario_pipeline.settings import load_settings  # lazy (cli/__init__.py): 93 ms

    return check_warehouse(warehouse or load_settings().resolved_warehouse_url(), must_exist=True)


@app.command("costs")
def costs(
    run_id: str = typer.Argument(..., help="the run whose costs to show"),
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    shards: bool = typer.Option(False, "--shards", help="also each shard's estimated cost"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """A run's estimated cost (per stage and item), its actual cost from Cost Explorer, and the error."""
    from scenario_pipeline.cost.summary import run_costs  # lazy (cli/__init__.py): 81 ms
    from scenario_pipeline.flows.param_types import check_run_id  # lazy: 144 ms
    from scenario_pipeline.warehouse.base import connect  # lazy: 50 ms

    check_run_id(run_id)
    _data_dir(data_dir)
    wh = connect(_warehouse_url(warehouse))
    try:
        c = run_costs(wh, run_id, shards)
    finally:
        wh.close()
    if as_json:
        print(json.dumps(c, indent=2, default=str))
        return
    e, a, r = c["estimate"], c["actuals"], c["reconciliation"]
    if e:
        out.print(
            f"[bold]{run_id}[/] ({c['scenario']}): estimated [bold]${e['total_usd']:.4f}[/] at {e['profile']} list prices; "
            f"storage ${e['storage_usd_per_month']:.4f} per month kept"
        )
        t = Table("stage", "USD")
        for stage, usd in e["by_stage"].items():
            t.add_row(stage, f"{usd:.6f}")
        out.print(t)
        t = Table("item", "USD")
        for item, usd in e["by_item"].items():
            t.add_row(item, f"{usd:.6f}")
        out.print(t)
    if c.get("shards"):
        t = Table("shard", "USD")
        for s in c["shards"]:
            t.add_row(str(s["shard"]), f"{s['usd']:.6f}")
        out.print(t)
    if a:
        t = Table("day", "actual USD", "settled", "services")
        for d in a["by_day"]:
            t.add_row(d["day"], f"{d['usd']:.4f}", "no" if d["estimated"] else "yes", ", ".join(sorted(d["services"])))
        out.print(t)
    else:
        out.print("No actuals yet: Cost Explorer reports a day late; `scenario reconcile-costs` fetches them.")
    if r and r.get("error_pct") is not None:
        out.print(
            f"Estimate error (AWS part): estimate ${r['estimate_usd']:.4f} vs actual ${r['actual_usd']:.4f}: {r['error_pct']:+.1f}%"
            + (" (some days still estimated by Cost Explorer)" if r["incomplete"] else "")
        )


@app.command("reconcile-costs")
def reconcile_costs_cmd(
    days: int | None = typer.Option(None, help="days back to ask Cost Explorer about (default SCENARIO_COST_RECONCILE_DAYS, 7)"),
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    today: str | None = typer.Option(None, help="reconcile as of this date, YYYY-MM-DD (backfills); default today (UTC)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
) -> None:
    """Fetch actual cost per run from AWS Cost Explorer (tag scenario-run-id) into the warehouse, next to the estimates."""
    from scenario_pipeline.cost.reconcile import window  # lazy (cli/__init__.py): 227 ms (Cost Explorer's boto3)

    _data_dir(data_dir)
    if days is not None:
        window(date.today(), days, None)  # checks days before any work
    if today is not None:
        try:
            date.fromisoformat(today)
        except ValueError as exc:
            raise UsageError(f"--today must be a date as YYYY-MM-DD, got {today!r}") from exc
    url = _warehouse_url(warehouse)
    check_aws_credentials("reconcile-costs asks AWS Cost Explorer, so it")  # a missing credential, before the flow
    from scenario_pipeline.infra.prefect_server import ensure_api  # lazy: 117 ms

    st = ensure_api()
    if not as_json:
        err.print(f"Prefect UI: {st.ui_url}", highlight=False)
    from scenario_pipeline.flows.reconcile_costs import reconcile_costs, report_lines  # lazy: the flow with Prefect, 0.9 s

    result = reconcile_costs(days=days, warehouse_url=url, today=today)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        out.print("\n".join(report_lines(result)), highlight=False)


@app.command("price-profiles")
def price_profiles(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The built-in price profiles (unit prices for estimates and plans) and what they charge."""
    from scenario_pipeline.cost.prices import load_profile, profile_names  # lazy (cli/__init__.py): with the settings, 99 ms

    items: list[dict[str, Any]] = []
    for name in profile_names():
        p = load_profile(name)
        items.append(
            {
                "name": name,
                "as_of": p.as_of,
                "description": p.description,
                "vcpu_hour": p.vcpu_hour,
                "gb_hour": p.gb_hour,
                "s3_put_per_1000": p.put_per_1000,
                "s3_get_per_1000": p.get_per_1000,
                "s3_gb_month": p.storage_gb_month[0],
                "redshift_rpu_hour": p.rpu_hour,
                "default_model": p.default_model,
            }
        )
    if as_json:
        print(json.dumps(items, indent=2))
        return
    t = Table("profile", "as of", "vCPU-h", "GB-h", "S3 PUT/1k", "S3 GET/1k", "S3 GB-month", "RPU-h", "model")
    for i in items:
        t.add_row(
            i["name"],
            i["as_of"],
            f"{i['vcpu_hour']:g}",
            f"{i['gb_hour']:g}",
            f"{i['s3_put_per_1000']:g}",
            f"{i['s3_get_per_1000']:g}",
            f"{i['s3_gb_month']:g}",
            f"{i['redshift_rpu_hour']:g}",
            i["default_model"] or "",
        )
    out.print(t)


def print_priced_plan(priced: dict) -> None:
    """The priced lines of `scenario plan` (cost/plan.py), under the plan's own table."""
    t = Table(
        "stage",
        "item",
        "quantity",
        "unit price",
        "USD",
        title=f"priced at {priced['profile']['name']} list prices (as of {priced['profile']['as_of']})",
    )
    for ln in priced["lines"]:
        t.add_row(
            ln["stage"],
            ln["item"],
            f"{ln['quantity']:,.4g} {ln['unit']}",
            f"${ln['unit_price_usd']:.4g}",
            f"{ln['amount_usd']:,.4f}" + (" /month" if ln["recurring"] and priced["storage"]["months"] == 1 else ""),
        )
    out.print(t)
    g, f = priced["generate"], priced["fanout"]
    out.print(
        f"Generation ${g['usd']:,.2f} ({g['cpu_hours']:,.1f} vCPU-hours, {g['wall_seconds'] / 60:,.1f} min on {priced['workers']:,} "
        f"worker(s)); {priced['scenario']} fan-out of {f['cases']:,} cases ${f['usd']:,.4f}; storage ${priced['storage']['usd']:,.2f} "
        f"for {priced['storage']['months']:g} month(s). Total ${priced['total_usd']:,.2f}."
    )
    src = priced["inputs"]
    out.print(
        f"Throughput measured by the benchmarks (cost/plan_inputs.toml): {src['generate.rows_per_cpu_second']['value'] / 1e6:.2f} M rows per CPU-second, "
        f"{src['generate.bytes_per_row']['value']:g} bytes per row, {src['fanout.thread_seconds_per_case']['value'] * 1e3:.3f} ms of a "
        "worker thread per case (agent time not included; see --json for every assumption).",
        highlight=False,
    )


def add_priced_plan(est: dict, records: int, workers: int, profile: str | None, spec: object) -> None:
    """`scenario plan`: put the priced plan under ``est["priced"]`` (``est`` is datasets/plan.py's estimate).

    With no --profile the plan is priced at the default profile when its plan inputs can be read,
    and says why not otherwise; a --profile given explicitly must work.
    """
    from scenario_pipeline.cost.plan import price_plan  # lazy (cli/__init__.py): with the dataset generator, 0.4 s

    try:
        est["priced"] = price_plan(records, workers, profile, spec=spec, dataset_plan=est)  # type: ignore[arg-type]
    except UsageError as exc:
        if profile is not None:
            raise
        est["priced"] = {"error": str(exc)}


def show_priced_plan(est: dict) -> None:
    priced = est.get("priced")
    if not priced:
        return
    if "error" in priced:
        err.print(f"not priced: {priced['error']}", highlight=False)
        return
    print_priced_plan(priced)
