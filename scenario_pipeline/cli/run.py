"""``scenario list`` and ``scenario run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from scenario_pipeline import progress
from scenario_pipeline.cli.common import RichListener, _data_dir, app, check_warehouse, check_writable, count, err, out


@app.command("list")
def list_scenarios(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """The scenarios and what each one tests."""
    from scenario_pipeline.scenarios.registry import get_scenario, scenario_ids, short_id

    items = [
        {"id": s, "short": short_id(s), "title": get_scenario(s).title, "purpose": get_scenario(s).purpose}
        for s in scenario_ids()
    ]
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
    records: int | None = typer.Option(None, parser=count, help="dataset size in records (default: the scenario's)"),
    cases: int | None = typer.Option(None, parser=count, help="number of cases (default: the scenario's)"),
    agent: str = typer.Option("reference", help="reference | package.module:callable | http(s)://endpoint"),
    run_id: str | None = typer.Option(None, help="reuse to resume an interrupted run"),
    seed: int | None = typer.Option(None, help="fixes dataset and cases (default: SCENARIO_SEED or 20261122)"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    storage: str | None = typer.Option(None, help="storage URL for datasets and checkpoints (file:// or s3://)"),
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db"),
    dask_address: str | None = typer.Option(None, help="tcp://host:port of an existing Dask scheduler"),
    shard_size: int | None = typer.Option(None, help="cases per shard (default: about four shards per worker thread)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON summary on stdout and nothing else there"),
    max_cost_usd: float | None = typer.Option(
        None,
        "--max-cost-usd",
        help="stop before the run's estimated cost would cross this many US dollars; rerun with the same --run-id and a higher budget to finish",
    ),
    price_profile: str | None = typer.Option(
        None, "--price-profile", help="unit prices of the estimate: a built-in name (scenario price-profiles) or a .toml file"
    ),
    case_timeout_s: float | None = typer.Option(
        None, "--case-timeout-s", help="wall-clock limit of one agent call (default: SCENARIO_FANOUT_CASE_TIMEOUT_S or 60)"
    ),
    max_answer_bytes: int | None = typer.Option(
        None,
        "--max-answer-bytes",
        parser=count,
        help="largest answer accepted, in bytes (default: SCENARIO_FANOUT_MAX_ANSWER_BYTES or 1000000)",
    ),
    private_seed: bool = typer.Option(
        False, "--private-seed", help="take the seed from SCENARIO_PRIVATE_SEED: it is then written nowhere, only its commitment"
    ),
    seed_secret: str | None = typer.Option(None, "--seed-secret", help="take a private seed from this Prefect Secret block"),
    fail_on_threshold: bool = typer.Option(
        True,
        "--fail-on-threshold/--no-fail-on-threshold",
        help="exit 1 and end the flow run Failed when a threshold is missed (default on)",
    ),
    trust_agent: bool = typer.Option(
        False,
        "--trust-agent",
        help="run the agent without the sandbox: only for agents you wrote (default: SCENARIO_SANDBOX_TRUST_AGENT)",
    ),
    agent_memory_mb: int | None = typer.Option(
        None,
        "--agent-memory-mb",
        help="memory limit of the agent's sandbox, all its processes (default: SCENARIO_SANDBOX_MEMORY_MB or 4096)",
    ),
    agent_max_processes: int | None = typer.Option(
        None, "--agent-max-processes", help="process limit of the agent's sandbox (default: SCENARIO_SANDBOX_MAX_PROCESSES or 64)"
    ),
    agent_network: str | None = typer.Option(
        None, "--agent-network", help="none (default) or outbound: the internet, never this host's loopback services"
    ),
    agent_env: str | None = typer.Option(
        None,
        "--agent-env",
        help="comma-separated names of environment variables the agent gets (default: SCENARIO_AGENT_ENV); it gets no others",
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        parser=count,
        help="agent calls in flight across the whole run (default: SCENARIO_FANOUT_CONCURRENCY or 256)",
    ),
    max_retries: int | None = typer.Option(
        None,
        "--max-retries",
        parser=count,
        help="retries of a call the agent refused for now: HTTP 429/503, a connection reset, RateLimited (default: SCENARIO_FANOUT_MAX_RETRIES or 5)",
    ),
) -> None:
    """Run one scenario end to end: generate, fan out, score, checkpoint, publish.

    Exit codes: 0 passed; 1 the run missed a threshold (unless --no-fail-on-threshold), is incomplete
    or stopped at its budget; 2 bad input, nothing run."""
    from scenario_pipeline.agents.loader import check_agent
    from scenario_pipeline.flows.params import check_sandbox, resolve_params
    from scenario_pipeline.settings import load_settings

    _data_dir(data_dir)
    settings = load_settings()
    sandbox = check_sandbox(
        settings, True if trust_agent else None, agent_memory_mb, agent_max_processes, agent_network, agent_env
    )
    options = {
        "shard_size": shard_size,
        "price_profile": price_profile,
        "case_timeout_s": case_timeout_s,
        "max_answer_bytes": max_answer_bytes,
        "private_seed": private_seed,
        "seed_secret": seed_secret,
        "fail_on_threshold": fail_on_threshold,
        "trust_agent": sandbox.trust_agent,
        "agent_memory_mb": sandbox.memory_mb,
        "agent_max_processes": sandbox.max_processes,
        "agent_network": sandbox.network,
        "agent_env": list(sandbox.agent_env),
        "concurrency": concurrency,
        "max_retries": max_retries,
    }
    if scenario.strip().lower() == "all":
        if max_cost_usd is not None:  # a budget is per run; the suite is nine runs
            from scenario_pipeline.errors import UsageError

            raise UsageError("--max-cost-usd applies to one scenario's run; run the scenarios one by one to give each a budget")
        _run_all(settings, records, cases, agent, seed, run_id, storage, warehouse, dask_address, as_json, options)
        return
    params = resolve_params(
        settings,
        scenario,
        records,
        cases,
        agent,
        seed,
        run_id,
        storage,
        warehouse,
        dask_address,
        shard_size,
        max_cost_usd=max_cost_usd,
        price_profile=price_profile,
        case_timeout_s=case_timeout_s,
        max_answer_bytes=max_answer_bytes,
        private=private_seed,
        seed_secret=seed_secret,
        fail_on_threshold=fail_on_threshold,
        sandbox=sandbox,
        concurrency=concurrency,
        max_retries=max_retries,
    )
    check_agent(params.agent, params.scenario)
    if params.dask_address:
        from scenario_pipeline.infra.dask_cluster import check_address

        check_address(params.dask_address)
    _check_targets(params.warehouse_url, params.storage_url)
    summary = _run_flow(params, as_json, seed_secret)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    if summary["status"] != "completed" or (fail_on_threshold and not summary["passed"]):
        raise typer.Exit(1)


def _run_all(
    settings: Any,
    records: int | None,
    cases: int | None,
    agent: str,
    seed: int | None,
    run_id: str | None,
    storage: str | None,
    warehouse: str | None,
    dask_address: str | None,
    as_json: bool,
    options: dict[str, Any],
) -> None:
    """``scenario run all``: every scenario as a sub-flow of one suite flow run."""
    from scenario_pipeline.agents.loader import check_agent
    from scenario_pipeline.flows.param_types import check_run_id
    from scenario_pipeline.flows.params import resolve_params
    from scenario_pipeline.scenarios.registry import scenario_ids, short_id

    if run_id is not None:
        check_run_id(run_id)  # the id as given, not the per-scenario ids made from it
    from scenario_pipeline.flows.params import check_sandbox

    o = options
    sandbox = check_sandbox(
        settings, o["trust_agent"], o["agent_memory_mb"], o["agent_max_processes"], o["agent_network"], o["agent_env"]
    )
    checked = [
        resolve_params(
            settings,
            sid,
            records,
            cases,
            agent,
            seed,
            f"{run_id}-{short_id(sid)}" if run_id else None,
            storage,
            warehouse,
            dask_address,
            o["shard_size"],
            price_profile=o["price_profile"],
            case_timeout_s=o["case_timeout_s"],
            max_answer_bytes=o["max_answer_bytes"],
            private=o["private_seed"],
            seed_secret=o["seed_secret"],
            fail_on_threshold=o["fail_on_threshold"],
            sandbox=sandbox,
            concurrency=o["concurrency"],
            max_retries=o["max_retries"],
        )
        for sid in scenario_ids()
    ]  # validates every scenario's parameters before any work: every option passes through
    for params in checked:
        check_agent(params.agent, params.scenario)
    if checked[0].dask_address:  # as `scenario run` does
        from scenario_pipeline.infra.dask_cluster import check_address

        check_address(checked[0].dask_address)
    _check_targets(checked[0].warehouse_url, checked[0].storage_url)
    from scenario_pipeline.infra.prefect_server import ensure_api

    st = ensure_api()
    if not as_json:
        err.print(f"Prefect UI: {st.ui_url}", highlight=False)
    from scenario_pipeline.flows.run_suite import run_suite

    p = checked[0]
    state = run_suite(
        records=records,
        cases=cases,
        agent=agent,
        seed=seed,
        run_id=run_id,
        storage_url=p.storage_url,
        warehouse_url=p.warehouse_url,
        dask_address=p.dask_address,
        return_state=True,
        **options,
    )
    result = _state_data(state, "suite_id")
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        table = Table("scenario", "passed", "cases", "pass rate", "thresholds met", "run id")
        for r in result["scenarios"]:
            table.add_row(
                r["scenario"],
                "[green]yes[/]" if r["passed"] else "[red]no[/]",
                str(r["cases"]),
                "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.3f}",
                r["thresholds_met"],
                r["run_id"] or (r["error"] or ""),
            )
        out.print(table)
    if any(r["status"] != "completed" for r in result["scenarios"]) or (o["fail_on_threshold"] and not result["passed"]):
        raise typer.Exit(1)


def _state_data(state: Any, key: str) -> dict[str, Any]:
    """A flow's summary from its final state: a run that missed thresholds ends Failed but still
    carries its summary; any other failure raises its exception."""
    from scenario_pipeline.errors import ThresholdsMissed

    data = state.result(raise_on_failure=False)
    if isinstance(data, ThresholdsMissed):
        return data.summary
    if isinstance(data, dict) and key in data:
        return data
    if isinstance(data, BaseException):
        raise data
    return state.result()


def _check_targets(warehouse_url: str, storage_url: str) -> None:
    """A warehouse without a credential and storage that cannot be written stop the run here, before
    a flow run exists. (A warehouse that is merely down does not: its rows wait in the outbox.)"""
    from scenario_pipeline.storage import Storage

    check_warehouse(warehouse_url, must_exist=False)
    check_writable(Storage.from_url(storage_url))


def _run_flow(params: Any, quiet: bool, seed_secret: str | None = None) -> dict[str, Any]:
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
            sb = params.sandbox
            state = run_scenario(
                scenario=params.scenario.id,
                records=params.records,
                cases=params.cases,
                agent=params.agent,
                seed=None if params.seed_commitment else params.seed,  # a private seed is read again in the flow, never passed
                run_id=params.run_id,
                storage_url=params.storage_url,
                warehouse_url=params.warehouse_url,
                dask_address=params.dask_address,
                shard_size=params.shard_size,
                max_cost_usd=params.max_cost_usd,
                price_profile=params.price_profile,
                case_timeout_s=params.case_timeout_s,
                max_answer_bytes=params.max_answer_bytes,
                private_seed=bool(params.seed_commitment) and seed_secret is None,
                seed_secret=seed_secret,
                fail_on_threshold=params.fail_on_threshold,
                trust_agent=sb.trust_agent,
                agent_memory_mb=sb.memory_mb,
                agent_max_processes=sb.max_processes,
                agent_network=sb.network,
                agent_env=list(sb.agent_env),
                concurrency=params.concurrency,
                max_retries=params.max_retries,
                return_state=True,
            )
            return _state_data(state, "run_id")
    except Exception as exc:  # the Prefect API lost for longer than its client's retries: say so, and how to resume
        import httpx

        from scenario_pipeline.errors import ScenarioError, ServerError

        lost: BaseException | None = exc
        seen = 0
        while lost is not None and not isinstance(lost, httpx.HTTPError) and seen < 10:  # Prefect may wrap it
            lost, seen = lost.__cause__ or lost.__context__, seen + 1
        if isinstance(exc, ScenarioError) or not isinstance(lost, httpx.HTTPError):
            raise
        why = f"{type(lost).__name__}: {lost}".replace("[", "(").replace("]", ")")  # no rich markup in the message
        raise ServerError(
            f"lost the Prefect API at {st.api_url} during run {params.run_id} ({why}); its checkpointed shards are kept: "
            f"when the server answers again, rerun with --run-id {params.run_id} to resume"
        ) from exc
    finally:
        if listener:
            listener.close()
        progress.set_listener(None)


def _print_summary(s: dict[str, Any]) -> None:
    from scenario_pipeline.infra.prefect_server import status

    c = s["counts"]
    out.print(
        f"\n[bold]{s['scenario']}[/] run [bold]{s['run_id']}[/]: "
        + ("[green]PASSED[/]" if s["passed"] else "[red]FAILED[/]")
        + f" ({s['status']})"
    )
    kinds = ", ".join(f"{v} {k}" for k, v in c.get("errors_by_kind", {}).items())
    out.print(
        f"{c['cases']} cases: {c['passed']} passed, {c['failed']} failed, {c['errors']} agent errors{f' ({kinds})' if kinds else ''}; "
        f"{c['shards']} shards, {c['shards_resumed']} resumed"
    )
    if s.get("sandbox"):
        out.print(f"Sandbox:     {s['sandbox']}", highlight=False)
    table = Table("metric", "value", "target", "passed", "source")
    sources = s.get("metric_sources", {})
    for name, value in sorted(s["metrics"].items()):
        th = s["thresholds"].get(name, {})
        ok = (
            "[yellow]unmeasured[/]"
            if th.get("unmeasured")
            else {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[th.get("passed")]
        )
        table.add_row(
            name,
            "n/a" if value is None else f"{value:.4g}",
            "" if th.get("target") is None else f"{th['target']:g}",
            ok,
            sources.get(name, ""),
        )
    out.print(table)
    from scenario_pipeline.flows.run_scenario import threshold_misses

    for line in threshold_misses(s):
        out.print(f"[red]missed:[/] {line}", highlight=False)
    ui = status().ui_url
    out.print(f"Prefect UI:  {ui}/runs/flow-run/{s['flow_run_id']}" if s.get("flow_run_id") else f"Prefect UI:  {ui}")
    out.print(f"Dataset:     {s['paths']['dataset']}")
    out.print(f"Checkpoints: {s['paths']['checkpoints']}")
    out.print(f"Warehouse:   {s['paths']['warehouse']} ({s['warehouse_rows']} case rows for this run)")
    if s.get("cost"):
        c = s["cost"]
        budget = (
            f" of a ${c['max_cost_usd']:.4f} budget" + (" [red](budget exceeded)[/]" if c["budget_exceeded"] else "")
            if c.get("max_cost_usd")
            else ""
        )
        out.print(
            f"Cost:        estimated ${c['estimate_usd']:.4f}{budget} at {c['profile']} prices; "
            f"storage ${c['storage_usd_per_month']:.4f}/month; `scenario costs {s['run_id']}` for details"
        )
