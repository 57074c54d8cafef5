"""A placeholder column kind for columns a planted feature writes whole (S03's catalog, S15's PII).

``planted`` generates a constant (empty string, 0 or false, by ``params.type``) that the
feature's ``plant`` replaces; validating the constant would check nothing, so its rules are empty.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.spec import ColumnSpec, Rules, column

_TYPES = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_()}


@register_column_kind("planted", rules=lambda c: Rules(), hashed=False)
def planted(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    typ = _TYPES[col.params.get("type", "string")]
    if typ == pa.string():
        return pa.array([""] * len(ids), type=typ)
    return pa.array(np.zeros(len(ids), dtype=np.int64 if typ == pa.int64() else bool), type=typ)


def planted_column(name: str, typ: str = "string") -> ColumnSpec:
    """A column the dataset's feature fills; ``typ``: string, int64 or bool."""
    if typ not in _TYPES:
        raise ValueError(f"planted column type must be one of {', '.join(_TYPES)}, got {typ!r}")
    return column(name, "planted", type=typ)
