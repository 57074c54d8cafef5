"""Vectorized column generators: record ids in, Arrow arrays out, one hash per column."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.hashing import mix64, unit_float
from scenario_pipeline.datasets.spec import (
    CategoryColumn,
    ColumnSpec,
    FloatColumn,
    IntColumn,
    RecordIdColumn,
    TimestampColumn,
    WordColumn,
)

_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


@lru_cache(maxsize=16)
def vocabulary(size: int) -> tuple[str, ...]:
    """``size`` distinct pronounceable lowercase words of equal syllable count, fixed forever."""
    n_syl = 2
    while len(_SYLLABLES) ** n_syl < size:
        n_syl += 1
    words = []
    base = len(_SYLLABLES)
    for i in range(size):
        parts, x = [], i
        for _ in range(n_syl):
            parts.append(_SYLLABLES[x % base])
            x //= base
        words.append("".join(parts))
    return tuple(words)


def _null_mask(col: ColumnSpec, h: np.ndarray) -> np.ndarray | None:
    """Nulls from the hash's top 16 bits, which the value itself does not use much."""
    if col.null_rate <= 0:
        return None
    return (h >> np.uint64(48)) < np.uint64(int(col.null_rate * 65536))


def generate_column(col: ColumnSpec, ids: np.ndarray, key: int, records: int) -> pa.Array:
    """The values of ``col`` for record ids ``ids`` (uint64), under stream key ``key``."""
    if isinstance(col, RecordIdColumn):
        return pa.array(ids.astype(np.int64, copy=False), type=pa.int64())
    h = mix64(ids, key)
    mask = _null_mask(col, h)
    if isinstance(col, IntColumn):
        span = np.uint64(col.high - col.low)
        values = (h % span).astype(np.int64) + col.low
        typ = pa.int32() if col.bits == 32 else pa.int64()
        return pa.array(values.astype(typ.to_pandas_dtype(), copy=False), type=typ, mask=mask)
    if isinstance(col, FloatColumn):
        values = col.low + unit_float(h) * (col.high - col.low)
        if col.decimals is not None:
            values = np.floor(values * 10**col.decimals) / 10**col.decimals
        return pa.array(values, type=pa.float64(), mask=mask)
    if isinstance(col, TimestampColumn):
        start_us = int(datetime.fromisoformat(col.start).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
        step = col.span_days * 86_400_000_000 / records
        base = (ids.astype(np.float64) * step).astype(np.int64)
        jitter = (h % np.uint64(max(1, int(step)))).astype(np.int64)
        return pa.array(start_us + base + jitter, type=pa.timestamp("us", tz="UTC"), mask=mask)
    if isinstance(col, CategoryColumn):
        indices = _weighted_index(h, col.values, col.weights)
        return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), pa.array(col.values, pa.string()))
    if isinstance(col, WordColumn):
        indices = (h % np.uint64(col.vocabulary)).astype(np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), pa.array(vocabulary(col.vocabulary), pa.string()))
    raise TypeError(f"no generator for column kind {col.kind!r}")


def _weighted_index(h: np.ndarray, values: tuple[str, ...], weights: tuple[float, ...] | None) -> np.ndarray:
    n = len(values)
    if weights is None:
        return (h % np.uint64(n)).astype(np.int8 if n < 128 else np.int32)
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return np.searchsorted(cdf, unit_float(h), side="right").clip(0, n - 1).astype(np.int8 if n < 128 else np.int32)
