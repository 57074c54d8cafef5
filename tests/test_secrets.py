"""Secrets given through the environment appear nowhere (issue 9, part 4).

The Redshift password (SCENARIO_REDSHIFT_PASSWORD) and the AWS keys (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) get distinctive values. Real runs use them: S3 storage
on moto's server (which accepts any keys until IAM authentication is switched on) and the Redshift
back end on a real PostgreSQL behind the real redshift_connector, where the warehouse user here
must give its password (md5 authentication; the fixture's own user is trust-authenticated). Then
every place a secret could land is searched for each value:

- stdout and stderr of every command (successful runs, a run whose warehouse refuses the password,
  `publish` / `compare` / `costs` / `baseline show` with the right and the wrong password, runs and
  generation on S3 with IAM authentication on and a wrong secret or an unknown key);
- through the Prefect API: every log line of every flow run, every artifact (data and description),
  every flow run and task run (parameters included), every event, variable and block document;
- the Prefect server's own log and its SQLite database file, raw;
- every file under the data folder and every object in the bucket (checkpoints, reports, run.json,
  manifests, the outbox), raw and, for Parquet and DuckDB, decoded;
- every row of every table of the PostgreSQL warehouse database, and PostgreSQL's log;
- in-process: the text, repr, attributes and formatted traceback of a failing connect's exception
  and its whole cause/context chain (Redshift and S3).

Positive controls (the run ids are found in the same places) show that each search reads real content.
"""

from __future__ import annotations

import io
import json
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.helpers import TEST_AWS, moto_server, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.faults]

