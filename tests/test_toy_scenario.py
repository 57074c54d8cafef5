"""A new scenario is one package, and it may live outside this repository (issue 14).

The test writes a complete scenario package into a temporary folder (a dataset of one table
built from existing column kinds, one planted feature kind of its own, cases, declared metrics,
a scorer and a reference agent), registers it the way docs/scenarios/README.md tells a user to
(an entry point of the group ``scenario_pipeline.scenarios``, here in the ``.dist-info`` that
``pip install`` would write), and runs it end to end through the real ``scenario`` command: a
real Prefect server, a Dask LocalCluster of processes that generate its data, the sandboxed
reference agent, the scorer and the warehouse. The metrics are computed here by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow

DIST_INFO = {
    "METADATA": "Metadata-Version: 2.1\nName: toy-scenarios\nVersion: 0.1.0\n",
    "entry_points.txt": "[scenario_pipeline.scenarios]\nx01 = toy_scenarios.x01_tally\n",
}

PACKAGE = {
    "toy_scenarios/__init__.py": '"""Scenarios kept outside scenario-pipeline."""\n',
    "toy_scenarios/x01_tally/README.md": "# X01 `x01-tally`: count the flagged items in a range of ids\n",
    "toy_scenarios/x01_tally/features.py": '''
"""The planted feature of X01: every item whose id is ``offset`` modulo ``stride`` is flagged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec


@dataclass(frozen=True)
class Flagged:
    stride: int
    offset: int
    records: int

    def ids_in(self, lo: int, hi: int) -> list[int]:
        return list(range(lo + (self.offset - lo) % self.stride, min(hi, self.records), self.stride))


@register_feature_kind("x01_flags")
class FlagKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Flagged:
        stride = feature.params["stride"]
        return Flagged(stride, spec.seed % stride, spec.table_records(feature.table))

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Flagged, start: int, stop: int) -> pa.Table:
        flags = np.arange(start, stop) % truth.stride == truth.offset
        return tbl.set_column(tbl.schema.get_field_index(feature.column), feature.column, pa.array(flags))
''',
    "toy_scenarios/x01_tally/agent.py": '''
