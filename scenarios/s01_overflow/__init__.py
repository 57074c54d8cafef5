"""S01 context overflow under a token budget.

A case asks which enterprise customers brought a region the most revenue in one week. The rows
that question selects are planted (feature ``key_accounts``) and hold far more tokens than the
budget, even once summed per customer. The agent returns the context it would hand a model; the
scorer checks that it fits the budget under the project's tokenizer, how much it compresses the
relevant rows, and how much of the best achievable priority value (revenue) it keeps, computed
exactly by 0/1 knapsack over the canonical ``<customer_id> <total>`` pairs. See
README.md in this package.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from scenario_pipeline.agents.reference.knapsack import best_value
from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import dataset, default_partition_rows
from scenario_pipeline.datasets.columns import generate_column
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.spec import (
    DatasetSpec,
    FeatureSpec,
    Rules,
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

from .features import (
    ENTERPRISE,
    MAX_ACCOUNT_ID,
    KeyAccounts,
)

TABLE = "sales"
REGIONS = (
    "alpine",
    "baltic",
    "central",
    "coastal",
    "delta",
    "eastern",
    "frontier",
    "gulf",
    "harbor",
    "highland",
    "inland",
    "lakes",
    "metro",
    "northern",
    "pacific",
    "plains",
    "river",
    "southern",
    "valley",
    "western",
)
WEEKS = 52
MAX_CELLS = 1000
RECORDS_PER_CELL = 40_000  # one question cell per 40,000 records, up to MAX_CELLS
MIN_RECORDS = 5_200  # at least 100 record ids a week
CENTS_MIN, CENTS_MAX = 5_000, 500_000  # one planted row: $50.00 to $5,000.00
# One credited pair: a whole-number customer id, separators, then the total with two decimals.
PAIR = re.compile(r"(?<![\w.])(\d+)[ \t:=,;|$]*(\d+\.\d\d)(?!\d)")


def item_text(customer_id: int, cents: int) -> str:
    """The canonical (and most compact) rendering of one item; its tokens are the item's weight."""
    return f"{customer_id} {cents // 100}.{cents % 100:02d}"


def credited_pairs(text: str) -> list[tuple[int, int]]:
    """(customer id, cents) of every ``<id> <total>`` pair in ``text``, in order."""
    return [(int(m.group(1)), int(m.group(2).replace(".", ""))) for m in PAIR.finditer(text)]


def sales_table(cents_max: int = CENTS_MAX) -> TableSpec:
    return TableSpec(
        name=TABLE,
        columns=(
            column("record_id", "record_id"),
            column("ts", "timestamp", start="2026-01-01T00:00:00", span_days=7.0 * WEEKS),
            column("region", "category", values=list(REGIONS)),
            column("segment", "category", values=["consumer", "smb", ENTERPRISE], weights=[0.75, 0.25, 0.0]),
            column("customer_id", "int", low=0, high=1_000_000, rules=Rules(min=0, max=MAX_ACCOUNT_ID)),
            column("revenue", "float", low=0.0, high=500.0, decimals=2, rules=Rules(min=0.0, max=cents_max / 100)),
        ),
    )


