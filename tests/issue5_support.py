"""Helpers for the S02/S11/S13/S16 tests: write a dataset without Dask, build an agent context,
score a whole run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scenario_pipeline.datasets.manifest import build_manifest, dataset_root, write_manifest
from scenario_pipeline.datasets.partition import write_partition
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.scenarios.base import Agent, Case
from scenario_pipeline.storage import Storage


def materialize_local(spec: DatasetSpec, data_dir: Path) -> dict[str, Any]:
    """Write every partition of every table with the real writer, then the manifest; return the
    agent context the flow would build (docs/agents.md)."""
    root = dataset_root(Storage.from_url(str(data_dir)), spec)
    parts = {t.name: [write_partition(spec, root, t.name, p) for p in range(spec.partitions_of(t.name))] for t in spec.tables}
    manifest = build_manifest(spec, parts)
    write_manifest(root, manifest)
    return {
        "scenario": "test",
        "run_id": "test-run",
        "oracle_spec": spec.model_dump(mode="json"),  # for the tests' oracle agents (tests/oracle.py)
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


def score_run(
    scenario: Any, cases: list[Case], agent: Agent, context: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each case through the agent and the scorer, rows shaped as the flow shapes them, then the
    scenario's run metrics."""
    rows = []
    for case in cases:
        answer = agent(dict(case.input), context)
        json.dumps(answer)  # the harness requires JSON answers
        score = scenario.score(case, answer, context)
        rows.append(
            {
                "case_id": case.case_id,
                "passed": score.passed,
                "reason": score.reason,
                "metrics": score.metrics,
                "latency_ms": 1.0,
                "attributes_json": json.dumps(case.attributes),
            }
        )
    return rows, scenario.aggregate(rows)
