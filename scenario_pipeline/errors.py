"""One exception hierarchy. Every message says what went wrong and what to do about it."""

from __future__ import annotations

import math
from typing import Any


class ScenarioError(Exception):
    """Base of every error this project raises on purpose. The CLI prints its message, exits 2."""

    exit_code = 2


class UsageError(ScenarioError):
    """Bad input from the user: an unknown name, a number out of range, a malformed URL."""


def positive(name: str, value: Any, integer: bool = False) -> Any:
    """``value`` when it is a positive (``integer``: whole) finite number; else a UsageError naming ``name``."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise UsageError(f"{name} must be a positive {'whole ' if integer else ''}number, got {value!r}")
    return value


class UnknownScenarioError(UsageError):
    pass


class AgentError(UsageError):
    """An agent spec that does not import, is not callable, or does not answer (bad input)."""


class StorageError(ScenarioError):
    """Storage that cannot be reached, read or written."""


class DatasetError(ScenarioError):
    """A dataset that is incomplete, corrupt, or does not match its spec."""


class ValidationFailed(DatasetError):
    """A generated partition broke one of its spec's business rules."""


class WarehouseError(ScenarioError):
    """The results warehouse cannot be reached or rejected a write."""


class ClusterError(ScenarioError):
    """The Dask cluster cannot be reached or created."""


class ServerError(ScenarioError):
    """The Prefect API cannot be reached or the local server did not start."""


class RunStateError(ScenarioError):
    """A run id that exists with different parameters, or a checkpoint that does not match."""


class IntegrityError(RunStateError):
    """A checkpoint whose MAC does not verify (changed, or copied from another run) when it is about to be used."""


class HarnessKeyError(UsageError):
    """A malformed harness key (SCENARIO_HARNESS_KEY or the key file), or a key file that cannot be trusted or made."""


class ThresholdsMissed(ScenarioError):
    """A run that completed but missed a threshold: the flow run ends Failed, the CLI exits 1.
    ``summary`` is the whole run summary, so callers still get every number."""

    exit_code = 1

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message, summary)
        self.summary = summary

    def __str__(self) -> str:
        return str(self.args[0])
