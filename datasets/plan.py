"""What generating a dataset would take, for any size up to 10^12 records, without generating it.

Partitions and bytes come from the spec and a calibration: partitions of the dataset built,
encoded and validated here, on this machine, to measure CPU-seconds and Parquet bytes per row
(``calibrate``). Time on W workers assumes each worker is a core like this one (the measured
parallel efficiency of the flow is about 1; docs/benchmarks.md). S3 requests follow the write
path: one PUT per file below s3fs's multipart threshold, a multipart upload above it, one PUT
per sidecar, the manifest and the write probe. Quantities only: cost/plan.py prices them with a
price profile, so `scenario plan` shows one cost.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash

from scenario_pipeline.datasets.gx_suite import gx_failures
from scenario_pipeline.datasets.partition import encode_partition
from scenario_pipeline.datasets.spec import GENERATOR_VERSION, DatasetSpec
from scenario_pipeline.datasets.validate import GX_MAX_PARTITIONS, GX_SAMPLE_ROWS

CALIBRATION_ROWS = 262_144
MULTIPART_BYTES = 50 * 2**20  # s3fs pipe_file switches to a multipart upload above this
MULTIPART_PART = 50 * 2**20
STARTUP_S = 15.0  # flow start, LocalCluster start, first imports in each worker (measured: 10-15 s)


@dataclass(frozen=True)
class Calibration:
    """Measured on this machine for one dataset's tables."""

    cpu_s_per_row: float  # build + encode + checksum, per row
    bytes_per_row: float  # Parquet, zstd level 1
    gx_cpu_s: float  # one Great Expectations sample validation
    machine: str
    measured_at: str


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def calibrate(spec: DatasetSpec, with_gx: bool = True) -> Calibration:
    """Build, encode and checksum a few partitions of ``spec`` in this process and time them."""
    # Partitions of a fixed size, whatever the dataset's: the cost per row of big partitions,
    # which is what dominates any dataset worth planning.
    probe = spec.model_copy(update={"records": max(spec.records, 4 * CALIBRATION_ROWS), "partition_rows": CALIBRATION_ROWS})
    picks = sorted({i * (probe.partitions - 1) // 7 for i in range(8)})  # eight, spread over the dataset
    encode_partition(probe, probe.tables[0].name, picks[0])  # compile and warm up
    cpu = rows = size = 0.0
    for table in (t.name for t in probe.tables):
        for p in sorted({min(x, probe.partitions_of(table) - 1) for x in picks}):
            c = _cpu()
            enc = encode_partition(probe, table, p)
            xxhash.xxh3_128_hexdigest(memoryview(enc.buffer()))
            cpu += _cpu() - c
            rows += enc.metadata.num_rows
            size += enc.buffer().size
    gx = 0.0
    if with_gx:
        table = probe.tables[0].name
        enc = encode_partition(probe, table, picks[0], sample_rows=GX_SAMPLE_ROWS)
        gx_failures(enc.sample, probe.table(table))  # the import and the context, once per worker
        c = _cpu()
        gx_failures(enc.sample, probe.table(table))
        gx = _cpu() - c
    return Calibration(
        cpu / rows,
        size / rows,
        gx,
        f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def cached_calibration(spec: DatasetSpec, cache: Path, refresh: bool = False) -> Calibration:
    """A calibration of ``spec``'s tables on this machine, measured once and kept in ``cache``."""
    shape = hashlib.sha256(json.dumps([t.model_dump(mode="json") for t in spec.tables], sort_keys=True).encode()).hexdigest()[:12]
    key = f"{spec.name}:{shape}:{GENERATOR_VERSION}:{platform.node()}"  # the tables' shape, not their size
    stored: dict[str, Any] = {}
    if cache.exists():
        try:
            stored = json.loads(cache.read_text())
        except ValueError:
            stored = {}
    if not refresh and key in stored:
        return Calibration(**stored[key])
    cal = calibrate(spec)
    stored[key] = asdict(cal)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(stored, indent=2))
    return cal


def requests_per_file(size: float) -> int:
    return 1 if size <= MULTIPART_BYTES else 2 + math.ceil(size / MULTIPART_PART)


def estimate(spec: DatasetSpec, workers: int, cal: Calibration) -> dict[str, Any]:
    """Partitions, bytes, time on ``workers`` workers and S3 requests of generating ``spec``."""
    partitions = sum(spec.partitions_of(t.name) for t in spec.tables)
    records = sum(spec.table_records(t.name) for t in spec.tables)
    size = records * cal.bytes_per_row
    gx_parts = sum(_gx_count(spec, t.name) for t in spec.tables)
    cpu_s = records * cal.cpu_s_per_row + gx_parts * cal.gx_cpu_s
    file_bytes = spec.partition_rows * cal.bytes_per_row
    puts = partitions * (requests_per_file(file_bytes) + 1) + 1 + 1  # files + sidecars, manifest, write probe
    gets = 1 + math.ceil(partitions / 1000)  # manifest check, sidecar listings
    return {
        "dataset": spec.name,
        "records": records,
        "partition_rows": spec.partition_rows,
        "partitions": partitions,
        "bytes": round(size),
        "bytes_per_row": round(cal.bytes_per_row, 3),
        "workers": workers,
        "cpu_seconds": round(cpu_s, 1),
        "wall_seconds": round(STARTUP_S + cpu_s / workers, 1),
        "gx_validated_partitions": gx_parts,
        "s3_requests": {"put": puts, "get_list": gets},
        "assumptions": {
            "calibration": asdict(cal),
            "worker": "one process per core, each as fast as a core of the calibrating machine",
            "startup_seconds": STARTUP_S,
        },
    }


def _gx_count(spec: DatasetSpec, table: str) -> int:
    """How many partitions ``validate.gx_partition`` picks (closed form: tables may have 10^6)."""
    n = spec.partitions_of(table)
    if n <= GX_MAX_PARTITIONS:
        return n
    stride = math.ceil(n / GX_MAX_PARTITIONS)
    return math.ceil(n / stride) + (0 if (n - 1) % stride == 0 else 1)
