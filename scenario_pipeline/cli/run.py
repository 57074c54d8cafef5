"""``scenario list`` and ``scenario run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from scenario_pipeline import progress
from scenario_pipeline.cli.common import RichListener, _data_dir, app, check_warehouse, check_writable, count, err, out

@app.command("list")
def list_scenarios(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The scenarios and what each one tests."""
    from scenario_pipeline.scenarios.registry import get_scenario, scenario_ids, short_id

    items = [{"id": s, "short": short_id(s), "title": get_scenario(s).title, "purpose": get_scenario(s).purpose} for s in scenario_ids()]
    if as_json:
        print(json.dumps(items, indent=2))
        return
    table = Table("short", "id", "scenario", "tests that an agent can...")
    for i in items:
        table.add_row(i["short"], i["id"], i["title"], i["purpose"])
    out.print(table)


@app.command()
def run(
    scenario: str = typer.Argument(..., help="scenario id (s12-search), short id (s12), or 'all'"),
    records: Optional[int] = typer.Option(None, parser=count, help="dataset size in records (default: the scenario's)"),
    cases: Optional[int] = typer.Option(None, parser=count, help="number of cases (default: the scenario's)"),
    agent: str = typer.Option("reference", help="reference | package.module:callable | http(s)://endpoint"),
    run_id: Optional[str] = typer.Option(None, help="reuse to resume an interrupted run"),
    seed: Optional[int] = typer.Option(None, help="fixes dataset and cases (default: SCENARIO_SEED or 20261122)"),
    data_dir: Optional[Path] = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    storage: Optional[str] = typer.Option(None, help="storage URL for datasets and checkpoints (file:// or s3://)"),
    warehouse: Optional[str] = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://host:port of an existing Dask scheduler"),
    shard_size: Optional[int] = typer.Option(None, help="cases per shard (default: about four shards per worker thread)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON summary on stdout and nothing else there"),
    max_cost_usd: Optional[float] = typer.Option(None, "--max-cost-usd", help="stop before the run's estimated cost would cross this many US dollars; rerun with the same --run-id and a higher budget to finish"),
    price_profile: Optional[str] = typer.Option(None, "--price-profile", help="unit prices of the estimate: a built-in name (scenario price-profiles) or a .toml file"),
    case_timeout_s: Optional[float] = typer.Option(None, "--case-timeout-s", help="wall-clock limit of one agent call (default: SCENARIO_FANOUT_CASE_TIMEOUT_S or 60)"),
    max_answer_bytes: Optional[int] = typer.Option(None, "--max-answer-bytes", parser=count, help="largest answer accepted, in bytes (default: SCENARIO_FANOUT_MAX_ANSWER_BYTES or 1000000)"),
) -> None:
    """Run one scenario end to end: generate, fan out, score, checkpoint, publish."""
    from scenario_pipeline.agents.loader import check_agent
    from scenario_pipeline.flows.params import resolve_params
    from scenario_pipeline.settings import load_settings

    _data_dir(data_dir)
    settings = load_settings()
    if scenario.strip().lower() == "all":
        if max_cost_usd is not None:  # issue 7: a budget is per run; the suite is nine runs
            from scenario_pipeline.errors import UsageError

            raise UsageError("--max-cost-usd applies to one scenario's run; run the scenarios one by one to give each a budget")
        _run_all(settings, records, cases, agent, seed, run_id, storage, warehouse, dask_address, as_json)
        return
    params = resolve_params(settings, scenario, records, cases, agent, seed, run_id, storage, warehouse, dask_address, shard_size,
                            max_cost_usd=max_cost_usd, price_profile=price_profile,
                            case_timeout_s=case_timeout_s, max_answer_bytes=max_answer_bytes)
    check_agent(params.agent, params.scenario)
    if params.dask_address:
        from scenario_pipeline.infra.dask_cluster import check_address

        check_address(params.dask_address)
    _check_targets(params.warehouse_url, params.storage_url)  # issue 9
    summary = _run_flow(params, as_json)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    if summary["status"] != "completed":
        raise typer.Exit(1)


def _run_all(settings: Any, records: Optional[int], cases: Optional[int], agent: str, seed: Optional[int], run_id: Optional[str],
             storage: Optional[str], warehouse: Optional[str], dask_address: Optional[str], as_json: bool) -> None:
    """``scenario run all``: every scenario as a sub-flow of one suite flow run."""
    from scenario_pipeline.agents.loader import check_agent
    from scenario_pipeline.flows.params import check_run_id, resolve_params
    from scenario_pipeline.scenarios.registry import scenario_ids, short_id

    if run_id is not None:
        check_run_id(run_id)  # issue 9: the id as given, not the per-scenario ids made from it
    checked = [resolve_params(settings, sid, records, cases, agent, seed, f"{run_id}-{short_id(sid)}" if run_id else None, storage, warehouse,
                              dask_address, None)
               for sid in scenario_ids()]  # validates every scenario's parameters before any work
    for params in checked:
        check_agent(params.agent, params.scenario)
    if checked[0].dask_address:  # issue 9: as `scenario run` does
        from scenario_pipeline.infra.dask_cluster import check_address

        check_address(checked[0].dask_address)
    _check_targets(checked[0].warehouse_url, checked[0].storage_url)  # issue 9
    from scenario_pipeline.infra.prefect_server import ensure_api

    st = ensure_api()
    if not as_json:
        err.print(f"Prefect UI: {st.ui_url}", highlight=False)
    from scenario_pipeline.flows.run_suite import run_suite

    p = checked[0]
    result = run_suite(records=records, cases=cases, agent=agent, seed=p.seed, run_id=run_id,
                       storage_url=p.storage_url, warehouse_url=p.warehouse_url, dask_address=p.dask_address)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        table = Table("scenario", "passed", "cases", "pass rate", "thresholds met", "run id")
        for r in result["scenarios"]:
            table.add_row(r["scenario"], "[green]yes[/]" if r["passed"] else "[red]no[/]", str(r["cases"]),
                          "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.3f}", r["thresholds_met"], r["run_id"] or (r["error"] or ""))
        out.print(table)
    if any(r["status"] != "completed" for r in result["scenarios"]):
        raise typer.Exit(1)


