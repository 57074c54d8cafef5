"""Column generators, registered by kind: record ids and one hash in, an Arrow array out.

A generator receives the column spec, the record ids (uint64), the column's 64-bit hash of
each record id and the table's record count. Register a new kind with ``@column_kind``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.hashing import mix64, unit_float
from scenario_pipeline.datasets.spec import ColumnSpec, Rules
from scenario_pipeline.errors import UsageError

Generator = Callable[[ColumnSpec, np.ndarray, np.ndarray, int], pa.Array]


@dataclass(frozen=True)
class ColumnKind:
    name: str
    generate: Generator
    default_rules: Callable[[ColumnSpec], Rules]
    hashed: bool = True  # False: the generator needs no hash (saves a hash round)


_KINDS: dict[str, ColumnKind] = {}


def register_column_kind(name: str, rules: Callable[[ColumnSpec], Rules] | None = None, hashed: bool = True) -> Callable[[Generator], Generator]:
    def deco(fn: Generator) -> Generator:
        _KINDS[name] = ColumnKind(name, fn, rules or (lambda c: Rules(max_null_rate=c.null_rate)), hashed)
        return fn

    return deco


def column_kind(name: str) -> ColumnKind:
    if name not in _KINDS:
        # Scenario modules may register their own kinds; a fresh worker process may not have
        # imported them yet.
        from scenario_pipeline.scenarios.registry import load_all

        load_all()
    if name not in _KINDS:
        raise UsageError(f"unknown column kind {name!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def generate_column(col: ColumnSpec, ids: np.ndarray, key: int, records: int) -> pa.Array:
    """The values of ``col`` for record ids ``ids`` (uint64), under stream key ``key``."""
    kind = column_kind(col.kind)
    h = mix64(ids, key) if kind.hashed else ids
    return kind.generate(col, ids, h, records)


def null_mask(col: ColumnSpec, h: np.ndarray) -> np.ndarray | None:
    """Nulls from the hash's top 16 bits, which the values use little."""
    if col.null_rate <= 0:
        return None
    return (h >> np.uint64(48)) < np.uint64(int(col.null_rate * 65536))


# -- the built-in kinds -----------------------------------------------------------------

@register_column_kind("record_id", rules=lambda c: Rules(min=0, unique=True), hashed=False)
def _record_id(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    return pa.array(ids.astype(np.int64, copy=False), type=pa.int64())


def _int_rules(c: ColumnSpec) -> Rules:
    return Rules(min=c.params.get("low", 0), max=c.params.get("high", 1000) - 1, max_null_rate=c.null_rate)


@register_column_kind("int", rules=_int_rules)
def _int(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    low, high = col.params.get("low", 0), col.params.get("high", 1000)
    values = (h % np.uint64(high - low)).astype(np.int64) + low
    typ = pa.int32() if col.params.get("bits", 64) == 32 else pa.int64()
    return pa.array(values.astype(typ.to_pandas_dtype(), copy=False), type=typ, mask=null_mask(col, h))


def _float_rules(c: ColumnSpec) -> Rules:
    return Rules(min=c.params.get("low", 0.0), max=c.params.get("high", 1.0), max_null_rate=c.null_rate)


@register_column_kind("float", rules=_float_rules)
def _float(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    low, high, decimals = col.params.get("low", 0.0), col.params.get("high", 1.0), col.params.get("decimals", 2)
    values = low + unit_float(h) * (high - low)
    if decimals is not None:
        values = np.floor(values * 10**decimals) / 10**decimals
    return pa.array(values, type=pa.float64(), mask=null_mask(col, h))


@register_column_kind("timestamp")
def _timestamp(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """Event time rising with the record id (an append-only log), plus jitter within a step."""
    start = datetime.fromisoformat(col.params.get("start", "2026-01-01T00:00:00")).replace(tzinfo=timezone.utc)
    start_us = int(start.timestamp() * 1_000_000)
    step = col.params.get("span_days", 365.0) * 86_400_000_000 / records
    base = (ids.astype(np.float64) * step).astype(np.int64)
    jitter = (h % np.uint64(max(1, int(step)))).astype(np.int64)
    return pa.array(start_us + base + jitter, type=pa.timestamp("us", tz="UTC"), mask=null_mask(col, h))


@register_column_kind("category", rules=lambda c: Rules(allowed=tuple(c.params["values"]), max_null_rate=c.null_rate))
def _category(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    values = tuple(col.params["values"])
    weights = col.params.get("weights")
    n = len(values)
    if weights is None:
        idx = h % np.uint64(n)
    else:
        cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
        idx = np.searchsorted(cdf / cdf[-1], unit_float(h), side="right").clip(0, n - 1)
    indices = idx.astype(np.int8 if n < 128 else np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=null_mask(col, h)), pa.array(values, pa.string()))


_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


@lru_cache(maxsize=16)
def vocabulary(size: int) -> tuple[str, ...]:
    """``size`` distinct pronounceable lowercase words of equal syllable count, fixed forever."""
    n_syl = 2
    while len(_SYLLABLES) ** n_syl < size:
        n_syl += 1
    base = len(_SYLLABLES)
    words = []
    for i in range(size):
        parts, x = [], i
        for _ in range(n_syl):
            parts.append(_SYLLABLES[x % base])
            x //= base
        words.append("".join(parts))
    return tuple(words)


# Planted tokens (needles) follow their own pattern, so the rule admits both.
WORD_PATTERN = r"^([a-z]{4,12}|zq[0-9a-f]{16})$"


@register_column_kind("word", rules=lambda c: Rules(pattern=WORD_PATTERN, max_null_rate=c.null_rate))
def _word(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    size = col.params.get("vocabulary", 1024)
    indices = (h % np.uint64(size)).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=null_mask(col, h)), pa.array(vocabulary(size), pa.string()))
