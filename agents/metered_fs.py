"""A read-only fsspec filesystem that counts the bytes and files an agent reads.

Reference agents hand it to DuckDB (``connection.register_filesystem``) so that "bytes read"
is measured at the file boundary, not estimated; it also refuses every write, so an agent
reading through it cannot change a dataset.
"""

from __future__ import annotations

import threading
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem


class _MeteredFile:
    def __init__(self, fh: Any, meter: MeteredFileSystem) -> None:
        self._fh = fh
        self._meter = meter

    def read(self, length: int = -1) -> bytes:
        data = self._fh.read(length)
        self._meter._add(len(data))
        return data

    def readinto(self, buf: Any) -> int:
        n = self._fh.readinto(buf)
        self._meter._add(n or 0)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _MeteredFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


class MeteredFileSystem(AbstractFileSystem):
    protocol = "metered"
    cachable = False

    def __init__(self, target: AbstractFileSystem | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target or fsspec.filesystem("file")
        self.bytes_read = 0
        self.files_opened: set[str] = set()
        self._lock = threading.Lock()

    def _add(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def _strip(self, path: str) -> str:
        path = self._strip_protocol(path)
        return path if self.target.protocol not in ("file", ("file", "local")) else "/" + path.lstrip("/")

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if any(m in mode for m in "wax+"):
            raise PermissionError(f"datasets are read-only to agents: refused to open {path} with mode {mode!r}")
        real = self._strip(path)
        with self._lock:
            self.files_opened.add(real)
        return _MeteredFile(self.target.open(real, mode, **kwargs), self)

    def info(self, path: str, **kwargs: Any) -> dict:
        out = dict(self.target.info(self._strip(path), **kwargs))
        out["name"] = path
        return out

    def modified(self, path: str) -> Any:
        return self.target.modified(self._strip(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        return self.target.ls(self._strip(path), detail=detail, **kwargs)

    def _rm(self, path: str) -> None:
        raise PermissionError(f"datasets are read-only to agents: refused to delete {path}")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        raise PermissionError(f"datasets are read-only to agents: refused to create {path}")
