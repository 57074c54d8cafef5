"""Storage by URL: ``file://`` (or a plain path) and ``s3://bucket/prefix``.

Every write is atomic: a reader sees the whole object or nothing. Local files are written to a
temporary name and renamed; S3 PUTs are atomic by themselves. S3 uses the standard AWS
credential chain; ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) points it at MinIO,
LocalStack or a test server.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

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


@dataclass(frozen=True)
class Storage:
    """A root URL plus the fsspec filesystem that serves it. Paths are relative to the root."""

    url: str

    @classmethod
    def from_url(cls, url: str) -> "Storage":
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

    def child(self, *parts: str) -> "Storage":
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
        self.write_bytes(probe, b"ok")
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
            raise StorageError(f"cannot {what} {self.scheme}://{full}: permission denied; choose a writable --data-dir or storage URL") from exc
        except OSError as exc:
            raise StorageError(f"cannot {what} {self.scheme}://{full}: {exc.strerror or exc}") from exc
        except Exception as exc:  # botocore / aiohttp errors carry no common base
            raise StorageError(f"cannot {what} {self.scheme}://{full}: {type(exc).__name__}: {_safe(exc)}") from exc


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
        # Retries with backoff for a flaky store; s3fs retries on throttling and 5xx by itself.
        kwargs["config_kwargs"] = {"retries": {"max_attempts": 8, "mode": "adaptive"}}
        return fsspec.filesystem("s3", skip_instance_cache=False, **kwargs)
    return fsspec.filesystem("file")


def pyarrow_filesystem(storage: Storage):  # noqa: ANN201 - pyarrow.fs.FileSystem
    """The pyarrow filesystem for a storage root (S3 honours the endpoint override)."""
    import pyarrow.fs as pafs

    if storage.scheme == "s3":
        endpoint = s3_endpoint()
        kwargs: dict[str, Any] = {}
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs)
    return pafs.LocalFileSystem()
