"""What any agent may use: the dataset's URL and its manifest (never the oracle)."""

from __future__ import annotations

from typing import Any

import fsspec

from scenario_pipeline.storage import Storage


def dataset_filesystem(context: dict[str, Any]) -> fsspec.AbstractFileSystem:
    return Storage.from_url(context["dataset"]["url"]).fs


def candidate_files(context: dict[str, Any], table: str, column: str, value: Any) -> list[str]:
    """Partitions whose manifest min/max for ``column`` can hold ``value`` (filesystem paths)."""
    root = Storage.from_url(context["dataset"]["url"])
    manifest = context["dataset"]["manifest"]
    out = []
    for part in manifest["tables"][table]["partitions"]:
        stats = part["stats"].get(column) or {}
        lo, hi = stats.get("min"), stats.get("max")
        if lo is not None and hi is not None and not (lo <= value <= hi):
            continue
        out.append(root.path(part["path"]))
    return out


def is_local(context: dict[str, Any]) -> bool:
    return context["dataset"]["url"].startswith("file://")
