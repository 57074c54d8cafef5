"""S12 needle search at trillion-record scale.

Needles are planted at record ids only the oracle knows; each carries a token in ``tag`` that no
other record has. A case asks for every record with that token. A good agent does not scan the
table: it uses what the dataset publishes (the manifest and the Parquet Bloom filters of ``tag``)
and reads through DuckDB with predicate pushdown.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.metrics import precision_recall_f1
from scenario_pipeline.scenarios.registry import register


@register
class NeedleSearch(DeclaredMetrics):
    id: ClassVar[str] = "s12-search"
    title: ClassVar[str] = "Needle search at trillion-record scale"
    purpose: ClassVar[str] = "find every planted needle record without scanning the table"
    default_records: ClassVar[int] = 10_000_000
    default_cases: ClassVar[int] = 100
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("recall", threshold=1.0, min_effect=0.01),
        Metric("precision", threshold=1.0, min_effect=0.01),
        Metric("f1"),
        # Bytes the agent's processes read, measured by the harness from outside the sandbox
        # (tasks/sandbox.py), over the dataset's bytes. An errored case counts as a full scan.
        Metric("bytes_read_share", higher_is_better=False, threshold=0.01, min_effect=0.001, source="measured", on_error=1.0),
        # What the agent says it read: shown beside the measurement, never thresholded.
        Metric("claimed_bytes_read_share", higher_is_better=False, source="claimed"),
        Metric("partitions_opened", higher_is_better=False, source="claimed"),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"record_ids": []}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return build_spec("events", records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        planted = oracle.needles(spec)
        groups = len(planted.tokens)
        # A seeded permutation of the needle groups: case i asks for group order[i].
        order = np.argsort(mix64(np.arange(groups, dtype=np.uint64), stream_key(seed, self.id, "cases")), kind="stable")
        cases = []
        for i in range(n):
            g = int(order[i])
            token = planted.tokens[g]
            ids = planted.of_group(g)
            cases.append(
                Case(
                    case_id=f"{self.id}-{i:05d}",
                    index=i,
                    input={
                        "question": f"Find every record of table events whose tag is {token!r}.",
                        "table": "events",
                        "predicate": {"column": "tag", "op": "=", "value": token},
                    },
                    truth={"record_ids": ids},
                    attributes={
                        "needles": len(ids),
                        "last_partition_share": _position_bucket(ids, spec),
                    },
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        from .agent import (
            NeedleSearchAgent,  # lazy: its agent loads DuckDB and the metered reads, 0.15 s, at every load of the registry
        )

        return NeedleSearchAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        dataset_bytes = context["dataset"]["bytes"]
        measured = context.get("measured", {}).get("read_bytes")
        metrics: dict[str, float] = {}
        if measured is not None and dataset_bytes:
            metrics["bytes_read_share"] = measured / dataset_bytes
        ids = answer.get("record_ids")
        if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            metrics.update({"precision": 0.0, "recall": 0.0, "f1": 0.0})
            return CaseScore(False, metrics, "answer.record_ids must be a list of integers")
        truth = set(case.truth["record_ids"])
        precision, recall, f1 = precision_recall_f1(set(ids), truth)
        metrics.update({"precision": precision, "recall": recall, "f1": f1})
        for key, name in (("bytes_read", "claimed_bytes_read_share"), ("partitions_opened", "partitions_opened")):
            value = answer.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                metrics[name] = value / dataset_bytes if key == "bytes_read" else float(value)
        passed = recall == 1.0 and precision == 1.0
        reason = (
            None if passed else f"found {len(set(ids) & truth)} of {len(truth)} needles with {len(set(ids) - truth)} false hits"
        )
        return CaseScore(passed, metrics, reason)


def _position_bucket(ids: list[int], spec: DatasetSpec) -> str:
    """Where a case's needles sit: lets failure analysis say 'recall drops in the last 1%'."""
    if not ids:
        return "none"
    last = max(ids) / spec.records
    return "last-1%" if last >= 0.99 else "last-10%" if last >= 0.9 else "body"
