"""``scenario generate`` and ``scenario plan`` as a user runs them: bad input, the plan's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers import run_cli

# A dead Prefect API: if bad input ever got past validation, the command fails fast here
# instead of starting a server.
NO_SERVER = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}


def _fails_cleanly(args: list[str], data: Path, message: str) -> str:
    res = run_cli(args, env_extra=NO_SERVER, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert lines[0].startswith("error:"), res.stderr
    assert message in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (data / "datasets").exists()  # nothing half-published
    return res.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--records", "0"], "records must be a positive whole number, got 0"),
        (["--records", "-5"], "records must be a positive whole number, got -5"),
        (["--records", "1000", "--partition-rows", "5000"], "partition rows (5000) cannot exceed records (1000)"),
        (["--records", "1000", "--partition-rows", "0"], "partition rows must be a positive whole number, got 0"),
        (["--records", str(10**12 + 1)], "records must be at most 10^12"),
    ],
)
def test_generate_rejects_bad_numbers(args: list[str], message: str, data_dir: Path) -> None:
    _fails_cleanly(["generate", "events", *args, "--data-dir", str(data_dir)], data_dir, message)


def test_generate_rejects_unknown_dataset(data_dir: Path) -> None:
    err = _fails_cleanly(
        ["generate", "nosuch", "--records", "1000", "--data-dir", str(data_dir)], data_dir, "unknown dataset 'nosuch'"
    )
    assert "events" in err  # the message lists the known ones


def test_generate_rejects_unwritable_storage(data_dir: Path) -> None:
    blocker = data_dir / "a-file"
    blocker.write_text("not a folder")
    _fails_cleanly(
        ["generate", "events", "--records", "1000", "--storage", f"file://{blocker}/sub", "--data-dir", str(data_dir)],
        data_dir,
        f"cannot write file://{blocker}/sub",
    )
    _fails_cleanly(
        ["generate", "events", "--records", "1000", "--storage", "ftp://host/x", "--data-dir", str(data_dir)],
        data_dir,
        "unknown scheme 'ftp'",
    )


def test_plan_numbers_follow_from_the_calibration(data_dir: Path) -> None:
    res = run_cli(["plan", "--records", str(10**12), "--workers", "8", "--json", "--data-dir", str(data_dir)], timeout=300)
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    cal = plan["assumptions"]["calibration"]
    # 10^12 records: the default partition keeps the count at 100,000 -> 10^7 rows each
    assert plan["partitions"] == 100_000 and plan["partition_rows"] == 10_000_000
    assert plan["bytes"] == round(10**12 * cal["bytes_per_row"])
    assert 5 < cal["bytes_per_row"] < 40 and cal["cpu_s_per_row"] < 1e-6  # Parquet of ~8 columns; > 1 M rows/CPU-s
    # GX checks 64 partitions spread over the 100,000 (stride 1,563: 64, and the last)
    assert plan["gx_validated_partitions"] == 65
    cpu = 10**12 * cal["cpu_s_per_row"] + 65 * cal["gx_cpu_s"]
    assert plan["cpu_seconds"] == pytest.approx(cpu, abs=0.1)
    assert plan["wall_seconds"] == pytest.approx(15 + cpu / 8, abs=0.1)
    # each 10^7-row file is > 50 MiB: a multipart upload (create + parts + complete) plus its sidecar
    per_file = 10**7 * cal["bytes_per_row"]
    puts = 100_000 * (2 + math.ceil(per_file / (50 * 2**20)) + 1) + 2
    assert plan["s3_requests"]["put"] == puts
    # one cost: the datasets plan has quantities; the priced plan under it (default profile) has the prices
    assert "cost_usd" not in plan and plan["priced"]["profile"]["name"] == "aws-us-east-1-2026-11"
    assert plan["priced"]["generate"]["s3_put"] == puts  # the priced plan takes the layout's requests from this plan
    # the calibration is kept: a second plan reuses it
    again = json.loads(run_cli(["plan", "--records", "1000", "--workers", "1", "--json", "--data-dir", str(data_dir)]).stdout)
    assert again["assumptions"]["calibration"] == cal and again["partitions"] == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--records", "1000", "--workers", "0"], "workers must be a positive number, got 0"),
        (["--records", "0", "--workers", "2"], "records must be a positive whole number, got 0"),
        (["--records", "1000", "--workers", "2", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    ],
)
def test_plan_rejects_bad_input(args: list[str], message: str, data_dir: Path) -> None:
    res = run_cli(["plan", *args, "--data-dir", str(data_dir)], env_extra=NO_SERVER, timeout=120)
    assert res.returncode == 2 and message in " ".join(res.stderr.split()), res.stderr
