"""Stage 4, checkpoint: finished shards of cases, written to storage as they finish, each with a MAC.

Layout under the storage root: ``runs/{run_id}/run.json`` (the run's parameters, written first),
``runs/{run_id}/shards/shard-{i:05d}.parquet`` (one file per finished shard, written whole or not
at all) and beside each its sidecar ``shard-{i:05d}.parquet.mac`` (written after the file).

Checkpoint integrity (docs/reliability.md): the sidecar holds HMAC-SHA256 of the shard file's exact
bytes, bound to the run id and the shard number, under the run's key, which is derived from the
harness key (``scenario_pipeline/harness_key.py``; never in storage, never readable by agents).
Whoever can write storage but lacks the key (an agent's stray process, a remote worker, anyone with
the bucket's credentials) cannot make a shard that verifies: not by rewriting its rows, not by
copying a shard from another run, not by renumbering one.

A shard counts as finished only when its file and sidecar are both there, the MAC verifies
(constant-time compare) and its footer's row count is the one expected; such a shard is never run
again. A shard whose MAC does not verify is logged as a WARNING in words, moved aside (renamed
``shard-{i:05d}.parquet.rejected-{UTC time}``, its sidecar likewise, kept as evidence; nothing
reads them) and run again. A shard without a sidecar (written by an older version, or the run
stopped between the two writes) is not finished and is run again, overwriting it. ``read_results``
verifies each shard again, on the very bytes it then reads, and raises ``IntegrityError`` if one
changed since.

Resume checks tell "missing" from "broken": only a missing object means "not done"; any other
storage error (permission denied, S3 AccessDenied / InvalidAccessKeyId, the network after the
storage layer's retries) is logged with the path and raised as ``StorageError`` saying what to check.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scenario_pipeline import harness_key
from scenario_pipeline.errors import IntegrityError, RunStateError, StorageError
from scenario_pipeline.storage import DiskFullError, Storage, run_dir

log = logging.getLogger(__name__)

CASE_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("scenario", pa.string()),
        ("case_id", pa.string()),
        ("case_index", pa.int32()),
        ("shard", pa.int32()),
        ("passed", pa.bool_()),
        ("reason", pa.string()),
        ("metrics_json", pa.string()),
        ("answer_digest", pa.string()),
        ("answer_bytes", pa.int64()),
        ("latency_ms", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("attributes_json", pa.string()),
        ("worker", pa.string()),
        ("error_kind", pa.string()),  # typed reason of a case without a scorable answer (tasks/score.py CaseError)
        ("read_bytes", pa.int64()),  # bytes the agent's processes read during the call, measured by the harness
        ("retries", pa.int32()),  # attempts after the first: the agent rate-limited or could not take the call (tasks/lanes.py)
    ]
)

# Parameters that must match when a run id is reused: otherwise the shards would not line up.
RUN_IDENTITY = ("scenario", "records", "cases", "seed", "seed_commitment", "agent", "shard_size", "dataset_hash")

MAC_SUFFIX = ".mac"
MAC_FORMAT = "scenario-pipeline checkpoint MAC v1"
REJECTED_SUFFIX = ".rejected-"  # + UTC time, e.g. shard-00003.parquet.rejected-20260101T120000123456Z
_SHARD_NAME = re.compile(r"shard-(\d{5,})\.parquet")


def shard_path(run_id: str, shard: int) -> str:
    return f"{run_dir(run_id)}/shards/shard-{shard:05d}.parquet"


def mac_path(run_id: str, shard: int) -> str:
    """The shard's MAC sidecar, beside it."""
    return shard_path(run_id, shard) + MAC_SUFFIX


def write_run_record(storage: Storage, run_id: str, record: dict[str, Any]) -> bool:
    """Write ``run.json`` for a new run; for an existing id, check it is the same run. True if resuming."""
    rel = f"{run_dir(run_id)}/run.json"
    if storage.exists(rel):
        old = storage.read_json(rel)
        diffs = [f"{k}: was {old.get(k)!r}, now {record.get(k)!r}" for k in RUN_IDENTITY if old.get(k) != record.get(k)]
        if diffs:
            raise RunStateError(
                f"run id {run_id!r} already exists with other parameters ({'; '.join(diffs)}); use a new --run-id or the original parameters"
            )
        return True
    storage.write_json(rel, record)
    return False