"""The reference agent of X01: read the flag of the items in range from the partitions that hold them."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq

from scenario_pipeline.storage import Storage


class TallyAgent:
    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit  # answer at most this many ids (to make a worse agent out of this one)

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        lo, hi = case["range"]
        root = Storage.from_url(context["dataset"]["url"])
        ids: list[int] = []
        for part in context["dataset"]["manifest"]["tables"][case["table"]]["partitions"]:
            stats = part["stats"]["item_id"]
            if stats["max"] < lo or stats["min"] >= hi:
                continue
            rows = pq.read_table(root.path(part["path"]), columns=["item_id", "flag"]).to_pylist()
            ids += [r["item_id"] for r in rows if r["flag"] and lo <= r["item_id"] < hi]
        ids.sort()
        return {"ids": ids if self.limit is None else ids[: self.limit]}
''',
    "toy_scenarios/x01_tally/__init__.py": '''
"""X01 tally: which items in a range of ids are flagged. A scenario kept out of tree."""

from __future__ import annotations

from typing import Any, ClassVar

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import dataset
from scenario_pipeline.datasets.kinds_planted import planted_column
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec, TableSpec, column
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.metrics import precision_recall_f1
from scenario_pipeline.scenarios.registry import register

from .features import Flagged

STRIDE = 10


@dataset("x01_items")
def x01_items(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    if records < 125:
        raise ValueError(f"X01 needs at least 125 items, got {records}")
    return DatasetSpec(
        name="x01_items", seed=seed, records=records, partition_rows=partition_rows or max(1, records // 4),
        tables=(TableSpec(name="items", columns=(
            column("item_id", "record_id"),
            column("color", "category", values=["red", "green", "blue"]),
            column("price", "int", low=1, high=100),
            planted_column("flag", "bool"),
        )),),
        features=(FeatureSpec(kind="x01_flags", table="items", column="flag", params={"stride": STRIDE}),),
    )


def _pooled_recall(rows: list[dict[str, Any]]) -> float:
    planted = sum(r["metrics"].get("planted", 0) for r in rows)
    return sum(r["metrics"].get("found", 0) for r in rows) / planted if planted else float("nan")


@register
class Tally(DeclaredMetrics):
    id: ClassVar[str] = "x01-tally"
    title: ClassVar[str] = "Tally"
    purpose: ClassVar[str] = "list the flagged items in a range of ids"
    default_records: ClassVar[int] = 1000
    default_cases: ClassVar[int] = 4
    max_cases: ClassVar[int] = 8
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("recall", threshold=1.0, on_error=0.0),
        Metric("precision", threshold=1.0),
        Metric("found", level="case", source="diagnostic"),
        Metric("planted", level="case", source="diagnostic"),
        Metric("pooled_recall", level="run", compute=_pooled_recall),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"ids": []}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return x01_items(records, seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        """Case i: the ids in [100 i, 100 i + 25 (i + 1))."""
        assert spec is not None
        flagged: Flagged = oracle.of_kind(spec, "x01_flags")
        if 100 * (n - 1) + 25 * n > spec.records:
            raise UsageError(f"x01-tally at {spec.records} items has room for fewer than {n} cases")
        cases = []
        for i in range(n):
            lo, hi = 100 * i, 100 * i + 25 * (i + 1)
            cases.append(Case(case_id=f"{self.id}-{i:05d}", index=i,
                              input={"question": f"Which items with ids in [{lo}, {hi}) are flagged?", "table": "items", "range": [lo, hi]},
                              truth={"ids": flagged.ids_in(lo, hi)}))
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        from .agent import TallyAgent

        return TallyAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        truth = set(case.truth["ids"])
        ids = answer.get("ids")
        if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            return CaseScore(False, {"recall": 0.0, "precision": 0.0, "found": 0, "planted": len(truth)}, "answer.ids must be a list of integers")
        precision, recall, _ = precision_recall_f1(set(ids), truth)
        found = len(set(ids) & truth)
        passed = precision == 1.0 and recall == 1.0
        return CaseScore(passed, {"recall": recall, "precision": precision, "found": found, "planted": len(truth)},
                         None if passed else f"found {found} of {len(truth)} flagged items")
''',
}


def write_package(site: Path) -> None:
    for rel, text in PACKAGE.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))


def write_entry_point(site: Path) -> None:
    info = site / "toy_scenarios-0.1.0.dist-info"
    info.mkdir()
    for name, text in DIST_INFO.items():
        (info / name).write_text(text)


def test_an_out_of_tree_scenario_package_runs_end_to_end(prefect_server: str, data_dir: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"  # beside data_dir, not above it: the sandbox binds it read-only
    write_package(site)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(site)]), "PREFECT_API_URL": prefect_server}
    listed = run_cli(["list", "--json"], env)
    assert listed.returncode == 0 and "x01-tally" not in listed.stdout  # importable is not registered

    write_entry_point(site)
    listed = run_cli(["list", "--json"], env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert {
        "id": "x01-tally",
        "short": "x01",
        "title": "Tally",
        "purpose": "list the flagged items in a range of ids",
    } in json.loads(listed.stdout)

    # The reference agent with limit=4 answers the first 4 flagged ids of each range.
    proc = run_cli(
        [
            "run",
            "x01",
            "--records",
            "1000",
            "--cases",
            "4",
            "--seed",
            "7",
            "--agent",
            "reference:limit=4",
            "--data-dir",
            str(data_dir),
            "--json",
            "--no-fail-on-threshold",
            "--run-id",
            "toy-1",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["scenario"] == "x01-tally" and s["counts"]["cases"] == 4

    # Seed 7, stride 10: the flagged ids are 7, 17, 27, ... Case i asks for [100 i, 100 i + 25 (i + 1)):
    #   [0, 25): 7, 17 (2)   [100, 150): 107 .. 147 (5)   [200, 275): 207 .. 267 (7)   [300, 400): 307 .. 397 (10)
    # Answering at most 4 ids, all right: found 2, 4, 4, 4; recall 1, 4/5, 4/7, 4/10; precision 1 each.
    m = s["metrics"]
    assert m["recall"] == pytest.approx((1 + 4 / 5 + 4 / 7 + 4 / 10) / 4)
    assert m["precision"] == 1.0
    assert m["pooled_recall"] == pytest.approx(14 / 24)
    assert m["pass_rate"] == pytest.approx(1 / 4)  # only the first case is whole
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "SELECT case_index, passed, reason, metrics_json FROM case_results WHERE run_id = 'toy-1' ORDER BY case_index"
    ).fetchall()
    con.close()
    assert [(r[0], r[1], r[2] or None) for r in rows] == [
        (0, True, None),
        (1, False, "found 4 of 5 flagged items"),
        (2, False, "found 4 of 7 flagged items"),
        (3, False, "found 4 of 10 flagged items"),
    ]
    assert [json.loads(r[3])["planted"] for r in rows] == [2, 5, 7, 10]
