"""Checkpoint integrity: every shard carries a MAC under a key the agents cannot read
(tasks/checkpoint.py, scenario_pipeline/harness_key.py), and the resume checks of checkpoints and of
dataset partitions tell a missing object from a broken storage.

Real storage throughout: a local folder, and moto's S3 server on loopback (tests/helpers.py). The
harness key comes from a temporary XDG_CONFIG_HOME (never the real home) or SCENARIO_HARNESS_KEY.
"""

from __future__ import annotations

import io
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenario_pipeline import harness_key
from scenario_pipeline.datasets.partition import CHECKSUM, PartitionInfo, sidecar_name, verified_sidecar
from scenario_pipeline.errors import HarnessKeyError, IntegrityError, RunStateError, ScenarioError, StorageError, UsageError
from scenario_pipeline.storage import Storage
from scenario_pipeline.tasks.checkpoint import (
    CASE_SCHEMA,
    finished_shards,
    mac_path,
    read_results,
    shard_path,
    write_shard,
)
from tests.helpers import TEST_AWS, moto_server

BUCKET = "scenario-checkpoint-integrity"
RUN = "integrity-1"
ROWS_PER_SHARD = 3
EXPECTED = {s: ROWS_PER_SHARD for s in range(3)}
CKPT_LOGGER = "scenario_pipeline.tasks.checkpoint"


def case_rows(run_id: str, shard: int, passed: bool = False, n: int = ROWS_PER_SHARD) -> list[dict[str, Any]]:
    """Rows with every column of CASE_SCHEMA (columns not set here are null), as they read back."""
    return [{name: row.get(name) for name in CASE_SCHEMA.names} for row in _rows(run_id, shard, passed, n)]


def _rows(run_id: str, shard: int, passed: bool, n: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "scenario": "s12",
            "case_id": f"{run_id}-case-{shard * n + i}",
            "case_index": shard * n + i,
            "shard": shard,
            "passed": passed,
            "reason": "" if passed else "wrong answer: 0 of 3 needles",
            "metrics_json": json.dumps({"recall": float(passed)}),
            "answer_digest": f"d{shard}{i}",
            "answer_bytes": 10 + i,
            "latency_ms": 1.5 * i,
            "input_tokens": 5,
            "output_tokens": 7,
            "cost_usd": 0.001,
            "attributes_json": "{}",
            "worker": "tcp://127.0.0.1:1",
        }
        for i in range(n)
    ]


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CASE_SCHEMA), buf, compression="zstd")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test here: a temporary XDG_CONFIG_HOME, and no harness key from the caller's environment."""
    cfg = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    monkeypatch.delenv(harness_key.ENV_VAR, raising=False)
    return cfg


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server(BUCKET, verbose=False) as endpoint:
        yield endpoint


