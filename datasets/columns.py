"""Column generators, registered by kind: record ids and random bits in, an Arrow array out.

Two styles of kind:

* packed (``bits=``): the kind says how many random bits a column needs; the table packs those
  bits into shared hash words (``datasets/layout.py``). The kind is a class with ``dtype(col)``
  (of its values buffer), ``fill(col, ids, bits, records, out)`` (values of a block of records
  into ``out``) and ``arrow(col, values)`` (the buffer as an Arrow array, no copy). The engine
  fills blocks of a few thousand rows, so the hash words of a block are still in cache when
  the columns read them, and applies nulls from a separate field. The built-in kinds are
  packed and call the compiled loops of ``datasets/kernels.py``.
* hashed (no ``bits``): a function ``(col, ids, h, records) -> pa.Array`` that receives its
  own 64-bit hash of every record id (``mix64``, one hash round per column) and applies its
  own nulls (``null_mask``). Simpler to write, slower; scenario modules may use it.

Each kind also names the Parquet encoding that suits its values (``encoding``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets import kernels
from scenario_pipeline.datasets.discovery import discover
from scenario_pipeline.datasets.hashing import mix64
from scenario_pipeline.datasets.layout import (
    Bits,
    Field,
    TableLayout,
    column_layout,
    uniform_width,
)
from scenario_pipeline.datasets.spec import ColumnSpec, Rules
from scenario_pipeline.errors import UsageError

Generator = Callable[[ColumnSpec, np.ndarray, Any, int], pa.Array]

# Parquet encodings a kind may ask for; "auto" is pyarrow's default (dictionary, plain fallback).
ENCODINGS = (
    "auto",
    "dictionary",
    "PLAIN",
    "DELTA_BINARY_PACKED",
    "BYTE_STREAM_SPLIT",
    "DELTA_BYTE_ARRAY",
    "DELTA_LENGTH_BYTE_ARRAY",
)
BLOCK_ROWS = 65_536  # rows per fill: a block's hash words stay in cache; fewer calls (measured best of 8K-1M)


class PackedGenerator(Protocol):
    def dtype(self, col: ColumnSpec) -> np.dtype | None:
        """dtype of the values buffer; None: the values are the record ids themselves."""

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None: ...

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array: ...


@dataclass(frozen=True)
class ColumnKind:
    name: str
    generate: Any  # hashed style: a Generator; packed style: a PackedGenerator
    default_rules: Callable[[ColumnSpec], Rules]
    hashed: bool = True  # hashed style only: False = the generator needs no hash (saves a round)
    bits: Callable[[ColumnSpec], int] | None = None  # packed style: random bits per record
    default_encoding: Callable[[ColumnSpec], str] = lambda c: "auto"

    @property
    def packed(self) -> bool:
        return self.bits is not None

    def random_bits(self, col: ColumnSpec) -> int:
        """Random bits per record a packed kind's column draws."""
        if self.bits is None:
            raise UsageError(f"column kind {self.name!r} is not a packed kind: it draws no bits of its own")
        return self.bits(col)

    def encoding(self, col: ColumnSpec) -> str:
        """The column's Parquet encoding: its ``encoding`` param, else the kind's choice."""
        enc = col.params.get("encoding") or self.default_encoding(col)
        if enc not in ENCODINGS:
            raise UsageError(f"column {col.name}: unknown Parquet encoding {enc!r}; use one of {', '.join(ENCODINGS)}")
        return enc


_KINDS: dict[str, ColumnKind] = {}


def register_column_kind(
    name: str,
    rules: Callable[[ColumnSpec], Rules] | None = None,
    hashed: bool = True,
    bits: Callable[[ColumnSpec], int] | None = None,
    encoding: Callable[[ColumnSpec], str] | None = None,
) -> Callable[[Any], Any]:
    """Register a hashed-style generator function, or (with ``bits``) a packed-style class."""

    def deco(obj: Any) -> Any:
        gen = obj() if bits is not None and isinstance(obj, type) else obj
        _KINDS[name] = ColumnKind(
            name, gen, rules or (lambda c: Rules(max_null_rate=c.null_rate)), hashed, bits, encoding or (lambda c: "auto")
        )
        return obj

    return deco


