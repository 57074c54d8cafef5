"""The main flow: generate -> fan out -> score -> checkpoint -> publish, for one scenario."""

from __future__ import annotations

import getpass
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime
from prefect.states import Failed

from scenario_pipeline import __version__
from scenario_pipeline.errors import ThresholdsMissed
from scenario_pipeline.flows.params import RunParams, check_sandbox, resolve_params
from scenario_pipeline.infra.dask_cluster import dask_client, total_threads
from scenario_pipeline.datasets.manifest import dataset_root
from scenario_pipeline.settings import load_settings
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.checkpoint import finished_shards, read_results, run_dir, write_run_record
from scenario_pipeline.tasks.fanout import ShardJob, default_shard_size, fan_out, plan_shards
from scenario_pipeline.tasks.generate import ensure_dataset
from scenario_pipeline.tasks.publish import aggregate, clean, publish
from scenario_pipeline.tasks.report import report
from scenario_pipeline.tasks.score import Limits


def _flow_run_name() -> str:
    p = runtime.flow_run.parameters
    agent = str(p.get("agent", "reference")).rsplit("/", 1)[-1].rsplit(":", 1)[-1][:24]
    records = p.get("records")
    scale = f"{records:.0e}".replace("+0", "").replace("+", "") if isinstance(records, int) else "default"
    return f"{p.get('scenario', 's12')}-{scale}-{agent}-{datetime.now(timezone.utc):%Y%m%d-%H%M}"


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    return __version__


def agent_context(params: RunParams, root: Storage, manifest: dict[str, Any]) -> dict[str, Any]:
    """What every agent may see besides the case (docs/agents.md)."""
    return {
        "scenario": params.scenario.id,
        "run_id": params.run_id,
        "records": params.records,  # the run's scale, as given to `scenario run --records`
        "dataset": {
            "name": manifest["name"],
            "url": root.url,
            "manifest_url": root.uri("_manifest.json"),
            # Its spec is the public part (no seed, no planted features: datasets/manifest.py).
            "manifest": manifest,
            "rows": sum(t["rows"] for t in manifest["tables"].values()),
            "bytes": sum(t["bytes"] for t in manifest["tables"].values()),
            "tables": {t: root.uri(t) for t in manifest["tables"]},
        },
        "limits": {"timeout_s": params.case_timeout_s, "max_answer_bytes": params.max_answer_bytes},
    }


