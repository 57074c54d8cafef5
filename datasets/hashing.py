"""Counter-based randomness: every value is a pure function of (seed, stream, record id).

No RNG state is carried between records or partitions, so partition p of a 10^12-record
dataset costs the same as partition 0 and any worker can build any partition alone.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def stream_key(*parts: object) -> int:
    """A 64-bit key for a named stream, e.g. ``stream_key(seed, "events", "amount")``."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def mix64(ids: np.ndarray, key: int) -> np.ndarray:
    """splitmix64 finalizer of ``ids + key * golden``, vectorized and in place on one buffer."""
    z = ids.astype(np.uint64, copy=True)
    z += np.uint64((key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    z += _GOLDEN
    t = z >> _S30
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def mix64_scalars(key: int, *values: int) -> int:
    """``mix64`` folded over a few scalars, one numpy call each (oracle enumeration, not hot paths).

    Not ``splitmix64_scalars`` (scenarios/s03_warehouse/features.py): a different mix, different numbers."""
    x = key & 0xFFFFFFFFFFFFFFFF
    for v in values:
        x = int(mix64(np.array([v], dtype=np.uint64), x)[0])
    return x


def unit_float(h: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) from the top 53 bits of a hash."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
