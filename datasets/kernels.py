"""Compiled inner loops of the generator (numba): one pass per column, no temporaries.

The same arithmetic in numpy takes about ten whole-array passes per column (each one a
read and a write of the partition), which made generation cost a fifth of the Parquet write;
fused here it costs a few percent (benchmarks/generate.py). Everything is integer arithmetic
on uint64 (wrapping multiply is exact and the same on every machine) or IEEE float64 without
fast-math, so a value is a pure function of (seed, table, column, record id).

A *field* is ``width`` random bits starting at bit ``shift`` of one 64-bit hash word per
record; ``datasets/layout.py`` packs the fields of a table into as few words as it can.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _splitmix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _field(word: np.uint64, shift: np.uint64, mask: np.uint64) -> np.uint64:
    return (word >> shift) & mask


@njit(cache=True, nogil=True, inline="always")
def field_mask_nb(width: int) -> np.uint64:
    if width >= 64:
        return _ALL
    return (np.uint64(1) << np.uint64(width)) - np.uint64(1)


@njit(cache=True, nogil=True)
def hash_words(ids: np.ndarray, keys: np.ndarray, out: np.ndarray) -> None:
    """``out[w, i]`` = splitmix64 of record ``ids[i]`` in the stream of ``keys[w]``."""
    for w in range(keys.shape[0]):
        key = keys[w]
        row = out[w]
        for i in range(ids.shape[0]):
            row[i] = _splitmix(key + np.uint64(ids[i] + 1) * _GOLDEN)


@njit(cache=True, nogil=True)
def fill_range(start: int, out: np.ndarray) -> None:
    """``out[i] = start + i`` (np.arange into an existing buffer)."""
    for i in range(out.shape[0]):
        out[i] = start + i


@njit(cache=True, nogil=True)
def hash_words_range(start: int, keys: np.ndarray, out: np.ndarray) -> None:
    """``hash_words`` for the consecutive ids ``start, start + 1, ...``: no ids array to read."""
    for w in range(keys.shape[0]):
        base = keys[w] + np.uint64(start + 1) * _GOLDEN
        row = out[w]
        for i in range(row.shape[0]):
            row[i] = _splitmix(base + np.uint64(i) * _GOLDEN)


@njit(cache=True, nogil=True)
def uniform_ints(word: np.ndarray, shift: int, width: int, span: int, low: int, out: np.ndarray) -> None:
    """``low + floor(field * span / 2**width)``: uniform in [low, low + span), bias <= span / 2**width.

    A power-of-two span with ``width == log2(span)`` is exact. Width 64 uses the full hash
    modulo the span (for spans too wide for a multiply that fits in 64 bits).
    """
    s, m = np.uint64(shift), field_mask_nb(width)
    if width == 64:
        sp = np.uint64(span)
        for i in range(word.shape[0]):
            out[i] = low + np.int64(word[i] % sp)
        return
    sp, wd = np.uint64(span), np.uint64(width)
    for i in range(word.shape[0]):
        out[i] = low + np.int64((_field(word[i], s, m) * sp) >> wd)


@njit(cache=True, nogil=True)
def lookup_codes(word: np.ndarray, shift: int, width: int, table: np.ndarray, out: np.ndarray) -> None:
    """``table[field]``: a weighted draw through a table of every field value (``width`` <= 16)."""
    s, m = np.uint64(shift), field_mask_nb(width)
    for i in range(word.shape[0]):
        out[i] = table[_field(word[i], s, m)]


@njit(cache=True, nogil=True)
def validity_bitmap(word: np.ndarray, shift: int, width: int, threshold: int, out: np.ndarray) -> int:
    """Arrow validity bits (LSB first): row i is null when its field < threshold. Returns the null count."""
    s, m, t = np.uint64(shift), field_mask_nb(width), np.uint64(threshold)
    n = word.shape[0]
    nulls: Any = 0  # an int64 once compiled
    for i in range(n):  # branch-free count, vectorizes
        nulls += _field(word[i], s, m) < t
    full = n // 8
    for b in range(full):
        byte = np.uint64(0)
        for k in range(8):
            byte |= np.uint64(_field(word[b * 8 + k], s, m) >= t) << np.uint64(k)
        out[b] = byte
    for b in range(full, out.shape[0]):
        byte = np.uint64(0)
        for i in range(b * 8, n):
            byte |= np.uint64(_field(word[i], s, m) >= t) << np.uint64(i - b * 8)
        out[b] = byte
    return nulls


@njit(cache=True, nogil=True)
def rising_timestamps(
    ids: np.ndarray, word: np.ndarray, shift: int, width: int, origin: int, step: float, step_int: int, out: np.ndarray
) -> None:
    """``origin + floor(r * step) + jitter``, jitter in [0, floor(step)): strictly rising in r when step >= 1."""
    s, m, wd, st = np.uint64(shift), field_mask_nb(width), np.uint64(width), np.uint64(step_int)
    for i in range(word.shape[0]):
        out[i] = origin + np.int64(np.float64(ids[i]) * step) + np.int64((_field(word[i], s, m) * st) >> wd)


@njit(cache=True, nogil=True)
def rising_timestamps_range(
    start: int, word: np.ndarray, shift: int, width: int, origin: int, step: float, step_int: int, out: np.ndarray
) -> None:
    """``rising_timestamps`` for the consecutive ids ``start, start + 1, ...``."""
    s, m, wd, st = np.uint64(shift), field_mask_nb(width), np.uint64(width), np.uint64(step_int)
    for i in range(word.shape[0]):
        out[i] = origin + np.int64(np.float64(start + i) * step) + np.int64((_field(word[i], s, m) * st) >> wd)


@njit(cache=True, nogil=True)
def scaled_floats(word: np.ndarray, shift: int, width: int, low: float, scale: float, out: np.ndarray) -> None:
    """``low + field * scale``; with an integer field this is a value on a fixed grid (e.g. cents)."""
    s, m = np.uint64(shift), field_mask_nb(width)
    for i in range(word.shape[0]):
        out[i] = low + np.float64(_field(word[i], s, m)) * scale


@njit(cache=True, nogil=True)
def grid_floats(word: np.ndarray, shift: int, width: int, span: int, low_steps: int, divisor: float, out: np.ndarray) -> None:
    """``(low_steps + uniform step in [0, span)) / divisor``: decimals that print exactly (12.34, not 12.3399999)."""
    s, m, sp, wd = np.uint64(shift), field_mask_nb(width), np.uint64(span), np.uint64(width)
    for i in range(word.shape[0]):
        out[i] = np.float64(low_steps + np.int64((_field(word[i], s, m) * sp) >> wd)) / divisor
