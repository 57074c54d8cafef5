"""Helpers for the S01/S03/S14/S15 tests: a real dataset on real Dask, an agent run over cases.

``run_cases`` calls an agent and the scenario's scorer the way the harness does (the answer
travels as JSON, a raising agent is a failed case), without the flow around it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenario_pipeline.datasets.manifest import dataset_root
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.scenarios.base import Case, CaseScore, Scenario
from scenario_pipeline.storage import Storage


def materialize_dataset(dask_address: str, spec: DatasetSpec, data_dir: Path) -> dict[str, Any]:
    """Generate ``spec`` on the Dask cluster at ``dask_address``; returns an agent context for it."""
    from distributed import Client

    from scenario_pipeline.tasks.generate import materialize

    storage = Storage.from_url(str(data_dir))
    with Client(dask_address, set_as_default=False) as client:
        manifest = materialize(client, spec, storage)
    root = dataset_root(storage, spec)
    return {**context_for(root, manifest), "oracle_spec": spec.model_dump(mode="json")}


def context_for(root: Storage, manifest: dict[str, Any], scenario: str = "test") -> dict[str, Any]:
    """What every agent sees besides the case (docs/agents.md)."""
    return {
        "scenario": scenario,
        "run_id": "test-run",
        "dataset": {
            "name": manifest["name"],
            "url": root.url,
            "manifest_url": root.uri("_manifest.json"),
            "manifest": manifest,
            "rows": sum(t["rows"] for t in manifest["tables"].values()),
            "bytes": sum(t["bytes"] for t in manifest["tables"].values()),
            "tables": {t: root.uri(t) for t in manifest["tables"]},
        },
        "limits": {"timeout_s": 60.0, "max_answer_bytes": 1_000_000},
    }


def run_cases(
    scenario: Scenario, agent: Callable[[dict, dict], Any], cases: list[Case], context: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per case: metrics, passed, reason, latency_ms (as the harness checkpoints them)."""
    rows = []
    for case in cases:
        start = time.perf_counter()
        try:
            answer = json.loads(json.dumps(agent(json.loads(json.dumps(case.input)), context)))
            score = (
                scenario.score(case, answer, context)
                if isinstance(answer, dict)
                else CaseScore(False, {}, "answer must be a JSON object")
            )
        except Exception as exc:  # noqa: BLE001 - as the harness: an agent failure is a failed case
            score = CaseScore(False, {}, f"agent raised {type(exc).__name__}: {exc}")
        rows.append(
            {
                "case_id": case.case_id,
                "metrics": score.metrics,
                "passed": score.passed,
                "reason": score.reason,
                "latency_ms": (time.perf_counter() - start) * 1000,
            }
        )
    return rows