def _clear_s3_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem would keep the previous keys and listings


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """A real storage root: a local folder, or a prefix of a bucket on moto's S3 server."""
    if request.param == "file":
        yield Storage.from_url(str(tmp_path / "store"))
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_AWS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_AWS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_AWS["region_name"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    _clear_s3_cache()
    yield Storage.from_url(f"s3://{BUCKET}/{tmp_path.name}")
    _clear_s3_cache()


def names(storage: Storage, run_id: str = RUN) -> list[str]:
    _clear_s3_cache() if storage.scheme == "s3" else None  # no stale listing
    return storage.list(f"runs/{run_id}/shards")


def write_all(storage: Storage, run_id: str = RUN) -> None:
    for s in EXPECTED:
        write_shard(storage, run_id, s, case_rows(run_id, s))


def ours(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[logging.LogRecord]:
    """This project's log records at ``level`` or above (moto's server logs every request at INFO)."""
    return [r for r in caplog.records if r.levelno >= level and r.name.startswith("scenario_pipeline")]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in ours(caplog)]


# ---- checkpoints ---------------------------------------------------------------------------


def test_round_trip_verifies_and_reads_back_identical_rows(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    write_all(storage)
    assert names(storage) == sorted(
        [f"shard-{s:05d}.parquet" for s in EXPECTED] + [f"shard-{s:05d}.parquet.mac" for s in EXPECTED]
    )
    sidecar = json.loads(storage.read_bytes(mac_path(RUN, 1)))
    assert sidecar["algorithm"] == "HMAC-SHA256" and sidecar["run_id"] == RUN and sidecar["shard"] == 1 and sidecar["rows"] == 3
    assert len(sidecar["mac"]) == 64 and sidecar["bytes"] == len(storage.read_bytes(shard_path(RUN, 1)))
    assert finished_shards(storage, RUN, EXPECTED) == {0, 1, 2}
    table = read_results(storage, RUN, [2, 0, 1])
    assert table.schema == CASE_SCHEMA
    assert table.to_pylist() == [r for s in EXPECTED for r in case_rows(RUN, s)]
    assert warnings_of(caplog) == []


def test_shard_rewritten_as_all_passed_is_rejected_moved_aside_and_run_again(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    write_all(storage)
    forged = parquet_bytes(case_rows(RUN, 1, passed=True))  # same row count, valid Parquet, old sidecar kept
    original_sidecar = storage.read_bytes(mac_path(RUN, 1))
    storage.write_bytes(shard_path(RUN, 1), forged)
    assert pq.read_metadata(io.BytesIO(storage.read_bytes(shard_path(RUN, 1)))).num_rows == ROWS_PER_SHARD
    caplog.set_level(logging.INFO)

    assert finished_shards(storage, RUN, EXPECTED) == {0, 2}

    warned = warnings_of(caplog)
    assert len(warned) == 1, warned
    assert warned[0].startswith(
        f"checkpoint shard 1 of run {RUN} failed its integrity check (MAC mismatch): it will be run again"
    )
    assert [(r.name, r.levelno) for r in ours(caplog)] == [(CKPT_LOGGER, logging.WARNING)]
    listing = names(storage)
    assert "shard-00001.parquet" not in listing and "shard-00001.parquet.mac" not in listing
    aside = [n for n in listing if n.startswith("shard-00001.parquet.rejected-")]
    aside_mac = [n for n in listing if n.startswith("shard-00001.parquet.mac.rejected-")]
    assert len(aside) == 1 and len(aside_mac) == 1 and aside[0] in warned[0]
    assert aside_mac[0] == aside[0].replace(".parquet.rejected-", ".parquet.mac.rejected-")
    assert storage.read_bytes(f"runs/{RUN}/shards/{aside[0]}") == forged  # kept as evidence, byte for byte
    assert storage.read_bytes(f"runs/{RUN}/shards/{aside_mac[0]}") == original_sidecar
    assert sorted(n for n in listing if n.endswith(".parquet")) == ["shard-00000.parquet", "shard-00002.parquet"]

    # The rejected shard is run again: then the run is whole, with the real rows, and the evidence stays aside.
    write_shard(storage, RUN, 1, case_rows(RUN, 1))
    caplog.clear()
    assert finished_shards(storage, RUN, EXPECTED) == {0, 1, 2}
    assert warnings_of(caplog) == []
    assert sum(read_results(storage, RUN, [0, 1, 2]).column("passed").to_pylist()) == 0
    assert aside[0] in names(storage)


def test_shard_copied_from_another_run_or_renumbered_is_rejected(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    write_all(storage)
    other = "integrity-other"
    write_shard(storage, other, 1, [{**r, "passed": True} for r in case_rows(RUN, 1)])  # valid MAC, for the other run
    assert finished_shards(storage, other, {1: ROWS_PER_SHARD}) == {1}
    caplog.set_level(logging.INFO)
    storage.write_bytes(shard_path(RUN, 1), storage.read_bytes(shard_path(other, 1)))
    storage.write_bytes(mac_path(RUN, 1), storage.read_bytes(mac_path(other, 1)))
    # and shard 0 copied over shard 2, both of this run: a MAC binds the shard number too
    storage.write_bytes(shard_path(RUN, 2), storage.read_bytes(shard_path(RUN, 0)))
    storage.write_bytes(mac_path(RUN, 2), storage.read_bytes(mac_path(RUN, 0)))

    assert finished_shards(storage, RUN, EXPECTED) == {0}

    warned = warnings_of(caplog)
    assert [w.split(":")[0] for w in warned] == [
        f"checkpoint shard 1 of run {RUN} failed its integrity check (MAC mismatch)",
        f"checkpoint shard 2 of run {RUN} failed its integrity check (MAC mismatch)",
    ]
    assert sorted(n for n in names(storage) if n.endswith(".parquet")) == ["shard-00000.parquet"]
    assert finished_shards(storage, other, {1: ROWS_PER_SHARD}) == {1}  # the other run's own shard is untouched


def test_shard_tampered_after_the_resume_check_fails_read_results(storage: Storage) -> None:
    write_all(storage)
    finished = finished_shards(storage, RUN, EXPECTED)
    assert finished == {0, 1, 2}
    storage.write_bytes(shard_path(RUN, 1), parquet_bytes(case_rows(RUN, 1, passed=True)))  # the detached process strikes now

    with pytest.raises(IntegrityError) as exc:
        read_results(storage, RUN, sorted(finished))
    assert isinstance(exc.value, RunStateError) and isinstance(exc.value, ScenarioError)
    text = str(exc.value)
    assert text.startswith(f"checkpoint shard 1 of run {RUN!r} failed its integrity check (MAC mismatch) when read for scoring")
    assert storage.uri(shard_path(RUN, 1)) in text and f"--run-id {RUN}" in text

    # a sidecar removed after the check fails the read as well
    write_shard(storage, RUN, 1, case_rows(RUN, 1))
    assert finished_shards(storage, RUN, EXPECTED) == {0, 1, 2}
    storage.delete(mac_path(RUN, 2))
    with pytest.raises(
        IntegrityError, match=r"checkpoint shard 2 of run 'integrity-1' failed its integrity check \(its MAC sidecar is gone\)"
    ):
        read_results(storage, RUN, [0, 1, 2])


def test_missing_sidecar_is_not_done_and_missing_shard_is_not_done_quietly(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    write_all(storage)
    storage.delete(mac_path(RUN, 0))  # e.g. written by an older version, or killed between the two writes
    storage.delete(shard_path(RUN, 2))  # its sidecar alone is left
    caplog.set_level(logging.INFO)

    assert finished_shards(storage, RUN, {**EXPECTED, 3: ROWS_PER_SHARD}) == {1}  # shard 3 was never written

    assert warnings_of(caplog) == []
    infos = [r.getMessage() for r in ours(caplog, logging.INFO) if r.levelno == logging.INFO]
    assert infos == [
        (
            f"Checkpoint shard 0 of run {RUN} has no MAC sidecar (written by an older version, or the run stopped "
            "between its two writes): it will be run again."
        )
    ]
    assert "shard-00000.parquet" in names(storage)  # not moved aside: the re-run overwrites it
    assert not any(".rejected-" in n for n in names(storage))
    assert finished_shards(storage, "never-ran", EXPECTED) == set()  # no shards folder at all


def test_wrong_row_count_and_unreadable_footer_under_a_valid_mac_are_run_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage.from_url(str(tmp_path / "store"))
    write_shard(storage, RUN, 0, case_rows(RUN, 0, n=2))  # 2 rows where 3 are expected
    garbage = b"PAR1 this is not a parquet footer"
    key = harness_key.run_key(RUN)
    storage.write_bytes(shard_path(RUN, 1), garbage)  # signed with the real key: only the harness could do this
    storage.write_bytes(mac_path(RUN, 1), json.dumps({"mac": harness_key.mac_checkpoint(key, RUN, 1, garbage)}).encode())
    storage.write_bytes(shard_path(RUN, 2), parquet_bytes(case_rows(RUN, 2)))
    storage.write_bytes(mac_path(RUN, 2), b"{not json")
    caplog.set_level(logging.INFO)

    assert finished_shards(storage, RUN, EXPECTED) == set()

    warned = warnings_of(caplog)
    assert len(warned) == 3, warned
    assert warned[0] == f"Checkpoint shard 0 of run {RUN} has 2 rows, 3 expected: it will be run again."
    assert (
        warned[1].startswith(f"Checkpoint shard 1 of run {RUN} has an unreadable Parquet footer (")
        and "it will be run again" in warned[1]
    )
    assert warned[2].startswith(
        f"checkpoint shard 2 of run {RUN} failed its integrity check (its MAC sidecar is unreadable): it will be run again"
    )


class DeniedStorage(Storage):
    """A local Storage whose reads under ``denied`` fail as a permission error would (root ignores chmod)."""

    denied = ""

    def read_bytes(self, rel: str) -> bytes:
        if self.denied and rel.startswith(self.denied):

            def refuse(path: str) -> bytes:
                raise PermissionError(13, "Permission denied", path)

            return self._call("read", rel, refuse)
        return super().read_bytes(rel)


def test_storage_error_in_the_resume_check_propagates_with_the_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = Storage.from_url(str(tmp_path / "store"))
    write_all(good)
    denied = DeniedStorage(good.url)
    object.__setattr__(denied, "denied", mac_path(RUN, 1))
    caplog.set_level(logging.INFO)

    with pytest.raises(StorageError) as exc:
        finished_shards(denied, RUN, EXPECTED)

    text = str(exc.value)
    uri = good.uri(mac_path(RUN, 1))
    assert text.startswith(
        f"cannot read {uri} while checking which checkpoint shards of run {RUN!r} are finished (permission denied)"
    )
    assert "check that this user may read that folder" in text and f"--run-id {RUN}" in text and "not found" not in text
    assert [r.getMessage() for r in ours(caplog, logging.ERROR)] == [
        f"checkpoint check of run {RUN}: cannot read {uri} (permission denied)"
    ]
    assert not any(".rejected-" in n for n in names(good))  # nothing was moved aside or counted
    with pytest.raises(StorageError, match="permission denied"):  # read_results too
        read_results(denied, RUN, [0, 1, 2])


def test_s3_wrong_credentials_in_the_resume_check_propagate(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from moto.core.authorization import enable_iam_authentication

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    _clear_s3_cache()
    storage = Storage.from_url(f"s3://{BUCKET}/wrong-creds")
    write_all(storage)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    _clear_s3_cache()
    caplog.set_level(logging.INFO)
    try:
        # the server now checks keys: these are unknown to it (403 InvalidAccessKeyId)
        with enable_iam_authentication(), pytest.raises(StorageError) as exc:
            finished_shards(storage, RUN, EXPECTED)
    finally:
        _clear_s3_cache()
    text = str(exc.value)
    assert text.startswith(
        f"cannot list s3://{BUCKET}/wrong-creds/runs/{RUN}/shards while checking which checkpoint shards of run "
        f"{RUN!r} are finished (permission denied)"
    ), text
    assert "check that the AWS credentials in use (AWS_ACCESS_KEY_ID / AWS_PROFILE)" in text and "not found" not in text
    assert "not-the-secret-at-all" not in text + caplog.text
    assert any(
        r.levelno == logging.ERROR and f"s3://{BUCKET}/wrong-creds/runs/{RUN}/shards" in r.getMessage() for r in caplog.records
    )
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **TEST_AWS)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="wrong-creds/").get("Contents", [])]
    assert len(keys) == 6 and not any(".rejected-" in k for k in keys)  # nothing moved aside


# ---- dataset partitions' resume check ------------------------------------------------------


def _partition(root: Storage, p: int) -> PartitionInfo:
    data = parquet_bytes(case_rows("dataset", p))
    info = PartitionInfo("events", p, f"events/part-{p:07d}.parquet", ROWS_PER_SHARD, len(data), f"{CHECKSUM}:00", 1)
    root.write_bytes(info.path, data)
    root.write_json(sidecar_name("events", p), info.to_json())
    return info


def test_partition_resume_check_missing_broken_and_denied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = Storage.from_url(str(tmp_path / "dataset"))
    infos = [_partition(root, p) for p in range(4)]
    caplog.set_level(logging.INFO)
    assert verified_sidecar(root, "events", 0) == infos[0]
    assert verified_sidecar(root, "events", 9) is None  # never written: quietly not done
    assert warnings_of(caplog) == []

    data = root.read_bytes(infos[1].path)
    root.write_bytes(infos[1].path, data[:-8] + b"garbage!")  # same size, footer broken
    assert verified_sidecar(root, "events", 1) is None
    root.write_bytes(sidecar_name("events", 2), b'{"table": "events", "ind')  # torn sidecar
    assert verified_sidecar(root, "events", 2) is None
    warned = warnings_of(caplog)
    assert len(warned) == 2 and "unreadable Parquet footer" in warned[0] and root.uri(infos[1].path) in warned[0]
    assert "is unreadable" in warned[1] and root.uri(sidecar_name("events", 2)) in warned[1]

    denied = DeniedStorage(root.url)
    object.__setattr__(denied, "denied", sidecar_name("events", 3))
    with pytest.raises(StorageError) as exc:
        verified_sidecar(denied, "events", 3)
    assert str(exc.value).startswith(
        f"cannot read {root.uri(sidecar_name('events', 3))} while checking which dataset partitions "
        "are already written (permission denied)"
    )
    assert "check that this user may read the dataset folder" in str(exc.value)


def test_partition_resume_check_on_s3_with_wrong_credentials(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.authorization import enable_iam_authentication

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    _clear_s3_cache()
    root = Storage.from_url(f"s3://{BUCKET}/partitions")
    info = _partition(root, 0)
    assert verified_sidecar(root, "events", 0) == info
    assert verified_sidecar(root, "events", 1) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    _clear_s3_cache()
    try:
        with enable_iam_authentication(), pytest.raises(StorageError) as exc:
            verified_sidecar(root, "events", 0)
    finally:
        _clear_s3_cache()
    assert str(exc.value).startswith(
        f"cannot read s3://{BUCKET}/partitions/events/_parts/part-0000000.json while checking which "
        "dataset partitions are already written (permission denied)"
    ), str(exc.value)
    assert "AWS_ACCESS_KEY_ID / AWS_PROFILE" in str(exc.value)


# ---- the harness key -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("zz" * 32, "it is not hex digits"),
        ("ab" * 31, "it has 31 bytes, at least 32 are needed"),
        ("", "it has 0 bytes, at least 32 are needed"),
    ],
)
def test_malformed_env_key_is_one_clear_error(
    value: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_config: Path
) -> None:
    monkeypatch.setenv(harness_key.ENV_VAR, value)
    storage = Storage.from_url(str(tmp_path / "store"))
    calls = {
        "harness_key": harness_key.harness_key,
        "run_commitment": lambda: harness_key.run_commitment("42", RUN),
        "write_shard": lambda: write_shard(storage, RUN, 0, case_rows(RUN, 0)),
        "read_results": lambda: read_results(storage, RUN, [0]),
        "finished_shards": lambda: finished_shards(storage, RUN, EXPECTED),  # the flow's first use: before any agent runs
    }
    for name, call in calls.items():
        with pytest.raises(HarnessKeyError) as exc:
            call()
        assert isinstance(exc.value, UsageError), name
        text = str(exc.value)
        assert text.startswith(
            f"the environment variable SCENARIO_HARNESS_KEY is not a valid harness key: {why}; "
            "set SCENARIO_HARNESS_KEY to at least 64 hex digits"
        ), (name, text)
        assert value not in text if value else True
    assert not (tmp_path / "store").exists()  # write_shard wrote nothing
    assert not private_config.exists()  # and no key file was made instead


def test_env_key_is_used_and_no_key_file_is_made(monkeypatch: pytest.MonkeyPatch, private_config: Path, tmp_path: Path) -> None:
    key = "0123456789abcdef" * 4
    monkeypatch.setenv(harness_key.ENV_VAR, f"  {key.upper()}\n")  # case and surrounding blanks do not matter
    assert harness_key.harness_key() == bytes.fromhex(key)
    storage = Storage.from_url(str(tmp_path / "store"))
    write_all(storage)
    assert finished_shards(storage, RUN, EXPECTED) == {0, 1, 2}
    assert not private_config.exists()
    # Another machine with the same key verifies them; one with another key does not, and says why.
    monkeypatch.setenv(harness_key.ENV_VAR, "fedcba9876543210" * 4)
    with pytest.raises(
        IntegrityError,
        match=r"sidecar names another harness key, '[0-9a-f]{16}', than this one, '[0-9a-f]{16}': if "
        r"machines with different keys share this storage, set SCENARIO_HARNESS_KEY",
    ):
        read_results(storage, RUN, [0])


def test_key_file_made_0600_in_0700_folder_and_reused(private_config: Path) -> None:
    path = harness_key.key_path()
    assert path == private_config / "scenario-pipeline" / "harness.key"
    assert not path.exists()
    first = harness_key.harness_key()
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().strip() == first.hex()
    before = path.stat()
    assert harness_key.harness_key() == first  # reused, not remade
    assert path.stat().st_ino == before.st_ino and path.stat().st_mtime_ns == before.st_mtime_ns
    assert [p.name for p in path.parent.iterdir()] == ["harness.key"]  # no temporary file left

    commitment = harness_key.run_commitment("123456789", RUN)
    assert len(commitment) == 64 and int(commitment, 16) >= 0
    assert commitment == harness_key.run_commitment("123456789", RUN)
    assert commitment != harness_key.run_commitment("123456789", "another-run") != harness_key.run_commitment("123456780", RUN)
    assert harness_key.check_commitment("123456789", RUN, commitment)
    assert not harness_key.check_commitment("123456780", RUN, commitment)


def test_default_key_location_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert harness_key.key_path() == tmp_path / "home" / ".config" / "scenario-pipeline" / "harness.key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/path")  # ignored, as the XDG spec says
    assert harness_key.key_path() == tmp_path / "home" / ".config" / "scenario-pipeline" / "harness.key"


def test_key_file_readable_by_others_or_malformed_is_refused(private_config: Path) -> None:
    harness_key.harness_key()
    path = harness_key.key_path()
    path.chmod(0o644)
    with pytest.raises(HarnessKeyError, match=r"may be read by other users \(mode 0644\); make it private with `chmod 600"):
        harness_key.harness_key()
    path.chmod(0o600)
    path.write_text("not a key\n")
    with pytest.raises(HarnessKeyError) as exc:
        harness_key.harness_key()
    assert str(exc.value).startswith(f"the harness key file {path} is not a valid harness key: it is not hex digits")
    assert "not a key" not in str(exc.value)


def test_key_never_logged(storage: Storage, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    write_all(storage)
    key = harness_key.harness_key()
    run_key = harness_key.run_key(RUN)
    storage.write_bytes(shard_path(RUN, 0), parquet_bytes(case_rows(RUN, 0, passed=True)))
    storage.delete(mac_path(RUN, 2))
    assert finished_shards(storage, RUN, EXPECTED) == {1}
    write_shard(storage, RUN, 0, case_rows(RUN, 0))
    storage.write_bytes(shard_path(RUN, 0), parquet_bytes(case_rows(RUN, 0, passed=True)))
    with pytest.raises(IntegrityError) as exc:
        read_results(storage, RUN, [0, 1])
    monkeypatch.setenv(harness_key.ENV_VAR, key.hex()[:-2])  # one byte short
    with pytest.raises(HarnessKeyError) as short:
        harness_key.harness_key()
    assert caplog.records  # there was something to look at
    text = caplog.text + str(exc.value) + str(short.value)
    for secret in (key.hex(), key.hex().upper(), key.hex()[:16], run_key.hex(), run_key.hex()[:16]):
        assert secret not in text
    for name in names(storage):  # not in storage either: sidecars carry the MAC and the key's public id only
        body = storage.read_bytes(f"runs/{RUN}/shards/{name}")
        assert key.hex().encode() not in body and key not in body and run_key not in body
