"""Build one partition from its spec, encode it as Parquet, write it atomically with a sidecar.

Hot path (benchmarks/generate.py): the table's hash words come from one compiled pass, every
column from one more (``datasets/kernels.py``), into buffers reused from the previous chunk;
the arrays go to the Parquet writer without a copy; the writer encodes straight into a hidden
file, which is checked, checksummed (xxh3-128) and renamed into place (S3: encoded in memory,
one PUT). A partition larger than ``CHUNK_ROWS`` is built and written chunk by chunk, so memory
stays bounded by the chunk, not the partition.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from scenario_pipeline.datasets import kernels, oracle
from scenario_pipeline.datasets import validate as checks
from scenario_pipeline.datasets.columns import Arena, column_kind, packed_columns
from scenario_pipeline.datasets.features import feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.layout import table_layout
from scenario_pipeline.datasets.spec import DatasetSpec, TableSpec
from scenario_pipeline.errors import DatasetError, StorageError
from scenario_pipeline.storage import DiskFullError, Storage, os_error

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
# Rows handed to the column writers at a time. pyarrow's default (1,024) makes the writer
# compute statistics and Bloom-filter hashes of dictionary columns 1,024 rows at a time, which
# cost 40 ms per million rows on ``tag`` alone; 32,768 costs 2 ms and changes no byte of data.
WRITE_BATCH_ROWS = 32_768
CHUNK_ROWS = 1 << 20  # rows built at once (rounded to whole row groups)
CHECKSUM = "xxh3-128"

log = logging.getLogger(__name__)


def partition_name(p: int) -> str:
    return f"part-{p:07d}.parquet"


def sidecar_name(table: str, p: int) -> str:
    return f"{table}/_parts/part-{p:07d}.json"


@dataclass
class PartitionInfo:
    table: str
    index: int
    path: str  # relative to the dataset root
    rows: int
    bytes: int
    checksum: str  # "xxh3-128:<hex>" of the file's bytes
    row_groups: int
    stats: dict[str, dict[str, object]] = field(default_factory=dict)
    checks: str = "none"  # which validation this partition passed (docs/datasets.md)

    def to_json(self) -> dict:
        return asdict(self)


# -- building ------------------------------------------------------------------------------


def _bits_of(tspec: TableSpec) -> dict[str, int]:
    out = {}
    for col in tspec.columns:
        kind = column_kind(col.kind)
        if kind.packed:
            out[col.name] = kind.random_bits(col)
    return out


def build_rows(spec: DatasetSpec, table: str, start: int, stop: int, arena: Arena | None = None) -> pa.Table:
    """Records [start, stop) of ``table``; each value depends only on (spec, table, record id).
    With an ``arena`` the table's buffers are reused after the caller drops it (``Arena``)."""
    tspec = spec.table(table)
    records = spec.table_records(table)
    if arena is None:
        ids = np.arange(start, stop, dtype=np.int64)
    else:
        ids = arena.take(stop - start, np.dtype(np.int64))
        kernels.fill_range(start, ids)
    layout = table_layout(spec.seed, tspec, _bits_of(tspec))
    packed = [c for c in tspec.columns if column_kind(c.kind).packed]
    by_name = dict(
        zip(
            (c.name for c in packed),
            packed_columns(packed, ids, layout, records, consecutive=True, alloc=arena.take if arena else None),
            strict=True,
        )
    )
    arrays = []
    for col in tspec.columns:
        if col.name not in by_name:  # hashed style: its own hash round, uint64 ids as it always had
            kind = column_kind(col.kind)
            uids = ids.view(np.uint64)
            by_name[col.name] = kind.generate(
                col, uids, mix64(uids, stream_key(spec.seed, table, col.name)) if kind.hashed else uids, records
            )
        arrays.append(by_name[col.name])
    out = pa.Table.from_arrays(arrays, names=[c.name for c in tspec.columns])
    for i, feature in enumerate(spec.features):
        if feature.table == table:
            out = feature_kind(feature.kind).plant(out, spec, feature, oracle.truth(spec, i), start, stop)
    return out


def build_partition(spec: DatasetSpec, table: str, p: int) -> pa.Table:
    """Partition p of ``table``, whole, in memory."""
    start, stop = spec.partition_bounds(p, table)
    return build_rows(spec, table, start, stop)


