"""Planted features, registered by kind. Each kind knows its truth (from the spec alone) and
how to plant it into a generated partition.

The kinds here are the dataset layer's own (``needles`` of the default ``events`` dataset) and
those more than one scenario uses. A kind of one scenario lives in its package
(``scenarios/sNN_name/features.py``) and registers when that module is imported; lookups of an
unknown kind run the discovery hooks first (``datasets/discovery.py``)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Protocol

import pyarrow as pa

from scenario_pipeline.datasets.discovery import add_discovery, discover
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec
from scenario_pipeline.errors import UsageError


class FeatureKind(Protocol):
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Any:
        """What was planted, enumerated from the spec alone (the oracle's answer)."""

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Any, start: int, stop: int) -> pa.Table:
        """Partition [start, stop) of ``feature.table`` with the feature planted in it."""


__all__ = ["FeatureKind", "add_discovery", "feature_kind", "feature_kinds", "register_feature_kind"]

_KINDS: dict[str, FeatureKind] = {}
_LOADED = False


def register_feature_kind(name: str):  # noqa: ANN201 - class decorator
    def deco(cls: type) -> type:
        _KINDS[name] = cls()
        return cls

    return deco


def _load_modules() -> None:
    global _LOADED
    if not _LOADED:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _LOADED = True


def feature_kinds() -> list[str]:
    """Every registered feature kind: this package's modules and the scenario packages' own."""
    _load_modules()
    discover()
    return sorted(_KINDS)


def feature_kind(name: str) -> FeatureKind:
    _load_modules()
    if name not in _KINDS:  # scenario packages register kinds of their own (datasets/discovery.py)
        discover()
    if name not in _KINDS:
        raise UsageError(f"unknown feature kind {name!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]
