"""Where the kinds and datasets defined above the dataset layer come from.

The dataset layer registers what it defines itself (column kinds in ``columns.py`` and
``kinds_*.py``, feature kinds in ``features/``, datasets in ``catalog.py``). Scenario packages
define more (their own column kinds, feature kinds and datasets), which register when their
modules are imported. The dataset layer never imports the layers above it: a layer that defines
kinds adds a discovery hook here (``scenarios/registry.py`` adds its ``load_all``), and a lookup
of a name nobody registered yet runs the hooks before it gives up.

Hooks are module-level callables, so they pickle by name. A Dask job carries the hooks of the
process that submitted it (``hooks()``, see ``datasets/jobs.py``); unpickling them in a fresh
worker process imports their modules, and ``adopt`` makes the worker run them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Hook = Callable[[], None]

_HOOKS: list[Hook] = []


def add_discovery(hook: Hook) -> Hook:
    """Run ``hook`` (no arguments; idempotent, cheap the second time) when a name is unknown."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return hook


def hooks() -> tuple[Hook, ...]:
    return tuple(_HOOKS)


def adopt(more: Iterable[Hook]) -> None:
    """Add hooks received from another process (a Dask job's)."""
    for hook in more:
        add_discovery(hook)


def discover() -> None:
    """Run every hook: afterwards whatever the upper layers define is registered."""
    for hook in list(_HOOKS):
        hook()