@flow(name="run-scenario", flow_run_name=_flow_run_name, log_prints=True, validate_parameters=False)
def run_scenario(
    scenario: str = "s12-search",
    records: int | None = None,
    cases: int | None = None,
    agent: str = "reference",
    seed: int | None = None,
    run_id: str | None = None,
    storage_url: str | None = None,
    warehouse_url: str | None = None,
    dask_address: str | None = None,
    shard_size: int | None = None,
    max_cost_usd: float | None = None,
    price_profile: str | None = None,
    case_timeout_s: float | None = None,
    max_answer_bytes: int | None = None,
    private_seed: bool = False,
    seed_secret: str | None = None,
    fail_on_threshold: bool = True,
    trust_agent: bool | None = None,
    agent_memory_mb: int | None = None,
    agent_max_processes: int | None = None,
    agent_network: str | None = None,
    agent_env: list[str] | None = None,
) -> dict[str, Any]:
    """Run one scenario against one agent; resumable by ``run_id``; returns the run summary.

    ``max_cost_usd`` stops the fan-out before the run's estimated cost would cross it (status
    ``budget_exceeded``; rerun with the same run id and a higher budget to finish); ``price_profile``
    names the unit prices of the estimate (cost/profiles/, docs/costs.md). ``case_timeout_s`` and
    ``max_answer_bytes`` limit each agent call (default: SCENARIO_FANOUT_CASE_TIMEOUT_S, 60 s, and
    SCENARIO_FANOUT_MAX_ANSWER_BYTES, 1,000,000); a case over either fails with the reason.

    ``private_seed`` takes the seed from SCENARIO_PRIVATE_SEED, ``seed_secret`` from that Prefect
    Secret block: the seed then appears nowhere (parameters, run.json, logs, warehouse), only its
    commitment. ``fail_on_threshold`` (default on) ends a run that misses a threshold in the
    Failed state. ``trust_agent`` and ``agent_*`` set the agent sandbox (docs/agents.md).
    """
    logger = get_run_logger()
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    settings = load_settings()
    params = resolve_params(settings, scenario, records, cases, agent, seed, run_id, storage_url, warehouse_url, dask_address, shard_size,
                            max_cost_usd=max_cost_usd, price_profile=price_profile,
                            case_timeout_s=case_timeout_s, max_answer_bytes=max_answer_bytes,
                            private=private_seed, seed_secret=seed_secret, fail_on_threshold=fail_on_threshold,
                            sandbox=check_sandbox(settings, trust_agent, agent_memory_mb, agent_max_processes, agent_network, agent_env))
    sc = params.scenario
    storage = Storage.from_url(params.storage_url)
    storage.ensure_writable()
    # --- issue 7 (cost/): the run's ledger, live estimate and budget guard ---
    from scenario_pipeline.cost.live import RunCost
    from scenario_pipeline.cost.measure import cluster_shape
    from scenario_pipeline.cost.prices import load_profile

    cost = RunCost(storage, params.run_id, load_profile(params.price_profile), params.max_cost_usd)
    # --- end issue 7 ---
    logger.info("Run %s: %s with agent %s on %s records, %d cases, %s.", params.run_id, sc.id, params.agent, f"{params.records:,}",
                params.cases, params.describe_seed())
    from scenario_pipeline.agents.loader import check_agent

    check_agent(params.agent, sc)
    spec = sc.dataset_spec(params.records, params.seed)
    with dask_client(params.dask_address) as client:
        shard_size = params.shard_size or default_shard_size(params.cases, total_threads(client))
        resuming = write_run_record(storage, params.run_id, {
            "run_id": params.run_id, "scenario": sc.id, "records": params.records, "cases": params.cases,
            "seed": params.public_seed, "seed_commitment": params.seed_commitment, "agent": params.agent, "shard_size": shard_size,
            "dataset_hash": spec.spec_hash() if spec else None, "created_at": started_at.isoformat(),
        })
        manifest = ensure_dataset(client, spec, storage) if spec else {"name": "none", "tables": {}}
        root = dataset_root(storage, spec) if spec else storage
        cost.record_dataset(manifest, started_at.isoformat(), *cluster_shape(client))  # issue 7
        all_cases = sc.draw_cases(spec, params.cases, params.seed)
        plan = plan_shards(len(all_cases), shard_size)
        done = finished_shards(storage, params.run_id, {s: hi - lo for s, lo, hi in plan})
        cost.record_run_start(resuming, done)  # issue 7
        limits = Limits(params.case_timeout_s, params.max_answer_bytes)
        jobs = [ShardJob(params.run_id, sc.id, s, all_cases[lo:hi], params.agent, storage.url, limits) for s, lo, hi in plan if s not in done]
        stats = fan_out(client, jobs, agent_context(params, root, manifest), len(plan), len(all_cases), cost=cost)
    finished = finished_shards(storage, params.run_id, {s: hi - lo for s, lo, hi in plan})
    results = read_results(storage, params.run_id, sorted(finished))
    cost.record_results_read(finished)  # issue 7
    metrics, metric_rows, passed = aggregate(sc, results)
    complete = len(finished) == len(plan)
    rows = results.to_pylist()
    errors = Counter(r["error_kind"] for r in rows if r.get("error_kind"))
    run_row = {
        "run_id": params.run_id, "scenario": sc.id, "agent": params.agent, "records": params.records, "cases": params.cases,
        "seed": params.public_seed, "seed_commitment": params.seed_commitment, "status": "completed" if complete else ("budget_exceeded" if stats.budget_exceeded else "incomplete"),
        "passed": passed and complete,
        "started_at": started_at.replace(tzinfo=None), "finished_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "code_version": _code_version(), "dataset_hash": spec.spec_hash() if spec else None,
        "flow_run_id": str(runtime.flow_run.id) if runtime.flow_run.id else None, "triggered_by": getpass.getuser(),
        "params_json": None,
    }
    publish_started = time.perf_counter()  # issue 7
    warehouse_rows = publish(params.warehouse_url, run_row, results, metric_rows)
    # --- issue 7 (cost/): publish's usage, then the estimate into the summary and the costs table ---
    loaded = warehouse_rows + len(metric_rows) + 1 if warehouse_rows or not results.num_rows else 0  # 0: queued in the outbox
    cost.record_publish(params.warehouse_url, loaded, results.nbytes if loaded else 0, time.perf_counter() - publish_started)
    cost_block = cost.finish(params.warehouse_url, sc.id, stats.budget_exceeded, len(all_cases) - len(rows), stats.shards_held, logger)
    # --- end issue 7 ---
    # --- issue 6 (compare/): baseline comparison, alerts, HTML report; owned by compare/baseline.py ---
    from scenario_pipeline.compare.baseline import after_publish

    baseline = after_publish(params.warehouse_url, storage.url, run_row, metric_rows, results)
    # --- end issue 6 ---
    reasons = Counter(r["reason"].split(":")[0] for r in rows if r["reason"])
    summary = {
        "run_id": params.run_id,
        "scenario": sc.id,
        "agent": params.agent,
        "records": params.records,
        "seed": params.public_seed,
        "seed_commitment": params.seed_commitment,
        "status": run_row["status"],
        "passed": run_row["passed"],
        "resumed": resuming,
        "counts": {
            "cases": len(rows), "expected_cases": params.cases, "passed": sum(r["passed"] for r in rows),
            "failed": sum(not r["passed"] for r in rows), "errors": sum(errors.values()), "errors_by_kind": dict(sorted(errors.items())),
            "shards": len(plan),
            "shards_resumed": stats.shards_resumed, "shards_run": stats.shards_run, "shards_failed": len(stats.failed_shards),
        },
        "metrics": {k: clean(v) for k, v in metrics.items()},
        "thresholds": {m["metric"]: {"target": m["target"], "passed": m["passed"], "unmeasured": m["unmeasured"]}
                       for m in metric_rows if m["target"] is not None},
        "metric_sources": {m["metric"]: m["source"] for m in metric_rows if m["source"] not in (None, "scored")},
        "paths": {
            "dataset": root.url,
            "checkpoints": storage.uri(run_dir(params.run_id)),
            "warehouse": params.warehouse_url.split("@")[-1] if params.warehouse_url.startswith("redshift") else params.warehouse_url,
        },
        "warehouse_rows": warehouse_rows,
        "timings": {"fanout_seconds": round(stats.seconds, 3), "total_seconds": round(time.perf_counter() - t0, 3)},
        "flow_run_id": run_row["flow_run_id"],
        "baseline": baseline,  # issue 6: verdicts against the baseline, alerts, report path
        "cost": cost_block,  # issue 7: the estimate (cost/estimate.py) and the budget
    }
    report(summary, metric_rows, [{"reason": k, "cases": v} for k, v in reasons.most_common()])
    if stats.budget_exceeded:  # issue 7
        logger.error("Run %s stopped at its budget: estimated $%.4f of the $%.4f allowed; %d of %d shards done. Rerun with --run-id %s "
                     "and a higher --max-cost-usd to finish (the %d cases left would cost about $%.4f more).", params.run_id,
                     cost_block["estimate_usd"], cost_block["max_cost_usd"], len(finished), len(plan), params.run_id,
                     len(all_cases) - len(rows), cost_block["remaining_estimate_usd"] or 0.0)
    elif not complete:
        logger.error("Run %s is incomplete: %d of %d shards failed; rerun with --run-id %s to retry them.", params.run_id, len(plan) - len(finished), len(plan), params.run_id)
    missed = threshold_misses(summary)
    if missed:
        logger.error("Run %s missed %d threshold(s): %s.", params.run_id, len(missed), "; ".join(missed))
        if params.fail_on_threshold:
            message = f"run {params.run_id} missed thresholds: {'; '.join(missed)}"
            return Failed(message=message, data=ThresholdsMissed(message, summary))
    return summary


def threshold_misses(summary: dict[str, Any]) -> list[str]:
    """Each missed threshold in words, for the log, the flow state and the CLI."""
    out = []
    for name, th in sorted(summary["thresholds"].items()):
        if th["passed"] is False:
            value = summary["metrics"].get(name)
            out.append(f"{name} {'n/a' if value is None else f'{value:.4g}'} against {th['target']:g}")
    return out
