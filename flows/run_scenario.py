"""The main flow: generate -> fan out -> score -> checkpoint -> publish, for one scenario."""

from __future__ import annotations

import getpass
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from distributed import Client
from prefect import flow, get_run_logger, runtime
from prefect.states import Failed

from scenario_pipeline import __version__
from scenario_pipeline.agents.loader import check_agent
from scenario_pipeline.compare.baseline import after_publish
from scenario_pipeline.cost.live import RunCost
from scenario_pipeline.cost.measure import cluster_shape
from scenario_pipeline.cost.prices import load_profile
from scenario_pipeline.datasets.manifest import dataset_root
from scenario_pipeline.datasets.spec import DatasetSpec
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
    MaxCostUsd,
    MaxProcesses,
    MaxRetries,
    MemoryMB,
    PriceProfile,
    Records,
    RunId,
    ScenarioName,
    Seed,
    ShardSize,
    StorageUrl,
    WarehouseUrl,
)
from scenario_pipeline.flows.params import RunParams, check_sandbox, resolve_params, sandbox_policy, sandbox_strength
from scenario_pipeline.infra.dask_cluster import dask_client, total_threads
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.settings import load_settings
from scenario_pipeline.storage import Storage, run_dir
from scenario_pipeline.tasks.checkpoint import finished_shards, read_results, write_run_record
from scenario_pipeline.tasks.fanout import FanoutStats, ShardJob, default_shard_size, fan_out, plan_shards
from scenario_pipeline.tasks.generate import ensure_dataset
from scenario_pipeline.tasks.publish import aggregate, clean, publish
from scenario_pipeline.tasks.report import report
from scenario_pipeline.tasks.sandbox import SandboxPolicy
from scenario_pipeline.tasks.score import Limits


def _flow_run_name() -> str:
    p = runtime.flow_run.parameters
    agent = str(p.get("agent", "reference")).rsplit("/", 1)[-1].rsplit(":", 1)[-1][:24]
    records = p.get("records")
    scale = f"{records:.0e}".replace("+0", "").replace("+", "") if isinstance(records, int) else "default"
    return f"{p.get('scenario', 's12')}-{scale}-{agent}-{datetime.now(UTC):%Y%m%d-%H%M}"


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
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


