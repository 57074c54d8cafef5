"""Storage by URL: ``file://`` (or a plain path) and ``s3://bucket/prefix``.

Every write is atomic: a reader sees the whole object or nothing. Local files are written to a
temporary name and renamed; S3 PUTs are atomic by themselves. S3 uses the standard AWS
credential chain; ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) points it at MinIO,
LocalStack or a test server.

Transient S3 failures (5xx, ``SlowDown`` and other throttling, dropped connections) are retried
with exponential backoff by this module, not silently inside botocore: every retry is one
WARNING line on the ``scenario_pipeline.storage`` logger, e.g. ``storage: write
s3://bucket/key failed (503 SlowDown), retry 2/7 in 0.3 s``; inside a Prefect flow or task run
the line also goes to that run's logs.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import posixpath
import random
import sys
import threading
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from scenario_pipeline.errors import StorageError, UsageError

SCHEMES = ("file", "s3")


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def normalize_url(url: str) -> str:
    """A storage URL with its scheme spelled out; plain paths become absolute file:// URLs."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = parsed.path if parsed.scheme == "file" else url
        return Path(path).expanduser().resolve().as_uri()
    if parsed.scheme not in SCHEMES:
        raise UsageError(f"storage URL {url!r} has unknown scheme {parsed.scheme!r}; use file:// or s3://bucket/prefix")
    if parsed.scheme == "s3" and not parsed.netloc:
        raise UsageError(f"storage URL {url!r} names no bucket; use s3://bucket/prefix")
    return url.rstrip("/")


def run_dir(run_id: str) -> str:
    """A run's folder under the storage root: run.json, checkpoint shards, cost ledger, outbox, report."""
    return f"runs/{run_id}"


