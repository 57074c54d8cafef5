"""The oracle: what a spec planted, enumerated from the spec alone, never from the data.

Scorers use it; agents must never import it (a test enforces that for reference agents).
"""

from __future__ import annotations

from typing import Any

from scenario_pipeline.datasets.features import feature_kind
from scenario_pipeline.datasets.features.needles import Needles
from scenario_pipeline.datasets.spec import DatasetSpec

_CACHE: dict[tuple[str, int], Any] = {}


def truth(spec: DatasetSpec, index: int) -> Any:
    """The truth of ``spec.features[index]``, computed once per process."""
    key = (spec.spec_hash(), index)
    if key not in _CACHE:
        feature = spec.features[index]
        _CACHE[key] = feature_kind(feature.kind).truth(spec, feature)
    return _CACHE[key]


def of_kind(spec: DatasetSpec, kind: str, nth: int = 0) -> Any:
    """The truth of the nth feature of ``kind``."""
    indices = [i for i, f in enumerate(spec.features) if f.kind == kind]
    return truth(spec, indices[nth])


def needles(spec: DatasetSpec, nth: int = 0) -> Needles:
    return of_kind(spec, "needles", nth)