def write_shard(storage: Storage, run_id: str, shard: int, rows: list[dict[str, Any]]) -> str:
    """Write the shard's Parquet file, then its MAC sidecar; returns the file's path (relative to the root)."""
    table = pa.Table.from_pylist(rows, schema=CASE_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    key = harness_key.harness_key()  # before any write: a bad key leaves nothing behind
    sidecar = {
        "format": MAC_FORMAT,
        "algorithm": "HMAC-SHA256",
        "run_id": run_id,
        "shard": shard,
        "rows": table.num_rows,
        "bytes": len(data),
        "key_id": harness_key.key_id(key),
        "mac": harness_key.mac_checkpoint(harness_key.run_key(run_id, key), run_id, shard, data),
    }
    rel = shard_path(run_id, shard)
    storage.write_bytes(rel, data)  # the file first, then the sidecar: a sidecar never vouches for a file not yet there
    storage.write_bytes(rel + MAC_SUFFIX, json.dumps(sidecar, sort_keys=True).encode())
    return rel


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """The run's key and the harness key's public id, computed once per scan."""

    run_key: bytes
    key_id: str

    @classmethod
    def for_run(cls, run_id: str) -> _Key:
        key = harness_key.harness_key()
        return cls(harness_key.run_key(run_id, key), harness_key.key_id(key))


@dataclass
class ShardCheck:
    """What one shard's checkpoint is: ``status`` is "ok", "missing" (no file), "unsigned" (no sidecar) or
    "failed" (the MAC does not verify: ``reason`` says how); ``data`` the file's bytes that were checked."""

    shard: int
    status: str
    reason: str = ""
    data: bytes | None = None
    sidecar: bytes | None = None


def _not_found(exc: BaseException) -> bool:
    """The storage layer's "not found" (it wraps FileNotFoundError, which s3fs raises for NoSuchKey / 404)."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 5:
        if isinstance(cur, FileNotFoundError):
            return True
        cur, seen = cur.__cause__, seen + 1
    return False


def _why(exc: BaseException, uri: str) -> str:
    """The storage error's cause without the path (the message names it once) or its write-side advice."""
    text = str(exc)
    at = text.find(f"{uri}: ")
    if at >= 0:
        text = text[at + len(uri) + 2 :]
    return text.split("; choose a writable")[0]


def _resume_error(storage: Storage, rel: str, run_id: str, what: str, exc: StorageError) -> StorageError:
    """A storage error other than "not found" while checking a run's checkpoints: logged with the path, and the
    error to raise, which says what to check. Never "not done": that would re-run (and re-pay for) finished work."""
    if isinstance(exc, DiskFullError):
        return exc
    uri = storage.uri(rel)
    why = _why(exc, uri)
    log.error("checkpoint check of run %s: cannot %s %s (%s)", run_id, what, uri, why)
    hint = (
        "check that the AWS credentials in use (AWS_ACCESS_KEY_ID / AWS_PROFILE) are valid and may list and read that "
        "prefix (s3:ListBucket, s3:GetObject), and that the endpoint is reachable"
        if storage.scheme == "s3"
        else "check that this user may read that folder and its files (owner and mode)"
    )
    return StorageError(
        f"cannot {what} {uri} while checking which checkpoint shards of run {run_id!r} are finished ({why}); "
        f"this is not a missing checkpoint, so nothing was counted as finished or unfinished: {hint}, "
        f"then rerun the same command with --run-id {run_id}"
    )


def _read_or_none(storage: Storage, rel: str, run_id: str) -> bytes | None:
    """The object's bytes; None when it does not exist; any other storage error is raised (``_resume_error``)."""
    try:
        return storage.read_bytes(rel)
    except StorageError as exc:
        if _not_found(exc):
            return None
        raise _resume_error(storage, rel, run_id, "read", exc) from exc


def check_shard(storage: Storage, run_id: str, shard: int, key: _Key | None = None) -> ShardCheck:
    """Read one shard's file and sidecar and verify the MAC over exactly the bytes read.

    Raises ``StorageError`` for a storage error other than "not found" (see the module's docstring).
    """
    key = key or _Key.for_run(run_id)
    rel = shard_path(run_id, shard)
    data = _read_or_none(storage, rel, run_id)
    if data is None:
        return ShardCheck(shard, "missing")
    sidecar = _read_or_none(storage, rel + MAC_SUFFIX, run_id)
    if sidecar is None:
        return ShardCheck(shard, "unsigned", "it has no MAC sidecar", data)
    try:
        meta = json.loads(sidecar)
        mac = meta["mac"]
        if not isinstance(mac, str):
            raise TypeError("mac is not text")
    except (ValueError, TypeError, KeyError):
        return ShardCheck(shard, "failed", "its MAC sidecar is unreadable", data, sidecar)
    expected = harness_key.mac_checkpoint(key.run_key, run_id, shard, data)
    if hmac.compare_digest(expected.encode(), mac.strip().lower().encode("ascii", "replace")):
        return ShardCheck(shard, "ok", "", data, sidecar)
    signer = meta.get("key_id") if isinstance(meta, dict) else None
    if isinstance(signer, str) and signer and signer != key.key_id:
        # Unauthenticated, so it changes only the words, never the verdict: the likely cause of a whole run's shards failing.
        reason = (
            f"MAC mismatch; its sidecar names another harness key, {signer[:16]!r}, than this one, {key.key_id!r}: if "
            f"machines with different keys share this storage, set {harness_key.ENV_VAR} to the same value on all of them"
        )
    else:
        reason = "MAC mismatch"
    return ShardCheck(shard, "failed", reason, data, sidecar)


def _reject(storage: Storage, run_id: str, check: ShardCheck) -> str:
    """Move a shard that failed its check aside (file and sidecar), kept as evidence; returns the new file name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    rel = shard_path(run_id, check.shard)
    aside = f"{rel}{REJECTED_SUFFIX}{stamp}"
    storage.write_bytes(aside, check.data or b"")
    storage.delete(rel)
    if check.sidecar is not None:
        storage.write_bytes(f"{rel}{MAC_SUFFIX}{REJECTED_SUFFIX}{stamp}", check.sidecar)
        storage.delete(rel + MAC_SUFFIX)
    return aside.rsplit("/", 1)[-1]


def _logger() -> Any:
    """The Prefect run's logger inside a flow or task run (the message reaches the run's logs), else this module's."""
    if "prefect" in sys.modules:
        try:
            from prefect import get_run_logger
            from prefect.context import FlowRunContext, TaskRunContext

            if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
                return get_run_logger()
        except Exception:  # noqa: BLE001, S110 - logging must never break the resume check
            pass
    return log


