"""Find scenarios by id (``s12-search``) or short id (``s12``). Modules register on import."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from scenario_pipeline.datasets.discovery import add_discovery
from scenario_pipeline.scenarios.base import Scenario

from scenario_pipeline.errors import UnknownScenarioError

_REGISTRY: dict[str, type] = {}
_LOADED = False
T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: make a scenario findable by its id and short id."""
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise RuntimeError(f"two scenarios claim the id {cls.id!r}")
    _REGISTRY[cls.id] = cls
    return cls


def short_id(scenario_id: str) -> str:
    return scenario_id.split("-", 1)[0]


def load_all() -> None:
    """Import every scenario module (each registers its scenario, datasets and kinds)."""
    global _LOADED
    if _LOADED:
        return
    import scenario_pipeline.scenarios as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name[:1] == "s" and mod.name[1:3].isdigit():  # s01_overflow, s12_search, ...
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _LOADED = True


# The dataset layer never imports this one; it asks here when a spec names a kind or dataset it
# does not know (a fresh Dask worker, a process that built a spec from a manifest).
add_discovery(load_all)


def scenario_ids() -> list[str]:
    load_all()
    return sorted(_REGISTRY)


def resolve_id(name: str) -> str:
    load_all()
    key = name.strip().lower()
    for sid in _REGISTRY:
        if key in (sid, short_id(sid)):
            return sid
    raise UnknownScenarioError(f"unknown scenario {name!r}; known: {', '.join(f'{short_id(s)} ({s})' for s in scenario_ids())}")


def get_scenario(name: str) -> Scenario:
    return _REGISTRY[resolve_id(name)]()
