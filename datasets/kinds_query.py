"""Column kinds of the S14 star schema (imported by scenarios/s14_query/, which registers them)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.spec import ColumnSpec, Rules


@register_column_kind("id_label", rules=lambda c: Rules(unique=True), hashed=False)
def id_label(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """``<prefix> <record id, zero-padded>``: ``Store 007``. Unique per row, readable in questions."""
    prefix, width = col.params.get("prefix", "Item"), col.params.get("width", 3)
    return pa.array([f"{prefix} {int(i):0{width}d}" for i in ids], type=pa.string())
