"""The priced plan: a hand computation, its inputs (cost/plan_inputs.toml) traced to docs/benchmarks.md, and `scenario plan`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scenario_pipeline.cost.plan import price_plan, shard_size_for
from scenario_pipeline.cost.plan_inputs import PACKAGED, read_plan_inputs
from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.errors import UsageError
from tests.helpers import REPO, run_cli

HAND_INPUTS = """
[generate.rows_per_cpu_second]
value = 10_000_000
unit = "rows per CPU-second"
source = "a hand-sized test"

[generate.bytes_per_row]
value = 10
unit = "bytes per row"
source = "a hand-sized test"

[fanout.thread_seconds_per_case]
value = 0.002
unit = "thread-seconds per case"
source = "a hand-sized test"
"""


def test_a_trillion_record_plan_matches_the_hand_computation(tmp_path: Path) -> None:
    bench = tmp_path / "plan_inputs.toml"
    bench.write_text(HAND_INPUTS)
    spec = build_spec("events", records=10**12, seed=0, partition_rows=10_000_000)
    p = price_plan(10**12, 1000, "aws-us-east-1-2026-11", spec=spec, plan_inputs=bench)
    g = p["generate"]
    # 10^12 rows / 10^7 rows per CPU-s = 100,000 CPU-s = 27.78 vCPU-hours; on 1,000 one-thread workers: 100 s
    assert g["cpu_hours"] == pytest.approx(100_000 / 3600) and g["wall_seconds"] == pytest.approx(100.0)
    # 100,000 partitions of 10^7 rows x 10 bytes = 100 MB each, above s3fs's 50 MiB multipart threshold:
    # 2 + ceil(100,000,000 / 52,428,800) = 4 requests per file, + 1 sidecar = 5 per partition, + manifest + write probe
    assert (g["partitions"], g["s3_put"], g["s3_list"], g["s3_get"]) == (100_000, 500_002, 100, 1)
    # compute 27.78 h x 0.04048 = 1.124444; memory 4 GB x 27.78 h = 111.11 GB-h x 0.004445 = 0.493889;
    # PUT 500,002 x 0.005 / 1000 = 2.50001; LIST 100 x 0.005 / 1000 = 0.0005; GET 1 x 0.0004 / 1000
    gen_usd = 100_000 / 3600 * 0.04048 + 4 * 100_000 / 3600 * 0.004445 + 2.50001 + 0.0005 + 0.0000004
    assert g["usd"] == pytest.approx(gen_usd)
    # storage: 10^13 bytes = 9,313.2257 GB (of 2^30 bytes), all in the first tier: x 0.023 = 214.2042
    assert p["storage"]["usd"] == pytest.approx(1e13 / 2**30 * 0.023)
    f = p["fanout"]
    # s12's 100 cases on 1,000 threads: shards of 1 case (four per thread, at least 1) -> 100 shards;
    # 100 x 0.002 = 0.2 thread-s; 101 PUT (checkpoints, run.json), 302 GET, 2 LIST
    assert (f["cases"], f["shards"], f["shard_size"]) == (100, 100, 1)
    fan_usd = 0.2 / 3600 * 0.04048 + 0.8 / 3600 * 0.004445 + 101 * 0.005 / 1000 + 302 * 0.0004 / 1000 + 2 * 0.005 / 1000
    assert f["usd"] == pytest.approx(fan_usd)
    assert p["total_usd"] == pytest.approx(gen_usd + fan_usd + 1e13 / 2**30 * 0.023)
    assert p["inputs"]["generate.rows_per_cpu_second"]["source"] == "a hand-sized test"
    from scenario_pipeline.tasks.fanout import default_shard_size

    assert all(shard_size_for(c, t) == default_shard_size(c, t) for c in (1, 100, 999, 10**6) for t in (1, 4, 1000))

    # The agent's own time and price per case are the plan's parameters: 100 cases x (2 s + 0.002 s), $0.05 each
    q = price_plan(
        10**12, 1000, "aws-us-east-1-2026-11", spec=spec, plan_inputs=bench, agent_seconds_per_case=2.0, agent_usd_per_case=0.05
    )
    extra = 100 * 2.0 / 3600 * (0.04048 + 4 * 0.004445) + 100 * 0.05
    assert q["fanout"]["usd"] == pytest.approx(fan_usd + extra)


def test_the_packaged_plan_inputs_are_the_measurements_recorded_in_docs_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (REPO / "docs" / "benchmarks.md").read_text()
    monkeypatch.delenv("SCENARIO_COST_PLAN_INPUTS", raising=False)
    inputs = read_plan_inputs()
    assert PACKAGED == REPO / "cost" / "plan_inputs.toml"
    # Fan-out: the median flow fan-out of the fan-out table, 1,000 cases on 2 workers x 2 threads
    median = re.search(r"^\| median \| ([0-9.]+) \| ([0-9.]+) \|", doc, flags=re.M)
    assert median, "the fan-out table has no median row"
    assert inputs["fanout.thread_seconds_per_case"].value == pytest.approx(float(median.group(2)) * 4 / 1000)
    # Generation: line (a) of benchmarks/generate.py as recorded: 4,000,000 rows in 0.514 CPU-s, 53.8 MB
    assert "4,000,000 rows in 0.514 CPU-s and 53.8 MB of Parquet" in " ".join(doc.split())
    assert "4,000,000 rows in 0.514 CPU-s" in inputs["generate.rows_per_cpu_second"].source
    assert inputs["generate.rows_per_cpu_second"].value == pytest.approx(4_000_000 / 0.514, rel=1e-3)
    assert inputs["generate.bytes_per_row"].value == pytest.approx(53.8e6 / 4_000_000)


def test_plan_inputs_that_are_missing_or_bad_are_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = tmp_path / "b.toml"
    bench.write_text(HAND_INPUTS.split("[fanout.thread_seconds_per_case]")[0])
    with pytest.raises(UsageError, match="lacks the plan input fanout.thread_seconds_per_case; measure it"):
        read_plan_inputs(bench)
    bench.write_text(HAND_INPUTS.replace("value = 10\n", 'value = "ten"\n'))
    with pytest.raises(UsageError, match="generate.bytes_per_row has value 'ten', not a number"):
        read_plan_inputs(bench)
    bench.write_text("generate = [\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        read_plan_inputs(bench)
    # SCENARIO_COST_PLAN_INPUTS replaces the packaged file
    bench.write_text(HAND_INPUTS)
    monkeypatch.setenv("SCENARIO_COST_PLAN_INPUTS", str(bench))
    assert read_plan_inputs()["generate.bytes_per_row"].value == 10.0
    monkeypatch.setenv("SCENARIO_COST_PLAN_INPUTS", str(tmp_path / "missing.toml"))
    with pytest.raises(UsageError, match="cannot be read.*SCENARIO_COST_PLAN_INPUTS"):
        read_plan_inputs()
    for records, workers, message in (
        (0, 10, "records must be a positive whole number"),
        (10**12 + 1, 10, r"at most 10\^12"),
        (1000, 0, "workers must be a positive whole number"),
    ):
        with pytest.raises(UsageError, match=message):
            price_plan(records, workers)


@pytest.mark.slow
def test_scenario_plan_prints_a_priced_plan_for_a_trillion_records(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "plan",
            "--records",
            "1000000000000",
            "--workers",
            "1000",
            "--profile",
            "aws-us-east-1-2026-11-graviton",
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    priced = json.loads(proc.stdout)["priced"]
    inputs = read_plan_inputs(PACKAGED)
    cpu_h = 10**12 / inputs["generate.rows_per_cpu_second"].value / 3600
    assert priced["profile"]["name"] == "aws-us-east-1-2026-11-graviton"
    assert priced["generate"]["cpu_hours"] == pytest.approx(cpu_h)
    vcpu = next(ln for ln in priced["lines"] if ln["stage"] == "generate" and ln["item"] == "compute.vcpu")
    assert vcpu["amount_usd"] == pytest.approx(cpu_h * 0.03238)  # Graviton's vCPU-hour
    assert priced["storage"]["usd"] == pytest.approx(10**12 * inputs["generate.bytes_per_row"].value / 2**30 * 0.023)
    assert priced["total_usd"] == pytest.approx(priced["generate"]["usd"] + priced["fanout"]["usd"] + priced["storage"]["usd"])
    bad = run_cli(
        ["plan", "--records", "1000000", "--workers", "2", "--profile", "aws-mars-1", "--data-dir", str(tmp_path / "data")]
    )
    assert bad.returncode == 2 and "unknown price profile 'aws-mars-1'" in bad.stderr and "Traceback" not in bad.stderr
