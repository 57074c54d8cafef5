"""Fan-out overhead: 1,000 no-op cases through the real flow vs plain ``client.map``.

Both on one LocalCluster (2 worker processes x 2 threads), against a real Prefect server.
The flow's fan-out time includes scoring every answer and checkpointing every shard to
storage; plain ``client.map`` does nothing but call the no-op agent once per case.

    .venv/bin/python benchmarks/fanout.py [--cases 1000] [--repeat 3]

Last line: ratio = flow fan-out seconds / plain client.map seconds (bar: <= 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid


def _noop_case(i: int) -> dict:
    from scenario_pipeline.agents.builtin import noop

    return noop({"case": i}, {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from scenario_pipeline.infra.prefect_server import ensure_api

    st = ensure_api()
    print(f"Prefect API: {st.api_url}")
    from scenario_pipeline.flows.run_scenario import run_scenario

    data = tempfile.mkdtemp(prefix="fanout-bench-")
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        client.gather(client.map(_noop_case, range(10), pure=False))  # warm the workers' imports
        plain, flow = [], []
        for r in range(args.repeat):
            t = time.perf_counter()
            client.gather(client.map(_noop_case, range(args.cases), pure=False))
            plain.append(time.perf_counter() - t)
            summary = run_scenario(
                scenario="s12",
                records=1_000_000,
                cases=args.cases,
                agent="scenario_pipeline.agents.builtin:noop",
                run_id=f"fanout-bench-{uuid.uuid4().hex[:8]}",
                storage_url=data,
                warehouse_url=f"duckdb://{data}/warehouse.duckdb",
                dask_address=cluster.scheduler_address,
                fail_on_threshold=False,  # a no-op agent misses every threshold
            )
            assert summary["counts"]["cases"] == args.cases, summary["counts"]
            flow.append(summary["timings"]["fanout_seconds"])
            print(
                f"repeat {r + 1}: plain client.map {plain[-1]:.3f} s, flow fan-out {flow[-1]:.3f} s "
                f"({summary['counts']['shards']} shards, checkpoints included), whole flow {summary['timings']['total_seconds']:.1f} s"
            )
    p, f = statistics.median(plain), statistics.median(flow)
    print(f"median of {args.repeat}: plain client.map {p:.3f} s for {args.cases} no-op calls; flow fan-out {f:.3f} s")
    print(f"ratio flow/plain = {f / p:.3f}")


if __name__ == "__main__":
    main()