@flow(name="run-scenario", flow_run_name=_flow_run_name, log_prints=True)
def run_scenario(
    scenario: ScenarioName = "s12-search",
    records: Records | None = None,
    cases: Cases | None = None,
    agent: AgentSpec = "reference",
    seed: Seed | None = None,
    run_id: RunId | None = None,
    storage_url: StorageUrl | None = None,
    warehouse_url: WarehouseUrl | None = None,
    dask_address: DaskAddress | None = None,
    shard_size: ShardSize | None = None,
    max_cost_usd: MaxCostUsd | None = None,
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

    ``concurrency`` bounds the agent calls in flight across the run (default SCENARIO_FANOUT_CONCURRENCY);
    ``max_retries`` is how often a call the agent refused for now (HTTP 429/503, a reset, ``RateLimited``)
    is retried (default SCENARIO_FANOUT_MAX_RETRIES, 5); docs/agents.md, "Concurrency, rate limits and retries".
    """
    settings = load_settings()
    params = resolve_params(
        settings,
        scenario,
        records,
        cases,
        agent,
        seed,
        run_id,
        storage_url,
        warehouse_url,
        dask_address,
        shard_size,
        max_cost_usd=max_cost_usd,
        price_profile=price_profile,
        case_timeout_s=case_timeout_s,
        max_answer_bytes=max_answer_bytes,
        private=private_seed,
        seed_secret=seed_secret,
        fail_on_threshold=fail_on_threshold,
        sandbox=check_sandbox(settings, trust_agent, agent_memory_mb, agent_max_processes, agent_network, agent_env),
        concurrency=concurrency,
        max_retries=max_retries,
    )
    run = open_run(params)
    with dask_client(params.dask_address) as client:
        prepare(run, client)
        assert run.root is not None  # prepare() opened the dataset
        stats = fan_out(
            client,
            shard_jobs(run),
            agent_context(params, run.root, run.manifest),
            len(run.plan),
            len(run.cases),
            cost=run.cost,
            concurrency=params.concurrency,
            max_retries=params.max_retries,
        )
    outcome = score(run, stats)
    outcome.warehouse_rows = publish_results(run, outcome)
    outcome.cost = run.cost.finish(
        params.warehouse_url,
        params.scenario.id,
        stats.budget_exceeded,
        len(run.cases) - outcome.results.num_rows,
        stats.shards_held,
        run.logger,
    )
    outcome.baseline = after_publish(params.warehouse_url, run.storage.url, outcome.run_row, outcome.metric_rows, outcome.results)
    summary = summarize(run, stats, outcome)
    report(summary, outcome.metric_rows, outcome.failure_reasons())
    return finish(run, stats, outcome, summary)


@dataclass
class Run:
    """One run as the stages share it: its parameters, storage, cost ledger, then what prepare() finds."""

    params: RunParams
    storage: Storage
    cost: RunCost
    logger: Any
    started_at: datetime
    t0: float
    policy: SandboxPolicy = field(default_factory=SandboxPolicy)
    sandbox: str = ""  # the sandbox's strength, in words, for the summary, the report and the warehouse
    spec: DatasetSpec | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    root: Storage | None = None
    cases: list[Case] = field(default_factory=list)
    plan: list[tuple[int, int, int]] = field(default_factory=list)
    done: set[int] = field(default_factory=set)
    resuming: bool = False

    def expected_rows(self) -> dict[int, int]:
        return {s: hi - lo for s, lo, hi in self.plan}


@dataclass
class Outcome:
    """What scoring and publishing produced."""

    results: pa.Table
    finished: set[int]
    metrics: dict[str, Any]
    metric_rows: list[dict[str, Any]]
    run_row: dict[str, Any]
    warehouse_rows: int = 0
    cost: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None

    def failure_reasons(self) -> list[dict[str, Any]]:
        reasons = Counter(r.split(":")[0] for r in self.results.column("reason").to_pylist() if r)
        return [{"reason": k, "cases": v} for k, v in reasons.most_common()]


def open_run(params: RunParams) -> Run:
    """Storage checked writable, the cost ledger opened, the agent checked: before any work."""
    logger = get_run_logger()
    storage = Storage.from_url(params.storage_url)
    storage.ensure_writable()
    run = Run(
        params,
        storage,
        RunCost(storage, params.run_id, load_profile(params.price_profile), params.max_cost_usd),
        logger,
        datetime.now(UTC),
        time.perf_counter(),
    )
    logger.info(
        "Run %s: %s with agent %s on %s records, %d cases, %s.",
        params.run_id,
        params.scenario.id,
        params.agent,
        f"{params.records:,}",
        params.cases,
        params.describe_seed(),
    )
    check_agent(params.agent, params.scenario)
    run.policy = sandbox_policy(params)
    run.sandbox = sandbox_strength(params.agent, run.policy, params.storage_url.startswith("file://"))
    logger.info("Agent sandbox: %s.", run.sandbox)
    return run


def prepare(run: Run, client: Client) -> None:
    """Generate stage and resume state: run.json, the dataset, the cases, the shard plan, what is already done."""
    p = run.params
    run.spec = p.scenario.dataset_spec(p.records, p.seed)
    shard_size = p.shard_size or default_shard_size(p.cases, total_threads(client))
    run.resuming = write_run_record(
        run.storage,
        p.run_id,
        {
            "run_id": p.run_id,
            "scenario": p.scenario.id,
            "records": p.records,
            "cases": p.cases,
            "seed": p.public_seed,
            "seed_commitment": p.seed_commitment,
            "agent": p.agent,
            "shard_size": shard_size,
            "dataset_hash": run.spec.spec_hash() if run.spec else None,
            "created_at": run.started_at.isoformat(),
        },
    )
    run.manifest = ensure_dataset(client, run.spec, run.storage) if run.spec else {"name": "none", "tables": {}}
    run.root = dataset_root(run.storage, run.spec) if run.spec else run.storage
    run.cost.record_dataset(run.manifest, run.started_at.isoformat(), *cluster_shape(client))
    run.cases = p.scenario.draw_cases(run.spec, p.cases, p.seed)
    run.plan = plan_shards(len(run.cases), shard_size)
    run.done = finished_shards(run.storage, p.run_id, run.expected_rows())
    run.cost.record_run_start(run.resuming, run.done, lambda shards: read_results(run.storage, p.run_id, shards).to_pylist())


def shard_jobs(run: Run) -> list[ShardJob]:
    """Fan-out stage input: one job per shard not yet checkpointed."""
    p = run.params
    limits = Limits(p.case_timeout_s, p.max_answer_bytes)
    return [
        ShardJob(p.run_id, p.scenario.id, s, run.cases[lo:hi], p.agent, run.storage.url, limits, run.policy)
        for s, lo, hi in run.plan
        if s not in run.done
    ]


def score(run: Run, stats: FanoutStats) -> Outcome:
    """Score stage: the verified checkpoints of every finished shard, aggregated by the scenario's declarations."""
    p = run.params
    finished = finished_shards(run.storage, p.run_id, run.expected_rows())
    results = read_results(run.storage, p.run_id, sorted(finished))
    run.cost.record_results_read(finished)
    metrics, metric_rows, passed = aggregate(p.scenario, results)
    complete = len(finished) == len(run.plan)
    run_row = {
        "run_id": p.run_id,
        "scenario": p.scenario.id,
        "agent": p.agent,
        "records": p.records,
        "cases": p.cases,
        "seed": p.public_seed,
        "seed_commitment": p.seed_commitment,
        "status": "completed" if complete else ("budget_exceeded" if stats.budget_exceeded else "incomplete"),
        "passed": passed and complete,
        "started_at": run.started_at.replace(tzinfo=None),
        "finished_at": datetime.now(UTC).replace(tzinfo=None),
        "code_version": _code_version(),
        "dataset_hash": run.spec.spec_hash() if run.spec else None,
        "flow_run_id": str(runtime.flow_run.id) if runtime.flow_run.id else None,
        "triggered_by": getpass.getuser(),
        "params_json": None,
        "sandbox": run.sandbox,
    }
    return Outcome(results, finished, metrics, metric_rows, run_row)


def publish_results(run: Run, outcome: Outcome) -> int:
    """Publish stage: rows to the warehouse (or its outbox), and what publishing cost."""
    started = time.perf_counter()
    rows = publish(run.params.warehouse_url, outcome.run_row, outcome.results, outcome.metric_rows)
    loaded = rows + len(outcome.metric_rows) + 1 if rows or not outcome.results.num_rows else 0  # 0: queued in the outbox
    run.cost.record_publish(
        run.params.warehouse_url, loaded, outcome.results.nbytes if loaded else 0, time.perf_counter() - started
    )
    return rows


def summarize(run: Run, stats: FanoutStats, o: Outcome) -> dict[str, Any]:
    """The run summary: what the CLI prints, --json gives, and the flow returns."""
    p = run.params
    rows = o.results.select(["passed", "error_kind", "retries"]).to_pylist()
    errors = Counter(r["error_kind"] for r in rows if r["error_kind"])
    return {
        "run_id": p.run_id,
        "scenario": p.scenario.id,
        "agent": p.agent,
        "records": p.records,
        "seed": p.public_seed,
        "seed_commitment": p.seed_commitment,
        "status": o.run_row["status"],
        "passed": o.run_row["passed"],
        "resumed": run.resuming,
        "sandbox": run.sandbox,
        "counts": {
            "cases": len(rows),
            "expected_cases": p.cases,
            "passed": sum(r["passed"] for r in rows),
            "failed": sum(not r["passed"] for r in rows),
            "errors": sum(errors.values()),
            "errors_by_kind": dict(sorted(errors.items())),
            "shards": len(run.plan),
            "shards_resumed": stats.shards_resumed,
            "shards_run": stats.shards_run,
            "shards_failed": len(stats.failed_shards),
            "retries": sum(r["retries"] or 0 for r in rows),
            "cases_retried": sum(bool(r["retries"]) for r in rows),
        },
        "concurrency": {
            "limit": p.concurrency,
            "max_retries": p.max_retries,
            "peak_in_flight": stats.peak_in_flight,
            "lanes": stats.lanes,
            "limit_decreases": stats.limit_decreases,
        },
        "metrics": {k: clean(v) for k, v in o.metrics.items()},
        "thresholds": {
            m["metric"]: {"target": m["target"], "passed": m["passed"], "unmeasured": m["unmeasured"]}
            for m in o.metric_rows
            if m["target"] is not None
        },
        "metric_sources": {m["metric"]: m["source"] for m in o.metric_rows if m["source"] not in (None, "scored")},
        "paths": {
            "dataset": run.root.url if run.root else None,
            "checkpoints": run.storage.uri(run_dir(p.run_id)),
            "warehouse": p.warehouse_url.split("@")[-1] if p.warehouse_url.startswith("redshift") else p.warehouse_url,
        },
        "warehouse_rows": o.warehouse_rows,
        "timings": {"fanout_seconds": round(stats.seconds, 3), "total_seconds": round(time.perf_counter() - run.t0, 3)},
        "flow_run_id": o.run_row["flow_run_id"],
        "baseline": o.baseline,  # verdicts against the baseline, alerts, report path (compare/baseline.py)
        "cost": o.cost,  # the estimate (cost/estimate.py) and the budget
    }


def finish(run: Run, stats: FanoutStats, outcome: Outcome, summary: dict[str, Any]) -> Any:
    """Say how the run ended; a run that missed a threshold ends Failed, still carrying its summary."""
    p, log, c = run.params, run.logger, summary["counts"]
    done = len(outcome.finished)
    if stats.budget_exceeded:
        cost = summary["cost"]
        log.error(
            "Run %s stopped at its budget: estimated $%.4f of the $%.4f allowed; %d of %d shards done. Rerun with --run-id %s "
            "and a higher --max-cost-usd to finish (the %d cases left would cost about $%.4f more).",
            p.run_id,
            cost["estimate_usd"],
            cost["max_cost_usd"],
            done,
            len(run.plan),
            p.run_id,
            len(run.cases) - c["cases"],
            cost["remaining_estimate_usd"] or 0.0,
        )
    elif summary["status"] != "completed":
        log.error(
            "Run %s is incomplete: %d of %d shards failed; rerun with --run-id %s to retry them.",
            p.run_id,
            len(run.plan) - done,
            len(run.plan),
            p.run_id,
        )
    missed = threshold_misses(summary)
    if missed:
        log.error("Run %s missed %d threshold(s): %s.", p.run_id, len(missed), "; ".join(missed))
        if p.fail_on_threshold:
            message = f"run {p.run_id} missed thresholds: {'; '.join(missed)}"
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