def column_kind(name: str) -> ColumnKind:
    if name not in _KINDS:  # scenario packages register kinds of their own (datasets/discovery.py)
        discover()
    if name not in _KINDS:
        raise UsageError(f"unknown column kind {name!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def effective_rules(col: ColumnSpec) -> Rules:
    """The column's rules: its own, else its kind's default rules for its parameters."""
    return col.rules if col.rules is not None else column_kind(col.kind).default_rules(col)


def generate_column(col: ColumnSpec, ids: np.ndarray, key: int, records: int) -> pa.Array:
    """The values of ``col`` generated on its own for record ids ``ids``, under stream key ``key``.

    Tables generate their columns together (``packed_columns``), sharing hash words; this
    standalone form is for one column outside a table.
    """
    kind = column_kind(col.kind)
    if not kind.packed:
        uids = np.ascontiguousarray(ids, dtype=np.uint64)
        return kind.generate(col, uids, mix64(uids, key) if kind.hashed else uids, records)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    layout = column_layout(key, col, kind.random_bits(col))
    return packed_columns([col], ids, layout, records, consecutive=bool(len(ids)) and bool(np.all(np.diff(ids) == 1)))[0]


Alloc = Callable[[int, np.dtype], np.ndarray]


def packed_columns(
    cols: list[ColumnSpec],
    ids: np.ndarray,
    layout: TableLayout,
    records: int,
    consecutive: bool = False,
    alloc: Alloc | None = None,
) -> list[pa.Array]:
    """The packed columns ``cols`` for record ids ``ids``, filled block by block, nulls applied.
    ``consecutive``: the ids are ``ids[0], ids[0] + 1, ...`` (the kernels then count instead of
    reading them). ``alloc``: where value buffers come from (default: Arrow's pool)."""
    pool_array = alloc or new_array
    n = len(ids)
    kinds = [column_kind(c.kind).generate for c in cols]
    # Every output byte is a write to memory the cache has not seen: keep buffers narrow and
    # share the ids buffer with a column whose values are the ids (no copy).
    dtypes = [k.dtype(c) for k, c in zip(kinds, cols, strict=True)]
    values = [ids if dt is None else pool_array(n, dt) for dt in dtypes]
    nulls = [layout.nulls.get(c.name) for c in cols]
    bitmaps = [pool_array((n + 7) // 8, np.dtype(np.uint8)) if f else None for f in nulls]
    null_counts = [0] * len(cols)
    scratch = pool_array(len(layout.keys) * min(n, BLOCK_ROWS), np.dtype(np.uint64)).reshape(len(layout.keys), min(n, BLOCK_ROWS))
    fields = [layout.values.get(c.name, Field(0, 0, 0)) for c in cols]
    consecutive = consecutive and n > 0
    for a in range(0, n, BLOCK_ROWS):  # BLOCK_ROWS is a multiple of 8: bitmap bytes align
        b = min(a + BLOCK_ROWS, n)
        block_ids = ids[a:b]
        words = scratch[:, : b - a]
        layout.draw_into(block_ids, words, consecutive)
        first = int(block_ids[0]) if consecutive else None
        for i, (kind, col) in enumerate(zip(kinds, cols, strict=True)):
            if dtypes[i] is not None:
                kind.fill(col, block_ids, Bits(words, fields[i], first), records, values[i][a:b])
            null_field, bitmap = nulls[i], bitmaps[i]
            if null_field and bitmap is not None:
                f, threshold = null_field
                null_counts[i] += kernels.validity_bitmap(
                    words[f.word], f.shift, f.width, threshold, bitmap[a // 8 : (b + 7) // 8]
                )
    out = []
    for i, (kind, col) in enumerate(zip(kinds, cols, strict=True)):
        arr = kind.arrow(col, values[i])
        out.append(with_validity(arr, pa.py_buffer(bitmaps[i]), null_counts[i]) if nulls[i] else arr)
    return out


def new_array(n: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialized array in Arrow's memory pool (released with the Arrow arrays over it)."""
    dtype = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype=dtype, count=n)


class Arena:
    """Buffers reused from one chunk to the next in one thread.

    Memory the process has not touched yet costs the kernel a page fault and zeroing on first
    write: for the ~30 MB a million-row chunk writes, that was a third of generation's cost.
    Reusing the last chunk's buffers skips it. Only for callers that drop a chunk's arrays
    before asking for the next (``partition.encode_partition``); ``recycle`` hands them out again.
    """

    KEEP_BYTES = 512 << 20  # most a thread keeps between chunks; beyond it, start afresh

    def __init__(self) -> None:
        self._free: dict[str, list[np.ndarray]] = {}
        self._taken: list[np.ndarray] = []

    def take(self, n: int, dtype: np.dtype) -> np.ndarray:
        """An uninitialized array of ``n`` values: the tightest kept buffer that fits, else a new one."""
        dtype = np.dtype(dtype)
        free = self._free.setdefault(dtype.str, [])
        fits = [i for i, a in enumerate(free) if len(a) >= n]
        base = free.pop(min(fits, key=lambda i: len(free[i]))) if fits else new_array(n, dtype)
        self._taken.append(base)
        return base[:n]

    def recycle(self) -> None:
        """Every buffer handed out since the last call may be handed out again."""
        for base in self._taken:
            self._free.setdefault(base.dtype.str, []).append(base)
        self._taken = []
        if sum(a.nbytes for kept in self._free.values() for a in kept) > self.KEEP_BYTES:
            self._free.clear()


def with_validity(arr: pa.Array, bitmap: pa.Buffer, null_count: int) -> pa.Array:
    """``arr`` (no nulls yet) with a validity bitmap, without copying its values."""
    if isinstance(arr.type, pa.DictionaryType):
        indices = with_validity(arr.indices, bitmap, null_count)
        return pa.DictionaryArray.from_arrays(indices, arr.dictionary, safe=False)
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, *arr.buffers()[1:]], null_count=null_count)


def null_mask(col: ColumnSpec, h: np.ndarray) -> np.ndarray | None:
    """Hashed-style kinds: nulls from the hash's top 16 bits, which the values use little."""
    if col.null_rate <= 0:
        return None
    return (h >> np.uint64(48)) < np.uint64(int(col.null_rate * 65536))


def _codes_type(n: int) -> type:
    return np.int8 if n <= 127 else np.int16 if n <= 32767 else np.int32


# -- the built-in kinds (packed) ------------------------------------------------------------


@register_column_kind(
    "record_id", rules=lambda c: Rules(min=0, unique=True), bits=lambda c: 0, encoding=lambda c: "DELTA_BINARY_PACKED"
)
class RecordId:
    """The record id itself (int64, sorted within a partition)."""

    def dtype(self, col: ColumnSpec) -> np.dtype | None:
        return None  # the ids buffer is the column

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        out[:] = ids

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.int64())


def _int_span(c: ColumnSpec) -> int:
    low, high = c.params.get("low", 0), c.params.get("high", 1000)
    if high <= low:
        raise UsageError(f"column {c.name}: high ({high}) must exceed low ({low})")
    return high - low


def _int_rules(c: ColumnSpec) -> Rules:
    return Rules(min=c.params.get("low", 0), max=c.params.get("high", 1000) - 1, max_null_rate=c.null_rate)


@register_column_kind(
    "int", rules=_int_rules, bits=lambda c: uniform_width(_int_span(c)), encoding=lambda c: "DELTA_BINARY_PACKED"
)
class UniformInt:
    """Uniform integers in [low, high); ``bits=32`` stores int32."""

    def dtype(self, col: ColumnSpec) -> np.dtype:
        return np.dtype(np.int32 if col.params.get("bits", 64) == 32 else np.int64)

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        kernels.uniform_ints(bits.word, bits.shift, bits.width, _int_span(col), col.params.get("low", 0), out)

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.array(values)


def _float_steps(c: ColumnSpec) -> tuple[int, int, int] | None:
    """For a float with ``decimals``: (low in steps, span in steps, steps per unit)."""
    decimals = c.params.get("decimals", 2)
    if decimals is None:
        return None
    per = 10**decimals
    low, high = round(c.params.get("low", 0.0) * per), round(c.params.get("high", 1.0) * per)
    if high <= low:
        raise UsageError(f"column {c.name}: high must exceed low")
    return low, high - low, per


def _float_rules(c: ColumnSpec) -> Rules:
    return Rules(min=c.params.get("low", 0.0), max=c.params.get("high", 1.0), max_null_rate=c.null_rate)


def _float_bits(c: ColumnSpec) -> int:
    steps = _float_steps(c)
    return uniform_width(steps[1]) if steps else 53


@register_column_kind("float", rules=_float_rules, bits=_float_bits, encoding=lambda c: "BYTE_STREAM_SPLIT")
class UniformFloat:
    """Uniform in [low, high); with ``decimals`` (default 2) on that decimal grid, each value the
    closest double to its decimal (12.34, as a reader prints it)."""

    def dtype(self, col: ColumnSpec) -> np.dtype:
        return np.dtype(np.float64)

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        steps = _float_steps(col)
        if steps is None:
            low, high = col.params.get("low", 0.0), col.params.get("high", 1.0)
            kernels.scaled_floats(bits.word, bits.shift, bits.width, float(low), (high - low) / 2.0**bits.width, out)
        else:
            low, span, per = steps
            kernels.grid_floats(bits.word, bits.shift, bits.width, span, low, float(per), out)

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.float64())


