"""Reference agent for S03: link the question to catalog tables, find the join path, describe it.

1. Read the catalog (``wh_tables``, ``wh_columns``) from the dataset, once per process.
2. Schema linking: a table's subject phrase is its name without schema and domain
   (``mart.billing_kelu_tavo_invoices`` -> ``kelu tavo invoices``); the tables named are those
   of the question's layer (``mart`` unless it says ``staging`` or ``raw``) whose phrase occurs
   in the question.
3. Join paths: named tables that share a key column join on it; two named tables left
   unconnected are joined through every table of the layer holding a key of each (a bridge).
4. The context: one block per table (name, row count, description, keys, columns) and one line
   per join ``a.key = b.key``; attribute columns are dropped from the end until it fits the budget.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from scenario_pipeline.agents.reference.catalog_reader import read_table
from scenario_pipeline.scenarios.tokenizer import count_tokens


@dataclass
class TableInfo:
    name: str
    layer: str
    phrase: str
    description: str
    rows: int
    keys: list[str]
    columns: list[tuple[str, str]]  # non-key (name, type)


class CatalogIndex:
    def __init__(self, context: dict[str, Any], names: dict[str, str]) -> None:
        tables = read_table(context, names["tables"]).to_pylist()
        columns = read_table(context, names["columns"]).to_pylist()
        self.tables: dict[str, TableInfo] = {}
        for t in tables:
            short = t["table_name"].split(".", 1)[1]
            phrase = (
                short[len(t["domain"]) + 1 :].replace("_", " ")
                if short.startswith(t["domain"] + "_")
                else short.replace("_", " ")
            )
            self.tables[t["table_name"]] = TableInfo(
                t["table_name"], t["schema_name"], phrase, t["description"], int(t["row_count"]), [], []
            )
        for c in columns:
            info = self.tables.get(c["table_name"])
            if info is None:
                continue
            if c["is_key"]:
                info.keys.append(c["column_name"])
            else:
                info.columns.append((c["column_name"], c["data_type"]))
        self.by_phrase: dict[tuple[str, str], str] = {(t.layer, t.phrase): t.name for t in self.tables.values()}
        self.by_key: dict[tuple[str, str], list[str]] = {}
        for t in self.tables.values():
            for k in t.keys:
                self.by_key.setdefault((t.layer, k), []).append(t.name)


_INDEX: dict[str, CatalogIndex] = {}
_LOCK = threading.Lock()


def _index(context: dict[str, Any], names: dict[str, str]) -> CatalogIndex:
    url = context["dataset"]["url"]
    with _LOCK:
        if url not in _INDEX:
            _INDEX[url] = CatalogIndex(context, names)
        return _INDEX[url]


def _layer(question: str) -> str:
    q = question.lower()
    for layer in ("staging", "raw"):
        if re.search(rf"\b{layer}\b", q):
            return layer
    return "mart"


class WarehouseAgent:
    """Answers ``{"context": "..."}``: the tables a question needs and how they join."""

    def __init__(self, max_columns: int = 12) -> None:
        self.max_columns = int(max_columns)

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        idx = _index(context, case["catalog"])
        layer = _layer(case["question"])
        words = " " + " ".join(re.findall(r"[a-z0-9]+", case["question"].lower())) + " "
        named = [
            (words.find(f" {phrase} "), name)
            for (lay, phrase), name in idx.by_phrase.items()
            if lay == layer and f" {phrase} " in words
        ]
        chosen = [name for _, name in sorted(named)]
        joins = self._joins(idx, layer, chosen)
        for a, b, _ in joins:
            for t in (a, b):
                if t not in chosen:
                    chosen.append(t)
        return {"context": self._render(idx, chosen, joins, int(case["budget_tokens"]))}

    def _joins(self, idx: CatalogIndex, layer: str, named: list[str]) -> list[tuple[str, str, str]]:
        joins = []
        linked: set[str] = set()
        for i, a in enumerate(named):
            for b in named[i + 1 :]:
                for k in sorted(set(idx.tables[a].keys) & set(idx.tables[b].keys)):
                    joins.append((a, b, k))
                    linked.update((a, b))
        for i, a in enumerate(named):  # pairs left unconnected: through a bridge
            for c in named[i + 1 :]:
                if any({a, c} <= {x, y} for x, y, _ in joins):
                    continue
                if a in linked and c in linked and len(named) > 2:
                    continue
                for bridge in self._bridges(idx, layer, a, c):
                    ka = sorted(set(idx.tables[a].keys) & set(idx.tables[bridge].keys))[0]
                    kc = sorted(set(idx.tables[c].keys) & set(idx.tables[bridge].keys))[0]
                    joins += [(a, bridge, ka), (bridge, c, kc)]
        return joins

    @staticmethod
    def _bridges(idx: CatalogIndex, layer: str, a: str, c: str) -> list[str]:
        near_a = {t for k in idx.tables[a].keys for t in idx.by_key.get((layer, k), [])}
        near_c = {t for k in idx.tables[c].keys for t in idx.by_key.get((layer, k), [])}
        return sorted((near_a & near_c) - {a, c})

    def _render(self, idx: CatalogIndex, tables: list[str], joins: list[tuple[str, str, str]], budget: int) -> str:
        keep = self.max_columns
        while True:
            blocks = []
            for name in tables:
                t = idx.tables[name]
                cols = ", ".join(f"{c} {typ}" for c, typ in t.columns[:keep])
                blocks.append(
                    f"{t.name} ({t.rows} rows): {t.description}\n  keys: {', '.join(t.keys)}\n"
                    + (f"  columns: {cols}\n" if cols else "")
                )
            text = "".join(blocks) + "".join(f"join: {a}.{k} = {b}.{k}\n" for a, b, k in joins)
            if count_tokens(text) <= budget or keep == 0:
                return text
            keep -= 1