def cell_layout(records: int) -> dict[str, int]:
    """Cells and accounts per cell for a table of ``records``: planted rows stay <= 1/8 of a week."""
    if records < MIN_RECORDS:
        raise UsageError(f"s01-overflow needs at least {MIN_RECORDS:,} records (100 a week), got {records:,}")
    cells = max(1, min(MAX_CELLS, records // RECORDS_PER_CELL))
    per_week = -(-cells // WEEKS)
    row_cap = records // WEEKS // (8 * per_week)
    accounts_max = max(2, min(2000, row_cap * 2 // 5))  # rows per account average 2.5
    return {"cells": cells, "accounts_min": max(1, accounts_max // 2), "accounts_max": accounts_max, "rows_min": 1, "rows_max": 4}


@dataset("overflow_sales")
def overflow_sales(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """Sales facts with key accounts planted per (region, week) question cell."""
    layout = cell_layout(records)
    return DatasetSpec(
        name="overflow_sales",
        seed=seed,
        records=records,
        partition_rows=partition_rows or default_partition_rows(records),
        tables=(sales_table(),),
        features=(
            FeatureSpec(
                kind="key_accounts",
                table=TABLE,
                params={**layout, "weeks": WEEKS, "cents_min": CENTS_MIN, "cents_max": CENTS_MAX},
            ),
        ),
    )


@register
class ContextOverflow(DeclaredMetrics):
    id: ClassVar[str] = "s01-overflow"
    title: ClassVar[str] = "Context overflow under a token budget"
    purpose: ClassVar[str] = "hand a model the most valuable context that fits its token budget"
    default_records: ClassVar[int] = 2_000_000
    default_cases: ClassVar[int] = 50
    max_cases: ClassVar[int] = MAX_CELLS
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("budget_compliance", of="budget_compliant", threshold=1.0, min_effect=0.01, on_error=0.0),
        Metric("compression_ratio", threshold=8.0, min_effect=0.5, on_error=0.0),
        Metric("value_retained", threshold=0.95, min_effect=0.01),
        Metric("context_tokens_mean", higher_is_better=False, of="context_tokens", source="diagnostic"),
        Metric("items_credited", level="case", source="diagnostic"),
    )
    # No context at all (not an empty one, which would be trivially within budget): the failed-answer zeros.
    empty_answer: ClassVar[dict[str, Any]] = {}

    def __init__(self, budget_tokens: int = 6000) -> None:
        self.budget_tokens = budget_tokens

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return overflow_sales(records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        planted: KeyAccounts = oracle.of_kind(spec, "key_accounts")
        cells = len(planted.cells)
        if n > cells:
            raise UsageError(
                f"s01-overflow at {spec.records:,} records has {cells} question cells, so at most {cells} cases; "
                f"ask for fewer cases or use --records {n * RECORDS_PER_CELL:,} or more"
            )
        order = np.argsort(mix64(np.arange(cells, dtype=np.uint64), stream_key(seed, self.id, "cases")), kind="stable")
        return [self._case(spec, planted, i, int(order[i])) for i in range(n)]

    def _case(self, spec: DatasetSpec, planted: KeyAccounts, i: int, c: int) -> Case:
        cell = planted.cells[c]
        totals = planted.totals_of_cell(c)
        ids = sorted(totals)
        weights = [count_tokens(item_text(a, totals[a])) for a in ids]
        best = best_value(weights, [totals[a] for a in ids], self.budget_tokens)
        day_to = cell.ts_to[:10]
        return Case(
            case_id=f"{self.id}-{i:05d}",
            index=i,
            input={
                "question": (
                    f"Which enterprise customers brought the most revenue in region {cell.region} in the week from "
                    f"{cell.ts_from[:10]} up to (not including) {day_to}? Give the context a model needs to rank them "
                    f"by total revenue, in at most {self.budget_tokens} tokens."
                ),
                "table": TABLE,
                "filters": {"region": cell.region, "segment": ENTERPRISE, "ts_from": cell.ts_from, "ts_to": cell.ts_to},
                "budget_tokens": self.budget_tokens,
                "tokenizer": TOKENIZER,
                "item_format": "<customer_id> <total revenue with two decimals>",
            },
            truth={
                "items": {
                    str(a): [totals[a], w] for a, w in zip(ids, weights, strict=True)
                },  # str keys: truth may travel as JSON
                "best_cents": best,
                "relevant_rows": int(len(planted.rows_of_cell(c))),
                "relevant_tokens": relevant_tokens(spec, planted, c),
            },
            attributes={
                "region": cell.region,
                "week": cell.week,
                "accounts": len(ids),
                "fits_whole": sum(weights) <= self.budget_tokens,
            },
        )

    def reference_agent(self, **params: Any) -> Agent:
        from .agent import (
            OverflowAgent,  # lazy: its agent loads DuckDB and the metered reads, 0.17 s, at every load of the registry
        )

        return OverflowAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        failed = {"budget_compliant": 0.0, "value_retained": 0.0, "compression_ratio": 0.0}
        text = answer.get("context") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            return CaseScore(False, failed, "answer.context must be a string (the context to hand the model)")
        budget = case.input["budget_tokens"]
        judged = judge_context(text, budget)
        items = case.truth["items"]
        credited: dict[int, int] = {}
        for cid, cents in credited_pairs(judged.visible):
            item = items.get(str(cid))
            if item is not None and item[0] == cents:
                credited[cid] = cents
        best = case.truth["best_cents"]
        value = sum(credited.values()) / best if best > 0 else 1.0
        ratio = compression_ratio(case.truth["relevant_tokens"], judged.tokens)
        metrics = {
            "budget_compliant": float(judged.compliant),
            "value_retained": value,
            "compression_ratio": ratio,
            "context_tokens": float(judged.tokens),
            "items_credited": float(len(credited)),
        }
        problems = []
        if not judged.compliant:
            problems.append(f"context has {judged.tokens} tokens, over the {budget}-token budget")
        if value < self.thresholds["value_retained"].target:
            problems.append(f"kept {value:.3f} of the best achievable value ({len(credited)} customers credited)")
        if ratio < self.thresholds["compression_ratio"].target:
            problems.append(f"compression ratio {ratio:.2f} below {self.thresholds['compression_ratio'].target}")
        return CaseScore(not problems, metrics, "; ".join(problems) or None)


def relevant_rows_csv(spec: DatasetSpec, planted: KeyAccounts, c: int) -> str:
    """The rows cell c's question selects, every column, as CSV with a header (what 'relevant data' means)."""
    rows = planted.rows_of_cell(c)
    ids = planted.record_ids[rows]
    ts_col = spec.table(TABLE).column("ts")
    ts = generate_column(ts_col, ids.astype(np.uint64), stream_key(spec.seed, TABLE, "ts"), spec.table_records(TABLE))
    ts_text = np.datetime_as_string(ts.to_numpy(zero_copy_only=False).astype("datetime64[us]"), unit="us")
    region = planted.cells[c].region
    cents = planted.cents_of[rows]
    lines = [
        f"{rid},{t},{region},{ENTERPRISE},{acct},{v // 100}.{v % 100:02d}\n"
        for rid, t, acct, v in zip(ids.tolist(), ts_text.tolist(), planted.account_of[rows].tolist(), cents.tolist(), strict=True)
    ]
    return "record_id,ts,region,segment,customer_id,revenue\n" + "".join(lines)


def relevant_tokens(spec: DatasetSpec, planted: KeyAccounts, c: int) -> int:
    return count_tokens(relevant_rows_csv(spec, planted, c))