TS_TYPE = pa.timestamp("us", tz="UTC")


def _ts_frame(c: ColumnSpec, records: int) -> tuple[int, int, float]:
    """(origin in microseconds, span in microseconds, step per record)."""
    start = datetime.fromisoformat(c.params.get("start", "2026-01-01T00:00:00")).replace(tzinfo=UTC)
    origin = int(start.timestamp()) * 1_000_000
    span = int(c.params.get("span_days", 365.0) * 86_400_000_000)
    return origin, span, span / max(records, 1)


def _ts_rules(c: ColumnSpec) -> Rules:
    origin, span, _ = _ts_frame(c, 1)
    return Rules(min=origin, max=origin + span, max_null_rate=c.null_rate)


@register_column_kind("timestamp", rules=_ts_rules, bits=lambda c: 16, encoding=lambda c: "DELTA_BINARY_PACKED")
class RisingTimestamp:
    """Event time rising with the record id (an append-only log), jitter within a step."""

    def dtype(self, col: ColumnSpec) -> np.dtype:
        return np.dtype(np.int64)

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        origin, span, step = _ts_frame(col, records)
        if bits.start is not None:
            kernels.rising_timestamps_range(bits.start, bits.word, bits.shift, bits.width, origin, step, max(1, int(step)), out)
        else:
            kernels.rising_timestamps(ids, bits.word, bits.shift, bits.width, origin, step, max(1, int(step)), out)

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.Array.from_buffers(TS_TYPE, len(values), [None, pa.py_buffer(values)])


