"""Reference agent for S14: link the question to the schema and the dimensions' values, write SQL.

The dimension values (regions, brands, store names, ...) are read from the dataset itself, once
per process; the parser is agents/reference/nl_to_sql.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

from scenario_pipeline.agents.reference.catalog_reader import read_table
from scenario_pipeline.agents.reference.nl_to_sql import SqlWriter

_VALUES: dict[str, dict[str, set[str]]] = {}
_WRITERS: dict[tuple[str, str], SqlWriter] = {}
_LOCK = threading.Lock()
MAX_DISTINCT = 5000  # string columns with more values than this are names, not filters


def _dimension_values(context: dict[str, Any], schema: dict[str, list[list[str]]]) -> dict[str, set[str]]:
    url = context["dataset"]["url"]
    with _LOCK:
        if url in _VALUES:
            return _VALUES[url]
    fact = next(t for t, cols in schema.items() if any(c == "amount" for c, _ in cols))
    values: dict[str, set[str]] = {}
    for table, cols in schema.items():
        if table == fact:
            continue
        data = read_table(context, table)
        for name, typ in cols:
            if typ == "VARCHAR":
                arr = data.column(name)
                if pa.types.is_dictionary(arr.type):
                    arr = arr.cast(arr.type.value_type)
                distinct = {v for v in arr.unique().to_pylist() if isinstance(v, str)}
                if len(distinct) <= MAX_DISTINCT:
                    values[name] = distinct
    with _LOCK:
        _VALUES[url] = values
    return values


class QueryAgent:
    """Answers ``{"sql": "SELECT ..."}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        key = (context["dataset"]["url"], repr(case["schema"]))
        with _LOCK:
            writer = _WRITERS.get(key)
        if writer is None:
            writer = SqlWriter(case["schema"], _dimension_values(context, case["schema"]))
            with _LOCK:
                _WRITERS[key] = writer
        return {"sql": writer.write(case["question"])}
