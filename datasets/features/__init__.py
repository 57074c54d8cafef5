"""Planted features, registered by kind. Each kind knows its truth (from the spec alone) and
how to plant it into a generated partition. Adding a kind is adding a module here."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Protocol

import pyarrow as pa

from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec
from scenario_pipeline.errors import UsageError


class FeatureKind(Protocol):
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> Any:
        """What was planted, enumerated from the spec alone (the oracle's answer)."""

    def plant(self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: Any, start: int, stop: int) -> pa.Table:
        """Partition [start, stop) of ``feature.table`` with the feature planted in it."""


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
    """Every registered feature kind: this package's modules and the scenarios' own."""
    from scenario_pipeline.scenarios.registry import load_all

    _load_modules()
    load_all()
    return sorted(_KINDS)


def feature_kind(name: str) -> FeatureKind:
    _load_modules()
    if name not in _KINDS:  # scenario modules may register kinds of their own
        from scenario_pipeline.scenarios.registry import load_all

        load_all()
    if name not in _KINDS:
        raise UsageError(f"unknown feature kind {name!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]
