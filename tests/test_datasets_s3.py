"""Generation to ``s3://bucket/prefix`` against a real S3-compatible HTTP server (moto's, on
loopback), read back with DuckDB over a pyarrow dataset on pyarrow's S3 filesystem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import duckdb
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.settings import DEFAULT_SEED
from tests.helpers import moto_server, run_cli

BUCKET = "scenario-datasets-test"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    with moto_server(BUCKET) as endpoint:
        yield {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "port": endpoint.rsplit(":", 1)[1],
        }


def _keys(env: dict[str, str], prefix: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


@pytest.mark.slow
def test_generate_to_s3_and_read_back(prefect_server: str, s3_server: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in s3_server.items() if k != "port"}
    res = run_cli(
        [
            "generate",
            "events",
            "--records",
            "300000",
            "--partition-rows",
            "100000",
            "--storage",
            f"s3://{BUCKET}/runs/a",
            "--data-dir",
            str(tmp_path),
            "--json",
        ],
        env_extra=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    spec = build_spec("events", 300_000, DEFAULT_SEED, 100_000)
    base = f"runs/a/datasets/events/{spec.spec_hash()}"
    assert summary["manifest_url"] == f"s3://{BUCKET}/{base}/_manifest.json"
    keys = _keys(s3_server, base)
    assert f"{base}/_manifest.json" in keys
    assert sorted(k for k in keys if k.endswith(".parquet")) == [f"{base}/events/part-{i:07d}.parquet" for i in range(3)]
    assert not any(".write-probe" in k or ".tmp-" in k for k in _keys(s3_server, "runs/a"))

    fs = pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{s3_server['port']}",
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    with fs.open_input_stream(f"{BUCKET}/{base}/_manifest.json") as fh:
        manifest = json.loads(fh.read())
    files = [f"{BUCKET}/{base}/{p['path']}" for p in manifest["tables"]["events"]["partitions"]]
    assert [p["rows"] for p in manifest["tables"]["events"]["partitions"]] == [100_000] * 3
    con = duckdb.connect()
    con.register("events", pads.dataset(files, format="parquet", filesystem=fs))
    n, distinct, hi = con.execute("SELECT count(*), count(DISTINCT record_id), max(record_id) FROM events").fetchone()
    assert (n, distinct, hi) == (300_000, 300_000, 299_999)
    needles = [r for (r,) in con.execute("SELECT record_id FROM events WHERE tag LIKE 'zq%' ORDER BY record_id").fetchall()]
    assert needles == oracle.needles(spec).record_ids.tolist()


@pytest.mark.slow
def test_bad_credentials_fail_cleanly(s3_server: dict[str, str], tmp_path: Path) -> None:
    from moto.core.authorization import enable_iam_authentication

    env = {k: v for k, v in s3_server.items() if k != "port"}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1",
            "AWS_SECRET_ACCESS_KEY": "not-the-secret-at-all",
            "PREFECT_API_URL": "http://127.0.0.1:9/api",
        }
    )
    with enable_iam_authentication():  # the server now checks keys: these are unknown to it
        res = run_cli(
            ["generate", "events", "--records", "1000", "--storage", f"s3://{BUCKET}/runs/bad", "--data-dir", str(tmp_path)],
            env_extra=env,
            timeout=300,
        )
    assert res.returncode == 2, res.stderr
    text = " ".join(res.stderr.split())
    # moto answers 403 (InvalidAccessKeyId); s3fs reports it as permission denied
    assert text.startswith(f"error: cannot write s3://{BUCKET}/runs/bad/") and "permission denied" in text, text
    assert "check the AWS credentials" in text
    assert "not-the-secret-at-all" not in res.stderr and "Traceback" not in res.stderr
    assert _keys(s3_server, "runs/bad") == []
