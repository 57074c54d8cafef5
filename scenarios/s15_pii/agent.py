"""Reference agent for S15: read the table, run the recognizers on every cell, report row ids only.

A column is labelled with every entity type found in at least one of its cells. The answer
never holds a cell's value: only column names, entity types and row ids.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from scenario_pipeline.agents.reference.catalog_reader import read_table
from scenario_pipeline.agents.reference.pii_detectors import RECOGNIZERS


class PiiAgent:
    """Answers ``{"columns": {column: [entity, ...]}, "cells": {column: {entity: [row id, ...]}}}``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        tbl = read_table(context, case["table"])
        row_ids = tbl.column(case["row_key"]).to_pylist()
        wanted = [e for e in case.get("entities", RECOGNIZERS) if e in RECOGNIZERS]
        columns: dict[str, list[str]] = {}
        cells: dict[str, dict[str, list[int]]] = {}
        for name in case["columns"]:
            arr = tbl.column(name)
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            found: dict[str, list[int]] = {}
            for rid, text in zip(row_ids, arr.to_pylist(), strict=True):
                if not text:
                    continue
                for entity in wanted:
                    if RECOGNIZERS[entity](text):
                        found.setdefault(entity, []).append(int(rid))
            if found:
                columns[name] = sorted(found)
                cells[name] = found
        return {"columns": columns, "cells": cells}
