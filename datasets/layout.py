"""Where each column's random bits come from: fields packed into 64-bit hash words.

Hashing is the costly part of generating a value, and most columns need far fewer than 64
random bits (a 16-way category needs 4). So a table hashes each record id once per *word*,
and every column reads its own *field* (``width`` bits at ``shift``) of one word. Fields are
packed first-fit in column order, so appending a column never moves an earlier column's bits.
A column with a null rate gets a second, 16-bit field that decides its nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenario_pipeline.datasets import kernels
from scenario_pipeline.datasets.hashing import stream_key
from scenario_pipeline.datasets.spec import ColumnSpec, TableSpec

NULL_BITS = 16  # null rates are realized to 1/65536


@dataclass(frozen=True)
class Field:
    word: int
    shift: int
    width: int


@dataclass(frozen=True)
class Bits:
    """The random bits one column may use, for each record of a chunk."""

    words: np.ndarray  # uint64, shape (number of words, rows)
    field: Field
    start: int | None = None  # the first record id when the ids are consecutive (kernels then need no ids array)

    @property
    def word(self) -> np.ndarray:
        return self.words[self.field.word]

    @property
    def shift(self) -> int:
        return self.field.shift

    @property
    def width(self) -> int:
        return self.field.width


@dataclass(frozen=True)
class TableLayout:
    keys: np.ndarray  # uint64 stream key of each word
    values: dict[str, Field]  # column -> field of its value bits
    nulls: dict[str, tuple[Field, int]]  # column -> (field, threshold): null when field < threshold

    def draw(self, ids: np.ndarray) -> np.ndarray:
        """The hash words of record ids ``ids`` (int64): shape (words, len(ids))."""
        out = np.empty((len(self.keys), len(ids)), dtype=np.uint64)
        if len(self.keys):
            kernels.hash_words(ids, self.keys, out)
        return out

    def draw_into(self, ids: np.ndarray, out: np.ndarray, consecutive: bool) -> None:
        """The hash words of ``ids`` into ``out`` (words, len(ids)); cheaper for consecutive ids."""
        if not len(self.keys):
            return
        if consecutive:
            kernels.hash_words_range(int(ids[0]), self.keys, out)
        else:
            kernels.hash_words(ids, self.keys, out)


def _allocate(widths: list[tuple[str, int]]) -> tuple[list[Field], int]:
    free: list[int] = []  # next free bit of each word
    fields = []
    for _, width in widths:
        if width <= 0:
            fields.append(Field(0, 0, 0))
            continue
        for w, used in enumerate(free):
            if used + width <= 64:
                fields.append(Field(w, used, width))
                free[w] += width
                break
        else:
            free.append(width)
            fields.append(Field(len(free) - 1, 0, width))
    return fields, len(free)


def plan_fields(
    columns: tuple[ColumnSpec, ...], bits_of: dict[str, int]
) -> tuple[dict[str, Field], dict[str, tuple[Field, int]], int]:
    """Fields for the value bits (``bits_of``, packed columns only) and the null bits of each column."""
    wanted: list[tuple[str, int]] = []
    for col in columns:
        if col.name in bits_of:
            wanted.append((f"v:{col.name}", bits_of[col.name]))
            if col.null_rate > 0:
                wanted.append((f"n:{col.name}", NULL_BITS))
    fields, words = _allocate(wanted)
    values: dict[str, Field] = {}
    nulls: dict[str, tuple[Field, int]] = {}
    for (label, _), f in zip(wanted, fields, strict=True):
        kind, name = label.split(":", 1)
        if kind == "v":
            values[name] = f
        else:
            rate = next(c.null_rate for c in columns if c.name == name)
            nulls[name] = (f, int(round(rate * (1 << NULL_BITS))))
    return values, nulls, words


def table_layout(seed: int, tspec: TableSpec, bits_of: dict[str, int]) -> TableLayout:
    values, nulls, words = plan_fields(tspec.columns, bits_of)
    keys = np.array([stream_key(seed, tspec.name, "word", w) for w in range(words)], dtype=np.uint64)
    return TableLayout(keys, values, nulls)


def column_layout(key: int, col: ColumnSpec, bits: int) -> TableLayout:
    """The layout of one column generated on its own, under stream key ``key``."""
    values, nulls, words = plan_fields((col,), {col.name: bits})
    keys = np.array([stream_key(key, "word", w) for w in range(words)], dtype=np.uint64)
    return TableLayout(keys, values, nulls)


def uniform_width(span: int) -> int:
    """Field width for a uniform draw over ``span`` values: exact for powers of two, else bias <= 2**-12."""
    if span <= 1:
        return 0
    if span & (span - 1) == 0:
        return span.bit_length() - 1
    width = (span - 1).bit_length() + 12
    return width if width + span.bit_length() <= 64 else 64
