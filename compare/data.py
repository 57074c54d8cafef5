"""A run as the comparison sees it, read from the warehouse, and the check that runs are comparable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse


@dataclass
class RunData:
    run: dict[str, Any]  # the runs row
    metrics: dict[str, dict[str, Any]]  # scenario_metrics rows by metric name
    cases: list[dict[str, Any]]  # case_results rows, with "metrics" and "attributes" parsed

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    def by_case(self) -> dict[str, dict[str, Any]]:
        return {c["case_id"]: c for c in self.cases}


def _parse(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def load_run(wh: SqlWarehouse, run_id: str) -> RunData:
    run = wh.require_run(run_id)
    cases = wh.case_rows(run_id)
    for c in cases:
        c["metrics"] = _parse(c.get("metrics_json"))
        c["attributes"] = _parse(c.get("attributes_json"))
    return RunData(run, {m["metric"]: m for m in wh.metric_rows(run_id)}, cases)


def check_comparable(runs: list[RunData]) -> None:
    """Runs compare case by case only when they drew the same cases: same scenario, scale and seed."""
    if len(runs) < 2:
        raise UsageError("a comparison needs at least two runs")
    ids = [r.run_id for r in runs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise UsageError(f"run(s) {dupes} given more than once; compare different runs")
    ref = runs[0].run
    for r in runs[1:]:
        diffs = [f"{k}: {ref[k]!r} vs {r.run[k]!r}" for k in ("scenario", "records", "seed") if ref[k] != r.run[k]]
        if ref.get("seed_commitment") != r.run.get("seed_commitment"):  # private seeds: equal commitments, equal seeds
            diffs.append("private seed: the two runs' seed commitments differ")
        if ref.get("dataset_hash") and r.run.get("dataset_hash") and ref["dataset_hash"] != r.run["dataset_hash"]:
            diffs.append(f"dataset_hash: {ref['dataset_hash']!r} vs {r.run['dataset_hash']!r} (the dataset generator changed)")
        if diffs:
            raise UsageError(
                f"runs {ref['run_id']!r} and {r.run['run_id']!r} did not run the same cases ({'; '.join(diffs)}); "
                "compare runs of one scenario at one scale (--records) with one seed"
            )
    empty = [r.run_id for r in runs if not r.cases]
    if empty:
        raise UsageError(f"run(s) {empty} have no case rows in the warehouse; nothing to compare")