def _check_targets(warehouse_url: str, storage_url: str) -> None:
    """issue 9: a warehouse without a credential and storage that cannot be written stop the run here, before
    a flow run exists. (A warehouse that is merely down does not: its rows wait in the outbox.)"""
    from scenario_pipeline.storage import Storage

    check_warehouse(warehouse_url, must_exist=False)
    check_writable(Storage.from_url(storage_url))


def _run_flow(params: Any, quiet: bool) -> dict[str, Any]:
    from scenario_pipeline.infra.prefect_server import ensure_api

    st = ensure_api()
    if not quiet:
        err.print(f"Prefect UI: {st.ui_url}", highlight=False)
    from prefect import tags

    from scenario_pipeline.agents.loader import agent_kind
    from scenario_pipeline.flows.run_scenario import run_scenario
    from scenario_pipeline.scenarios.registry import short_id

    listener = RichListener() if err.is_terminal else None
    progress.set_listener(listener)
    try:
        with tags("scenario-pipeline", short_id(params.scenario.id), f"agent-{agent_kind(params.agent)}"):
            return run_scenario(
                scenario=params.scenario.id, records=params.records, cases=params.cases, agent=params.agent, seed=params.seed,
                run_id=params.run_id, storage_url=params.storage_url, warehouse_url=params.warehouse_url,
                dask_address=params.dask_address, shard_size=params.shard_size,
                max_cost_usd=params.max_cost_usd, price_profile=params.price_profile,  # issue 7
                case_timeout_s=params.case_timeout_s, max_answer_bytes=params.max_answer_bytes,
            )
    except Exception as exc:  # issue 9: the Prefect API lost for longer than its client's retries: say so, and how to resume
        import httpx

        from scenario_pipeline.errors import ScenarioError, ServerError

        lost, seen = exc, 0
        while lost is not None and not isinstance(lost, httpx.HTTPError) and seen < 10:  # Prefect may wrap it
            lost, seen = lost.__cause__ or lost.__context__, seen + 1
        if isinstance(exc, ScenarioError) or not isinstance(lost, httpx.HTTPError):
            raise
        why = f"{type(lost).__name__}: {lost}".replace("[", "(").replace("]", ")")  # no rich markup in the message
        raise ServerError(f"lost the Prefect API at {st.api_url} during run {params.run_id} ({why}); its checkpointed shards are kept: "
                          f"when the server answers again, rerun with --run-id {params.run_id} to resume") from exc
    finally:
        if listener:
            listener.close()
        progress.set_listener(None)


def _print_summary(s: dict[str, Any]) -> None:
    from scenario_pipeline.infra.prefect_server import status

    c = s["counts"]
    out.print(f"\n[bold]{s['scenario']}[/] run [bold]{s['run_id']}[/]: " + ("[green]PASSED[/]" if s["passed"] else "[red]FAILED[/]") + f" ({s['status']})")
    out.print(f"{c['cases']} cases: {c['passed']} passed, {c['failed']} failed, {c['errors']} agent errors; "
              f"{c['shards']} shards, {c['shards_resumed']} resumed")
    table = Table("metric", "value", "target", "passed")
    for name, value in sorted(s["metrics"].items()):
        th = s["thresholds"].get(name, {})
        table.add_row(name, "n/a" if value is None else f"{value:.4g}", "" if th.get("target") is None else f"{th['target']:g}",
                      {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[th.get("passed")])
    out.print(table)
    ui = status().ui_url
    out.print(f"Prefect UI:  {ui}/runs/flow-run/{s['flow_run_id']}" if s.get("flow_run_id") else f"Prefect UI:  {ui}")
    out.print(f"Dataset:     {s['paths']['dataset']}")
    out.print(f"Checkpoints: {s['paths']['checkpoints']}")
    out.print(f"Warehouse:   {s['paths']['warehouse']} ({s['warehouse_rows']} case rows for this run)")
    if s.get("cost"):  # issue 7
        c = s["cost"]
        budget = f" of a ${c['max_cost_usd']:.4f} budget" + (" [red](budget exceeded)[/]" if c["budget_exceeded"] else "") if c.get("max_cost_usd") else ""
        out.print(f"Cost:        estimated ${c['estimate_usd']:.4f}{budget} at {c['profile']} prices; "
                  f"storage ${c['storage_usd_per_month']:.4f}/month; `scenario costs {s['run_id']}` for details")


