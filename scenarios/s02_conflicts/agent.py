"""Reference agent for S02: read the batch from every source, compare, resolve by the case's rule.

It reads only the batch's rows (DuckDB filters on the key, pruned by the manifest's min/max per
partition), compares each field across the sources after the normalization the case states, and
resolves each disagreement with the case's trust tiers, then recency.
"""

from __future__ import annotations

from typing import Any

import duckdb

from scenario_pipeline.agents.reference.dataset_access import is_local
from scenario_pipeline.storage import Storage


def _norm(field_name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return round(float(value), 2)
    return " ".join(str(value).split()).casefold()


def _files(context: dict[str, Any], table: str, lo: int, hi: int, key: str) -> list[str]:
    root = Storage.from_url(context["dataset"]["url"])
    out = []
    for part in context["dataset"]["manifest"]["tables"][table]["partitions"]:
        stats = part["stats"].get(key) or {}
        if stats.get("min") is not None and (stats["max"] < lo or stats["min"] > hi):
            continue
        out.append(root.path(part["path"]) if is_local(context) else root.uri(part["path"]))
    return out


class ConflictResolver:
    """Answers ``{"conflicts": [{"entity_id", "field", "resolved", "sources"}]}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        ids = [int(x) for x in case["entity_ids"]]
        if not ids:
            return {"conflicts": []}
        rows = self._read(case, context, ids)  # source -> entity -> {field: value, "_updated": ts}
        conflicts = []
        for eid in sorted(ids):
            for field_name, by_source in case["fields"].items():
                values = {s: rows[s].get(eid, {}).get(field_name) for s in by_source}
                distinct = {_norm(field_name, v) for v in values.values() if v is not None}
                if len(distinct) < 2:
                    continue
                updated = {s: rows[s].get(eid, {}).get("_updated") for s in by_source}
                winner = self._resolve(case["rule"]["trust"][field_name], values, updated)
                conflicts.append({"entity_id": eid, "field": field_name, "resolved": values[winner], "source": winner})
        return {"conflicts": conflicts}

    @staticmethod
    def _resolve(tiers: list[list[str]], values: dict[str, Any], updated: dict[str, Any]) -> str:
        for tier in tiers:
            candidates = [s for s in tier if values.get(s) is not None]
            if candidates:
                return max(candidates, key=lambda s: updated[s])
        raise ValueError("no source has a value")

    @staticmethod
    def _read(case: dict[str, Any], context: dict[str, Any], ids: list[int]) -> dict[str, dict[int, dict[str, Any]]]:
        out: dict[str, dict[int, dict[str, Any]]] = {}
        con = duckdb.connect(config={"threads": 1})
        try:
            if not is_local(context):
                con.register_filesystem(Storage.from_url(context["dataset"]["url"]).fs)
            for source, table in case["sources"].items():
                key, updated = case["key"][source], case["recency_column"][source]
                fields = {f: cols[source] for f, cols in case["fields"].items() if source in cols}
                files = _files(context, table, min(ids), max(ids), key)
                select = ", ".join(f'"{c}" AS "{f}"' for f, c in fields.items())
                result = con.execute(
                    f'SELECT "{key}", "{updated}", {select} FROM read_parquet($files) WHERE "{key}" IN (SELECT UNNEST($ids))',
                    {"files": files, "ids": ids},
                ).fetchall()
                out[source] = {int(r[0]): {"_updated": r[1], **dict(zip(fields, r[2:], strict=True))} for r in result}
        finally:
            con.close()
        return out