def _category_bits(c: ColumnSpec) -> int:
    return 16 if c.params.get("weights") is not None else uniform_width(len(c.params["values"]))


@lru_cache(maxsize=256)
def _string_dictionary(values: tuple[str, ...]) -> pa.Array:
    return pa.array(values, pa.string())


@lru_cache(maxsize=256)
def _cuts(weights: tuple[float, ...], width: int) -> np.ndarray:
    """Thresholds on a ``width``-bit field that realize ``weights`` (to 2**-width)."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.round(cdf[:-1] / cdf[-1] * (1 << width)).astype(np.uint64)


@lru_cache(maxsize=256)
def _lookup(weights: tuple[float, ...], width: int, codes: str) -> np.ndarray:
    """Code of every value of a ``width``-bit field (a table gather beats a search per row)."""
    table = np.zeros(1 << width, dtype=codes)
    for c, cut in enumerate(_cuts(weights, width), start=1):
        table[int(cut) :] = c
    return table


@register_column_kind(
    "category",
    rules=lambda c: Rules(allowed=tuple(c.params["values"]), max_null_rate=c.null_rate),
    bits=_category_bits,
    encoding=lambda c: "dictionary",
)
class Category:
    """One of ``values``, uniform or by ``weights`` (realized to 1/65536); dictionary-encoded."""

    def dtype(self, col: ColumnSpec) -> np.dtype:
        return np.dtype(_codes_type(len(col.params["values"])))

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        values, weights = col.params["values"], col.params.get("weights")
        if weights is None:
            kernels.uniform_ints(bits.word, bits.shift, bits.width, len(values), 0, out)
            return
        if len(weights) != len(values):
            raise UsageError(f"column {col.name}: {len(weights)} weights for {len(values)} values")
        kernels.lookup_codes(bits.word, bits.shift, bits.width, _lookup(tuple(weights), bits.width, out.dtype.str), out)

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(values), _string_dictionary(tuple(col.params["values"])), safe=False)


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


@register_column_kind(
    "word",
    rules=lambda c: Rules(pattern=WORD_PATTERN, max_null_rate=c.null_rate),
    bits=lambda c: uniform_width(c.params.get("vocabulary", 1024)),
    encoding=lambda c: "dictionary",
)
class Word:
    """A word of a fixed vocabulary (``vocabulary`` words, default 1,024); dictionary-encoded."""

    def dtype(self, col: ColumnSpec) -> np.dtype:
        return np.dtype(_codes_type(col.params.get("vocabulary", 1024)))

    def fill(self, col: ColumnSpec, ids: np.ndarray, bits: Bits, records: int, out: np.ndarray) -> None:
        kernels.uniform_ints(bits.word, bits.shift, bits.width, col.params.get("vocabulary", 1024), 0, out)

    def arrow(self, col: ColumnSpec, values: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(values), _string_dictionary(vocabulary(col.params.get("vocabulary", 1024))), safe=False
        )
