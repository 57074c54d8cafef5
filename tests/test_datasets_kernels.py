"""The compiled generator loops against plain-Python arithmetic written out here by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from scenario_pipeline.datasets import kernels
from scenario_pipeline.datasets.columns import with_validity
from scenario_pipeline.datasets.layout import Field, plan_fields, uniform_width
from scenario_pipeline.datasets.spec import column

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix(z: int) -> int:
    """splitmix64's finalizer, as published (Steele, Lea, Flood 2014), on Python ints."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_hash_words_is_splitmix64_of_the_record_id() -> None:
    ids = np.array([0, 1, 999_999_999_999, 123_456_789], dtype=np.int64)
    keys = np.array([7, 2**63 + 5], dtype=np.uint64)
    out = np.empty((2, 4), dtype=np.uint64)
    kernels.hash_words(ids, keys, out)
    for w, key in enumerate([7, 2**63 + 5]):
        for i, r in enumerate([0, 1, 999_999_999_999, 123_456_789]):
            assert int(out[w, i]) == splitmix((key + (r + 1) * GOLDEN) & MASK)
    # splitmix64 seeded with 0: its first output is the published 0xE220A8397B1DCDAF
    first = np.empty((1, 1), dtype=np.uint64)
    kernels.hash_words(np.array([0], dtype=np.int64), np.array([0], dtype=np.uint64), first)
    assert int(first[0, 0]) == 0xE220A8397B1DCDAF


def test_uniform_ints_is_multiply_shift_of_the_field() -> None:
    word = np.array([0xFFFF_0000_0000_0003, 0x0000_0000_0000_0000, 0x1234_5678_9ABC_DEF0], dtype=np.uint64)
    out = np.empty(3, dtype=np.int64)
    # field = bits 60..63 (width 4): 0xF, 0x0, 0x1; span 10 from low 100: 100 + f * 10 >> 4
    kernels.uniform_ints(word, 60, 4, 10, 100, out)
    assert out.tolist() == [100 + (15 * 10 >> 4), 100, 100 + (1 * 10 >> 4)]  # 109, 100, 100
    # width 64 uses the whole hash modulo the span
    kernels.uniform_ints(word, 0, 64, 1000, 0, out)
    assert out.tolist() == [0xFFFF_0000_0000_0003 % 1000, 0, 0x1234_5678_9ABC_DEF0 % 1000]


def test_validity_bitmap_and_null_count() -> None:
    # fields (bits 0..15) 5, 50000, 3, 70, 1, 65535, 0, 9, 2: null when < 10 -> rows 0, 2, 4, 6, 7, 8
    word = np.array([5, 50000, 3, 70, 1, 65535, 0, 9, 2], dtype=np.uint64)
    bits = np.empty(2, dtype=np.uint8)
    nulls = kernels.validity_bitmap(word, 0, 16, 10, bits)
    assert nulls == 6
    assert bits.tolist() == [0b0010_1010, 0b0000_0000]  # valid rows 1, 3, 5 (LSB first); row 8 null
    arr = with_validity(pa.array(np.arange(9, dtype=np.int64)), pa.py_buffer(bits), nulls)
    assert arr.to_pylist() == [None, 1, None, 3, None, 5, None, None, None]


def test_rising_timestamps_stay_inside_their_step() -> None:
    ids = np.arange(10, 14, dtype=np.int64)
    word = np.array([0, 0xFFFF, 0x8000, 1], dtype=np.uint64)
    out = np.empty(4, dtype=np.int64)
    # origin 1000, step 2.5 (floor 2): base = floor(r * 2.5), jitter = field * 2 >> 16
    kernels.rising_timestamps(ids, word, 0, 16, 1000, 2.5, 2, out)
    assert out.tolist() == [1000 + 25 + 0, 1000 + 27 + 1, 1000 + 30 + 1, 1000 + 32 + 0]


def test_fields_pack_first_fit_in_column_order() -> None:
    cols = (
        column("a", "int", low=0, high=1 << 40),
        column("b", "int", low=0, high=16, null_rate=0.1),
        column("c", "int", low=0, high=1 << 30),
        column("d", "int", low=0, high=4),
    )
    bits = {c.name: uniform_width(c.params["high"]) for c in cols}  # 40, 4, 30, 2
    values, nulls, words = plan_fields(cols, bits)
    # a: word 0 bits 0-39; b: word 0 bits 40-43; b's nulls: word 0 bits 44-59; c (30) does not fit
    # in word 0's last 4 bits: word 1 bits 0-29; d: word 0 bits 60-61 (first fit)
    assert values == {"a": Field(0, 0, 40), "b": Field(0, 40, 4), "c": Field(1, 0, 30), "d": Field(0, 60, 2)}
    assert nulls == {"b": (Field(0, 44, 16), round(0.1 * 65536))}
    assert words == 2


@pytest.mark.parametrize("span,width", [(1, 0), (16, 4), (1024, 10), (10, 4 + 12), (10_000_000, 24 + 12), (10**15, 64)])
def test_uniform_width(span: int, width: int) -> None:
    # powers of two are exact; others get 12 extra bits (bias <= 2^-12) unless the product
    # would overflow 64 bits: 10^15 needs 50 bits, 50 + 12 + 50 > 64 -> the modulo path
    assert uniform_width(span) == width


def test_range_kernels_equal_the_ids_kernels() -> None:
    # consecutive ids take the counting variants; they must give the same bits
    start = 999_999_990_000
    ids = np.arange(start, start + 5_000, dtype=np.int64)
    keys = np.array([3, 99], dtype=np.uint64)
    a, b = np.empty((2, 5_000), dtype=np.uint64), np.empty((2, 5_000), dtype=np.uint64)
    kernels.hash_words(ids, keys, a)
    kernels.hash_words_range(start, keys, b)
    assert np.array_equal(a, b)
    t1, t2 = np.empty(5_000, dtype=np.int64), np.empty(5_000, dtype=np.int64)
    kernels.rising_timestamps(ids, a[0], 7, 16, 1_767_225_600_000_000, 31.536, 31, t1)
    kernels.rising_timestamps_range(start, a[0], 7, 16, 1_767_225_600_000_000, 31.536, 31, t2)
    assert np.array_equal(t1, t2) and bool(np.all(np.diff(t1) > 0))


def test_arena_hands_out_a_buffer_again_only_after_recycle() -> None:
    from scenario_pipeline.datasets.columns import Arena

    arena = Arena()
    a = arena.take(1000, np.dtype(np.int64))
    b = arena.take(1000, np.dtype(np.int64))
    assert not np.shares_memory(a, b)  # both in use: distinct
    arena.recycle()
    c = arena.take(600, np.dtype(np.int64))  # fits in a kept 1,000-value buffer: reused, not new
    assert len(c) == 600 and (np.shares_memory(c, a) or np.shares_memory(c, b))
    d = arena.take(2000, np.dtype(np.int64))  # nothing kept is big enough: new
    assert not np.shares_memory(d, a) and not np.shares_memory(d, b)
    e = arena.take(10, np.dtype(np.int32))  # another dtype never reuses int64 buffers
    assert not np.shares_memory(e, a) and not np.shares_memory(e, b)