@dataclass(frozen=True)
class Storage:
    """A root URL plus the fsspec filesystem that serves it. Paths are relative to the root."""

    url: str

    @classmethod
    def from_url(cls, url: str) -> Storage:
        return cls(normalize_url(url))

    @property
    def scheme(self) -> str:
        return urlparse(self.url).scheme

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return _filesystem(self.scheme)

    @property
    def root(self) -> str:
        """The root as the filesystem names it (no scheme)."""
        parsed = urlparse(self.url)
        if self.scheme == "file":
            return parsed.path
        return f"{parsed.netloc}{parsed.path}".rstrip("/")

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """A full URL for a relative path, for messages and for readers that take URLs."""
        return f"{self.scheme}://{self.path(*parts)}"

    def child(self, *parts: str) -> Storage:
        return Storage(self.uri(*parts))

    # -- reads ---------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self._call("check", rel, lambda p: self.fs.exists(p))

    def read_bytes(self, rel: str) -> bytes:
        return self._call("read", rel, lambda p: self.fs.cat_file(p))

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def size(self, rel: str) -> int:
        return self._call("stat", rel, lambda p: int(self.fs.size(p)))

    def list(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under ``rel``; empty when it does not exist."""

        def _ls(p: str) -> list[str]:
            if not self.fs.exists(p):
                return []
            return sorted(posixpath.basename(x.rstrip("/")) for x in self.fs.ls(p, detail=False))

        return self._call("list", rel, _ls)

    # -- writes --------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write atomically: readers never see a torn object."""

        def _put(p: str) -> None:
            if self.scheme == "file":
                os.makedirs(posixpath.dirname(p), exist_ok=True)
                # A dot-prefixed temporary name: directory readers (pyarrow, DuckDB globs) skip it.
                tmp = posixpath.join(posixpath.dirname(p), f".{posixpath.basename(p)}.tmp-{uuid.uuid4().hex}")
                try:
                    with open(tmp, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(tmp, p)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            else:
                self.fs.pipe_file(p, data)

        self._call("write", rel, _put)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def delete(self, rel: str) -> None:
        self._call("delete", rel, lambda p: self.fs.rm(p, recursive=True) if self.fs.exists(p) else None)

    def ensure_writable(self) -> None:
        """Fail early, with a clear message, on a root we cannot write."""
        probe = f".write-probe-{uuid.uuid4().hex}"
        try:
            self.write_bytes(probe, b"ok")
        except DiskFullError as exc:  # name the folder, not the probe file
            raise DiskFullError(str(exc).replace(self.uri(probe), self.url)) from exc
        self.delete(probe)

    def _call(self, what: str, rel: str, fn):  # noqa: ANN001 - small internal helper
        full = self.path(rel) if rel else self.root
        try:
            return fn(full)
        except StorageError:
            raise
        except FileNotFoundError as exc:
            raise StorageError(f"cannot {what} {self.scheme}://{full}: not found") from exc
        except PermissionError as exc:
            raise StorageError(
                f"cannot {what} {self.scheme}://{full}: permission denied; choose a writable --data-dir or storage URL"
            ) from exc
        except OSError as exc:
            raise os_error(what, f"{self.scheme}://{full}", exc) from exc  # a full disk says so
        except Exception as exc:  # botocore / aiohttp errors carry no common base
            raise StorageError(f"cannot {what} {self.scheme}://{full}: {type(exc).__name__}: {_safe(exc)}") from exc


class DiskFullError(StorageError):
    """No space left on the device (ENOSPC) or the disk quota used up (EDQUOT) under a local path.
    Retrying does not help: whoever catches it stops the work and lets the message through."""


_DISK_FULL = {errno.ENOSPC: "No space left on device, ENOSPC", errno.EDQUOT: "Disk quota exceeded, EDQUOT"}


def disk_full_reason(exc: BaseException | None) -> str | None:
    """ "No space left on device, ENOSPC" when ``exc`` (or an exception it wraps) is a full disk, else None.

    pyarrow and DuckDB report it as text ("... [errno 28] No space left on device"), so the text counts too.
    """
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return _DISK_FULL[exc.errno]
        text = str(exc)
        for code, reason in _DISK_FULL.items():
            if os.strerror(code) in text:
                return reason
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def disk_full_error(what: str, where: str, reason: str) -> DiskFullError:
    return DiskFullError(
        f"the disk is full: cannot {what} {where} ({reason}); free space on that disk, "
        "or choose another --data-dir (or --storage) with room, then rerun the same command"
    )


def os_error(what: str, where: str, exc: OSError) -> StorageError:
    """The StorageError for an OSError while doing ``what`` to ``where``."""
    reason = disk_full_reason(exc)
    if reason:
        return disk_full_error(what, where, reason)
    return StorageError(f"cannot {what} {where}: {exc.strerror or exc}")


def _safe(exc: BaseException) -> str:
    """An exception's text without anything that looks like a credential."""
    text = str(exc)
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        secret = os.environ.get(var)
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


def _filesystem(scheme: str) -> fsspec.AbstractFileSystem:
    if scheme == "s3":
        endpoint = s3_endpoint()
        kwargs: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        # botocore makes one attempt per call; the retries with backoff are ours (_retry_s3),
        # so each one is logged. (s3fs still retries a SlowDown or a torn body on top, a few times.)
        kwargs["config_kwargs"] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
        return _s3_class()(skip_instance_cache=False, **kwargs)
    return fsspec.filesystem("file")


log = logging.getLogger("scenario_pipeline.storage")

S3_RETRIES = 7  # retries after the first attempt: 8 attempts in all, as botocore's adaptive mode had
S3_BACKOFF_BASE_S = 0.1  # the first retry waits 0.05-0.1 s, each next one twice as long ...
S3_BACKOFF_MAX_S = 5.0  # ... up to 2.5-5 s; all 7 retries wait about 8 s at most
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_TRANSIENT_CODES = {  # botocore's standard retry mode's transient and throttling error codes
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "EC2ThrottledException",
}
_VERBS = {
    "PutObject": "write",
    "CreateMultipartUpload": "write",
    "UploadPart": "write",
    "CompleteMultipartUpload": "write",
    "AbortMultipartUpload": "write",
    "CopyObject": "write",
    "GetObject": "read",
    "HeadObject": "stat",
    "HeadBucket": "check",
    "ListObjectsV2": "list",
    "ListObjects": "list",
    "DeleteObject": "delete",
    "DeleteObjects": "delete",
}


def _transient(response: Any, caught_exception: BaseException | None) -> str | None:
    """Why an S3 attempt failed, when retrying may help ("503 SlowDown", "EndpointConnectionError"); else None."""
    if caught_exception is not None:
        if isinstance(caught_exception, (BotoConnectionError, HTTPClientError)):
            return type(caught_exception).__name__
        return None
    if not response:
        return None
    http, parsed = response
    status = getattr(http, "status_code", 200)
    code = str((parsed or {}).get("Error", {}).get("Code") or "")
    if status not in _TRANSIENT_STATUS and code not in _TRANSIENT_CODES:
        return None
    if not code or code == str(status):  # a HEAD answer has no body: name the status instead
        try:
            code = HTTPStatus(status).phrase
        except ValueError:
            code = "error"
    return f"{status} {code}"


def _s3_target(request_dict: dict[str, Any] | None) -> str:
    params = ((request_dict or {}).get("context") or {}).get("input_params") or {}
    bucket = params.get("Bucket", "")
    key = params.get("Key") or params.get("Prefix") or ""
    objects = (params.get("Delete") or {}).get("Objects") or []  # DeleteObjects: many keys at once
    if not key and objects:
        key = objects[0].get("Key", "") + (f" (and {len(objects) - 1} more)" if len(objects) > 1 else "")
    return f"s3://{bucket}/{key}" if bucket else "s3://"


def _retry_s3(
    response: Any = None,
    caught_exception: BaseException | None = None,
    attempts: int = 1,
    operation: Any = None,
    request_dict: dict[str, Any] | None = None,
    **_: Any,
) -> float | None:
    """botocore ``needs-retry`` handler: the seconds to wait before the next attempt, or None to stop.

    Runs on fsspec's IO thread; context variables (hence Prefect's run context) are the caller's.
    """
    reason = _transient(response, caught_exception)
    if reason is None:
        return None
    name = getattr(operation, "name", "request")
    what = f"{_VERBS.get(name, name)} {_s3_target(request_dict)}"
    if attempts > S3_RETRIES:
        _report(logging.WARNING, "storage: %s failed (%s) after %d attempts; giving up", what, reason, attempts)
        return None
    delay = min(S3_BACKOFF_MAX_S, S3_BACKOFF_BASE_S * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
    _report(logging.WARNING, "storage: %s failed (%s), retry %d/%d in %.2f s", what, reason, attempts, S3_RETRIES, delay)
    return delay


_prefect_routed = False


def _report(level: int, msg: str, *args: Any) -> None:
    """Log on ``scenario_pipeline.storage``: stderr everywhere (Prefect's console handler, or Python's
    last-resort handler in a Dask worker), and the Prefect run's logs when called inside a run."""
    global _prefect_routed
    if not _prefect_routed and "prefect" in sys.modules:  # never import Prefect here: Dask workers may run without it
        _prefect_routed = True
        try:
            from prefect.logging.handlers import APILogHandler  # lazy: only once the process has Prefect (above)

            chain: list[logging.Handler] = []
            lg: logging.Logger | None = log
            while lg is not None:  # already sent by PREFECT_LOGGING_EXTRA_LOGGERS? then not twice
                chain += lg.handlers
                lg = lg.parent if lg.propagate else None
            if not any(isinstance(h, APILogHandler) for h in chain):
                handler = APILogHandler()
                handler.addFilter(_in_prefect_run)
                log.addHandler(handler)
        except Exception:  # noqa: BLE001 - logging must never break storage
            pass
    log.log(level, msg, *args)


def _in_prefect_run(record: logging.LogRecord) -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext  # lazy: added by _report once Prefect is there

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None
    except Exception:  # noqa: BLE001
        return False


def _make_s3_class() -> type:
    """s3fs.S3FileSystem whose botocore clients run ``_retry_s3`` on every failed attempt."""
    import s3fs  # lazy: 0.1-0.2 s that local-only runs never pay (_s3_class)
    from fsspec.asyn import sync_wrapper

    class RetryingS3FileSystem(s3fs.S3FileSystem):
        async def set_session(self, refresh: bool = False, kwargs: dict | None = None):  # noqa: ANN201
            client = await super().set_session(refresh, kwargs or {})
            client.meta.events.register("needs-retry.s3", _retry_s3, unique_id="scenario-pipeline-retry")  # idempotent
            return client

        _connect = set_session
        connect = sync_wrapper(set_session)

    RetryingS3FileSystem.__module__ = __name__  # picklable by name: module __getattr__ below
    RetryingS3FileSystem.__qualname__ = "RetryingS3FileSystem"
    return RetryingS3FileSystem


_s3_class_lock = threading.Lock()


def _s3_class() -> type:
    """``RetryingS3FileSystem``, built on first use so that local-only runs never import s3fs."""
    with _s3_class_lock:
        if "RetryingS3FileSystem" not in globals():
            globals()["RetryingS3FileSystem"] = _make_s3_class()
        return globals()["RetryingS3FileSystem"]


def __getattr__(name: str) -> Any:
    if name == "RetryingS3FileSystem":  # pickle finds the class by name
        return _s3_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
