"""Find scenarios by id (``s12-search``) or short id (``s12``).

A scenario is one package: ``scenarios/sNN_name/`` in this repository (``__init__.py`` registers
the scenario class with ``@register``, ``features.py`` registers its column and feature kinds,
``agent.py`` is its reference agent, ``README.md`` its page). ``load_all`` imports every such
package, then every out-of-tree package named by an entry point of the group
``scenario_pipeline.scenarios`` (docs/scenarios/README.md).

Entry points are read from the installed distributions on ``sys.path``, so every process that
shares the import path finds the same scenarios: the CLI, the flow, Dask workers (which also
receive the discovery hook with each generation job) and the sandboxed agent processes (which
are given the harness's import path and nothing of its environment).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from importlib.metadata import entry_points
from typing import TypeVar

import scenario_pipeline.scenarios as pkg
from scenario_pipeline.datasets.discovery import add_discovery
from scenario_pipeline.errors import UnknownScenarioError, UsageError
from scenario_pipeline.scenarios.base import Scenario

_REGISTRY: dict[str, type] = {}
_LOADED = False
T = TypeVar("T", bound=type[Scenario])


def register(cls: T) -> T:
    """Class decorator: make a scenario findable by its id and short id."""
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise RuntimeError(f"two scenarios claim the id {cls.id!r}")
    _REGISTRY[cls.id] = cls
    return cls


def short_id(scenario_id: str) -> str:
    return scenario_id.split("-", 1)[0]


ENTRY_POINT_GROUP = "scenario_pipeline.scenarios"
_IN_TREE = re.compile(r"s\d\d_[a-z0-9_]+")  # s01_overflow, s12_search, ...


def register_package(name: str) -> None:
    """Import the scenario package ``name`` and its ``features`` module, if it has one: the
    scenario registers itself, its datasets and its kinds. In this process only; other processes
    find an out-of-tree package through its entry point (``load_all``)."""
    module = importlib.import_module(name)
    if hasattr(module, "__path__") and importlib.util.find_spec(f"{name}.features") is not None:
        importlib.import_module(f"{name}.features")


def out_of_tree_packages() -> list[str]:
    """Module names of the scenario packages installed distributions declare (entry points)."""
    return sorted({ep.module for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_all() -> None:
    """Register every scenario: this repository's packages, then the entry points' (idempotent)."""
    global _LOADED
    if _LOADED:
        return
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.ispkg and _IN_TREE.fullmatch(mod.name):
            register_package(f"{pkg.__name__}.{mod.name}")
    for name in out_of_tree_packages():
        try:
            register_package(name)
        except ImportError as exc:
            raise UsageError(f"scenario package {name!r} (entry point group {ENTRY_POINT_GROUP}) does not import: {exc}") from exc
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
