"""Generation throughput of the ``events`` table against two yardsticks, in one run, one machine.

    .venv/bin/python benchmarks/generate.py [--partitions 16] [--partition-rows 1000000]

(a) ours: ``write_partition`` as the flow runs it minus validation: build the partition,
    encode it into a hidden file, read its footer statistics, checksum it (xxh3-128), rename
    it, write its sidecar;
(b) write-only limit: pyarrow writing the identical, already-built table to a local file with
    the same settings (zstd level 1, the same per-column encodings, Bloom filter, batch size);
(c) tpchgen-cli writing TPC-H lineitem at scale factor 1 as Parquet with ZSTD(1);
(d) validation, priced apart: the exact layer (footer statistics and dictionaries against the
    rules, every partition) and the Great Expectations check of a 16,384-row sample (64
    partitions of a large dataset).

CPU-seconds are user + system time from getrusage (this process for (a), (b), (d); its children
for (c)). (a) and (b) run back to back for each partition, so both see the same machine load,
and the ratio is the median of the per-partition ratios. (b)'s table is built before (a) runs:
"already built", it is no longer in the CPU caches when it is written, as a table that was
materialized earlier would not be. For reference the script also times pyarrow writing a table
it built the instant before (still in cache), the most favourable case for the write-only side. Prints the two ratios as its last lines:
ours / write-only in rows per CPU-second (bar >= 0.9) and ours / tpchgen-cli in Parquet MB per
CPU-second (bar >= 2.0).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tpchgen(workdir: Path) -> tuple[float, int, float]:
    """(CPU-seconds, bytes, wall seconds) of tpchgen-cli lineitem SF1 Parquet ZSTD(1)."""
    exe = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    out = workdir / "tpch"
    out.mkdir()
    c0, t0 = cpu_children(), time.perf_counter()
    subprocess.run(
        [exe, "parquet", "-s", "1", "--tables", "lineitem", "--compression", "ZSTD(1)", "--output-dir", str(out)],
        check=True,
        capture_output=True,
    )
    cpu, wall = cpu_children() - c0, time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    shutil.rmtree(out)
    return cpu, size, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=16, help="partitions measured (each side)")
    ap.add_argument("--partition-rows", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=1_000_000_000, help="dataset size the partitions are drawn from")
    args = ap.parse_args()

    import pyarrow.parquet as pq

    from scenario_pipeline.datasets.catalog import build_spec
    from scenario_pipeline.datasets.manifest import dataset_root
    from scenario_pipeline.datasets.partition import build_partition, parquet_options, write_partition
    from scenario_pipeline.storage import Storage

    spec = build_spec("events", records=args.records, seed=20261122, partition_rows=args.partition_rows)
    opts = parquet_options(spec, "events")
    work = Path(tempfile.mkdtemp(prefix="gen-bench-", dir=os.environ.get("BENCH_DIR")))
    root = dataset_root(Storage.from_url(str(work)), spec)
    step = max(1, spec.partitions // args.partitions)
    picks = [min(spec.partitions - 1, i * step + step // 2) for i in range(args.partitions)]
    print(
        f"events: {spec.partitions:,} partitions of {spec.partition_rows:,} rows; measuring {len(picks)} of them; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        write_partition(spec, root, "events", 0, gx=False)  # imports, compiled kernels, caches
        pq.write_table(build_partition(spec, "events", 0), str(work / "warm.parquet"), row_group_size=spec.row_group_rows, **opts)

        ours, limit, hot, rows, size_ours, size_limit = [], [], [], 0, 0, 0
        for p in picks:
            table = build_partition(spec, "events", p)  # (b)'s input, built ahead and outside its timing
            c = cpu_self()
            info = write_partition(spec, root, "events", p, validate=False)
            ours.append(cpu_self() - c)
            size_ours += info.bytes
            path = work / f"limit-{p}.parquet"
            c = cpu_self()
            pq.write_table(table, str(path), row_group_size=spec.row_group_rows, **opts)
            limit.append(cpu_self() - c)
            size_limit += path.stat().st_size
            path.unlink()
            rows += table.num_rows
            del table
            fresh = build_partition(spec, "events", p)
            c = cpu_self()
            pq.write_table(fresh, str(path), row_group_size=spec.row_group_rows, **opts)
            hot.append(cpu_self() - c)
            path.unlink()
            del fresh

        # (d) the validation layers timed on their own, on partitions encoded in memory
        from dataclasses import replace

        from scenario_pipeline.datasets.partition import encode_partition, read_footer
        from scenario_pipeline.datasets.validate import GX_SAMPLE_ROWS, check_partition

        exact_cost, gx_cost = [], []
        for k, p in enumerate(picks[:6]):
            enc = encode_partition(spec, "events", p, sample_rows=GX_SAMPLE_ROWS)
            footer = read_footer(enc.metadata)
            if k == 0:
                check_partition(spec, "events", p, enc, footer)  # GX's import and context, once per worker: not counted
            for _ in range(3):
                c = cpu_self()
                check_partition(spec, "events", p, replace(enc, sample=None), footer)
                exact_cost.append(cpu_self() - c)
                c = cpu_self()
                check_partition(spec, "events", p, enc, footer)
                gx_cost.append(cpu_self() - c - exact_cost[-1])

        tp_cpu, tp_bytes, tp_wall = tpchgen(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    o_cpu, l_cpu = sum(ours), sum(limit)
    print(
        f"(a) ours: generation + Parquet write: {rows:,} rows, {size_ours / 1e6:.1f} MB in {o_cpu:.3f} CPU-s = "
        f"{rows / o_cpu / 1e6:.2f} M rows/CPU-s, {size_ours / 1e6 / o_cpu:.1f} MB/CPU-s "
        f"(median {statistics.median(ours) * 1e3:.1f} ms per partition)"
    )
    print(
        f"(b) write-only limit: {rows:,} rows, {size_limit / 1e6:.1f} MB in {l_cpu:.3f} CPU-s = "
        f"{rows / l_cpu / 1e6:.2f} M rows/CPU-s, {size_limit / 1e6 / l_cpu:.1f} MB/CPU-s "
        f"(median {statistics.median(limit) * 1e3:.1f} ms per partition)"
    )
    print(
        f"    (for reference, pyarrow writing a table built the instant before, still in cache: median "
        f"{statistics.median(hot) * 1e3:.1f} ms per partition; ours / that = {statistics.median(h / o for h, o in zip(hot, ours, strict=True)):.3f})"
    )
    print(
        f"(c) tpchgen-cli lineitem SF1 ZSTD(1): {tp_bytes / 1e6:.1f} MB in {tp_cpu:.2f} CPU-s ({tp_wall:.1f} s wall) = "
        f"{tp_bytes / 1e6 / tp_cpu:.1f} MB/CPU-s"
    )
    med = statistics.median(ours)
    print(
        f"(d) validation: exact layer (footer statistics, dictionaries) {statistics.median(exact_cost) * 1e3:.2f} ms per "
        f"partition (+{statistics.median(exact_cost) / med * 100:.1f}% of (a), every partition); Great Expectations on a "
        f"16,384-row sample {statistics.median(gx_cost) * 1e3:.0f} ms (+{statistics.median(gx_cost) / med * 100:.0f}% of (a) "
        f"for the partitions it checks: 64 of this dataset's {spec.partitions:,}, "
        f"{64 * statistics.median(gx_cost) / (spec.partitions * med) * 100:.1f}% of the whole)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    per_partition = statistics.median(lim / o for lim, o in zip(limit, ours, strict=True))
    mb_ours = size_ours / 1e6 / o_cpu
    print(f"ratio ours/write-only (rows per CPU-second, median of {len(ours)} partitions; bar >= 0.9): {per_partition:.3f}")
    print(f"ratio ours/tpchgen-cli (Parquet MB per CPU-second; bar >= 2.0): {mb_ours / (tp_bytes / 1e6 / tp_cpu):.3f}")


if __name__ == "__main__":
    main()