PW = "pw-PROBE-7Hq2Zr9Kx4Vd"
WRONG_PW = "pw-PROBE-wrong-Qz8Xc3Lv"
AKID = "AKIASECRETPROBE00001"
SAK = "s3cr3t-PROBE-Vb8Nq3Lm6Tz1Wx5Yc7"
STOK = "tok-PROBE-Jd4Fs8Gh2Kl6Pq0Rt3Ew9"
WRONG_SAK = "wr0ng-PROBE-Mn5Bv7Cx9Zl2Hg4Sd1"
BUCKET = "scenario-secrets-test"
PG_USER = "secretprobe"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 (and IAM) on loopback; an IAM user with a real access key, for the 'wrong secret' case."""
    with moto_server(BUCKET) as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint, **TEST_AWS)
        iam.create_user(UserName="scenario-probe")
        iam.put_user_policy(
            UserName="scenario-probe",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName="scenario-probe")["AccessKey"]["AccessKeyId"]
        yield {"endpoint": endpoint, "iam_key_id": key}


@pytest.fixture(scope="module")
def warehouse(pg_redshift) -> Iterator[str]:  # noqa: ANN001 - tests.pg_server.PostgresForRedshift
    """A fresh database and a user that must give PW (md5: the driver's SCRAM fails against PostgreSQL)."""
    import redshift_connector

    from tests.warehouse_support import new_database

    url = new_database(pg_redshift)
    con = redshift_connector.connect(
        host="127.0.0.1", port=pg_redshift.port, database="postgres", user="postgres", password="", ssl=False
    )
    con.autocommit = True
    cur = con.cursor()
    cur.execute("SET password_encryption = 'md5'")
    cur.execute(f"DROP ROLE IF EXISTS {PG_USER}")
    cur.execute(f"CREATE ROLE {PG_USER} LOGIN SUPERUSER PASSWORD '{PW}'")
    hba = pg_redshift.pgdata / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {PG_USER} md5\n" + original)
    cur.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    try:
        yield url.replace("redshift://postgres@", f"redshift://{PG_USER}@")
    finally:
        hba.write_text(original)
        cur.execute("SELECT pg_reload_conf()")
        con.close()


class Haystack:
    """Text from everywhere a secret could land, each piece labelled with where it came from."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []

    def add(self, where: str, content: Any) -> None:
        if isinstance(content, bytes):
            content = content.decode("utf-8", "backslashreplace")
        self.pieces.append((where, content if isinstance(content, str) else json.dumps(content, default=str)))

    def found(self, needle: str) -> list[str]:
        return [where for where, text in self.pieces if needle in text]


def _parquet_text(data: bytes) -> str:
    """What a Parquet file says: its schema metadata and every string value (nested columns as text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    parts = [str(table.schema.metadata or {})]
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts.append(
                "\x00".join(v for v in col.to_pylist() if v is not None)
                if len(col) <= 200_000
                else "\x00".join(sorted({v for v in col.to_pylist() if v is not None}))
            )
        elif pa.types.is_nested(col.type) or pa.types.is_binary(col.type) or pa.types.is_dictionary(col.type):
            parts.append(str(col.to_pylist()))
    return "\n".join(parts)


def _file_text(name: str, data: bytes) -> str:
    text = data.decode("utf-8", "backslashreplace")
    if name.endswith(".parquet"):
        text += "\n" + _parquet_text(data)
    return text


def _duckdb_text(path: Path) -> str:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(f"{t}: {con.execute(f'SELECT * FROM {t}').fetchall()}" for t in tables)
    finally:
        con.close()


def _prefect(api: str, hay: Haystack) -> dict[str, int]:
    """Everything the Prefect API holds, paged; returns how many of each were read."""
    counts = {}
    with httpx.Client(base_url=api, timeout=60) as c:
        for what in ("logs", "artifacts", "flow_runs", "task_runs", "variables", "block_documents"):
            n, offset = 0, 0
            while True:
                body: dict[str, Any] = {"limit": 200, "offset": offset}
                if what == "block_documents":
                    body["include_secrets"] = False
                r = c.post(f"/{what}/filter", json=body)
                r.raise_for_status()
                page = r.json()
                for item in page:
                    hay.add(f"prefect {what} {item.get('id')}", item)
                n += len(page)
                offset += len(page)
                if len(page) < 200:
                    break
            counts[what] = n
        r = c.post("/events/filter", json={"filter": {"occurred": {"since": "2020-01-01T00:00:00Z"}}, "limit": 50})
        r.raise_for_status()
        page, n = r.json(), 0
        while True:
            for e in page["events"]:
                hay.add(f"prefect event {e.get('event')} {e.get('id')}", e)
            n += len(page["events"])
            if not page.get("next_page"):
                break
            r = c.get(page["next_page"])
            r.raise_for_status()
            page = r.json()
        counts["events"] = n
    return counts


def _chain_text(exc: BaseException) -> str:
    """str, repr and attributes of an exception and of everything it chains to, plus the formatted traceback."""
    parts, seen, todo = ["".join(traceback.format_exception(exc))], set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts += [str(e), repr(e), repr(e.args), repr(getattr(e, "__dict__", {}))]
        todo += [e.__cause__, e.__context__]
    return "\n".join(parts)


def test_secrets_appear_in_no_output_log_artifact_file_or_row(
    prefect_server: str,
    pg_redshift,
    s3: dict[str, str],  # noqa: ANN001
    warehouse: str,
    tmp_path: Path,
) -> None:
    from moto.core.authorization import enable_iam_authentication

    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    storage = f"s3://{BUCKET}/secrets"
    env = {
        "PREFECT_API_URL": prefect_server,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": SAK,
        "AWS_SESSION_TOKEN": STOK,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3["endpoint"],
        "SCENARIO_REDSHIFT_PASSWORD": PW,
    }
    hay = Haystack()

    def cli(args: list[str], code: int = 0, **over: str) -> Any:
        proc = run_cli(args, {**env, **over}, timeout=900, cwd=cwd)
        hay.add(f"stdout of scenario {' '.join(args[:3])}", proc.stdout)
        hay.add(f"stderr of scenario {' '.join(args[:3])}", proc.stderr)
        assert proc.returncode == code, (args, proc.stdout[-2000:], proc.stderr[-4000:])
        return json.loads(proc.stdout) if "--json" in args and code == 0 else proc

    run = [
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "1000000",
        "--cases",
        "8",
        "--storage",
        storage,
        "--warehouse",
        warehouse,
        "--data-dir",
        str(data),
        "--json",
    ]
    # (a) a successful run: S3 with the keys, Redshift with the password
    a = cli([*run, "--run-id", "sec-a"])
    assert (a["status"], a["warehouse_rows"], a["counts"]["cases"]) == ("completed", 8, 8)
    # a run on local storage and the DuckDB warehouse, with the same secrets in its environment
    d = cli(
        [
            "run",
            "s12",
            "--no-fail-on-threshold",
            "--records",
            "1000000",
            "--cases",
            "8",
            "--data-dir",
            str(data),
            "--run-id",
            "sec-d",
            "--json",
        ]
    )
    assert (d["status"], d["warehouse_rows"]) == ("completed", 8)
    # (b) the warehouse refuses the password: the run completes, its rows wait in the outbox
    b = cli([*run, "--run-id", "sec-b"], SCENARIO_REDSHIFT_PASSWORD=WRONG_PW)
    assert (b["status"], b["warehouse_rows"]) == ("completed", 0), b
    where = ["--storage", storage, "--warehouse", warehouse, "--data-dir", str(data)]
    refused = cli(["publish", "sec-b", *where], 2, SCENARIO_REDSHIFT_PASSWORD=WRONG_PW)
    assert "password authentication failed" in refused.stderr and WRONG_PW not in refused.stderr
    cli(["compare", "sec-a", "sec-b", *where], 2, SCENARIO_REDSHIFT_PASSWORD=WRONG_PW)
    cli(["costs", "sec-a", "--warehouse", warehouse, "--data-dir", str(data)], 2, SCENARIO_REDSHIFT_PASSWORD=WRONG_PW)
    [delivered] = cli(
        ["publish", "sec-b", "--storage", storage, "--data-dir", str(data), "--json"]
    )  # to the URL the run recorded
    assert delivered["delivered"] and delivered["counts"]["case_results"] == 8
    cmp = cli(["compare", "sec-a", "sec-b", *where, "--json"])
    assert cmp["pairs"][0]["paired_cases"] == 8
    cli(["costs", "sec-a", "--warehouse", warehouse, "--data-dir", str(data), "--json"])
    cli(["baseline", "show", "--warehouse", warehouse, "--data-dir", str(data), "--json"])
    # a password put in the URL: refused before any flow run could store the URL as a parameter
    in_url = warehouse.replace(f"{PG_USER}@", f"{PG_USER}:{PW}@")
    for args in (
        [*run[:-5], "--warehouse", in_url, "--data-dir", str(data), "--run-id", "sec-e"],
        ["compare", "sec-a", "sec-b", "--warehouse", in_url],
        ["baseline", "promote", "sec-a", "--warehouse", in_url],
        ["reconcile-costs", "--warehouse", in_url],
    ):
        proc = cli(args, 2)
        assert "the Redshift URL carries a password" in proc.stderr, proc.stderr
    # S3 that checks keys: a known key with the wrong secret, then an unknown key (with a session token)
    wrong_secret = {"AWS_ACCESS_KEY_ID": s3["iam_key_id"], "AWS_SECRET_ACCESS_KEY": WRONG_SAK, "AWS_SESSION_TOKEN": ""}
    with enable_iam_authentication():
        for over in (wrong_secret, {}):
            for args in (
                [*run, "--run-id", "sec-c"],
                ["generate", "events", "--records", "1000", "--storage", storage, "--data-dir", str(data)],
                ["publish", "--all", "--storage", storage, "--data-dir", str(data)],
            ):
                proc = cli(args, 2, **over)
                assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr

    # ---- gather everything ----
    counts = _prefect(prefect_server, hay)
    assert counts["logs"] > 20 and counts["artifacts"] > 0 and counts["flow_runs"] >= 3, counts
    home = Path(os.environ["PREFECT_HOME"])  # the prefect_server fixture's
    for f in [home / "server.log", *home.glob("*.db*")]:
        hay.add(f"prefect server file {f.name}", f.read_bytes())
    files = [f for f in [*data.rglob("*"), *cwd.rglob("*")] if f.is_file()]
    for f in files:
        hay.add(f"file {f.relative_to(tmp_path)}", _file_text(f.name, f.read_bytes()))
        if f.suffix == ".duckdb":
            hay.add(f"duckdb {f.relative_to(tmp_path)}", _duckdb_text(f))
    client = boto3.client(
        "s3", endpoint_url=s3["endpoint"], aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    keys = [
        o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in page.get("Contents", [])
    ]
    for k in keys:
        hay.add(f"s3 {k}", _file_text(k, client.get_object(Bucket=BUCKET, Key=k)["Body"].read()))
    assert any("/shards/" in k for k in keys) and any(k.endswith("report.html") for k in keys), keys
    import redshift_connector

    db = warehouse.rsplit("/", 1)[1].split("?")[0]
    con = redshift_connector.connect(
        host="127.0.0.1", port=pg_redshift.port, database=db, user="postgres", password="", ssl=False
    )
    try:
        cur = con.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = [t for (t,) in cur.fetchall()]
        for t in tables:
            cur.execute(f"SELECT * FROM {t}")
            hay.add(f"warehouse table {t}", str(cur.fetchall()))
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT run_id || '/' || case_id) FROM case_results")
        rows, distinct = cur.fetchone()
    finally:
        con.close()
    hay.add("postgresql log", (pg_redshift.base / "postgres.log").read_bytes())

    # ---- positive controls: each search reads real content ----
    for source in (
        "prefect logs",
        "prefect artifacts",
        "prefect flow_runs",
        "s3 ",
        "warehouse table runs",
        "warehouse table case_results",
        "stdout",
    ):
        assert any(w.startswith(source) for w in hay.found("sec-a")), f"the search of {source!r} found not even the run id"
    for source in ("file data/runs/sec-d/shards/", "file data/runs/sec-d/run.json", "duckdb data/warehouse.duckdb"):
        assert any(w.startswith(source) for w in hay.found("sec-d")), f"the search of {source!r} found not even the run id"
    assert any(w.startswith("prefect server file") for w in hay.found("sec-b"))
    assert any(
        w.startswith("prefect flow_runs") for w in hay.found(f"{PG_USER}@127.0.0.1")
    )  # the URL (without secret) is a parameter
    assert len(tables) >= 8 and (rows, distinct) == (16, 16)  # both runs, each case once (one through the outbox)

    # ---- the secrets: nowhere ----
    leaks = {s: hay.found(s) for s in (PW, WRONG_PW, AKID, SAK, STOK, WRONG_SAK, s3["iam_key_id"], PW[3:], SAK[7:], STOK[4:])}
    assert {s: w for s, w in leaks.items() if w} == {}, "secrets leaked"
    from tests.fault_table import record

    record(
        "secrets: Redshift password and AWS keys in the environment (right and wrong ones)",
        f"found in none of {len(hay.pieces)} outputs, logs, artifacts, runs, events, files, objects and rows",
        16,
        rows,
        rows - distinct,
    )


def test_failing_connects_raise_errors_without_secrets(
    pg_redshift,
    warehouse: str,
    s3: dict[str, str],  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redshift_connector
    import s3fs
    from moto.core.authorization import enable_iam_authentication

    from scenario_pipeline.errors import StorageError, WarehouseError
    from scenario_pipeline.storage import Storage
    from scenario_pipeline.warehouse.redshift_backend import RedshiftSettings, RedshiftWarehouse

    texts: dict[str, str] = {}
    # The real server refuses the wrong password.
    monkeypatch.setenv("SCENARIO_REDSHIFT_PASSWORD", WRONG_PW)
    with pytest.raises(WarehouseError, match="password authentication failed") as exc:
        RedshiftWarehouse(warehouse)
    texts["redshift wrong password"] = _chain_text(exc.value)
    texts["settings repr"] = repr(RedshiftSettings()) + str(RedshiftSettings().model_dump())
    # A driver that echoes the password in its error and in the error it chains to (drivers have done so):
    # the WarehouseError and its whole chain are scrubbed.
    real_connect = redshift_connector.connect

    def echoing_connect(**kw: Any) -> Any:
        try:
            raise OSError(f"login as {kw['user']} with {kw['password']} refused")
        except OSError as inner:
            raise redshift_connector.InterfaceError(
                "communication error", {"M": f"bad password {kw['password']!r}"}, inner
            ) from inner

    monkeypatch.setattr(redshift_connector, "connect", echoing_connect)
    with pytest.raises(WarehouseError, match="cannot reach the Redshift warehouse") as exc:
        RedshiftWarehouse(warehouse)
    texts["redshift echoing driver"] = _chain_text(exc.value)
    assert "***" in str(exc.value)
    monkeypatch.setattr(redshift_connector, "connect", real_connect)
    # S3 that checks keys: a known key with a wrong secret, an unknown key with a session token.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3["endpoint"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for label, keys in (
        ("s3 wrong secret", {"AWS_ACCESS_KEY_ID": s3["iam_key_id"], "AWS_SECRET_ACCESS_KEY": WRONG_SAK}),
        ("s3 unknown key", {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SAK, "AWS_SESSION_TOKEN": STOK}),
    ):
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        for k, v in keys.items():
            monkeypatch.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem would keep the previous keys
        with enable_iam_authentication(), pytest.raises(StorageError) as exc:
            Storage.from_url(f"s3://{BUCKET}/in-process").ensure_writable()
        texts[label] = _chain_text(exc.value)
    s3fs.S3FileSystem.clear_instance_cache()
    leaks = {
        (where, s)
        for where, text in texts.items()
        for s in (PW, WRONG_PW, AKID, SAK, STOK, WRONG_SAK, s3["iam_key_id"])
        if s in text
    }
    assert leaks == set(), leaks
