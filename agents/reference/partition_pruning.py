"""Partitions worth opening, from the manifest's per-column min / max alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scenario_pipeline.storage import Storage


def instant(value: str) -> datetime:
    """An ISO timestamp as an aware datetime; a timestamp without a zone is UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def files_overlapping(context: dict[str, Any], table: str, column: str, lo: str, hi: str) -> list[str]:
    """Files of ``table`` whose ``column`` range can meet the timestamps [lo, hi) (ISO strings)."""
    root = Storage.from_url(context["dataset"]["url"])
    want_lo, want_hi = instant(lo), instant(hi)
    out = []
    for part in context["dataset"]["manifest"]["tables"][table]["partitions"]:
        stats = part["stats"].get(column) or {}
        pmin, pmax = stats.get("min"), stats.get("max")
        if isinstance(pmin, str) and isinstance(pmax, str) and (instant(pmax) < want_lo or instant(pmin) >= want_hi):
            continue
        out.append(root.path(part["path"]))
    return out
