"""S03 warehouse context: describe, within a token budget, the part of a catalog a question needs.

The catalog (thousands of tables with columns, types, descriptions, row counts, keys and
lineage) is planted into three Parquet tables by the ``warehouse_catalog`` feature. A case is a
question that needs a known set of mart tables and join keys (questions.py).
The agent answers with a context; the scorer checks which needed tables and joins it names,
that it fits the budget, and how much smaller than the whole catalog it is. See
README.md in this package.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import dataset
from scenario_pipeline.datasets.kinds_planted import planted_column
from scenario_pipeline.datasets.spec import (
    ColumnSpec,
    DatasetSpec,
    FeatureSpec,
    TableSpec,
    column,
)
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.budget import compression_ratio, judge_context
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.registry import register
from scenario_pipeline.scenarios.tokenizer import NAME as TOKENIZER
from scenario_pipeline.scenarios.tokenizer import count_tokens

from .agent import WarehouseAgent
from .features import (
    MAX_SUBJECTS,
    Catalog,
    build_catalog,
    part_rows,
)
from .questions import QuestionDrawer

PARTS = {"tables": "wh_tables", "columns": "wh_columns", "lineage": "wh_lineage"}
TABLE_NAME = re.compile(r"(?<![\w.])(?:raw|staging|mart)\.[a-z0-9_]+")
WORD = re.compile(r"[a-z0-9_]+")
MIN_TABLES = 30


def _text(name: str) -> ColumnSpec:
    return planted_column(name, "string")


def catalog_tables(catalog: Catalog) -> tuple[TableSpec, ...]:
    return (
        TableSpec(
            name=PARTS["tables"],
            records=part_rows(catalog, "tables"),
            columns=(
                column("table_id", "record_id"),
                _text("schema_name"),
                _text("table_name"),
                _text("description"),
                planted_column("row_count", "int64"),
                _text("domain"),
            ),
        ),
        TableSpec(
            name=PARTS["columns"],
            records=part_rows(catalog, "columns"),
            columns=(
                column("column_id", "record_id"),
                _text("table_name"),
                _text("column_name"),
                _text("data_type"),
                _text("description"),
                planted_column("is_key", "bool"),
            ),
        ),
        TableSpec(
            name=PARTS["lineage"],
            records=part_rows(catalog, "lineage"),
            columns=(column("edge_id", "record_id"), _text("upstream"), _text("downstream"), _text("transform")),
        ),
    )


@dataset("warehouse_catalog")
def warehouse_catalog(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """``records`` catalog tables (rounded up to whole subjects of three layers), one partition each."""
    if records < MIN_TABLES:
        raise UsageError(f"s03-warehouse needs a catalog of at least {MIN_TABLES} tables (--records), got {records}")
    subjects = -(-records // 3)
    if subjects > MAX_SUBJECTS:
        raise UsageError(f"s03-warehouse catalogs hold at most {3 * MAX_SUBJECTS:,} tables, got {records:,}")
    params = {"subjects": subjects, "keys": max(8, subjects // 2)}
    catalog = build_catalog(seed, params["subjects"], params["keys"])
    tables = catalog_tables(catalog)
    largest = max(t.records or 0 for t in tables)
    return DatasetSpec(
        name="warehouse_catalog",
        seed=seed,
        records=largest,
        partition_rows=largest,  # small tables: one partition each
        tables=tables,
        features=tuple(
            FeatureSpec(kind="warehouse_catalog", table=t, params={**params, "part": part}) for part, t in PARTS.items()
        ),
    )


@lru_cache(maxsize=4)
def _catalog_tokens(seed: int, subjects: int, keys: int) -> int:
    return count_tokens(build_catalog(seed, subjects, keys).render())


@register
class WarehouseContext(DeclaredMetrics):
    id: ClassVar[str] = "s03-warehouse"
    title: ClassVar[str] = "Warehouse context"
    purpose: ClassVar[str] = "describe the tables and join keys a question needs, within a token budget"
    default_records: ClassVar[int] = 3000
    default_cases: ClassVar[int] = 100
    max_cases: ClassVar[int] = 1000
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("table_recall", threshold=0.95, min_effect=0.01),
        Metric("join_key_recall", threshold=0.9, min_effect=0.01),
        Metric("budget_compliance", of="budget_compliant", threshold=1.0, min_effect=0.01, on_error=0.0),
        Metric("compression_ratio", threshold=8.0, min_effect=0.5, on_error=0.0),
        Metric("table_precision"),
        Metric("context_tokens_mean", higher_is_better=False, of="context_tokens", source="diagnostic"),
    )
    # No context at all (not an empty one, which would be trivially within budget): the failed-answer zeros.
    empty_answer: ClassVar[dict[str, Any]] = {}

    def __init__(self, budget_tokens: int = 2000) -> None:
        self.budget_tokens = budget_tokens

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return warehouse_catalog(records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        catalog: Catalog = oracle.of_kind(spec, "warehouse_catalog")
        try:
            questions = QuestionDrawer(catalog).draw(n, seed)
        except ValueError as exc:
            raise UsageError(f"s03-warehouse: {exc}") from exc
        p = spec.features_of("warehouse_catalog")[0].params
        total = _catalog_tokens(spec.seed, p["subjects"], p["keys"])
        return [
            Case(
                case_id=f"{self.id}-{i:05d}",
                index=i,
                input={"question": q.text, "budget_tokens": self.budget_tokens, "tokenizer": TOKENIZER, "catalog": dict(PARTS)},
                truth={"tables": list(q.tables), "joins": [list(j) for j in q.joins], "catalog_tokens": total},
                attributes={"shape": q.shape, "tables": len(q.tables)},
            )
            for i, q in enumerate(questions)
        ]

    def reference_agent(self, **params: Any) -> Agent:
        return WarehouseAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        text = answer.get("context") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            return CaseScore(
                False,
                {
                    "table_recall": 0.0,
                    "join_key_recall": 0.0,
                    "budget_compliant": 0.0,
                    "compression_ratio": 0.0,
                    "table_precision": 0.0,
                },
                "answer.context must be a string (the warehouse description)",
            )
        budget = case.input["budget_tokens"]
        judged = judge_context(text, budget)
        needed = set(case.truth["tables"])
        named = set(TABLE_NAME.findall(judged.visible))
        found_joins = 0
        lines = [(set(TABLE_NAME.findall(line)), set(WORD.findall(line))) for line in judged.visible.splitlines()]
        for a, b, key in case.truth["joins"]:
            if any(a in tables and b in tables and key in words for tables, words in lines):
                found_joins += 1
        joins = len(case.truth["joins"])
        metrics = {
            "table_recall": len(needed & named) / len(needed),
            "join_key_recall": found_joins / joins if joins else 1.0,
            "budget_compliant": float(judged.compliant),
            "compression_ratio": compression_ratio(case.truth["catalog_tokens"], judged.tokens),
            "table_precision": len(needed & named) / len(named) if named else 0.0,
            "context_tokens": float(judged.tokens),
        }
        problems = []
        if needed - named:
            problems.append(f"missing tables: {', '.join(sorted(needed - named))}")
        if found_joins < joins:
            problems.append(f"{joins - found_joins} of {joins} joins not stated on one line with both tables and the key")
        if not judged.compliant:
            problems.append(f"context has {judged.tokens} tokens, over the {budget}-token budget")
        return CaseScore(not problems, metrics, "; ".join(problems) or None)