def chunk_bounds(spec: DatasetSpec, table: str, p: int) -> list[tuple[int, int]]:
    """The record ranges partition p is built in: whole row groups, about ``CHUNK_ROWS`` each."""
    start, stop = spec.partition_bounds(p, table)
    step = max(1, CHUNK_ROWS // spec.row_group_rows) * spec.row_group_rows
    return [(a, min(a + step, stop)) for a in range(start, stop, step)]


# -- encoding ------------------------------------------------------------------------------


def parquet_options(spec: DatasetSpec, table: str) -> dict[str, Any]:
    """Writer settings: zstd level 1 everywhere, each column's encoding from its kind."""
    tspec = spec.table(table)
    dictionary, encodings = [], {}
    for col in tspec.columns:
        enc = column_kind(col.kind).encoding(col)
        if enc in ("auto", "dictionary"):
            dictionary.append(col.name)
        else:
            encodings[col.name] = enc
    sorting = [pq.SortingColumn(i) for i, c in enumerate(tspec.columns) if c.kind == "record_id"]
    return {
        "compression": COMPRESSION,
        "compression_level": COMPRESSION_LEVEL,
        "use_dictionary": dictionary,
        "column_encoding": encodings or None,
        "write_statistics": True,
        "write_batch_size": WRITE_BATCH_ROWS,
        "bloom_filter_options": {c: {"ndv": 4096, "fpp": 0.01} for c in tspec.bloom_columns} or None,
        "sorting_columns": sorting or None,
    }


def encode_parquet(tbl: pa.Table, spec: DatasetSpec, table: str) -> bytes:
    """``tbl`` as Parquet bytes with the dataset's settings (whole-table form)."""
    sink = pa.BufferOutputStream()
    pq.write_table(tbl, sink, row_group_size=spec.row_group_rows, **parquet_options(spec, table))
    return sink.getvalue().to_pybytes()


@dataclass
class Encoded:
    """A partition encoded in memory, with what validation needs from it."""

    data: pa.Buffer | None  # the file's bytes (None when written straight to a file)
    metadata: pq.FileMetaData
    sample: pa.Table | None  # evenly spaced rows, for Great Expectations
    dictionaries: dict[str, list[pa.Array]]  # dictionary columns: every dictionary written

    def buffer(self) -> pa.Buffer:
        """``data``, which validation and checksums need in memory (``_write_local`` maps the file in)."""
        if self.data is None:
            raise RuntimeError("the encoded partition's bytes are not in memory")
        return self.data


def sample_positions(rows: int, size: int) -> np.ndarray:
    """``size`` evenly spaced row positions of a partition of ``rows`` (all rows when fewer)."""
    if rows <= size:
        return np.arange(rows, dtype=np.int64)
    return (np.arange(size, dtype=np.int64) * rows) // size


_ARENAS = threading.local()


def iter_chunks(spec: DatasetSpec, table: str, p: int) -> Iterator[tuple[int, pa.Table]]:
    """The chunks of partition p, each built in this thread's arena: a chunk's buffers are
    reused by the next, so the consumer must drop each chunk before taking the next."""
    arena = getattr(_ARENAS, "arena", None)
    if arena is None:
        arena = _ARENAS.arena = Arena()
    for a, b in chunk_bounds(spec, table, p):
        arena.recycle()
        yield a, build_rows(spec, table, a, b, arena)


def encode_partition(spec: DatasetSpec, table: str, p: int, sample_rows: int = 0, sink: pa.NativeFile | None = None) -> Encoded:
    """Build and encode partition p chunk by chunk, into memory or into ``sink`` (then
    ``Encoded.data`` is None); keep a row sample when asked."""
    start, stop = spec.partition_bounds(p, table)
    positions = sample_positions(stop - start, sample_rows) + start if sample_rows else None
    out = pa.BufferOutputStream() if sink is None else sink
    samples: list[pa.Table] = []
    dictionaries: dict[str, list[pa.Array]] = {}
    writer = None
    try:
        for a, chunk in iter_chunks(spec, table, p):
            if writer is None:
                writer = pq.ParquetWriter(out, chunk.schema, **parquet_options(spec, table))
            writer.write_table(chunk, row_group_size=spec.row_group_rows)
            if positions is not None:
                lo, hi = np.searchsorted(positions, [a, a + chunk.num_rows])
                samples.append(chunk.take(pa.array(positions[lo:hi] - a)))
            for name, col in zip(chunk.column_names, chunk.columns, strict=True):
                if pa.types.is_dictionary(col.type):
                    seen = dictionaries.setdefault(name, [])
                    for piece in col.chunks:
                        if not any(piece.dictionary is d or piece.dictionary.equals(d) for d in seen):
                            seen.append(piece.dictionary)
            del chunk  # its buffers go back to the arena for the next chunk
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DatasetError(f"partition {p} of {spec.name}.{table} has no rows to encode")
    data = out.getvalue() if sink is None else None
    sample = pa.concat_tables(samples).combine_chunks() if samples else None
    return Encoded(data, writer.writer.metadata, sample, dictionaries)


@dataclass
class Footer:
    """What the Parquet footer says of a whole partition, read in one pass."""

    rows: int
    row_groups: int
    lo: dict[str, Any]  # column -> min (Python value: int, float, str, datetime)
    hi: dict[str, Any]
    nulls: dict[str, int]

    def stats(self) -> dict[str, dict[str, object]]:
        """Per-column min / max / null count, as JSON values (the manifest's ``stats``)."""
        return {
            c: {"min": _jsonable(self.lo.get(c)), "max": _jsonable(self.hi.get(c)), "nulls": n} for c, n in self.nulls.items()
        }


def read_footer(meta: pq.FileMetaData | bytes | pa.Buffer) -> Footer:
    if not isinstance(meta, pq.FileMetaData):
        meta = pq.read_metadata(pa.BufferReader(meta))
    lo: dict[str, Any] = {}
    hi: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name, s = chunk.path_in_schema, chunk.statistics
            nulls.setdefault(name, 0)
            if s is None:
                continue
            nulls[name] += int(s.null_count or 0)
            if s.has_min_max:
                a, b = s.min, s.max
                lo[name] = a if name not in lo else min(lo[name], a)
                hi[name] = b if name not in hi else max(hi[name], b)
    return Footer(meta.num_rows, meta.num_row_groups, lo, hi, nulls)


def footer_stats(meta: pq.FileMetaData | bytes | pa.Buffer) -> tuple[int, int, dict[str, dict[str, object]]]:
    """Rows, row groups and per-column min / max / null count, from the Parquet footer alone."""
    f = read_footer(meta)
    return f.rows, f.row_groups, f.stats()


def _jsonable(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


# -- writing -------------------------------------------------------------------------------


def file_checksum(data: bytes | memoryview) -> str:
    return f"{CHECKSUM}:{xxhash.xxh3_128_hexdigest(data)}"


def write_partition(
    spec: DatasetSpec, root: Storage, table: str, p: int, validate: bool = True, gx: bool | None = None
) -> PartitionInfo:
    """Generate, validate, encode and write partition p; the sidecar is written last.

    ``validate``: check the spec's rules before the file becomes visible (a failing partition
    raises ``ValidationFailed`` and leaves no file). ``gx``: run the Great Expectations suite
    on a row sample; None = the sampling policy of ``datasets/validate.py``.
    """
    use_gx = validate and (checks.gx_partition(spec, table, p) if gx is None else gx)
    sample_rows = checks.GX_SAMPLE_ROWS if use_gx else 0
    rel = f"{table}/{partition_name(p)}"

    def finish(enc: Encoded) -> PartitionInfo:
        footer = read_footer(enc.metadata)
        label = checks.check_partition(spec, table, p, enc, footer) if validate else "none"
        return PartitionInfo(
            table,
            p,
            rel,
            footer.rows,
            enc.buffer().size,
            file_checksum(memoryview(enc.buffer())),
            footer.row_groups,
            footer.stats(),
            label,
        )

    if root.scheme == "file":
        info = _write_local(root.path(rel), lambda sink: encode_partition(spec, table, p, sample_rows, sink), finish)
        _put_local(root.path(sidecar_name(table, p)), json.dumps(info.to_json()).encode())
    else:  # object stores: encode in memory, then one PUT each (atomic by itself)
        info = finish(enc := encode_partition(spec, table, p, sample_rows))
        root.write_bytes(rel, enc.buffer().to_pybytes())
        root.write_json(sidecar_name(table, p), info.to_json())
    return info


def _put_local(path: str, data: bytes) -> None:
    """A small file written whole under a hidden name and renamed (no fsync, as partitions)."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise os_error("write", path, exc) from exc  # a full disk says so, and what to do
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_local(path: str, encode: Any, finish: Any) -> PartitionInfo:
    """Encode straight into a hidden temporary file beside ``path``, check it, rename it.

    No fsync: a file torn by an OS crash fails the size / footer check of ``verified_sidecar``
    on the next run and is regenerated, so durability costs nothing on the hot path.
    """
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")  # dot-prefixed: readers skip it
    try:
        with pa.OSFile(tmp, "wb") as sink:
            enc = encode(sink)
        with pa.memory_map(tmp) as mapped:
            enc.data = mapped.read_buffer()
            info = finish(enc)
            enc.data = None
        os.replace(tmp, path)
        return info
    except OSError as exc:
        raise os_error("write", path, exc) from exc  # a full disk says so, and what to do
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def verified_sidecar(root: Storage, table: str, p: int) -> PartitionInfo | None:
    """The sidecar of a partition already written whole (size and footer row count agree), else None.

    Only what is missing or broken means "generate it again": no sidecar or no file (not found), a torn or
    unreadable sidecar, a size that differs, an unreadable Parquet footer, a row count that differs; each but
    the first is logged. Any other storage error (permission denied, S3 AccessDenied / InvalidAccessKeyId, the
    network after the storage layer's retries) is logged with the path and raised as ``StorageError``: taking
    it for "not written" would regenerate, or overwrite, partitions that are fine.
    """
    rel = sidecar_name(table, p)
    try:
        raw = root.read_bytes(rel)
    except StorageError as exc:
        if _not_found(exc):
            return None
        raise _resume_error(root, rel, exc) from exc
    try:
        info = PartitionInfo(**json.loads(raw))
    except (ValueError, TypeError) as exc:  # torn or foreign JSON, unknown or missing fields
        log.warning(
            "partition sidecar %s is unreadable (%s): partition %d of %s will be generated again", root.uri(rel), exc, p, table
        )
        return None
    if not str(info.checksum).startswith(f"{CHECKSUM}:"):
        log.warning(
            "partition sidecar %s has no %s checksum: partition %d of %s will be generated again",
            root.uri(rel),
            CHECKSUM,
            p,
            table,
        )
        return None
    try:
        size = root.size(info.path)
    except StorageError as exc:
        if _not_found(exc):  # the sidecar is written after its file: a file removed since
            log.warning("partition file %s named by its sidecar is missing: it will be generated again", root.uri(info.path))
            return None
        raise _resume_error(root, info.path, exc) from exc
    if size != info.bytes:
        log.warning(
            "partition file %s has %d bytes, its sidecar says %d: it will be generated again",
            root.uri(info.path),
            size,
            info.bytes,
        )
        return None
    try:  # through the storage layer, so that its errors are worded (and classified) as every other read's
        rows = root._call("read", info.path, lambda path: _footer_rows(root, path))
    except StorageError as exc:
        if _not_found(exc):
            return None
        raise _resume_error(root, info.path, exc) from exc
    if isinstance(rows, pa.ArrowException):  # a corrupt or torn footer (ArrowInvalid, ...): generate it again
        log.warning(
            "partition file %s has an unreadable Parquet footer (%s: %s): it will be generated again",
            root.uri(info.path),
            type(rows).__name__,
            rows,
        )
        return None
    if rows != info.rows:
        log.warning(
            "partition file %s has %d rows, its sidecar says %d: it will be generated again", root.uri(info.path), rows, info.rows
        )
        return None
    return info


def _not_found(exc: BaseException | None) -> bool:
    """The storage layer's "not found": a StorageError made from FileNotFoundError (s3fs raises it for a 404)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, FileNotFoundError):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


def _footer_rows(root: Storage, path: str) -> int | pa.ArrowException:
    """The footer's row count; a footer pyarrow cannot parse comes back as its exception (the file is broken,
    the storage is fine); errors of the storage itself propagate to ``Storage._call``."""
    with root.fs.open(path, "rb") as fh:
        try:
            return pq.ParquetFile(fh).metadata.num_rows
        except pa.ArrowException as exc:
            return exc


def _resume_error(root: Storage, rel: str, exc: StorageError) -> StorageError:
    """The error raised for a storage failure other than "not found" while checking which partitions exist."""
    if isinstance(exc, DiskFullError):
        return exc
    uri = root.uri(rel)
    why = str(exc)
    if f"{uri}: " in why:
        why = why.split(f"{uri}: ", 1)[1]
    why = why.split("; choose a writable")[0]
    log.error("dataset resume check: cannot read %s (%s)", uri, why)
    hint = (
        "check that the AWS credentials in use (AWS_ACCESS_KEY_ID / AWS_PROFILE) are valid and may list and read the "
        "dataset's prefix (s3:ListBucket, s3:GetObject), and that the endpoint is reachable"
        if root.scheme == "s3"
        else "check that this user may read the dataset folder and its files (owner and mode)"
    )
    return StorageError(
        f"cannot read {uri} while checking which dataset partitions are already written ({why}); this is not "
        f"a missing partition, so nothing was regenerated: {hint}, then rerun the same command"
    )


__all__ = [
    "PartitionInfo",
    "build_partition",
    "build_rows",
    "encode_parquet",
    "encode_partition",
    "footer_stats",
    "partition_name",
    "sidecar_name",
    "verified_sidecar",
    "write_partition",
    "parquet_options",
    "file_checksum",
]
