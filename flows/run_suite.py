"""Every scenario in one flow run: a sub-flow per scenario, one summary table across them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Failed

from scenario_pipeline.compare.reports import artifact_key
from scenario_pipeline.errors import ThresholdsMissed
from scenario_pipeline.flows.param_types import (
    AgentEnv,
    AgentNetwork,
    AgentSpec,
    Cases,
    CaseTimeout,
    Concurrency,
    DaskAddress,
    MaxAnswerBytes,
    MaxProcesses,
    MaxRetries,
    MemoryMB,
    PriceProfile,
    Records,
    RunId,
    ScenarioNames,
    Seed,
    ShardSize,
    StorageUrl,
    WarehouseUrl,
)
from scenario_pipeline.flows.run_scenario import run_scenario
from scenario_pipeline.infra.dask_cluster import dask_client
from scenario_pipeline.scenarios.registry import resolve_id, scenario_ids, short_id


def check_suite_params(
    scenarios: Any,
    records: Any,
    cases: Any,
    agent: Any,
    seed: Any,
    run_id: Any,
    storage_url: Any,
    warehouse_url: Any,
    dask_address: Any,
    options: dict[str, Any] | None = None,
) -> tuple[list[str], str]:
    """Every scenario's parameters checked before the first starts (`scenario run all` and the nightly
    deployment); returns the scenario ids and the suite id."""
    from scenario_pipeline.flows.param_types import ScenarioNames, check_run_id, valid_or_none
    from scenario_pipeline.flows.params import check_sandbox, resolve_params
    from scenario_pipeline.settings import load_settings

    scenarios = valid_or_none(ScenarioNames, scenarios)
    ids = [resolve_id(s) for s in scenarios] if scenarios else scenario_ids()
    if run_id is not None:
        check_run_id(run_id, "suite run id")
    suite_id = run_id or f"suite-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    settings = load_settings()
    o = dict(options or {})
    sandbox = check_sandbox(
        settings,
        o.pop("trust_agent", None),
        o.pop("agent_memory_mb", None),
        o.pop("agent_max_processes", None),
        o.pop("agent_network", None),
        o.pop("agent_env", None),
    )
    private = o.pop("private_seed", False)
    for sid in ids:
        resolve_params(
            settings,
            sid,
            records,
            cases,
            agent,
            seed,
            f"{suite_id}-{short_id(sid)}",
            storage_url,
            warehouse_url,
            dask_address,
            o.get("shard_size"),
            price_profile=o.get("price_profile"),
            case_timeout_s=o.get("case_timeout_s"),
            max_answer_bytes=o.get("max_answer_bytes"),
            private=private,
            seed_secret=o.get("seed_secret"),
            fail_on_threshold=o.get("fail_on_threshold", True),
            sandbox=sandbox,
            concurrency=o.get("concurrency"),
            max_retries=o.get("max_retries"),
        )
    return ids, suite_id


def suite_row(sid: str, summary: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    if summary is None:
        return {
            "scenario": sid,
            "run_id": "",
            "status": "error",
            "passed": False,
            "cases": 0,
            "pass_rate": None,
            "thresholds_met": "",
            "error": error,
        }
    met = [t["passed"] for t in summary["thresholds"].values()]
    return {
        "scenario": sid,
        "run_id": summary["run_id"],
        "status": summary["status"],
        "passed": summary["passed"],
        "cases": summary["counts"]["cases"],
        "pass_rate": summary["metrics"].get("pass_rate"),
        "thresholds_met": f"{sum(bool(m) for m in met)}/{len(met)}",
        "error": None,
    }


@flow(name="run-suite", flow_run_name=lambda: f"suite-{datetime.now(UTC):%Y%m%d-%H%M}")
def run_suite(
    scenarios: ScenarioNames | None = None,
    records: Records | None = None,
    cases: Cases | None = None,
    agent: AgentSpec = "reference",
    seed: Seed | None = None,
    run_id: RunId | None = None,
    storage_url: StorageUrl | None = None,
    warehouse_url: WarehouseUrl | None = None,
    dask_address: DaskAddress | None = None,
    shard_size: ShardSize | None = None,
    price_profile: PriceProfile | None = None,
    case_timeout_s: CaseTimeout | None = None,
    max_answer_bytes: MaxAnswerBytes | None = None,
    private_seed: bool = False,
    seed_secret: str | None = None,
    fail_on_threshold: bool = True,
    trust_agent: bool | None = None,
    agent_memory_mb: MemoryMB | None = None,
    agent_max_processes: MaxProcesses | None = None,
    agent_network: AgentNetwork | None = None,
    agent_env: AgentEnv | None = None,
    concurrency: Concurrency | None = None,
    max_retries: MaxRetries | None = None,
):  # noqa: ANN201 - the summary dict, or a Failed state holding it
    """Run each scenario (default: all nine) as a sub-flow on one shared Dask cluster; every option
    of a scenario run applies to each. Ends Failed when a scenario misses a threshold (unless
    ``fail_on_threshold`` is off) or fails."""
    options = {
        "shard_size": shard_size,
        "price_profile": price_profile,
        "case_timeout_s": case_timeout_s,
        "max_answer_bytes": max_answer_bytes,
        "private_seed": private_seed,
        "seed_secret": seed_secret,
        "fail_on_threshold": fail_on_threshold,
        "trust_agent": trust_agent,
        "agent_memory_mb": agent_memory_mb,
        "agent_max_processes": agent_max_processes,
        "agent_network": agent_network,
        "agent_env": agent_env,
        "concurrency": concurrency,
        "max_retries": max_retries,
    }
    ids, suite_id = check_suite_params(
        scenarios, records, cases, agent, seed, run_id, storage_url, warehouse_url, dask_address, options
    )
    logger = get_run_logger()
    rows, summaries = [], {}
    with dask_client(dask_address) as client:
        address = client.scheduler.address
        for sid in ids:
            logger.info("Suite %s: scenario %s.", suite_id, sid)
            try:
                state = run_scenario(
                    scenario=sid,
                    records=records,
                    cases=cases,
                    agent=agent,
                    seed=seed,
                    run_id=f"{suite_id}-{short_id(sid)}",
                    storage_url=storage_url,
                    warehouse_url=warehouse_url,
                    dask_address=address,
                    return_state=True,
                    **options,
                )
                summary = state.result(raise_on_failure=False)
                if isinstance(summary, ThresholdsMissed):
                    summary = summary.summary
                elif isinstance(summary, BaseException):
                    raise summary
                summaries[sid] = summary
                rows.append(suite_row(sid, summary, None))
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                logger.error("Scenario %s failed: %s", sid, exc)
                rows.append(suite_row(sid, None, f"{type(exc).__name__}: {exc}"[:500]))
    create_table_artifact(rows, key=artifact_key(suite_id, "suite"), description=f"Suite {suite_id}: one row per scenario")
    lines = [
        f"# Suite {suite_id}",
        "",
        "| scenario | passed | cases | pass rate | thresholds met | run id |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = "n/a" if r["pass_rate"] is None else f"{r['pass_rate']:.3f}"
        lines.append(
            f"| {r['scenario']} | {'yes' if r['passed'] else 'NO'} | {r['cases']} | {rate} | {r['thresholds_met']} | {r['run_id'] or r['error']} |"
        )
    create_markdown_artifact("\n".join(lines), key=artifact_key(suite_id, "suite-summary"), description=f"Suite {suite_id}")
    result = {"suite_id": suite_id, "scenarios": rows, "passed": all(r["passed"] for r in rows), "runs": summaries}
    failed = [r["scenario"] for r in rows if not r["passed"]]
    if failed and (fail_on_threshold or any(r["status"] != "completed" for r in rows)):
        message = f"suite {suite_id}: scenarios that did not pass: {', '.join(failed)}"
        return Failed(message=message, data=ThresholdsMissed(message, result))
    return result
