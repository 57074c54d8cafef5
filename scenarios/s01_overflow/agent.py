"""Reference agent for S01: aggregate what the question selects, then pack it into the budget.

1. Prune partitions by the manifest's ``ts`` min / max, then sum revenue per customer in DuckDB
   over the rows the filters select (exact cents: the sum runs over DECIMAL(18,2)).
2. Each customer becomes one item ``<customer_id> <total>``, worth its total, weighing its
   tokens under the project's tokenizer (sp-regex-v1).
3. A strategy picks the items (``--agent reference:strategy=greedy|knapsack|optimal``, default
   ``optimal``); the context is the chosen items, most valuable first, separated by single
   spaces (a space before a number costs no token of its own). ``header=true`` puts one line
   naming the question's filters first, at the cost of the tokens it takes.
"""

from __future__ import annotations

from typing import Any

from scenario_pipeline.agents.reference.context_packing import STRATEGIES
from scenario_pipeline.agents.reference.duckdb_reads import metered_query
from scenario_pipeline.agents.reference.partition_pruning import (
    files_overlapping,
    instant,
)
from scenario_pipeline.errors import AgentError
from scenario_pipeline.scenarios.tokenizer import count_tokens

SQL = (
    "SELECT customer_id, CAST(SUM(CAST(revenue AS DECIMAL(18, 2))) * 100 AS BIGINT) AS cents FROM {source} "
    "WHERE region = $region AND segment = $segment AND ts >= $ts_from AND ts < $ts_to GROUP BY customer_id"
)


def item_text(customer_id: int, cents: int) -> str:
    return f"{customer_id} {cents // 100}.{cents % 100:02d}"


class OverflowAgent:
    """Answers ``{"context": "<id> <total> <id> <total> ...", "bytes_read": n, "partitions_opened": n}``."""

    def __init__(self, strategy: str = "optimal", header: bool = False) -> None:
        if strategy not in STRATEGIES:
            raise AgentError(f"s01 reference agent: unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.header = bool(header)

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        f = case["filters"]
        budget = int(case["budget_tokens"])
        files = files_overlapping(context, case["table"], "ts", f["ts_from"], f["ts_to"])
        rows, bytes_read, opened = (
            ([], 0, 0)
            if not files
            else metered_query(
                context,
                files,
                SQL,
                {
                    "region": f["region"],
                    "segment": f["segment"],
                    "ts_from": instant(f["ts_from"]),
                    "ts_to": instant(f["ts_to"]),
                },
            )
        )
        totals = sorted(((int(c), int(v)) for c, v in rows), key=lambda cv: (-cv[1], cv[0]))
        head = (
            f"enterprise customers of {f['region']}, {f['ts_from'][:10]} to {f['ts_to'][:10]}, id and total revenue:\n"
            if self.header
            else ""
        )
        capacity = budget - count_tokens(head)
        texts = [item_text(c, v) for c, v in totals]
        weights = [count_tokens(t) for t in texts]
        chosen = sorted(STRATEGIES[self.strategy](weights, [v for _, v in totals], capacity))
        text = head + " ".join(texts[i] for i in chosen)
        # Item weights add up exactly when joined by spaces; this guard only ever trims a surprise.
        while chosen and count_tokens(text) > budget:
            chosen.pop()
            text = head + " ".join(texts[i] for i in chosen)
        return {"context": text, "bytes_read": bytes_read, "partitions_opened": opened}
