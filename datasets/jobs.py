"""The functions Dask runs for generation. Kept apart from the Prefect tasks so a worker
process imports neither Prefect nor its background threads (which kept workers from exiting).

A job carries the submitting process's discovery hooks (``datasets/discovery.py``): a fresh
worker process has imported no scenario package, and the spec may name their kinds."""

from __future__ import annotations

from scenario_pipeline.datasets.discovery import Hook, adopt
from scenario_pipeline.datasets.partition import (
    PartitionInfo,
    verified_sidecar,
    write_partition,
)
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import ValidationFailed
from scenario_pipeline.storage import DiskFullError, Storage


def write_job(
    spec: DatasetSpec, root_url: str, table: str, p: int, discovery: tuple[Hook, ...] = ()
) -> PartitionInfo | str | DiskFullError:
    """One partition; a broken rule comes back as its report (not raised: retrying would not help).
    ``discovery``: the submitter's hooks (``discovery.hooks()``), so the worker finds every kind."""
    adopt(discovery)
    try:
        return write_partition(spec, Storage.from_url(root_url), table, p)
    except ValidationFailed as exc:
        return str(exc)
    except DiskFullError as exc:  # returned, not raised: Dask would retry it in vain and log a traceback each time
        return exc


def verify_job(root_url: str, table: str, indices: list[int]) -> list[PartitionInfo]:
    """The partitions among ``indices`` already written whole."""
    root = Storage.from_url(root_url)
    return [i for i in (verified_sidecar(root, table, p) for p in indices) if i is not None]
