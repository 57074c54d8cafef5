"""The ``events`` dataset through the real flow (``generate_dataset`` on a real Prefect server)
on LocalClusters of 1 and 2 worker processes: wall time, parallel efficiency, peak memory.

    .venv/bin/python benchmarks/generate_scale.py [--records 1000000000] [--workers 1,2] [--small 10000000]

Each run gets a fresh LocalCluster (one thread per worker process, so a process is a core) and
a fresh folder, deleted afterwards. Wall time is the flow call, cluster start excluded (the
cluster is started before the clock, as a standing cluster would be). Peak resident memory is
each worker's ``ru_maxrss`` read inside the worker at the end of its run, and this process's
(the flow, the Dask scheduler). ``--small`` adds a run of that many records on the largest
worker count, to show memory does not grow with the dataset. Efficiency = T(1) / (2 * T(2)).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run(records: int, workers: int, base: Path) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from scenario_pipeline.flows.generate_dataset import generate_dataset

    folder = Path(tempfile.mkdtemp(prefix=f"scale-{records}-{workers}-", dir=base))
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        summary = generate_dataset(
            dataset="events", records=records, storage_url=str(folder), dask_address=cluster.scheduler_address
        )
        wall = time.perf_counter() - t0
        rss = sorted(client.run(_peak_rss_mb).values())
    shutil.rmtree(folder, ignore_errors=True)
    out = {
        "records": records,
        "workers": workers,
        "wall_s": wall,
        "rows": summary["rows"],
        "gb": summary["bytes"] / 1e9,
        "partitions": summary["tables"]["events"]["partitions"],
        "worker_rss_mb": rss,
        "flow_rss_mb": _peak_rss_mb(),
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }
    print(
        f"{records:>14,} records, {workers} worker(s): {wall:7.1f} s wall, {out['partitions']} partitions, {out['gb']:.2f} GB, "
        f"{records / wall / 1e6:.2f} M rows/s; peak RSS workers {', '.join(f'{r:.0f}' for r in rss)} MB, "
        f"flow process {out['flow_rss_mb']:.0f} MB; load {load:.2f} -> {out['load_after']:.2f}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000_000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    ap.add_argument("--small", type=int, default=10_000_000, help="also run this size on the most workers (0: skip)")
    ap.add_argument("--dir", default=None, help="where the datasets are written (and deleted)")
    args = ap.parse_args()

    from scenario_pipeline.infra.prefect_server import ensure_api

    print(f"Prefect API: {ensure_api().api_url}; cores: {os.cpu_count()}; load average: {os.getloadavg()}", flush=True)
    base = Path(args.dir or tempfile.gettempdir())
    counts = [int(w) for w in args.workers.split(",")]
    results = []
    if args.small:
        results.append(run(args.small, max(counts), base))
    for w in counts:
        results.append(run(args.records, w, base))
    big = {r["workers"]: r for r in results if r["records"] == args.records}
    if 1 in big and 2 in big:
        eff = big[1]["wall_s"] / (2 * big[2]["wall_s"])
        print(
            f"parallel efficiency, 2 processes over 1, {args.records:,} records: {big[1]['wall_s']:.1f} / (2 x {big[2]['wall_s']:.1f}) = {eff:.3f}"
        )
    if 2 in big:
        print(f"wall time, {args.records:,} records on 2 processes: {big[2]['wall_s']:.1f} s (bar: < 240 s)")
    print(f"peak worker RSS across runs: {max(max(r['worker_rss_mb']) for r in results):.0f} MB (bar: < 2048 MB)")


if __name__ == "__main__":
    main()