def finished_shards(storage: Storage, run_id: str, expected_rows: dict[int, int]) -> set[int]:
    """Shards whose checkpoint is present, verifies (file, sidecar and MAC) and is whole (the row count expected).

    A shard that fails its MAC check is logged, moved aside and left out (it is run again); one without a
    sidecar, or missing, is left out quietly (INFO for the former). Storage errors other than "not found"
    are raised as ``StorageError`` naming the path, never taken for "not done".
    """
    key = _Key.for_run(run_id)  # first: a malformed harness key stops the run here, before any agent runs
    folder = f"{run_dir(run_id)}/shards"
    try:
        names = storage.list(folder)
    except StorageError as exc:
        if _not_found(exc):
            return set()
        raise _resume_error(storage, folder, run_id, "list", exc) from exc
    shards = []
    for name in names:
        m = _SHARD_NAME.fullmatch(name)
        if m and f"shard-{int(m.group(1)):05d}.parquet" == name and int(m.group(1)) in expected_rows:
            shards.append(int(m.group(1)))
    logger = _logger()
    done: set[int] = set()
    for shard in shards:
        check = check_shard(storage, run_id, shard, key)
        if check.status == "missing":  # listed, then gone: nothing to say
            continue
        if check.status == "unsigned":
            logger.info(
                "Checkpoint shard %d of run %s has no MAC sidecar (written by an older version, or the run stopped "
                "between its two writes): it will be run again.",
                shard,
                run_id,
            )
            continue
        if check.status == "failed":
            aside = _reject(storage, run_id, check)
            logger.warning(
                "checkpoint shard %d of run %s failed its integrity check (%s): it will be run again; the file "
                "was moved aside as %s",
                shard,
                run_id,
                check.reason,
                aside,
            )
            continue
        try:
            rows = pq.read_metadata(io.BytesIO(check.data or b"")).num_rows
        except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...: an unreadable footer
            logger.warning(
                "Checkpoint shard %d of run %s has an unreadable Parquet footer (%s: %s): it will be run again.",
                shard,
                run_id,
                type(exc).__name__,
                exc,
            )
            continue
        if rows != expected_rows[shard]:
            logger.warning(
                "Checkpoint shard %d of run %s has %d rows, %d expected: it will be run again.",
                shard,
                run_id,
                rows,
                expected_rows[shard],
            )
            continue
        done.add(shard)
    return done


def _conform(table: pa.Table) -> pa.Table:
    """A shard written before a column was added (a run resumed across versions) gets it as nulls."""
    if table.schema.names == CASE_SCHEMA.names:
        return table
    for f in CASE_SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(CASE_SCHEMA.names).cast(CASE_SCHEMA)


def read_results(storage: Storage, run_id: str, shards: list[int]) -> pa.Table:
    """Every case row of a run, in case order; each case exactly once.

    Each shard is verified again on the very bytes that are then parsed (it may have changed since
    ``finished_shards``): one that does not verify raises ``IntegrityError``.
    """
    key = _Key.for_run(run_id) if shards else None
    tables = []
    for s in sorted(shards):
        check = check_shard(storage, run_id, s, key)
        if check.status != "ok":
            reason = {"missing": "its file is gone", "unsigned": "its MAC sidecar is gone"}.get(check.status, check.reason)
            log.error("checkpoint shard %d of run %s failed its integrity check (%s) when read for scoring", s, run_id, reason)
            raise IntegrityError(
                f"checkpoint shard {s} of run {run_id!r} failed its integrity check ({reason}) when read for scoring: "
                f"{storage.uri(shard_path(run_id, s))} changed after it was verified, so nothing from this run was scored "
                f"or published; find out who else can write that storage, then rerun the same command with --run-id "
                f"{run_id}: the shard will be moved aside and run again"
            )
        tables.append(_conform(pq.read_table(io.BytesIO(check.data or b""))))
    table = pa.concat_tables(tables) if tables else CASE_SCHEMA.empty_table()
    return table.sort_by("case_index")
